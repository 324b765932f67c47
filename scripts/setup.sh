#!/usr/bin/env bash
# Installs everything the tests, the demo and the benchmarks need on a fresh Debian 12 host:
# Debian packages, a Python venv with the AWS emulator (moto), and the Rust build.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# docker-registry: the local registry the tests push to; busybox-static: the test images'
# only binary; apache2-utils: htpasswd for the registry's basic auth; openssl: the tests'
# cosign signer; prometheus: promtool (metrics lint, alert rule tests); docker-compose:
# Compose v1 as a real client of the containers the agent re-creates; podman: the tests' own
# Podman service (its Docker-compatible API), beside the Docker Engine; chromium: the headless
# browser that renders `fleet --html` in tests/ledger.rs.
APT_PACKAGES=(python3-venv docker-registry busybox-static apache2-utils curl openssl prometheus docker-compose podman chromium)

log() { printf '[setup] %s\n' "$*"; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq || log "apt-get update failed; trying the install anyway"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
# The Debian package may start its own registry service; the tests start theirs on free ports.

if ! docker info >/dev/null 2>&1; then
  log "Docker Engine not reachable: installing/starting it"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  command -v dockerd >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker.io
  ($SUDO dockerd >/tmp/dockerd.log 2>&1 &)
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { log "Docker Engine did not start; see /tmp/dockerd.log"; exit 1; }
fi
log "docker: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"

# The Python tools (moto, cfn-lint, checkov, python-hcl2, pytest), pinned in one file and
# installed in one resolver run; re-installed only when that file changes.
reqs=scripts/python-requirements.txt
if [ ! -x .venv/bin/python ] || ! cmp -s "$reqs" .venv/.requirements; then
  log "installing Python tools into .venv ($reqs)"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r "$reqs"
  cp "$reqs" .venv/.requirements
fi
log "moto: $(.venv/bin/pip show moto | sed -n 's/^Version: //p')"

# The real signing tools the signature tests sign with (cosign 2 and 3, notation), the
# engine matrix's side Engines (Docker 28 with containerd 2, Docker 26), Podman 5 and the
# clients Compose v2 and buildx, from Debian's newer suites into
# .tools/, leaving the system's apt sources and packages alone.
./scripts/fetch-tools.sh
# Podman 5 of the matrix, pointed at trixie's glibc (Debian 12's is too old for it).
./scripts/podman5.sh

# cargo deny: the licences, bans and sources of every dependency (scripts/test.sh).
CARGO_DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q "$CARGO_DENY_VERSION"; then
  log "installing cargo-deny $CARGO_DENY_VERSION"
  cargo install --quiet --locked cargo-deny --version "$CARGO_DENY_VERSION"
fi

log "building (cargo build --all-targets)"
cargo build --quiet --all-targets
log "done"
