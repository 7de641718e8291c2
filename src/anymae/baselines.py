"""Baselines a user would pick instead of pretraining, chosen from what the data is (its modality spec).

Each one gets the same labelled subset and chooses its settings on validation only:
- every dataset: logistic (or ridge) regression on the spec's raw features;
- images (tokens on a 2-D grid): a small CNN from scratch;
- molecules (SMILES): ECFP4 Morgan fingerprints with a random forest (ridge for regression);
- other token sequences: bag of k-mers (k = 1..3) with logistic (or ridge) regression;
- feature tokens and sets of values (tables, particles): gradient-boosted trees.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
from torch import nn

from anymae.chem import rdkit
from anymae.config import FinetuneConfig
from anymae.data import Dataset
from anymae.evaluate import linear_probe
from anymae.fitting import Task, fit_recipes, n_outputs
from anymae.metrics import Metric, metric_named
from anymae.tokens import FeatureTokens, ImagePatches, TokenArrays, ValueSet

RAW = "raw linear"


def baseline_names(dataset: Dataset) -> list[str]:
    """The baselines that fit this dataset's modality."""
    spec = dataset.spec
    if isinstance(spec, ImagePatches):
        return [RAW, "cnn"]
    if spec.discrete and spec.name == "smiles":
        classify = metric_named(dataset.metric, dataset.name, "the baselines").classifies
        return [RAW, "ecfp4 forest" if classify else "ecfp4 ridge"]
    if spec.discrete:
        return [RAW, "k-mers"]
    if isinstance(spec, (FeatureTokens, ValueSet)):
        return [RAW, "boosted trees"]
    return [RAW]


def run_baseline(name: str, dataset: Dataset, task: Task, config: FinetuneConfig, seed: int) -> dict:
    """Fit baseline `name` on task.splits['train']; {'val', 'test', 'choice'} (choice made on val)."""
    splits = task.splits
    labels = {split: task.labels[index] for split, index in splits.items()}
    if name == "cnn":
        return small_cnn(dataset, task, config, seed)
    if name == "boosted trees":
        features = {split: raw_features(dataset, index) for split, index in splits.items()}
        return boosted_trees(task.metric, features, labels, seed)
    if name == "ecfp4 forest":
        features = {split: fingerprints(dataset, index) for split, index in splits.items()}
        return forest(task.metric, features, labels, seed)
    if name == "ecfp4 ridge":
        features = {split: fingerprints(dataset, index).astype(np.float32) for split, index in splits.items()}
        return linear(task.metric, features, labels)
    if name == "k-mers":
        return linear(task.metric, kmer_features(dataset, splits), labels)
    return linear(task.metric, {split: raw_features(dataset, index) for split, index in splits.items()}, labels)


def raw_features(dataset: Dataset, index: np.ndarray) -> np.ndarray:
    return dataset.spec.raw_features(TokenArrays(dataset.tokens.inputs[index], dataset.tokens.valid[index]))


def linear(metric: Metric, features: dict, labels: dict) -> dict:
    result = linear_probe(metric, features, labels)
    return {"val": result["val"], "test": result["test"], "choice": f"C={result['C']:g}"}


def pick(metric: Metric, candidates: dict[str, object], features: dict, labels: dict) -> dict:
    """Fit every candidate on train, keep the best on validation, score it on test."""
    best = None
    for choice, model in candidates.items():
        model.fit(features["train"], labels["train"])
        val = metric.of_model(model, features["val"], labels["val"])
        if best is None or metric.better(val, best[0]):
            best = (val, choice, model)
    val, choice, model = best
    return {"val": val, "test": metric.of_model(model, features["test"], labels["test"]), "choice": choice}


