"""hoard.toml + the environment → typed remotes and workflows, validated on load.

Every error names the file, the line when it can be found, the key, and what is expected; it
is a ``ConfigError`` (exit status 2). ``${NAME}`` in any string value is replaced by the
environment variable NAME (a missing one is an error). Credentials are never accepted: a key
that looks like one is refused with a pointer to the standard credential chain.

Relative paths (sources, bases, skipped paths, a plain-path remote) are taken from the folder
the file is in; ``~`` is the user's home. The loaded workflows are fully resolved: what a job
records as its snapshot and can run again exactly.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import platformdirs

from hoard.backends.registry import capabilities_of, parse_remote
from hoard.errors import ConfigError, HoardError
from hoard.guards import MaxDelete
from hoard.hashing import ALGORITHMS
from hoard.keys import DEFAULT_TEMPLATE, Template
from hoard.schedule import Schedule, zone_named
from hoard.units import parse_size

FILE_NAME = "hoard.toml"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")
ENV_REF = re.compile(r"\$\{([^}]*)\}")
CREDENTIAL_WORDS = (
    "secret",
    "password",
    "passwd",
    "access_key",
    "accesskey",
    "token",
    "credential",
    "api_key",
    "apikey",
    "private_key",
)
CHAIN = (
    "hoard takes credentials only from the standard chain: AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY in the environment, a profile in ~/.aws/credentials "
    '(profile = "NAME" on the remote), SSO or an instance role; for Azure '
    "AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_SAS_TOKEN or an Azure AD login"
)
REMOTE_KEYS = (
    "url",
    "endpoint_url",
    "profile",
    "region",
    "path_style",
    "account_url",
    "replace_archived",
)
SYNC_KEYS = (
    "delete",
    "max_delete",
    "force",
    "allow_empty_source",
    "marker",
    "backup_prefix",
    "delete_whole_bucket",
)
WORKFLOW_KEYS = (
    "description",
    "sources",
    "base",
    "to",
    "mode",
    "template",
    "tier",
    "include",
    "exclude",
    "skip_names",
    "skip_paths",
    "follow_symlinks",
    "hash",
    "workers",
    "multipart_threshold",
    "part_size",
    "schedule",
    "timezone",
    "keep_awake",
    *SYNC_KEYS,
)
T = TypeVar("T")


@dataclass(frozen=True)
class RemoteConfig:
    """Where a workflow archives to. ``name`` is empty when the workflow gave a URL."""

    url: str
    name: str = ""
    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    path_style: bool = False
    account_url: str | None = None  # Azure
    replace_archived: bool = False  # Azure


@dataclass(frozen=True)
class SourceSpec:
    pattern: str
    base: str | None = None


@dataclass(frozen=True)
class SyncOptions:
    delete: bool = False
    max_delete: str = "20%"
    force: bool = False
    allow_empty_source: bool = False
    marker: str | None = None
    backup_prefix: str | None = None
    delete_whole_bucket: str | None = None


@dataclass(frozen=True)
class Workflow:
    name: str
    sources: tuple[SourceSpec, ...]
    remote: RemoteConfig
    mode: str = "push"
    template: str = DEFAULT_TEMPLATE
    tier: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    skip_names: tuple[str, ...] = ()
    skip_paths: tuple[str, ...] = ()
    follow_symlinks: bool = False
    hash_algorithm: str = "blake3"
    workers: int = 8
    multipart_threshold: int | None = None
    part_size: int | None = None
    schedule: str | None = None
    timezone: str | None = None
    keep_awake: bool = True
    sync: SyncOptions = field(default_factory=SyncOptions)
    description: str = ""


@dataclass(frozen=True)
class Config:
    path: str
    remotes: dict[str, RemoteConfig]
    workflows: dict[str, Workflow]

    def workflow(self, name: str) -> Workflow:
        if name not in self.workflows:
            known = ", ".join(sorted(self.workflows)) or "none"
            raise ConfigError(f"{self.path}: no workflow named {name!r} (defined: {known})")
        return self.workflows[name]


def user_config_path() -> str:
    return os.path.join(platformdirs.user_config_dir("hoard", appauthor=False), FILE_NAME)


def find_config(explicit: str | None, cwd: str) -> str:
    """--config FILE, else ./hoard.toml, else hoard.toml in the user's config folder."""
    if explicit:
        path = os.path.abspath(os.path.expanduser(explicit))
        if not os.path.isfile(path):
            raise ConfigError(f"{path}: no such configuration file")
        return path
    candidates = [os.path.join(cwd, FILE_NAME), user_config_path()]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise ConfigError(
        f"no {FILE_NAME} in the current folder ({cwd}) or in {os.path.dirname(candidates[1])}; "
        "run `hoard init` to write an example, or pass --config FILE"
    )


