"""The CRT path's AWS configuration without botocore's session (``s3_env``): wherever it answers,
its answer is botocore's own (a real ``botocore.session.Session`` over the same environment and
files), and wherever it cannot be sure it does not answer, so the session decides as before."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from hoard.backends import s3_crt, s3_env
from hoard.backends.s3 import S3Backend
from hoard.backends.wrappers import RetryPolicy

KEYS = {"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret"}
BENCH_CONFIG = "[default]\ns3 =\n  max_concurrent_requests = 16\n"

#: (name, environment beside the files, config file, credentials file)
AGREES: list[tuple[str, dict[str, str], str | None, str | None]] = [
    ("keys only, no files", KEYS, None, None),
    ("keys and region", {**KEYS, "AWS_DEFAULT_REGION": "eu-west-1"}, None, None),
    ("an empty region", {**KEYS, "AWS_DEFAULT_REGION": ""}, None, None),
    ("the bench's config", {**KEYS, "AWS_DEFAULT_REGION": "us-east-1"}, BENCH_CONFIG, None),
    ("region from the config", KEYS, "[default]\nregion = ap-south-1\n", None),
    (
        "the environment's region wins",
        {**KEYS, "AWS_DEFAULT_REGION": "eu-north-1"},
        "[default]\nregion = ap-south-1\n",
        None,
    ),
    ("AWS_REGION is not botocore's", {**KEYS, "AWS_REGION": "eu-central-1"}, None, None),
    (
        "$AWS_PROFILE picks the settings, not the keys",
        {**KEYS, "AWS_PROFILE": "work"},
        "[default]\nregion = a-1\n[profile work]\nregion = w-1\ncredential_process = /bin/false\n",
        "[work]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n",
    ),
    (
        "$AWS_DEFAULT_PROFILE before $AWS_PROFILE",
        {**KEYS, "AWS_DEFAULT_PROFILE": "a", "AWS_PROFILE": "b"},
        "[profile a]\nregion = r-a\n[profile b]\nregion = r-b\n",
        None,
    ),
    (
        "a profile only in the credentials file",
        {**KEYS, "AWS_PROFILE": "c"},
        None,
        "[c]\naws_access_key_id = AKIDFILE\naws_secret_access_key = s\nregion = r-c\n",
    ),
    (
        "the credentials file's settings join the profile's",
        KEYS,
        "[default]\nregion = r-1\n",
        "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = s\nregion = r-2\n",
    ),
    (
        "keys beat a role and a credential process",
        KEYS,
        "[default]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = src\n"
        "credential_process = /bin/false\n[profile src]\nregion = x\n",
        None,
    ),
    ("a session token", {**KEYS, "AWS_SESSION_TOKEN": "tok"}, None, None),
    (
        "the security token first",
        {**KEYS, "AWS_SECURITY_TOKEN": "sec", "AWS_SESSION_TOKEN": "tok"},
        None,
        None,
    ),
    (
        "an empty security token",
        {**KEYS, "AWS_SECURITY_TOKEN": "", "AWS_SESSION_TOKEN": "tok"},
        None,
        None,
    ),
    (
        "a CA bundle from the environment",
        {**KEYS, "AWS_CA_BUNDLE": "/etc/ca.pem"},
        "[default]\nca_bundle = /elsewhere.pem\n",
        None,
    ),
    ("a CA bundle from the config", KEYS, "[default]\nca_bundle = /elsewhere.pem\n", None),
    (
        "an endpoint in the config keeps botocore",
        KEYS,
        "[default]\nendpoint_url = http://127.0.0.1:9\n",
        None,
    ),
    (
        "an s3 section that redirects keeps botocore",
        KEYS,
        "[default]\ns3 =\n  use_accelerate_endpoint = true\n",
        None,
    ),
    (
        "an endpoint from the environment",
        {**KEYS, "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9"},
        BENCH_CONFIG,
        None,
    ),
    (
        "a config that may ignore the environment's endpoint keeps botocore",
        {**KEYS, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
        "[default]\nignore_configured_endpoint_urls = true\n",
        None,
    ),
    ("the config file is a folder", {**KEYS, "AWS_CONFIG_FILE": "."}, None, None),
    ("an empty config file name", {**KEYS, "AWS_CONFIG_FILE": ""}, None, None),
    (
        "~/.aws/config under $HOME",
        {**KEYS, "AWS_CONFIG_FILE": "~/.aws/config"},
        "[default]\nregion = home-1\n",
        None,
    ),
]

#: cases where the session must decide: it raises, refreshes, or reads what this does not
DEFERS: list[tuple[str, dict[str, str], str | None, str | None]] = [
    ("no keys", {}, "[default]\nregion = r\n", None),
    ("a key without its secret", {"AWS_ACCESS_KEY_ID": "AKID"}, None, None),
    ("an empty secret", {**KEYS, "AWS_SECRET_ACCESS_KEY": ""}, None, None),
    ("keys that expire", {**KEYS, "AWS_CREDENTIAL_EXPIRATION": "2030-01-01T00:00:00Z"}, None, None),
    ("a missing profile", {**KEYS, "AWS_PROFILE": "nowhere"}, None, None),
    ("a missing default profile named", {**KEYS, "AWS_PROFILE": "default"}, None, None),
    ("an instance-metadata setting", {**KEYS, "AWS_METADATA_SERVICE_TIMEOUT": "soon"}, None, None),
    (
        "an instance-metadata setting in the config",
        KEYS,
        "[default]\nec2_metadata_service_endpoint_mode = carrier-pigeon\n",
        None,
    ),
    ("a config file botocore cannot parse", KEYS, "[default\nregion = r\n", None),
]


def _environment(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    config: str | None,
    credentials: str | None,
) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_") or "PROXY" in name.upper():
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config_file = os.path.expanduser(os.environ["AWS_CONFIG_FILE"])
    if config is not None:
        Path(config_file).write_text(config)
    if credentials is not None:
        (tmp_path / "credentials").write_text(credentials)


def _botocore(profile: str | None = None) -> dict[str, Any]:
    from botocore.session import Session

    session = Session(profile=profile)
    creds = session.get_credentials()
    frozen = creds.get_frozen_credentials()
    scoped = session.get_scoped_config()
    return {
        "keys": (frozen.access_key, frozen.secret_key, frozen.token),
        "method": creds.method,
        "region": session.get_config_variable("region"),
        "ca_bundle": session.get_config_variable("ca_bundle"),
        "scoped": scoped,
        "keeps botocore": s3_crt.needs_botocore(scoped, s3_crt.configured_endpoint(None)),
    }


@pytest.mark.parametrize(
    ("env", "config", "credentials"), [c[1:] for c in AGREES], ids=[c[0] for c in AGREES]
)
def test_the_environment_gives_botocore_s_own_answer(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    config: str | None,
    credentials: str | None,
) -> None:
    _environment(tmp_path, monkeypatch, env, config, credentials)
    fast = s3_env.from_environment(None)
    assert fast is not None
    keys = fast.get_credentials().get_frozen_credentials()
    scoped = fast.get_scoped_config()
    assert {
        "keys": tuple(keys),
        "method": "env",
        "region": fast.region,
        "ca_bundle": fast.get_config_variable("ca_bundle"),
        "scoped": scoped,
        "keeps botocore": s3_crt.needs_botocore(scoped, s3_crt.configured_endpoint(None)),
    } == _botocore()


@pytest.mark.parametrize(
    ("env", "config", "credentials"), [c[1:] for c in DEFERS], ids=[c[0] for c in DEFERS]
)
def test_where_it_is_not_certain_the_session_decides(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    config: str | None,
    credentials: str | None,
) -> None:
    _environment(tmp_path, monkeypatch, env, config, credentials)
    assert s3_env.from_environment(None) is None


def test_an_explicit_profile_takes_the_environment_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = "[p]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n"
    _environment(tmp_path, monkeypatch, KEYS, None, creds)
    assert s3_env.from_environment("p") is None
    assert _botocore("p")["keys"] == ("AKIDFILE", "file-secret", None)  # why it must defer


def test_credentials_never_show_in_a_repr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _environment(tmp_path, monkeypatch, {**KEYS, "AWS_SESSION_TOKEN": "tok"}, None, None)
    fast = s3_env.from_environment(None)
    assert fast is not None
    shown = repr(fast.get_credentials()) + repr(fast.get_credentials().get_frozen_credentials())
    assert not any(secret in shown for secret in ("AKIDENV", "env-secret", "tok"))


def test_a_profile_s_keys_still_reach_the_crt_through_the_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seaweed_bucket: str, seaweed_endpoint: str
) -> None:
    """No keys in the environment: the session finds them in the credentials file, and the
    CRT path signs with them (the path as it was before)."""
    creds = "[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
    _environment(tmp_path, monkeypatch, {}, None, creds)
    src = tmp_path / "f.bin"
    src.write_bytes(b"abc")
    b = S3Backend(
        seaweed_bucket,
        endpoint_url=seaweed_endpoint,
        path_style=True,
        policy=RetryPolicy(sleep=lambda s: None),
    )
    try:
        assert s3_env.from_environment(None) is None
        b.put("k", str(src), 3, {}, None)
        assert b.crt_requests == 1 and b.open("k").read() == b"abc"  # the read: botocore's
    finally:
        b.close()
