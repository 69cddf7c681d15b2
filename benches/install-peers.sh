#!/usr/bin/env bash
# Installs the peer FUSE servers the benchmarks compare squashbox with, into a private prefix,
# without installing, upgrading or pinning anything in the system's own package set.
#
#   --trixie (default): the current Debian 13 builds, fetched with a private apt state (its own
#       sources list, package lists and cache under PREFIX/apt), unpacked with `dpkg -x` into
#       PREFIX/root and run through trixie's own dynamic loader (they need a newer glibc than
#       bookworm's):
#         squashfuse 0.5.2 (squashfuse_ll, squashfuse; the multithreaded build Apptainer ships),
#         fuse-overlayfs 1.14, fuse2fs 1.47.2 (built on libfuse3).
#   --bookworm: the Debian 12 system's own fuse-overlayfs 1.10, fuse2fs 1.47.0 (libfuse2) and
#       squashfuse 0.1.105, by a plain `apt-get install` from the system's repositories (root).
#
# Result: PREFIX/bin/{squashfuse_ll,squashfuse,fuse-overlayfs,fuse2fs} run the trixie builds;
# PREFIX/bin/NAME-VERSION (e.g. fuse-overlayfs-1.14, fuse-overlayfs-1.10) names every installed
# build by its upstream version, so one run can compare both. PREFIX/installed-*.tsv lists them.
# Running it again reuses what is there (no network) unless --force is given.
#
# usage: benches/install-peers.sh [--trixie] [--bookworm] [--force] [--mirror URL] [PREFIX]
#   PREFIX defaults to ${XDG_DATA_HOME:-$HOME/.local/share}/squashbox-peers.
#   --mirror defaults to the first Debian mirror in the system's apt sources.
set -euo pipefail

TRIXIE_PKGS=(
  squashfuse libsquashfuse0 fuse-overlayfs fuse2fs libfuse3-4
  libext2fs2t64 libcom-err2 libss2 libblkid1 libuuid1 libselinux1 libpcre2-8-0
  liblz4-1 liblzma5 liblzo2-2 libzstd1 zlib1g libc6
)
TRIXIE_BINS=(squashfuse_ll squashfuse fuse-overlayfs fuse2fs)
# binary -> Debian package that ships it (for the version).
declare -A PKG_OF=([squashfuse_ll]=squashfuse [squashfuse]=squashfuse
  [fuse-overlayfs]=fuse-overlayfs [fuse2fs]=fuse2fs)
BOOKWORM_PKGS=(fuse-overlayfs fuse2fs squashfuse)
BOOKWORM_BINS=(squashfuse_ll squashfuse fuse-overlayfs fuse2fs)

die() { echo "install-peers: $*" >&2; exit 1; }
note() { echo "install-peers: $*" >&2; }

want_trixie=0 want_bookworm=0 force=0 mirror="" prefix=""
while [ $# -gt 0 ]; do
  case "$1" in
    --trixie) want_trixie=1 ;;
    --bookworm) want_bookworm=1 ;;
    --force) force=1 ;;
    --mirror) [ $# -ge 2 ] || die "--mirror needs a URL"; mirror=$2; shift ;;
    --mirror=*) mirror=${1#--mirror=} ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$prefix" ] || die "more than one PREFIX given"; prefix=$1 ;;
  esac
  shift
done
[ $want_trixie = 1 ] || [ $want_bookworm = 1 ] || want_trixie=1
prefix=${prefix:-${XDG_DATA_HOME:-$HOME/.local/share}/squashbox-peers}
mkdir -p "$prefix/bin"
prefix=$(cd "$prefix" && pwd)

# Upstream part of a Debian version: no epoch, no Debian revision (1:1.47.2-3+b3 -> 1.47.2).
upstream() { local v=${1#*:}; echo "${v%-*}"; }

arch=$(dpkg --print-architecture)
case "$arch" in
  amd64) triplet=x86_64-linux-gnu loader_name=ld-linux-x86-64.so.2 ;;
  arm64) triplet=aarch64-linux-gnu loader_name=ld-linux-aarch64.so.1 ;;
  *) die "architecture $arch is not supported (amd64 and arm64 are)" ;;
esac

# The first plain Debian archive URI in the system's apt sources (not -security, not others).
system_mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '/^URIs:/{for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) {print $i; exit}}' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(grep -v '^[[:space:]]*#' "$f" | grep -o 'https\?://[^ ]*/debian/\?\( \|$\)' | head -1 || true)
    [ -n "$uri" ] && { echo "${uri% }"; return; }
  done
  echo http://deb.debian.org/debian
}

# Checks that every shared library of each trixie binary resolves inside PREFIX/root.
trixie_libs_ok() {
  local root=$prefix/root lib b out
  lib="$root/usr/lib/$triplet:$root/lib/$triplet"
  [ -x "$root/usr/lib/$triplet/$loader_name" ] || return 1
  for b in "${TRIXIE_BINS[@]}"; do
    [ -x "$root/usr/bin/$b" ] && [ -x "$prefix/bin/$b" ] || return 1
    out=$("$root/usr/lib/$triplet/$loader_name" --library-path "$lib" --list "$root/usr/bin/$b" 2>&1) ||
      { echo "$out" >&2; return 1; }
    if grep -q 'not found' <<<"$out"; then
      note "$b: unresolved libraries:"; grep 'not found' <<<"$out" >&2; return 1
    fi
  done
}