def load_config(path: str, env: Mapping[str, str]) -> Config:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
        doc = tomllib.loads(text)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        at = re.search(r"at line (\d+)", str(exc))
        line = f":{at.group(1)}" if at else ""
        raise ConfigError(f"{path}{line}: not valid TOML: {exc}") from None
    return _Loader(path, text, env).config(doc)


class _Loader:
    def __init__(self, path: str, text: str, env: Mapping[str, str]) -> None:
        self.path = path
        self.folder = os.path.dirname(os.path.abspath(path))
        self.lines = text.splitlines()
        self.env = env

    # --- errors -------------------------------------------------------------------------
    def error(self, where: str, what: str) -> ConfigError:
        line = self._line_of(where)
        return ConfigError(f"{self.path}{f':{line}' if line else ''}: {where}: {what}")

    def _line_of(self, where: str) -> int | None:
        """The line of ``where`` (`workflows.photos.tier`): its key inside its table, or the
        table's header. None when the file spells it another way (inline or dotted)."""
        parts = re.sub(r"\[\d+\]", "", where).split(".")
        for table_len in range(len(parts), -1, -1):
            table, key = parts[:table_len], parts[table_len : table_len + 1]
            current: list[str] = []
            for number, line in enumerate(self.lines, 1):
                header = re.match(r"\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$", line)
                if header:
                    current = [p.strip().strip("\"'") for p in header.group(1).split(".")]
                    if current[: len(table)] == table and not key:
                        return number
                    continue
                if (
                    current == table
                    and key
                    and re.match(rf"\s*\"?{re.escape(key[0])}\"?\s*=", line)
                ):
                    return number
        return None

    # --- values -------------------------------------------------------------------------
    def expand(self, value: Any, where: str) -> Any:
        if isinstance(value, str):
            return self._expand_str(value, where)
        if isinstance(value, list):
            return [self.expand(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            self.check_keys_safe(value, where)
            return {k: self.expand(v, f"{where}.{k}") for k, v in value.items()}
        return value

    def _expand_str(self, text: str, where: str) -> str:
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise self.error(where, f"${{{name}}} is not an environment variable reference")
            if name not in self.env:
                raise self.error(
                    where, f"the environment variable {name} (used as ${{{name}}}) is not set"
                )
            return self.env[name]

        expanded = ENV_REF.sub(sub, text)
        if "${" in ENV_REF.sub("", text):
            raise self.error(where, "an unterminated ${...} reference")
        return expanded

    def check_keys_safe(self, table: Mapping[str, Any], where: str) -> None:
        for key in table:
            if any(word in key.lower().replace("-", "_") for word in CREDENTIAL_WORDS):
                at = f"{where}.{key}" if where else key
                raise self.error(at, f"credentials are never stored in {FILE_NAME}; {CHAIN}")

    def table(self, doc: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
        value = doc.get(key, {})
        if not isinstance(value, dict):
            raise self.error(
                f"{where}{key}", f"expected a table ([{where}{key}.NAME]), got {_kind(value)}"
            )
        return value

    def only(self, table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
        for key in table:
            if key not in allowed:
                raise self.error(
                    f"{where}.{key}", f"unknown key; expected one of {', '.join(allowed)}"
                )

    def get(self, t: Mapping[str, Any], key: str, where: str, kind: type[T], default: T) -> T:
        if key not in t:
            return default
        value = t[key]
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            raise self.error(f"{where}.{key}", f"expected {_name(kind)}, got {_kind(value)}")
        return value

    def opt_str(self, t: Mapping[str, Any], key: str, where: str) -> str | None:
        value = t.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.error(f"{where}.{key}", f"expected a non-empty string, got {_kind(value)}")
        return value

    def strings(self, t: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
        value = t.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(f"{where}.{key}", f"expected a list of strings, got {_kind(value)}")
        return tuple(value)

    def checked(self, where: str, check: Callable[[], T]) -> T:
        try:
            return check()
        except (ValueError, HoardError) as exc:
            raise self.error(where, str(exc)) from None

    def local_path(self, text: str) -> str:
        expanded = os.path.expanduser(text)
        return os.path.normpath(os.path.join(self.folder, expanded))

    # --- the document -------------------------------------------------------------------
    def config(self, doc: dict[str, Any]) -> Config:
        self.check_keys_safe(doc, "")
        for key, value in doc.items():
            if key not in ("remotes", "workflows"):
                raise self.error(
                    key,
                    f"unknown {'table' if isinstance(value, dict) else 'key'}; a {FILE_NAME} "
                    "has [remotes.NAME] and [workflows.NAME] tables",
                )
        remotes = {
            name: self.remote(name, self.expand(t, f"remotes.{name}"))
            for name, t in self.named(doc, "remotes").items()
        }
        workflows = {
            name: self.workflow(name, self.expand(t, f"workflows.{name}"), remotes)
            for name, t in self.named(doc, "workflows").items()
        }
        return Config(self.path, remotes, workflows)

    def named(self, doc: Mapping[str, Any], key: str) -> dict[str, dict[str, Any]]:
        tables = self.table(doc, key, "")
        for name, t in tables.items():
            if not NAME.match(name):
                raise self.error(
                    f"{key}.{name}",
                    "a name has letters, digits, '-' and '_' and starts with a letter or digit",
                )
            if not isinstance(t, dict):
                raise self.error(f"{key}.{name}", f"expected a table, got {_kind(t)}")
        return tables

    def remote(self, name: str, t: dict[str, Any]) -> RemoteConfig:
        where = f"remotes.{name}"
        self.only(t, REMOTE_KEYS, where)
        if "url" not in t:
            raise self.error(where, "missing key url (file:///path, a path, or s3://bucket/prefix)")
        url = self.url(self.get(t, "url", where, str, ""), f"{where}.url")
        endpoint = self.opt_str(t, "endpoint_url", where)
        if endpoint is not None and not re.match(r"https?://[^/@\s]+(/|\Z)", endpoint):
            hint = "; credentials never go in a URL" if "@" in endpoint else ""
            raise self.error(
                f"{where}.endpoint_url", f"expected an http(s)://host[:port] URL{hint}"
            )
        account_url = self.opt_str(t, "account_url", where)
        if account_url is not None and not re.match(r"https?://[^/@\s?]+/?\Z", account_url):
            hint = "; a SAS token goes in AZURE_STORAGE_SAS_TOKEN" if "?" in account_url else ""
            raise self.error(
                f"{where}.account_url",
                f"expected https://ACCOUNT.blob.core.windows.net (no credentials){hint}",
            )
        return RemoteConfig(
            url,
            name,
            endpoint,
            self.opt_str(t, "profile", where),
            self.opt_str(t, "region", where),
            self.get(t, "path_style", where, bool, False),
            account_url,
            self.get(t, "replace_archived", where, bool, False),
        )

    def url(self, text: str, where: str) -> str:
        if "://" not in text:
            text = self.local_path(text) if text else text
        elif re.match(r"[a-z0-9]+://[^/]*@", text, re.I):
            raise self.error(where, f"credentials never go in a URL; {CHAIN}")
        self.checked(where, lambda: parse_remote(text))
        return text

    def workflow(self, name: str, t: dict[str, Any], remotes: dict[str, RemoteConfig]) -> Workflow:
        where = f"workflows.{name}"
        self.only(t, WORKFLOW_KEYS, where)
        for required in ("sources", "to"):
            if required not in t:
                raise self.error(where, f"missing key {required}")
        base = self.opt_str(t, "base", where)
        sources = self.sources(t["sources"], f"{where}.sources", base)
        remote = self.destination(self.get(t, "to", where, str, ""), f"{where}.to", remotes)
        mode = self.get(t, "mode", where, str, "push")
        if mode not in ("push", "sync"):
            raise self.error(f"{where}.mode", f'expected "push" or "sync", got "{mode}"')
        template = self.get(t, "template", where, str, DEFAULT_TEMPLATE)
        self.checked(f"{where}.template", lambda: Template.compile(template))
        tier = self.opt_str(t, "tier", where)
        if tier is not None:
            tiers = capabilities_of(parse_remote(remote.url)).tiers
            if tier not in tiers:
                raise self.error(
                    f"{where}.tier", f"expected one of {', '.join(tiers)}; got {tier!r}"
                )
        hash_algorithm = self.get(t, "hash", where, str, "blake3")
        if hash_algorithm not in ALGORITHMS:
            raise self.error(f"{where}.hash", f"expected one of {', '.join(ALGORITHMS)}")
        workers = self.get(t, "workers", where, int, 8)
        if not 1 <= workers <= 256:
            raise self.error(f"{where}.workers", f"expected a number from 1 to 256, got {workers}")
        timezone = self.opt_str(t, "timezone", where)
        zone = self.checked(f"{where}.timezone", lambda: zone_named(timezone))
        schedule = self.opt_str(t, "schedule", where)
        if schedule is not None:
            self.checked(f"{where}.schedule", lambda: Schedule.parse(schedule, zone))
        return Workflow(
            name=name,
            sources=sources,
            remote=remote,
            mode=mode,
            template=template,
            tier=tier,
            include=self.strings(t, "include", where),
            exclude=self.strings(t, "exclude", where),
            skip_names=self.strings(t, "skip_names", where),
            skip_paths=tuple(self.local_path(p) for p in self.strings(t, "skip_paths", where)),
            follow_symlinks=self.get(t, "follow_symlinks", where, bool, False),
            hash_algorithm=hash_algorithm,
            workers=workers,
            multipart_threshold=self.size(t, "multipart_threshold", where),
            part_size=self.size(t, "part_size", where),
            schedule=schedule,
            timezone=timezone,
            keep_awake=self.get(t, "keep_awake", where, bool, True),
            sync=self.sync_options(t, where, mode, sources),
            description=self.get(t, "description", where, str, ""),
        )

    def sources(self, value: Any, where: str, base: str | None) -> tuple[SourceSpec, ...]:
        expected = 'a list of paths or patterns, or of { pattern = "...", base = "..." } tables'
        if not isinstance(value, list) or not value:
            raise self.error(where, f"expected {expected}, got {_kind(value)}")
        specs = []
        for i, item in enumerate(value):
            at = f"{where}[{i}]"
            if isinstance(item, str) and item:
                specs.append(
                    SourceSpec(self.local_path(item), self.local_path(base) if base else None)
                )
                continue
            if not isinstance(item, dict):
                raise self.error(at, f"expected {expected}, got {_kind(item)}")
            self.only(item, ("pattern", "base"), at)
            pattern = item.get("pattern")
            if not isinstance(pattern, str) or not pattern:
                raise self.error(f"{at}.pattern", "expected a path or glob pattern (a string)")
            item_base = self.opt_str(item, "base", at) or base
            specs.append(
                SourceSpec(
                    self.local_path(pattern), self.local_path(item_base) if item_base else None
                )
            )
        return tuple(specs)

    def destination(self, to: str, where: str, remotes: dict[str, RemoteConfig]) -> RemoteConfig:
        if to in remotes:
            return remotes[to]
        if "://" in to or to.startswith(("/", "~", ".")):
            return RemoteConfig(self.url(to, where))
        known = ", ".join(sorted(remotes)) or "none defined"
        raise self.error(
            where,
            f"no remote named {to!r} (remotes: {known}); name a [remotes.NAME] or give a URL "
            "(file:///path, ~/folder, s3://bucket/prefix)",
        )

    def size(self, t: Mapping[str, Any], key: str, where: str) -> int | None:
        value = t.get(key)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        if isinstance(value, str):
            return self.checked(f"{where}.{key}", lambda: parse_size(value))
        raise self.error(f"{where}.{key}", f'expected a size like "64MiB", got {_kind(value)}')

    def sync_options(
        self, t: Mapping[str, Any], where: str, mode: str, sources: tuple[SourceSpec, ...]
    ) -> SyncOptions:
        if mode != "sync":
            for key in SYNC_KEYS:
                if key in t:
                    raise self.error(f"{where}.{key}", 'only for mode = "sync"')
            return SyncOptions()
        if len(sources) != 1:
            raise self.error(
                f"{where}.sources", f'mode = "sync" mirrors one folder; got {len(sources)} sources'
            )
        max_delete = t.get("max_delete", "20%")
        if isinstance(max_delete, int) and not isinstance(max_delete, bool):
            max_delete = str(max_delete)
        if not isinstance(max_delete, str):
            raise self.error(
                f"{where}.max_delete", f'expected "20%" or a count, got {_kind(max_delete)}'
            )
        self.checked(f"{where}.max_delete", lambda: MaxDelete.parse(max_delete))
        return SyncOptions(
            delete=self.get(t, "delete", where, bool, False),
            max_delete=max_delete,
            force=self.get(t, "force", where, bool, False),
            allow_empty_source=self.get(t, "allow_empty_source", where, bool, False),
            marker=self.opt_str(t, "marker", where),
            backup_prefix=self.opt_str(t, "backup_prefix", where),
            delete_whole_bucket=self.opt_str(t, "delete_whole_bucket", where),
        )


def _name(kind: type) -> str:
    return {str: "a string", bool: "true or false", int: "a whole number"}.get(kind, kind.__name__)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, str):
        return f'the string "{value}"'
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__
