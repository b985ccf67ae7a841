#!/usr/bin/env bash
# GPU check of the harness, for a GPU runner (or the lent H200):
#   ci/gpu-harness-check.sh COLOC_BINARY OUT_DIR
# Every operator against its CPU reference (per-launch stamps inside events); the smoke suite
# measured and its dataset checked against every invariant; two models' solo launches timed
# by ncu as well, and compared; Ctrl-C and SIGKILL during runs with client processes, each
# resumed. Every step runs even if an earlier one failed; the exit status is the number of
# failed steps. Nothing here changes a setting of the card.
set -u
coloc=${1:?usage: gpu-harness-check.sh COLOC_BINARY OUT_DIR}
out=${2:?usage: gpu-harness-check.sh COLOC_BINARY OUT_DIR}
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
. "$here/steps.sh"
nvidia-smi --query-gpu=name,uuid,driver_version,clocks.sm,clocks.max.sm,power.draw,temperature.gpu,compute_mode,mig.mode.current --format=csv || true
step check timeout 300 "$coloc" kernels check --json "$out/check.json"
step smoke timeout 300 "$coloc" measure suites/smoke.toml --out "$out/smoke"
step smoke-check "$coloc" dataset check "$out/smoke"
if command -v ncu >/dev/null 2>&1; then
    step ncu timeout 400 "$coloc" measure suites/ncu.toml --ncu --out "$out/ncu"
    step ncu-timing "$coloc" dataset timing "$out/ncu"
else
    echo "ncu not found: timing cross-check with ncu skipped"
fi
step resume timeout 400 bash "$here/gpu-resume-check.sh" "$coloc" "$out/resume"
echo "failed steps: $failed"
exit $failed
