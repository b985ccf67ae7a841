#!/bin/bash
# GPU only (not part of CI), run through the device tool from the repository root with the
# stripped binary carried as .gpu/coloc.xz and runs/fitted/gbt-plans.json carried (README):
# Clockwork's plan for serving/transformers.toml below its simulated goodput, beside
# time-sharing's at 1.0 and 1.1 of its, in one dataset with no run in other processes
# (docs/schedulers.md, "The predictors' regret, measured"). About 7 scenarios of 3.5 s plus
# the solo profiles. Everything lands in $OUT/cw.tgz; run again with the same command to resume.
set -u
xz -dc .gpu/coloc.xz > /tmp/coloc && chmod +x /tmp/coloc
C=/tmp/coloc
mkdir -p /tmp/cw
$C -V > /tmp/cw/version.txt
nvidia-smi --query-gpu=name,uuid --format=csv > /tmp/cw/gpu.txt
resume=""; [ -f /tmp/cw/data/manifest.json ] && resume="--resume"
timeout 540 $C measure serving/transformers-clockwork.toml --out /tmp/cw/data $resume \
  --predictor runs/fitted/gbt-plans.json > /tmp/cw/measure.log 2>&1
echo "rc=$?" >> /tmp/cw/measure.log
$C dataset check /tmp/cw/data > /tmp/cw/check.txt 2>&1
cd /tmp && tar czf $OUT/cw.tgz cw && ls -la $OUT
