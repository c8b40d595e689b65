#!/usr/bin/env python3
"""Push images into a running reference registry while a removal runs, reusing
what the removal's plan removes, the way clients do.

Stdlib only (the registry client of push_scenario.py). Seeded: the same seed
makes the same choices in the same order (when they happen depends on the
registry and the removal).

Usage: push_during.py --registry 127.0.0.1:PORT [--root ROOTDIR] --plan PLAN.json
                      --seed N --until STOPFILE --out PUSHES.json

The bytes of what the plan removes are read from the registry's filesystem
(--root) or, without it, through the registry (a blob from a repository
whose layer link names it, a manifest from its repository), before any push.

Each push is one of:
  * mount     a blob the plan removes, mounted from a repository whose layer
              link the plan removes (POST ?mount=&from=; when the registry
              answers 202 instead, the bytes are uploaded as a client does)
  * reupload  the bytes of a blob the plan removes, uploaded again (the
              registry only links the blob it already has)
  * headskip  HEAD of a blob the plan removes in a repository whose layer
              link the plan removes; uploaded only when the HEAD says 404
              (what `docker push` does)
  * retag     a manifest the plan removes, PUT again under a new tag (what
              `crane tag` does)
  * new       an image made of new blobs
then a manifest PUT by a new tag. A push counts as acknowledged when the
registry answered 201 to its manifest PUT; everything else is a failed push
(a client retries it). The output lists the acknowledged pushes (repository,
tag, kind), the failed ones, and every digest that was reused.
"""
import argparse
import json
import os
import random
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from push_scenario import (  # noqa: E402
    ACCEPT,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    Registry,
    sha256,
)

V2 = "docker/registry/v2"


def blob_bytes(reg, root, digest, repos):
    """The bytes of a blob: from the filesystem, or through the registry
    from one of `repos` ((repository, "blobs"|"manifests") pairs)."""
    if root:
        hexd = digest.split(":", 1)[1]
        path = os.path.join(root, V2, "blobs", "sha256", hexd[:2], hexd, "data")
        with open(path, "rb") as f:
            return f.read()
    for repo, kind in repos:
        headers = {"Accept": ACCEPT} if kind == "manifests" else {}
        try:
            status, h, body = reg.req("GET", "/v2/%s/%s/%s" % (repo, kind, digest),
                                      headers=headers, ok=(200, 307))
            if status == 307:
                # The S3 driver redirects a blob GET to the store itself.
                _, _, body = reg.req("GET", h["Location"], ok=(200,))
        except RuntimeError:
            continue
        if sha256(body) == digest:
            return body
    raise OSError("cannot read %s" % digest)


def actions_of(plan):
    if "actions" in plan:
        return plan["actions"]
    return plan["plan"]["actions"]


