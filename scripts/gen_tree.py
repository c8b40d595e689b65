#!/usr/bin/env python3
"""Generate a large, realistic CNCF distribution ("registry:2") storage tree.

The tree uses exactly the layout the reference registry (distribution 2.8.x)
writes under <root>/docker/registry/v2/:

  blobs/sha256/<hex[:2]>/<hex>/data                        every blob (layers, configs, manifests)
  repositories/<name>/_manifests/revisions/sha256/<hex>/link
  repositories/<name>/_manifests/tags/<tag>/current/link
  repositories/<name>/_manifests/tags/<tag>/index/sha256/<hex>/link
  repositories/<name>/_layers/sha256/<hex>/link
  repositories/<name>/_uploads/<uuid>/{data,startedat}     (a few abandoned uploads)

Link files hold "sha256:<hex>" with no trailing newline. Every blob is real:
its digest is the sha256 of its bytes and every descriptor "size" equals the
blob's length. Blobs are tiny (tens of bytes) to keep disk use low.

Mix (all tunable, deterministic for a given --seed):
  * ~88% image manifests (half Docker schema2, half OCI) with a JSON config and
    2-8 layers; layers come from a global pool of base images shared across
    repositories, a per-repository pool of shared layers, and unique layers;
  * ~10% multi-arch indexes (OCI index or Docker manifest list) with 2-3
    children: children are revision-linked in the repository, their configs
    and layers linked via _layers, but they are not tagged themselves;
  * ~2% referrers (cosign-style signatures / SBOMs): OCI manifests with a
    `subject` naming an earlier manifest of the same repository, some tagged
    `sha256-<hex>.sig`, most untagged;
  * tags: some manifests tagged, some tags overwritten (their index/ holds the
    whole history), "latest" moves along, many manifests end up untagged;
  * some unreferenced blobs (no link anywhere) and abandoned uploads.
  Blob data files and uploads are back-dated by --age-days (default 30) so a
  grace period does not hide them; links keep the time they are written.

Push times (--spread DURATION): each top-level push (an image, an index with
its children, a referrer) gets a time in [now - DURATION, now], in push order
within its repository (times drawn from --seed, so only `now` varies between
runs). Every file then carries the time the registry would have given it:
revision links, _layers links and tag links (current/ and index/) the time of
the push that wrote them, blob data the time of its first push anywhere (a
shared layer the oldest of its users), and unreferenced blobs and abandoned
uploads (mtime and startedat) a time drawn in the same window. With --age-days
too, the window ends that many days ago. Age and grace rules can then be tried
on the tree.

Validation against the real registry and client (done when this was written,
repeat after changing the generator; `scripts/bench.sh --check` automates it):

  python3 scripts/gen_tree.py --root /tmp/t --repos 20 --manifests-per-repo 10
  cat > /tmp/t.yml <<EOF
  version: 0.1
  storage:
    filesystem: {rootdirectory: /tmp/t}
    delete: {enabled: true}
  http: {addr: 127.0.0.1:5055}
  EOF
  docker-registry serve /tmp/t.yml &
  # pull a few tags including a multi-arch one (the summary lists samples):
  skopeo copy --all --src-tls-verify=false docker://127.0.0.1:5055/REPO:TAG oci:/tmp/x:TAG
  docker-registry garbage-collect --dry-run /tmp/t.yml     # must exit 0

Speed: the plan (all contents and digests) is built in memory, then written by
--workers forked processes (default: number of CPUs). ~1.2M files in a couple
of minutes on a 2-core ext4 machine.
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time

MT_D2 = "application/vnd.docker.distribution.manifest.v2+json"
MT_DLIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DCONF = "application/vnd.docker.container.image.v1+json"
MT_DLAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_OIMG = "application/vnd.oci.image.manifest.v1+json"
MT_OIDX = "application/vnd.oci.image.index.v1+json"
MT_OCONF = "application/vnd.oci.image.config.v1+json"
MT_OLAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_EMPTY = "application/vnd.oci.empty.v1+json"

PLATFORMS = [("amd64", None), ("arm64", "v8"), ("arm", "v7"), ("ppc64le", None), ("s390x", None)]

WORDS = ("api web worker db cache auth proxy gateway billing search ingest etl ui "
         "admin core jobs notify stream media store report sync agent cli tools").split()
TEAMS = ("team-a team-b platform infra data ml payments identity mobile edge "
         "security devex growth ops qa").split()


def sha(b):
    return hashlib.sha256(b).hexdigest()


class Plan:
    """Everything to write: blob contents and per-repository links."""

    def __init__(self):
        self.blobs = {}            # hex -> bytes
        self.repos = []            # list of Repo
        self.n_manifests = 0       # all manifests (incl. index children, referrers)
        self.n_top = 0             # top-level manifests (images, indexes, referrers)
        self.n_index = 0
        self.n_children = 0
        self.n_referrers = 0
        self.n_orphans = 0
        self.samples = []          # (repo, tag, kind) for the --check pull test

    def blob(self, data):
        h = sha(data)
        self.blobs.setdefault(h, data)
        return h


class Repo:
    __slots__ = ("name", "revisions", "layers", "tags", "uploads", "pushes")

    def __init__(self, name):
        self.name = name
        self.revisions = []        # manifest hexes
        self.layers = set()        # config/layer hexes linked via _layers
        self.tags = {}             # tag -> [history hexes..., current last]
        self.uploads = []          # (uuid, data bytes, startedat str)
        self.pushes = []           # index in revisions where each top-level push starts


def repo_names(rng, n):
    names, seen = [], set()
    i = 0
    while len(names) < n:
        r = rng.random()
        w = rng.choice(WORDS)
        if r < 0.2:
            name = f"{w}{i}"
        elif r < 0.8:
            name = f"{rng.choice(TEAMS)}/{w}-{i}"
        else:
            name = f"{rng.choice(TEAMS)}/{rng.choice(WORDS)}/{w}-{i}"
        i += 1
        if name not in seen:
            seen.add(name)
            names.append(name)
    # a repository that is also a prefix of another (`a` and `a/b`)
    if n >= 4:
        names[1] = names[0] + "/sub"
    return names


def build(args):
    rng = random.Random(args.seed)
    rb = rng.randbytes
    P = Plan()
    opaque = lambda: rb(rng.randint(args.min_blob, args.max_blob))

    def desc(mt, h):
        return {"mediaType": mt, "size": len(P.blobs[h]), "digest": "sha256:" + h}

    # global pool of base images: per arch, each 1-3 shared layers
    bases = {}
    for arch, _ in PLATFORMS:
        bases[arch] = [[P.blob(opaque()) for _ in range(rng.randint(1, 3))]
                       for _ in range(max(1, args.base_images))]

    def make_image(repo, oci, arch, variant, pool):
        layers = []
        if rng.random() < 0.85:
            layers += rng.choice(bases[arch])
        if pool:
            layers += rng.sample(pool, rng.randint(0, min(2, len(pool))))
        layers = layers[:7]
        layers.append(P.blob(opaque()))          # at least one layer unique to this image
        while len(layers) < 2 or (len(layers) < 8 and rng.random() < 0.5):
            layers.append(P.blob(opaque()))
        cfg = {"architecture": arch, "os": "linux",
               "created": "2024-%02d-%02dT%02d:00:00Z" % (rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23)),
               "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
                          "Labels": {"build": rb(6).hex()}},
               "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(P.blobs[h]) for h in layers]}}
        if variant:
            cfg["variant"] = variant
        ch = P.blob(json.dumps(cfg, separators=(",", ":")).encode())
        lmt = MT_OLAYER if oci else MT_DLAYER
        m = {"schemaVersion": 2, "mediaType": MT_OIMG if oci else MT_D2,
             "config": desc(MT_OCONF if oci else MT_DCONF, ch),
             "layers": [desc(lmt, h) for h in layers]}
        if oci and rng.random() < 0.3:
            m["annotations"] = {"org.opencontainers.image.revision": rb(20).hex()}
        mh = P.blob(json.dumps(m, indent=3).encode())
        repo.revisions.append(mh)
        repo.layers.add(ch)
        repo.layers.update(layers)
        P.n_manifests += 1
        return mh

    def make_index(repo, oci, pool):
        n = rng.randint(2, 3)
        plats = rng.sample(PLATFORMS[:3], n) if n <= 3 else PLATFORMS[:n]
        ents = []
        for arch, variant in plats:
            ch = make_image(repo, oci, arch, variant, pool)
            P.n_children += 1
            p = {"architecture": arch, "os": "linux"}
            if variant:
                p["variant"] = variant
            e = desc(MT_OIMG if oci else MT_D2, ch)
            e["platform"] = p
            ents.append(e)
        m = {"schemaVersion": 2, "mediaType": MT_OIDX if oci else MT_DLIST, "manifests": ents}
        mh = P.blob(json.dumps(m, indent=3).encode())
        repo.revisions.append(mh)
        P.n_manifests += 1
        P.n_index += 1
        return mh

    empty = P.blob(b"{}")
    kinds = {}

    def make_referrer(repo, subject_hex):
        kind = rng.choice(("sig", "sbom", "att"))
        payload = P.blob(opaque())
        m = {"schemaVersion": 2, "mediaType": MT_OIMG,
             "artifactType": {"sig": "application/vnd.dev.cosign.artifact.sig.v1+json",
                              "sbom": "application/spdx+json",
                              "att": "application/vnd.in-toto+json"}[kind],
             "config": desc(MT_EMPTY, empty),
             "layers": [desc({"sig": "application/vnd.dev.cosign.simplesigning.v1+json",
                              "sbom": "application/spdx+json",
                              "att": "application/vnd.dsse.envelope.v1+json"}[kind], payload)],
             "subject": desc(repo_subject_mt[subject_hex], subject_hex)}
        mh = P.blob(json.dumps(m, indent=3).encode())
        repo.revisions.append(mh)
        repo.layers.update((empty, payload))
        P.n_manifests += 1
        P.n_referrers += 1
        return mh, kind

    for ri, name in enumerate(repo_names(rng, args.repos)):
        repo = Repo(name)
        P.repos.append(repo)
        pool = [P.blob(opaque()) for _ in range(rng.randint(0, 6))]
        repo_oci = rng.random() < 0.5
        repo_subject_mt = {}
        taggable = []              # in push order
        versions = 0
        had_index = False
        m_count = args.manifests_per_repo
        for mi in range(m_count):
            repo.pushes.append(len(repo.revisions))
            r = rng.random()
            oci = repo_oci if rng.random() < 0.8 else not repo_oci
            if taggable and r < args.referrer_fraction:
                subj = rng.choice(taggable)
                mh, kind = make_referrer(repo, subj)
                kinds[mh] = "referrer"
                P.n_top += 1
                if rng.random() < 0.3:
                    repo.tags.setdefault(f"sha256-{subj}.{kind}", []).append(mh)
                continue
            if r < args.referrer_fraction + args.index_fraction or (not had_index and ri % 7 == 3 and mi == m_count - 1):
                mh = make_index(repo, oci, pool)
                repo_subject_mt[mh] = MT_OIDX if oci else MT_DLIST
                had_index = True
                kind = "index"
            else:
                arch, variant = PLATFORMS[0] if rng.random() < 0.9 else PLATFORMS[1]
                mh = make_image(repo, oci, arch, variant, pool)
                repo_subject_mt[mh] = MT_OIMG if oci else MT_D2
                kind = "image"
            P.n_top += 1
            taggable.append(mh)
            # tagging: new tag, overwrite an existing tag, or leave untagged
            t = rng.random()
            if t < args.tag_fraction:
                versions += 1
                tag = f"v{versions // 10}.{versions % 10}.{rng.randint(0, 3)}"
            elif t < args.tag_fraction + args.retag_fraction and repo.tags:
                tag = rng.choice([x for x in repo.tags if not x.startswith("sha256-")] or ["main"])
            else:
                tag = None
            kinds[mh] = kind
            if tag:
                repo.tags.setdefault(tag, []).append(mh)
        # "latest" follows the last two images/indexes pushed
        for mh in taggable[-2:]:
            repo.tags.setdefault("latest", []).append(mh)
        # samples for the pull check: current tags of images and indexes
        picked = set()
        for tag, hist in repo.tags.items():
            k = kinds.get(hist[-1])
            if k and k not in picked and sum(1 for x in P.samples if x[2] == k) < {"referrer": 2}.get(k, 4):
                P.samples.append((name, tag, k))
                picked.add(k)
        # abandoned uploads in a few repositories
        if rng.random() < args.upload_fraction:
            uid = "%08x-%04x-4%03x-a%03x-%012x" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(12),
                                                    rng.getrandbits(12), rng.getrandbits(48))
            repo.uploads.append((uid, opaque(), "2024-01-%02dT10:00:00Z" % rng.randint(1, 28)))

    # unreferenced blobs: no link anywhere
    for _ in range(args.orphan_blobs):
        P.blob(opaque())
        P.n_orphans += 1
    return P


def parse_duration(s):
    """'30d', '12h', '90m', '3600s', '2w' or plain seconds -> seconds (float)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    t = s.strip().lower()
    try:
        v = float(t[:-1]) * units[t[-1]] if t[-1:] in units else float(t)
    except ValueError:
        v = -1
    if not 0 <= v < float("inf"):
        raise argparse.ArgumentTypeError(f"bad duration {s!r} (use e.g. 30d, 12h, 90m, 3600s or 3600)")
    return v


