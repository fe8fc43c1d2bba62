#!/usr/bin/env bash
# Issue "Pod lifecycle" benchmark: a detached pod of two `sleep` containers
# (bench/lifecycle.yaml, busybox image from the host's busybox-static, imported
# into both stores), against podman on the same YAML, in one hyperfine run:
#   - start:    minipod run -d POD.yaml   vs  podman kube play POD.yaml
#               (--prepare tears down whatever pod is up, so every run starts
#               from nothing: minipod down / podman kube down)
#   - teardown: minipod down POD.yaml     vs  podman kube down POD.yaml
#               (--prepare starts the pod)
# then, with each pod running (one at a time), the resident memory of each
# tool's own per-pod processes, VmRSS (/proc/PID/status) and PSS
# (/proc/PID/smaps_rollup), not counting the containers' `sleep`s:
#   - minipod: the supervisor (`minipod-supervisor POD PLAN`, state.json
#     supervisor_pid), the pause (`minipod-pause hold`, state.json pause_pid)
#     and every other minipod process below them (the containers' links,
#     `minipod-pause link PID`: the pause program, run from a memfd); the
#     holder and its pasta are per run root, not per pod, and are shown on
#     lines of their own, as podman's rootless pause process is left out;
#   - podman: each container's conmon (the infra container's too) and the
#     infra container's catatonit. (slirp4netns, one per pod with
#     PODMAN_NETWORK=default, is shown on a line of its own.)
# Targets: start >= 15x faster, teardown >= 10x faster, memory (RSS) <= 1/4.
#
#   sudo bash bench/lifecycle.sh     (needs hyperfine, podman, runc; RUNS=10)
#
# Podman set-up as in pod-start.sh (bench-private HOME, XDG_RUNTIME_DIR on a
# tmpfs, containers.conf with runc/cgroupfs/file events, overlay storage);
# THIS SCRIPT CHMODS /dev/net/tun 0666 AS ROOT for the run and puts the old
# mode back when it ends.
# With /dev/net/tun open, minipod gives every pod outbound through one pasta
# process, the holder's, started with the holder (before the timed runs).
# PODMAN_NETWORK: default (the default here: podman 4.3 rootless gives each
# pod a slirp4netns, the like-for-like of minipod's pasta) or none (as
# pod-start.sh: podman does no network work at all).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
build_minipod

name=bench-life
rm -rf "$bench_work"/mem-* "$bench_work"/lifecycle.{md,json}
busybox_pod_bench
cp "$repo/bench/lifecycle.yaml" "$pod"
cleanup() {
  set +e
  minipod down "$name" >/dev/null 2>&1
  compare_cleanup
}
trap cleanup EXIT
compare_setup
echo "minipod: $(cd "$repo" && git rev-parse --short HEAD)"

net=()
[ "${PODMAN_NETWORK:-default}" = default ] || net=(--network "${PODMAN_NETWORK}")
echo "podman network: ${PODMAN_NETWORK:-default}; /dev/net/tun $(stat -c %a /dev/net/tun) (minipod uses pasta: $(command -v pasta || echo no))"

# Sanity: both start. (podman 4.3's kube play does not carry
# terminationGracePeriodSeconds over to StopTimeout; kube down removes the
# pod by force anyway, without waiting it out.)
minipod run -d "$pod" >/dev/null
minipod down "$pod" >/dev/null
as_user podman kube play --quiet "${net[@]}" "$pod" >/dev/null
echo "podman StopTimeout of $name-one: $(as_user podman inspect --format '{{.Config.StopTimeout}}' $name-one)"
as_user podman kube down "$pod" >/dev/null

export CONTAINERS_CONF CONTAINERS_STORAGE_CONF
m="$MINIPOD --root $data --runroot $run"
p_play="podman kube play --quiet ${net[*]} $pod"
# hyperfine itself runs as the bench user and starts each command directly
# (-N: no shell, output discarded), so the figures are the tools' own, not
# runuser's and bash's (about 9 ms per command here, on both sides). Each
# --prepare is one bash -c; it first removes the other tool's pod, so only
# the measured tool's pod exists. The sleep 0.5 (untimed) lets the kernel
# finish removing the previous pod's netns and veth, which it does
# asynchronously after `down` returns.
m_down="$m down $name >/dev/null 2>&1 || true"
p_down="podman kube down $pod >/dev/null 2>&1 || true"
as_user hyperfine -N --warmup "${WARMUP:-2}" --runs "${RUNS:-10}" \
  --export-markdown "$bench_work/lifecycle.md" --export-json "$bench_work/lifecycle.json" \
  --prepare "bash -c '$p_down; $m_down; sleep 0.5'" \
  -n "minipod run -d" "$m run -d $pod" \
  --prepare "bash -c '$m_down; $p_down; sleep 0.5'" \
  -n "podman kube play" "$p_play" \
  --prepare "bash -c '$p_down; $m_down; sleep 0.5; $m run -d $pod >/dev/null'" \
  -n "minipod down" "$m down $pod" \
  --prepare "bash -c '$m_down; $p_down; sleep 0.5; $p_play >/dev/null'" \
  -n "podman kube down" "podman kube down $pod"
