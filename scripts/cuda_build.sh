#!/bin/bash
# Builds `bench_train` with candle's CUDA backend on a machine without a GPU or a CUDA
# install, for a run on a GPU machine (scripts/gpu_bench.sh there).
#
# CUDA 13.0's compiler and headers come from PyPI into a venv (13.0 matches the GPU
# machines' driver 580: newer PTX would not load there); cudarc loads the CUDA libraries
# at run time (vendor/candle-core/PATCHED.md), so none are needed here but libcudart for
# the link. Kernels are compiled for compute capability 90 (H100/H200; set CUDA_COMPUTE_CAP
# for another). The first build takes about 25 minutes on 2 cores (candle's kernels).
# Output: .gpu/bench_train (stripped, about 55 MB) and .gpu/run.sh; add `/.gpu/` to
# .git/info/exclude and carry `.gpu` to the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
tk=${CUDA_TK:-/work/cuda-tk}
if [ ! -x "$tk/venv/bin/python" ]; then
  python3 -m venv "$tk/venv"
  "$tk/venv/bin/pip" install -q nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.96 \
    nvidia-cuda-cccl==13.0.85 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88
fi
cuda=$(echo "$tk"/venv/lib/python3*/site-packages/nvidia/cu13)
ln -sf libcudart.so.13 "$cuda/lib/libcudart.so"
ln -sfn lib "$cuda/lib64"
export CUDA_HOME=$cuda CUDA_PATH=$cuda PATH=$cuda/bin:$PATH
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} CUDARC_CUDA_VERSION=13000
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-cuda}
export RUSTFLAGS="-L native=$cuda/lib"
cargo build --release --features cuda --example bench_train
mkdir -p .gpu
cp "$CARGO_TARGET_DIR/release/examples/bench_train" .gpu/bench_train
strip .gpu/bench_train
cp scripts/gpu_bench.sh .gpu/run.sh
ls -la .gpu
