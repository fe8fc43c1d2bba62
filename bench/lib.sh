# Shared by the bench scripts: who runs minipod, and where.
# Sourced, not run.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${BENCH_DIR:=/tmp/minipod-bench}"
mkdir -p "$BENCH_DIR"
chmod 755 "$BENCH_DIR"
# Each bench script gets a folder of its own for everything it changes (the
# binary, HOME, XDG_RUNTIME_DIR, run roots, stores), so two different benches
# running at once never kill each other's holder or wipe each other's stores.
# Only read-only inputs (the test image) are shared in $BENCH_DIR.
: "${BENCH_NAME:=$(basename "$0" .sh)}"
bench_work=$BENCH_DIR/$BENCH_NAME
bench_home=$bench_work/home
bench_xdg=$bench_work/xdg
mkdir -p "$bench_work"
chmod 755 "$bench_work"

# As root, benchmarks run as the unprivileged test user, as users would.
if [ "$(id -u)" = 0 ]; then
  bench_user=${MINIPOD_TEST_USER:-minipod-test}
  as_user() { runuser -u "$bench_user" -- env XDG_RUNTIME_DIR="$bench_xdg" HOME="$bench_home" "$@"; }
  mkdir -p "$bench_xdg" "$bench_home"
  chown "$bench_user": "$BENCH_DIR" "$bench_work" "$bench_xdg" "$bench_home"
  chmod 700 "$bench_xdg"
else
  bench_user=$(id -un)
  as_user() { "$@"; }
fi

# Honours CARGO_TARGET_DIR (build elsewhere than the shared target/ while
# others work in the tree).
build_minipod() {
  (cd "$repo" && cargo build --release --quiet)
  # .cargo/config.toml names the target (static linking), hence its folder.
  local built=${CARGO_TARGET_DIR:-$repo/target}/x86_64-unknown-linux-gnu/release
  install -m 755 "$built/minipod" "$built/minipod-supervisor" "$bench_work/"
  MINIPOD="$bench_work/minipod"
  MINIPOD_SUPERVISOR="$bench_work/minipod-supervisor"
}

# The mean time (s) of one command of a hyperfine --export-json file.
hyperfine_mean() {
  python3 -c 'import json,sys; print({r["command"]: r["mean"] for r in json.load(open(sys.argv[1]))["results"]}[sys.argv[2]])' "$1" "$2"
}
# One result, with its anchor, ratio and target (bench/report.py row; the
# row also goes to $BENCH_RESULTS, which bench/all.sh tabulates).
report() { python3 "$repo/bench/report.py" row "$@"; }

# Kill a minipod holder left by a run root.
stop_holder() {
  local pidfile=$1/holder.pid
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$pidfile")
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
}

