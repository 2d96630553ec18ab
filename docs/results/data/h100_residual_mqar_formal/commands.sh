#!/usr/bin/env bash
# The commands of every job (bench/results.py wrote this; the time limits are
# those each job got when it started). Run from the repository root.

# mqar-hope
nslang train specs/hope.nsam --set dim=384 --set depth=6 --set heads=4 --set context=128 --data 'task:mqar?num_pairs=2,4,6&seq_len=128' --context 128 --steps 45 --batch-size 16 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 11 --log-every 2 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/mqar-hope/run --no-progress --lr 0.001 --cuda-graphs --warmup 4 --max-minutes 5.305
nslang eval /tmp/results_work_rerun/jobs/mqar-hope/run --device cuda --no-plot -q --batch-size 16 --mode auto --task mqar --n 96 --param num_pairs=2,4,6 --param seq_len=128,256 -o /tmp/results_work_rerun/jobs/mqar-hope/eval_mqar.json

# mqar-hope_attention
nslang train specs/hope_attention.nsam --set dim=384 --set depth=6 --set heads=4 --set context=128 --data 'task:mqar?num_pairs=2,4,6&seq_len=128' --context 128 --steps 45 --batch-size 8 --accumulation 2 --eval-every 0 --eval-batches 4 --save-every 11 --log-every 2 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/mqar-hope_attention/run --no-progress --lr 0.001 --cuda-graphs --warmup 4 --max-minutes 4.651 --resume latest
nslang eval /tmp/results_work_rerun/jobs/mqar-hope_attention/run --device cuda --no-plot -q --batch-size 16 --mode auto --task mqar --n 96 --param num_pairs=2,4,6 --param seq_len=128,256 -o /tmp/results_work_rerun/jobs/mqar-hope_attention/eval_mqar.json

# mqar-hope_no_cms
nslang train specs/hope_no_cms.nsam --set dim=384 --set depth=6 --set heads=4 --set context=128 --data 'task:mqar?num_pairs=2,4,6&seq_len=128' --context 128 --steps 45 --batch-size 16 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 11 --log-every 2 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/mqar-hope_no_cms/run --no-progress --lr 0.001 --cuda-graphs --warmup 4 --max-minutes 5.305
nslang eval /tmp/results_work_rerun/jobs/mqar-hope_no_cms/run --device cuda --no-plot -q --batch-size 16 --mode auto --task mqar --n 96 --param num_pairs=2,4,6 --param seq_len=128,256 -o /tmp/results_work_rerun/jobs/mqar-hope_no_cms/eval_mqar.json

# mqar-hope_no_dgd
nslang train specs/hope_no_dgd.nsam --set dim=384 --set depth=6 --set heads=4 --set context=128 --data 'task:mqar?num_pairs=2,4,6&seq_len=128' --context 128 --steps 45 --batch-size 16 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 11 --log-every 2 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/mqar-hope_no_dgd/run --no-progress --lr 0.001 --cuda-graphs --warmup 4 --max-minutes 5.305
nslang eval /tmp/results_work_rerun/jobs/mqar-hope_no_dgd/run --device cuda --no-plot -q --batch-size 16 --mode auto --task mqar --n 96 --param num_pairs=2,4,6 --param seq_len=128,256 -o /tmp/results_work_rerun/jobs/mqar-hope_no_dgd/eval_mqar.json

# mqar-hope_no_momentum
nslang train specs/hope_no_momentum.nsam --set dim=384 --set depth=6 --set heads=4 --set context=128 --data 'task:mqar?num_pairs=2,4,6&seq_len=128' --context 128 --steps 45 --batch-size 8 --accumulation 2 --eval-every 0 --eval-batches 4 --save-every 11 --log-every 2 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/mqar-hope_no_momentum/run --no-progress --lr 0.001 --cuda-graphs --warmup 4 --max-minutes 3.952 --resume latest
nslang eval /tmp/results_work_rerun/jobs/mqar-hope_no_momentum/run --device cuda --no-plot -q --batch-size 16 --mode auto --task mqar --n 96 --param num_pairs=2,4,6 --param seq_len=128,256 -o /tmp/results_work_rerun/jobs/mqar-hope_no_momentum/eval_mqar.json

# mqar-hope_no_retention
nslang train specs/hope_no_retention.nsam --set dim=384 --set depth=6 --set heads=4 --set context=128 --data 'task:mqar?num_pairs=2,4,6&seq_len=128' --context 128 --steps 45 --batch-size 16 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 11 --log-every 2 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/mqar-hope_no_retention/run --no-progress --lr 0.001 --cuda-graphs --warmup 4 --max-minutes 5.305
nslang eval /tmp/results_work_rerun/jobs/mqar-hope_no_retention/run --device cuda --no-plot -q --batch-size 16 --mode auto --task mqar --n 96 --param num_pairs=2,4,6 --param seq_len=128,256 -o /tmp/results_work_rerun/jobs/mqar-hope_no_retention/eval_mqar.json

