"""Evaluation on frozen features: embed, linear probe and k-NN, beside the baselines.

The linear probe reads the pooled output of every encoder layer; the layer (or the last two
together) and the regularisation are chosen on the validation split; the test split is scored
once, with the chosen model.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from anymae.config import ModelConfig, ProbeConfig
from anymae.data import Dataset
from anymae.errors import UserError
from anymae.metrics import Metric, metric_named
from anymae.model import MaskedAutoencoder
from anymae.progress import Counter
from anymae.tokens import TokenArrays

REGULARISATION = (0.001, 0.01, 0.1, 1.0, 10.0)  # logistic C, or ridge 1/alpha
SELECTION_C = 0.1  # the regularisation at which the probe compares layers


def one_blas_thread() -> threadpool_limits:
    """Where linear heads are fitted: lbfgs's products are skinny (N x D by D x classes), and
    OpenBLAS's threads made them 2-3x slower on 2 cores (benchmarks/probe_fit.py)."""
    return threadpool_limits(1, user_api="blas")


def embed(model: MaskedAutoencoder, dataset: Dataset, index: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Pooled encoder features (len(index), D) with no masking."""
    model.eval()
    parts = []
    for start in range(0, len(index), batch_size):
        batch = dataset.tokens.batch(index[start : start + batch_size], dataset.spec.discrete)
        parts.append(model.features(batch).float().numpy())
    return finite(np.concatenate(parts) if parts else np.zeros((0, model.config.dim), dtype=np.float32))


def embed_to_file(
    model: MaskedAutoencoder, dataset: Dataset, index: np.ndarray, out: Path, ids: Path, batch_size: int = 512
) -> tuple[int, int]:
    """Features of `index` written into the .npy `out` (memory-mapped) a chunk at a time, with the
    samples' ids beside them in `ids` (one a line, the same order): memory independent of len(index)."""
    shape = (len(index), model.config.dim)
    features = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=shape)
    counter = Counter(f"embedding {dataset.name}", "samples", len(index))
    chunk = batch_size * 16
    with open(ids, "w", encoding="utf-8") as names:
        for start in range(0, len(index), chunk):
            rows = np.asarray(index[start : start + chunk])
            features[start : start + len(rows)] = embed(model, dataset, rows, batch_size)
            names.writelines(f"{sample_id(dataset, int(i))}\n" for i in rows)
            counter.update(len(rows))
    features.flush()
    del features
    counter.close()
    return shape


def sample_id(dataset: Dataset, i: int) -> str:
    """A sample's id (FASTA header, line, row, file name), or its row in the dataset."""
    return f"sample {i}" if dataset.ids is None else " ".join(str(dataset.ids[i]).split())


def finite(features: np.ndarray) -> np.ndarray:
    bad = int((~np.isfinite(features)).any(1).sum())
    if bad:  # finite but huge weights (a run stopped as it diverged) can overflow the encoder
        raise UserError(
            f"the encoder's features are not finite for {bad} of {len(features)} samples; nothing is scored"
        )
    return features


