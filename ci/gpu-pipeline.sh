#!/bin/bash
# GPU only (not part of CI), run through the device tool from the repository root with the
# stripped binary carried as .gpu/coloc.xz (README): ODIN measured (docs/schedulers.md):
# resnet50 b8 over three green contexts of 40 SMs, the FMA stressor in element 1 from 1 s to
# 3 s of a 4 s window, every policy on the same arrivals. Everything lands in $OUT/pipe.tgz.
set -u
[ -x /tmp/coloc ] || { xz -dc .gpu/coloc.xz > /tmp/coloc && chmod +x /tmp/coloc; }
C=/tmp/coloc
mkdir -p /tmp/pipe
$C -V > /tmp/pipe/version.txt
nvidia-smi --query-gpu=name,uuid --format=csv > /tmp/pipe/gpu.txt
timeout 240 $C pipeline resnet50 --batch 8 --elements 3 --sms 40 --duration-s 4 --stress 1:1-3 \
  --stressor fma --intensity 0.1 --measure /tmp/pipe/odin > /tmp/pipe/odin.txt 2>&1
echo "rc=$?" >> /tmp/pipe/odin.txt
cd /tmp && tar czf $OUT/pipe.tgz pipe && ls -la $OUT
