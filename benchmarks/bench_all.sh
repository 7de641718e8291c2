#!/usr/bin/env bash
# The published bench (issue "Evidence"): every domain, strategies at equal compute, 3 seeds,
# all baselines, 1% / 10% / 100% labels, into one folder (results.csv, results.md, *.png).
# Resumable: run it again (or one line of it) and finished cells are skipped.
# Usage: benchmarks/bench_all.sh [OUT]   (default benchmarks/results/bench)
# Sizes are the per-domain recipes of configs/ (300 pretraining steps); Fashion-MNIST probes on
# 5,000 examples. Planned to fit about 2 hours on 2 cores; not yet timed end to end.
set -euo pipefail
out=${1:-benchmarks/results/bench}
bin=${BIN:-.venv/bin}
strategies=random,r2mae,sma,informed,attg,span
bench() { "$bin/anymae" bench --seeds 3 --labels 0.01,0.1,1.0 --out "$out" "$@"; }

bench --data fashion-mnist --config configs/image-sma.yaml --strategies $strategies,block probe.max_train=5000
bench --data uniprot-20k:amp --config configs/protein-sma.yaml --strategies $strategies
bench --data freesolv,solubility --config configs/smiles-sma.yaml --strategies $strategies
bench --data quark-gluon --config configs/set-sma.yaml --strategies $strategies
bench --data higgs-like,breast-cancer --config configs/tabular-sma.yaml --strategies $strategies
bench --data GunPoint --config configs/series-sma.yaml --strategies $strategies
bench --data rotten-tomatoes --config configs/text-sma.yaml --strategies $strategies