# formal_aa_star-hope
nslang train specs/hope.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_aa_star --context 64 --steps 36 --batch-size 16 --accumulation 2 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_aa_star-hope/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 4.647
nslang eval /tmp/results_work_rerun/jobs/formal_aa_star-hope/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_aa_star --n 96 -o /tmp/results_work_rerun/jobs/formal_aa_star-hope/eval_formal.json

# formal_aa_star-hope_attention
nslang train specs/hope_attention.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_aa_star --context 64 --steps 36 --batch-size 8 --accumulation 4 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_aa_star-hope_attention/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 4.643 --resume latest
nslang eval /tmp/results_work_rerun/jobs/formal_aa_star-hope_attention/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_aa_star --n 96 -o /tmp/results_work_rerun/jobs/formal_aa_star-hope_attention/eval_formal.json

# formal_abab_star-hope
nslang train specs/hope.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_abab_star --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_abab_star-hope/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 5.305
nslang eval /tmp/results_work_rerun/jobs/formal_abab_star-hope/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_abab_star --n 96 -o /tmp/results_work_rerun/jobs/formal_abab_star-hope/eval_formal.json

# formal_abab_star-hope_attention
nslang train specs/hope_attention.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_abab_star --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_abab_star-hope_attention/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 5.305
nslang eval /tmp/results_work_rerun/jobs/formal_abab_star-hope_attention/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_abab_star --n 96 -o /tmp/results_work_rerun/jobs/formal_abab_star-hope_attention/eval_formal.json

# formal_anbn-hope
nslang train specs/hope.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_anbn --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_anbn-hope/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 5.305
nslang eval /tmp/results_work_rerun/jobs/formal_anbn-hope/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_anbn --n 96 -o /tmp/results_work_rerun/jobs/formal_anbn-hope/eval_formal.json

# formal_anbn-hope_attention
nslang train specs/hope_attention.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_anbn --context 64 --steps 36 --batch-size 16 --accumulation 2 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_anbn-hope_attention/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 4.840 --resume latest
nslang eval /tmp/results_work_rerun/jobs/formal_anbn-hope_attention/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_anbn --n 96 -o /tmp/results_work_rerun/jobs/formal_anbn-hope_attention/eval_formal.json

# formal_anbncn-hope
nslang train specs/hope.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_anbncn --context 64 --steps 36 --batch-size 16 --accumulation 2 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_anbncn-hope/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 4.931
nslang eval /tmp/results_work_rerun/jobs/formal_anbncn-hope/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_anbncn --n 96 -o /tmp/results_work_rerun/jobs/formal_anbncn-hope/eval_formal.json

# formal_anbncn-hope_attention
nslang train specs/hope_attention.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_anbncn --context 64 --steps 36 --batch-size 16 --accumulation 2 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_anbncn-hope_attention/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 4.072 --resume latest
nslang eval /tmp/results_work_rerun/jobs/formal_anbncn-hope_attention/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_anbncn --n 96 -o /tmp/results_work_rerun/jobs/formal_anbncn-hope_attention/eval_formal.json

# formal_parity-hope
nslang train specs/hope.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_parity --context 64 --steps 36 --batch-size 16 --accumulation 2 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_parity-hope/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 3.658 --resume latest
nslang eval /tmp/results_work_rerun/jobs/formal_parity-hope/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_parity --n 96 -o /tmp/results_work_rerun/jobs/formal_parity-hope/eval_formal.json

# formal_parity-hope_attention
nslang train specs/hope_attention.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_parity --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_parity-hope_attention/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 4.430
nslang eval /tmp/results_work_rerun/jobs/formal_parity-hope_attention/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_parity --n 96 -o /tmp/results_work_rerun/jobs/formal_parity-hope_attention/eval_formal.json

# formal_shuffle2-hope
nslang train specs/hope.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_shuffle2 --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_shuffle2-hope/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 4.299
nslang eval /tmp/results_work_rerun/jobs/formal_shuffle2-hope/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_shuffle2 --n 96 -o /tmp/results_work_rerun/jobs/formal_shuffle2-hope/eval_formal.json

# formal_shuffle2-hope_attention
nslang train specs/hope_attention.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_shuffle2 --context 64 --steps 36 --batch-size 16 --accumulation 2 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_shuffle2-hope_attention/run --no-progress --lr 0.001 --cuda-graphs --warmup 3 --max-minutes 3.756 --resume latest
nslang eval /tmp/results_work_rerun/jobs/formal_shuffle2-hope_attention/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_shuffle2 --n 96 -o /tmp/results_work_rerun/jobs/formal_shuffle2-hope_attention/eval_formal.json

# formal_shuffle2-titans
nslang train specs/titans.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_shuffle2 --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work_rerun/jobs/formal_shuffle2-titans/run --no-progress --lr 0.001 --warmup 3 --max-minutes 4.112
nslang eval /tmp/results_work_rerun/jobs/formal_shuffle2-titans/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_shuffle2 --n 96 -o /tmp/results_work_rerun/jobs/formal_shuffle2-titans/eval_formal.json