def push_times(P, spread, end, seed):
    """Times for --spread: (blob hex -> time, per repository {hex or upload uuid -> time}).

    Each repository's pushes get sorted times drawn from [end - spread, end];
    a push's revision links and the _layers links it creates take its time, a
    blob the time of its first push in any repository. Blobs no push wrote and
    uploads get a time drawn from the same window. Uses its own generator, so
    the tree's contents do not depend on --spread (except uploads' startedat).
    """
    rt = random.Random(f"spread-{seed}")
    lo = end - spread
    blob_t = {}
    per_repo = []
    for repo in P.repos:
        ts = sorted(lo + spread * rt.random() for _ in repo.pushes)
        bounds = repo.pushes[1:] + [len(repo.revisions)]
        link = {}
        for t, a, b in zip(ts, repo.pushes, bounds):
            for mh in repo.revisions[a:b]:
                m = json.loads(P.blobs[mh])
                for h in [mh] + [d["digest"][7:] for d in ([m["config"]] if "config" in m else []) + m.get("layers", [])]:
                    link.setdefault(h, t)
                    if t < blob_t.get(h, float("inf")):
                        blob_t[h] = t
        for uid, _, _ in repo.uploads:
            link[uid] = lo + spread * rt.random()
        per_repo.append(link)
    for h in P.blobs:
        if h not in blob_t:
            blob_t[h] = lo + spread * rt.random()
    return blob_t, per_repo


