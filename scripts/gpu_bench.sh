#!/bin/bash
# GPU run of bench_train: the binary scripts/cuda_build.sh put in .gpu/, on a machine with
# an NVIDIA GPU, its driver, CUDA 13 libraries (cuBLAS, NVRTC, cuRAND, cudart) and PyTorch.
# Usage (from the repository root there): bash .gpu/run.sh [extra bench_train flags]
# Output: a smoke case (which includes the CUDA-vs-CPU check), then the full table; logs
# under $OUT when set.
set -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.gpu}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader
libdir() { d=$(find /usr/local /opt /usr/lib -name "$1" 2>/dev/null | head -1); [ -n "$d" ] && dirname "$d"; }
LP=""
for l in 'libcudart.so.13*' 'libcublas.so.13*' 'libcublasLt.so.13*' 'libnvrtc.so.13*' 'libcurand.so.10*' 'libcuda.so.1'; do
  d=$(libdir "$l"); echo "$l -> $d"; LP="$LP:$d"
done
export LD_LIBRARY_PATH="${LP#:}:${LD_LIBRARY_PATH:-}"
ldd .gpu/bench_train | grep "not found"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
export CONVNET_PYTHON=python3
t0=$(date +%s)
./.gpu/bench_train --device cuda --sizes 180 --batches 16 --modes train --iters 5 --warmup 1 --budget-s 10 2>&1 | tee $OUT/smoke.log || exit 1
echo "smoke: $(( $(date +%s) - t0 )) s"
./.gpu/bench_train --device cuda --iters 20 --warmup 3 --budget-s 8 "$@" 2>&1 | tee $OUT/bench.log
echo "total: $(( $(date +%s) - t0 )) s"
