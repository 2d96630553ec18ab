#!/usr/bin/env bash
# The commands of every job (bench/results.py wrote this; the time limits are
# those each job got when it started). Run from the repository root.

# lm-hope

# lm-hope_attention

# lm-hope_no_cms

# lm-hope_no_dgd

# lm-hope_no_momentum

# lm-hope_no_retention

# lm-titans
nslang train specs/titans.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data .gpu_data/shakespeare/byte-val0.01-seed0 --context 64 --steps 36 --batch-size 16 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/lm-titans/run --no-progress --lr 0.001 --warmup 3 --max-minutes 3.165
nslang eval /tmp/results_work/jobs/lm-titans/run --device cuda --no-plot -q --batch-size 16 --mode auto --task niah_single_1 --n 15 --param lengths=512,1024,2048 -o /tmp/results_work/jobs/lm-titans/eval_niah_single_1.json
nslang eval /tmp/results_work/jobs/lm-titans/run --device cuda --no-plot -q --batch-size 16 --mode auto --task niah_single_2 --n 15 --param lengths=512,1024,2048 -o /tmp/results_work/jobs/lm-titans/eval_niah_single_2.json --param haystack=@/tmp/results_work/haystack.txt
nslang eval /tmp/results_work/jobs/lm-titans/run --device cuda --no-plot -q --batch-size 16 --mode auto --task niah_multikey_1 --n 15 --param lengths=512,1024,2048 -o /tmp/results_work/jobs/lm-titans/eval_niah_multikey_1.json --param haystack=@/tmp/results_work/haystack.txt
nslang eval /tmp/results_work/jobs/lm-titans/run --device cuda --no-plot -q --batch-size 16 --mode auto --task class_incremental --param source=@/work/main/.gpu_data/continual_wiki.jsonl --param label_key=topic -o /tmp/results_work/jobs/lm-titans/eval_continual.json --param classes_per_task=2 --param test_per_class=10 --param train_per_class=40 --param max_chars=600 --param train_steps=5 --param train_batch=8 --param train_seq_len=128

# mqar-hope

# mqar-hope_attention

# mqar-hope_no_cms

# mqar-hope_no_dgd

# mqar-hope_no_momentum

# mqar-hope_no_retention

# mqar-titans
nslang train specs/titans.nsam --set dim=384 --set depth=6 --set heads=4 --set context=128 --data 'task:mqar?num_pairs=2,4,6&seq_len=128' --context 128 --steps 45 --batch-size 16 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 11 --log-every 2 --device cuda --seed 0 --out /tmp/results_work/jobs/mqar-titans/run --no-progress --lr 0.001 --warmup 4 --max-minutes 4.748
nslang eval /tmp/results_work/jobs/mqar-titans/run --device cuda --no-plot -q --batch-size 16 --mode auto --task mqar --n 96 --param num_pairs=2,4,6 --param seq_len=128,256 -o /tmp/results_work/jobs/mqar-titans/eval_mqar.json

# formal_aa_star-hope

# formal_aa_star-hope_attention

# formal_aa_star-titans
nslang train specs/titans.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_aa_star --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/formal_aa_star-titans/run --no-progress --lr 0.001 --warmup 3 --max-minutes 4.748
nslang eval /tmp/results_work/jobs/formal_aa_star-titans/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_aa_star --n 96 -o /tmp/results_work/jobs/formal_aa_star-titans/eval_formal.json

# formal_abab_star-hope

# formal_abab_star-hope_attention

# formal_abab_star-titans
nslang train specs/titans.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_abab_star --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/formal_abab_star-titans/run --no-progress --lr 0.001 --warmup 3 --max-minutes 4.748
nslang eval /tmp/results_work/jobs/formal_abab_star-titans/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_abab_star --n 96 -o /tmp/results_work/jobs/formal_abab_star-titans/eval_formal.json

# formal_anbn-hope

# formal_anbn-hope_attention

# formal_anbn-titans
nslang train specs/titans.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_anbn --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/formal_anbn-titans/run --no-progress --lr 0.001 --warmup 3 --max-minutes 4.748
nslang eval /tmp/results_work/jobs/formal_anbn-titans/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_anbn --n 96 -o /tmp/results_work/jobs/formal_anbn-titans/eval_formal.json

