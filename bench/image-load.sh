#!/usr/bin/env bash
# Issue "image store" benchmark: load a ~300 MB, ~10 000-file, 4-layer OCI
# image (gzip layers built from host directories) into a fresh store, against
# (a) `tar -xzf` of the same layers one after another, and (b) skopeo copy into
# a fresh containers-storage (podman's own import). Targets: minipod <= 1.0x
# tar, >= 3x faster than skopeo.
#
#   sudo bash bench/image-load.sh            (needs hyperfine, skopeo)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
build_minipod

img=$BENCH_DIR/image
sources=(/usr/lib/python3.11 /usr/share/doc /usr/share/locale /usr/share/zoneinfo)
if [ ! -f "$img/index.json" ]; then
  # Built under a temporary name and renamed: other benches may read it.
  final=$img img=$img.tmp.$$
  rm -rf "$img" && mkdir -p "$img/blobs/sha256"
  diff_ids=() layers=()
  for src in "${sources[@]}"; do
    tar -C / -cf "$bench_work/layer.tar" "${src#/}"
    diff=$(sha256sum "$bench_work/layer.tar" | cut -d' ' -f1)
    gzip -6 -f "$bench_work/layer.tar"
    dig=$(sha256sum "$bench_work/layer.tar.gz" | cut -d' ' -f1)
    size=$(stat -c %s "$bench_work/layer.tar.gz")
    mv "$bench_work/layer.tar.gz" "$img/blobs/sha256/$dig"
    diff_ids+=("\"sha256:$diff\"")
    layers+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$dig\",\"size\":$size}")
  done
  join() { local IFS=,; echo "$*"; }
  config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$(join "${diff_ids[@]}")]}}"
  printf %s "$config" >"$bench_work/config.json"
  cdig=$(sha256sum "$bench_work/config.json" | cut -d' ' -f1)
  mv "$bench_work/config.json" "$img/blobs/sha256/$cdig"
  manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$cdig\",\"size\":${#config}},\"layers\":[$(join "${layers[@]}")]}"
  printf %s "$manifest" >"$bench_work/manifest.json"
  mdig=$(sha256sum "$bench_work/manifest.json" | cut -d' ' -f1)
  msize=$(stat -c %s "$bench_work/manifest.json")
  mv "$bench_work/manifest.json" "$img/blobs/sha256/$mdig"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"bench"}}]}' "$mdig" "$msize" >"$img/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$img/oci-layout"
  chmod -R a+rX "$img"
  rm -rf "$final" && mv "$img" "$final" && img=$final
fi
echo "image: $(du -sm "$img" | cut -f1) MB compressed, $(for s in "${sources[@]}"; do find "$s"; done | wc -l) files, ${#sources[@]} layers"

layers_in_order=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]+"/blobs/sha256/"+json.load(open(sys.argv[1]+"/index.json"))["manifests"][0]["digest"][7:])); print(" ".join(l["digest"][7:] for l in m["layers"]))' "$img")

# Where the stores live. BENCH_FS=loop (default, needs root): a fresh ext4
# on a RAM-backed loop device, made again before every run. BENCH_FS=host: a
# directory on the host's file system, wiped before every run.
# Why not simply the host fs: on an ext4 without a journal (this VM's root fs
# has none), the inode allocator skips inodes deleted in the last 5 minutes
# (find_inode_bit -> recently_deleted() in fs/ext4/ialloc.c), reading inode
# table blocks to find out. Wiping 12 000 files and creating 12 000 again, run
# after run (and other users' builds on the same fs), made that the hot spot:
# perf put 63% of `minipod load` in find_get_block_common + recently_deleted +
# ext4_get_group_desc + find_inode_bit, and times drifted by 3x between runs.
# That cost is the bench's, not the tools'; a fresh (journalled) ext4 per run
# removes it and the disk's writeback noise, and keeps ext4's per-file costs.
fs_mode=${BENCH_FS:-loop}
[ "$(id -u)" = 0 ] || fs_mode=host
fs=$bench_work/fs
run=$bench_work/run
fs_img=/dev/shm/minipod-bench-$BENCH_NAME-fs.img
store=$fs/store untar=$fs/untar cs=$fs/cs
mkdir -p "$run" "$fs" && chown "$bench_user": "$run" "$fs" 2>/dev/null || true

# Every run starts from an empty store: with loop, a new file system (the
# previous one is unmounted with everything in it, subuid-owned files too);
# with host, the stores are removed inside the user namespace (subuid-owned
# files), then written back, so no run pays for the previous run's writeback.
wipe() {
  if [ "$fs_mode" = loop ]; then
    fresh_loop_fs
  else
    as_user "$MINIPOD" --root "$store" --runroot "$run" rmi bench >/dev/null 2>&1 || true
    as_user podman unshare rm -rf "$store" "$untar" "$cs"
    sync
  fi
}
cleanup() {
  set +e
  stop_holder "$run"
  stop_podman_pause
  if [ "$fs_mode" = loop ]; then
    drop_loop_fs
  else
    as_user podman unshare rm -rf "$store" "$untar" "$cs"
  fi
}
trap cleanup EXIT
export -f wipe as_user fresh_loop_fs
export MINIPOD store run untar cs bench_user img fs fs_mode fs_img bench_xdg bench_home
echo "stores on: $fs_mode"

hyperfine --shell bash --warmup "${WARMUP:-1}" --runs "${RUNS:-5}" --export-markdown "$bench_work/image-load.md" --export-json "$bench_work/image-load.json" \
  --prepare "wipe" \
  -n "minipod load" "as_user $MINIPOD --root $store --runroot $run load --name bench oci:$img" \
  -n "tar -xzf (sequential)" "as_user bash -c 'mkdir -p $untar && for l in $layers_in_order; do tar -C $untar -xzf $img/blobs/sha256/\$l; done'" \
  -n "skopeo copy to containers-storage" "as_user skopeo copy --quiet oci:$img containers-storage:[overlay@$cs/root+$cs/runroot]bench:latest"
cat "$bench_work/image-load.md"
load() { hyperfine_mean "$bench_work/image-load.json" "$1"; }
report --metric "image load (300 MB, 4 gzip layers)" --unit s --minipod "$(load "minipod load")" \
  --anchor-name "tar -xzf of the layers" --anchor "$(load "tar -xzf (sequential)")" --target 1 --target-text "<= tar's time"
report --metric "image load (300 MB, 4 gzip layers)" --unit s --minipod "$(load "minipod load")" \
  --anchor-name "skopeo copy" --anchor "$(load "skopeo copy to containers-storage")" --target 3
