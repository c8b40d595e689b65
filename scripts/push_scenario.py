#!/usr/bin/env python3
"""Push a test scenario into a running reference registry through its HTTP API.

Stdlib only. Content is random bytes derived from --seed, so two registries fed
the same seed hold byte-identical blobs and manifests (same digests).

Usage: push_scenario.py --registry 127.0.0.1:PORT [--seed N] [--small] --out scenario.json

What the scenario holds (see the "scenario" function):
  * single-arch images in OCI and Docker schema2 formats
  * an OCI index and a Docker manifest list, each tagged, whose children's
    configs and layers are used only by those children
  * nested repository names (team-a/svc/api) and a name that is a prefix of
    another (a, a/b)
  * an overwritten tag (the old manifest stays, untagged)
  * a manifest deleted through the API (by digest)
  * a layer pushed into two repositories, and one mounted across repositories
  * a cosign-style tag sha256-<hex>.sig naming a signature manifest
  * an OCI manifest with a `subject`, pushed by digest only (untagged referrer)
  * an abandoned upload (POST + PATCH, never finished)
  * a blob uploaded and never referenced by any manifest
"""
import argparse
import gzip
import hashlib
import io
import json
import random
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
COSIGN_LAYER = "application/vnd.dev.cosign.simplesigning.v1+json"

ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


class Registry:
    def __init__(self, addr):
        self.base = "http://" + addr
        self.opener = urllib.request.build_opener(NoRedirect)

    def req(self, method, url, data=None, headers=None, ok=(200, 201, 202, 204)):
        if not url.startswith("http"):
            url = self.base + url
        r = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            resp = self.opener.open(r, timeout=60)
            status, hdrs, body = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            status, hdrs, body = e.code, e.headers, e.read()
        if status not in ok:
            raise RuntimeError("%s %s -> %d: %s" % (method, url, status, body[:500]))
        return status, hdrs, body

    def location(self, hdrs):
        loc = hdrs["Location"]
        return urllib.parse.urljoin(self.base + "/", loc)

    def push_blob(self, repo, data):
        dgst = sha256(data)
        _, h, _ = self.req("POST", "/v2/%s/blobs/uploads/" % repo, data=b"",
                           headers={"Content-Length": "0"}, ok=(202,))
        loc = self.location(h)
        sep = "&" if "?" in loc else "?"
        _, h, _ = self.req("PUT", loc + sep + "digest=" + urllib.parse.quote(dgst),
                           data=data,
                           headers={"Content-Type": "application/octet-stream",
                                    "Content-Length": str(len(data))},
                           ok=(201,))
        got = h.get("Docker-Content-Digest")
        if got and got != dgst:
            raise RuntimeError("registry says %s for blob %s" % (got, dgst))
        return dgst

    def mount_blob(self, repo, dgst, from_repo):
        status, h, _ = self.req(
            "POST", "/v2/%s/blobs/uploads/?mount=%s&from=%s"
            % (repo, urllib.parse.quote(dgst), urllib.parse.quote(from_repo)),
            data=b"", headers={"Content-Length": "0"}, ok=(201, 202))
        if status != 201:
            raise RuntimeError("mount of %s from %s into %s was not done (status %d)"
                               % (dgst, from_repo, repo, status))
        return dgst

    def start_abandoned_upload(self, repo, data):
        _, h, _ = self.req("POST", "/v2/%s/blobs/uploads/" % repo, data=b"",
                           headers={"Content-Length": "0"}, ok=(202,))
        uuid = h["Docker-Upload-UUID"]
        loc = self.location(h)
        _, h, _ = self.req("PATCH", loc, data=data,
                           headers={"Content-Type": "application/octet-stream",
                                    "Content-Length": str(len(data)),
                                    "Content-Range": "0-%d" % (len(data) - 1)},
                           ok=(202,))
        return uuid

    def put_manifest(self, repo, ref, body, media_type):
        dgst = sha256(body)
        _, h, _ = self.req("PUT", "/v2/%s/manifests/%s" % (repo, ref), data=body,
                           headers={"Content-Type": media_type,
                                    "Content-Length": str(len(body))},
                           ok=(201,))
        got = h.get("Docker-Content-Digest")
        if got and got != dgst:
            raise RuntimeError("registry says %s for manifest %s" % (got, dgst))
        return dgst

    def delete_manifest(self, repo, dgst):
        self.req("DELETE", "/v2/%s/manifests/%s" % (repo, dgst), ok=(202,))

    def get_manifest(self, repo, ref):
        _, h, body = self.req("GET", "/v2/%s/manifests/%s" % (repo, ref),
                              headers={"Accept": ACCEPT}, ok=(200,))
        return h.get("Content-Type"), body


