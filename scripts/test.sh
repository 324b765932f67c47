#!/usr/bin/env bash
# The test command: installs what the tests need, then format check, lints and every test
# (unit tests and integration tests against a real moto server started by the tests), then
# the static checks of infra/, the alerting rules, the packaging tests (they need root), and
# a check that nothing the tests created is left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# What an earlier, interrupted run left is named but not blamed on this one.
baseline=$(mktemp)
./scripts/leftovers.sh --baseline "$baseline"
trap 'rm -f "$baseline"' EXIT
cargo fmt --all -- --check
cargo clippy --quiet --all-targets -- -D warnings
# Our own supply chain (deny.toml): licences, banned and duplicate crates, sources. The
# advisories need the RustSec database from its git host: checked where it can be fetched.
cargo deny --log-level error check licenses bans sources
if cargo deny --log-level error fetch db 2>/dev/null; then
  cargo deny --log-level error check advisories
else
  echo "[test] cargo deny: the RustSec advisory database cannot be fetched from here; advisories not checked"
fi
cargo test
# The engine matrix (tests/common/matrix.rs, README "Supported engines"): the tests whose
# outcome depends on the Engine, again on side Engines beside the system's (each started by
# its test binary, stopped with everything on it at its exit).
EDT_ENGINE=docker28-containerd cargo test --test deploy --test archives --test archive_names \
  --test index --test recovery --test neighbourhood --test hooks --test site_registry
EDT_ENGINE=docker28 cargo test --test deploy --test archives --test recovery
# Docker 26 (API 1.45): the re-creation rules between 1.44 and 1.51 (per-network MAC, DNSNames).
EDT_ENGINE=docker26 cargo test --test deploy
EDT_ENGINE=podman5 cargo test --test podman
# infra/: cfn-lint, checkov, CloudFormation/Terraform parity, IAM and queue policies.
.venv/bin/python -m pytest -q infra/tests
# The alerting rules shipped with the packages: valid, and each alert unit-tested.
promtool check rules packaging/prometheus/alerts.yml
promtool test rules packaging/prometheus/alerts_test.yml
# Packages: build the .deb and .rpm, lint them, install/upgrade/remove/purge on this machine.
./packaging/test.sh
# Nothing the tests created is left on the Docker Engine.
./scripts/leftovers.sh --since "$baseline"
