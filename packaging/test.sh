#!/usr/bin/env bash
# Packaging tests on this machine (Debian, root): builds both packages, lints them, then
#   .deb: install → files, owners, modes, user, unit (systemd-analyze verify), enabled, the
#         service user can read its config and `run` refuses without a queue URL (exit 2, no
#         restart) → upgrade to a rebuilt package keeps an edited config and the state →
#         remove keeps config and state → purge removes them and the user;
#   .rpm: file list, scriptlets, install into a temporary root, modes.
# Leaves the machine as it found it (purges what it installed). Refuses to touch an
# ecr-deployd package it did not install.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[packaging-test] %s\n' "$*"; }
fail() { printf '[packaging-test] FAILED: %s\n' "$*" >&2; exit 1; }
check() { local what=$1; shift; "$@" || fail "$what"; log "ok: $what"; }
mode_owner() { stat -c '%a %U:%G' "$1"; }

[ "$(id -u)" -eq 0 ] || fail "needs root (dpkg -i, a system user); run as root or in CI"
if dpkg-query -W -f='${Status}' ecr-deployd 2>/dev/null | grep -q "installed"; then
  fail "an ecr-deployd package is already installed here; not touching it (purge it first)"
fi

tmp=$(mktemp -d)
installed=""
cleanup() {
  set +e
  if [ -n "$installed" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq ecr-deployd >/dev/null 2>&1
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
APT_PACKAGES=(lintian rpm rpmlint)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

log "building revision 1"
rm -rf target/packages
./packaging/build.sh >/dev/null
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
deb1="$tmp/ecr-deployd_${version}-1_amd64.deb"
cp "target/packages/ecr-deployd_${version}-1_amd64.deb" "$deb1"
rpm1="target/packages/ecr-deployd-${version}-1.x86_64.rpm"
cp "$rpm1" "$tmp/"
rpm1="$tmp/$(basename "$rpm1")"
log "building revision 2 (the upgrade)"
DEB_REVISION=2 ./packaging/build.sh >/dev/null
deb2="target/packages/ecr-deployd_${version}-2_amd64.deb"

# ---------------------------------------------------------------- lint
check "lintian: no errors, no warnings (overrides justified in packaging/debian/lintian-overrides)" \
  lintian --fail-on error,warning "$deb1"
check "rpmlint: no errors (filters justified in packaging/rpm/rpmlint.toml)" \
  sh -c "rpmlint -c packaging/rpm/rpmlint.toml '$rpm1' 2>&1 | tee '$tmp/rpmlint.out' | grep -q ' 0 errors'"
grep ': W: ' "$tmp/rpmlint.out" | sed 's/^/[packaging-test]   rpmlint warning: /' || true

# ---------------------------------------------------------------- install
log "apt-get install $deb1"
installed=yes
apt-get install -y -qq "$deb1" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "install"; }

check "binary /usr/bin/ecr-deployd 755 root:root" test "$(mode_owner /usr/bin/ecr-deployd)" = "755 root:root"
check "config 640 root:ecr-deployd" test "$(mode_owner /etc/ecr-deployd/config.toml)" = "640 root:ecr-deployd"
check "config directory 750 root:ecr-deployd" test "$(mode_owner /etc/ecr-deployd)" = "750 root:ecr-deployd"
check "state directory 750 ecr-deployd:ecr-deployd" test "$(mode_owner /var/lib/ecr-deployd)" = "750 ecr-deployd:ecr-deployd"
check "unit 644 root:root" test "$(mode_owner /usr/lib/systemd/system/ecr-deployd.service)" = "644 root:root"
check "manual page" test -s /usr/share/man/man1/ecr-deployd.1.gz
check "binary carries its dependency list (cargo auditable, .dep-v0)" sh -c \
  "readelf -S /usr/bin/ecr-deployd | grep -q '\.dep-v0'"
check "manual page: every command and the gates" sh -c \
  "zcat /usr/share/man/man1/ecr-deployd.1.gz | grep -q 'SUPPLY-CHAIN GATES' && zcat /usr/share/man/man1/ecr-deployd.1.gz | grep -q '^.SS \"approve\"'"
check "manual page renders without warnings" sh -c \
  "! zcat /usr/share/man/man1/ecr-deployd.1.gz | groff -man -Tutf8 -ww -z 2>&1 | grep ."
check "bash completion" sh -c "grep -q 'complete -F _ecr__deployd' /usr/share/bash-completion/completions/ecr-deployd"
check "zsh completion" grep -q '#compdef ecr-deployd' /usr/share/zsh/vendor-completions/_ecr-deployd
check "fish completion" grep -q 'complete -c ecr-deployd' /usr/share/fish/vendor_completions.d/ecr-deployd.fish
check "alert rules" test -s /usr/share/ecr-deployd/prometheus/alerts.yml
check "Podman drop-ins (DOCKER_HOST, socket group)" sh -c \
  "grep -q '^Environment=DOCKER_HOST=unix:///run/podman/podman.sock' /usr/share/ecr-deployd/podman/ecr-deployd.service.d/podman.conf && grep -q '^SocketGroup=ecr-deployd' /usr/share/ecr-deployd/podman/podman.socket.d/ecr-deployd.conf"
check "copyright: machine-readable, Apache-2.0" sh -c \
  "head -1 /usr/share/doc/ecr-deployd/copyright | grep -q '^Format: ' && grep -q '^License: Apache-2.0' /usr/share/doc/ecr-deployd/copyright"
check "config is a conffile" sh -c "dpkg-query -W -f='\${Conffiles}' ecr-deployd | grep -q /etc/ecr-deployd/config.toml"
check "shipped config is the documented default" cmp -s /etc/ecr-deployd/config.toml packaging/config.toml

uid=$(id -u ecr-deployd)
check "system user ecr-deployd (uid $uid < 1000, no login shell)" \
  sh -c "[ $uid -lt 1000 ] && getent passwd ecr-deployd | grep -q ':/usr/sbin/nologin$'"
# Made by the package where Docker is not installed (yet): the unit's SupplementaryGroups=docker
# must name a group that exists, or systemd refuses to start it.
check "ecr-deployd is in group docker" sh -c "id -nG ecr-deployd | tr ' ' '\n' | grep -qx docker"
check "systemd-analyze verify: clean" sh -c \
  "systemd-analyze verify /usr/lib/systemd/system/ecr-deployd.service >'$tmp/verify.out' 2>&1 && ! grep -v 'docker.service' '$tmp/verify.out' | grep -q ."
systemd-analyze security --offline=true /usr/lib/systemd/system/ecr-deployd.service 2>/dev/null \
  | tail -1 | sed 's/^/[packaging-test]   /'
check "unit enabled (multi-user.target.wants)" test -L /etc/systemd/system/multi-user.target.wants/ecr-deployd.service
check "not started without a queue URL (no process of user ecr-deployd)" sh -c "! pgrep -u ecr-deployd >/dev/null"

# What systemd would run, as the unit's user: it can read its config; without a queue URL
# `run` is a configuration error (exit 2, which the unit does not restart).
check "the service user can read its config" \
  runuser -u ecr-deployd -- ecr-deployd --config /etc/ecr-deployd/config.toml check-config >/dev/null
set +e
runuser -u ecr-deployd -- ecr-deployd --config /etc/ecr-deployd/config.toml run >/dev/null 2>"$tmp/run.err"
rc=$?
set -e
check "run without a queue URL exits 2 naming queue.url" sh -c "[ $rc -eq 2 ] && grep -q 'queue.url' '$tmp/run.err'"
check "the unit does not restart on exit 2" grep -qx 'RestartPreventExitStatus=2' /usr/lib/systemd/system/ecr-deployd.service
check "other users cannot read the config" sh -c "! runuser -u nobody -- cat /etc/ecr-deployd/config.toml 2>/dev/null"

# ---------------------------------------------------------------- upgrade
sed -i 's|^url = ""|url = "https://sqs.eu-west-2.amazonaws.com/123456789012/ecr-deployd-edge-01"|' /etc/ecr-deployd/config.toml
echo "# edited by the operator" >>/etc/ecr-deployd/config.toml
cp /etc/ecr-deployd/config.toml "$tmp/edited.toml"
echo "history" >/var/lib/ecr-deployd/state.db
chown ecr-deployd:ecr-deployd /var/lib/ecr-deployd/state.db
log "apt-get install $deb2 (upgrade)"
apt-get install -y -qq -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "./$deb2" \
  >"$tmp/upgrade.log" 2>&1 || { cat "$tmp/upgrade.log"; fail "upgrade"; }
check "upgraded to ${version}-2" test "$(dpkg-query -W -f='${Version}' ecr-deployd)" = "${version}-2"
check "edited config kept" cmp -s /etc/ecr-deployd/config.toml "$tmp/edited.toml"
check "config still 640 root:ecr-deployd" test "$(mode_owner /etc/ecr-deployd/config.toml)" = "640 root:ecr-deployd"
check "state kept" grep -qx history /var/lib/ecr-deployd/state.db
check "same user" test "$(id -u ecr-deployd)" = "$uid"
check "the edited config has a queue URL (postinst would start the unit under systemd)" sh -c \
  "ecr-deployd --config /etc/ecr-deployd/config.toml check-config 2>/dev/null | grep -q '^url = \"https://sqs'"

# ---------------------------------------------------------------- remove, purge
apt-get remove -y -qq ecr-deployd >/dev/null 2>&1 || fail "remove"
check "remove: binary gone" test ! -e /usr/bin/ecr-deployd
check "remove: config kept" cmp -s /etc/ecr-deployd/config.toml "$tmp/edited.toml"
check "remove: state kept" test -s /var/lib/ecr-deployd/state.db
apt-get purge -y -qq ecr-deployd >/dev/null 2>&1 || fail "purge"
installed=""
check "purge: config gone" test ! -e /etc/ecr-deployd
check "purge: state gone" test ! -e /var/lib/ecr-deployd
check "purge: user gone" sh -c "! getent passwd ecr-deployd >/dev/null"
check "purge: unit no longer enabled" test ! -e /etc/systemd/system/multi-user.target.wants/ecr-deployd.service

# ---------------------------------------------------------------- rpm
rpm -qlp "$rpm1" 2>/dev/null | sort >"$tmp/rpm-files"
printf '%s\n' /etc/ecr-deployd/config.toml /usr/bin/ecr-deployd /usr/lib/systemd/system/ecr-deployd.service \
  /usr/share/doc/ecr-deployd/README.md /usr/share/man/man1/ecr-deployd.1.gz \
  /usr/share/licenses/ecr-deployd/LICENSE /usr/share/ecr-deployd/prometheus/alerts.yml \
  /usr/share/ecr-deployd/podman/ecr-deployd.service.d/podman.conf /usr/share/ecr-deployd/podman/podman.socket.d/ecr-deployd.conf \
  /usr/share/bash-completion/completions/ecr-deployd /usr/share/zsh/site-functions/_ecr-deployd \
  /usr/share/fish/vendor_completions.d/ecr-deployd.fish | sort >"$tmp/rpm-expected"
check "rpm: file list" diff "$tmp/rpm-expected" "$tmp/rpm-files"
check "rpm: License Apache-2.0" test "$(rpm -qp --qf '%{LICENSE}' "$rpm1" 2>/dev/null)" = "Apache-2.0"
check "rpm: config is %config(noreplace)" sh -c \
  "rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' '$rpm1' 2>/dev/null | grep -q '^/etc/ecr-deployd/config.toml cn'"
rpm -qp --scripts "$rpm1" 2>/dev/null >"$tmp/rpm-scripts"
check "rpm: %pre creates the user" grep -q 'useradd --system' "$tmp/rpm-scripts"
check "rpm: %post enables the unit, starts it only with a queue URL" sh -c \
  "grep -q 'systemctl enable ecr-deployd.service' '$tmp/rpm-scripts' && grep -q 'url = ' '$tmp/rpm-scripts'"
check "rpm: %preun stops and disables on erase only" grep -q 'if \[ "\$1" -eq 0 \]' "$tmp/rpm-scripts"
root="$tmp/rpmroot"
mkdir -p "$root"
rpm --root "$root" --initdb 2>/dev/null
rpm --root "$root" --nodeps --noscripts -i "$rpm1" 2>"$tmp/rpm-install.err" || { cat "$tmp/rpm-install.err"; fail "rpm install into $root"; }
check "rpm root: binary 755" test "$(stat -c %a "$root/usr/bin/ecr-deployd")" = 755
check "rpm root: config 640" test "$(stat -c %a "$root/etc/ecr-deployd/config.toml")" = 640
check "rpm root: unit 644" test "$(stat -c %a "$root/usr/lib/systemd/system/ecr-deployd.service")" = 644
check "rpm root: installed binary runs" "$root/usr/bin/ecr-deployd" --version

log "sizes: deb $(stat -c %s "$deb1") B, rpm $(stat -c %s "$rpm1") B, binary (release, stripped) $(stat -c %s target/release/ecr-deployd) B"
log "all packaging checks passed"
