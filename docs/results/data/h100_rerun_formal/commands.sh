#!/usr/bin/env bash
# The commands of every job (bench/results.py wrote this; the time limits are
# those each job got when it started). Run from the repository root.

# formal_aa_star-hope
nslang train specs/hope.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_aa_star --context 64 --steps 36 --batch-size 16 --accumulation 2 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_aa_star-hope/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 1.115 --resume latest
nslang eval /tmp/results_work_rerun/jobs/formal_aa_star-hope/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_aa_star --n 96 -o /tmp/results_work_rerun/jobs/formal_aa_star-hope/eval_formal.json

# formal_aa_star-hope_attention
nslang train specs/hope_attention.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_aa_star --context 64 --steps 36 --batch-size 16 --accumulation 2 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_aa_star-hope_attention/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 1.690 --resume latest
nslang eval /tmp/results_work_rerun/jobs/formal_aa_star-hope_attention/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_aa_star --n 96 -o /tmp/results_work_rerun/jobs/formal_aa_star-hope_attention/eval_formal.json

# formal_abab_star-hope
nslang train specs/hope.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_abab_star --context 64 --steps 36 --batch-size 16 --accumulation 2 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_abab_star-hope/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 1.537 --resume latest
nslang eval /tmp/results_work_rerun/jobs/formal_abab_star-hope/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_abab_star --n 96 -o /tmp/results_work_rerun/jobs/formal_abab_star-hope/eval_formal.json

# formal_abab_star-hope_attention
nslang train specs/hope_attention.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_abab_star --context 64 --steps 36 --batch-size 16 --accumulation 2 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_abab_star-hope_attention/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 2.205 --resume latest
nslang eval /tmp/results_work_rerun/jobs/formal_abab_star-hope_attention/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_abab_star --n 96 -o /tmp/results_work_rerun/jobs/formal_abab_star-hope_attention/eval_formal.json

# formal_anbn-hope
nslang train specs/hope.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_anbn --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_anbn-hope/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 2.815
nslang eval /tmp/results_work_rerun/jobs/formal_anbn-hope/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_anbn --n 96 -o /tmp/results_work_rerun/jobs/formal_anbn-hope/eval_formal.json

# formal_anbn-hope_attention
nslang train specs/hope_attention.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_anbn --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_anbn-hope_attention/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 3.215
nslang eval /tmp/results_work_rerun/jobs/formal_anbn-hope_attention/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_anbn --n 96 -o /tmp/results_work_rerun/jobs/formal_anbn-hope_attention/eval_formal.json

# formal_anbncn-hope
nslang train specs/hope.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_anbncn --context 64 --steps 36 --batch-size 16 --accumulation 2 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_anbncn-hope/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 2.359 --resume latest
nslang eval /tmp/results_work_rerun/jobs/formal_anbncn-hope/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_anbncn --n 96 -o /tmp/results_work_rerun/jobs/formal_anbncn-hope/eval_formal.json

# formal_anbncn-hope_attention
nslang train specs/hope_attention.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_anbncn --context 64 --steps 36 --batch-size 16 --accumulation 2 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_anbncn-hope_attention/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 3.453 --resume latest
nslang eval /tmp/results_work_rerun/jobs/formal_anbncn-hope_attention/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_anbncn --n 96 -o /tmp/results_work_rerun/jobs/formal_anbncn-hope_attention/eval_formal.json

# formal_parity-hope
nslang train specs/hope.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_parity --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_parity-hope/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 4.785
nslang eval /tmp/results_work_rerun/jobs/formal_parity-hope/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_parity --n 96 -o /tmp/results_work_rerun/jobs/formal_parity-hope/eval_formal.json

# formal_parity-hope_attention
nslang train specs/hope_attention.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_parity --context 64 --steps 36 --batch-size 16 --accumulation 2 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_parity-hope_attention/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 4.106 --resume latest
nslang eval /tmp/results_work_rerun/jobs/formal_parity-hope_attention/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_parity --n 96 -o /tmp/results_work_rerun/jobs/formal_parity-hope_attention/eval_formal.json

# formal_shuffle2-hope
nslang train specs/hope.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_shuffle2 --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_shuffle2-hope/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 3.760
nslang eval /tmp/results_work_rerun/jobs/formal_shuffle2-hope/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_shuffle2 --n 96 -o /tmp/results_work_rerun/jobs/formal_shuffle2-hope/eval_formal.json

# formal_shuffle2-hope_attention
nslang train specs/hope_attention.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_shuffle2 --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_shuffle2-hope_attention/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 3.561
nslang eval /tmp/results_work_rerun/jobs/formal_shuffle2-hope_attention/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_shuffle2 --n 96 -o /tmp/results_work_rerun/jobs/formal_shuffle2-hope_attention/eval_formal.json
