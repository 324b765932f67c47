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
# The unit tests (the library's and the binary's) and the doc tests.
cargo test --quiet --lib --bins
cargo test --quiet --doc
# Every integration test binary, and the engine matrix (tests/common/matrix.rs, README
# "Supported engines"): the tests whose outcome depends on the Engine again on Engines beside
# the system's, each started by its test binary and stopped with everything on it at its
# exit. Three lanes side by side (scripts/lanes.sh; the tests mostly wait): the system's
# Engine, three binaries at a time (the longest first; `*` is every other test binary); the
# side Engines, one at a time — Docker 28 with the containerd store (Docker 29's default),
# Docker 28 classic, Docker 26 (API 1.45: per-network MAC, DNSNames); Podman 5.
c=docker28-containerd
./scripts/lanes.sh \
  "3:swarm,podman,control,signatures,deploy,recovery,operator,fleet,*" \
  "1:$c@deploy,$c@recovery,$c@archives,$c@archive_names,$c@index,$c@neighbourhood,$c@hooks,$c@site_registry,$c@compose,docker28@deploy,docker28@archives,docker28@recovery,docker26@deploy" \
  "1:podman5@podman,podman5@deploy,podman5@index,podman5@archives"
# infra/: cfn-lint, checkov, CloudFormation/Terraform parity, IAM and queue policies.
.venv/bin/python -m pytest -q infra/tests
# The alerting rules shipped with the packages: valid, and each alert unit-tested.
promtool check rules packaging/prometheus/alerts.yml
promtool test rules packaging/prometheus/alerts_test.yml
# Packages: build the .deb and .rpm, lint them, install/upgrade/remove/purge on this machine.
./packaging/test.sh
# Nothing the tests created is left on the Docker Engine.
./scripts/leftovers.sh --since "$baseline"
