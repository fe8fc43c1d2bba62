#!/usr/bin/env bash
# Issue 18 log-throughput benchmark: a container printing LINES lines of 41
# bytes to stdout (bench/logs.yaml; 5 000 000 lines = 205 MB), busybox image
# from the host's busybox-static imported into both stores, in one hyperfine
# run, each from no pod (--prepare removes both tools' pods):
#   - minipod run -d + wait          (the supervisor writes the CRI log)
#   - podman kube play --log-driver k8s-file + wait (conmon writes its
#     CRI-like log)
#   - minipod run -d + wait, the container's output piped to a second cat
#     that sends it to /dev/null (the floor: starting the pod, the printer
#     writing into a pipe and a reader taking every byte out of it, as the
#     supervisor must, then throwing them away)
#   - minipod run -d + wait, `cat /lines > /dev/null` (a figure only: busybox
#     cat then copies the file with sendfile, and to /dev/null that moves no
#     byte at all, a floor no log path can come near; the issue's own floor,
#     0.26 s, was a printer whose bytes were written somewhere)
#   - minipod run (foreground) > file (the log, and the terminal's copy with
#     each line's prefix, written to a file)
# The container prints with `cat /lines` (the lines are made into the image
# beforehand), so the figures are about moving output, as the issue's
# (whose floor was 0.26 s), not about making it. The same two tools with
# busybox's `yes | head -n LINES` as the printer are shown beside, a figure
# without a target: that printer is two processes busy on their own for
# ~0.9 s, sharing this machine's 2 cores with whatever takes the output.
# Targets: minipod >= 2x faster than podman; within 3x of the floor (the
# pipe); the foreground run within 1.5x of the detached one.
#
#   sudo bash bench/logs.sh      (needs hyperfine, podman, runc; LINES=5000000 RUNS=5)
#
# Podman set-up as in pod-start.sh (lib.sh: bench-private HOME,
# XDG_RUNTIME_DIR on a tmpfs, runc/cgroupfs, overlay); THIS SCRIPT CHMODS
# /dev/net/tun 0666 AS ROOT for the run and puts the old mode back.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
build_minipod

lines=${LINES:-5000000}
busybox_pod_bench
line=0123456789012345678901234567890123456789
# (yes ends on SIGPIPE when head has its lines.)
{ yes "$line" || true; } | head -n "$lines" >"$rootfs/lines"
tar -C "$rootfs" -cf "$work/rootfs.tar" .
null=$work/null.yaml sendfile=$work/sendfile.yaml yes_pod=$work/yes.yaml fg_out=$work/foreground.out
pod_yaml() { # NAME COMMAND REDIRECT
  sed "s/name: bench-logs/name: $1/; s|COMMAND|$2|; s|REDIRECT|$3|" "$repo/bench/logs.yaml"
}
pod_yaml bench-logs "cat /lines" "" >"$pod"
pod_yaml bench-logs-null "cat /lines \\| cat" ">/dev/null" >"$null"
pod_yaml bench-logs-sendfile "cat /lines" ">/dev/null" >"$sendfile"
pod_yaml bench-logs-yes "yes $line \\| head -n $lines" "" >"$yes_pod"
cleanup() {
  set +e
  minipod rm -f bench-logs bench-logs-null bench-logs-sendfile bench-logs-yes >/dev/null 2>&1
  compare_cleanup
}
trap cleanup EXIT
compare_setup
echo "minipod: $(cd "$repo" && git rev-parse --short HEAD); $lines lines"

export CONTAINERS_CONF CONTAINERS_STORAGE_CONF
m="$MINIPOD --root $data --runroot $run"
down="$m rm -f bench-logs bench-logs-null bench-logs-sendfile bench-logs-yes >/dev/null 2>&1; podman kube down $pod >/dev/null 2>&1; podman kube down $yes_pod >/dev/null 2>&1; rm -f $fg_out; true"
# Sanity: the log holds every line (the current file and its rotated one
# hold the last lines; `logs` reads both).
minipod run -d "$pod" >/dev/null
minipod wait bench-logs >/dev/null
got=$(minipod logs --tail 1 bench-logs chatty)
[ "$got" = 0123456789012345678901234567890123456789 ] || { echo "unexpected last line: $got" >&2; exit 1; }
minipod rm -f bench-logs >/dev/null

as_user hyperfine --shell bash --warmup "${WARMUP:-1}" --runs "${RUNS:-5}" \
  --export-markdown "$bench_work/logs.md" --export-json "$bench_work/logs.json" \
  --prepare "$down" \
  -n "minipod run -d + wait" "$m run -d $pod >/dev/null && $m wait bench-logs >/dev/null" \
  -n "podman kube play + wait" "podman kube play --quiet --network none --log-driver k8s-file $pod >/dev/null && podman wait bench-logs-chatty >/dev/null" \
  -n "minipod, output through a pipe to /dev/null" "$m run -d $null >/dev/null && $m wait bench-logs-null >/dev/null" \
  -n "minipod, output to /dev/null (sendfile)" "$m run -d $sendfile >/dev/null && $m wait bench-logs-sendfile >/dev/null" \
  -n "minipod run > file" "$m run $pod >$fg_out" \
  -n "minipod run -d + wait, yes | head" "$m run -d $yes_pod >/dev/null && $m wait bench-logs-yes >/dev/null" \
  -n "podman kube play + wait, yes | head" "podman kube play --quiet --network none --log-driver k8s-file $yes_pod >/dev/null && podman wait bench-logs-yes-chatty >/dev/null"
cat "$bench_work/logs.md"
as_user bash -c "$down"
mean() { hyperfine_mean "$bench_work/logs.json" "$1"; }
detached=$(mean "minipod run -d + wait")
report --metric "log throughput, $lines lines" --unit s --minipod "$detached" \
  --anchor-name "podman kube play (k8s-file)" --anchor "$(mean "podman kube play + wait")" --target 2
report --metric "log throughput against output through a pipe to /dev/null" --unit s --minipod "$detached" \
  --anchor-name "cat /lines | cat > /dev/null" --anchor "$(mean "minipod, output through a pipe to /dev/null")" \
  --target 1/3 --target-text "within 3x"
report --metric "log throughput against cat /lines > /dev/null (sendfile)" --unit s --minipod "$detached" \
  --anchor-name "cat /lines > /dev/null" --anchor "$(mean "minipod, output to /dev/null (sendfile)")" \
  --target 0 --target-text "none (figure only)"
report --metric "foreground run > file against detached" --unit s --minipod "$(mean "minipod run > file")" \
  --anchor-name "minipod run -d + wait" --anchor "$detached" --target 2/3 --target-text "within 1.5x"
report --metric "log throughput, $lines lines from busybox yes piped to head" --unit s \
  --minipod "$(mean "minipod run -d + wait, yes | head")" --anchor-name "podman kube play (k8s-file)" \
  --anchor "$(mean "podman kube play + wait, yes | head")" --target 0 --target-text "none (figure only)"
