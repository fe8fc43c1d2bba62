#!/usr/bin/env bash
# Two builds of minipod side by side, in one hyperfine run: a foreground
# `minipod run` of bench/pod-start.yaml, then `run -d` + `down` of
# bench/lifecycle.yaml, each with build A and build B. For a change that must
# not cost speed (a refactor): the scripts that compare against podman are
# too noisy here to see a few per cent.
#
#   sudo bash bench/ab.sh DIR_A DIR_B     (each DIR holds minipod and
#                                          minipod-supervisor of one build)
#
# As root, everything runs as the unprivileged test user; both run roots live
# on one tmpfs (lib.sh's runtime_tmpfs), both stores in the bench's folder.
set -euo pipefail
[ $# = 2 ] || { echo "usage: bench/ab.sh DIR_A DIR_B" >&2; exit 2; }
source "$(dirname "$0")/lib.sh"
work=$bench_work/ab rootfs=$work/rootfs
rm -rf "$work"
mkdir -p "$work"
busybox_rootfs "$rootfs" "$work/rootfs.tar"
cp "$repo/bench/pod-start.yaml" "$work/start.yaml"
cp "$repo/bench/lifecycle.yaml" "$work/life.yaml"
builds=()
for side in a b; do
  dir=$1
  shift
  mkdir -p "$work/$side"
  install -m 755 "$dir/minipod" "$dir/minipod-supervisor" "$work/$side/"
  builds+=("$work/$side")
done
trap 'for b in "${builds[@]}"; do stop_holder "$bench_xdg/$(basename "$b")"; done; rm -rf "$work"; restore_host' EXIT
[ "$(id -u)" = 0 ] && chown -R "$bench_user": "$work"
runtime_tmpfs
mp() { echo "$1/minipod --root $1/data --runroot $bench_xdg/$(basename "$1")"; }
for b in "${builds[@]}"; do
  as_user $(mp "$b") import "$rootfs" localhost/busybox:latest >/dev/null
done
life=$(sed -n 's/^  name: *//p' "$work/life.yaml" | head -1)
args=()
for b in "${builds[@]}"; do
  args+=(-n "run $(basename "$b")" "$(mp "$b") run $work/start.yaml")
done
for b in "${builds[@]}"; do
  args+=(-n "run -d + down $(basename "$b")" "$(mp "$b") run -d $work/life.yaml && $(mp "$b") down $life")
done
as_user hyperfine --shell bash --warmup "${WARMUP:-5}" --runs "${RUNS:-60}" \
  --export-markdown "$work/ab.md" --output null "${args[@]}"
cat "$work/ab.md"
