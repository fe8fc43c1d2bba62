#!/usr/bin/env bash
# Everyday commands with many pods up: PODS detached pods of one `sleep`
# container each (bench/lifecycle.yaml's image and container), started one
# after the other, with minipod and with podman (`kube play`), then in one
# hyperfine run each tool's
#   - exec:  minipod exec POD one -- true   vs  podman exec CTR true
#   - ps:    minipod ps                     vs  podman pod ps
#   - logs:  minipod logs POD one           vs  podman logs CTR
# and how the start of the last pod compares with the first (the mean of
# the first 5 `minipod run -d` against the last 5: nothing may grow with the
# number of pods).
# Targets: exec >= 20x, ps >= 10x, logs >= 10x faster than podman; the last
# starts within 1.2x of the first.
#
#   sudo bash bench/commands.sh      (needs hyperfine, podman, runc; PODS=100 RUNS=30)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
build_minipod

pods=${PODS:-100}
busybox_pod_bench
cleanup() {
  set +e
  minipod rm -f $(seq -f "bench-cmd-%g" "$pods") >/dev/null 2>&1
  compare_cleanup
}
trap cleanup EXIT
compare_setup
echo "minipod: $(cd "$repo" && git rev-parse --short HEAD); $pods pods"
export CONTAINERS_CONF CONTAINERS_STORAGE_CONF

pod_yaml() {
  printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 0\n' "$1"
  printf '  containers:\n  - {name: one, image: localhost/busybox:latest, imagePullPolicy: IfNotPresent, command: [/bin/sh, -c, "echo started; exec sleep 3600"]}\n'
}
starts=$work/starts
: >"$starts"
for i in $(seq "$pods"); do
  pod_yaml "bench-cmd-$i" >"$work/pod-$i.yaml"
done
chown -R "$bench_user": "$work"
# Each start timed on its own (ns), after the previous one returned.
as_user bash -c '
  for i in $(seq '"$pods"'); do
    t0=$(date +%s%N)
    '"$MINIPOD --root $data --runroot $run"' run -d '"$work"'/pod-$i.yaml >/dev/null
    echo $(( $(date +%s%N) - t0 )) >>'"$starts"'
  done'
for i in $(seq "$pods"); do
  as_user podman kube play --quiet --network none "$work/pod-$i.yaml" >/dev/null
done

m="$MINIPOD --root $data --runroot $run"
mid=$(( (pods + 1) / 2 ))
as_user hyperfine -N --warmup "${WARMUP:-3}" --runs "${RUNS:-30}" \
  --export-markdown "$bench_work/commands.md" --export-json "$bench_work/commands.json" \
  -n "minipod exec" "$m exec bench-cmd-$mid one -- /bin/true" \
  -n "podman exec" "podman exec bench-cmd-$mid-one /bin/true" \
  -n "minipod ps" "$m ps" \
  -n "podman pod ps" "podman pod ps" \
  -n "minipod logs" "$m logs bench-cmd-$mid one" \
  -n "podman logs" "podman logs bench-cmd-$mid-one"
cat "$bench_work/commands.md"

mean() { hyperfine_mean "$bench_work/commands.json" "$1"; }
report --metric "exec, $pods pods up" --unit s --minipod "$(mean "minipod exec")" \
  --anchor-name "podman exec" --anchor "$(mean "podman exec")" --target 20
report --metric "ps, $pods pods up" --unit s --minipod "$(mean "minipod ps")" \
  --anchor-name "podman pod ps" --anchor "$(mean "podman pod ps")" --target 10
report --metric "logs, $pods pods up" --unit s --minipod "$(mean "minipod logs")" \
  --anchor-name "podman logs" --anchor "$(mean "podman logs")" --target 10
first=$(head -5 "$starts" | awk '{s += $1} END {print s / NR / 1e9}')
last=$(tail -5 "$starts" | awk '{s += $1} END {print s / NR / 1e9}')
report --metric "run -d of pod $pods against pod 1" --unit s --minipod "$last" \
  --anchor-name "run -d of pod 1 (5 each)" --anchor "$first" --target 5/6 --target-text "within 1.2x"