def file_list(P, v2, back, times=None):
    """Yield (dir_to_mkdir_or_None, path, bytes, mtime_or_None) in an order where parents exist.

    Without `times` (from push_times) blob data and uploads get the mtime
    `back` and links keep the time they are written; with it every file gets
    its time from there.
    """
    bl = os.path.join(v2, "blobs", "sha256")
    for h, data in P.blobs.items():
        d = f"{bl}/{h[:2]}/{h}"
        yield d, d + "/data", data, times[0][h] if times else back
    rp = os.path.join(v2, "repositories")
    for ri, repo in enumerate(P.repos):
        lt = times[1][ri] if times else {}
        base = f"{rp}/{repo.name}"
        rev = f"{base}/_manifests/revisions/sha256"
        for h in repo.revisions:
            yield f"{rev}/{h}", f"{rev}/{h}/link", ("sha256:" + h).encode(), lt.get(h)
        lay = f"{base}/_layers/sha256"
        for h in repo.layers:
            yield f"{lay}/{h}", f"{lay}/{h}/link", ("sha256:" + h).encode(), lt.get(h)
        tg = f"{base}/_manifests/tags"
        for tag, hist in repo.tags.items():
            yield None, f"{tg}/{tag}/current/link", ("sha256:" + hist[-1]).encode(), lt.get(hist[-1])
            for h in dict.fromkeys(hist):
                yield f"{tg}/{tag}/index/sha256/{h}", f"{tg}/{tag}/index/sha256/{h}/link", ("sha256:" + h).encode(), lt.get(h)
        for uid, data, started in repo.uploads:
            u = f"{base}/_uploads/{uid}"
            t = lt.get(uid, back)
            if uid in lt:
                started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
            yield None, u + "/data", data, t
            yield None, u + "/startedat", started.encode(), t


