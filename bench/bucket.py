"""Make or drop a bucket for the A/B scripts, as bench/run.py does:

    python bench/bucket.py new|drop BUCKET ENDPOINT

``new`` writes one object outside the tools' prefix (SeaweedFS allocates a bucket's volumes on
its first write, which no tool should be charged for); ``drop`` deletes every object, then the
bucket (SeaweedFS gives each bucket volumes of its own, and runs out of them after a few dozen
buckets kept: then it answers every PUT with 500 InternalError)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")

import run  # bench/run.py, beside this file

if __name__ == "__main__":
    op, bucket, endpoint = sys.argv[1:4]
    client = run.s3_client(endpoint)
    if op == "new":
        run.new_bucket(client, bucket)
    elif op == "drop":
        run.drop_bucket(client, bucket)
    else:
        sys.exit(f"unknown operation {op!r}: new or drop")
