#!/usr/bin/env bash
# Issue "Registry pulls" benchmark: pull the ~300 MB, 4-layer image of the
# image-store benchmark from a docker-registry on 127.0.0.1 into a fresh
# store, `minipod pull` against `podman pull --tls-verify=false` into a fresh
# --root (overlay driver, as rootless podman uses by default; with a bare
# --root it would fall back to the much slower vfs). Target: minipod >= 3x
# faster.
#
#   sudo bash bench/image-load.sh      (once: builds the image as an OCI layout)
#   sudo bash bench/registry-pull.sh   (needs docker-registry, skopeo, podman, hyperfine)
#
# Stores live on a fresh ext4 on a RAM-backed loop device, made again before
# every run (BENCH_FS=loop, the default as root; see bench/image-load.sh for
# why the host fs is a bad place to time 12 000 file creations);
# BENCH_FS=host uses a directory on the host fs instead.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

img=$BENCH_DIR/image
if [ ! -f "$img/index.json" ]; then
  echo "bench/registry-pull.sh: $img is missing; run bench/image-load.sh first (it builds the image)" >&2
  exit 1
fi
build_minipod

# The registry: loopback, a free port, storage in this bench's folder.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg=$bench_work/registry
rm -rf "$reg" && mkdir -p "$reg"
cat >"$reg/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $reg/storage
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$reg/config.yml" >"$reg/log" 2>&1 &
reg_pid=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done
ref=127.0.0.1:$port/bench:latest
skopeo copy --quiet --dest-tls-verify=false "oci:$img:bench" "docker://$ref"
echo "registry: $ref ($(du -sm "$reg/storage" | cut -f1) MB stored)"

fs_mode=${BENCH_FS:-loop}
[ "$(id -u)" = 0 ] || fs_mode=host
fs=$bench_work/fs
run=$bench_work/run
fs_img=/dev/shm/minipod-bench-$BENCH_NAME-fs.img
store=$fs/store ps=$fs/podman
mkdir -p "$run" "$fs" && chown "$bench_user": "$run" "$fs" 2>/dev/null || true

wipe() {
  # Rootless podman keeps a pause process whose mount namespace would still
  # show the previous run's file system (and image): start it afresh.
  stop_podman_pause
  if [ "$fs_mode" = loop ]; then
    fresh_loop_fs
  else
    as_user podman unshare rm -rf "$store" "$ps"
    sync
  fi
}
cleanup() {
  set +e
  kill "$reg_pid" 2>/dev/null
  stop_holder "$run"
  stop_podman_pause
  if [ "$fs_mode" = loop ]; then
    drop_loop_fs
  else
    as_user podman unshare rm -rf "$store" "$ps"
  fi
}
trap cleanup EXIT
export -f wipe as_user fresh_loop_fs stop_podman_pause
export MINIPOD store run ps ref bench_user fs fs_mode fs_img bench_xdg bench_home
echo "stores on: $fs_mode"

hyperfine --shell bash --warmup "${WARMUP:-1}" --runs "${RUNS:-5}" --export-markdown "$bench_work/registry-pull.md" --export-json "$bench_work/registry-pull.json" \
  --prepare "wipe" \
  -n "minipod pull" "as_user $MINIPOD --root $store --runroot $run pull --quiet $ref" \
  -n "podman pull --tls-verify=false" "as_user podman --root $ps/root --runroot $ps/runroot --storage-driver overlay pull --quiet --tls-verify=false $ref"
cat "$bench_work/registry-pull.md"
report --metric "pull (300 MB, 4 layers, local registry)" --unit s \
  --minipod "$(hyperfine_mean "$bench_work/registry-pull.json" "minipod pull")" \
  --anchor-name "podman pull" --anchor "$(hyperfine_mean "$bench_work/registry-pull.json" "podman pull --tls-verify=false")" --target 3
