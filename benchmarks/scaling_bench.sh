#!/usr/bin/env bash
# The compute axis: does pretraining pull ahead with more compute, and do the guided strategies separate
# from random masks? `anymae bench --steps 300,1000,3000` on five datasets, 3 seeds, the fine-tuning
# budget by epochs with early stopping (the default), scratch and the modality's baselines, into one
# folder (results.csv, results.md, compute.png: the fine-tuned score against pretraining CPU-seconds).
# Resumable: run it again and finished cells are skipped; cells are written as they finish.
# Usage: [OUT=folder] benchmarks/scaling_bench.sh [GROUP ...]   GROUPs: image higgs jets molecules proteins
# (default: all five, in that order; OUT defaults to benchmarks/results/scaling-bench). Processes given
# different groups can share the folder and run side by side, one per core (OMP_NUM_THREADS=1), e.g.
#   OMP_NUM_THREADS=1 benchmarks/scaling_bench.sh image & OMP_NUM_THREADS=1 benchmarks/scaling_bench.sh higgs jets
# Cost on one core: stage 1 (random and sma at every budget) about 2 hours for fashion-mnist (its 10%
# fine-tuning runs take longest), under an hour for higgs-like-20k; stage 2 (four more strategies; informed and
# AttG cost 1.0-1.8x and 1.1-1.9x random masks' CPU-seconds) only at 300 and 1,000 steps. Run it in the background.
set -euo pipefail
out=${OUT:-benchmarks/results/scaling-bench}
bin=${BIN:-.venv/bin}
if [ $# -eq 0 ]; then set -- image higgs jets molecules proteins; fi
scale() {  # informed with refresh_every=4 (its costly cut reused for 4 draws); probes on 2,000 examples
  local data=$2  # the arguments start with --data NAME or --data CORPUS:TASK
  for name in ${data//:/ }; do
    "$bin/anymae" data install "$name" >/dev/null  # what this machine lacks (skipped when ready)
  done
  "$bin/anymae" bench --seeds 3 --out "$out" masking.refresh_every=4 probe.max_train=2000 "$@"
}
image=(--data fashion-mnist --config configs/image-sma.yaml --labels 0.01,0.1 train.batch_size=64)
higgs=(--data higgs-like-20k --config configs/tabular-sma.yaml --labels 0.01,0.1)
jets=(--data quark-gluon-20k --config configs/set-sma.yaml --labels 0.01,0.1)
molecules=(--data qm9:solubility --config configs/smiles-sma.yaml --labels 0.1,1.0)
proteins=(--data uniprot-20k:amp --config configs/protein-sma.yaml --labels 0.01,0.1)

# Stage 1: random and sma at every budget on every dataset, one strategy's curve at a time (a part-finished
# run has whole curves, the two that answer the question first).
for dataset in "$@"; do
  declare -n args=$dataset
  for strategy in random sma; do
    scale "${args[@]}" --strategies $strategy --steps 300,1000,3000
  done
done
# Stage 2: r2mae, sma with its remedies, informed and AttG at 300 and 1,000 steps, every dataset at 300
# steps before any at 1,000 (a part-finished run compares every strategy at the shorter budget first).
for steps in 300 1000; do
  for dataset in "$@"; do
    declare -n args=$dataset
    scale "${args[@]}" --strategies r2mae,sma-remedies,informed,attg --steps $steps
  done
done
