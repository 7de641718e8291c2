"""Fine-tuning with few labels: the whole encoder plus a small head, against the same model from scratch.

Each label fraction is a stratified subset of the training split, drawn per seed; the pretrained
encoder, the same architecture from random init (`scratch`) and the baselines all get that subset.
Every choice (early-stopping step, learning rate, baseline settings) is made on validation; the
test split is scored once, by the model validation chose.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from anymae.baselines import baseline_names, run_baseline
from anymae.config import FinetuneConfig, ModelConfig
from anymae.data import Dataset
from anymae.errors import UserError
from anymae.fitting import EncoderHead, Task, fit_recipes, n_outputs, param_groups, probe_head
from anymae.metrics import metric_named
from anymae.model import MaskedAutoencoder
from anymae.progress import Counter


def label_subset(train: np.ndarray, labels: np.ndarray, fraction: float, seed: int, classify: bool) -> np.ndarray:
    """A subset of the training indices holding `fraction` of each class (at least one per class).

    Regression targets are stratified by ten quantile bins. Drawn from the seed alone.
    """
    if not 0 < fraction <= 1:
        raise UserError(f"label fraction {fraction} must be in (0, 1]")
    if fraction == 1:
        return np.sort(train)
    y = labels[train]
    if classify:
        strata = y
    else:
        edges = np.quantile(y, np.linspace(0, 1, 11)[1:-1])
        strata = np.searchsorted(edges, y, side="right")
    rng = np.random.default_rng([seed, int(round(fraction * 1e6))])
    chosen = []
    for value in np.unique(strata):
        members = train[strata == value]
        take = max(1, int(round(fraction * len(members))))
        chosen.append(rng.choice(members, take, replace=False))
    return np.sort(np.concatenate(chosen))


def encoder_task(dataset: Dataset, splits: dict[str, np.ndarray]) -> Task:
    metric = metric_named(dataset.metric, dataset.name, "fine-tuning")
    labels = dataset.labels.astype(np.int64 if metric.classifies else np.float64)
    return Task(lambda index: dataset.tokens.batch(index, dataset.spec.discrete), labels, metric, splits)


def finetune_encoder(
    model: MaskedAutoencoder | None, dataset: Dataset, model_config: ModelConfig, task: Task, config, seed: int
):
    """Fine-tune a copy of `model` (None: the same architecture from random init, seeded)."""

    def build():
        torch.manual_seed(seed)
        encoder = (
            copy.deepcopy(model)
            if model is not None
            else MaskedAutoencoder(dataset.spec, ModelConfig(**vars(model_config)))
        )
        net = EncoderHead(encoder, n_outputs(task))
        if config.head_init == "probe":
            probe_head(net, task)
        elif config.head_init != "random":
            raise UserError(f"finetune.head_init must be probe or random, not '{config.head_init}'")
        return net, param_groups(net, model_config.depth, config.layer_decay, config.weight_decay)

    return fit_recipes(build, task, config, seed)


def selection_splits(dataset: Dataset, config: FinetuneConfig) -> dict[str, np.ndarray]:
    """val and test subsampled to max_val and max_test (fixed seed); train is drawn per fraction and seed."""
    if dataset.labels is None or dataset.task == "none":
        raise UserError(f"dataset '{dataset.name}' has no labels to fine-tune on")
    metric_named(dataset.metric, dataset.name, "fine-tuning")
    fixed = {}
    for part, cap in (("val", config.max_val), ("test", config.max_test)):
        index = dataset.splits[part]
        if len(index) > cap:
            index = np.sort(np.random.default_rng(0).choice(index, cap, replace=False))
        fixed[part] = index
    return fixed


def summary(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": [float(v) for v in values]}


def finetune_report(
    model: MaskedAutoencoder,
    dataset: Dataset,
    config: FinetuneConfig,
    baselines: bool = True,
    save: Callable[[str, nn.Module], None] | None = None,
) -> dict:
    """Per label fraction and seed: fine-tuned pretrained, scratch and (optionally) baselines."""
    if config.threads:
        torch.set_num_threads(config.threads)
    fixed = selection_splits(dataset, config)
    classify = metric_named(dataset.metric, dataset.name, "fine-tuning").classifies
    names = baseline_names(dataset) if baselines else []
    models = ["pretrained", "scratch", *names]
    total = len(config.labels) * config.seeds * len(models)
    fits = Counter(f"fine-tuning on {dataset.name}", "fits", total)
    report: dict = {
        "dataset": dataset.name,
        "task": dataset.task,
        "metric": dataset.metric,
        "recipe": dataclasses.asdict(config),
        "sizes": {
            "train": int(len(dataset.splits["train"])),
            "val": int(len(fixed["val"])),
            "test": int(len(fixed["test"])),
        },
        "fractions": {},
    }
    for fraction in config.labels:
        runs: dict[str, list[dict]] = {name: [] for name in models}
        n_labels = 0
        for seed in range(config.seeds):
            train = label_subset(dataset.splits["train"], dataset.labels, fraction, seed, classify)
            n_labels = len(train)
            task = encoder_task(dataset, {"train": train, **fixed})
            for name in models:
                fits.doing(f"{fraction:g} labels, seed {seed}, {name}")
                if name in ("pretrained", "scratch"):
                    result, net = finetune_encoder(
                        model if name == "pretrained" else None, dataset, model.config, task, config, seed
                    )
                    if save is not None:
                        save(f"{name}-{fraction:g}-seed{seed}", net)
                else:
                    result = run_baseline(name, dataset, task, config, seed)
                runs[name].append({"seed": seed, **result})
                fits.update(1)
        entry: dict = {"n_labels": int(n_labels)}
        for name, results in runs.items():
            entry[name] = {**summary([r["test"] for r in results]), "runs": results}
        report["fractions"][f"{fraction:g}"] = entry
    fits.close()
    return report


def format_finetune(report: dict) -> str:
    metric = report["metric"]
    fractions = report["fractions"]
    names = list(next(iter(fractions.values())).keys())[1:] if fractions else []
    seeds = report["recipe"]["seeds"]
    spread = "mean ± std over {seeds} seeds" if seeds > 1 else "one seed (no spread: run --seeds 3 for one)"
    lines = [
        f"{report['dataset']}: fine-tuning, {metric} on the test split ({report['sizes']['test']} examples; "
        f"chosen on {report['sizes']['val']} validation examples), {spread.format(seeds=seeds)}",
        f"{'labels':<16}" + "".join(f"{name:>19}" for name in names),
    ]

    def cell(stats: dict) -> str:
        return f"{stats['mean']:>11.4f} ± {stats['std']:.3f}" if seeds > 1 else f"{stats['mean']:>19.4f}"

    for fraction, entry in fractions.items():
        cells = "".join(cell(entry[n]) for n in names)
        lines.append(f"{fraction + ' (' + str(entry['n_labels']) + ')':<16}{cells}")
    lines.append("steps used (mean over seeds; the best step chosen on validation, in brackets):")
    for fraction, entry in fractions.items():
        trained = {n: entry[n]["runs"] for n in names if "steps_run" in entry[n]["runs"][0]}
        used = ", ".join(f"{n} {steps_used(runs)}" for n, runs in trained.items())
        lines.append(f"  {fraction}: {used}")
    return "\n".join(lines)


def steps_used(runs: list[dict]) -> str:
    """Mean steps run and best step, and how many runs the cap (not validation) ended."""
    ran, best = np.mean([r["steps_run"] for r in runs]), np.mean([r["best_step"] for r in runs])
    capped = sum(r["stopped"] == "cap" for r in runs)
    return f"{ran:.0f} ({best:.0f})" + (f", {capped} of {len(runs)} ended by the cap" if capped else "")
