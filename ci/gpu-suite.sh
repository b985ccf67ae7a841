#!/bin/bash
# GPU only (not part of CI), run through the device tool from the repository root with the
# stripped binary carried as .gpu/coloc.xz and runs/fitted/gbt-plans.json carried (README):
#   bash ci/gpu-suite.sh SUITE NAME
# measures SUITE into /tmp/NAME/data (resuming what an earlier call on the same machine left),
# with the gradient-boosted trees' forecast beside it, checks it, and lands everything in
# $OUT/NAME.tgz. Prepared suites (data/h200-checks/schedulers/how.txt, steps 19-20):
# serving/transformers-clockwork.toml (about 1 min) and serving/transformers-2gpu-plans.toml
# (about 2 min).
set -u
suite=$1; name=$2
xz -dc .gpu/coloc.xz > /tmp/coloc && chmod +x /tmp/coloc
C=/tmp/coloc
mkdir -p /tmp/$name
$C -V > /tmp/$name/version.txt
nvidia-smi --query-gpu=name,uuid --format=csv > /tmp/$name/gpu.txt
resume=""; [ -f /tmp/$name/data/manifest.json ] && resume="--resume"
timeout 540 $C measure "$suite" --out /tmp/$name/data $resume \
  --predictor runs/fitted/gbt-plans.json >> /tmp/$name/measure.log 2>&1
echo "rc=$?" >> /tmp/$name/measure.log
$C dataset check /tmp/$name/data > /tmp/$name/check.txt 2>&1
cd /tmp && tar czf $OUT/$name.tgz $name && ls -la $OUT
