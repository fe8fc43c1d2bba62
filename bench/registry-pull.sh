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
# BENCH_IMAGE names the layout when it lives elsewhere (e.g. with a private
# BENCH_DIR, so that benchmarks of other branches running at the same time
# do not replace $BENCH_DIR/minipod under this one).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

img=${BENCH_IMAGE:-$BENCH_DIR/image}
if [ ! -f "$img/index.json" ]; then
  echo "bench/registry-pull.sh: $img is missing; run bench/image-load.sh first (it builds the image)" >&2
  exit 1
fi
build_minipod

# The registry: loopback, a free port, storage under the bench dir.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg=$BENCH_DIR/registry
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
trap 'kill $reg_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done
ref=127.0.0.1:$port/bench:latest
skopeo copy --quiet --dest-tls-verify=false "oci:$img:bench" "docker://$ref"
echo "registry: $ref ($(du -sm "$reg/storage" | cut -f1) MB stored)"

store=$BENCH_DIR/pull-store run=$BENCH_DIR/run ps=$BENCH_DIR/podman-root
mkdir -p "$run" && chown "$bench_user": "$run" 2>/dev/null || true
# Every store is wiped inside the user namespace (subuid-owned files), then
# written back to disk, so no run pays for the previous run's writeback.
wipe() {
  as_user "$MINIPOD" --root "$store" --runroot "$run" rmi "$ref" >/dev/null 2>&1 || true
  as_user podman unshare rm -rf "$store" "$ps"
  sync
}
export -f wipe as_user
export MINIPOD store run ps ref bench_user BENCH_DIR

hyperfine --shell bash --warmup "${WARMUP:-1}" --runs "${RUNS:-5}" --export-markdown "$BENCH_DIR/registry-pull.md" \
  --prepare "bash -c wipe" \
  -n "minipod pull" "as_user $MINIPOD --root $store --runroot $run pull --quiet $ref" \
  -n "podman pull --tls-verify=false" "as_user podman --root $ps/root --runroot $ps/runroot --storage-driver overlay pull --quiet --tls-verify=false $ref"
wipe
stop_holder "$run"
cat "$BENCH_DIR/registry-pull.md"