# Kill the bench user's podman pause process (podman's twin of the holder),
# which `podman unshare`/`kube play` leave running under $XDG_RUNTIME_DIR.
stop_podman_pause() {
  local pidfile=$bench_xdg/libpod/tmp/pause.pid pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if [ -n "$pid" ] && [ "$(ps -o user= -p "$pid" 2>/dev/null)" = "$bench_user" ]; then
    kill "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# A busybox root filesystem at $1 (busybox-static and a link per applet, as
# scripts/demo builds it), and a tar of it at $2 for podman import.
busybox_rootfs() {
  local rootfs=$1 tarball=$2
  mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/proc" "$rootfs/dev"
  cp "$(command -v busybox)" "$rootfs/bin/busybox"
  for applet in $("$rootfs/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  tar -C "$rootfs" -cf "$tarball" .
}

# A host binary $1 at $2/bin/ (the root filesystem $2), with the shared
# libraries ldd lists (each at its own path) and the dynamic loader: how the
# network benches get iperf3 and their probe into a busybox image.
copy_with_libs() {
  local bin=$1 rootfs=$2 lib
  mkdir -p "$rootfs/bin"
  cp -L "$bin" "$rootfs/bin/$(basename "$bin")"
  # Every library ldd resolves ("name => /path (addr)") and the loader ("/path (addr)").
  for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
}

# The set-up the pod benchmarks share: a fresh $work with a busybox root
# filesystem ($rootfs, and its tar for podman), podman's configs ($conf,
# $storage_conf), minipod's roots ($data, $run), where the pod's YAML goes
# ($pod), and `minipod` running the built binary as the bench user on them.
busybox_pod_bench() {
  work=$bench_work/pod
  run=$bench_xdg/minipod data=$work/data rootfs=$work/rootfs pod=$work/pod.yaml
  conf=$work/containers.conf storage_conf=$work/storage.conf
  rm -rf "$work"
  mkdir -p "$work"
  busybox_rootfs "$rootfs" "$work/rootfs.tar"
  podman_bench_config "$conf" "$storage_conf"
}

# Rootless podman as it works on this machine: runc (crun refuses hybrid
# cgroups), cgroupfs, file events; overlay explicitly (a fresh rootless store
# may otherwise settle on vfs, which copies the image for every container).
podman_bench_config() {
  local conf=$1 storage_conf=$2
  # keyring = false: runc gives each container a session keyring, and the
  # kernel's per-user quota (kernel.keys.maxkeys, 200) fails the containers
  # of a pod before the 100th (bench/commands.sh runs 100). minipod makes none.
  cat >"$conf" <<'CONF'
[containers]
keyring = false

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  cat >"$storage_conf" <<'CONF'
[storage]
driver = "overlay"
CONF
  export CONTAINERS_CONF=$conf CONTAINERS_STORAGE_CONF=$storage_conf
}

# What a bench changes on the host for its run, and `restore_host` (call it
# from the cleanup trap) puts back:
# - `open_tun`: /dev/net/tun open to the bench user (podman's rootless
#   network and minipod's pasta need it);
# - `runtime_tmpfs`: XDG_RUNTIME_DIR on a tmpfs, as /run/user/UID is on a
#   real machine. Here it would be a directory on the VM's journal-less root
#   ext4, where re-creating files right after the previous run deleted them
#   pays ext4's recently_deleted() inode scan (~12 % of the samples of 20
#   `minipod run`s: a cost of the bench's layout, not of either tool).
tun_mode= xdg_mounted=
open_tun() {
  if [ "$(id -u)" = 0 ] && [ -c /dev/net/tun ]; then
    tun_mode=$(stat -c %a /dev/net/tun)
    chmod 0666 /dev/net/tun
  fi
}
runtime_tmpfs() {
  if [ "$(id -u)" = 0 ] && [ "${BENCH_RUNTIME:-tmpfs}" = tmpfs ]; then
    mount -t tmpfs -o "mode=700,uid=$(id -u "$bench_user"),gid=$(id -g "$bench_user")" bench-xdg "$bench_xdg"
    xdg_mounted=1
  fi
}
# minipod as the bench user, on the bench's own data and run roots ($data,
# $run, set by busybox_pod_bench or the bench itself).
minipod() { as_user "$MINIPOD" --root "$data" --runroot "$run" "$@"; }

# The usual end of a pod bench (its EXIT trap): `minipod down` of each
# pod or file given, `rmi` of IMAGE, then the holder, the work folder and
# what runtime_tmpfs changed on the host.
#   trap 'cleanup_pods localhost/busybox pod-a file.yaml' EXIT
cleanup_pods() {
  set +e
  local image=$1 one
  shift
  for one in "$@"; do minipod down "$one" >/dev/null 2>&1; done
  minipod rmi "$image" >/dev/null 2>&1
  stop_holder "$run"
  rm -rf "$work"
  restore_host
}
# A pod's IP, from `minipod inspect POD`.
pod_ip() {
  minipod inspect "$1" | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d[0] if isinstance(d,list) else d; print(d["status"]["podIP"])'
}
restore_host() {
  [ -n "$xdg_mounted" ] && { umount "$bench_xdg" || umount -l "$bench_xdg"; }
  [ -n "$tun_mode" ] && chmod "$tun_mode" /dev/net/tun
  xdg_mounted= tun_mode=
}

# A new, empty ext4 on a RAM-backed loop device, mounted at $fs (image
# $fs_img): the previous one goes with everything in it, subuid-owned files
# too. Stores made on it pay no writeback of earlier runs, and no
# recently_deleted() scan of the VM's journal-less root ext4. Exported for
# hyperfine's --prepare (see image-load.sh).
fresh_loop_fs() {
  if mountpoint -q "$fs"; then umount "$fs" || return 1; fi
  rm -f "$fs_img"
  truncate -s 2G "$fs_img"
  mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0,nodiscard "$fs_img"
  mount -o loop "$fs_img" "$fs"
  chown "$bench_user": "$fs"
}
drop_loop_fs() {
  mountpoint -q "$fs" && umount "$fs"
  rm -f "$fs_img"
}

# For the benches that run one pod YAML ($pod) with minipod and with podman,
# on the busybox image built by busybox_rootfs ($rootfs, $work/rootfs.tar):
# `compare_setup` prepares the host and both stores, `compare_cleanup`
# undoes it. `minipod` is the script's own function (its --root/--runroot).
compare_setup() {
  open_tun
  [ "$(id -u)" = 0 ] && chown -R "$bench_user": "$work"
  runtime_tmpfs
  # A fresh bench podman store (bench-private HOME), so it takes the driver
  # podman_bench_config chose.
  as_user podman system reset -f >/dev/null 2>&1 || true
  minipod import "$rootfs" localhost/busybox:latest >/dev/null
  as_user podman import --quiet "$work/rootfs.tar" localhost/busybox:latest >/dev/null
  echo "podman: $(as_user podman --version) $(as_user podman info --format '{{.Store.GraphDriverName}} {{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} cgroups {{.Host.CgroupsVersion}}' 2>/dev/null)"
}
compare_cleanup() {
  set +e
  as_user podman kube down "$pod" >/dev/null 2>&1
  as_user podman system reset -f >/dev/null 2>&1
  as_user podman unshare rm -rf "$work" 2>/dev/null
  stop_podman_pause
  minipod rmi localhost/busybox >/dev/null 2>&1
  stop_holder "$run"
  rm -rf "$work"
  restore_host
}