# formal_anbncn-hope

# formal_anbncn-hope_attention

# formal_anbncn-titans
nslang train specs/titans.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_anbncn --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/formal_anbncn-titans/run --no-progress --lr 0.001 --warmup 3 --max-minutes 4.748
nslang eval /tmp/results_work/jobs/formal_anbncn-titans/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_anbncn --n 96 -o /tmp/results_work/jobs/formal_anbncn-titans/eval_formal.json

# formal_parity-hope

# formal_parity-hope_attention

# formal_parity-titans
nslang train specs/titans.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_parity --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/formal_parity-titans/run --no-progress --lr 0.001 --warmup 3 --max-minutes 4.748
nslang eval /tmp/results_work/jobs/formal_parity-titans/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_parity --n 96 -o /tmp/results_work/jobs/formal_parity-titans/eval_formal.json

# formal_shuffle2-hope

# formal_shuffle2-hope_attention

# formal_shuffle2-titans
nslang train specs/titans.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_shuffle2 --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/formal_shuffle2-titans/run --no-progress --lr 0.001 --warmup 3 --max-minutes 4.748
nslang eval /tmp/results_work/jobs/formal_shuffle2-titans/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_shuffle2 --n 96 -o /tmp/results_work/jobs/formal_shuffle2-titans/eval_formal.json

# lm-deltanet
nslang train specs/deltanet.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data .gpu_data/shakespeare/byte-val0.01-seed0 --context 64 --steps 36 --batch-size 16 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/lm-deltanet/run --no-progress --lr 0.001 --warmup 3 --max-minutes 2.999
nslang eval /tmp/results_work/jobs/lm-deltanet/run --device cuda --no-plot -q --batch-size 16 --mode auto --task niah_single_1 --n 15 --param lengths=512,1024,2048 -o /tmp/results_work/jobs/lm-deltanet/eval_niah_single_1.json
nslang eval /tmp/results_work/jobs/lm-deltanet/run --device cuda --no-plot -q --batch-size 16 --mode auto --task niah_single_2 --n 15 --param lengths=512,1024,2048 -o /tmp/results_work/jobs/lm-deltanet/eval_niah_single_2.json --param haystack=@/tmp/results_work/haystack.txt
nslang eval /tmp/results_work/jobs/lm-deltanet/run --device cuda --no-plot -q --batch-size 16 --mode auto --task niah_multikey_1 --n 15 --param lengths=512,1024,2048 -o /tmp/results_work/jobs/lm-deltanet/eval_niah_multikey_1.json --param haystack=@/tmp/results_work/haystack.txt
nslang eval /tmp/results_work/jobs/lm-deltanet/run --device cuda --no-plot -q --batch-size 16 --mode auto --task class_incremental --param source=@/work/main/.gpu_data/continual_wiki.jsonl --param label_key=topic -o /tmp/results_work/jobs/lm-deltanet/eval_continual.json --param classes_per_task=2 --param test_per_class=10 --param train_per_class=40 --param max_chars=600 --param train_steps=5 --param train_batch=8 --param train_seq_len=128

# lm-transformer_pp
nslang train specs/transformer_pp.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data .gpu_data/shakespeare/byte-val0.01-seed0 --context 64 --steps 36 --batch-size 16 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/lm-transformer_pp/run --no-progress --lr 0.001 --warmup 3 --max-minutes 3.165
nslang eval /tmp/results_work/jobs/lm-transformer_pp/run --device cuda --no-plot -q --batch-size 16 --mode auto --task niah_single_1 --n 15 --param lengths=512,1024,2048 -o /tmp/results_work/jobs/lm-transformer_pp/eval_niah_single_1.json
nslang eval /tmp/results_work/jobs/lm-transformer_pp/run --device cuda --no-plot -q --batch-size 16 --mode auto --task niah_single_2 --n 15 --param lengths=512,1024,2048 -o /tmp/results_work/jobs/lm-transformer_pp/eval_niah_single_2.json --param haystack=@/tmp/results_work/haystack.txt
nslang eval /tmp/results_work/jobs/lm-transformer_pp/run --device cuda --no-plot -q --batch-size 16 --mode auto --task niah_multikey_1 --n 15 --param lengths=512,1024,2048 -o /tmp/results_work/jobs/lm-transformer_pp/eval_niah_multikey_1.json --param haystack=@/tmp/results_work/haystack.txt
nslang eval /tmp/results_work/jobs/lm-transformer_pp/run --device cuda --no-plot -q --batch-size 16 --mode auto --task class_incremental --param source=@/work/main/.gpu_data/continual_wiki.jsonl --param label_key=topic -o /tmp/results_work/jobs/lm-transformer_pp/eval_continual.json --param classes_per_task=2 --param test_per_class=10 --param train_per_class=40 --param max_chars=600 --param train_steps=5 --param train_batch=8 --param train_seq_len=128

