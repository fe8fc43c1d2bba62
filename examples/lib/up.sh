# shellcheck shell=bash
# The part every examples/*/up shares, sourced by it (from the repository,
# or a copy of examples/ with lib/ beside it): `minipod` as an array to run
# it, and load_images to put the example's built images in the store once.
# minipod is $MINIPOD_BIN, else minipod on PATH; $MINIPOD_ROOT and
# $MINIPOD_RUNROOT, when set, are its --root and --runroot.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
example=$(basename "$here")
# shellcheck disable=SC2206 # MINIPOD_BIN may be a command with arguments
minipod=(${MINIPOD_BIN:-minipod})
[ -n "${MINIPOD_ROOT:-}" ] && minipod+=(--root "$MINIPOD_ROOT")
[ -n "${MINIPOD_RUNROOT:-}" ] && minipod+=(--runroot "$MINIPOD_RUNROOT")

# load_images BUILT IMAGE...: each IMAGE (localhost/NAME:TAG) of the build
# BUILT (what build-image printed), unless the store holds it from this
# build: a tar is imported, a tag of an OCI layout loaded (the one NAME
# names). A stamp beside the data root says which build was loaded last
# (an image's ID is its config's digest, which holds the build's time).
load_images() {
  local built=$1 image name
  shift
  local stamp_dir=${MINIPOD_ROOT:-${XDG_DATA_HOME:-$HOME/.local/share}/minipod}
  local stamp="$stamp_dir/.$example-loaded" images
  images=$("${minipod[@]}" images --format json)
  for image; do
    name=${image%:*}
    if [ "$(cat "$stamp" 2>/dev/null)" != "$(basename "$built")" ] ||
      ! grep -q "\"$name\"" <<<"$images"; then
      if [ -d "$built" ]; then
        "${minipod[@]}" load --name "$image" "oci:$built:${name#localhost/}" >/dev/null
      else
        "${minipod[@]}" import "$built" "$image" >/dev/null
      fi
    fi
  done
  mkdir -p "$stamp_dir"
  basename "$built" >"$stamp"
}
