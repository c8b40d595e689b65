#!/usr/bin/env bash
# The project's single test command: install the real components, then run
# every test (unit, integration against the reference registry, benches built).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The reference registry's S3 driver panics when AWS_CA_BUNDLE is set; the
# tests unset it for the processes they start, but don't leak it elsewhere either.
cargo test --release --all-targets "$@"
