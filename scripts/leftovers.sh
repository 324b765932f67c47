#!/usr/bin/env bash
# Fails when the tests or the benchmarks left anything behind on this Docker Engine: every
# container, service, network and volume they create carries the label ecr-deployd.test, every
# image they build the label ecr-deployd.test.image (images pulled from a test registry are
# removed with it); the side Engines of the engine matrix left nothing and docker0 is there.
# Run at the end of the test command and of bench/run.sh.
#
#   leftovers.sh                  every such thing on this machine fails
#   leftovers.sh --baseline FILE  records what is already here (before a run), exits 0
#   leftovers.sh --since FILE     fails only on what is here now and was not in FILE: what an
#                                 earlier, interrupted run left is named, not blamed on this one
set -euo pipefail
mode="${1:-}"
file="${2:-}"
case "$mode" in
  "" ) ;;
  --baseline | --since) [ -n "$file" ] || { echo "leftovers.sh: $mode needs a file" >&2; exit 2; } ;;
  *) echo "leftovers.sh: unknown option '$mode' (expected --baseline FILE or --since FILE)" >&2; exit 2 ;;
esac

# One line per thing: "<kind>: <name>".
listing() {
  local kind
  each() { kind="$1"; shift; "$@" 2>/dev/null | sed "/^\$/d; s|^|$kind: |" || true; }
  each containers docker ps -a --filter label=ecr-deployd.test --format '{{.Names}} ({{.State}})'
  if docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null | grep -q true; then
    each services docker service ls --filter label=ecr-deployd.test --format '{{.Name}}'
  fi
  each networks docker network ls --filter label=ecr-deployd.test --format '{{.Name}}'
  each volumes docker volume ls --filter label=ecr-deployd.test --format '{{.Name}}'
  each images docker images -a --filter label=ecr-deployd.test.image --format '{{.Repository}}:{{.Tag}} {{.ID}}'
  docker images --format '{{.Repository}}:{{.Tag}} {{.ID}}' 2>/dev/null \
    | grep -E '^(127\.0\.0\.1|localhost):[0-9]+/' | sed 's|^|images from test registries: |' || true
  # The engine matrix's side Engines (tests/common/engine.rs) take their bridge, daemon and
  # directories with them.
  ip -br link 2>/dev/null | awk '$1 ~ /^edtb[0-9]+$/ { print "side Engine bridges: " $1 }'
  pgrep -af 'dockerd --config-file /tmp/edt-engine-' | sed 's|^|side Engine daemons: |' || true
  ls -d /tmp/edt-engine-* 2>/dev/null | sed 's|^|side Engine directories: |' || true
  # The matrix's Podman 5 services (tests/common/podman.rs, podman5.rs): their process, /tmp
  # root, default network's bridge (edtp5bN) and, once none runs, netavark's nftables table.
  pgrep -af 'podman5/bin/podman .*system service' | sed 's|^|Podman 5 services: |' || true
  ls -d /tmp/edt-podman5-* 2>/dev/null | sed 's|^|Podman 5 directories: |' || true
  ip -br link 2>/dev/null | awk '$1 ~ /^edtp5b[0-9]+$/ { print "Podman 5 bridges: " $1 }'
  if ! pgrep -f 'podman5/bin/podman .*system service' >/dev/null; then
    nft list table inet netavark >/dev/null 2>&1 && echo "Podman 5's nftables table: inet netavark"
  fi
  return 0
}

now=$(listing | sort -u)
if [ "$mode" = --baseline ]; then
  printf '%s\n' "$now" >"$file"
  [ -z "$now" ] || printf '[leftovers] already here before this run (not its doing):\n%s\n' "$now" | sed '2,$s/^/  /' >&2
  exit 0
fi
left="$now"
if [ "$mode" = --since ]; then
  left=$(comm -23 <(printf '%s\n' "$now") <(sort -u "$file") | sed '/^$/d')
  before=$(comm -12 <(printf '%s\n' "$now") <(sort -u "$file") | sed '/^$/d')
  [ -z "$before" ] || printf '[leftovers] still here from before this run (not its doing):\n%s\n' "$before" | sed '2,$s/^/  /' >&2
fi
ip link show docker0 >/dev/null 2>&1 || left+=$'\n'"the system's bridge: docker0 is gone"
left=$(printf '%s\n' "$left" | sed '/^$/d')
if [ -n "$left" ]; then
  printf '[leftovers] the run left these behind:\n%s\n' "$left" | sed '2,$s/^/  /' >&2
  exit 1
fi
echo "[leftovers] none: every container, service, network, volume and image the run created is gone"
