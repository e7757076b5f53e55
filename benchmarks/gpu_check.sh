#!/usr/bin/env bash
# The GPU checks in one run, on a machine with a CUDA GPU, CuPy and (for the comparison)
# PyTorch with CUDA: what the backends see, the tests that compare the CuPy engine and
# its fused kernels with NumPy, then the GPU benchmark.  About five minutes.
#
#     bash benchmarks/gpu_check.sh [FOLDER]     # logs also go to FOLDER (default: .)
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-.}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python -c "from core.backend import backend_info
for k, v in backend_info().items(): print(f'{k}: {v}')" 2>&1 | tee "$out/gpu_info.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee -a "$out/gpu_info.txt"
python -m pytest -q -p no:cacheprovider tests/core/test_backends.py tests/core/test_fused.py \
    tests/core/test_native.py 2>&1 | tee "$out/gpu_tests.txt"
tests=${PIPESTATUS[0]}
python benchmarks/bench_core.py --device cupy --repeats 3 2>&1 | tee "$out/gpu_bench.md"
bench=${PIPESTATUS[0]}
echo "tests exit $tests, benchmark exit $bench"
exit $(( tests != 0 || bench != 0 ))
