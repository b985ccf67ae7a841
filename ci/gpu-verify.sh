#!/usr/bin/env bash
# GPU verification of the kernel library, for a GPU runner (or the lent H200):
#   ci/gpu-verify.sh COLOC_BINARY OUT_DIR
# Runs `coloc devices`, `coloc kernels check`, `coloc kernels bench`, `coloc partitions
# scaling`, and, where ncu exists, times a few kernels with ncu to cross-check coloc's two
# timing methods. Every step runs even if an earlier one failed; the exit status is the
# number of failed steps. Nothing here changes a setting of the card.
set -u
coloc=${1:?usage: gpu-verify.sh COLOC_BINARY OUT_DIR}
out=${2:?usage: gpu-verify.sh COLOC_BINARY OUT_DIR}
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
. "$here/steps.sh"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,temperature.gpu,compute_mode,mig.mode.current --format=csv || true
step devices timeout 300 "$coloc" devices --json "$out/devices.json"
step check timeout 300 "$coloc" kernels check --json "$out/check.json"
step bench timeout 600 "$coloc" kernels bench --out "$out/bench"
step scaling timeout 600 "$coloc" partitions scaling --json "$out/scaling.json"
step priority timeout 120 "$coloc" partitions priority --json "$out/priority.json"
if command -v ncu >/dev/null 2>&1; then
    # ncu serialises launches, so the blocker in coloc's sampler times out once per batch
    # (0.5 s); the ncu durations are compared with the plain bench run above.
    step ncu timeout 600 ncu --clock-control none --metrics gpu__time_duration.sum --csv \
        --kernel-name 'regex:^(stress_stream|layer_norm_bf16|attention_prefill_bf16_d64|softmax_bf16)$' \
        --log-file "$out/ncu.csv" \
        "$coloc" kernels bench --only "stress_stream bytes=1073741824" --only layer_norm --only attention_prefill \
        --only softmax --samples 20 --skip-overhead --quick --no-targets --out "$out/ncu-bench"
    step ncu-compare python3 "$here/ncu_compare.py" "$out/ncu.csv" "$out/bench/bench.json"
else
    echo "ncu not found: timing cross-check with ncu skipped"
fi
echo "failed steps: $failed"
exit $failed
