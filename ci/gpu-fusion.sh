#!/bin/bash
# GPU only (not part of CI), run through the device tool from the repository root with the
# stripped binary carried as .gpu/coloc.xz (README): space-time's super-kernel
# (docs/schedulers.md, "space-time's super-kernel, on its own"): 1-32 tenants' same-shape GEMMs one after
# another, each on a stream of its own, and as one batched launch, for the paper's 256^3 and
# bert_base's feed-forward at batch 1. Everything lands in $OUT/fusion.tgz.
set -u
xz -dc .gpu/coloc.xz > /tmp/coloc && chmod +x /tmp/coloc
C=/tmp/coloc
rm -rf /tmp/fusion && mkdir -p /tmp/fusion
$C -V > /tmp/fusion/version.txt
nvidia-smi --query-gpu=name,uuid --format=csv > /tmp/fusion/gpu.txt
timeout 240 $C partitions fusion --json /tmp/fusion/fusion.json > /tmp/fusion/output.txt 2>&1
echo "rc=$?" >> /tmp/fusion/output.txt
cd /tmp && tar czf $OUT/fusion.tgz fusion && ls -la $OUT
