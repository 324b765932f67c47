#!/usr/bin/env bash
# Builds target/packages/ecr-deployd_<version>-<rev>_<arch>.deb and ecr-deployd-<version>-<rel>.<arch>.rpm
# from a release build. Installs its tools when missing: cargo-deb and cargo-generate-rpm with
# `cargo install`. The manual page and the shell completions come from the binary itself.
#   DEB_REVISION=2 packaging/build.sh    # a rebuilt package of the same version (upgrade tests)
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1
CARGO_AUDITABLE_VERSION=0.7.7
log() { printf '[packaging] %s\n' "$*"; }

if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  log "installing cargo-deb $CARGO_DEB_VERSION"
  cargo install --quiet --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi
if ! cargo generate-rpm --version 2>/dev/null | grep -q "$CARGO_GENERATE_RPM_VERSION"; then
  log "installing cargo-generate-rpm $CARGO_GENERATE_RPM_VERSION"
  cargo install --quiet --locked cargo-generate-rpm --version "$CARGO_GENERATE_RPM_VERSION"
fi

if ! cargo auditable --version 2>/dev/null | grep -q "$CARGO_AUDITABLE_VERSION"; then
  log "installing cargo-auditable $CARGO_AUDITABLE_VERSION"
  cargo install --quiet --locked cargo-auditable --version "$CARGO_AUDITABLE_VERSION"
fi

# cargo auditable: the dependency list (crates, versions, sources) embedded in the binary's
# .dep-v0 section, for the operators' scanners (cargo audit bin, syft, trivy).
log "release build"
cargo auditable build --quiet --release --locked
strip --strip-all target/release/ecr-deployd

log "manual page and shell completions (from the clap definitions)"
mkdir -p target/packaging
bin=target/release/ecr-deployd
"$bin" manpage | gzip -9n >target/packaging/ecr-deployd.1.gz
for shell in bash zsh fish; do
  "$bin" completions "$shell" >"target/packaging/completion.$shell"
done

mkdir -p target/packages
log "deb"
cargo deb --no-build --no-strip --quiet ${DEB_REVISION:+--deb-revision "$DEB_REVISION"} --output target/packages/
log "rpm"
cargo generate-rpm --output target/packages/ ${DEB_REVISION:+--set-metadata "release = \"$DEB_REVISION\""}
ls -l target/packages/
