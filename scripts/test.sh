#!/usr/bin/env bash
# The test command: installs what the tests need, then format check, lints and every test
# (unit tests and integration tests against a real moto server started by the tests), then
# the static checks of infra/, the alerting rules, then the packaging tests (they need root).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --quiet --all-targets -- -D warnings
cargo test
# infra/: cfn-lint, checkov, CloudFormation/Terraform parity, IAM and queue policies.
.venv/bin/python -m pytest -q infra/tests
# The alerting rules shipped with the packages: valid, and each alert unit-tested.
promtool check rules packaging/prometheus/alerts.yml
promtool test rules packaging/prometheus/alerts_test.yml
# Packages: build the .deb and .rpm, lint them, install/upgrade/remove/purge on this machine.
./packaging/test.sh
