#!/usr/bin/env bash
# Install the real components the integration tests use:
#   - docker-registry (CNCF distribution 2.8.x, Debian package) - the reference
#   - skopeo (a real registry client)
#   - moto_server (an S3 server, PyPI moto[server])
#   - chromium (headless: renders the HTML reports in the tests)
#   - promtool (Debian's prometheus package: checks the metrics files)
# Idempotent: does nothing when everything is already there.
set -euo pipefail

log() { echo "setup: $*" >&2; }

SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    fi
fi

need_apt=()
command -v docker-registry >/dev/null 2>&1 || need_apt+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need_apt+=(skopeo)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)

if [ "${#need_apt[@]}" -gt 0 ]; then
    log "installing ${need_apt[*]} with apt-get"
    # Keep the package's postinst from starting a daemon where an init
    # system exists (there is none here, but don't depend on that).
    policy_rc=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy_rc=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy_rc" >/dev/null
        $SUDO chmod +x "$policy_rc"
    fi
    rc=0
    {
        $SUDO apt-get update -qq &&
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${need_apt[@]}"
    } >/tmp/regsweep-setup-apt.log 2>&1 || rc=$?
    if [ -n "$policy_rc" ]; then $SUDO rm -f "$policy_rc"; fi
    if [ "$rc" != "0" ]; then
        tail -n 30 /tmp/regsweep-setup-apt.log >&2
        log "apt-get install failed (exit $rc)"
        exit 1
    fi
fi

if ! command -v moto_server >/dev/null 2>&1; then
    log "installing moto[server] with pip"
    py=python3
    if ! "$py" -m pip --version >/dev/null 2>&1; then
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
    fi
    if ! "$py" -m pip install -q 'moto[server]' >/tmp/regsweep-setup-pip.log 2>&1; then
        # Debian's externally-managed Python refuses plain pip installs.
        "$py" -m pip install -q --break-system-packages 'moto[server]' \
            >>/tmp/regsweep-setup-pip.log 2>&1 || {
            tail -n 30 /tmp/regsweep-setup-pip.log >&2
            log "pip install moto[server] failed"
            exit 1
        }
    fi
    hash -r
fi

# The tests pick their own free ports; still, make sure the Debian package did
# not leave a registry daemon listening on the default :5000 (it would
# confuse anyone who runs scripts by hand).
if command -v service >/dev/null 2>&1; then
    $SUDO service docker-registry stop >/dev/null 2>&1 || true
    $SUDO service prometheus stop >/dev/null 2>&1 || true
fi
if command -v pgrep >/dev/null 2>&1; then
    for pid in $(pgrep -x docker-registry 2>/dev/null || true); do
        # Only a daemon serving the package's default config.
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q '/etc/docker/registry/config.yml'; then
            log "stopping packaged registry daemon (pid $pid)"
            $SUDO kill "$pid" 2>/dev/null || true
        fi
    done
fi

for bin in docker-registry skopeo moto_server python3 chromium promtool; do
    command -v "$bin" >/dev/null 2>&1 || { log "missing $bin after setup"; exit 1; }
done
log "ok: $(docker-registry --version 2>&1 | head -n1); $(skopeo --version); moto_server $(command -v moto_server); $(chromium --version 2>/dev/null | head -n1); $(promtool --version 2>&1 | head -n1)"
