"""Baselines on the new domains (dm3-shuffle, pbmc68k-reduced): all training labels, validation picks the
setting, test read once. Usage: .venv/bin/python benchmarks/new_domain_baselines.py (docs/results.md)."""

from anymae.baselines import baseline_names, run_baseline
from anymae.config import DataConfig, FinetuneConfig
from anymae.data import load_dataset
from anymae.finetune import encoder_task

for name, extra in [
    ("dm3-shuffle", {"max_tokens": 128, "kmer": 2}),
    ("dm3-shuffle", {"max_tokens": 256, "kmer": 1}),
    ("pbmc68k-reduced", {}),
]:
    dataset = load_dataset(DataConfig(name=name, **extra))
    task = encoder_task(dataset, dataset.splits)
    for baseline in baseline_names(dataset):
        if baseline == "cnn":
            continue
        result = run_baseline(baseline, dataset, task, FinetuneConfig(), seed=0)
        print(
            name, extra, baseline, f"val {result['val']:.4f} test {result['test']:.4f} ({result['choice']})", flush=True
        )
