# shellcheck shell=bash
# The part every examples/*/build-image shares, sourced by it before it says
# what is its own (its packages, and build: its mmdebstrap hooks and image
# configs); it ends with `cached_image NAME tar|layout [FILE...]`. An
# example's directory works from the repository (or a copy of examples/
# with lib/ beside it), not copied alone.
#   examples/NAME/build-image [--cache DIR]
# Builds the example's image(s) from Debian's packages (bookworm) with
# mmdebstrap and prints the path of the result. Built once: it is cached
# under a name made from a hash of what it is made of, so a second run
# prints the cached path at once. DIR defaults to $MINIPOD_EXAMPLES_CACHE,
# else $XDG_CACHE_HOME/minipod-examples (~/.cache/minipod-examples).
# MINIPOD_DEBIAN_MIRROR picks the mirror (http://deb.debian.org/debian). As
# root mmdebstrap builds in a chroot; as a user it builds in a user
# namespace (--mode=unshare, which needs a subuid range). Exit 3 when the
# mirror does not answer (the tests skip on it).
set -euo pipefail
lib=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
example=$(basename "$here")
cache=${MINIPOD_EXAMPLES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/minipod-examples}
if [ "${1:-}" = --cache ]; then
  cache=$2
  shift 2
fi
mirror=${MINIPOD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm

# debian_rootfs TAR [OPTION...]: a root filesystem tar of $suite with the
# example's $packages, by mmdebstrap with OPTIONs (its own path-excludes
# and hooks). Without device nodes (a container gets its own /dev; an
# unprivileged import could not make them), documentation, man pages and
# translations.
# shellcheck disable=SC2154 # $packages is the example's
debian_rootfs() {
  local tar=$1
  shift
  mmdebstrap --variant=apt --include="$packages" --skip=output/dev \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    "$@" "$suite" "$tar" "$mirror" >&2
}

# oci_layout DIR: DIR/rootfs.tar made into an OCI image layout at DIR, its
# one layer shared by an image per tag of the JSON map of tag to image
# config on stdin (oci-layout.py).
oci_layout() {
  python3 "$lib/oci-layout.py" "$1" "$1/rootfs.tar" "examples/$example/build-image"
}

# Whether the mirror answers, asked quickly (curl, wget or Python: what
# the machine has).
mirror_answers() {
  local url="$mirror/dists/$suite/Release"
  if command -v curl >/dev/null; then
    curl -fsS -m 10 -o /dev/null "$url"
  elif command -v wget >/dev/null; then
    wget -q -T 10 -O /dev/null "$url"
  else
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)' "$url"
  fi
} 2>/dev/null

# cached_image NAME tar|layout [FILE...]: prints the path of the cached
# $cache/NAME-KEY.tar (a root filesystem tar) or $cache/NAME-KEY (an OCI
# layout), made by the example's `build PATH` first when the cache does
# not hold it, and exits. KEY is a hash of what the image is made of: the
# suite, the packages, build and this file's functions that make images as
# bash prints them (without comments), the FILEs build copies in, and the
# layout writer for a layout; so an edit of anything else, or of a
# comment, does not rebuild it, and the repository and a copy of it find
# the same image.
cached_image() {
  local name=$1 kind=$2
  shift 2
  local writer=()
  if [ "$kind" = layout ]; then writer=("$lib/oci-layout.py"); fi
  local key
  key=$(printf '%s\n' "$suite" "$packages" "$(declare -f build debian_rootfs oci_layout)" \
    "$(cat "$@" "${writer[@]}")" | sha256sum | cut -c1-16)
  # mmdebstrap writes a tar for a name ending in .tar.
  local out="$cache/$name-$key" done="$cache/$name-$key/index.json" ext=
  if [ "$kind" = tar ]; then
    ext=.tar out="$cache/$name-$key.tar" done=$out
  fi
  if [ -s "$done" ]; then
    echo "$out"
    exit 0
  fi

  command -v mmdebstrap >/dev/null || {
    echo "build-image: mmdebstrap is not installed (sudo apt-get install mmdebstrap, or sudo scripts/setup-host)" >&2
    exit 1
  }
  if ! mirror_answers; then
    echo "build-image: the Debian mirror $mirror does not answer" >&2
    exit 3
  fi

  mkdir -p "$cache"
  chmod 755 "$cache"
  # Built beside, under a name no reader takes, and moved in whole.
  part="$cache/.$name-$key-$$$ext"
  trap 'rm -rf "$part"' EXIT
  if [ "$kind" = layout ]; then mkdir "$part"; fi
  local start
  start=$(date +%s)
  build "$part"
  chmod -R a+rX "$part"
  mv -T "$part" "$out"
  echo "build-image: built $out in $(($(date +%s) - start)) s" >&2
  echo "$out"
  exit 0
}