# formal_aa_star-deltanet
nslang train specs/deltanet.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_aa_star --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/formal_aa_star-deltanet/run --no-progress --lr 0.001 --warmup 3 --max-minutes 4.748
nslang eval /tmp/results_work/jobs/formal_aa_star-deltanet/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_aa_star --n 96 -o /tmp/results_work/jobs/formal_aa_star-deltanet/eval_formal.json

# formal_aa_star-transformer_pp
nslang train specs/transformer_pp.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_aa_star --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/formal_aa_star-transformer_pp/run --no-progress --lr 0.001 --warmup 3 --max-minutes 4.748
nslang eval /tmp/results_work/jobs/formal_aa_star-transformer_pp/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_aa_star --n 96 -o /tmp/results_work/jobs/formal_aa_star-transformer_pp/eval_formal.json

# formal_abab_star-deltanet
nslang train specs/deltanet.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_abab_star --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/formal_abab_star-deltanet/run --no-progress --lr 0.001 --warmup 3 --max-minutes 4.748
nslang eval /tmp/results_work/jobs/formal_abab_star-deltanet/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_abab_star --n 96 -o /tmp/results_work/jobs/formal_abab_star-deltanet/eval_formal.json

# formal_abab_star-transformer_pp
nslang train specs/transformer_pp.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_abab_star --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/formal_abab_star-transformer_pp/run --no-progress --lr 0.001 --warmup 3 --max-minutes 4.748
nslang eval /tmp/results_work/jobs/formal_abab_star-transformer_pp/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_abab_star --n 96 -o /tmp/results_work/jobs/formal_abab_star-transformer_pp/eval_formal.json

# formal_anbn-deltanet
nslang train specs/deltanet.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_anbn --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/formal_anbn-deltanet/run --no-progress --lr 0.001 --warmup 3 --max-minutes 4.748
nslang eval /tmp/results_work/jobs/formal_anbn-deltanet/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_anbn --n 96 -o /tmp/results_work/jobs/formal_anbn-deltanet/eval_formal.json

# formal_anbn-transformer_pp
nslang train specs/transformer_pp.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_anbn --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/formal_anbn-transformer_pp/run --no-progress --lr 0.001 --warmup 3 --max-minutes 4.748
nslang eval /tmp/results_work/jobs/formal_anbn-transformer_pp/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_anbn --n 96 -o /tmp/results_work/jobs/formal_anbn-transformer_pp/eval_formal.json

# formal_anbncn-deltanet
nslang train specs/deltanet.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_anbncn --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/formal_anbncn-deltanet/run --no-progress --lr 0.001 --warmup 3 --max-minutes 4.748
nslang eval /tmp/results_work/jobs/formal_anbncn-deltanet/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_anbncn --n 96 -o /tmp/results_work/jobs/formal_anbncn-deltanet/eval_formal.json

# formal_anbncn-transformer_pp
nslang train specs/transformer_pp.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_anbncn --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/formal_anbncn-transformer_pp/run --no-progress --lr 0.001 --warmup 3 --max-minutes 4.748
nslang eval /tmp/results_work/jobs/formal_anbncn-transformer_pp/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_anbncn --n 96 -o /tmp/results_work/jobs/formal_anbncn-transformer_pp/eval_formal.json

# formal_parity-deltanet
nslang train specs/deltanet.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_parity --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/formal_parity-deltanet/run --no-progress --lr 0.001 --warmup 3 --max-minutes 4.338
nslang eval /tmp/results_work/jobs/formal_parity-deltanet/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_parity --n 96 -o /tmp/results_work/jobs/formal_parity-deltanet/eval_formal.json