def pool(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean over the valid slots (all slots when `valid` is None): (B, M, D) -> (B, D)."""
    if valid is None:
        return x.mean(dim=1)
    weights = valid.to(x.dtype)[..., None]
    return (x * weights).sum(1) / weights.sum(1).clamp(min=1)


def pooled_layers(model: MaskedAutoencoder, batch) -> list[torch.Tensor]:
    """Pooled output of every encoder layer with no masking (guide layer first, the last one normed).

    Follows `MaskedAutoencoder.encode`, keeping each layer's output on the way.
    """
    x = model.embed_tokens(batch)
    latents = None if model.latents is None else model.latents.expand(len(x), -1, -1)
    x, key_valid, _ = model.guide(x, batch.valid, latents)
    outputs = [x]
    for block in model.blocks:
        x = block(x, key_valid=key_valid)
        outputs.append(x)
    outputs[-1] = model.norm(outputs[-1])
    return [pool(o, key_valid) for o in outputs]


@torch.no_grad()
def embed_layers(
    model: MaskedAutoencoder, dataset: Dataset, index: np.ndarray, batch_size: int = 512, counter: Counter | None = None
) -> list[np.ndarray]:
    """Pooled features of every encoder layer: a list of depth arrays (len(index), D); each batch
    counted by `counter` when given."""
    model.eval()
    parts: list[list[np.ndarray]] = [[] for _ in range(model.config.depth)]
    for start in range(0, len(index), batch_size):
        batch = dataset.tokens.batch(index[start : start + batch_size], dataset.spec.discrete)
        for layer, pooled in enumerate(pooled_layers(model, batch)):
            parts[layer].append(pooled.float().numpy())
        if counter is not None:
            counter.update(len(index[start : start + batch_size]))
    empty = np.zeros((0, model.config.dim), dtype=np.float32)
    return [finite(np.concatenate(p)) if p else empty for p in parts]


def linear_probe(
    metric: Metric, features: dict[str, np.ndarray], labels: dict[str, np.ndarray], grid: tuple = REGULARISATION
) -> dict:
    """Logistic (or ridge, for rmse) regression on standardised features; C chosen on validation.

    The sweep runs from strong to weak regularisation, each fit warm-started from the previous
    one, and stops once validation has got worse twice in a row (the large-C fits are the slow ones).
    """
    scaler = StandardScaler(with_mean=not sparse.issparse(features["train"])).fit(features["train"])
    x = {split: scaler.transform(f) for split, f in features.items()}
    classify = metric.classifies
    head = LogisticRegression(max_iter=300, warm_start=True) if classify else Ridge()
    best, converged, worse = None, True, 0
    with one_blas_thread():
        for c in grid:
            if worse == 2:
                break
            head.set_params(**({"C": c} if classify else {"alpha": 1.0 / c}))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                head.fit(x["train"], labels["train"])
            val = metric.of_model(head, x["val"], labels["val"])
            if best is None or metric.better(val, best[0]):
                best = (val, c, copy.deepcopy(head))
                converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
                worse = 0
            else:
                worse += 1
        val, c, chosen = best
        test = metric.of_model(chosen, x["test"], labels["test"])
    return {"val": val, "test": test, "C": c, "converged": converged}


def knn(metric: Metric, features: dict[str, np.ndarray], labels: dict[str, np.ndarray], k: int) -> dict:
    """k-NN with cosine distance, neighbours weighted by inverse distance; k fixed (stated)."""
    k = min(k, len(features["train"]))
    model = (KNeighborsClassifier if metric.classifies else KNeighborsRegressor)(
        n_neighbors=k, metric="cosine", weights="distance"
    )
    model.fit(features["train"], labels["train"])
    return {
        "val": metric.of_model(model, features["val"], labels["val"]),
        "test": metric.of_model(model, features["test"], labels["test"]),
        "k": k,
    }


def probe_splits(dataset: Dataset, config: ProbeConfig) -> dict[str, np.ndarray]:
    """train, val and test indices (subsampled to max_train, max_eval with a fixed seed); tokens are not read."""
    if dataset.labels is None or dataset.task == "none":
        raise UserError(f"dataset '{dataset.name}' has no labels to probe")
    splits = dict(dataset.splits)
    if dataset.task == "classification":
        classes = np.unique(dataset.labels[splits["train"]])
        if len(classes) < 2:
            raise UserError(
                f"dataset '{dataset.name}': the training split holds labels of {len(classes)} class "
                f"({', '.join(map(str, classes[:1]))}); a probe needs at least 2 classes"
            )
    for part, cap in (("train", config.max_train), ("val", config.max_eval), ("test", config.max_eval)):
        if len(splits[part]) > cap:
            rng = np.random.default_rng(0)
            splits[part] = np.sort(rng.choice(splits[part], cap, replace=False))
    return splits


def evaluate_features(metric: Metric, features: dict[str, np.ndarray], labels: dict[str, np.ndarray], k: int) -> dict:
    return {"linear": linear_probe(metric, features, labels), "knn": knn(metric, features, labels, k)}


def layer_candidates(depth: int) -> list[tuple[str, list[int]]]:
    """Every layer alone (1 = the guide layer), and the last two concatenated."""
    candidates = [(f"layer {i + 1}", [i]) for i in range(depth)]
    if depth > 1:
        candidates.append((f"layers {depth - 1}+{depth}", [depth - 2, depth - 1]))
    return candidates


def evaluate_layers(metric: Metric, layers: dict[str, list[np.ndarray]], labels: dict[str, np.ndarray], k: int) -> dict:
    """Linear probe on the candidate layer best on validation; k-NN on the last layer.

    Candidates are compared at one middle regularisation (a full sweep each would cost five
    times as much); the chosen one then gets the full sweep.
    """
    depth = len(layers["train"])

    def stack(chosen: list[int]) -> dict[str, np.ndarray]:
        return {split: np.concatenate([f[i] for i in chosen], axis=1) for split, f in layers.items()}

    candidates = layer_candidates(depth)
    tried = {
        name: linear_probe(metric, stack(chosen), labels, grid=(SELECTION_C,))["val"] for name, chosen in candidates
    }
    best = None
    for name, val in tried.items():  # candidates in a fixed order: the first of equal scores wins
        if best is None or metric.better(val, tried[best]):
            best = name
    result = linear_probe(metric, stack(dict(candidates)[best]), labels)
    last = {split: f[-1] for split, f in layers.items()}
    return {"linear": {**result, "layer": best}, "knn": knn(metric, last, labels, k), "layers_val": tried}


def probe_report(model: MaskedAutoencoder, dataset: Dataset, config: ProbeConfig) -> dict:
    """Linear probe and k-NN on the pretrained encoder, the same encoder untrained, and raw inputs."""
    splits = probe_splits(dataset, config)
    metric = metric_named(dataset.metric, dataset.name, "the probe")
    labels = {name: dataset.labels[index] for name, index in splits.items()}
    untrained = untrained_like(model)
    encoders = {"pretrained": model, "untrained": untrained}
    report: dict = {
        "dataset": dataset.name,
        "task": dataset.task,
        "metric": metric.name,
        "sizes": {name: int(len(index)) for name, index in splits.items()},
    }
    total = len(encoders) * sum(len(index) for index in splits.values())
    counter = Counter(f"probe on {dataset.name}", "samples embedded", total)
    for name, encoder in encoders.items():
        counter.doing(f"{name} encoder")
        layers = {
            split: embed_layers(encoder, dataset, index, config.batch_size, counter) for split, index in splits.items()
        }
        report[name] = evaluate_layers(metric, layers, labels, config.knn_k)
    counter.close()
    raw = {
        split: dataset.spec.raw_features(TokenArrays(dataset.tokens.inputs[index], dataset.tokens.valid[index]))
        for split, index in splits.items()
    }
    report["raw"] = evaluate_features(metric, raw, labels, config.knn_k)
    return report


def untrained_like(model: MaskedAutoencoder) -> MaskedAutoencoder:
    """The same architecture, freshly initialised with a fixed seed."""
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    fresh = MaskedAutoencoder(model.spec, ModelConfig(**vars(model.config))).eval()
    torch.random.set_rng_state(state)
    return fresh


def format_report(report: dict) -> str:
    metric = report["metric"]
    lines = [
        f"{report['dataset']}: {metric} on the test split ({report['sizes']['test']} examples; "
        f"probes trained on {report['sizes']['train']}, regularisation chosen on {report['sizes']['val']})",
        f"{'features':<12}{'linear probe':>14}{'k-NN':>10}  layer (chosen on validation)",
    ]
    for name in ("pretrained", "untrained", "raw"):
        layer = report[name]["linear"].get("layer", "")
        lines.append(
            f"{name:<12}{report[name]['linear']['test']:>14.4f}{report[name]['knn']['test']:>10.4f}  {layer}".rstrip()
        )
    return "\n".join(lines)
