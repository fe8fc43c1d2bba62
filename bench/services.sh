#!/usr/bin/env bash
# Issue 19 "Services" benchmark: what a ClusterIP Service costs a pod, each
# figure against the same client pod reaching the server pod directly, in
# the same run (measurements interleaved, so the machine's load drifts over
# both alike):
#   (a) TCP throughput, iperf3 -t SECS, REPS runs each: through the Service's
#       virtual IP (port 80 -> targetPort 5201: nftables DNAT and masquerade
#       in the holder's uplink netns) against the server pod's IP.
#       Target: Service >= 0.9x direct.
#   (b) TCP connect + a 1-byte request and answer + close, CONNECTS times
#       per run, REPS runs each, via the VIP (port 81 -> 5301) against the
#       pod's IP: the per-connection cost of the DNAT (the median of the
#       runs' medians: other work on the machine makes means jumpy; a figure,
#       no target).
#   (c) Name resolution from the pod, QUERIES getaddrinfo() calls a run, REPS
#       runs each, the names in turn (glibc, A and AAAA, as a client program
#       resolves): the Service's NAME through the search path, its FQDN
#       NAME.default.svc.cluster.local (fewer dots than ndots:5, so the search
#       path is tried first: three NXDOMAIN pairs before the answer), and the
#       FQDN with a trailing dot; anchored on one raw DNS A query sent
#       straight to the DNS server's IP (the server's own round trip, no
#       resolver library). Also the pod's own name from /etc/hosts (no DNS:
#       the resolver library's floor). Figures (medians), no target.
# When (a) misses, or PROFILE=1, the script shows the Service's nft table and
# conntrack use in the holder's uplink netns and a system-wide perf profile
# of one direct and one Service run.
#
#   sudo bash bench/services.sh      (needs iperf3 and gcc; SECS=5 REPS=3
#                                     CONNECTS=2000 QUERIES=2000)
#
# The image: busybox-static, the host's iperf3 and bench/netprobe.c (built
# here with gcc), each with the shared libraries ldd lists.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for tool in iperf3 gcc; do
  command -v "$tool" >/dev/null || { echo "bench/services.sh: needs $tool (apt-get install $tool)" >&2; exit 1; }
done
build_minipod

work=$bench_work/svc
run=$bench_xdg/minipod data=$work/data rootfs=$work/rootfs
secs=${SECS:-5} reps=${REPS:-3} connects=${CONNECTS:-2000} queries=${QUERIES:-2000}
rm -rf "$work"
mkdir -p "$work"
busybox_rootfs "$rootfs" "$work/rootfs.tar"
mkdir -p "$rootfs/sys"
copy_with_libs "$(command -v iperf3)" "$rootfs"
gcc -O2 -Wall -o "$work/netprobe" "$repo/bench/netprobe.c"
copy_with_libs "$work/netprobe" "$rootfs"
# glibc's order, as a Debian root has it (without the file, dns comes first).
echo 'hosts: files dns' >"$rootfs/etc/nsswitch.conf"

cat >"$work/server.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata:
  name: svc-server
  labels: {app: svc-server}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers:
    - name: iperf
      image: localhost/netprobe:latest
      imagePullPolicy: IfNotPresent
      command: ["/bin/iperf3", "-s"]
      ports: [{name: iperf, containerPort: 5201}]
    - name: rr
      image: localhost/netprobe:latest
      imagePullPolicy: IfNotPresent
      command: ["/bin/netprobe", "serve", "5301"]
      ports: [{name: rr, containerPort: 5301}]
---
apiVersion: v1
kind: Service
metadata:
  name: bench
spec:
  selector: {app: svc-server}
  ports:
    - {name: iperf, port: 80, targetPort: iperf}
    - {name: rr, port: 81, targetPort: rr}
YAML
cat >"$work/client.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata:
  name: svc-client
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers:
    - name: client
      image: localhost/netprobe:latest
      imagePullPolicy: IfNotPresent
      command: ["/bin/sleep", "3600"]
YAML

trap 'cleanup_pods localhost/netprobe "$work/client.yaml" "$work/server.yaml"' EXIT
[ "$(id -u)" = 0 ] && chown -R "$bench_user": "$work"
runtime_tmpfs

