#!/usr/bin/env bash
# Benchmark regsweep against the reference registry's garbage collector on a
# large generated registry tree (scripts/gen_tree.py).
#
# usage: scripts/bench.sh [--root DIR] [--fresh] [--no-cold] [--no-rehash] [--sweep | --check | --s3]
#                         [--repos N] [--manifests-per-repo M] [--seed S]
#
#   --root DIR   work directory (default ${TMPDIR:-/tmp}/regsweep-bench); the
#                tree goes to DIR/tree, the registry config to DIR/registry.yml
#   --fresh      regenerate the tree even if it exists
#   --no-cold    skip the cold-cache measurements (drop_caches)
#   --no-rehash  skip `verify --rehash` (and `verify`) vs sha256sum (warm)
#   --sweep      instead: time deleting (garbage-collect -m vs regsweep sweep
#                --delete-untagged --apply) on two copies of a generated tree
#                (use --repos/--manifests-per-repo to size it)
#   --check      instead of benchmarking: generate a small tree, serve it with
#                the reference registry, pull sample tags (incl. multi-arch) with
#                `skopeo copy --all` and run `garbage-collect --dry-run` on it
#   --s3         instead: the same comparison on S3. Generates a tree (default
#                --repos 10, see below), starts moto_server on a free 127.0.0.1
#                port, uploads every file to bucket regsweep-bench under the
#                prefix bench/ (the registry's rootdirectory /bench), then times
#                once each: garbage-collect --dry-run -m and regsweep report
#                s3://regsweep-bench/bench --delete-untagged, the same two
#                without -m / --delete-untagged (their garbage blob sets must
#                be equal: exit 1 if not), and a boto3 listing of every object
#                (a floor). Work files in DIR/s3 (--root); the tree is removed
#                after the upload, moto_server is stopped at exit.
#                moto keeps the bucket in one Python process and scans every
#                key of the bucket for each ListObjects request, so a listing
#                costs more as the bucket grows: keep the tree small. --repos
#                10 is 6,320 objects, about 4 minutes in all; --repos 16 (1.6
#                times the objects) took the reference 2.1 times as long (it
#                lists once per directory), about 10 minutes in all.
#
# Measured (with /usr/bin/time -v: wall time, peak RSS and CPU seconds, user
# plus system; CPU over wall is how many cores a tool kept busy), warm cache (each
# command is run once, untimed, right before it is timed; regsweep's median
# of five runs; each run's file system inputs, the 512-byte blocks it read
# from disk, show whether it really ran on a warm cache), then cold cache if
# drop_caches works:
#   reference: docker-registry garbage-collect --dry-run -m CONFIG  (stdout counted, not kept)
#   regsweep:  target/release/regsweep report TREE --delete-untagged --format json --output FILE
#   find:      find TREE -type f | wc -l   (a floor: just walking the tree)
# With --s3, each command is timed once, and the table also gives its own CPU
# time, the S3 requests it made and the CPU seconds moto_server spent serving
# them (from moto's log and /proc): when those approach the wall time, the
# single moto process is the bottleneck, not the tool.
# regsweep is built with `cargo build --release` (CARGO_TARGET_DIR is honoured).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO_DIR=$(cd "$HERE/.." && pwd)
ROOT="${TMPDIR:-/tmp}/regsweep-bench"
FRESH=0 COLD=1 CHECK=0 REHASH=1 SWEEP=0 S3=0 HAVE_REPOS=0
GEN_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=$2; shift 2 ;;
    --fresh) FRESH=1; shift ;;
    --no-cold) COLD=0; shift ;;
    --no-rehash) REHASH=0; shift ;;
    --sweep) SWEEP=1; shift ;;
    --check) CHECK=1; shift ;;
    --repos|--manifests-per-repo|--seed)
      [ "$1" = --repos ] && HAVE_REPOS=1
      GEN_ARGS+=("$1" "$2"); shift 2 ;;
    --s3) S3=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

