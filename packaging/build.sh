#!/usr/bin/env bash
# Builds target/packages/ecr-deployd_<version>-<rev>_<arch>.deb and ecr-deployd-<version>-<rel>.<arch>.rpm
# from a release build. Installs its tools when missing: cargo-deb and cargo-generate-rpm with
# `cargo install`, help2man (the manual page) with apt-get.
#   DEB_REVISION=2 packaging/build.sh    # a rebuilt package of the same version (upgrade tests)
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1
log() { printf '[packaging] %s\n' "$*"; }

if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  log "installing cargo-deb $CARGO_DEB_VERSION"
  cargo install --quiet --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi
if ! cargo generate-rpm --version 2>/dev/null | grep -q "$CARGO_GENERATE_RPM_VERSION"; then
  log "installing cargo-generate-rpm $CARGO_GENERATE_RPM_VERSION"
  cargo install --quiet --locked cargo-generate-rpm --version "$CARGO_GENERATE_RPM_VERSION"
fi
if ! command -v help2man >/dev/null; then
  log "installing help2man"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq help2man
fi

log "release build"
cargo build --quiet --release --locked
strip --strip-all target/release/ecr-deployd

log "manual page"
mkdir -p target/packaging
bin=target/release/ecr-deployd
{
  echo "[COMMANDS]"
  for cmd in run sweep status history rollback approve pause resume doctor check-config; do
    echo ".SS $cmd"
    "$bin" "$cmd" --help | sed -e 's/\\/\\\\/g' -e 's/^Usage:/.PP\nUsage:/' -e 's/^\([A-Z][a-z]*:\)$/.PP\n\1/'
  done
  cat <<'MAN'
[UPDATE CONTROL]
Each managed container has an update policy: the label
.B ecr-deployd.policy
(else
.B [policy] default
).
.TP
.B auto
deploy as soon as ECR moves the tag.
.TP
.B window
deploy only inside the container's maintenance window (label
.BR ecr-deployd.window =NAME,
else
.BR "[policy] window" );
outside it the update is
.B pending
and
.B status
says when the window opens. At the opening the agent sweeps that window's containers at once;
a deploy started inside a window may finish after it closes.
.TP
.B manual
pending until
.BR "ecr-deployd approve" .
.TP
.B monitor
never deployed; one "update available" notice per new digest.
.PP
A window is
.B [policy.windows.NAME]
with
.B schedule
(a 5-field cron expression for its opening) and
.BR duration_minutes ,
read in
.B [policy] timezone
(an IANA name; daylight-saving changes followed).
.B pause
holds a container (or
.BR --all )
from events, sweeps and windows until
.BR resume ,
across restarts.
.B sweep ", " rollback ", " approve ", " pause " and " resume
are carried out by the running daemon through its control socket
.I /run/ecr-deployd/control.sock
(root and the group ecr-deployd); with no daemon running, by the command itself under an
exclusive lease on the state store. A command that finds the daemon holding the lease but cannot
reach its socket does nothing and exits 2.
[SUPPLY-CHAIN GATES]
Before anything is pulled, a digest must pass the gates that apply to the container; one that
fails is
.B rejected
(history row, notice, metric) until a newer digest, its signature or its scan comes.
.TP
.B [verify] require = "signed"
(or the label
.BR ecr-deployd.verify=signed ):
a cosign signature by one of
.B [verify] cosign_public_keys
(PEM, ECDSA P-256) under the tag
.I sha256-<hex>.sig
in the same repository, naming the digest and the repository. Sign with
.BR "cosign sign --key cosign.key" " REGISTRY/REPO@DIGEST" .
.TP
.B [scan] max_severity
(or the label
.BR ecr-deployd.scan-max-severity ):
an ECR scan finding at or above it rejects; a scan still to come is waited for up to
.B [scan] wait_seconds
.RB ( pending );
no scan coming is decided by
.BR "[scan] on_missing" " (block | allow)."
[FILES]
.TP
.I /etc/ecr-deployd/config.toml
Configuration (TOML; every key may be overridden by ECR_DEPLOYD_<SECTION>_<KEY>).
.TP
.I /var/lib/ecr-deployd/state.db
State: deployment history, blocked digests, the deploy journal, pauses.
.TP
.I /var/lib/ecr-deployd/state.db.lock
The lease: held by the daemon, or by a command run without one.
.TP
.I /run/ecr-deployd/control.sock
The daemon's control socket (mode 0660, owner ecr-deployd).
[EXIT STATUS]
0 success; 1 a check failed, or a deploy failed or rolled back; 2 configuration or usage error.
[SEE ALSO]
.BR systemctl (1),
.BR docker (1);
/usr/share/doc/ecr-deployd/README.md
MAN
} >target/packaging/commands.h2m
help2man --no-info --no-discard-stderr --section 1 \
  --name "keeps Docker containers on the image last pushed to Amazon ECR" \
  --include target/packaging/commands.h2m "$bin" | gzip -9n >target/packaging/ecr-deployd.1.gz

mkdir -p target/packages
log "deb"
cargo deb --no-build --no-strip --quiet ${DEB_REVISION:+--deb-revision "$DEB_REVISION"} --output target/packages/
log "rpm"
cargo generate-rpm --output target/packages/ ${DEB_REVISION:+--set-metadata "release = \"$DEB_REVISION\""}
ls -l target/packages/
