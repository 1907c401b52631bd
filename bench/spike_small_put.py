"""Spike: CPU seconds per 4 KiB PUT through botocore, awscrt's S3Client and obstore.

    python bench/spike_small_put.py http://127.0.0.1:PORT [N]

Each client puts N objects of 4 KiB (default 2,000) into a fresh bucket; prints wall and the
process's CPU (user+sys) for that phase alone, and CPU per request. Credentials: testing/testing.

Measured 2026-12-03 against SeaweedFS on the 2 shared cores (two runs, CPU ms per request):
botocore, 8 threads 3.18 / 2.59; awscrt S3Client, 8 threads each blocking on its request (what
hoard does) 0.61 / 0.38; awscrt, 64 in flight from one thread 0.22 / 0.21; obstore put_async, 16
in flight 0.47 / 0.33. Hence awscrt for hoard's small-object path.

2026-12-03, later: with the CRT's threads keeping their Python thread state (crt8tk) instead of
CPython making and freeing one, with a 16 KiB frame stack, on every callback, the PUTs from 8
threads took 0.48 s of CPU against 0.60 (medians of 12 interleaved runs each of a variant of
this script; one run of this script: 0.60 against 0.82).
"""

from __future__ import annotations

import base64
import concurrent.futures as cf
import hashlib
import os
import resource
import sys
import threading
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

import boto3

ENDPOINT = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
DATA = os.urandom(4096)
MD5 = base64.b64encode(hashlib.md5(DATA).digest()).decode()


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def bucket() -> str:
    name = f"spike-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1").create_bucket(Bucket=name)
    return name


def timed(label: str, fn: Callable[[str], None]) -> None:
    b = bucket()
    c0, t0 = cpu(), time.perf_counter()
    fn(b)
    c1, t1 = cpu(), time.perf_counter()
    print(
        f"{label:40s} wall {t1 - t0:6.2f} s  CPU {c1 - c0:6.2f} s  {1e3 * (c1 - c0) / N:.2f} ms/req"
    )


def botocore_threads(b: str) -> None:
    from botocore.config import Config

    local = threading.local()

    def client():  # type: ignore[no-untyped-def]
        if not hasattr(local, "c"):
            local.c = boto3.session.Session().client(
                "s3",
                endpoint_url=ENDPOINT,
                region_name="us-east-1",
                config=Config(
                    s3={"addressing_style": "path"},
                    retries={"total_max_attempts": 1},
                    request_checksum_calculation="when_required",
                ),
            )
        return local.c

    def put(i: int) -> None:
        client().put_object(
            Bucket=b,
            Key=f"p/{i}",
            Body=DATA,
            ContentMD5=MD5,
            Metadata={"hoard-hash": "x" * 40, "hoard-mtime": "1"},
            StorageClass="STANDARD",
        )

    with cf.ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(N)))


def crt(in_flight: int, threads: bool, keep: bool = False) -> Callable[[str], None]:
    kept: set[int] = set()

    def keep_state() -> None:  # what hoard.backends.s3_crt._keep_thread_state does
        if keep and threading.get_ident() not in kept:
            import ctypes

            kept.add(threading.get_ident())
            ctypes.pythonapi.PyGILState_Ensure()

    def run(b: str) -> None:
        from awscrt import auth, http, io, s3

        u = urlsplit(ENDPOINT)
        elg = io.EventLoopGroup(1)
        boot = io.ClientBootstrap(elg, io.DefaultHostResolver(elg))
        creds = auth.AwsCredentialsProvider.new_static("testing", "testing")
        cfg = s3.create_default_s3_signing_config(region="us-east-1", credential_provider=creds)
        client = s3.S3Client(
            bootstrap=boot,
            region="us-east-1",
            signing_config=cfg,
            tls_mode=s3.S3RequestTlsMode.DISABLED,
            retry_config=s3.S3RetryConfig(retry_mode=s3.S3RetryMode.NONE),
        )
        host = f"{u.hostname}:{u.port}"

        def start(i: int) -> object:
            headers = http.HttpHeaders(
                [
                    ("Host", host),
                    ("Content-Length", str(len(DATA))),
                    ("Content-MD5", MD5),
                    ("x-amz-meta-hoard-hash", "x" * 40),
                    ("x-amz-meta-hoard-mtime", "1"),
                    ("x-amz-storage-class", "STANDARD"),
                ]
            )
            import io as pyio

            req = http.HttpRequest("PUT", f"/{b}/p/{i}", headers, pyio.BytesIO(DATA))
            got: dict[str, object] = {}

            def on_headers(status_code: int, headers: list[tuple[str, str]], **kw: object) -> None:
                keep_state()
                got["etag"] = dict((k.lower(), v) for k, v in headers).get("etag")

            r = client.make_request(
                type=s3.S3RequestType.DEFAULT,
                operation_name="PutObject",
                request=req,
                on_headers=on_headers,
            )
            return r

        if threads:
            sem = threading.BoundedSemaphore(in_flight)

            def put(i: int) -> None:
                with sem:
                    start(i).finished_future.result()  # type: ignore[attr-defined]

            with cf.ThreadPoolExecutor(in_flight) as pool:
                list(pool.map(put, range(N)))
        else:
            pending: list[object] = []
            for i in range(N):
                pending.append(start(i))
                if len(pending) >= in_flight:
                    pending.pop(0).finished_future.result()  # type: ignore[attr-defined]
            for r in pending:
                r.finished_future.result()  # type: ignore[attr-defined]

    return run


def obstore_async(b: str) -> None:
    import asyncio

    from obstore.store import S3Store

    store = S3Store(
        b,
        endpoint=ENDPOINT,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )
    import obstore

    async def main() -> None:
        sem = asyncio.Semaphore(16)

        async def one(i: int) -> None:
            async with sem:
                await obstore.put_async(store, f"p/{i}", DATA)

        await asyncio.gather(*(one(i) for i in range(N)))

    asyncio.run(main())


if __name__ == "__main__":
    which = sys.argv[3:] or ["botocore", "crt8t", "crt16", "crt64", "obstore"]
    runs = {
        "botocore": ("botocore put_object, 8 threads", botocore_threads),
        "crt8t": ("awscrt S3Client, 8 threads blocking", crt(8, True)),
        "crt8tk": ("awscrt, 8 threads, CRT threads keep state", crt(8, True, keep=True)),
        "crt16": ("awscrt S3Client, 16 in flight, 1 thread", crt(16, False)),
        "crt64": ("awscrt S3Client, 64 in flight, 1 thread", crt(64, False)),
        "obstore": ("obstore put_async, 16 in flight", obstore_async),
    }
    for w in which:
        timed(*runs[w])
