#!/bin/bash
# GPU only (not part of CI), run through the device tool from the repository root with the
# stripped binary carried as .gpu/coloc.xz (README): ODIN measured (docs/schedulers.md):
# resnet50 b8 over three green contexts of 40 SMs, the FMA stressor in element 1 from 1 s to
# 3 s of a 4 s window (at two intensities and two loads), every policy on the same arrivals. Everything lands in $OUT/pipe.tgz.
set -u
xz -dc .gpu/coloc.xz > /tmp/coloc && chmod +x /tmp/coloc
rm -rf /tmp/pipe
C=/tmp/coloc
mkdir -p /tmp/pipe
$C -V > /tmp/pipe/version.txt
nvidia-smi --query-gpu=name,uuid --format=csv > /tmp/pipe/gpu.txt
# the FMA stressor at 0.1 and 0.03 of a full grid at half the capacity, and at 0.1 at a quarter
for setting in "fma-i0.1 0.1 0.5" "fma-i0.03 0.03 0.5" "fma-i0.1-load0.25 0.1 0.25"; do
  set -- $setting
  mkdir -p /tmp/pipe/$1
  timeout 150 $C pipeline resnet50 --batch 8 --elements 3 --sms 40 --duration-s 4 --stress 1:1-3 \
    --stressor fma --intensity $2 --load $3 --measure /tmp/pipe/$1 > /tmp/pipe/$1/output.txt 2>&1 \
    || echo "rc=$?" >> /tmp/pipe/$1/output.txt
done
cd /tmp && tar czf $OUT/pipe.tgz pipe && ls -la $OUT
