#!/usr/bin/env bash
# One device call: install the carried wheels, then run stages side by side, each on its GPUs.
#
#   bash bench/gpu_session.sh tests+kernels@0 curves@1,2 model@3     # the benchmark call
#   bash bench/gpu_session.sh results@0,1,2,3                        # docs/results.md
#   bash bench/gpu_session.sh ddp_tpp@0,1 ddp_hope@2,3               # 1 vs 2 GPUs
#
# A stage list joined by '+' runs in order on the same GPUs; stages separated by spaces run at the
# same time. Every stage logs to /tmp/session/<stage>.log and writes its outputs under
# /tmp/session/<stage>/; at the end everything is packed into $OUT/session.tgz and the tail of
# each log is printed. Knobs: MINUTES (training budget of curves/results, default 8).
#
# Wheels (fla, titans-pytorch, nested-learning, pytest and their pure-Python deps) are carried in
# .gpu_deps/ and the prepared corpora in .gpu_data/, because the device reaches no registry; the
# comparison libraries are benchmark-only, not nslang dependencies.
set -uo pipefail
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu_deps/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site:$PWD
out=${OUT:-/tmp/out}
work=/tmp/session
minutes=${MINUTES:-8}
mkdir -p "$work" "$out"
{
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
} | tee "$work/versions.txt"

run_stage() {  # name, gpus (comma-separated physical ids)
  local name=$1 gpus=$2 dir=$work/$1
  mkdir -p "$dir"
  case $name in
    tests)
      CUDA_VISIBLE_DEVICES=$gpus timeout 300 python3 -m pytest -q -p no:cacheprovider -m gpu -rs tests/ops tests/test_codegen_kernels.py ;;
    kernels)
      CUDA_VISIBLE_DEVICES=$gpus timeout 150 python3 bench/kernels.py --fla-ignore-triton-guard
      CUDA_VISIBLE_DEVICES=$gpus timeout 240 python3 bench/deep_memory.py ;;
    model)
      CUDA_VISIBLE_DEVICES=$gpus timeout 560 python3 bench/model.py \
        --specs transformer_pp,hope,hope_two_pass --batch-size 8 --hope-batch-size 2 --fit \
        --budget-s 60 --nl-modes offline,online ;;
    model_compiled)
      CUDA_VISIBLE_DEVICES=$gpus timeout 560 python3 bench/model.py --specs hope_two_pass \
        --batch-size 2 --hope-batch-size 2 --compile --budget-s 90 --nl-modes '' ;;
    curves)
      python3 bench/curves.py --gpus "$gpus" --max-minutes "$minutes" --out "$dir/runs" \
        --export "$dir/export" ;;
    results)
      python3 bench/results.py --gpus "$gpus" --scale small --budget-minutes "$minutes" \
        --out "$dir/out" ;;
    ddp_tpp)
      CUDA_VISIBLE_DEVICES=$gpus python3 bench/ddp_throughput.py transformer_pp:768x12 \
        --out "$dir/runs" --export "$dir/export" ;;
    ddp_hope)
      CUDA_VISIBLE_DEVICES=$gpus python3 bench/ddp_throughput.py hope:512x4 --steps 12 \
        --max-minutes 1 --out "$dir/runs" --export "$dir/export" ;;
    *) echo "unknown stage $name" ;;
  esac
}

for spec in "$@"; do
  gpus=${spec#*@}
  (
    IFS=+ read -ra chain <<< "${spec%@*}"
    for name in "${chain[@]}"; do
      echo "== $name on GPU $gpus, $(date +%T)"
      run_stage "$name" "$gpus" > "$work/$name.log" 2>&1
      echo "== $name done ($?), $(date +%T)"
    done
  ) &
done
wait
rm -rf "$work"/*/runs/*/checkpoints "$work"/*/out/jobs/*/run*/checkpoints 2>/dev/null
tar czf "$out/session.tgz" -C "$work" . 2>/dev/null
ls -la "$out"
for f in "$work"/*.log; do echo "=== $f"; tail -n 30 "$f"; done
