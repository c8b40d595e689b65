#!/usr/bin/env python3
"""Writes a synthetic AWS S3 Inventory (manifest.json + gzip CSV data files)
of N objects laid out like a registry bucket: blobs, and repositories with
layer links, revision links and tags (current + index links). Nothing is
stored in any bucket: it is for measuring `--listing` at scale, e.g.

    python3 scripts/gen_inventory.py --objects 1000000 --listing-only --out inv
    REGSWEEP_TIMINGS=1 regsweep report s3://registry/reg --listing inv -q --format json -o r.json

(with AWS_ENDPOINT_URL at any S3 server holding an empty bucket `registry`).

Layout: <out>/manifest.json and <out>/data/part-NNNN.csv.gz, as
`aws s3 cp --recursive` of a report's folder lays it out.
"""
import argparse, gzip, hashlib, json, os, time

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--bucket", default="registry")
    ap.add_argument("--prefix", default="reg")
    ap.add_argument("--rows-per-file", type=int, default=2_000_000)
    ap.add_argument("--repos", type=int, default=0, help="default: objects / 500")
    ap.add_argument("--listing-only", action="store_true",
                    help="revision links name no listed blob and tags have no current link, so "
                         "a scan fetches nothing: measures the listing alone (an empty bucket "
                         "is enough as the storage)")
    a = ap.parse_args()
    os.makedirs(os.path.join(a.out, "data"), exist_ok=True)
    root = f"{a.prefix}/docker/registry/v2/" if a.prefix else "docker/registry/v2/"
    repos = a.repos or max(1, a.objects // 500)
    # Per repository of 25 manifests: 25 revisions, 5 tags (current + index),
    # 25 x 10 layer links; blobs: the rest.
    t0 = "2024-01-01T00:00:00.000Z"
    files, part, n, rows = [], None, 0, 0

    def h(i):
        return hashlib.sha256(str(i).encode()).hexdigest()

    def emit(key, size):
        nonlocal part, n, rows
        if part is None or rows >= a.rows_per_file:
            close()
            name = f"part-{len(files):04d}.csv.gz"
            part = (name, gzip.open(os.path.join(a.out, "data", name), "wt", compresslevel=1))
            files.append(name)
            rows = 0
        part[1].write(f'"{a.bucket}","{root}{key}","{size}","{t0}","etag"\n')
        n += 1
        rows += 1

    def close():
        if part is not None:
            part[1].close()

    per_repo = 25 + 5 * 2 + 250
    blobs = max(0, a.objects - repos * per_repo)
    if blobs < a.objects // 3:
        repos = max(1, (a.objects * 2 // 3) // per_repo)
        blobs = a.objects - repos * per_repo
    for b in range(blobs):
        d = h(b)
        emit(f"blobs/sha256/{d[:2]}/{d}/data", 1000 + b % 100000)
    for r in range(repos):
        name = f"team-{r % 50}/svc-{r}"
        rev = (lambda i: h(-1 - i)) if a.listing_only else h
        for m in range(25):
            emit(f"repositories/{name}/_manifests/revisions/sha256/{rev(r * 25 + m)}/link", 71)
        for t in range(5):
            d = rev(r * 25 + t)
            if not a.listing_only:
                emit(f"repositories/{name}/_manifests/tags/v{t}/current/link", 71)
            emit(f"repositories/{name}/_manifests/tags/v{t}/index/sha256/{d}/link", 71)
        for l in range(250):
            emit(f"repositories/{name}/_layers/sha256/{h((r * 250 + l) % max(blobs, 1))}/link", 71)
    close()
    created = int(time.time() * 1000)
    manifest = {
        "sourceBucket": a.bucket,
        "destinationBucket": f"arn:aws:s3:::{a.bucket}-inventory",
        "version": "2016-11-30",
        "creationTimestamp": str(created),
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag",
        "files": [
            {"key": f"inv/{a.bucket}/all/data/{f}",
             "size": os.path.getsize(os.path.join(a.out, "data", f)),
             "MD5checksum": ""}
            for f in files
        ],
    }
    with open(os.path.join(a.out, "manifest.json"), "w") as fh:
        json.dump(manifest, fh)
    print(f"{n} objects ({blobs} blobs, {repos} repositories) in {len(files)} files under {a.out}")

if __name__ == "__main__":
    main()
