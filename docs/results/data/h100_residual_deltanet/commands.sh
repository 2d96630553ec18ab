#!/usr/bin/env bash
# The commands of every job (bench/results.py wrote this; the time limits are
# those each job got when it started). Run from the repository root.

# lm-deltanet
nslang train specs/deltanet.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data .gpu_data/shakespeare/byte-val0.01-seed0 --context 64 --steps 36 --batch-size 16 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/lm-deltanet/run --no-progress --lr 0.001 --warmup 3 --max-minutes 3.537
nslang eval /tmp/results_work_rerun/jobs/lm-deltanet/run --device cuda --no-plot -q --batch-size 16 --mode auto --task niah_single_1 --n 15 --param lengths=512,1024,2048 -o /tmp/results_work_rerun/jobs/lm-deltanet/eval_niah_single_1.json
nslang eval /tmp/results_work_rerun/jobs/lm-deltanet/run --device cuda --no-plot -q --batch-size 16 --mode auto --task niah_single_2 --n 15 --param lengths=512,1024,2048 -o /tmp/results_work_rerun/jobs/lm-deltanet/eval_niah_single_2.json --param haystack=@/tmp/results_work_rerun/haystack.txt
nslang eval /tmp/results_work_rerun/jobs/lm-deltanet/run --device cuda --no-plot -q --batch-size 16 --mode auto --task niah_multikey_1 --n 15 --param lengths=512,1024,2048 -o /tmp/results_work_rerun/jobs/lm-deltanet/eval_niah_multikey_1.json --param haystack=@/tmp/results_work_rerun/haystack.txt
nslang eval /tmp/results_work_rerun/jobs/lm-deltanet/run --device cuda --no-plot -q --batch-size 16 --mode auto --task class_incremental --param source=@/work/main/.gpu_data/continual_wiki.jsonl --param label_key=topic -o /tmp/results_work_rerun/jobs/lm-deltanet/eval_continual.json --param classes_per_task=2 --param test_per_class=10 --param train_per_class=40 --param max_chars=600 --param train_steps=5 --param train_batch=8 --param train_seq_len=128
