#!/usr/bin/env bash
# Fetches Debian packages of newer suites (trixie, sid) into the project's .tools/ folder,
# without touching the system: a private apt state (own sources list, lists and cache under
# .tools/apt/), `apt-get download` and `dpkg-deb -x`. The system's apt sources and installed
# packages stay as they are. The archive's mirror is the one the system's own sources name.
#
#   scripts/fetch-tools.sh [SUITE:PACKAGE ...]    (default: the tools the tests use)
#
# Each package lands in .tools/SUITE/PACKAGE/ (its files under usr/…) with the version it
# came as in .tools/SUITE/PACKAGE.version. Idempotent: a package already there at the
# version the suite has is left alone; without the network, what is there is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

# The signature tests' tools (tests/common/signing.rs): cosign 2.x, cosign 3.x, notation.
# The engine matrix's side Engines (tests/common/engine.rs, tests/common/matrix.rs): sid's
# docker.io 28.x (dockerd, docker-proxy) with containerd 2.x and its docker CLI, trixie's
# docker.io 26.x with containerd 1.7 and its CLI; runc and docker-init stay Debian 12's
# (sid's runc needs a newer glibc).
# Podman 5 of the matrix (scripts/podman5.sh makes it runnable here): trixie's podman 5.4,
# netavark, aardvark-dns, catatonit and containers-common, with the libraries of trixie it
# needs (glibc 2.41, gpgme, assuan, gpg-error, subid) and patchelf to point it at them;
# conmon and runc stay Debian 12's. The clients: sid's docker-compose 2.x and docker-buildx
# (CLI plugins; they run on glibc 2.36 as extracted).
DEFAULT_TOOLS=(trixie:cosign sid:cosign sid:notation sid:docker.io sid:containerd sid:docker-cli
  trixie:docker.io trixie:containerd trixie:docker-cli
  trixie:podman trixie:netavark trixie:aardvark-dns trixie:catatonit
  trixie:golang-github-containers-common trixie:libc6 trixie:libgpgme11t64 trixie:libassuan9
  trixie:libgpg-error0 trixie:libsubid5 trixie:libgcc-s1 trixie:libstdc++6 trixie:patchelf
  sid:docker-compose sid:docker-buildx)
TOOLS=("$@")
[ "${#TOOLS[@]}" -gt 0 ] || TOOLS=("${DEFAULT_TOOLS[@]}")

ROOT="$PWD/.tools"
APT="$ROOT/apt"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

log() { printf '[fetch-tools] %s\n' "$*"; }

# The Debian archive the system already uses (deb822 .sources or one-line .list files).
mirror() {
  local uri
  uri=$( (cat /etc/apt/sources.list 2>/dev/null; cat /etc/apt/sources.list.d/*.list 2>/dev/null) |
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; break } }' |
    grep -E '/debian/?$' | head -n1 || true)
  if [ -z "$uri" ]; then
    uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
      awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' |
      grep -E '/debian/?$' | head -n1 || true)
  fi
  [ -n "$uri" ] || { log "no Debian archive named in the system's apt sources"; exit 1; }
  echo "${uri%/}"
}

suites=()
for t in "${TOOLS[@]}"; do
  case "$t" in
    *:*) s=${t%%:*}; [[ " ${suites[*]} " == *" $s "* ]] || suites+=("$s") ;;
    *) log "expected SUITE:PACKAGE, got '$t'"; exit 2 ;;
  esac
done

mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/debs"
{
  for s in "${suites[@]}"; do
    echo "deb [signed-by=$KEYRING] $(mirror) $s main"
  done
} >"$APT/sources.list"

# apt-get or apt-cache (first argument) on the private state.
apt_private() {
  local tool=$1
  shift
  "$tool" -q \
    -o Dir::Etc::SourceList="$APT/sources.list" \
    -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="$APT/lists" \
    -o Dir::Cache="$APT/cache" \
    -o Debug::NoLocking=1 \
    -o APT::Sandbox::User=root \
    "$@"
}

# The lists are refreshed at most once a day while every package is already here.
fresh=1
for t in "${TOOLS[@]}"; do [ -f "$ROOT/${t%%:*}/${t#*:}.version" ] || fresh=0; done
[ -n "$(find "$APT/lists" -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -n1)" ] || fresh=0
if [ "$fresh" = 1 ]; then
  for t in "${TOOLS[@]}"; do
    log "${t#*:}/${t%%:*} $(cat "$ROOT/${t%%:*}/${t#*:}.version") (already here)"
  done
  exit 0
fi

online=1
if ! apt_private apt-get update >"$APT/update.log" 2>&1; then
  online=0
  log "the package lists could not be updated (see $APT/update.log); keeping what is in .tools/"
fi

for t in "${TOOLS[@]}"; do
  suite=${t%%:*}
  pkg=${t#*:}
  dest="$ROOT/$suite/$pkg"
  have=$(cat "$dest.version" 2>/dev/null || true)
  if [ "$online" = 0 ]; then
    [ -n "$have" ] || { log "$pkg/$suite: not fetched and no network"; exit 1; }
    continue
  fi
  want=$(apt_private apt-cache show "$pkg/$suite" 2>/dev/null |
    sed -n 's/^Version: //p' | head -n1)
  [ -n "$want" ] || { log "$pkg is not in $suite"; exit 1; }
  if [ "$have" = "$want" ] && [ -d "$dest" ]; then
    log "$pkg/$suite $have (already here)"
    continue
  fi
  (cd "$APT/debs" && apt_private apt-get download "$pkg=$want" >/dev/null)
  deb=$(ls "$APT/debs/${pkg}_${want#*:}"_*.deb 2>/dev/null | head -n1 || true)
  [ -n "$deb" ] || deb=$(ls -t "$APT/debs/${pkg}_"*.deb | head -n1)
  rm -rf "$dest"
  mkdir -p "$dest"
  dpkg-deb -x "$deb" "$dest"
  echo "$want" >"$dest.version"
  log "$pkg/$suite $want -> ${dest#"$PWD"/}"
done
