#!/usr/bin/env bash
# Every benchmark under bench/, one after the other, then one table: each
# figure for minipod and its anchor (podman, skopeo, tar, the in-pod
# loopback, ...), the ratio, the target and whether it holds. Exits 1 when a
# target does not hold or a bench fails.
#
#   sudo bash bench/all.sh [--markdown]   (after `sudo scripts/setup-host --bench`)
#   QUICK=1 sudo bash bench/all.sh        (fewer runs and smaller inputs: ~10 min)
#
# --markdown prints the table in Markdown, as the README's Benchmarks section
# holds it. Each bench's own output goes to $BENCH_DIR/all/NAME.log. Not part of
# .ci/run: it takes the machine for half an hour and needs podman & co.
set -uo pipefail
BENCH_NAME=all
source "$(dirname "$0")/lib.sh"
markdown=
[ "${1:-}" = --markdown ] && markdown=--markdown

need=()
for tool in hyperfine podman runc skopeo docker-registry iperf3 bwrap gcc; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "bench/all.sh: missing ${need[*]}; run \`sudo scripts/setup-host --bench\`" >&2
  exit 1
fi

if [ -n "${QUICK:-}" ]; then
  # Fewer runs and smaller inputs; every target is the same.
  export RUNS=3 WARMUP=1 LINES=1000000 PODS=20 MEASURE=10 COUNT=10 SECS=2 REPS=2 CONNECTS=300 QUERIES=300
fi
results=$bench_work/results.jsonl
: >"$results"
export BENCH_RESULTS=$results
# One build for all (each bench's own build is then a no-op).
(cd "$repo" && cargo build --release --quiet) || exit 1

failed=()
# image-load.sh builds the image registry-pull.sh pulls.
for bench in image-load registry-pull pod-start lifecycle seccomp network services probes logs commands; do
  printf '%-14s' "$bench" >&2
  start=$SECONDS
  if bash "$repo/bench/$bench.sh" >"$bench_work/$bench.log" 2>&1; then
    echo "$((SECONDS - start)) s" >&2
  else
    echo "FAILED after $((SECONDS - start)) s; the end of $bench_work/$bench.log:" >&2
    tail -5 "$bench_work/$bench.log" | sed 's/^/    /' >&2
    failed+=("$bench")
  fi
done

echo
echo "minipod $(cd "$repo" && git rev-parse --short HEAD), $(date -u +%Y-%m-%d), $(nproc) cores${QUICK:+, QUICK=1}"
echo
python3 "$repo/bench/report.py" table "$results" $markdown
status=$?
if [ ${#failed[@]} -gt 0 ]; then
  echo "benches that failed: ${failed[*]}"
  status=1
fi
exit "$status"
