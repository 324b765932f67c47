#!/usr/bin/env bash
# The soak (outside CI, not part of bench/run.sh): a year of pushes through `ecr-deployd run`
# on the local real stack, growth per 1,000 deploys. Full scale (10,000 deploys, 100,000
# messages) takes about an hour; SOAK_DEPLOYS scales it (e.g. SOAK_DEPLOYS=600 for minutes).
# Merges its figures into bench/results/latest.json under "soak".
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >/dev/null
# What an earlier, interrupted run left is named but not blamed on this one.
baseline=$(mktemp)
./scripts/leftovers.sh --baseline "$baseline"
parts=$(mktemp -d)
trap 'rm -rf "$parts" "$baseline"' EXIT
export BENCH_OUT_DIR="$parts"
cargo bench --quiet --bench soak 2>&1 | grep -v '^setup:'
.venv/bin/python - "$parts/soak.json" bench/results/latest.json <<'PY'
import json, subprocess, sys
part, out = sys.argv[1], sys.argv[2]
soak = json.load(open(part))
soak["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
results = json.load(open(out))
results["soak"] = soak
open(out, "w").write(json.dumps(results, indent=2) + "\n")
print(f"written: {out} (soak)")
PY
./scripts/leftovers.sh --since "$baseline"
