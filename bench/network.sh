#!/usr/bin/env bash
# Issue "Pod network" benchmark: TCP throughput with iperf3 (-t 5, 3 runs each):
#   (a) loopback inside one pod's netns: server and client containers of one
#       pod, client `iperf3 -c 127.0.0.1`;
#   (b) pod to pod over the bridge minipod0: a client pod to the server pod's
#       status.podIP (from `minipod inspect`);
#   (c) host to pod through a hostPort: `iperf3 -c 127.0.0.1 -p N` on the
#       host, forwarded by the pod's supervisor (src/net/portfwd.rs).
# Targets: pod to pod >= 0.7x loopback, hostPort >= 0.4x loopback. When
# hostPort misses, the script profiles the supervisor during one more run
# (strace -c -f, and perf record if perf is there).
#
#   sudo bash bench/network.sh      (needs iperf3: apt-get install iperf3)
#
# The image: the host's iperf3 with the shared libraries ldd lists (each at
# its own path) and the dynamic loader, plus busybox-static for `sleep`,
# imported with `minipod import`. Clients run with `minipod exec`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v iperf3 >/dev/null || { echo "bench/network.sh: needs iperf3 (apt-get install iperf3)" >&2; exit 1; }
build_minipod

work=$bench_work/net
run=$bench_xdg/minipod data=$work/data rootfs=$work/rootfs
host_port=${HOST_PORT:-25201} secs=${SECS:-5} reps=${REPS:-3}
rm -rf "$work"
mkdir -p "$work" "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/proc" "$rootfs/dev" "$rootfs/sys"

cp "$(command -v busybox)" "$rootfs/bin/busybox"
for applet in $("$rootfs/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
copy_with_libs "$(command -v iperf3)" "$rootfs"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"

cat >"$work/server.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: net-server
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers:
    - name: server
      image: localhost/iperf3:latest
      imagePullPolicy: IfNotPresent
      command: ["/bin/iperf3", "-s"]
      ports: [{containerPort: 5201, hostPort: $host_port}]
    - name: client
      image: localhost/iperf3:latest
      imagePullPolicy: IfNotPresent
      command: ["/bin/sleep", "3600"]
YAML
cat >"$work/client.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata:
  name: net-client
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers:
    - name: client
      image: localhost/iperf3:latest
      imagePullPolicy: IfNotPresent
      command: ["/bin/sleep", "3600"]
YAML

trap 'cleanup_pods localhost/iperf3 net-client net-server' EXIT
[ "$(id -u)" = 0 ] && chown -R "$bench_user": "$work"
runtime_tmpfs

minipod import "$rootfs" localhost/iperf3:latest >/dev/null
minipod run -d "$work/server.yaml" >/dev/null
minipod run -d "$work/client.yaml" >/dev/null
server_ip=$(pod_ip net-server)
echo "iperf3 $(iperf3 --version | head -1 | cut -d' ' -f2); server pod IP $server_ip, hostPort $host_port; -t $secs, $reps runs each; $(nproc) cores"
# Wait for the server to listen.
for _ in $(seq 50); do
  minipod exec net-server client -- /bin/sh -c 'netstat -ltn | grep -q :5201' 2>/dev/null && break
  sleep 0.1
done

# One iperf3 client run: Gbit/s received, from its JSON.
gbps() { python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'; }
declare -A results
measure() {
  local key=$1 i g
  shift
  for i in $(seq "$reps"); do
    g=$("$@" | gbps)
    results[$key]+="$g "
  done
}
measure loopback minipod exec net-server client -- /bin/iperf3 -J -t "$secs" -c 127.0.0.1
measure pod2pod minipod exec net-client client -- /bin/iperf3 -J -t "$secs" -c "$server_ip"
measure hostport as_user iperf3 -J -t "$secs" -c 127.0.0.1 -p "$host_port"

{
  echo "| path | runs (Gbit/s) | mean Gbit/s | x loopback | target |"
  echo "|:---|:---|---:|---:|:---|"
  python3 - "${results[loopback]}" "${results[pod2pod]}" "${results[hostport]}" <<'PY'
import sys
runs = [list(map(float, a.split())) for a in sys.argv[1:]]
mean = [sum(r) / len(r) for r in runs]
rows = (("(a) loopback in one pod", None), ("(b) pod to pod over minipod0", 0.7),
        ("(c) host to pod via hostPort", 0.4))
for (name, target), r, m in zip(rows, runs, mean):
    ratio = m / mean[0]
    t = "" if target is None else f">= {target}: {'met' if ratio >= target else 'MISSED'}"
    print(f"| {name} | {' '.join(f'{x:.2f}' for x in r)} | {m:.2f} | {ratio:.2f} | {t} |")
PY
} | tee "$bench_work/network.md"
gmean() { python3 -c 'import sys; r = list(map(float, sys.argv[1].split())); print(sum(r) / len(r))' "$1"; }
report --metric "TCP pod to pod over the bridge" --unit Gbit/s --minipod "$(gmean "${results[pod2pod]}")" \
  --anchor-name "loopback in one pod" --anchor "$(gmean "${results[loopback]}")" --target 0.7 --higher-better
report --metric "TCP host to pod through a hostPort" --unit Gbit/s --minipod "$(gmean "${results[hostport]}")" \
  --anchor-name "loopback in one pod" --anchor "$(gmean "${results[loopback]}")" --target 0.4 --higher-better

# The hostPort forwarder: where its time goes, during one more run.
if grep -q "hostPort.*MISSED" "$bench_work/network.md" || [ -n "${PROFILE:-}" ]; then
  sup=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["supervisor_pid"])' "$run/pods/net-server/state.json")
  echo
  echo "profile of the supervisor (pid $sup) while it forwards one ${secs}s hostPort run:"
  as_user iperf3 -t $((secs + 2)) -c 127.0.0.1 -p "$host_port" >/dev/null &
  client=$!
  sleep 1
  timeout -s INT "$secs" strace -c -f -p "$sup" -o "$bench_work/strace.txt" || true
  wait $client
  head -15 "$bench_work/strace.txt"
  # Bytes per recv: std::io::copy between two sockets has no splice path; it
  # loops read/write through a small stack buffer.
  as_user iperf3 -t 4 -c 127.0.0.1 -p "$host_port" >/dev/null &
  client=$!
  sleep 1
  timeout -s INT 1 strace -f -qq -e trace=recvfrom -p "$sup" -o "$bench_work/recv.txt" || true
  wait $client
  awk '/recvfrom/ && $NF ~ /^[0-9]+$/ {n++; b+=$NF; if ($NF>m) m=$NF} END {printf "recvfrom: %d calls, %.0f bytes per call on average, %d at most\n", n, b/n, m}' "$bench_work/recv.txt"
  if command -v perf >/dev/null; then
    as_user iperf3 -t $((secs + 2)) -c 127.0.0.1 -p "$host_port" >/dev/null &
    client=$!
    sleep 1
    perf record -q -g -o "$bench_work/perf.data" -p "$sup" -- sleep "$secs" >/dev/null 2>&1 || true
    wait $client
    echo
    echo "perf: the supervisor's CPU by function (children included), top entries:"
    perf report -q -i "$bench_work/perf.data" --children --stdio --no-call-graph --percent-limit 4 2>/dev/null |
      grep -v '^$' | head -25
    echo
    echo "supervisor CPU time during that run: $(ps -o times= -p "$sup") s total since start"
  fi
fi