def boosted_trees(metric: Metric, features: dict, labels: dict, seed: int) -> dict:
    kind = HistGradientBoostingClassifier if metric.classifies else HistGradientBoostingRegressor
    # min_samples_leaf is in the grid: at its default (20) a tree cannot split 34 labels, and the
    # model then predicts the majority class
    candidates = {
        f"leaves={leaves}, lr={lr}, min_leaf={leaf}": kind(
            max_leaf_nodes=leaves, learning_rate=lr, min_samples_leaf=leaf, max_iter=200, random_state=seed
        )
        for leaves in (7, 31)
        for lr in (0.05, 0.2)
        for leaf in (1, 5, 20)
    }
    return pick(metric, candidates, features, labels)


def forest(metric: Metric, features: dict, labels: dict, seed: int) -> dict:
    candidates = {
        f"min_leaf={leaf}": RandomForestClassifier(
            n_estimators=300, min_samples_leaf=leaf, n_jobs=-1, random_state=seed
        )
        for leaf in (1, 3)
    }
    return pick(metric, candidates, features, labels)


def smiles_of(dataset: Dataset, index: np.ndarray) -> list[str]:
    tokens = dataset.tokens
    return [dataset.spec.to_text(tokens.inputs[i], tokens.valid[i]) for i in index]


def fingerprints(dataset: Dataset, index: np.ndarray, radius: int = 2, bits: int = 2048) -> np.ndarray:
    """ECFP4 (Morgan, radius 2) bit vectors; a string RDKit cannot read (e.g. cut at max_tokens) is all zeros."""
    chem = rdkit()  # first: a clear error when RDKit is not installed
    from rdkit.Chem import rdFingerprintGenerator

    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=bits)
    out = np.zeros((len(index), bits), dtype=np.uint8)
    for row, smiles in enumerate(smiles_of(dataset, index)):
        mol = chem.MolFromSmiles(smiles)
        if mol is not None:
            out[row] = generator.GetFingerprintAsNumPy(mol)
    return out


def kmer_features(dataset: Dataset, splits: dict[str, np.ndarray]) -> dict:
    """Counts of every 1-, 2- and 3-mer of token ids seen twice in train, tf-idf weighted (sparse)."""
    tokens = dataset.tokens

    def text(i: int) -> str:  # one character per token id, so any vocabulary works
        return "".join(chr(0x100 + int(t)) for t in tokens.inputs[i][tokens.valid[i]])

    docs = {split: [text(i) for i in index] for split, index in splits.items()}
    counts = CountVectorizer(analyzer="char", ngram_range=(1, 3), lowercase=False, min_df=2, max_features=50000)
    weights = TfidfTransformer(sublinear_tf=True)
    train = weights.fit_transform(counts.fit_transform(docs["train"]))
    return {"train": train, **{s: weights.transform(counts.transform(d)) for s, d in docs.items() if s != "train"}}


class SmallCNN(nn.Module):
    """Two 3x3 conv blocks (32, 64 channels) with max pooling, average pooling to a 4x4 map, one linear layer.

    The 4x4 map keeps where features are: global pooling trained too slowly for the fine-tuning budget."""

    def __init__(self, channels: int, outputs: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
        )
        self.head = nn.Linear(64 * 16, outputs)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def small_cnn(dataset: Dataset, task: Task, config: FinetuneConfig, seed: int) -> dict:
    """The CNN trained like the fine-tuned encoder (same budget, lr choice and early stopping)."""
    spec = dataset.spec
    images = torch.from_numpy(spec.to_images(dataset.tokens.inputs)).permute(0, 3, 1, 2).contiguous()
    cnn_task = Task(lambda index: images[index], task.labels, task.metric, task.splits)

    def build():
        torch.manual_seed(seed)
        net = SmallCNN(spec.image_channels, n_outputs(task))
        return net, [{"params": list(net.parameters()), "weight_decay": 0.05}]

    result, _ = fit_recipes(build, cnn_task, config, seed)
    steps = {key: result[key] for key in ("best_step", "steps_run", "stopped")}
    return {"val": result["val"], "test": result["test"], "choice": f"lr={result['lr']:g}", **steps}
