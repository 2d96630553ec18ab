#!/usr/bin/env bash
# One device call: install the carried wheels, then run stages side by side, each on its GPUs.
#
#   DEADLINE=500 bash bench/gpu_session.sh tests@0 kernels@1 deep+profile@2 model_compiled@3
#   DEADLINE=420 bash bench/gpu_session.sh results@0,1 ddp_tpp+ddp_hope@2,3
#
# A stage list joined by '+' runs in order on the same GPUs; stage lists separated by spaces run
# at the same time. Everything must end inside the device's per-command limit, and a command
# killed there returns nothing, so the session keeps its own clock: every stage gets at most the
# time left before DEADLINE seconds (default 540), and each chain packs its logs and outputs into
# $OUT/<chain>.tgz as soon as it ends; at DEADLINE - 10 s whatever is still running is packed as
# it is. MINUTES is the training budget of curves and results (default 6). A curve longer than
# one call: run `curves` (or `curves_graph`) again with --resume in CURVES_ARGS (CURVES_GRAPH_ARGS)
# in the next call while the machine is still warm; the runs under /tmp/session continue from
# their checkpoints.
#
# Stages (each `case` below says more):
# - tests: the GPU-marked kernel tests; tests_graph: graphed training held to eager.
# - kernels, kernels_delta, kernels_rest: the linear rules and the CMS update vs fla, whole or
#   split over GPUs; kernels_ours: our linear-rule kernels alone (a regression check).
# - deep, deep_kernels, deep_compile, deep_graph: the Titans memory vs titans-pytorch (kernels,
#   torch.compile, CUDA graphs). tests_split, sanitize_split, sanitize_split_real,
#   sanitize_split_tf32: the split deep-memory kernel's GPU tests and its memcheck at small and
#   real shapes (the last with fp32 operands).
# - profile, profile_graph, graph_probe: where a Hope step goes; what breaks a capture.
#   profile_125m_block: the same for one block of the 125M shape (its eager step is 12x that).
# - smt_tests, smt_bench: the self-modifying Titans kernels' GPU tests (SMT_TESTS_K narrows) and
#   their benchmark against the chunk form (SMT_BENCH_ARGS: bench/self_modifying.py's options).
# - model, model_compiled, model_graph: whole-model throughput. model_ckpt, model_recompute,
#   model_graph_125m, model_graph_125m_recompute, model_graph_125m_b1, model_125m_eager_b1,
#   model_125m_hope_alone, model_125m_offload: 125M Hope with checkpointing, recomputed chunks, CUDA graphs, or eager at batch 1
#   (model_125m_offload: large saved tensors in host memory). tests_offload: that option's GPU test.
#   model_125m_kernel: 125M Transformer++, Hope without CMS and hope_two_pass on the self-modifying kernels.
# - curves, curves_graph: ~30M Hope vs Transformer++. graph_numerics, hope_stability:
#   hope_two_pass 512x4 with each option, or candidate fixes side by side.
# - results: the docs/results.md grid; results_rerun (ONLY=regex, PRESET_FROM=results.json): some
#   jobs again at an earlier run's scale.
# - eval_probe: one model (PROBE_SPEC) trained as the grid's LM job, then one NIAH evaluation
#   with its Python stack printed every 45 s (where a slow evaluation spends its time).
# - ddp_tpp, ddp_hope: 1 vs 2 GPUs. sleep: a self-test.
#
# Wheels (fla, titans-pytorch, nested-learning, pytest and their pure-Python deps) are carried in
# .gpu_deps/ and the prepared corpora in .gpu_data/, because the device reaches no registry; the
# comparison libraries are benchmark-only, not nslang dependencies.
set -uo pipefail
start=$(date +%s)
deadline=${DEADLINE:-540}
minutes=${MINUTES:-6}
out=${OUT:-/tmp/out}
work=${WORK:-/tmp/session}  # WORK: elsewhere for a self-test
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
mkdir -p "$work" "$out"
if [ -d .gpu_deps ]; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu_deps/*.whl 2>&1 | tail -2
fi
export PYTHONPATH=/tmp/site:$PWD
{
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
} 2>&1 | tee "$work/versions.txt"

# Seconds a stage may still take. Never 0: `timeout 0` means no limit at all (the first device
# run of this script lost a benchmark to that), so callers skip a stage at 10 s or less.
left() { local t=$(( deadline - 15 - ($(date +%s) - start) )); echo $(( t < 1 ? 1 : t )); }
limit() { timeout -k 10 "$@"; }  # SIGKILL 10 s after SIGTERM: a process stuck in CUDA ignores TERM

run_stage() {  # name, gpus (comma-separated physical ids)
  local name=$1 gpus=$2 dir=$work/$1 t
  t=$(left)
  if [ "$t" -le 10 ]; then echo "no time left for $name"; return 124; fi
  mkdir -p "$dir"
  case $name in
    kernels)
      # one process per measurement with its own limit (a first call compiles or autotunes)
      CUDA_VISIBLE_DEVICES=$gpus limit "$(( t < 420 ? t : 420 ))" python3 bench/kernels.py \
        --fla-ignore-triton-guard --no-reference --timeout 150 ;;
    kernels_delta)  # the kernels table split over two GPUs: fla autotunes ~2 min per rule at the first shape
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/kernels.py --fla-ignore-triton-guard \
        --no-reference --timeout 150 --rules gated_delta,delta --no-cms ;;
    kernels_ours)  # our delta-rule kernels alone (no fla: its autotuning takes ~2 min per rule), a regression check
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/kernels.py --no-fla --no-reference --timeout 150 \
        --rules gated_delta,delta,hebbian --no-cms ;;
    kernels_rest)  # the rows after the delta rules: Hebbian with and without retention, the CMS update
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/kernels.py --fla-ignore-triton-guard \
        --no-reference --timeout 150 --rules hebbian_gated,hebbian ;;
    deep)
      CUDA_VISIBLE_DEVICES=$gpus limit "$(( t < 480 ? t : 480 ))" python3 bench/deep_memory.py --timeout 90 \
        --compile-timeout 240 ;;
    deep_kernels)  # the deep-memory kernels (fused and split over hidden tiles) vs titans-pytorch; DEEP_SELECT narrows
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/deep_memory.py --timeout 100 \
        --select "${DEEP_SELECT:-titans-pytorch|kernel}" ;;
    deep_graph)  # the Titans kernel and the chunk form replayed as CUDA graphs, titans-pytorch eager and graphed (bf16)
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/deep_memory.py --timeout 100 \
        --select '^(titans-pytorch|nslang titans kernel|nslang chunk_titans).* bf16$' ;;
    sanitize_split)  # where the split deep-memory kernel's illegal address is: its small CPU-test cases
      # compiled on the GPU under compute-sanitizer's memcheck (Triton keeps line info: the report names
      # the kernel's source line)
      command -v compute-sanitizer || echo "no compute-sanitizer on this machine"
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" compute-sanitizer --tool memcheck --print-limit 8 \
        python3 -m pytest -x -q -p no:cacheprovider -s tests/ops/test_titans_split_kernel.py \
        -k matches_chunk 2>&1 | grep -v "^=========     Host Frame" | head -150 ;;
    sanitize_split_tf32)  # memcheck on the split kernel at D 64, hid 256 with fp32 (tf32) operands, errors vs fp32
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" compute-sanitizer --tool memcheck --print-limit 8 python3 -c "
import sys; sys.path.insert(0, 'tests/ops'); import torch
from test_titans_split_kernel import _errors, _inputs, chunk_titans, chunk_titans_split_kernel
x = _inputs(2, 256, 2, 64, 64, 256)
for prec in ('tf32', 'ieee'):
    try:
        print(prec, _errors(chunk_titans_split_kernel, x, chunk_titans, x, 'both', dict(precision=prec), chunk_size=64))
    except Exception as err:
        print(prec, 'failed:', type(err).__name__, str(err)[:300])
" 2>&1 | grep -v "^=========     Host Frame" | head -60 ;;
    sanitize_split_real)  # memcheck on the split kernel at a real shape (D 64, hid 256), with 8 warps (its rule) and 4
      for warps in 8 4; do
        echo "--- kernel_split.WARPS = $warps"
        CUDA_VISIBLE_DEVICES=$gpus limit "$(( $(left) / 2 ))" compute-sanitizer --tool memcheck --print-limit 8 \
          python3 -c "import sys, pytest, runtime.ops.titans.kernel_split as ks; ks.WARPS = $warps; sys.exit(pytest.main(['-x', '-q', '-p', 'no:cacheprovider', '-m', 'gpu', '-s', 'tests/ops/test_titans_split_kernel.py', '-k', 'matches_kernel']))" \
          2>&1 | grep -v "^=========     Host Frame" | head -100
      done ;;
    deep_compile)  # torch.compile of the reference, with the titans-pytorch row for its ratio
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/deep_memory.py --timeout 100 \
        --compile-timeout "$(( t > 130 ? t - 110 : 20 ))" --select 'titans-pytorch NeuralMemory bf16|torch.compile' ;;
    tests_offload)  # --offload-saved on the GPU: the pinned-memory round trip leaves Hope's step unchanged
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 -m pytest -v -p no:cacheprovider -m gpu -rs tests/train/test_offload.py ;;
    tests_split)  # the split deep-memory kernel on the GPU (-s: the tests print their measured errors)
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 -m pytest -v -s -p no:cacheprovider -m gpu -rs \
        tests/ops/test_titans_split_kernel.py ;;
    smt_tests)  # the self-modifying Titans kernels on the GPU: every CPU case compiled, and the 125M block's shape
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 -m pytest -q -s -p no:cacheprovider \
        tests/ops/test_self_modifying_titans_kernel.py ${SMT_TESTS_K:+-k "$SMT_TESTS_K"} ;;
    smt_bench)  # the self-modifying Titans kernels vs the chunk form (eager, compiled), the 125M block's shape
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/self_modifying.py --timeout 200 ${SMT_BENCH_ARGS:-} ;;
    profile_125m_block)  # one block of the 125M shape (dim 768, context 2048, batch 1): where its eager step goes
      # PROFILE_ARGS: e.g. '--heads 12' (the self-modifying kernels' width)
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/profile_hope.py transformer_pp hope_two_pass --dim 768 \
        --depth 1 --context 2048 --batch-size 1 --budget-s "$(( t > 40 ? t - 30 : 10 ))" ${PROFILE_ARGS:-} ;;
    profile)
      # where a Hope step goes (launches or GPU time), small shape, eager and per-chunk compiled
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/profile_hope.py --budget-s 90 ;;
    tests)
      # most important first: the new kernels on Hopper (Triton 3.4-3.7.0 miscompiles some
      # backward kernels), then the rest; -v so a cut run still shows what passed
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 -m pytest -v -p no:cacheprovider -m gpu -rs \
        --durations=15 tests/ops/test_titans_kernel.py tests/ops/test_hebbian_kernel.py \
        tests/ops/test_gated_delta_kernel.py tests/ops/test_cms_kernel.py \
        tests/test_codegen_kernels.py tests/ops/test_self_modifying_compiled_step.py ;;
    tests_graph)  # --cuda-graphs: real graphs of Hope held to eager training
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 -m pytest -v -p no:cacheprovider -m gpu -rs \
        tests/train/test_cuda_graph.py ;;
    profile_graph)  # the profile again, each Hope variant eager and replayed as a CUDA graph
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/profile_hope.py --budget-s 90 transformer_pp \
        transformer_pp+graph hope_two_pass hope_two_pass+graph hope hope+graph hope_two_pass+compile+graph ;;
    model_graph)  # whole-model throughput, every nslang model's forward and backward as a CUDA graph
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/model.py --cuda-graphs \
        --specs transformer_pp,hope_two_pass,hope --batch-size 8 --hope-batch-size 2 --fit \
        --budget-s "${MODEL_BUDGET_S:-60}" --nl-modes '' ;;
    curves_graph)  # the curves with Hope's steps replayed as CUDA graphs (CURVES_GRAPH_ARGS: models, --eval-every)
      # shellcheck disable=SC2086
      limit "$t" python3 bench/curves.py --gpus "$gpus" --max-minutes "$minutes" --cuda-graphs hope \
        ${CURVES_GRAPH_ARGS:---eval-every 30,300} --out "$dir/runs" --export "$dir/export" ;;
    graph_numerics)  # where the NaN of curves_graph (hope_two_pass 512x4, graphs + recomputed chunks) comes from
      for variant in "16 bf16 g r" "4 bf16 g -" "4 bf16 g r" "16 fp32 g r" "4 bf16 - r"; do
        read -r b prec g r <<< "$variant"
        extra=(); [ "$g" = g ] && extra+=(--cuda-graphs); [ "$r" = r ] && extra+=(--recompute-chunks)
        t=$(left); [ "$t" -le 20 ] && break
        echo "--- batch $b, $prec, ${extra[*]}"
        CUDA_VISIBLE_DEVICES=$gpus limit "$(( t < 170 ? t : 170 ))" python3 -m nslang.cli train \
          specs/hope_two_pass.nsam --set dim=512 --set depth=4 --set context=512 --context 512 \
          --batch-size "$b" --precision "$prec" --steps "${NUMERICS_STEPS:-8}" --log-every 1 --eval-every 0 \
          --device cuda --no-progress --warmup 50 --lr 0.001 --schedule constant --tokenizer byte \
          --data .gpu_data/shakespeare/byte-val0.01-seed0 --out "$dir/b$b-$prec-$g$r" "${extra[@]}" 2>&1 | tail -4
        python3 -c "import json,sys; print([(r['step'], round(r['loss'],4), round(r.get('grad_norm') or -1,3)) for r in map(json.loads, open(sys.argv[1])) if r['kind']=='train'])" \
          "$dir/b$b-$prec-$g$r/metrics.jsonl" 2>&1 | tail -1
      done ;;
    hope_stability)  # hope_two_pass 512x4 (the curve's run, as 8 x 2 micro-batches) with each fix at once on one GPU
      # NUMERICS_VARIANTS: 'label|nslang train args;label|args...'; NUMERICS_STEPS steps each (default 80);
      # HOPE_SPEC: another spec (default specs/hope_two_pass.nsam)
      IFS=';' read -ra variants <<< "${NUMERICS_VARIANTS:-control|}"
      for variant in "${variants[@]}"; do
        label=${variant%%|*}; read -ra extra <<< "${variant#*|}"
        CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 -m nslang.cli train "${HOPE_SPEC:-specs/hope_two_pass.nsam}" \
          --set dim=512 --set depth=4 --set context=512 --context 512 --batch-size 8 --accumulation 2 \
          --steps "${NUMERICS_STEPS:-80}" --log-every 5 --eval-every 0 --device cuda --no-progress --warmup 50 \
          --lr 0.001 --schedule constant --tokenizer byte --data .gpu_data/shakespeare/byte-val0.01-seed0 \
          --cuda-graphs --recompute-chunks --out "$dir/$label" "${extra[@]}" > "$dir/$label.log" 2>&1 &
      done
      wait
      for variant in "${variants[@]}"; do
        label=${variant%%|*}
        echo "--- $label: ${variant#*|}"; tail -n 3 "$dir/$label.log"
        python3 -c "import json,sys; print([(r['step'], round(r['loss'],4), round(r.get('grad_norm') or -1,2)) for r in map(json.loads, open(sys.argv[1])) if r['kind']=='train'])" \
          "$dir/$label/metrics.jsonl" 2>&1 | tail -1
      done ;;
    model_graph_125m)  # 125M Hope as CUDA graphs; GRAPH_EXTRA: e.g. --recompute-chunks
      # shellcheck disable=SC2086
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/model.py --cuda-graphs ${GRAPH_EXTRA:-} \
        --specs transformer_pp,hope_two_pass,hope --batch-size 8 --hope-batch-size 1 --fit --steps 3 \
        --budget-s "${MODEL_BUDGET_S:-200}" --nl-modes '' ;;
    model_graph_125m_b1)  # 125M hope_two_pass alone at batch 1, graph + recomputed chunks, no halving
      # (each --fit retry repeats the two slow eager passes of the capture; 420 s were not enough)
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/model.py --cuda-graphs --recompute-chunks \
        --specs transformer_pp,hope_two_pass --batch-size 8 --hope-batch-size 1 --steps 2 \
        --budget-s "$(( t > 60 ? t - 30 : 30 ))" --nl-modes '' ;;
    model_125m_eager_b1)  # 125M hope_two_pass eager at batch 1 with recomputed chunks: one warm-up and one timed step
      # (as a CUDA graph, with its two eager warm-up passes and the capture, it gave no row within 500 s: sixth session)
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/model.py --recompute-chunks \
        --specs transformer_pp,hope_two_pass --batch-size 8 --hope-batch-size 1 --steps 1 --warmup-steps 1 \
        --budget-s "$(( t > 60 ? t - 30 : 30 ))" --nl-modes '' ;;
    model_125m_kernel)  # 125M Transformer++ (batch 8), Hope without CMS and hope_two_pass (HOPE_BATCH, default 4) on the
      # self-modifying kernels; --fit halves a batch that does not fit. MODEL_ARGS: e.g. '--heads 12 --recompute-chunks'
      # (the stock specs have 4 heads: at dim 768 that is width 192, which the kernels do not take)
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/model.py --specs "${MODEL_SPECS:-transformer_pp,hope_no_cms,hope_two_pass}" \
        --batch-size 8 --hope-batch-size "${HOPE_BATCH:-4}" --fit --steps 3 --warmup-steps 1 \
        --budget-s "${MODEL_BUDGET:-120}" --nl-modes '' ${MODEL_ARGS:-} ;;
    model_125m_hope_alone)  # 125M hope_two_pass only, eager, batch 1, recomputed chunks, no warm-up: its first step
      # (compilation of the Triton kernels included) gets the whole call; Transformer++ runs in model_125m_eager_b1
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/model.py --recompute-chunks --specs hope_two_pass \
        --hope-batch-size 1 --steps 1 --warmup-steps 0 --budget-s "$(( t > 60 ? t - 30 : 30 ))" --nl-modes '' ;;
    model_125m_offload)  # 125M Transformer++ (batch 8), then hope_two_pass at batch 1 with recomputed chunks and the
      # saved tensors of >= OFFLOAD_MIB (default 2) in host memory: the CMS weight versions that filled 80 GB (seventh
      # session); no warm-up step (the first includes Triton's compilation), a second if the budget allows;
      # nvidia-smi every 15 s in smi.log shows whether memory or the GPU bounds it
      (while sleep 15; do nvidia-smi -i "$gpus" --query-gpu=memory.used,utilization.gpu --format=csv,noheader; done) \
        > "$dir/smi.log" 2>&1 &
      local smi=$!
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/model.py --recompute-chunks \
        --offload-saved "${OFFLOAD_MIB:-2}" --specs transformer_pp,hope_two_pass --batch-size 8 --hope-batch-size 1 \
        --steps 2 --warmup-steps 0 --budget-s "$(( t > 90 ? t - 60 : 30 ))" --nl-modes ''
      kill "$smi" 2>/dev/null ;;
    model_graph_125m_recompute)  # the same with the chunk steps recomputed (less memory: a larger batch fits)
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/model.py --cuda-graphs --recompute-chunks \
        --specs transformer_pp,hope_two_pass,hope --batch-size 8 --hope-batch-size 2 --fit --steps 3 \
        --budget-s "${MODEL_BUDGET_S:-200}" --nl-modes '' ;;
    graph_probe)  # which operation of Hope's step breaks a CUDA graph capture
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/graph_probe.py hope_two_pass ;;
    model_ckpt)  # Hope at 125M needs activation checkpointing to fit 80 GB (its exact CMS signal)
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/model.py --activation-checkpointing \
        --specs transformer_pp,hope_two_pass --batch-size 8 --hope-batch-size 1 --fit --steps 2 \
        --budget-s "${MODEL_BUDGET_S:-240}" --nl-modes '' ;;
    model_recompute)  # 125M Hope (two_pass) with its chunk steps recomputed, eager and as a CUDA graph
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/model.py --recompute-chunks \
        --specs transformer_pp,hope_two_pass --batch-size 8 --hope-batch-size 2 --fit --steps 2 \
        --budget-s "${MODEL_BUDGET_S:-200}" --nl-modes '' ;;
    model)
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/model.py \
        --specs transformer_pp,hope,hope_two_pass --batch-size 8 --hope-batch-size 2 --fit \
        --budget-s 45 --nl-modes offline,online ;;
    model_compiled)
      # both sides under --compile (Hope: its per-chunk steps), one run
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/model.py --compile \
        --specs transformer_pp,hope_two_pass --batch-size 8 --hope-batch-size 2 --fit \
        --budget-s 90 --nl-modes '' ;;
    curves)  # CURVES_ARGS: other models or --eval-every
      # shellcheck disable=SC2086
      limit "$t" python3 bench/curves.py --gpus "$gpus" --max-minutes "$minutes" ${CURVES_ARGS:-} \
        --out "$dir/runs" --export "$dir/export" ;;
    results)  # RESULTS_ARGS: e.g. --cuda-graphs hope --recompute-chunks hope
      # shellcheck disable=SC2086
      limit "$t" python3 bench/results.py --gpus "$gpus" --scale small ${RESULTS_ARGS:-} \
        --budget-minutes "$minutes" --out "$dir/out" --work /tmp/results_work ;;
    results_rerun)  # some jobs of an earlier run (ONLY, a regular expression) at its scale, to merge in the report; RESULTS_ARGS too
      # shellcheck disable=SC2086
      limit "$t" python3 bench/results.py --gpus "$gpus" --scale small --slots-per-gpu 4 --heavy-per-gpu 4 \
        --preset-from "${PRESET_FROM:-.gpu_data/prev_results.json}" --only "$ONLY" ${RESULTS_ARGS:-} \
        --budget-minutes "$minutes" --out "$dir/out" --work /tmp/results_work_rerun ;;
    eval_probe)  # PROBE_SPEC (default deltanet): the grid's LM training, then niah_single_1 with stack dumps
      probe=${PROBE_SPEC:-deltanet}
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 -m nslang.cli train "specs/$probe.nsam" --set dim=384 --set depth=6 \
        --set heads=4 --set context=64 --context 64 --steps 36 --batch-size 16 --device cuda --no-progress --lr 0.001 \
        --warmup 4 --tokenizer byte --data .gpu_data/shakespeare/byte-val0.01-seed0 --out "$dir/run" 2>&1 | tail -2
      CUDA_VISIBLE_DEVICES=$gpus limit "$(left)" python3 -c "import faulthandler, runpy, sys; \
faulthandler.dump_traceback_later(45, repeat=True); sys.argv = ['nslang'] + sys.argv[1:]; \
runpy.run_module('nslang.cli', run_name='__main__')" eval "$dir/run" --device cuda --no-plot --batch-size 16 \
        --task niah_single_1 --n 15 --param lengths=512,1024,2048 -o "$dir/eval.json" 2>&1 | tail -120 ;;
    ddp_tpp)
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/ddp_throughput.py \
        transformer_pp:768x12 --out "$dir/runs" --export "$dir/export" ;;
    ddp_hope)
      CUDA_VISIBLE_DEVICES=$gpus limit "$t" python3 bench/ddp_throughput.py hope:512x4 \
        --steps 12 --max-minutes 1 --out "$dir/runs" --export "$dir/export" ;;
    sleep) sleep "$(( t < 3 ? t : 3 ))"; echo slept ;;   # a self-test of this script
    *) echo "unknown stage $name"; return 2 ;;
  esac
}

pack() {  # archive name, then the stages whose logs and outputs it holds
  local name=$1; shift
  local files=()
  for s in "$@"; do
    [ -e "$work/$s.log" ] && files+=("$s.log")
    [ -d "$work/$s" ] && files+=("$s")
  done
  tar czf "$out/$name.tgz" -C "$work" --exclude='checkpoints' --exclude='*.pt' versions.txt \
    "${files[@]}" 2>/dev/null
}

pids=()
for spec in "$@"; do
  gpus=${spec#*@}
  IFS=+ read -ra chain <<< "${spec%@*}"
  (
    for name in "${chain[@]}"; do
      echo "== $name on GPU $gpus, $(date +%T)"
      run_stage "$name" "$gpus" > "$work/$name.log" 2>&1
      echo "== $name done ($?), $(date +%T)"
    done
    pack "$(IFS=_; echo "${chain[*]}")" "${chain[@]}"
  ) &
  pids+=($!)
done
# the watchdog: whatever is still running at the deadline is packed as it is. `&&`, not `;`: when
# the chains end first the sleep is killed, and with `;` its shell went on to pack a partial.tgz
# before its own kill arrived (a race that failed CI once)
( sleep "$(( deadline - 10 - ($(date +%s) - start) ))" && tar czf "$out/partial.tgz" -C "$work" \
    --exclude='checkpoints' --exclude='*.pt' . ) > "$work/watchdog.log" 2>&1 &
watchdog=$!
wait "${pids[@]}"
pkill -P "$watchdog" 2>/dev/null; kill "$watchdog" 2>/dev/null
ls -la "$out"
for f in "$work"/*.log; do echo "=== $f"; tail -n 25 "$f"; done