minipod import "$rootfs" localhost/netprobe:latest >/dev/null
minipod run -d --wait ready "$work/server.yaml" >/dev/null
minipod run -d --wait ready "$work/client.yaml" >/dev/null
server_ip=$(pod_ip svc-server)
# The Service's VIP once the server pod is its (ready) endpoint.
vip=
for _ in $(seq 50); do
  vip=$(minipod service ls --format json | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["name"] == "bench" and any(e.get("ready") for e in s.get("endpoints") or []):
        print(s["clusterIp"])')
  [ -n "$vip" ] && break
  sleep 0.1
done
[ -n "$vip" ] || { echo "bench/services.sh: Service bench got no endpoint" >&2; exit 1; }
# Wait for both servers to listen.
for _ in $(seq 50); do
  minipod exec svc-server iperf -- /bin/sh -c 'netstat -ltn | grep -q :5201 && netstat -ltn | grep -q :5301' 2>/dev/null && break
  sleep 0.1
done
gateway=$(minipod exec svc-client client -- /bin/sh -c "sed -n 's/^nameserver //p' /etc/resolv.conf" | head -1)
echo "iperf3 $(iperf3 --version | head -1 | cut -d' ' -f2); server pod $server_ip, Service bench $vip (80->5201, 81->5301), DNS server $gateway"
echo "-t $secs, $reps runs each; $connects connections a run; $queries lookups a run; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

probe() { minipod exec svc-client client -- /bin/netprobe "$@"; }
# A netprobe line's field ("mean_us=12.3" -> 12.3).
field() { sed -n "s/.*\\b$1=\\([0-9.]*\\).*/\\1/p"; }
gbps() { python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'; }
mean() { python3 -c 'import sys; r = list(map(float, sys.argv[1].split())); print(sum(r) / len(r))' "$1"; }

# One netprobe run of KEY: its p50, mean and p99 appended to KEY's runs.
declare -A tput p50 avg p99
sample() {
  local key=$1 line
  shift
  line=$(probe "$@")
  p50[$key]+="$(field p50_us <<<"$line") " avg[$key]+="$(field mean_us <<<"$line") " p99[$key]+="$(field p99_us <<<"$line") "
}

# (a), (b) and (c), each in REPS rounds, the paths compared alternately.
fqdn=bench.default.svc.cluster.local
probe connect "$server_ip" 5301 100 >/dev/null
probe connect "$vip" 81 100 >/dev/null
probe resolve bench 50 >/dev/null
for _ in $(seq "$reps"); do
  tput[direct]+="$(minipod exec svc-client client -- /bin/iperf3 -J -t "$secs" -c "$server_ip" | gbps) "
  tput[service]+="$(minipod exec svc-client client -- /bin/iperf3 -J -t "$secs" -c "$vip" -p 80 | gbps) "
done
for _ in $(seq "$reps"); do
  sample direct connect "$server_ip" 5301 "$connects"
  sample service connect "$vip" 81 "$connects"
done
dns_keys=(query name fqdn dot hosts)
for _ in $(seq "$reps"); do
  sample query query "$gateway" "$fqdn" "$queries"
  sample name resolve bench "$queries"
  sample fqdn resolve "$fqdn" "$queries"
  sample dot resolve "$fqdn." "$queries"
  sample hosts resolve svc-client "$queries"
done

{
  echo "| path | runs | median (throughput: mean) | x direct | target |"
  echo "|:---|:---|---:|---:|:---|"
  python3 - "${tput[direct]}" "${tput[service]}" <<'PY'
import sys
direct, service = ([float(x) for x in a.split()] for a in sys.argv[1:])
d, s = sum(direct) / len(direct), sum(service) / len(service)
print(f"| (a) TCP to the server pod's IP | {' '.join(f'{x:.2f}' for x in direct)} Gbit/s | {d:.2f} Gbit/s | 1.00 | |")
print(f"| (a) TCP through the Service's VIP | {' '.join(f'{x:.2f}' for x in service)} Gbit/s | {s:.2f} Gbit/s | {s / d:.2f} "
      f"| >= 0.9: {'met' if s / d >= 0.9 else 'MISSED'} |")
PY
  for key in direct service "${dns_keys[@]}"; do
    case $key in
      direct) what="(b) connect + 1-byte request, to the pod's IP" ;;
      service) what="(b) connect + 1-byte request, through the VIP" ;;
      query) what="(c) one A query to $gateway:53 (raw, no resolver)" ;;
      name) what="(c) getaddrinfo bench (search path)" ;;
      fqdn) what="(c) getaddrinfo $fqdn (ndots:5)" ;;
      dot) what="(c) getaddrinfo $fqdn." ;;
      hosts) what="(c) getaddrinfo svc-client (/etc/hosts)" ;;
    esac
    python3 - "$what" "${p50[$key]}" "${avg[$key]}" "${p99[$key]}" "${p50[direct]}" "$key" <<'PY'
