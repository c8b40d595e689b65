#!/usr/bin/env python3
"""Write a realistic registry output stream (distribution 2.8) for benchmarks.

  gen_access_log.py --mb 64 --out registry.log [--formatter text|json|logstash] [--seed N]

Every request gives two lines, as a real registry prints them: the logrus app
line ("response completed", or "response completed with error" for 4xx) in
the chosen formatter, then the Apache combined access line. The mix: manifest
GETs and HEADs by tag and by digest of many repositories (nested names too),
blob GETs (the bulk of a pull), 404s, manifest PUTs, tags/list, the /v2/ ping,
plus noise: warnings, blank lines, now and then a garbage line.
Prints one JSON line to stdout: bytes, lines, manifest pulls, garbage lines.
Stdlib only; the same seed gives the same file.
"""
import argparse
import datetime
import json
import random
import sys
import uuid

AGENTS = [
    "containerd/1.7.13",
    "docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.1.0 os/linux arch/amd64 UpstreamClient(Docker-Client/24.0.7 \\(linux\\))",
    "skopeo/1.9.3",
    "cri-o/1.28.1 go/go1.20.10 os/linux arch/amd64",
    "Go-http-client/1.1",
    "trivy/0.48.0",
]
MANIFEST_TYPES = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
]


def logfmt_value(v):
    """logrus' text formatter quotes a value unless it is only [A-Za-z0-9-._/@^+]."""
    s = str(v)
    if s and all(c.isalnum() and c.isascii() or c in "-._/@^+" for c in s):
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def app_line(fmt, t, fields, msg, level):
    ts = t.strftime("%Y-%m-%dT%H:%M:%S.") + "%09dZ" % (t.microsecond * 1000 + 123)
    if fmt == "text":
        parts = ["time=%s" % logfmt_value(ts), "level=%s" % level, "msg=%s" % logfmt_value(msg)]
        parts += ["%s=%s" % (k, logfmt_value(v)) for k, v in sorted(fields.items())]
        return " ".join(parts)
    d = dict(fields)
    d["level"] = level
    if fmt == "json":
        d["msg"], d["time"] = msg, ts
    else:
        d["message"], d["@timestamp"], d["@version"] = msg, ts, "1"
    return json.dumps(d, sort_keys=True, separators=(",", ":"))


def combined_line(t, ip, method, uri, status, size, agent):
    agent = agent.replace("\\", "\\\\").replace('"', '\\"')
    return '%s - - [%s] "%s %s HTTP/1.1" %d %d "" "%s"' % (
        ip, t.strftime("%d/%b/%Y:%H:%M:%S +0000"), method, uri, status, size, agent)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=64, help="size to write, in MiB")
    ap.add_argument("--out", required=True)
    ap.add_argument("--formatter", choices=["text", "json", "logstash"], default="text")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    repos = ["app%d" % i for i in range(200)] + [
        "team-%d/svc/api-%d" % (i % 20, i) for i in range(300)]
    tags = ["latest", "v1", "v1.2.3", "stable", "2024-01-15", "main-abc1234"]
    digests = {r: ["sha256:%064x" % rnd.getrandbits(256) for _ in range(4)] for r in repos}
    t = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)
    limit = int(a.mb * (1 << 20))
    written = lines = pulls = garbage = 0
    with open(a.out, "w", encoding="utf-8", newline="\n") as f:
        buf = []
        while written < limit:
            t += datetime.timedelta(microseconds=rnd.randrange(1, 20000))
            roll = rnd.random()
            if roll < 0.002:
                out = [rnd.choice(["panic: runtime error: index out of range [3] with length 3",
                                   "goroutine 42 [running]:", "\x01\x02 garbage"])]
                garbage += 1
            elif roll < 0.01:
                out = [app_line(a.formatter, t, {"go.version": "go1.19.8"},
                                "error authorizing context: insufficient scope", "warning"), ""]
            else:
                repo = rnd.choice(repos)
                agent = rnd.choice(AGENTS)
                ip = "10.%d.%d.%d" % (rnd.randrange(256), rnd.randrange(256), rnd.randrange(1, 255))
                kind = rnd.random()
                method, status, ctype = "GET", 200, "application/octet-stream"
                size = rnd.randrange(500, 50_000_000)
                if kind < 0.30:
                    method = rnd.choice(["GET", "HEAD", "HEAD"])
                    ref = rnd.choice(tags) if rnd.random() < 0.7 else rnd.choice(digests[repo])
                    uri, ctype, size = "/v2/%s/manifests/%s" % (repo, ref), rnd.choice(MANIFEST_TYPES), rnd.randrange(400, 8000)
                    pulls += 2
                elif kind < 0.33:
                    uri, status = "/v2/%s/manifests/%s" % (repo, "nope-%d" % rnd.randrange(100)), 404
                    ctype, size = "application/json; charset=utf-8", 94
                elif kind < 0.35:
                    method, status, size = "PUT", 201, 0
                    uri = "/v2/%s/manifests/%s" % (repo, rnd.choice(tags))
                elif kind < 0.40:
                    uri, ctype, size = "/v2/%s/tags/list" % repo, "application/json; charset=utf-8", 80
                elif kind < 0.45:
                    uri, ctype, size = "/v2/", "application/json; charset=utf-8", 2
                else:
                    uri = "/v2/%s/blobs/sha256:%064x" % (repo, rnd.getrandbits(256))
                fields = {
                    "go.version": "go1.19.8",
                    "http.request.host": "registry.example.com",
                    "http.request.id": str(uuid.UUID(int=rnd.getrandbits(128))),
                    "http.request.method": method,
                    "http.request.remoteaddr": "%s:%d" % (ip, rnd.randrange(1024, 65535)),
                    "http.request.uri": uri,
                    "http.request.useragent": agent,
                    "http.response.contenttype": ctype,
                    "http.response.duration": "%.6fms" % (rnd.random() * 50),
                    "http.response.status": status,
                    "http.response.written": size,
                }
                if status >= 400:
                    fields["err.code"] = "manifest unknown"
                    fields["err.message"] = "manifest unknown"
                    msg, level = "response completed with error", "error"
                else:
                    msg, level = "response completed", "info"
                out = [app_line(a.formatter, t, fields, msg, level),
                       combined_line(t, ip, method, uri, status, size, agent)]
            for line in out:
                buf.append(line)
                written += len(line.encode("utf-8")) + 1
                lines += 1
            if len(buf) > 10000:
                f.write("\n".join(buf) + "\n")
                buf = []
        if buf:
            f.write("\n".join(buf) + "\n")
    json.dump({"bytes": written, "lines": lines, "manifest_pulls": pulls, "garbage": garbage},
              sys.stdout)
    print()


if __name__ == "__main__":
    main()
