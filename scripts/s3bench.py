#!/usr/bin/env python3
"""S3 side of `scripts/bench.sh --s3`: a moto_server bucket holding a generated tree.

  s3bench.py start-moto --workdir DIR           # prints "PORT PID"; moto runs in its own session
  s3bench.py upload --endpoint URL --bucket B --prefix P --root TREE [--workers N]
  s3bench.py list --endpoint URL --bucket B --prefix P     # every key under P/, paginated (the floor);
                                                           # prints the count on stderr
  s3bench.py compare --reference GC_BLOBS --report REPORT_JSON

`upload` creates the bucket and PUTs every file under TREE as P/<path relative
to TREE> (content only), from a thread pool. `compare` checks that the blob
digests of `garbage-collect --dry-run` (one per line) and the report's
`garbage_blobs` are the same set; exit status 1 when they are not.
Credentials and the moto start-up are regenv.py's (this directory).
"""
import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import regenv  # noqa: E402


def client(endpoint, pool):
    import boto3
    from botocore.config import Config
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=regenv.ACCESS_KEY, aws_secret_access_key=regenv.SECRET_KEY,
        config=Config(max_pool_connections=pool, retries={"max_attempts": 10, "mode": "standard"}))


def start_moto(a):
    wd = os.path.abspath(a.workdir)
    os.makedirs(wd, exist_ok=True)
    port = regenv.free_port()
    log = open(os.path.join(wd, "moto.log"), "ab")
    moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                            env=regenv.clean_env(), start_new_session=True)
    try:
        regenv.wait_ready("http://127.0.0.1:%d/" % port, moto, "moto_server")
    except Exception:
        moto.kill()
        raise
    print(port, moto.pid)


def upload(a):
    root = os.path.abspath(a.root)
    prefix = a.prefix.strip("/")
    files = []
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            files.append((p, prefix + "/" + os.path.relpath(p, root)))
    s3 = client(a.endpoint, a.workers)
    try:
        s3.create_bucket(Bucket=a.bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    t = time.time()

    def put(item):
        path, key = item
        with open(path, "rb") as f:
            body = f.read()
        s3.put_object(Bucket=a.bucket, Key=key, Body=body)
        return len(body)

    nbytes = 0
    with ThreadPoolExecutor(a.workers) as ex:
        for i, n in enumerate(ex.map(put, files, chunksize=64), 1):
            nbytes += n
            if i % 20000 == 0:
                print("   %d/%d objects, %.0fs" % (i, len(files), time.time() - t), file=sys.stderr)
    dt = time.time() - t
    print("objects: %d" % len(files))
    print("bytes:   %d" % nbytes)
    print("upload:  %.1fs (%.0f objects/s, %d threads)" % (dt, len(files) / dt if dt else 0, a.workers))


def list_all(a):
    s3 = client(a.endpoint, 1)
    n = pages = 0
    for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=a.bucket, Prefix=a.prefix.strip("/") + "/"):
        pages += 1
        n += page.get("KeyCount", 0)
    # on stderr: bench.sh times this command and only counts its stdout
    print("%d objects in %d ListObjectsV2 pages" % (n, pages), file=sys.stderr)


def compare(a):
    with open(a.reference) as f:
        ref = {l.strip() for l in f if l.strip()}
    with open(a.report) as f:
        rs = {b["digest"] for b in json.load(f)["garbage_blobs"]}
    only_ref, only_rs = ref - rs, rs - ref
    if not only_ref and not only_rs:
        print("OK: the same %d garbage blobs" % len(ref))
        return 0
    print("MISMATCH: reference %d, regsweep %d garbage blobs; %d only in the reference, "
          "%d only in regsweep" % (len(ref), len(rs), len(only_ref), len(only_rs)))
    for d in sorted(only_ref)[:5]:
        print("  only reference: %s" % d)
    for d in sorted(only_rs)[:5]:
        print("  only regsweep:  %s" % d)
    return 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("start-moto")
    p.add_argument("--workdir", required=True)
    for name in ("upload", "list"):
        p = sub.add_parser(name)
        p.add_argument("--endpoint", required=True)
        p.add_argument("--bucket", required=True)
        p.add_argument("--prefix", required=True)
        if name == "upload":
            p.add_argument("--root", required=True)
            p.add_argument("--workers", type=int, default=16)
    p = sub.add_parser("compare")
    p.add_argument("--reference", required=True, help="garbage-collect blob digests, one per line")
    p.add_argument("--report", required=True, help="regsweep report --format json output")
    a = ap.parse_args()
    fn = {"start-moto": start_moto, "upload": upload, "list": list_all, "compare": compare}[a.cmd]
    sys.exit(fn(a) or 0)


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        print("s3bench: %s" % e, file=sys.stderr)
        sys.exit(1)
