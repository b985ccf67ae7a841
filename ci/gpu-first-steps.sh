#!/bin/bash
# GPU only (not part of CI), run through the device tool from the repository root with the
# stripped binary carried as .gpu/coloc.xz (README): which of the things `coloc measure` does
# in its process before its solo profiles puts that process's library kernels in the slow state
# (docs/h200.md, "The reference's two speeds")? Each line is a fresh process that does one step
# (`coloc models run --first STEP`) and then times resnet50 b8, b8, b1; a fresh process with no
# step opens and closes the list. Everything lands in $OUT/first.tgz.
set -u
xz -dc .gpu/coloc.xz > /tmp/coloc && chmod +x /tmp/coloc
C=/tmp/coloc
R=/tmp/first
rm -rf $R && mkdir -p $R
$C -V > $R/version.txt
nvidia-smi --query-gpu=name,uuid,driver_version,clocks.sm,clocks.mem --format=csv > $R/gpu.txt
run() { # NAME ENV=VALUE [ARGS of models run...]
    local name=$1 setting=$2; shift 2
    echo "== $name" >> $R/order.txt
    timeout 120 env "$setting" $C models run resnet50 --batch 8,8,1 --reps 300 --ops "$@" > $R/$name.txt 2>&1
    echo "rc=$?" >> $R/$name.txt
}
run fresh-a COLOC=1
for step in ceilings ceilings-copies ceilings-fma ceilings-tensor-probes ceilings-gemms ceilings-l2 \
            handles limits nvml libraries overhead calibrate green-context profile; do
    run "$step" COLOC=1 --first "$step"
done
run measure-order COLOC=1 --first limits,nvml,overhead,libraries,green-context,profile
run eager-fresh CUDA_MODULE_LOADING=EAGER
run eager-ceilings CUDA_MODULE_LOADING=EAGER --first ceilings
run fresh-b COLOC=1
nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu --format=csv >> $R/gpu.txt
cd /tmp && tar czf $OUT/first.tgz first && ls -la $OUT