cat "$bench_work/lifecycle.md"
as_user bash -c "$p_down; $m_down"
life() { hyperfine_mean "$bench_work/lifecycle.json" "$1"; }
report --metric "pod start (run -d)" --unit s --minipod "$(life "minipod run -d")" \
  --anchor-name "podman kube play" --anchor "$(life "podman kube play")" --target 15
report --metric "pod teardown (down)" --unit s --minipod "$(life "minipod down")" \
  --anchor-name "podman kube down" --anchor "$(life "podman kube down")" --target 10

# Resident memory. kB of VmRSS and of Pss for each pid; one line each.
mem() {
  local label=$1 pid rss pss total_rss=0 total_pss=0
  shift
  for pid in "$@"; do
    # A process gone since the tree was read (a short-lived helper) counts nothing.
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
    pss=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null) || continue
    [ -n "$rss" ] && [ -n "$pss" ] || continue
    printf '  %-8s %6s  %-44.44s %6s kB RSS (anon %5s, file %5s) %6s kB PSS\n' "$label" "$pid" "$(tr '\0' ' ' <"/proc/$pid/cmdline")" \
      "$rss" "$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status")" "$(awk '/^RssFile:/ {print $2}' "/proc/$pid/status")" "$pss"
    total_rss=$((total_rss + rss)) total_pss=$((total_pss + pss))
  done
  printf '  %-8s total  %-44s %6s kB RSS %26s kB PSS\n' "$label" "" "$total_rss" "$total_pss"
  echo "$total_rss $total_pss" >"$bench_work/mem-$label"
}
# Every descendant of a pid (the pid itself included).
tree() {
  local pid=$1 c
  echo "$pid"
  for c in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do tree "$c"; done
}
# minipod's own: its two binaries, or the pause program it runs from a memfd.
is_minipod() {
  case "$(readlink "/proc/$1/exe" 2>/dev/null)" in
    "$MINIPOD" | "$MINIPOD_SUPERVISOR" | /memfd:minipod-pause*) true ;;
    *) false ;;
  esac
}

echo
echo "resident memory, pod running (the containers' sleeps not counted):"
minipod run -d "$pod" >/dev/null
sleep 1
state=$run/pods/$name/state.json
sup=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["supervisor_pid"])' "$state")
pause=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pause_pid"])' "$state")
mpids=()
for p in $( (tree "$sup"; tree "$pause") | sort -un); do
  is_minipod "$p" && mpids+=("$p")
done
mem minipod "${mpids[@]}"
# Per run root, shared by every pod: the holder and its pasta.
holder=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$run/holder.pid")
mem holder $(tree "$holder")
minipod down "$pod" >/dev/null

as_user podman kube play --quiet "${net[@]}" "$pod" >/dev/null
sleep 1
infra=$(as_user podman pod inspect "$name" --format '{{.InfraContainerID}}')
ppids=()
for c in $(as_user podman ps -q --no-trunc --filter "pod=$name"); do
  ppids+=("$(as_user podman inspect --format '{{.State.ConmonPid}}' "$c")")
  if [ "$c" = "$infra" ]; then
    ppids+=("$(as_user podman inspect --format '{{.State.Pid}}' "$c")")
  fi
done
mem podman "${ppids[@]}"
# slirp4netns (PODMAN_NETWORK=default): one per pod, started for the infra container.
slirp=()
for p in $(pgrep -u "$bench_user" -x slirp4netns || true); do
  tr '\0' '\n' <"/proc/$p/environ" | grep -qx "XDG_RUNTIME_DIR=$bench_xdg" && slirp+=("$p")
done
[ ${#slirp[@]} -gt 0 ] && mem slirp "${slirp[@]}"
as_user podman kube down "$pod" >/dev/null

rd() { if [ -f "$bench_work/mem-$1" ]; then cat "$bench_work/mem-$1"; else echo 0 0; fi; }
read -r m_rss _ < <(rd minipod)
read -r p_rss _ < <(rd podman)
report --metric "memory of a pod's own processes (RSS)" --unit kB --minipod "$m_rss" \
  --anchor-name "podman's conmons + catatonit" --anchor "$p_rss" --target 4 --target-text "<= 1/4 of podman's"
python3 - $(rd minipod) $(rd podman) <<'PY'
import sys
m_rss, m_pss, p_rss, p_pss = map(int, sys.argv[1:])
rows = [("own per-pod processes", (m_rss, m_pss), (p_rss, p_pss))]
# The target is on resident memory (RSS). PSS is shown beside it: it splits
# each shared page among the processes that map it, and podman's conmons
# share glibc and glib with most processes on the machine, while minipod's
# statically linked supervisor shares its pages only with the supervisors of
# other pods (with one pod running, its PSS is its RSS).
for label, m, p in rows:
    r = m[0] / p[0]
    print(f"memory RSS, {label}: minipod {m[0]} kB, podman {p[0]} kB: {r:.2f} of podman's "
          f"(target <= 0.25: {'met' if r <= 0.25 else 'MISSED'})")
    print(f"memory PSS, {label}: minipod {m[1]} kB, podman {p[1]} kB: {m[1] / p[1]:.2f} of podman's "
          f"(no target)")
PY
