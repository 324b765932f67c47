#!/usr/bin/env bash
# Makes trixie's Podman 5 runnable on Debian 12 (glibc 2.36) without touching the system, in
# .tools/podman5/: Debian 13's podman and netavark need glibc ≥ 2.38 (podman for one symbol,
# __isoc23_strtol), so they get trixie's own dynamic loader and libraries — patched copies
# whose ELF interpreter and RPATH name .tools/podman5/lib (patchelf, itself run by that
# loader). Nothing is installed and no LD_LIBRARY_PATH is set: the programs Podman starts
# (the system's conmon and runc, nft, the containers) keep the system's libraries, and
# Podman's re-exec of itself (/proc/self/exe) finds the same loader.
#
#   scripts/podman5.sh      (after scripts/fetch-tools.sh has fetched the trixie packages)
#
# Layout: bin/podman, libexec/ (netavark, aardvark-dns, catatonit: Podman's helper binaries
# directory), lib/ (loader and libraries), share/ (containers-common's seccomp.json),
# VERSION (the podman package's version). Idempotent: redone when that version changes.
set -euo pipefail
cd "$(dirname "$0")/.."
T="$PWD/.tools/trixie"
OUT="$PWD/.tools/podman5"
LIBS=(libc6 libgpgme11t64 libassuan9 libgpg-error0 libsubid5 libgcc-s1 libstdc++6)
NEEDS=(podman netavark aardvark-dns catatonit golang-github-containers-common patchelf "${LIBS[@]}")

log() { printf '[podman5] %s\n' "$*"; }

for p in "${NEEDS[@]}"; do
  [ -f "$T/$p.version" ] || { log "trixie's $p is not in .tools: run scripts/fetch-tools.sh"; exit 1; }
done
version=$(cat "$T/podman.version")
if [ "$(cat "$OUT/VERSION" 2>/dev/null || true)" = "$version" ] && "$OUT/bin/podman" --version >/dev/null 2>&1; then
  log "podman $version (already here)"
  exit 0
fi

rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/libexec" "$OUT/lib" "$OUT/share"
for p in "${LIBS[@]}"; do
  for f in "$T/$p"/usr/lib/x86_64-linux-gnu/*.so*; do
    [ -e "$f" ] && ln -sf "$f" "$OUT/lib/"
  done
done
loader="$OUT/lib/ld-linux-x86-64.so.2"
patchelf() { "$loader" --library-path "$OUT/lib" "$T/patchelf/usr/bin/patchelf" "$@"; }

# A copy whose loader and library path are trixie's. Two steps, RPATH first: both in one
# patchelf 0.18 call (or the other order) gives a podman that segfaults at start.
own_glibc() {
  cp "$1" "$2"
  patchelf --force-rpath --set-rpath "$OUT/lib" "$2"
  patchelf --set-interpreter "$loader" "$2"
}
own_glibc "$T/podman/usr/bin/podman" "$OUT/bin/podman"
own_glibc "$T/netavark/usr/lib/podman/netavark" "$OUT/libexec/netavark"
ln -s "$T/aardvark-dns/usr/lib/podman/aardvark-dns" "$OUT/libexec/aardvark-dns"
ln -s "$T/catatonit/usr/bin/catatonit" "$OUT/libexec/catatonit"
cp -r "$T/golang-github-containers-common/usr/share/containers/." "$OUT/share/"
"$OUT/bin/podman" --version
"$OUT/libexec/netavark" --version
echo "$version" >"$OUT/VERSION"
log "podman $version -> ${OUT#"$PWD"/}"
