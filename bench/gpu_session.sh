#!/usr/bin/env bash
# One device call: install the carried wheels, then run the stages named on the command line.
#   bash bench/gpu_session.sh kernels   # GPU kernel tests, bench/kernels.py, bench/deep_memory.py
#   bash bench/gpu_session.sh models    # bench/train_throughput.py at ~125M parameters
# Wheels (fla, titans-pytorch, pytest and their pure-Python deps) are carried in .gpu_deps/
# because the device reaches no registry; they are benchmark-only, not nslang dependencies.
set -uo pipefail
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu_deps/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
out=${OUT:-/tmp/out}
for stage in "$@"; do
  case $stage in
    kernels)
      python3 -m pytest -q -p no:cacheprovider -m gpu -k "bfloat16 or no_gate" -s \
        tests/ops/test_gated_delta_kernel.py 2>&1 | tail -8
      python3 bench/kernels.py --fla-ignore-triton-guard 2>&1 | tee "$out/kernels.txt" | tail -25
      timeout 240 python3 bench/deep_memory.py 2>&1 | tee "$out/deep_memory.txt" | tail -12 ;;
    models)
      timeout 500 python3 bench/train_throughput.py specs/transformer_pp.nsam specs/gated_deltanet.nsam \
        specs/hope_attention.nsam specs/hope.nsam --dim 768 --depth 12 --context 2048 \
        --batch-size 8 --steps 5 --warmup-steps 2 2>&1 | tee "$out/throughput.txt" | tail -15 ;;
  esac
done
