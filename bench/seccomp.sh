#!/usr/bin/env bash
# Seccomp cost benchmark: the same pod of 8 containers that run `true`,
# started and torn down by `minipod run`, once with the default seccomp
# profile (RuntimeDefault: compiled in `run`, installed in each container)
# and once with `seccompProfile: {type: Unconfined}`, in one hyperfine run.
# Target: RuntimeDefault costs at most 1 ms more per container.
#
#   sudo bash bench/seccomp.sh            (needs hyperfine)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
build_minipod
busybox_pod_bench
containers=${CONTAINERS:-8}

pod_yaml() {
  local name=$1 profile=$2
  printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  restartPolicy: Never\n  securityContext: {seccompProfile: {type: %s}}\n  containers:\n' "$name" "$profile"
  for i in $(seq "$containers"); do
    printf '  - {name: c%s, image: localhost/busybox:latest, imagePullPolicy: IfNotPresent, command: [/bin/true]}\n' "$i"
  done
}
pod_yaml bench-default RuntimeDefault >"$work/default.yaml"
pod_yaml bench-unconfined Unconfined >"$work/unconfined.yaml"

trap 'cleanup_pods localhost/busybox' EXIT
[ "$(id -u)" = 0 ] && chown -R "$bench_user": "$work"
runtime_tmpfs
minipod import "$rootfs" localhost/busybox:latest >/dev/null

as_user hyperfine --warmup "${WARMUP:-3}" --runs "${RUNS:-30}" --export-json "$bench_work/seccomp.json" \
  -n "RuntimeDefault" "$MINIPOD --root $data --runroot $run run $work/default.yaml" \
  -n "Unconfined" "$MINIPOD --root $data --runroot $run run $work/unconfined.yaml"

python3 - "$bench_work/seccomp.json" "$containers" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
n = int(sys.argv[2])
extra = (results["RuntimeDefault"]["median"] - results["Unconfined"]["median"]) * 1000 / n
print(f"RuntimeDefault costs {extra:.3f} ms more per container (median, {n} containers); target <= 1 ms: {'holds' if extra <= 1 else 'MISSED'}")
PY
default=$(hyperfine_mean "$bench_work/seccomp.json" RuntimeDefault)
unconfined=$(hyperfine_mean "$bench_work/seccomp.json" Unconfined)
report --metric "seccomp RuntimeDefault, pod of $containers" --unit s --minipod "$default" \
  --anchor-name "Unconfined + 1 ms a container" --anchor "$(python3 -c "print($unconfined + $containers / 1000)")" \
  --target 1 --target-text "<= 1 ms more a container"