def canon(obj):
    return json.dumps(obj, indent=3, sort_keys=False).encode()


class Scenario:
    def __init__(self, reg, seed):
        self.reg = reg
        self.rng = random.Random(seed)
        self.seed = seed
        self.manifests = {}       # digest -> {repository(s), media_type, refs}
        self.tags = {}            # (repo, tag) -> (digest, media_type)
        self.deleted = []
        self.untagged = []
        self.multiarch = []
        self.referrers = []
        self.unreferenced = []
        self.abandoned = []
        self.shared = []
        self.mounted = []
        self.signatures = []

    def rand(self, n):
        return bytes(self.rng.getrandbits(8) for _ in range(n))

    def make_layer(self, name, size):
        """A real tar.gz holding one file of random bytes; returns (gz, diff_id)."""
        content = self.rand(size)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
            ti = tarfile.TarInfo(name)
            ti.size = len(content)
            ti.mtime = 0
            ti.mode = 0o644
            ti.uname = ti.gname = "root"
            tf.addfile(ti, io.BytesIO(content))
        raw = buf.getvalue()
        gz = gzip.compress(raw, compresslevel=6, mtime=0)
        return gz, sha256(raw)

    def image(self, repo, fmt, arch="amd64", layers=None, nlayers=2, size=1500,
              extra_layers=()):
        """Push config + layers for a single-arch image; returns manifest body+type.

        layers: optional list of prebuilt (gz, diff_id) to use (already pushed or not)."""
        if layers is None:
            layers = [self.make_layer("f%d.bin" % i, size + self.rng.randrange(500))
                      for i in range(nlayers)]
        layers = list(layers) + list(extra_layers)
        cfg = {
            "architecture": arch,
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": {"Env": ["SEED=%d" % self.seed, "NONCE=%s" % self.rand(8).hex()]},
            "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
        }
        cfg_b = json.dumps(cfg, sort_keys=True).encode()
        cfg_d = self.reg.push_blob(repo, cfg_b)
        descs = []
        for gz, _ in layers:
            d = self.reg.push_blob(repo, gz)
            descs.append({"mediaType": OCI_LAYER if fmt == "oci" else DOCKER_LAYER,
                          "size": len(gz), "digest": d})
        if fmt == "oci":
            m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                 "config": {"mediaType": OCI_CONFIG, "size": len(cfg_b), "digest": cfg_d},
                 "layers": descs}
            mt = OCI_MANIFEST
        else:
            m = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                 "config": {"mediaType": DOCKER_CONFIG, "size": len(cfg_b), "digest": cfg_d},
                 "layers": descs}
            mt = DOCKER_MANIFEST
        return canon(m), mt, [cfg_d] + [d["digest"] for d in descs]

    def put(self, repo, ref, body, mt, refs):
        d = self.reg.put_manifest(repo, ref, body, mt)
        self.manifests.setdefault(d, {"digest": d, "media_type": mt, "references": refs,
                                      "repositories": []})
        if repo not in self.manifests[d]["repositories"]:
            self.manifests[d]["repositories"].append(repo)
        if not ref.startswith("sha256:"):
            old = self.tags.get((repo, ref))
            if old and old[0] != d:
                self.untagged.append({"repository": repo, "digest": old[0],
                                      "reason": "tag %s overwritten" % ref})
            self.tags[(repo, ref)] = (d, mt)
        return d

    def push_image(self, repo, tag, fmt, **kw):
        body, mt, refs = self.image(repo, fmt, **kw)
        return self.put(repo, tag, body, mt, refs)

    def push_multiarch(self, repo, tag, fmt, arches=("amd64", "arm64")):
        children = []
        for arch in arches:
            body, mt, refs = self.image(repo, fmt, arch=arch, nlayers=2, size=1200)
            d = self.put(repo, sha256(body), body, mt, refs)
            children.append({"mediaType": mt, "size": len(body), "digest": d,
                             "platform": {"architecture": arch, "os": "linux"},
                             "config": refs[0], "layers": refs[1:]})
        idx_mt = OCI_INDEX if fmt == "oci" else DOCKER_LIST
        idx = {"schemaVersion": 2, "mediaType": idx_mt,
               "manifests": [{k: c[k] for k in ("mediaType", "size", "digest", "platform")}
                             for c in children]}
        body = canon(idx)
        d = self.put(repo, tag, body, idx_mt, [c["digest"] for c in children])
        self.multiarch.append({"repository": repo, "tag": tag, "digest": d,
                               "media_type": idx_mt, "children": children})
        return d

    def run(self, small=False):
        reg = self.reg
        # -- a and a/b: a name that is a prefix of another; a shared base layer.
        base = self.make_layer("base.bin", 3000)
        self.push_image("a", "v1", "oci", layers=[base], extra_layers=[self.make_layer("a1.bin", 800)])
        self.push_image("a/b", "latest", "docker", layers=[base],
                        extra_layers=[self.make_layer("ab.bin", 900)])
        self.shared.append({"digest": sha256(base[0]), "repositories": ["a", "a/b"],
                            "how": "pushed twice"})
        if not small:
            self.push_image("a", "v2-docker", "docker")

        # -- nested names; overwritten tag; mounted blob.
        api = "team-a/svc/api"
        web = "team-a/svc/web"
        shared_layer = self.make_layer("common.bin", 2000)
        self.push_image(api, "1.0", "oci", layers=[shared_layer], extra_layers=[self.make_layer("x.bin", 700)])
        # Overwrite 1.0: the old manifest stays in the repository, untagged.
        cur = self.push_image(api, "1.0", "oci", layers=[shared_layer],
                              extra_layers=[self.make_layer("y.bin", 700)])
        self.push_image(api, "latest", "docker", layers=[shared_layer], extra_layers=[])
        # Mount the shared layer into web, then use it there.
        reg.mount_blob(web, sha256(shared_layer[0]), api)
        self.mounted.append({"digest": sha256(shared_layer[0]), "from": api, "to": web})
        body, mt, refs = self.image(web, "oci", layers=[shared_layer],
                                    extra_layers=[self.make_layer("w.bin", 600)])
        self.put(web, "stable", body, mt, refs)

        # -- a manifest deleted through the API (its blobs are used by nothing else).
        gone = self.push_image(web, "tmp", "oci", nlayers=1, size=900)
        reg.delete_manifest(web, gone)
        del self.tags[(web, "tmp")]
        self.deleted.append({"repository": web, "digest": gone,
                             "blobs": self.manifests[gone]["references"]})

        # -- cosign-style signature tag for the current api:1.0.
        sig_payload = json.dumps({"critical": {"identity": {"docker-reference": api},
                                               "image": {"docker-manifest-digest": cur},
                                               "type": "cosign container image signature"},
                                  "optional": None}).encode()
        sig_d = reg.push_blob(api, sig_payload)
        sig_cfg = json.dumps({"architecture": "", "os": "", "config": {},
                              "rootfs": {"type": "layers", "diff_ids": [sig_d]}},
                             sort_keys=True).encode()
        sig_cfg_d = reg.push_blob(api, sig_cfg)
        sig_m = canon({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": OCI_CONFIG, "size": len(sig_cfg), "digest": sig_cfg_d},
                       "layers": [{"mediaType": COSIGN_LAYER, "size": len(sig_payload), "digest": sig_d,
                                   "annotations": {"dev.cosignproject.cosign/signature": self.rand(24).hex()}}]})
        sig_tag = "sha256-%s.sig" % cur.split(":", 1)[1]
        sd = self.put(api, sig_tag, sig_m, OCI_MANIFEST, [sig_cfg_d, sig_d])
        self.signatures.append({"repository": api, "tag": sig_tag, "digest": sd, "signs": cur})

        # -- an OCI referrer (subject = current api:1.0), pushed by digest only.
        empty = b"{}"
        empty_d = reg.push_blob(api, empty)
        sbom = json.dumps({"spdxVersion": "SPDX-2.3", "name": "sbom-%s" % self.rand(6).hex()}).encode()
        sbom_d = reg.push_blob(api, sbom)
        cur_body_len = len(reg.get_manifest(api, cur)[1])
        ref_m = canon({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "artifactType": "application/spdx+json",
                       "config": {"mediaType": OCI_EMPTY, "size": 2, "digest": empty_d},
                       "layers": [{"mediaType": "application/spdx+json", "size": len(sbom), "digest": sbom_d}],
                       "subject": {"mediaType": OCI_MANIFEST, "size": cur_body_len, "digest": cur}})
        rd = self.put(api, sha256(ref_m), ref_m, OCI_MANIFEST, [empty_d, sbom_d])
        self.referrers.append({"repository": api, "digest": rd, "subject": cur,
                               "blobs": [empty_d, sbom_d]})
        self.untagged.append({"repository": api, "digest": rd, "reason": "referrer pushed by digest"})

        # -- multi-arch: an OCI index and a Docker manifest list.
        self.push_multiarch("multi/oci", "latest", "oci")
        self.push_multiarch("multi/docker", "latest", "docker")
        for m in self.multiarch:
            for c in m["children"]:
                self.untagged.append({"repository": m["repository"], "digest": c["digest"],
                                      "reason": "child of %s:%s" % (m["repository"], m["tag"])})

        # -- a blob uploaded and never referenced.
        lonely = self.rand(1234)
        ld = reg.push_blob("a/b", lonely)
        self.unreferenced.append({"repository": "a/b", "digest": ld, "size": len(lonely)})

        # -- an abandoned upload.
        part = self.rand(777)
        uuid = reg.start_abandoned_upload(api, part)
        self.abandoned.append({"repository": api, "uuid": uuid, "size": len(part)})

    def output(self):
        return {
            "seed": self.seed,
            "tags": [{"repository": r, "tag": t, "digest": d, "media_type": mt}
                     for (r, t), (d, mt) in sorted(self.tags.items())],
            "repositories": sorted({r for (r, _) in self.tags} |
                                   {r for m in self.manifests.values() for r in m["repositories"]}),
            "manifests": sorted(self.manifests.values(), key=lambda m: m["digest"]),
            "deleted_manifests": self.deleted,
            "untagged_manifests": self.untagged,
            "multiarch_tags": ["%s:%s" % (m["repository"], m["tag"]) for m in self.multiarch],
            "multiarch": self.multiarch,
            "signatures": self.signatures,
            "referrers": self.referrers,
            "shared_blobs": self.shared,
            "mounted_blobs": self.mounted,
            "unreferenced_blobs": self.unreferenced,
            "abandoned_uploads": self.abandoned,
        }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--registry", required=True, help="host:port of the registry (plain HTTP)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--small", action="store_true", help="fewer images (for fixtures)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    reg = Registry(a.registry)
    reg.req("GET", "/v2/", ok=(200,))
    sc = Scenario(reg, a.seed)
    sc.run(small=a.small)
    out = sc.output()
    # Sanity: every tag resolves to the digest we recorded.
    for t in out["tags"]:
        mt, body = reg.get_manifest(t["repository"], t["tag"])
        if sha256(body) != t["digest"]:
            raise RuntimeError("tag %s:%s resolves to %s, expected %s"
                               % (t["repository"], t["tag"], sha256(body), t["digest"]))
    with open(a.out, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print("pushed %d tags, %d manifests into %s" % (len(out["tags"]), len(out["manifests"]), a.registry),
          file=sys.stderr)


if __name__ == "__main__":
    main()
