#!/usr/bin/env bash
# Installs everything the tests, the demo and the benchmarks need on a fresh Debian 12 host:
# Debian packages, a Python venv with the AWS emulator (moto), and the Rust build.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION="5.2.5"
APT_PACKAGES=(python3-venv)

log() { printf '[setup] %s\n' "$*"; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if python3 -m venv --help >/dev/null 2>&1 && [ "${missing[*]}" = "python3-venv" ]; then
    log "python3 has venv already; skipping python3-venv"
  else
    log "installing Debian packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
  fi
fi

if [ ! -x .venv/bin/moto_server ] || ! .venv/bin/pip show moto 2>/dev/null | grep -q "^Version: ${MOTO_VERSION}$"; then
  log "creating .venv with moto[server]==${MOTO_VERSION}"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q "moto[server]==${MOTO_VERSION}"
fi
log "moto: $(.venv/bin/pip show moto | sed -n 's/^Version: //p')"

log "building (cargo build --all-targets)"
cargo build --quiet --all-targets
log "done"
