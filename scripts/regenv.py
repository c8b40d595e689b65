#!/usr/bin/env python3
"""Start/stop the real reference registry (docker-registry serve) for tests and demos.

  regenv.py start --backend fs|s3 --workdir DIR   # prints the env as JSON, writes DIR/env.json
  regenv.py stop --workdir DIR                    # stops what `start` started
  regenv.py env --workdir DIR                     # prints shell exports for regsweep (S3 creds)

Filesystem: the registry's rootdirectory is DIR/root.
S3: a moto_server is started on another free 127.0.0.1 port, bucket "registry"
is created, and the registry's rootdirectory is /regsweep/prefix.
The config is DIR/config.yml (pass it to `docker-registry garbage-collect`).
Stdlib only.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ACCESS_KEY = "regsweeptest"
SECRET_KEY = "regsweeptestsecret"
BUCKET = "registry"
S3_ROOT = "/regsweep/prefix"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http_status(method, url, timeout=2):
    r = urllib.request.Request(url, method=method, data=b"" if method == "PUT" else None)
    try:
        with urllib.request.urlopen(r, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def wait_ready(url, proc, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s before it was ready" % (what, proc.returncode))
        if http_status("GET", url) == 200:
            return
        time.sleep(0.1)
    raise RuntimeError("%s not ready at %s after %ss" % (what, url, timeout))


def registry_config(port, backend, root=None, s3_port=None):
    if backend == "fs":
        storage = "  filesystem:\n    rootdirectory: %s\n" % root
    else:
        storage = ("  s3:\n"
                   "    accesskey: %s\n    secretkey: %s\n    region: us-east-1\n"
                   "    regionendpoint: http://127.0.0.1:%d\n    bucket: %s\n"
                   "    rootdirectory: %s\n    secure: false\n    v4auth: true\n"
                   % (ACCESS_KEY, SECRET_KEY, s3_port, BUCKET, S3_ROOT))
    return ("version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            "storage:\n" + storage +
            "  delete:\n    enabled: true\n"
            "  maintenance:\n    uploadpurging:\n      enabled: false\n"
            "http:\n  addr: 127.0.0.1:%d\n  secret: regsweep-test-secret\n" % port)


def clean_env():
    env = dict(os.environ)
    env.pop("AWS_CA_BUNDLE", None)  # the registry's S3 driver panics on it
    return env


def start(a):
    wd = os.path.abspath(a.workdir)
    os.makedirs(wd, exist_ok=True)
    state = {"backend": a.backend, "workdir": wd, "pids": []}
    log = open(os.path.join(wd, "processes.log"), "ab")
    procs = []
    try:
        s3_port = None
        if a.backend == "s3":
            s3_port = free_port()
            moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(s3_port)],
                                    stdout=log, stderr=log, env=clean_env(),
                                    start_new_session=True)
            procs.append(moto)
            state["pids"].append(moto.pid)
            wait_ready("http://127.0.0.1:%d/" % s3_port, moto, "moto_server")
            st = http_status("PUT", "http://127.0.0.1:%d/%s" % (s3_port, BUCKET))
            if st != 200:
                raise RuntimeError("creating bucket: HTTP %s" % st)
            state.update({"s3_port": s3_port, "s3_endpoint": "http://127.0.0.1:%d" % s3_port,
                          "bucket": BUCKET, "rootdirectory": S3_ROOT,
                          "url": "s3://%s%s" % (BUCKET, S3_ROOT),
                          "access_key": ACCESS_KEY, "secret_key": SECRET_KEY})
        else:
            root = os.path.join(wd, "root")
            os.makedirs(root, exist_ok=True)
            state.update({"rootdirectory": root, "url": root})
        port = free_port()
        cfg = os.path.join(wd, "config.yml")
        with open(cfg, "w") as f:
            f.write(registry_config(port, a.backend, state.get("rootdirectory"), s3_port))
        reg = subprocess.Popen(["docker-registry", "serve", cfg], stdout=log, stderr=log,
                               env=clean_env(), start_new_session=True)
        procs.append(reg)
        state["pids"].append(reg.pid)
        wait_ready("http://127.0.0.1:%d/v2/" % port, reg, "docker-registry")
        state.update({"port": port, "registry": "127.0.0.1:%d" % port, "config": cfg})
    except Exception:
        for p in procs:
            p.kill()
        raise
    with open(os.path.join(wd, "env.json"), "w") as f:
        json.dump(state, f, indent=2)
    print(json.dumps(state, indent=2))


def stop(a):
    path = os.path.join(os.path.abspath(a.workdir), "env.json")
    try:
        with open(path) as f:
            state = json.load(f)
    except FileNotFoundError:
        return
    for pid in reversed(state.get("pids", [])):
        try:
            os.killpg(pid, signal.SIGTERM)  # started with start_new_session
        except ProcessLookupError:
            continue
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    os.rename(path, path + ".stopped")


def env(a):
    with open(os.path.join(os.path.abspath(a.workdir), "env.json")) as f:
        s = json.load(f)
    if s["backend"] == "s3":
        print("export AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_REGION=us-east-1 "
              "AWS_ENDPOINT_URL=%s AWS_ALLOW_HTTP=true; unset AWS_CA_BUNDLE"
              % (s["access_key"], s["secret_key"], s["s3_endpoint"]))
    print("# storage: %s\n# config: %s\n# registry: %s" % (s["url"], s["config"], s["registry"]))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("start")
    p.add_argument("--backend", choices=["fs", "s3"], default="fs")
    p.add_argument("--workdir", required=True)
    p = sub.add_parser("stop")
    p.add_argument("--workdir", required=True)
    p = sub.add_parser("env")
    p.add_argument("--workdir", required=True)
    a = ap.parse_args()
    {"start": start, "stop": stop, "env": env}[a.cmd](a)


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        print("regenv: %s" % e, file=sys.stderr)
        sys.exit(1)
