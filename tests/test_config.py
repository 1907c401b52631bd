"""hoard.toml: broken files and the messages they give (file, line, key, what is expected),
${ENV} references, credentials refused, where the file is found, and the example `hoard init`
writes loading as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from hoard.config import find_config, load_config, user_config_path
from hoard.errors import ConfigError
from hoard.starter import example_config

GOOD_REMOTE = '[remotes.nas]\nurl = "/mnt/nas/archive"\n'
GOOD_WORKFLOW = '[workflows.photos]\nsources = ["~/Pictures"]\nto = "nas"\n'

# (the file, the line the error names or None, what the message must say)
BROKEN: list[tuple[str, int | None, str]] = [
    ("[workflows.a\nsources = [", 1, "not valid TOML: "),
    ('[remote.nas]\nurl = "/x"\n', 1,
     "remote: unknown table; a hoard.toml has [remotes.NAME] and [workflows.NAME] tables"),
    ('catalog = "/x"\n' + GOOD_REMOTE, 1, "catalog: unknown key"),
    ("[remotes.nas]\nregion = \"eu\"\n", 1,
     "remotes.nas: missing key url (file:///path, a path, or s3://bucket/prefix)"),
    (GOOD_REMOTE + 'bucket = "b"\n', 3,
     "remotes.nas.bucket: unknown key; expected one of url, endpoint_url, profile, region, "
     "path_style"),
    ('[remotes.r2]\nurl = "s3://b/p"\nsecret_access_key = "abc"\n', 3,
     "remotes.r2.secret_access_key: credentials are never stored in hoard.toml; hoard takes "
     "credentials only from the standard chain: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
    (GOOD_REMOTE + GOOD_WORKFLOW + 'password = "hunter2"\n', 6,
     "workflows.photos.password: credentials are never stored in hoard.toml"),
    ('[remotes.r2]\nurl = "s3://b/p"\nendpoint_url = "https://key:s3cret@r2.example"\n', 3,
     "remotes.r2.endpoint_url: expected an http(s)://host[:port] URL; credentials never go in "
     "a URL"),
    ('[remotes.r2]\nurl = "s3://key:s3cret@bucket/p"\n', 2,
     "remotes.r2.url: credentials never go in a URL"),
    ('[remotes.az]\nurl = "az://media/v"\naccount_url = "https://acct.blob.core.windows.net/?sv=1"\n',
     3, "remotes.az.account_url: expected https://ACCOUNT.blob.core.windows.net (no credentials); "
     "a SAS token goes in AZURE_STORAGE_SAS_TOKEN"),
    ('[remotes.az]\nurl = "az://media/v"\nsas_token = "sv=1"\n', 3,
     "remotes.az.sas_token: credentials are never stored in hoard.toml"),
    ('[remotes.nas]\nurl = "ftp://host/x"\n', 2,
     "remotes.nas.url: ftp://host/x: unknown scheme 'ftp'; supported: file, s3"),
    (GOOD_REMOTE + '[workflows.photos]\nto = "nas"\n', 3, "workflows.photos: missing key sources"),
    (GOOD_REMOTE + '[workflows.photos]\nsources = "~/Pictures"\nto = "nas"\n', 4,
     "workflows.photos.sources: expected a list of paths or patterns, or of "
     '{ pattern = "...", base = "..." } tables, got the string "~/Pictures"'),
    (GOOD_REMOTE + '[workflows.photos]\nsources = [{ base = "~" }]\nto = "nas"\n', 4,
     "workflows.photos.sources[0].pattern: expected a path or glob pattern (a string)"),
    (GOOD_REMOTE + '[workflows.photos]\nsources = [{ pattern = "~/P", bsae = "~" }]\nto = "nas"\n',
     4, "workflows.photos.sources[0].bsae: unknown key; expected one of pattern, base"),
    (GOOD_REMOTE + '[workflows.photos]\nsources = ["~/P"]\nto = "nsa"\n', 5,
     "workflows.photos.to: no remote named 'nsa' (remotes: nas); name a [remotes.NAME] or give "
     "a URL"),
    (GOOD_REMOTE + GOOD_WORKFLOW + 'tier = "deep_archive"\n', 6,
     "workflows.photos.tier: expected one of standard; got 'deep_archive'"),
    (GOOD_REMOTE + GOOD_WORKFLOW + 'mode = "mirror"\n', 6,
     'workflows.photos.mode: expected "push" or "sync", got "mirror"'),
    (GOOD_REMOTE + GOOD_WORKFLOW + 'schedule = "0 25 * * *"\n', 6,
     "workflows.photos.schedule: '0 25 * * *' is not a valid cron schedule (minute 0-59, hour "
     "0-23"),
    (GOOD_REMOTE + GOOD_WORKFLOW + 'schedule = "0 2 * *"\n', 6,
     "workflows.photos.schedule: a cron schedule has 5 fields (minute hour day month weekday), "
     "like '0 2 * * *'; got 4"),
    (GOOD_REMOTE + GOOD_WORKFLOW + 'schedule = "@reboot"\n', 6,
     "workflows.photos.schedule: unknown schedule macro '@reboot'"),
    (GOOD_REMOTE + GOOD_WORKFLOW + 'timezone = "Mars/Olympus_Mons"\n', 6,
     "workflows.photos.timezone: unknown time zone 'Mars/Olympus_Mons' (expected a name like "
     "Europe/Berlin)"),
    (GOOD_REMOTE + GOOD_WORKFLOW + 'workers = "8"\n', 6,
     'workflows.photos.workers: expected a whole number, got the string "8"'),
    (GOOD_REMOTE + GOOD_WORKFLOW + "workers = 0\n", 6,
     "workflows.photos.workers: expected a number from 1 to 256, got 0"),
    (GOOD_REMOTE + GOOD_WORKFLOW + 'keep_awake = "yes"\n', 6,
     'workflows.photos.keep_awake: expected true or false, got the string "yes"'),
    (GOOD_REMOTE + GOOD_WORKFLOW + 'include = "*.jpg"\n', 6,
     'workflows.photos.include: expected a list of strings, got the string "*.jpg"'),
    (GOOD_REMOTE + GOOD_WORKFLOW + 'template = "photos/{nope}"\n', 6,
     "workflows.photos.template: template 'photos/{nope}': unknown variable {nope}"),
    (GOOD_REMOTE + GOOD_WORKFLOW + 'multipart_threshold = "lots"\n', 6,
     "workflows.photos.multipart_threshold: 'lots' is not a size"),
    (GOOD_REMOTE + GOOD_WORKFLOW + "delete = true\n", 6,
     'workflows.photos.delete: only for mode = "sync"'),
    (GOOD_REMOTE + GOOD_WORKFLOW + 'schedul = "0 2 * * *"\n', 6,
     "workflows.photos.schedul: unknown key; expected one of description, sources, base, to"),
    (GOOD_REMOTE + '[workflows.p]\nsources = ["~/a", "~/b"]\nto = "nas"\nmode = "sync"\n', 4,
     'workflows.p.sources: mode = "sync" mirrors one folder; got 2 sources'),
    (GOOD_REMOTE + GOOD_WORKFLOW + 'mode = "sync"\nmax_delete = "lots"\n', 7,
     "workflows.photos.max_delete: --max-delete 'lots': give a percentage (20%) or a count (50)"),
    ('[remotes.r2]\nurl = "s3://${HOARD_TEST_UNSET_BUCKET}/backup"\n', 2,
     "remotes.r2.url: the environment variable HOARD_TEST_UNSET_BUCKET (used as "
     "${HOARD_TEST_UNSET_BUCKET}) is not set"),
    ('[remotes.r2]\nurl = "s3://${BUCKET/backup"\n', 2,
     "remotes.r2.url: an unterminated ${...} reference"),
    ('[workflows."my photos"]\nsources = ["~/P"]\nto = "/x"\n', 1,
     "workflows.my photos: a name has letters, digits, '-' and '_'"),
    ('[workflows]\nphotos = "~/Pictures"\n', 2,
     "workflows.photos: expected a table, got the string"),
]


@pytest.mark.parametrize(("text", "line", "message"), BROKEN,
                         ids=[m.split(":")[0][:40] + f"-{i}" for i, (_, _, m) in enumerate(BROKEN)])
def test_a_broken_config_names_the_file_line_key_and_what_is_expected(
        tmp_path: Path, text: str, line: int | None, message: str) -> None:
    path = tmp_path / "hoard.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), {"HOME": str(tmp_path)})
    where = f"{path}:{line}: " if line else f"{path}: "
    assert str(caught.value).startswith(where), str(caught.value)
    assert message in str(caught.value)
    assert caught.value.exit_code == 2
    assert "hoard init" in caught.value.hint


def test_env_references_are_expanded_and_paths_resolved(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "hoard.toml"
    path.parent.mkdir()
    path.write_text(
        '[remotes.r2]\nurl = "s3://${BUCKET}/backup"\n'
        'endpoint_url = "https://${ACCOUNT}.r2.cloudflarestorage.com"\nprofile = "r2"\n'
        '[workflows.photos]\n'
        'sources = [{ pattern = "~/Pictures/**/*.{jpg,heic}", base = "~/Pictures" }, "docs"]\n'
        'to = "r2"\ntier = "deep_archive"\nschedule = "@daily"\ntimezone = "Europe/Berlin"\n'
        'skip_paths = ["docs/tmp"]\nmultipart_threshold = "128MiB"\npart_size = 8388608\n')
    config = load_config(str(path), {"BUCKET": "family", "ACCOUNT": "abc123",
                                     "HOME": str(tmp_path)})
    wf = config.workflow("photos")
    home = str(Path("~").expanduser())
    assert wf.remote.url == "s3://family/backup"
    assert wf.remote.endpoint_url == "https://abc123.r2.cloudflarestorage.com"
    assert (wf.remote.name, wf.remote.profile) == ("r2", "r2")
    assert [(s.pattern, s.base) for s in wf.sources] == [
        (f"{home}/Pictures/**/*.{{jpg,heic}}", f"{home}/Pictures"),
        (str(path.parent / "docs"), None)]
    assert wf.skip_paths == (str(path.parent / "docs/tmp"),)
    assert (wf.tier, wf.schedule, wf.timezone) == ("deep_archive", "@daily", "Europe/Berlin")
    assert (wf.multipart_threshold, wf.part_size) == (128 << 20, 8 << 20)
    with pytest.raises(ConfigError, match="no workflow named 'videos' \\(defined: photos\\)"):
        config.workflow("videos")


def test_a_workflow_may_name_a_url_instead_of_a_remote(tmp_path: Path) -> None:
    path = tmp_path / "hoard.toml"
    path.write_text('[workflows.w]\nsources = ["src"]\nto = "archive"\n')
    with pytest.raises(ConfigError, match="no remote named 'archive' \\(remotes: none defined\\)"):
        load_config(str(path), {})
    path.write_text('[workflows.w]\nsources = ["src"]\nto = "./archive"\n')
    assert load_config(str(path), {}).workflow("w").remote.url == str(tmp_path / "archive")


def test_the_config_is_found_here_then_in_the_config_folder_or_where_told(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    here = tmp_path / "here"
    here.mkdir()
    with pytest.raises(ConfigError, match=r"no hoard.toml in the current folder .* `hoard init`"):
        find_config(None, str(here))
    user = Path(user_config_path())
    assert user == tmp_path / "xdg" / "hoard" / "hoard.toml"
    user.parent.mkdir(parents=True)
    user.write_text("")
    assert find_config(None, str(here)) == str(user)
    (here / "hoard.toml").write_text("")
    assert find_config(None, str(here)) == str(here / "hoard.toml")
    other = tmp_path / "other.toml"
    other.write_text("")
    assert find_config(str(other), str(here)) == str(other)
    with pytest.raises(ConfigError, match=r"missing\.toml: no such configuration file"):
        find_config(str(tmp_path / "missing.toml"), str(here))


def test_the_init_example_loads_and_names_its_folders(tmp_path: Path) -> None:
    path = tmp_path / "hoard.toml"
    path.write_text(example_config("~/Documents", "~/hoard-archive"))
    config = load_config(str(path), {})
    wf = config.workflow("example")
    home = str(Path("~").expanduser())
    assert wf.sources[0].pattern == f"{home}/Documents"
    assert wf.remote.url == f"{home}/hoard-archive"
    assert wf.skip_paths == (f"{home}/hoard-archive",)
    assert wf.schedule == "0 2 * * *"
    assert list(config.remotes) == ["local"]


def test_the_environment_decides_what_the_file_leaves_open_and_the_snapshot_records_it(
        tmp_path: Path) -> None:
    from hoard.workflows import from_snapshot, resolve, snapshot

    path = tmp_path / "hoard.toml"
    path.write_text('[remotes.s3]\nurl = "s3://b/p"\nprofile = "mine"\n'
                    '[remotes.az]\nurl = "az://media/v"\n'
                    '[workflows.a]\nsources = ["src"]\nto = "s3"\n'
                    '[workflows.b]\nsources = ["src"]\nto = "az"\n')
    config = load_config(str(path), {})
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_PROFILE": "other",
           "AWS_REGION": "eu-west-1", "AZURE_STORAGE_ACCOUNT_URL": "https://acct.blob.core.windows.net",
           "AWS_SECRET_ACCESS_KEY": "never-recorded"}
    a = resolve(config.workflow("a"), env)
    assert (a.remote.endpoint_url, a.remote.profile, a.remote.region) == (
        "http://127.0.0.1:9000", "mine", "eu-west-1")  # the file's profile wins
    b = resolve(config.workflow("b"), env)
    assert b.remote.account_url == "https://acct.blob.core.windows.net"
    for wf in (a, b):
        doc = snapshot(wf, "manual", str(path))
        assert "never-recorded" not in str(doc)
        assert from_snapshot(1, doc) == wf
