"""Linear-probe fits with OpenBLAS's default threads against one BLAS thread, side by side.

The probe fits logistic regression (lbfgs) on Fashion-MNIST features: the raw pixels (784 per
image) and the pooled last two layers of the fixed-seed untrained encoder (256), 10,000 training
images, at the selection regularisation and at the weakest one. The two thread settings alternate
round by round in one process; a fit's time is its median round. Reported: seconds per fit, the
ratio (default / one thread), and the validation accuracy of each (equal up to float rounding).

    python benchmarks/probe_fit.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_info, threadpool_limits

from anymae.config import Config, ModelConfig, ProbeConfig
from anymae.data import load_dataset
from anymae.evaluate import SELECTION_C, embed_layers, probe_splits, untrained_like
from anymae.model import MaskedAutoencoder
from anymae.tokens import TokenArrays

SETTINGS = {"default threads": None, "one BLAS thread": 1}


def feature_sets(name: str) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    config = Config()
    config.data.name = name
    dataset = load_dataset(config.data)
    splits = probe_splits(dataset, ProbeConfig())
    splits = {split: splits[split] for split in ("train", "val")}
    encoder = untrained_like(MaskedAutoencoder(dataset.spec, ModelConfig()))
    with torch.no_grad():
        layers = {split: embed_layers(encoder, dataset, index) for split, index in splits.items()}
    raw = {
        split: dataset.spec.raw_features(TokenArrays(dataset.tokens.inputs[i], dataset.tokens.valid[i]))
        for split, i in splits.items()
    }
    labels = {split: dataset.labels[index] for split, index in splits.items()}
    encoded = {split: np.concatenate(f[-2:], axis=1) for split, f in layers.items()}
    return {"raw pixels": raw, "untrained layers 3+4": encoded}, labels


def fit_seconds(x: dict, y: dict, c: float, threads: int | None) -> tuple[float, float]:
    with threadpool_limits(threads, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        head = LogisticRegression(C=c, max_iter=300).fit(x["train"], y["train"])
        seconds = time.perf_counter() - start
    return seconds, float(head.score(x["val"], y["val"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/probe_fit.json"))
    args = parser.parse_args()
    features, labels = feature_sets(args.data)
    results = []
    for name, f in features.items():
        scaler = StandardScaler().fit(f["train"])
        x = {split: scaler.transform(v) for split, v in f.items()}
        for c in (SELECTION_C, 10.0):
            times: dict[str, list[float]] = {setting: [] for setting in SETTINGS}
            val = {}
            for _ in range(args.rounds):
                for setting, threads in SETTINGS.items():
                    seconds, val[setting] = fit_seconds(x, labels, c, threads)
                    times[setting].append(seconds)
            median = {setting: statistics.median(t) for setting, t in times.items()}
            results.append(
                {
                    "features": name,
                    "dim": x["train"].shape[1],
                    "C": c,
                    "seconds": median,
                    "val_accuracy": val,
                    "ratio": median["default threads"] / median["one BLAS thread"],
                }
            )
            r = results[-1]
            print(
                f"{name:<22} dim {r['dim']:>4}  C={c:<5g} default {median['default threads']:.2f}s  "
                f"one thread {median['one BLAS thread']:.2f}s  x{r['ratio']:.2f}  val {val}",
                flush=True,
            )
    pools = [{k: i[k] for k in ("internal_api", "num_threads", "version")} for i in threadpool_info()]
    setup = {"data": args.data, "rounds": args.rounds, "train": len(labels["train"]), "thread_pools": pools}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"setup": setup, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
