#!/usr/bin/env bash
# Issue 13 probe benchmark.
#
# 1. CPU per probe. A detached pod of 10 busybox containers, each serving
#    HTTP (busybox httpd) and probed every second: a liveness httpGet each,
#    and a readiness probe, tcpSocket on the even containers and exec
#    (`true`) on the odd ones: 20 probes a second. After a warm-up, the
#    supervisor's CPU time (utime + stime of `minipod-supervisor`, which runs
#    every tcpSocket and httpGet probe in its own loop, plus the reaped
#    `minipod __probe-exec` processes it starts for exec probes: cutime +
#    cstime) over MEASURE seconds, per probe run.
#    podman (4.3 here) turns a kube livenessProbe into a healthcheck, which
#    it drives from systemd timers; PID 1 here is not systemd, so the same
#    pod is played with podman and `podman healthcheck run` is run for each
#    container, COUNT times, the CPU of those processes measured (getrusage
#    of the children): CPU per probe again. (podman's httpGet and tcpSocket
#    healthchecks need curl or nc in the image; the exec form is what busybox
#    can run, and the cost measured is podman's own per check.)
# 2. Readiness latency: a container starts answering on 8080 after 2 s and
#    says when (/proc/uptime just before `exec httpd`: busybox's date has
#    no %N); its readiness probe
#    is an httpGet with periodSeconds: 1. The time from that moment to
#    `minipod wait --condition ready` returning, RUNS times.
#    Target: at most periodSeconds + 50 ms.
#
#   sudo bash bench/probes.sh     (needs podman, runc; MEASURE=30 COUNT=30 RUNS=5)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
build_minipod

MEASURE=${MEASURE:-30} COUNT=${COUNT:-30} RUNS=${RUNS:-5}
busybox_pod_bench
cleanup() {
  set +e
  minipod rm -f bench-probes bench-ready >/dev/null 2>&1
  stop_holder "$run"
  compare_cleanup
}
trap cleanup EXIT
compare_setup
echo "minipod: $(cd "$repo" && git rev-parse --short HEAD)"

# The pod: 10 containers, 20 probes a second.
{
  printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: bench-probes}\nspec:\n'
  printf '  terminationGracePeriodSeconds: 1\n  containers:\n'
  for i in $(seq 0 9); do
    port=$((8000 + i))
    if [ $((i % 2)) = 0 ]; then
      ready="tcpSocket: {port: $port}"
    else
      ready="exec: {command: [/bin/true]}"
    fi
    printf '  - name: c%s\n    image: localhost/busybox\n' "$i"
    printf "    command: [/bin/sh, -c, 'export PATH=/bin; mkdir -p /www; echo ok > /www/index.html; exec httpd -f -p %s -h /www']\n" "$port"
    printf '    livenessProbe: {httpGet: {path: /index.html, port: %s}, periodSeconds: 1}\n' "$port"
    printf '    readinessProbe: {%s, periodSeconds: 1}\n' "$ready"
  done
} >"$pod"
chown "$bench_user": "$pod"

minipod run -d "$pod" >/dev/null
minipod wait --condition ready --timeout 60s bench-probes
sleep 3
sup=$(sed -n 's/.*"supervisor_pid": *\([0-9]*\).*/\1/p' "$run/pods/bench-probes/state.json")
ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks "$sup")
sleep "$MEASURE"
t1=$(ticks "$sup")
probes=$((20 * MEASURE))
minipod_ms=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$probes" 'BEGIN { printf "%.3f", d * 1000 / hz / n }')
minipod_pct=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$MEASURE" 'BEGIN { printf "%.1f", d * 100 / hz / s }')
echo "minipod: supervisor CPU ${minipod_pct}% of a core for 20 probes/s; ${minipod_ms} ms CPU per probe (${probes} probes)"
minipod rm -f bench-probes >/dev/null

# podman: the same pod with an exec liveness probe as its healthcheck.
sed 's/livenessProbe: {httpGet: {path: \/index.html, port: [0-9]*}/livenessProbe: {exec: {command: [\/bin\/true]}/' "$pod" >"$work/podman.yaml"
chown "$bench_user": "$work/podman.yaml"
as_user podman kube play "$work/podman.yaml" >/dev/null
ctr=bench-probes-c0
podman_cpu=$(as_user bash -c '
  for i in $(seq 1 '"$COUNT"'); do podman healthcheck run '"$ctr"' >/dev/null 2>&1 || true; done
  times' | tail -1 | awk '{ split($1, u, "m"); split($2, s, "m"); sub("s", "", u[2]); sub("s", "", s[2]); print (u[1] * 60 + u[2] + s[1] * 60 + s[2]) }')
podman_ms=$(awk -v c="$podman_cpu" -v n="$COUNT" 'BEGIN { printf "%.1f", c * 1000 / n }')
echo "podman:  ${podman_ms} ms CPU per \`podman healthcheck run\` (${COUNT} runs; at 20 checks/s that is $(awk -v m="$podman_ms" 'BEGIN { printf "%.0f", m * 20 / 10 }')% of a core)"
report --metric "CPU per probe" --unit ms --minipod "$minipod_ms" \
  --anchor-name "podman healthcheck run" --anchor "$podman_ms" --target 0 --target-text "none (figure only)"
as_user podman kube down "$work/podman.yaml" >/dev/null 2>&1 || true

# Readiness latency.
cat >"$work/ready.yaml" <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: bench-ready}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: srv
    image: localhost/busybox
    command: [/bin/sh, -c, 'export PATH=/bin; mkdir -p /www; echo ok > /www/index.html; sleep 2; cut -d" " -f1 /proc/uptime; exec httpd -f -p 8080 -h /www']
    readinessProbe: {httpGet: {path: /index.html, port: 8080}, periodSeconds: 1}
EOF
chown "$bench_user": "$work/ready.yaml"
latencies=()
for r in $(seq 1 "$RUNS"); do
  minipod run -d "$work/ready.yaml" >/dev/null
  minipod wait --condition ready --timeout 30s bench-ready
  done_at=$(cut -d" " -f1 /proc/uptime)
  up_at=$(minipod logs bench-ready srv | head -1)
  latency=$(awk -v a="$up_at" -v b="$done_at" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
  echo "readiness latency run $r: $latency ms (target <= 1050 ms; /proc/uptime has 10 ms steps)"
  latencies+=("$latency")
  minipod rm -f bench-ready >/dev/null
done
report --metric "readiness latency (periodSeconds 1)" --unit ms \
  --minipod "$(printf '%s\n' "${latencies[@]}" | awk '{s += $1} END {print s / NR}')" \
  --anchor-name "periodSeconds + 50 ms" --anchor 1050 --target 1 --target-text "<= period + 50 ms"
