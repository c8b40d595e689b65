#!/usr/bin/env bash
# Regenerate fixtures/registry/: a small registry tree written by the real
# reference registry (docker-registry 2.8.x) from push_scenario.py --seed 1 --small.
# Also writes fixtures/registry.scenario.json (what was pushed) and
# fixtures/registry.gc-dry-run.txt / registry.gc-dry-run-m.txt (the reference's
# garbage-collect --dry-run output, without and with -m, on that tree).
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)
bash scripts/setup.sh

work=$(mktemp -d)
cleanup() { python3 "$here/scripts/regenv.py" stop --workdir "$work" || true; rm -rf "$work"; }
trap cleanup EXIT

python3 scripts/regenv.py start --backend fs --workdir "$work" >/dev/null
reg=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["registry"])' "$work/env.json")
python3 scripts/push_scenario.py --registry "$reg" --seed 1 --small --out "$work/scenario.json"
python3 scripts/regenv.py stop --workdir "$work"

# Record the reference's verdicts (dry runs: the tree is not changed).
docker-registry garbage-collect --dry-run "$work/config.yml" 2>/dev/null \
    | grep 'eligible for deletion' | sort >"$work/gc.txt"
docker-registry garbage-collect --dry-run -m "$work/config.yml" 2>/dev/null \
    | grep 'eligible for deletion' | sort >"$work/gc-m.txt"

rm -rf fixtures/registry
mkdir -p fixtures
cp -a "$work/root" fixtures/registry
cp "$work/scenario.json" fixtures/registry.scenario.json
cp "$work/gc.txt" fixtures/registry.gc-dry-run.txt
cp "$work/gc-m.txt" fixtures/registry.gc-dry-run-m.txt
# The abandoned upload's startedat is a wall-clock time; it stays as written.
echo "fixture: $(find fixtures/registry -type f | wc -l) files, $(du -sk fixtures/registry | cut -f1) KiB"
# git drops empty directories; list them so nobody relies on them.
empty=$(find fixtures/registry -type d -empty | wc -l)
[ "$empty" = 0 ] || echo "fixture: note: $empty empty directories (git will not keep them)"
