#!/usr/bin/env bash
# The benchmark harness: event-to-running vs a polling baseline, backlog drain, sweep at scale,
# idle footprint, fleet waves, S3 archive loads, the swap's downtime floor per Engine — on the
# local real stack (moto, local registry, Docker Engine). Prints each benchmark's table, then a summary, and writes bench/results/latest.json.
# Takes about 15 minutes (5 of them the idle footprint; BENCH_IDLE_SECONDS shortens it).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >/dev/null
# What an earlier, interrupted run left is named but not blamed on this one.
baseline=$(mktemp)
./scripts/leftovers.sh --baseline "$baseline"

parts=$(mktemp -d)
trap 'rm -rf "$parts" "$baseline"' EXIT
export BENCH_OUT_DIR="$parts"
started=$(date +%s)
# Fleet waves: push -> the last of three waves running; archive load: memory while a 200 MB
# archive streams from S3 into the Engine.
for b in deploy_latency intake_drain sweep_scale footprint window_opening gate_checks \
  fleet_waves archive_load; do
  printf '\n\033[1m== %s\033[0m\n' "$b"
  cargo bench --quiet --bench "$b" 2>&1 | grep -v '^setup:' || { echo "benchmark $b failed" >&2; exit 1; }
done
# The Engine's own floor for a swap's downtime (the agent's sequence by the Docker CLI), on the
# system Engine and on each side Engine of the matrix (started and removed by the script).
for engine in system docker28 docker28-containerd docker26; do
  printf '\n\033[1m== %s\033[0m\n' "downtime_floor ($engine)"
  .venv/bin/python bench/downtime_floor.py 5 --engine "$engine" --out "$parts/downtime_per_swap.json" ||
    { echo "downtime_floor on $engine failed" >&2; exit 1; }
done
# The soak (about an hour) is bench/soak.sh, run on its own.
.venv/bin/python bench/report.py "$parts" "$(( $(date +%s) - started ))" bench/results/latest.json
./scripts/leftovers.sh --since "$baseline"