class Pusher:
    def __init__(self, reg, root, plan, seed):
        self.reg = reg
        self.rng = random.Random(seed)
        acts = actions_of(plan)
        where = {}
        for a in acts:
            if a["kind"] in ("layer_link", "revision"):
                kind = "blobs" if a["kind"] == "layer_link" else "manifests"
                where.setdefault(a["digest"], []).append((a["repository"], kind))
        self.blobs = {}
        for a in acts:
            if a["kind"] == "blob":
                try:
                    self.blobs[a["digest"]] = blob_bytes(reg, root, a["digest"],
                                                         where.get(a["digest"], []))
                except OSError:
                    pass
        # (repository, digest) of layer links the plan removes, whose blob
        # it removes too and whose bytes we hold.
        self.links = [(a["repository"], a["digest"]) for a in acts
                      if a["kind"] == "layer_link" and a["digest"] in self.blobs]
        # Manifests the plan removes (revision links), with their bytes.
        self.manifests = []
        for a in acts:
            if a["kind"] == "revision" and a["digest"] in self.blobs:
                body = self.blobs[a["digest"]]
                try:
                    mt = json.loads(body).get("mediaType") or OCI_MANIFEST
                except ValueError:
                    continue
                self.manifests.append((a["repository"], a["digest"], body, mt))
        self.repos = sorted({r for r, _ in self.links} | {r for r, _, _, _ in self.manifests}) \
            or ["pushed"]
        self.acked = []
        self.failed = []
        self.reused = set()
        self.n = 0

    def upload(self, repo, digest):
        self.reg.push_blob(repo, self.blobs[digest])

    def image(self, repo, layer_digests, kind):
        """A config of its own and the given layers; PUT by a new tag."""
        cfg = json.dumps({"architecture": "amd64", "os": "linux",
                          "rootfs": {"type": "layers",
                                     "diff_ids": [sha256(d.encode()) for d in layer_digests]},
                          "config": {"Env": ["PUSH=%d-%s" % (self.n, kind)]}},
                         sort_keys=True).encode()
        cfg_d = self.reg.push_blob(repo, cfg)
        body = json.dumps({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": len(cfg), "digest": cfg_d},
            "layers": [{"mediaType": OCI_LAYER, "size": len(self.blobs[d]), "digest": d}
                       for d in layer_digests],
        }, indent=3).encode()
        tag = "p%d-%s" % (self.n, kind)
        self.reg.put_manifest(repo, tag, body, OCI_MANIFEST)
        return tag

    def one(self):
        self.n += 1
        kinds = ["new"]
        if self.links:
            kinds += ["mount", "headskip"]
        if self.blobs:
            kinds.append("reupload")
        if self.manifests:
            kinds.append("retag")
        kind = self.rng.choice(kinds)
        repo = self.rng.choice(self.repos)
        try:
            if kind == "new":
                data = bytes(self.rng.getrandbits(8) for _ in range(700))
                d = sha256(data)
                self.blobs[d] = data
                self.reg.push_blob(repo, data)
                tag = self.image(repo, [d], kind)
            elif kind == "mount":
                src, d = self.rng.choice(self.links)
                dst = self.rng.choice([r for r in self.repos if r != src] or ["pushed"])
                repo = dst
                self.reused.add(d)
                status, h, _ = self.reg.req(
                    "POST", "/v2/%s/blobs/uploads/?mount=%s&from=%s"
                    % (dst, urllib.parse.quote(d), urllib.parse.quote(src)),
                    data=b"", headers={"Content-Length": "0"}, ok=(201, 202))
                if status == 202:
                    loc = self.reg.location(h)
                    sep = "&" if "?" in loc else "?"
                    self.reg.req("PUT", loc + sep + "digest=" + urllib.parse.quote(d),
                                 data=self.blobs[d],
                                 headers={"Content-Type": "application/octet-stream",
                                          "Content-Length": str(len(self.blobs[d]))},
                                 ok=(201,))
                tag = self.image(dst, [d], kind)
            elif kind == "reupload":
                d = self.rng.choice(sorted(self.blobs))
                self.reused.add(d)
                self.upload(repo, d)
                tag = self.image(repo, [d], kind)
            elif kind == "headskip":
                repo, d = self.rng.choice(self.links)
                self.reused.add(d)
                status, _, _ = self.reg.req("HEAD", "/v2/%s/blobs/%s" % (repo, d), ok=(200, 404))
                if status == 404:
                    self.upload(repo, d)
                tag = self.image(repo, [d], kind)
            else:
                repo, d, body, mt = self.rng.choice(self.manifests)
                self.reused.add(d)
                for ref in json.loads(body).get("layers", []) + [json.loads(body).get("config")]:
                    if ref and ref.get("digest"):
                        self.reused.add(ref["digest"])
                for c in json.loads(body).get("manifests", []):
                    self.reused.add(c["digest"])
                tag = "p%d-%s" % (self.n, kind)
                self.reg.put_manifest(repo, tag, body, mt)
        except RuntimeError as e:
            self.failed.append({"repository": repo, "kind": kind, "error": str(e)[:300]})
            return
        self.acked.append({"repository": repo, "tag": tag, "kind": kind})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--registry", required=True)
    ap.add_argument("--root", help="the registry's rootdirectory (filesystem driver)")
    ap.add_argument("--plan", required=True, help="the removal's plan (JSON)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--until", required=True, help="stop once this file exists")
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    with open(a.plan) as f:
        plan = json.load(f)
    p = Pusher(Registry(a.registry), a.root, plan, a.seed)
    start = time.time()
    while not os.path.exists(a.until) and time.time() - start < a.max_seconds:
        p.one()
        time.sleep(p.rng.uniform(0.0, 0.25))
    with open(a.out, "w") as f:
        json.dump({"acked": p.acked, "failed": p.failed, "reused": sorted(p.reused)}, f, indent=1)


if __name__ == "__main__":
    main()
