#!/usr/bin/env bash
# The published bench (issue "Evidence"): every domain, strategies at equal compute, 3 seeds,
# all baselines, 1% / 10% / 100% labels, into one folder (results.csv, results.md, *.png).
# Resumable: run it again (or one line of it) and finished cells are skipped.
# Usage: [STRATEGIES=a,b] benchmarks/bench_all.sh [OUT]   (default benchmarks/results/bench; STRATEGIES
# reruns only those arms, for example after a fix to one strategy: delete their rows from results.csv first)
# Sizes: each domain's recipe in configs/*-sma.yaml (300 pretraining steps, the seeds' SMA
# settings), a fine-tuning budget of at most 100 steps with 5 validation passes ($fixed_budget), and probes fitted
# on at most 2,000 examples; reviews cut at 64 bytes. Measured here: 70 min for the first seven
# datasets, 54 min for Fashion-MNIST, about 30 min for the text (2.5 hours).
set -euo pipefail
out=${1:-benchmarks/results/bench}
bin=${BIN:-.venv/bin}
strategies=${STRATEGIES:-random,r2mae,sma,informed,attg,span}
for name in GunPoint breast-cancer higgs-like quark-gluon freesolv solubility uniprot-20k amp \
  rotten-tomatoes fashion-mnist dm3-upstream dm3-shuffle pbmc68k-reduced; do
  "$bin/anymae" data install "$name" >/dev/null  # what this machine lacks (skipped when ready)
done
# The fine-tuning budget these tables were measured with (fixed at 100 steps, 5 validation passes; the
# default is now by epochs with early stopping, see benchmarks/scaling_bench.sh for the tables under it).
fixed_budget="finetune.epochs=30 finetune.max_steps=100 finetune.evals=5 finetune.warmup=0.1"
bench() {
  "$bin/anymae" bench --seeds 3 --labels 0.01,0.1,1.0 --out "$out" "$@" \
    probe.max_train=2000 $fixed_budget
}

bench --data GunPoint --config configs/series-sma.yaml --strategies $strategies
bench --data breast-cancer,higgs-like --config configs/tabular-sma.yaml --strategies $strategies
bench --data quark-gluon --config configs/set-sma.yaml --strategies $strategies
bench --data freesolv,solubility --config configs/smiles-sma.yaml --strategies $strategies
bench --data uniprot-20k:amp --config configs/protein-sma.yaml --strategies $strategies
bench --data fashion-mnist --config configs/image-sma.yaml --strategies $strategies,block train.batch_size=64
bench --data rotten-tomatoes --config configs/text-sma.yaml --strategies $strategies data.max_tokens=64

# The R²MAE domains (DNA, single-cell), into a folder of their own (NEW_OUT): random, r2mae with one ratio
# per sample (R²MAE's idea; masking.per_sample changes only the uniform-ratio arm) and sma; 3 seeds;
# scratch and the baselines (k-mers for DNA; logistic regression on log-expression and boosted trees for cells).
new_out=${NEW_OUT:-benchmarks/results/bench-new-domains}
bench_new() {
  "$bin/anymae" bench --seeds 3 --labels 0.01,0.1,1.0 --out "$new_out" --strategies random,r2mae,sma "$@" \
    masking.per_sample=true probe.max_train=2000 $fixed_budget
}
bench_new --data dm3-upstream:dm3-shuffle --config configs/dna-sma.yaml
bench_new --data pbmc68k-reduced --config configs/singlecell-sma.yaml