import statistics, sys
what, (m, a, p, d), key = sys.argv[1], ([float(x) for x in s.split()] for s in sys.argv[2:6]), sys.argv[6]
runs = lambda xs: " ".join(f"{x:.0f}" for x in xs)
ratio = f"{statistics.median(d) / statistics.median(m):.2f}" if key in ("direct", "service") else ""
print(f"| {what} | p50 {runs(m)} µs (mean {runs(a)}, p99 {runs(p)}) | {statistics.median(m):.0f} µs | {ratio} | |")
PY
  done
} | tee "$bench_work/services.md"

report --metric "TCP through a Service's virtual IP" --unit Gbit/s --minipod "$(mean "${tput[service]}")" \
  --anchor-name "the server pod's IP" --anchor "$(mean "${tput[direct]}")" --target 0.9 --higher-better
# The median of a key's runs' medians, in ms.
median_ms() { python3 -c 'import statistics, sys; print(statistics.median(map(float, sys.argv[1].split())) / 1000)' "${p50[$1]}"; }
report --metric "TCP connect + 1-byte request through a Service's VIP (median)" --unit ms \
  --minipod "$(median_ms service)" --anchor-name "the server pod's IP" \
  --anchor "$(median_ms direct)" --target 0 --target-text "none (figure only)"
report --metric "Service NAME from a pod (getaddrinfo, search path, median)" --unit ms \
  --minipod "$(median_ms name)" --anchor-name "one DNS query to the server's IP" \
  --anchor "$(median_ms query)" --target 0 --target-text "none (figure only)"
report --metric "Service FQDN from a pod (getaddrinfo, ndots:5, median)" --unit ms \
  --minipod "$(median_ms fqdn)" --anchor-name "one DNS query to the server's IP" \
  --anchor "$(median_ms query)" --target 0 --target-text "none (figure only)"

# Where a Service's packets spend their time, when (a) misses.
if grep -q "VIP.*MISSED" "$bench_work/services.md" || [ -n "${PROFILE:-}" ]; then
  holder=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$run/holder.pid")
  echo
  echo "the Service's nft table in the holder's uplink netns (pid $holder):"
  nsenter -t "$holder" -n nft list table ip minipod-services 2>&1 | sed 's/^/    /' || true
  echo "conntrack entries there: $(nsenter -t "$holder" -n cat /proc/sys/net/netfilter/nf_conntrack_count 2>&1)" \
    "of at most $(cat /proc/sys/net/netfilter/nf_conntrack_max 2>&1) (nf_conntrack_max: the limit of each netns's count)"
  if command -v perf >/dev/null; then
    for path in direct service; do
      target=$server_ip port=5201
      [ "$path" = service ] && target=$vip port=80
      minipod exec svc-client client -- /bin/iperf3 -t $((secs + 2)) -c "$target" -p "$port" >/dev/null &
      client=$!
      sleep 1
      perf record -q -a -g -o "$bench_work/perf-$path.data" -- sleep "$secs" >/dev/null 2>&1 || true
      wait $client
      echo
      echo "perf, whole machine, one $path run: CPU by symbol (children included), top entries:"
      perf report -q -i "$bench_work/perf-$path.data" --children --stdio --no-call-graph --sort sym --percent-limit 3 2>/dev/null |
        grep -v '^$' | head -30
      echo "netfilter's own share (nf_*, nft_*, br_nf*, *conntrack*, *nat* symbols, self), and its top symbols:"
      perf report -q -i "$bench_work/perf-$path.data" --no-children --stdio --no-call-graph --sort sym 2>/dev/null |
        awk '$NF ~ /^(nf_|nft_|__nf|ipv4_conntrack|masq|br_nf)/ || $NF ~ /conntrack|_nat_/ {
               n++; if (n <= 6) top = top sprintf("      %s %s\n", $1, $NF); gsub("%", "", $1); s += $1 }
             END { printf "    %.1f %%\n%s", s, top }'
    done
  fi
fi