need() { command -v "$1" >/dev/null 2>&1 || { echo "bench.sh: $1 not found (run scripts/setup.sh)" >&2; exit 1; }; }
need python3
need docker-registry
if [ ! -x /usr/bin/time ]; then
  echo "installing GNU time (Debian package 'time')" >&2
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y time >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y time >/dev/null; }
  else
    sudo apt-get install -y time >/dev/null
  fi
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

write_config() { # $1 = storage root, $2 = config file, $3 = port
  cat > "$2" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $1
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$3
EOF
}

# build_regsweep: cargo build --release (honours CARGO_TARGET_DIR); sets BIN
build_regsweep() {
  (cd "$REPO_DIR" && cargo build --release 2>&1 | tail -3)
  local target=${CARGO_TARGET_DIR:-target}
  case "$target" in /*) ;; *) target="$REPO_DIR/$target" ;; esac
  BIN="$target/release/regsweep"
  [ -x "$BIN" ] || { echo "bench.sh: $BIN was not built" >&2; exit 1; }
}

# run_timed NAME -- CMD...   (stdout of CMD is counted by line into OUT/NAME.lines;
# with KEEP_BLOBS=FILE, the digests of its "blob eligible for deletion" lines go to FILE)
# Sets WALL / RSS_MB / CPU_S (user+system) / RC for the last run.
run_timed() {
  local name=$1; shift
  local tf="$OUT/$name.time"
  [ -z "${KEEP_BLOBS:-}" ] || : > "$KEEP_BLOBS"
  set +e
  /usr/bin/time -v -o "$tf" "$@" 2> "$OUT/$name.stderr" | awk -v keep="${KEEP_BLOBS:-}" '
      /manifest eligible for deletion/ {m++}
      /blob eligible for deletion/ {b++; if (keep != "") print $NF > keep}
      END {printf "%d lines, %d manifests and %d blobs eligible\n", NR, m, b}' > "$OUT/$name.lines"
  RC=${PIPESTATUS[0]}
  set -e
  WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; printf "%.2f", s}' "$tf")
  RSS_MB=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$tf")
  CPU_S=$(awk -F': ' '/(User|System) time/ {s+=$2} END {printf "%.2f", s}' "$tf")
  INBLK=$(awk -F': ' '/File system inputs/ {print $2}' "$tf")
  if grep -q 'Exit status' "$tf"; then RC=$(awk -F': ' '/Exit status/ {print $2}' "$tf"); fi
  if grep -q 'Command terminated by signal' "$tf"; then RC=signal; fi
}

declare -A W R C U I
measure() { # KEY NAME CMD...
  local key=$1 name=$2; shift 2
  echo "   $name ..."
  run_timed "$name" "$@"
  W[$key]=$WALL; R[$key]=$RSS_MB; C[$key]=$RC; U[$key]=$CPU_S; I[$key]=$INBLK
  if [ "$RC" != 0 ] && ! { [ "$key" != "${key#rs_}" ] && [ "$RC" = 1 ]; }; then
    echo "   $name exited with $RC; last lines of stderr:"; tail -5 "$OUT/$name.stderr" | sed 's/^/     /'
  fi
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b+0 > 0 && a != "") printf "%.1fx", a/b; else printf "-" }'; }
status() { # KEY
  local k=$1
  if [ "${C[$k]}" = 0 ]; then echo ok
  # regsweep: exit 1 = report written, problems found in the storage
  elif [ "${k#rs_}" != "$k" ] && [ "${C[$k]}" = 1 ]; then echo "ok (exit 1: storage problems reported)"
  else echo "FAILED (exit ${C[$k]})"; fi
}
row() { # KEY LABEL
  [ -n "${W[$1]:-}" ] || return 0
  printf '%-46s %10s %12s %8s   %s\n' "$2" "${W[$1]}" "${R[$1]}" "${U[$1]}" "$(status "$1")"
}

# ---------------------------------------------------------------- --check
if [ "$CHECK" = 1 ]; then
  need skopeo
  CK=$(mktemp -d "${TMPDIR:-/tmp}/regsweep-check.XXXXXX")
  trap '[ -n "${REG_PID:-}" ] && kill "$REG_PID" 2>/dev/null; rm -rf "$CK"' EXIT
  python3 "$HERE/gen_tree.py" --root "$CK/tree" --repos 20 --manifests-per-repo 10 \
    --samples "$CK/samples" "${GEN_ARGS[@]}"
  PORT=$(free_port)
  write_config "$CK/tree" "$CK/registry.yml" "$PORT"
  docker-registry serve "$CK/registry.yml" > "$CK/serve.log" 2>&1 &
  REG_PID=$!
  for _ in $(seq 50); do
    curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break
    python3 -c 'import time; time.sleep(0.1)'
  done
  fail=0
  while read -r repo tag kind; do
    if skopeo copy --all --src-tls-verify=false "docker://127.0.0.1:$PORT/$repo:$tag" \
         "oci:$CK/pull:${repo//\//_}-$tag" > "$CK/copy.log" 2>&1; then
      echo "ok    skopeo copy --all $repo:$tag ($kind)"
    else
      echo "FAIL  skopeo copy --all $repo:$tag ($kind)"; sed 's/^/      /' "$CK/copy.log" | tail -5; fail=1
    fi
  done < "$CK/samples"
  grep -q ' index$' "$CK/samples" || { echo "FAIL  no multi-arch sample tag"; fail=1; }
  if docker-registry garbage-collect --dry-run "$CK/registry.yml" > "$CK/gc.out" 2> "$CK/gc.err"; then
    echo "ok    docker-registry garbage-collect --dry-run ($(grep -c 'eligible for deletion' "$CK/gc.out" || true) eligible)"
  else
    echo "FAIL  docker-registry garbage-collect --dry-run"; tail -5 "$CK/gc.err"; fail=1
  fi
  if docker-registry garbage-collect --dry-run -m "$CK/registry.yml" > "$CK/gc.out" 2> "$CK/gc.err"; then
    echo "ok    docker-registry garbage-collect --dry-run -m ($(grep -c 'eligible for deletion' "$CK/gc.out" || true) eligible)"
  else
    echo "FAIL  docker-registry garbage-collect --dry-run -m"; tail -5 "$CK/gc.err"; fail=1
  fi
  [ "$fail" = 0 ] && echo "check: the generated tree is served and collected by the reference registry" \
                  || { echo "check: FAILED"; exit 1; }
  exit 0
fi

# ---------------------------------------------------------------- --sweep
# Deleting, not just marking: two copies of one generated tree, one swept by
# `garbage-collect -m` (which also breaks multi-arch images), one by
# `regsweep sweep --delete-untagged --apply --offline` (the reference's GC
# runs with the registry stopped too); wall time and peak RSS of each.
if [ "$SWEEP" = 1 ]; then
  SW=$(mktemp -d "${TMPDIR:-/tmp}/regsweep-sweepbench.XXXXXX")
  trap 'rm -rf "$SW"' EXIT
  build_regsweep
  python3 "$HERE/gen_tree.py" --root "$SW/a" "${GEN_ARGS[@]}" | grep -E '^(repositories|manifests|blobs|files):'
  cp -a "$SW/a" "$SW/b"
  write_config "$SW/a" "$SW/a.yml" 5000
  /usr/bin/time -f "%e %M" -o "$SW/ref.time" docker-registry garbage-collect -m "$SW/a.yml" > /dev/null 2>&1 || true
  /usr/bin/time -f "%e %M" -o "$SW/rs.time" "$BIN" sweep "$SW/b" --delete-untagged --apply --offline --grace 0s \
    --upload-age 0s --journal "$SW/journal.jsonl" --quiet > /dev/null || true
  read -r rw rm < "$SW/ref.time"; read -r sw sm < "$SW/rs.time"
  printf '%-54s %10s %12s\n' "tool" "wall s" "peak RSS MB"
  printf '%-54s %10s %12.1f\n' "docker-registry garbage-collect -m" "$rw" "$(awk -v k="$rm" 'BEGIN{print k/1024}')"
  printf '%-54s %10s %12.1f\n' "regsweep sweep --delete-untagged --apply --offline" "$sw" "$(awk -v k="$sm" 'BEGIN{print k/1024}')"
  awk -v a="$rw" -v b="$sw" 'BEGIN { printf "ratio reference/regsweep: %.1fx\n", a/b }'
  echo "files left: reference $(find "$SW/a" -type f | wc -l), regsweep $(find "$SW/b" -type f | wc -l) (the reference also deletes multi-arch children)"
  exit 0
fi

# ---------------------------------------------------------------- --s3
# The reference's S3 driver and regsweep's object_store backend against one
# moto_server bucket. Each command is timed once (there is no page cache to
# warm, and moto is slow enough that a warm-up run would double the run).
if [ "$S3" = 1 ]; then
  need moto_server
  python3 -c 'import boto3' 2>/dev/null || { echo "bench.sh: python3 cannot import boto3 (it comes with moto: run scripts/setup.sh)" >&2; exit 1; }
  unset AWS_CA_BUNDLE  # the reference registry's S3 driver panics on it (regenv.py clean_env)
  [ "$HAVE_REPOS" = 1 ] || GEN_ARGS+=(--repos 10)
  BUCKET=regsweep-bench PREFIX=bench
  mkdir -p "$ROOT"
  WD="$(cd "$ROOT" && pwd)/s3"
  OUT="$WD/out" CONF="$WD/registry.yml"
  rm -rf "$WD/tree" "$OUT" "$WD/moto.log"  # moto.log: its lines are counted as requests
  mkdir -p "$OUT"
  MOTO_PID=""
  stop_moto() { # its own session (s3bench.py start-moto): TERM the group, wait, then KILL
    [ -n "$MOTO_PID" ] || return 0
    kill -- "-$MOTO_PID" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$MOTO_PID" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL -- "-$MOTO_PID" 2>/dev/null || true
  }
  trap 'stop_moto; rm -rf "$WD/tree"' EXIT

  echo "== building regsweep (cargo build --release)"
  build_regsweep
  echo "== generating tree in $WD/tree"
  python3 "$HERE/gen_tree.py" --root "$WD/tree" "${GEN_ARGS[@]}" > "$OUT/gen.txt"
  grep -E '^(repositories|manifests|tags|blobs|files):' "$OUT/gen.txt" | sed 's/^/   /'

  echo "== starting moto_server"
  MOTO=$(python3 "$HERE/s3bench.py" start-moto --workdir "$WD")
  read -r PORT MOTO_PID <<< "$MOTO"
  EP="http://127.0.0.1:$PORT"
  echo "   $EP (pid $MOTO_PID, log $WD/moto.log)"
  echo "== uploading the tree to s3://$BUCKET/$PREFIX/"
  python3 "$HERE/s3bench.py" upload --endpoint "$EP" --bucket "$BUCKET" --prefix "$PREFIX" \
    --root "$WD/tree" | tee "$OUT/upload.txt" | sed 's/^/   /'
  OBJECTS=$(awk '/^objects:/ {print $2}' "$OUT/upload.txt")
  rm -rf "$WD/tree"

  read -r AK SK < <(cd "$HERE" && python3 -c 'import regenv; print(regenv.ACCESS_KEY, regenv.SECRET_KEY)')
  cat > "$CONF" <<EOF
version: 0.1
log:
  level: error
storage:
  s3:
    accesskey: $AK
    secretkey: $SK
    region: us-east-1
    regionendpoint: $EP
    bucket: $BUCKET
    rootdirectory: /$PREFIX
    secure: false
    v4auth: true
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:5000
EOF
  AWS=(env AWS_ACCESS_KEY_ID="$AK" AWS_SECRET_ACCESS_KEY="$SK" AWS_REGION=us-east-1
       AWS_ENDPOINT_URL="$EP" AWS_ALLOW_HTTP=true)
  URL="s3://$BUCKET/$PREFIX"

  # CPU seconds (user+system) moto_server has used so far, and the requests it
  # has served (its log has one line per request)
  moto_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14+$15)/hz}' "/proc/$MOTO_PID/stat"; }
  moto_requests() { grep -c '^127\.0\.0\.1 ' "$WD/moto.log" || true; }
  declare -A MC NR
  s3_measure() { # KEY NAME CMD...
    local cpu req; cpu=$(moto_cpu); req=$(moto_requests)
    measure "$@"
    MC[$1]=$(awk -v a="$cpu" -v b="$(moto_cpu)" 'BEGIN {printf "%.1f", b-a}')
    NR[$1]=$(( $(moto_requests) - req ))
  }

  LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "== timing (one run each)"
  s3_measure ref_m reference-s3-m docker-registry garbage-collect --dry-run -m "$CONF"
  s3_measure rs_m regsweep-s3-m "${AWS[@]}" "$BIN" report "$URL" --delete-untagged --format json \
    --output "$OUT/regsweep-m.json" --quiet
  KEEP_BLOBS="$OUT/reference.blobs" \
    s3_measure ref_keep reference-s3 docker-registry garbage-collect --dry-run "$CONF"
  s3_measure rs_keep regsweep-s3 "${AWS[@]}" "$BIN" report "$URL" --format json \
    --output "$OUT/regsweep.json" --quiet
  s3_measure list_floor boto3-list python3 "$HERE/s3bench.py" list --endpoint "$EP" \
    --bucket "$BUCKET" --prefix "$PREFIX"

  summary() { # REPORT_JSON -> "G garbage blobs, M garbage manifests"
    python3 -c 'import json, sys; s = json.load(open(sys.argv[1]))["summary"]; print("%d garbage blobs, %d garbage manifests" % (s["garbage_blobs"], s["garbage_manifests"]))' "$1" 2>/dev/null || echo "(no report)"
  }
  s3row() { # KEY LABEL
    [ -n "${W[$1]:-}" ] || return 0
    printf '%-34s %8s %8s %6s %10s %8s   %s\n' "$2" "${W[$1]}" "${R[$1]}" "${U[$1]}" \
      "${NR[$1]}" "${MC[$1]}" "$(status "$1")"
  }

  echo
  echo "== results (S3 on moto_server: $OBJECTS objects, $(awk '/^repositories:/ {print $2}' "$OUT/gen.txt") repositories, $(nproc) CPUs)"
  echo "   load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)"
  printf '%-34s %8s %8s %6s %10s %8s   %s\n' "tool" "wall s" "RSS MB" "CPU s" "requests" "moto s" "status"
  s3row ref_m      "reference gc --dry-run -m"
  s3row rs_m       "regsweep report --delete-untagged"
  s3row ref_keep   "reference gc --dry-run"
  s3row rs_keep    "regsweep report"
  s3row list_floor "boto3: list every object (floor)"
  for m in m keep; do
    printf '%-34s %8s %8s %6s %10s %8s\n' "ratio reference/regsweep ($( [ $m = m ] && echo -m || echo keep))" \
      "$(ratio "${W[ref_$m]}" "${W[rs_$m]}")" "$(ratio "${R[ref_$m]}" "${R[rs_$m]}")" \
      "$(ratio "${U[ref_$m]}" "${U[rs_$m]}")" "$(ratio "${NR[ref_$m]}" "${NR[rs_$m]}")" \
      "$(ratio "${MC[ref_$m]}" "${MC[rs_$m]}")"
  done
  echo "(CPU s: the command's own user+system time; requests and moto s: S3 requests moto_server"
  echo " served and the CPU seconds it spent on them, during the command; moto is one Python process)"
  echo
  echo "objects uploaded:  $OBJECTS ($(grep '^upload:' "$OUT/upload.txt" | cut -d' ' -f2- | sed 's/^ *//'))"
  echo "floor listing:     $(cat "$OUT/boto3-list.stderr")"
  echo "-m:                reference $(cat "$OUT/reference-s3-m.lines")"
  echo "                   regsweep  $(summary "$OUT/regsweep-m.json")"
  echo "                   (these differ legitimately: the reference's -m also deletes the children"
  echo "                   of tagged multi-arch indexes, and the blobs only they use)"
  echo "keep untagged:     reference $(cat "$OUT/reference-s3.lines")"
  echo "                   regsweep  $(summary "$OUT/regsweep.json")"
  CMP_RC=0
  if [ -s "$OUT/regsweep.json" ] && [ "${C[ref_keep]}" = 0 ]; then
    echo "exact check (keep untagged: reference dry-run blobs = regsweep garbage_blobs):"
    python3 "$HERE/s3bench.py" compare --reference "$OUT/reference.blobs" \
      --report "$OUT/regsweep.json" > "$OUT/compare.txt" || CMP_RC=$?
    sed 's/^/   /' "$OUT/compare.txt"
  else
    echo "exact check: not run (a command failed)"; CMP_RC=1
  fi
  echo "details (time -v output, stderr) in $OUT"
  [ "$CMP_RC" = 0 ] && [ "${C[ref_m]}" = 0 ] && [ "${C[ref_keep]}" = 0 ] \
    && [ "${C[rs_m]}" -le 1 ] 2>/dev/null && [ "${C[rs_keep]}" -le 1 ] 2>/dev/null
  exit $?
fi

# ---------------------------------------------------------------- benchmark
mkdir -p "$ROOT"
ROOT=$(cd "$ROOT" && pwd)
TREE="$ROOT/tree"
CONF="$ROOT/registry.yml"
OUT="$ROOT/out"
mkdir -p "$OUT"
STAMP="$ROOT/tree.generated"

if [ "$FRESH" = 1 ] || [ ! -f "$STAMP" ] || [ ! -d "$TREE/docker/registry/v2" ]; then
  echo "== generating tree in $TREE"
  rm -f "$STAMP"
  if [ -e "$TREE" ]; then
    # deleting ~2M inodes can take many minutes: do it in the background while
    # generating, and wait for it before measuring
    TRASH="$ROOT/trash.$$"
    mv "$TREE" "$TRASH"
    echo "   removing the old tree in the background ($TRASH)"
    nice -n 19 rm -rf "$TRASH" &
    RM_PID=$!
  fi
  python3 "$HERE/gen_tree.py" --root "$TREE" "${GEN_ARGS[@]}" | tee "$OUT/gen.txt"
  cp "$OUT/gen.txt" "$STAMP"
else
  echo "== using existing tree $TREE (--fresh to regenerate)"
  grep -E '^(repositories|manifests|blobs|files):' "$STAMP" || true
fi
write_config "$TREE" "$CONF" 5000

echo "== building regsweep (cargo build --release)"
build_regsweep

REF_CMD=(docker-registry garbage-collect --dry-run -m "$CONF")
RS_CMD=("$BIN" report "$TREE" --delete-untagged --format json --output "$OUT/regsweep-report.json")
FIND_CMD=(find "$TREE" -type f)

if [ -n "${RM_PID:-}" ]; then
  echo "== waiting for the old tree's removal to finish"
  wait "$RM_PID" || true
fi

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# Each command is run once, untimed, right before it is timed: this VM
# evicts page and dentry cache that has been idle for a minute or two, so a
# warm-up long before (say, before the reference's three minutes) would be
# cold again by the time its command is timed. regsweep's warm run is timed
# three times and the median is kept (all three are printed).
echo "== warm cache (each command warmed by an untimed run right before)"
"${FIND_CMD[@]}" > /dev/null
measure find_warm find-warm "${FIND_CMD[@]}"
"${REF_CMD[@]}" > /dev/null 2>&1 || true
measure ref_warm reference-warm "${REF_CMD[@]}"
"${RS_CMD[@]}" > /dev/null 2>&1 || true
RS_RUNS=()
for i in 1 2 3 4 5; do
  measure rs_warm "regsweep-warm-$i" "${RS_CMD[@]}"
  RS_RUNS+=("${W[rs_warm]} ${R[rs_warm]} ${C[rs_warm]} ${U[rs_warm]} ${I[rs_warm]}")
done
read -r 'W[rs_warm]' 'R[rs_warm]' 'C[rs_warm]' 'U[rs_warm]' 'I[rs_warm]' < <(printf '%s\n' "${RS_RUNS[@]}" | sort -n | sed -n 3p)
echo "   regsweep warm runs (wall s, peak RSS MB, status, CPU s, blocks read): $(printf '[%s] ' "${RS_RUNS[@]}")"
echo "   blocks read from disk by the timed warm runs: reference ${I[ref_warm]}, find ${I[find_warm]}"
if grep -qs '^on$' /sys/kernel/mm/damon/admin/kdamonds/*/state; then
  echo "   note: DAMON (kdamond) is on: it pages out memory it sees idle, so a 'warm' run may"
  echo "   still read from disk what the runs before it read (see blocks read)"
fi

# images: the per-manifest listing on the same tree, against report's time
# and memory (median of three); then with a generated 1 GiB registry log
# (scripts/gen_access_log.py): the difference is the log's parse time.
echo "== images (warm) and access-log parsing"
IMG_CMD=("$BIN" images "$TREE" --format json --output "$OUT/regsweep-images.json" -q)
"${IMG_CMD[@]}" > /dev/null 2>&1 || true
IMG_RUNS=()
for i in 1 2 3; do
  measure img_warm "regsweep-images-$i" "${IMG_CMD[@]}"
  IMG_RUNS+=("${W[img_warm]} ${R[img_warm]} ${C[img_warm]} ${U[img_warm]} ${I[img_warm]}")
done
read -r 'W[img_warm]' 'R[img_warm]' 'C[img_warm]' 'U[img_warm]' 'I[img_warm]' < <(printf '%s\n' "${IMG_RUNS[@]}" | sort -n | sed -n 2p)
LOG="$ROOT/registry-1g.log"
[ -s "$LOG" ] || python3 "$HERE/gen_access_log.py" --mb 1024 --out "$LOG" > /dev/null
LOG_BYTES=$(stat -c %s "$LOG")
cat "$LOG" > /dev/null
IMGL_CMD=("$BIN" images "$TREE" --access-log "$LOG" --format json --output "$OUT/regsweep-images-log.json" -q)
"${IMGL_CMD[@]}" > /dev/null 2>&1 || true
measure imgl_warm regsweep-images-log "${IMGL_CMD[@]}"

COLD_NOTE=""
drop_caches() { sync && echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null
if [ "$COLD" = 1 ]; then
  if drop_caches; then
    echo "== cold cache (sync; echo 3 > /proc/sys/vm/drop_caches before each)"
    drop_caches; measure find_cold find-cold "${FIND_CMD[@]}"
    drop_caches; measure ref_cold reference-cold "${REF_CMD[@]}"
    drop_caches; measure rs_cold regsweep-cold "${RS_CMD[@]}"
  else
    COLD_NOTE="cold cache: skipped (cannot write /proc/sys/vm/drop_caches here)"
  fi
else
  COLD_NOTE="cold cache: skipped (--no-cold)"
fi

if [ "$REHASH" = 1 ]; then
  # verify --rehash re-hashes every blob; sha256sum over the same files, on
  # every core, is the yardstick. verify also reads every link and lists
  # every directory (an audit): 2.5 times the files sha256sum reads. Each
  # command is run once, untimed, right before it is timed (some machines
  # evict page cache that has been idle for a minute: a warm-up long before
  # would be cold again). CPU seconds (user+system) are shown too: other work
  # on the machine skews wall time more than CPU time.
  echo "== rehash (warm): regsweep verify --rehash vs sha256sum on $(nproc) cores"
  HASH_CMD=(sh -c "find '$TREE/docker/registry/v2/blobs' -name data -print0 | xargs -0 -P$(nproc) -n 512 sha256sum")
  VERIFY_CMD=("$BIN" verify "$TREE" --rehash --format json --output "$OUT/regsweep-verify.json")
  VERIFY_PLAIN=("$BIN" verify "$TREE" --format json --output "$OUT/regsweep-verify-plain.json")
  "${HASH_CMD[@]}" > /dev/null 2>&1 || true
  measure sha_warm sha256sum-warm "${HASH_CMD[@]}"
  "${VERIFY_CMD[@]}" > /dev/null 2>&1 || true
  measure vr_warm regsweep-verify-rehash-warm "${VERIFY_CMD[@]}"
  measure vp_warm regsweep-verify-warm "${VERIFY_PLAIN[@]}"
fi

echo
echo "== results ($(grep -E '^files:' "$STAMP" | awk '{print $2}') files, $(grep -E '^repositories:' "$STAMP" | awk '{print $2}') repositories, $(nproc) CPUs)"
echo "   load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)"
printf '%-46s %10s %12s %8s   %s\n' "tool" "wall s" "peak RSS MB" "CPU s" "status"
for c in warm cold; do
  row "ref_$c"  "reference gc --dry-run -m ($c)"
  row "rs_$c"   "regsweep report --delete-untagged ($c)"
  row "find_$c" "find -type f | wc -l ($c)"
done
row img_warm "regsweep images (warm)"
row imgl_warm "regsweep images --access-log 1 GiB (warm)"
if [ -n "${W[img_warm]:-}" ]; then
  printf '%-46s %10s %12s %8s\n' "ratio images/report (warm)" \
    "$(ratio "${W[img_warm]}" "${W[rs_warm]}")" "$(ratio "${R[img_warm]}" "${R[rs_warm]}")" \
    "$(ratio "${U[img_warm]}" "${U[rs_warm]}")"
  awk -v b="$LOG_BYTES" -v a="${W[imgl_warm]}" -v c="${W[img_warm]}" 'BEGIN {
    d = a - c; if (d > 0) printf "%-46s %10.0f MB/s (%.0f MB in %.2f s more)\n", "access-log parsing", b/1e6/d, b/1e6, d }'
fi
row sha_warm "sha256sum of every blob, all cores (warm)"
row vr_warm "regsweep verify --rehash (warm)"
row vp_warm "regsweep verify (warm)"
if [ -n "${W[vr_warm]:-}" ]; then
  printf '%-46s %10s\n' "ratio sha256sum/verify --rehash" "$(ratio "${W[sha_warm]}" "${W[vr_warm]}")"
  printf '%-46s %10s %10s %10s\n' "CPU seconds (user+system):" "sha256sum" "--rehash" "verify"
  printf '%-46s %10s %10s %10s\n' "" "${U[sha_warm]}" "${U[vr_warm]}" "${U[vp_warm]}"
fi
for c in warm cold; do
  [ -n "${W[ref_$c]:-}" ] || continue
  printf '%-46s %10s %12s %8s\n' "ratio reference/regsweep ($c)" \
    "$(ratio "${W[ref_$c]}" "${W[rs_$c]}")" "$(ratio "${R[ref_$c]}" "${R[rs_$c]}")" \
    "$(ratio "${U[ref_$c]}" "${U[rs_$c]}")"
done
# CPU seconds over wall seconds: how many cores each tool kept busy.
printf '%-46s reference %s, regsweep %s\n' "cores busy, warm (CPU s / wall s)" \
  "$(ratio "${U[ref_warm]}" "${W[ref_warm]}" | tr -d x)" "$(ratio "${U[rs_warm]}" "${W[rs_warm]}" | tr -d x)"
[ -n "$COLD_NOTE" ] && echo "$COLD_NOTE"
echo "S3: see bench.sh --s3 (moto_server)"
echo
echo "reference output: $(cat "$OUT/reference-warm.lines")"
echo "find:             $(awk '{print $1}' "$OUT/find-warm.lines") files"
if [ -s "$OUT/regsweep-report.json" ]; then
  echo "regsweep report:  $OUT/regsweep-report.json ($(wc -c < "$OUT/regsweep-report.json") bytes)"
  python3 - "$OUT/regsweep-report.json" <<'EOF' || true
import json, sys
d = json.load(open(sys.argv[1]))
def scal(o, pre=""):
    for k, v in o.items():
        if isinstance(v, (int, float, bool)) or (isinstance(v, str) and len(v) < 60):
            print(f"  {pre}{k}: {v}")
        elif isinstance(v, dict) and len(v) < 40:
            scal(v, pre + k + ".")
if isinstance(d, dict):
    scal(d)
EOF
fi
echo "details (time -v output, stderr) in $OUT"
[ "${C[rs_warm]}" -le 1 ] 2>/dev/null && [ "${C[ref_warm]}" = 0 ]
