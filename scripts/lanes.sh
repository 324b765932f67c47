#!/usr/bin/env bash
# Runs test binaries in lanes side by side: the integration tests mostly wait (on a window's
# minute, a bake, a health gate, an Engine), so one after the other they leave the machine
# idle. A lane runs its binaries in order, at most JOBS at a time; each binary runs on the
# Engine of the matrix it names (tests/common/matrix.rs; docker20, the system's, when it
# names none). A binary on a side Engine or Podman 5 starts an Engine or service of its own.
#
#   scripts/lanes.sh LANE...      LANE = JOBS:[ENGINE@]BINARY,[ENGINE@]BINARY,...
#                                 e.g. 3:swarm,control,* 1:docker26@deploy,podman5@podman
#
# BINARY `*` stands for every test binary the lane does not name otherwise (on that Engine),
# in name order: a new test file runs without being listed here.
# Builds the test binaries once (`cargo test --no-run`), then runs them from the crate root
# with EDT_ENGINE set, as `cargo test --test BINARY` would. Each binary's output goes to
# target/lanes/ENGINE-BINARY.log and is printed whole when it fails; a line per binary says
# how it ended and how long it took. Exits non-zero if any binary failed (all still run).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[lanes] %s\n' "$*"; }

[ "$#" -gt 0 ] || { log "usage: scripts/lanes.sh JOBS:[ENGINE@]BINARY,... ..."; exit 2; }
for lane in "$@"; do
  [[ "$lane" =~ ^[1-9]:([a-z0-9-]+@)?([a-z0-9_]+|\*)(,([a-z0-9-]+@)?([a-z0-9_]+|\*))*$ ]] ||
    { log "expected JOBS:[ENGINE@]BINARY,... got '$lane'"; exit 2; }
done

# Test target name -> executable, from cargo's own build messages; a compiler error is printed
# as cargo would print it, and stops the run.
binaries=$(cargo test --quiet --no-run --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    t = m.get("target", {})
    if m.get("reason") == "compiler-message" and m["message"].get("level") == "error":
        sys.stderr.write(m["message"].get("rendered") or m["message"]["message"])
    if m.get("reason") == "compiler-artifact" and t.get("kind") == ["test"] and m.get("executable"):
        print(t["name"], m["executable"])
') || { log "the test binaries did not build (errors above)"; exit 1; }
[ -n "$binaries" ] || { log "cargo test --no-run built no test binaries"; exit 1; }

out=target/lanes
rm -rf "$out"
mkdir -p "$out"

# run ENGINE BINARY: one test binary; its status in $out/ENGINE-BINARY.status.
run() {
  local engine=$1 name=$2 exe start status=0
  local base="$out/$engine-$name"
  exe=$(awk -v n="$name" '$1 == n { print $2 }' <<<"$binaries")
  start=$(date +%s)
  if [ -z "$exe" ]; then
    echo "no test binary named $name" >"$base.log"
    status=1
  else
    EDT_ENGINE=$engine "$exe" >"$base.log" 2>&1 || status=$?
  fi
  echo "$status" >"$base.status"
  log "$engine $name: $([ "$status" = 0 ] && echo ok || echo "FAILED ($status)") in $(($(date +%s) - start)) s"
  if [ "$status" != 0 ]; then
    printf '[lanes] ---- %s %s ----\n' "$engine" "$name"
    cat "$base.log"
  fi
}

# expand ITEM,...: one ENGINE@BINARY per line, `*` expanded (see above).
expand() {
  local items=" ${1//,/ } " item engine name list
  IFS=, read -ra list <<<"$1"
  for item in "${list[@]}"; do
    [[ "$item" == *@* ]] || item="docker20@$item"
    engine=${item%@*}
    if [ "${item#*@}" != "*" ]; then
      echo "$item"
      continue
    fi
    for name in $(awk '{ print $1 }' <<<"$binaries" | sort); do
      [[ "$items" == *" $name "* || "$items" == *" $engine@$name "* ]] || echo "$engine@$name"
    done
  done
}

# lane JOBS:ITEM,...: the binaries in order, JOBS at a time.
lane() {
  local jobs=${1%%:*} item list
  mapfile -t list < <(expand "${1#*:}")
  for item in "${list[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    run "${item%@*}" "${item#*@}" &
  done
  wait
}

started=$(date +%s)
for l in "$@"; do lane "$l" & done
wait
failed=()
for f in "$out"/*.status; do
  [ "$(cat "$f")" = 0 ] || failed+=("$(basename "$f" .status)")
done
log "all lanes done in $(($(date +%s) - started)) s"
if [ "${#failed[@]}" -gt 0 ]; then
  log "failed: ${failed[*]}"
  exit 1
fi