def prepare_dirs(P, v2):
    """Create all shared parent directories (so workers only mkdir leaf dirs)."""
    bl = os.path.join(v2, "blobs", "sha256")
    os.makedirs(bl, exist_ok=True)
    for i in range(256):
        os.makedirs(f"{bl}/{i:02x}", exist_ok=True)
    rp = os.path.join(v2, "repositories")
    for repo in P.repos:
        base = f"{rp}/{repo.name}"
        os.makedirs(f"{base}/_manifests/revisions/sha256", exist_ok=True)
        os.makedirs(f"{base}/_layers/sha256", exist_ok=True)
        for tag in repo.tags:
            os.makedirs(f"{base}/_manifests/tags/{tag}/current", exist_ok=True)
            os.makedirs(f"{base}/_manifests/tags/{tag}/index/sha256", exist_ok=True)
        for uid, _, _ in repo.uploads:
            os.makedirs(f"{base}/_uploads/{uid}", exist_ok=True)


def write_files(items):
    mkdir, op, wr, cl, ut = os.mkdir, os.open, os.write, os.close, os.utime
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
    n = 0
    for d, path, data, mtime in items:
        if d is not None:
            try:
                mkdir(d)
            except FileExistsError:
                pass
        fd = op(path, flags, 0o644)
        wr(fd, data)
        if mtime is not None:
            ut(fd, (mtime, mtime))
        cl(fd)
        n += 1
    return n


