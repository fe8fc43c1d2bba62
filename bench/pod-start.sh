#!/usr/bin/env bash
# Pod start benchmark: create, run and tear down a pod of two containers that
# run `true` (bench/pod-start.yaml, busybox image from the host's
# busybox-static), in one hyperfine run:
#   - minipod run POD.yaml                (foreground: returns when both exited,
#                                          and the pod is gone)
#   - podman kube play + wait + kube down (the same YAML, the same rootfs)
#   - the floor: two `bwrap --unshare-all` of `true` on the same rootfs
# Target: minipod >= 10x faster than podman.
#
#   sudo bash bench/pod-start.sh          (needs hyperfine, podman, runc, bwrap)
#
# As root it runs everything as the unprivileged test user, with a
# bench-private HOME (so a bench-private podman store), XDG_RUNTIME_DIR and
# containers.conf (CONTAINERS_CONF). Debian 12's podman 4.3 runs rootless on
# this kind of host only with:
#   - runtime runc (crun refuses hybrid cgroup v1/v2 hosts),
#   - cgroup_manager cgroupfs and events_logger file (no systemd user session),
#   - /dev/net/tun mode 0666: THIS SCRIPT CHMODS /dev/net/tun AS ROOT for the
#     run and puts the old mode back when it ends.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
build_minipod

busybox_pod_bench
cp "$repo/bench/pod-start.yaml" "$pod"
trap compare_cleanup EXIT
compare_setup

# podman 4.3's `kube play` has no --wait (4.4 added it): it returns once the
# containers are started. So the podman command is play, then `podman wait`
# on both containers (kube play names them <pod>-<container>), then
# `kube down` (stops the infra container, removes containers and pod): create,
# run to completion and tear down, the same work `minipod run` does.
# PODMAN_NETWORK: none (the default: podman does no network work) or default
# (podman 4.3 rootless gives each pod a slirp4netns; minipod always gives a
# pod its veth on the bridge, an address and, through the holder's one pasta,
# an outbound route).
net=()
[ "${PODMAN_NETWORK:-none}" = default ] || net=(--network "${PODMAN_NETWORK:-none}")
export CONTAINERS_CONF CONTAINERS_STORAGE_CONF
rm -f "$bench_work/pod-start.md"

# hyperfine itself runs as the bench user, so no command pays for runuser;
# the podman and floor commands are chains, so it keeps a shell (whose
# start-up hyperfine measures and subtracts).
bw="bwrap --unshare-all --ro-bind $rootfs / --proc /proc --dev /dev true"
as_user hyperfine --shell bash --warmup "${WARMUP:-3}" --runs "${RUNS:-20}" --export-markdown "$bench_work/pod-start.md" --export-json "$bench_work/pod-start.json" \
  -n "minipod run" \
  "$MINIPOD --root $data --runroot $run run $pod >/dev/null" \
  -n "podman kube play + wait + down" \
  "podman kube play --quiet ${net[*]} $pod >/dev/null && podman wait bench-start-one bench-start-two >/dev/null && podman kube down $pod >/dev/null" \
  -n "2x bwrap --unshare-all true (floor)" \
  "$bw && $bw"
cat "$bench_work/pod-start.md"
report --metric "pod start, run to completion, teardown" --unit s \
  --minipod "$(hyperfine_mean "$bench_work/pod-start.json" "minipod run")" \
  --anchor-name "podman kube play + wait + down" \
  --anchor "$(hyperfine_mean "$bench_work/pod-start.json" "podman kube play + wait + down")" --target 10
