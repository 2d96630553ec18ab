#!/usr/bin/env bash
# The commands of every job (bench/results.py wrote this; the time limits are
# those each job got when it started). Run from the repository root.

# mqar-hope_no_dgd
nslang train specs/hope_no_dgd.nsam --set dim=384 --set depth=6 --set heads=4 --set context=128 --data 'task:mqar?num_pairs=2,4,6&seq_len=128' --context 128 --steps 45 --batch-size 16 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 11 --log-every 2 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/mqar-hope_no_dgd/run --no-progress --lr 0.001 --cuda-graphs --warmup 4 --max-minutes 3.515
nslang eval /tmp/results_work_rerun/jobs/mqar-hope_no_dgd/run --device cuda --no-plot -q --batch-size 16 --mode auto --task mqar --n 96 --param num_pairs=2,4,6 --param seq_len=128,256 -o /tmp/results_work_rerun/jobs/mqar-hope_no_dgd/eval_mqar.json