def main():
    ap = argparse.ArgumentParser(
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__.split("\n")[0] + """

With the defaults (seed 1) it writes 1,204,933 files (about 1.2 M, 230 MB of
blob data) for 2,000 repositories: 483,579 blobs, 125,547 revision links,
501,179 _layers links, 94,444 tag links (37,003 tags), 184 upload files; a
couple of minutes on 2 cores. The count grows about linearly with --repos and
--manifests-per-repo (--repos 20 --manifests-per-repo 10: 3,188 files).

By default blob data and uploads are back-dated by --age-days and links keep
the time they are written. --spread DURATION instead spreads the pushes over
[now - DURATION, now] and gives every file (blobs, revision, _layers and tag
links) the time of the push that wrote it, and unreferenced blobs and uploads a
random time in that window, for trying age and grace rules.""")
    ap.add_argument("--root", required=True, help="storage root (rootdirectory); docker/registry/v2 goes under it")
    ap.add_argument("--repos", type=int, default=2000, help="repositories (default: %(default)s)")
    ap.add_argument("--manifests-per-repo", type=int, default=50,
                    help="top-level manifests per repository; index children come on top (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=1, help="random seed: same seed, same tree (default: %(default)s)")
    ap.add_argument("--index-fraction", type=float, default=0.10,
                    help="share of manifests that are multi-arch indexes (default: %(default)s)")
    ap.add_argument("--referrer-fraction", type=float, default=0.02,
                    help="share of manifests that are referrers (default: %(default)s)")
    ap.add_argument("--tag-fraction", type=float, default=0.35, help="share of manifests that get a new tag (default: %(default)s)")
    ap.add_argument("--retag-fraction", type=float, default=0.20, help="share that overwrite an existing tag (default: %(default)s)")
    ap.add_argument("--base-images", type=int, default=40, help="shared base images per architecture (default: %(default)s)")
    ap.add_argument("--orphan-blobs", type=int, default=None, help="unreferenced blobs (default: repos*5)")
    ap.add_argument("--upload-fraction", type=float, default=0.05,
                    help="share of repositories with an abandoned upload (default: %(default)s)")
    ap.add_argument("--min-blob", type=int, default=8, help="smallest random blob (layer, referrer payload, upload), bytes (default: %(default)s)")
    ap.add_argument("--max-blob", type=int, default=100, help="largest random blob, bytes (default: %(default)s)")
    ap.add_argument("--spread", metavar="DURATION", type=parse_duration, default=None,
                    help="spread push times over [now - DURATION, now] and set every file's mtime to the time of "
                         "its push (blobs: their first push; unreferenced blobs and uploads: a random time in the "
                         "window); DURATION is 30d, 12h, 90m, 3600s, 2w or plain seconds (default: off)")
    ap.add_argument("--age-days", type=float, default=None,
                    help="without --spread: back-date blob data and uploads by this many days (default: 30); "
                         "with --spread: end the push window this many days ago (default: 0)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="writer processes (default: the number of CPUs, %(default)s here)")
    ap.add_argument("--force", action="store_true", help="remove an existing docker/ tree under --root first")
    ap.add_argument("--samples", metavar="FILE", help="write 'repo tag kind' lines of pullable sample tags to FILE")
    args = ap.parse_args()
    if args.orphan_blobs is None:
        args.orphan_blobs = args.repos * 5
    if args.age_days is None:
        args.age_days = 30 if args.spread is None else 0

    v2 = os.path.join(args.root, "docker", "registry", "v2")
    if os.path.exists(os.path.join(args.root, "docker")):
        if not args.force:
            sys.exit(f"{args.root}/docker exists; use --force to replace it")
        t = time.time()
        print(f"removing the old {args.root}/docker (slow for a big tree on a cold cache) ...", file=sys.stderr)
        if shutil.which("rm"):
            subprocess.run(["rm", "-rf", os.path.join(args.root, "docker")], check=True)
        else:
            shutil.rmtree(os.path.join(args.root, "docker"))
        print(f"removed in {time.time() - t:.0f}s", file=sys.stderr)

    t0 = time.time()
    P = build(args)
    back = t0 - args.age_days * 86400
    times = push_times(P, args.spread, back, args.seed) if args.spread is not None else None
    items = list(file_list(P, v2, back, times))
    t1 = time.time()
    prepare_dirs(P, v2)
    t2 = time.time()
    workers = max(1, args.workers)
    if workers == 1 or len(items) < 20000:
        write_files(items)
    else:
        pids = []
        for w in range(workers):
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    write_files(items[w::workers])
                except BaseException as e:  # noqa
                    print(f"worker {w}: {e}", file=sys.stderr)
                    code = 1
                os._exit(code)
            pids.append(pid)
        bad = 0
        for pid in pids:
            _, st = os.waitpid(pid, 0)
            bad |= st != 0
        if bad:
            sys.exit("a writer process failed")
    t3 = time.time()

    nbytes = sum(len(b) for b in P.blobs.values())
    ntags = sum(len(r.tags) for r in P.repos)
    nrev = sum(len(r.revisions) for r in P.repos)
    nlay = sum(len(r.layers) for r in P.repos)
    nhist = sum(len(set(h)) for r in P.repos for h in r.tags.values())
    tagged = set()
    for r in P.repos:
        for h in r.tags.values():
            tagged.add((r.name, h[-1]))
    print(f"root:            {args.root}")
    print(f"repositories:    {len(P.repos)}")
    print(f"manifests:       {P.n_manifests} ({P.n_top} top-level, {P.n_index} indexes with "
          f"{P.n_children} children, {P.n_referrers} referrers)")
    print(f"tags:            {ntags} ({len(tagged)} tagged manifests, {nhist} tag-history entries)")
    print(f"blobs:           {len(P.blobs)} ({nbytes} bytes, {P.n_orphans} unreferenced)")
    print(f"links:           {nrev} revisions, {nlay} _layers")
    print(f"uploads:         {sum(len(r.uploads) for r in P.repos)} abandoned")
    if times:
        fmt = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
        print(f"push times:      {fmt(back - args.spread)} .. {fmt(back)} ({args.spread / 86400:.4g} days)")
    print(f"files:           {len(items)}")
    print(f"time:            plan {t1 - t0:.1f}s, dirs {t2 - t1:.1f}s, write {t3 - t2:.1f}s "
          f"({workers} workers), total {t3 - t0:.1f}s")
    for s in P.samples[:6]:
        print(f"sample:          {s[0]}:{s[1]} ({s[2]})")
    if args.samples:
        with open(args.samples, "w") as f:
            for s in P.samples:
                f.write(" ".join(s) + "\n")


if __name__ == "__main__":
    main()
