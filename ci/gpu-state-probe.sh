#!/bin/bash
# GPU only (not part of CI), run through the device tool from the repository root with the
# stripped binary carried as .gpu/coloc.xz (README): with the ceilings in a process of their own
# (339daee), do `coloc measure`'s profiles and one-stream runs agree (the reference after every
# kind of run, docs/h200.md)? And the switch profile against a one-stream run
# (docs/schedulers.md). Everything lands in $OUT/r2.tgz.
set -u
xz -dc .gpu/coloc.xz > /tmp/coloc && chmod +x /tmp/coloc
C=/tmp/coloc
mkdir -p /tmp/r2
$C -V > /tmp/r2/version.txt
nvidia-smi --query-gpu=name,uuid --format=csv > /tmp/r2/gpu.txt
timeout 60 $C models run resnet50 --batch 8,8,1 --reps 300 > /tmp/r2/fresh.txt 2>&1
timeout 240 $C measure suites/state-probe.toml --out /tmp/r2/kinds > /tmp/r2/kinds.log 2>&1
timeout 150 $C measure suites/switch-probe.toml --out /tmp/r2/switch > /tmp/r2/switch.log 2>&1
for d in /tmp/coloc-mps-*/pipe; do [ -d "$d" ] && echo quit | CUDA_MPS_PIPE_DIRECTORY=$d nvidia-cuda-mps-control; done 2>/dev/null
pgrep -a nvidia-cuda-mps > /tmp/r2/mps-left.txt
cd /tmp && tar czf $OUT/r2.tgz r2 && ls -la $OUT