# formal_parity-transformer_pp
nslang train specs/transformer_pp.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_parity --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/formal_parity-transformer_pp/run --no-progress --lr 0.001 --warmup 3 --max-minutes 4.333
nslang eval /tmp/results_work/jobs/formal_parity-transformer_pp/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_parity --n 96 -o /tmp/results_work/jobs/formal_parity-transformer_pp/eval_formal.json

# formal_shuffle2-deltanet
nslang train specs/deltanet.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_shuffle2 --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/formal_shuffle2-deltanet/run --no-progress --lr 0.001 --warmup 3 --max-minutes 4.333
nslang eval /tmp/results_work/jobs/formal_shuffle2-deltanet/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_shuffle2 --n 96 -o /tmp/results_work/jobs/formal_shuffle2-deltanet/eval_formal.json

# formal_shuffle2-transformer_pp
nslang train specs/transformer_pp.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data task:formal_shuffle2 --context 64 --steps 36 --batch-size 32 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/formal_shuffle2-transformer_pp/run --no-progress --lr 0.001 --warmup 3 --max-minutes 4.328
nslang eval /tmp/results_work/jobs/formal_shuffle2-transformer_pp/run --device cuda --no-plot -q --batch-size 16 --mode auto --task formal_shuffle2 --n 96 -o /tmp/results_work/jobs/formal_shuffle2-transformer_pp/eval_formal.json

# mqar-deltanet
nslang train specs/deltanet.nsam --set dim=384 --set depth=6 --set heads=4 --set context=128 --data 'task:mqar?num_pairs=2,4,6&seq_len=128' --context 128 --steps 45 --batch-size 16 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 11 --log-every 2 --device cuda --seed 0 --out /tmp/results_work/jobs/mqar-deltanet/run --no-progress --lr 0.001 --warmup 4 --max-minutes 4.266
nslang eval /tmp/results_work/jobs/mqar-deltanet/run --device cuda --no-plot -q --batch-size 16 --mode auto --task mqar --n 96 --param num_pairs=2,4,6 --param seq_len=128,256 -o /tmp/results_work/jobs/mqar-deltanet/eval_mqar.json

# mqar-transformer_pp
nslang train specs/transformer_pp.nsam --set dim=384 --set depth=6 --set heads=4 --set context=128 --data 'task:mqar?num_pairs=2,4,6&seq_len=128' --context 128 --steps 45 --batch-size 16 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 11 --log-every 2 --device cuda --seed 0 --out /tmp/results_work/jobs/mqar-transformer_pp/run --no-progress --lr 0.001 --warmup 4 --max-minutes 4.246
nslang eval /tmp/results_work/jobs/mqar-transformer_pp/run --device cuda --no-plot -q --batch-size 16 --mode auto --task mqar --n 96 --param num_pairs=2,4,6 --param seq_len=128,256 -o /tmp/results_work/jobs/mqar-transformer_pp/eval_mqar.json

# optim-transformer_pp-adamw
nslang train /tmp/results_work/specs/transformer_pp_adamw.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data .gpu_data/shakespeare/byte-val0.01-seed0 --context 64 --steps 36 --batch-size 16 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/optim-transformer_pp-adamw/run --no-progress --warmup 3 --max-minutes 5.338

# optim-transformer_pp-m3
nslang train /tmp/results_work/specs/transformer_pp_m3.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data .gpu_data/shakespeare/byte-val0.01-seed0 --context 64 --steps 36 --batch-size 16 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/optim-transformer_pp-m3/run --no-progress --warmup 3 --max-minutes 5.326

# optim-transformer_pp-muon
nslang train /tmp/results_work/specs/transformer_pp_muon.nsam --set dim=384 --set depth=6 --set heads=4 --set context=64 --data .gpu_data/shakespeare/byte-val0.01-seed0 --context 64 --steps 36 --batch-size 16 --accumulation 1 --eval-every 0 --eval-batches 4 --save-every 9 --log-every 1 --device cuda --seed 0 --out /tmp/results_work/jobs/optim-transformer_pp-muon/run --no-progress --warmup 3 --max-minutes 5.307
