#!/usr/bin/env python3
"""`regsweep report` on an S3 bucket whose every request waits a fixed
latency, at several latencies: wall time against the bound

    (requests / concurrency) x latency + (longest dependency chain) x latency

  latency_bench.py --endpoint http://127.0.0.1:PORT --url s3://BUCKET/PREFIX \\
      [--latencies 0,20,50] [--runs 3] [--chain 3] [--concurrency 64] [--bin target/release/regsweep]
  latency_bench.py --tree DIR --url s3://BUCKET/PREFIX [same options]

With --endpoint the store is behind scripts/latency_proxy.py; with --tree
(a tree made by gen_tree.py, its files the objects under PREFIX) it is
examples/fast_s3.rs serving DIR from memory and adding the latency itself
(built with `cargo build --release --example fast_s3` when --server-bin
is not there yet): tens of microseconds a request, where moto_server
scans the bucket for each listing page and the Python proxy costs about
a millisecond of CPU a request.

The requests are the report's own count (`summary.requests`). The chain
is the number of requests that must follow one another whatever the
concurrency: by default 3 (a listing page, a manifest, an index's child);
the listing's own steps (the names to cut at, the pages of a range one
after another), a tag's link before its manifest, or indexes of indexes
make it longer (BENCHMARKS.md counts 7 for gen_tree.py --repos 16). Credentials are regenv.py's. Prints one line per latency: the
median wall time of the runs, the bound, their ratio, and the requests.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import regenv  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--endpoint", help="the store, put behind latency_proxy.py")
    src.add_argument("--tree", help="serve this tree with examples/fast_s3.rs instead")
    ap.add_argument("--server-bin", default=os.path.join(HERE, "..", "target", "release", "examples",
                                                          "fast_s3"))
    ap.add_argument("--url", required=True)
    ap.add_argument("--latencies", default="0,20,50")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--chain", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "target", "release", "regsweep"))
    ap.add_argument("--extra", default="", help="more arguments for regsweep report")
    a = ap.parse_args()
    print("latency_ms  wall_s(median)  runs  bound_s  wall/bound  requests")
    for lat in [float(x) for x in a.latencies.split(",")]:
        if a.tree:
            bucket, _, prefix = a.url.split("://", 1)[1].partition("/")
            if not os.path.exists(a.server_bin):
                subprocess.run(["cargo", "build", "--release", "--example", "fast_s3"],
                               cwd=os.path.join(HERE, ".."), check=True)
            cmd = [a.server_bin, "--tree", a.tree, "--bucket", bucket, "--prefix", prefix]
        else:
            cmd = [sys.executable, os.path.join(HERE, "latency_proxy.py"), "--upstream", a.endpoint]
        proxy = subprocess.Popen(cmd + ["--latency-ms", str(lat)],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL if a.tree else None,
                                 text=True)
        try:
            port = int(proxy.stdout.readline())
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update(AWS_ACCESS_KEY_ID=regenv.ACCESS_KEY, AWS_SECRET_ACCESS_KEY=regenv.SECRET_KEY,
                       AWS_REGION="us-east-1", AWS_ENDPOINT_URL="http://127.0.0.1:%d" % port,
                       AWS_ALLOW_HTTP="true")
            walls, req = [], None
            for _ in range(a.runs):
                with tempfile.NamedTemporaryFile(suffix=".json") as out:
                    t = time.monotonic()
                    r = subprocess.run([a.bin, "report", a.url, "--format", "json", "-o", out.name,
                                        "--concurrency", str(a.concurrency)] + a.extra.split(),
                                       env=env, stderr=subprocess.PIPE, text=True)
                    walls.append(time.monotonic() - t)
                    if r.returncode not in (0, 1):
                        sys.exit("regsweep failed: %s" % r.stderr)
                    req = json.load(open(out.name))["summary"]["requests"]
        finally:
            proxy.terminate()
            proxy.wait()
        wall = statistics.median(walls)
        bound = (req["total"] / a.concurrency + a.chain) * lat / 1000
        ratio = "%.1f" % (wall / bound) if bound > 0 else "-"
        print("%10g  %14.3f  %4d  %7.3f  %10s  %d (%d LIST, %d GET, %d HEAD)" % (
            lat, wall, len(walls), bound, ratio, req["total"], req["list"], req["get"],
            req["head"]))


if __name__ == "__main__":
    main()
