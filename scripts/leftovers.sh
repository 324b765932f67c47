#!/usr/bin/env bash
# Fails when the tests or the benchmarks left anything behind on this Docker Engine: every
# container, service, network and volume they create carries the label ecr-deployd.test, every
# image they build the label ecr-deployd.test.image (images pulled from a test registry are
# removed with it); the side Engines of the engine matrix left nothing and docker0 is there.
# Run at the end of the test command and of bench/run.sh.
set -euo pipefail
left=""
add() { [ -z "$2" ] || left+="$1:"$'\n'"$(printf '%s\n' "$2" | sed 's/^/  /')"$'\n'; }
add containers "$(docker ps -a --filter label=ecr-deployd.test --format '{{.Names}} ({{.Status}})')"
if docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null | grep -q true; then
  add services "$(docker service ls --filter label=ecr-deployd.test --format '{{.Name}}')"
fi
add networks "$(docker network ls --filter label=ecr-deployd.test --format '{{.Name}}')"
add volumes "$(docker volume ls --filter label=ecr-deployd.test --format '{{.Name}}')"
add images "$(docker images -a --filter label=ecr-deployd.test.image --format '{{.Repository}}:{{.Tag}} {{.ID}}')"
add "images from test registries" "$(docker images --format '{{.Repository}}:{{.Tag}} {{.ID}}' | grep -E '^(127\.0\.0\.1|localhost):[0-9]+/' || true)"
# The engine matrix's side Engines (tests/common/engine.rs) take their bridge, daemon and
# directories with them, and never the system's docker0.
add "side Engine bridges" "$(ip -br link 2>/dev/null | awk '$1 ~ /^edtb[0-9]+$/ { print $1 }')"
add "side Engine daemons" "$(pgrep -af 'dockerd --config-file /tmp/edt-engine-' || true)"
add "side Engine directories" "$(ls -d /tmp/edt-engine-* 2>/dev/null || true)"
# The matrix's Podman 5 services (tests/common/podman.rs, podman5.rs): their process, /tmp
# root, default network's bridge (edtp5bN) and, once none runs, netavark's nftables table.
add "Podman 5 services" "$(pgrep -af 'podman5/bin/podman .*system service' || true)"
add "Podman 5 directories" "$(ls -d /tmp/edt-podman5-* 2>/dev/null || true)"
add "Podman 5 bridges" "$(ip -br link 2>/dev/null | awk '$1 ~ /^edtp5b[0-9]+$/ { print $1 }')"
if ! pgrep -f 'podman5/bin/podman .*system service' >/dev/null; then
  add "Podman 5's nftables table" "$(nft list table inet netavark >/dev/null 2>&1 && echo 'inet netavark' || true)"
fi
ip link show docker0 >/dev/null 2>&1 || add "the system's bridge" "docker0 is gone"
if [ -n "$left" ]; then
  printf '[leftovers] the run left these behind:\n%s' "$left" >&2
  exit 1
fi
echo "[leftovers] none: every container, service, network, volume and image the run created is gone"
