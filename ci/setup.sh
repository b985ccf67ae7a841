#!/usr/bin/env bash
# Set-up on a fresh machine (CPU or GPU): the Rust components the checks use, and NVRTC -
# CUDA's run-time compiler, a host-only library - unpacked into .deps/cuda/lib so the
# CPU-only tests can compile every CUDA kernel. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v rustup >/dev/null 2>&1; then
    rustup component add rustfmt clippy >/dev/null
fi

NVRTC_WHEEL="nvidia-cuda-nvrtc==13.0.88"   # the CUDA 13.0 of the H200's driver
dest=.deps/cuda/lib
if [ ! -f "$dest/libnvrtc.so.13" ] || [ ! -f "$dest/libnvrtc-builtins.so.13.0" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        "$NVRTC_WHEEL" -d "$tmp"
    python3 -m zipfile -e "$tmp"/nvidia_cuda_nvrtc-*.whl "$tmp/wheel"
    mkdir -p "$dest"
    cp "$tmp/wheel/nvidia/cu13/lib/libnvrtc.so.13" "$tmp/wheel/nvidia/cu13/lib/libnvrtc-builtins.so.13.0" "$dest/"
fi
echo "set-up done: NVRTC in $dest"