install_trixie() {
  if [ $force = 0 ] && [ -s "$prefix/installed-trixie.tsv" ] && trixie_libs_ok; then
    note "trixie builds already in $prefix (--force to fetch them again)"
    return
  fi
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || die "needs apt-get and dpkg"
  mirror=${mirror:-$(system_mirror)}
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -f "$keyring" ] || die "needs $keyring (package debian-archive-keyring)"
  local apt=$prefix/apt
  mkdir -p "$apt/etc/sources.list.d" "$apt/etc/preferences.d" "$apt/state/lists/partial" \
    "$apt/cache/archives/partial"
  : >"$apt/state/status"
  echo "deb [signed-by=$keyring] $mirror trixie main" >"$apt/etc/sources.list"
  # Private sources, lists, cache and (empty) dpkg status: the system's apt state is not read
  # or written. apt.conf.d (proxies) still applies.
  local opts=(
    -o "Dir::Etc::SourceList=$apt/etc/sources.list"
    -o "Dir::Etc::SourceParts=$apt/etc/sources.list.d"
    -o "Dir::Etc::Preferences=$apt/etc/preferences"
    -o "Dir::Etc::PreferencesParts=$apt/etc/preferences.d"
    -o "Dir::State=$apt/state" -o "Dir::State::status=$apt/state/status"
    -o "Dir::Cache=$apt/cache" -o "APT::Architecture=$arch"
    -o "APT::Architectures=$arch" -o "Acquire::Languages=none"
  )
  [ "$(id -u)" != 0 ] || opts+=(-o "APT::Sandbox::User=root")
  note "fetching trixie package lists from $mirror (private apt state in $apt)"
  apt-get "${opts[@]}" -qq update
  local debs=$prefix/debs.new
  rm -rf "$debs" && mkdir -p "$debs"
  (cd "$debs" && apt-get "${opts[@]}" -qq download "${TRIXIE_PKGS[@]}")
  local root=$prefix/root.new
  rm -rf "$root" && mkdir -p "$root"
  local f
  for f in "$debs"/*.deb; do dpkg-deb -x "$f" "$root"; done
  rm -rf "$prefix/root" "$prefix/debs"
  mv "$root" "$prefix/root" && mv "$debs" "$prefix/debs"
  root=$prefix/root
  local lib="$root/usr/lib/$triplet:$root/lib/$triplet" b v tsv=""
  for b in "${TRIXIE_BINS[@]}"; do
    [ -x "$root/usr/bin/$b" ] || die "trixie package ${PKG_OF[$b]} has no usr/bin/$b"
    cat >"$prefix/bin/$b" <<EOS
#!/bin/sh
# $b from Debian trixie, run by trixie's own loader and libraries (benches/install-peers.sh).
exec "$root/usr/lib/$triplet/$loader_name" --argv0 "$b" --library-path "$lib" "$root/usr/bin/$b" "\$@"
EOS
    chmod 755 "$prefix/bin/$b"
    v=$(dpkg-deb -f "$(ls "$prefix/debs/${PKG_OF[$b]}"_*.deb)" Version)
    ln -sfn "$b" "$prefix/bin/$b-$(upstream "$v")"
    tsv+="$b	$v	trixie	$prefix/bin/$b-$(upstream "$v")"$'\n'
  done
  trixie_libs_ok || die "the unpacked trixie binaries miss libraries (see above)"
  printf '%s' "$tsv" >"$prefix/installed-trixie.tsv"
  rm -rf "$apt/state/lists" "$apt/cache" # 30 MB of indexes; --force fetches them again
}

install_bookworm() {
  local codename
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ "$codename" = bookworm ] ||
    die "--bookworm installs the system's own packages and needs Debian 12; this is '$codename'"
  local p missing=()
  for p in "${BOOKWORM_PKGS[@]}"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "installing ${missing[*]} with apt-get needs root"
    note "apt-get install ${missing[*]} (bookworm)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || {
      apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    }
  else
    note "bookworm packages already installed: ${BOOKWORM_PKGS[*]}"
  fi
  local b pkg path v tsv=""
  for b in "${BOOKWORM_BINS[@]}"; do
    pkg=${PKG_OF[$b]}
    path=$(dpkg -L "$pkg" | grep -E "/s?bin/$b\$" | head -1 || true)
    [ -n "$path" ] && [ -x "$path" ] || die "package $pkg has no executable $b"
    v=$(dpkg-query -W -f '${Version}' "$pkg")
    ln -sfn "$path" "$prefix/bin/$b-$(upstream "$v")"
    tsv+="$b	$v	bookworm	$prefix/bin/$b-$(upstream "$v")"$'\n'
  done
  printf '%s' "$tsv" >"$prefix/installed-bookworm.tsv"
}

[ $want_trixie = 0 ] || install_trixie
[ $want_bookworm = 0 ] || install_bookworm

echo "peers in $prefix:"
for f in "$prefix"/installed-trixie.tsv "$prefix"/installed-bookworm.tsv; do
  [ -f "$f" ] || continue
  while IFS=$'\t' read -r b v dist path; do
    printf '  %-15s %-16s %-9s %s\n' "$b" "$v" "$dist" "$path"
  done <"$f"
done
