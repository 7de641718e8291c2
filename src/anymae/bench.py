"""`anymae bench`: masking strategies compared at equal compute, on one's own data.

Every cell (dataset, strategy, steps, seed) pretrains with the same steps, batch and model size,
then probes the frozen encoder and fine-tunes it at each label fraction. The same architecture
from random init (`scratch`) and the modality's baselines run once per dataset and seed, on the
same label subsets (seed s draws the same subset everywhere). Finished cells are rows of
OUT/results.csv and are never rerun; an interrupted pretraining continues from its checkpoint.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import fcntl
import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from anymae.baselines import baseline_names, run_baseline
from anymae.checkpoint import FILENAME
from anymae.config import NOT_LEARNED, Config, apply_overrides, set_value, validate
from anymae.data import Dataset, load_dataset
from anymae.errors import UserError
from anymae.evaluate import embed_layers, evaluate_layers, probe_splits
from anymae.finetune import encoder_task, finetune_encoder, label_subset, selection_splits
from anymae.masking import SELECTORS
from anymae.metrics import METRICS, metric_named
from anymae.model import MaskedAutoencoder
from anymae.train import load_model, pretrain

# Arms that are not a selector of their own: random masks with R²MAE's ratios, or with AttG's loss weights;
# SMA with both remedies for its position bias (docs/methods.md).
VARIANTS = {
    "r2mae": {"masking.ratio": "uniform"},
    "attg": {"masking.loss_weighting": "attention-guided"},
    "sma-remedies": {"masking.strategy": "sma", "masking.guide_scores": "content", "masking.position_debias": "true"},
}
# What each arm sets (every selector is one; everything else is the shared config).
STRATEGIES: dict[str, dict[str, str]] = {name: {"masking.strategy": name} for name in SELECTORS} | {
    name: {"masking.strategy": "random", **settings} for name, settings in VARIANTS.items()
}
REFERENCE = "scratch"  # the encoder from random init; baselines follow it in the table
# --quick: a smoke run of a few minutes on 2 cores.
QUICK = [
    "model.dim=32",
    "model.depth=2",
    "model.decoder_depth=1",
    "train.batch_size=64",
    "train.log_every=10",
    "probe.max_train=1000",
    "finetune.labels=[0.01]",
    "finetune.seeds=1",
    "finetune.max_steps=30",
    "finetune.evals=3",
    "finetune.max_val=300",
]
FIXED_COLUMNS = ["dataset", "metric", "strategy", "seed", "config_hash", "steps", "seconds", "samples_per_s"]
SCORES = ["probe", "probe_layer", "probe_C", "knn"]


@dataclass
class BenchPlan:
    datasets: list[str]
    strategies: list[str]
    seeds: int = 3
    steps: list[int] = dataclasses.field(default_factory=list)  # empty: the config's train.steps
    labels: list[float] = dataclasses.field(default_factory=list)  # empty: finetune defaults
    quick: bool = False


# Settings added after the published bench, left out of a cell's hash while at these defaults, so
# that the finished cells of benchmarks/results/bench keep their hashes (and are not rerun).
NEWER_DEFAULTS = {
    ("masking", "refresh_every"): 1,
    ("data", "kmer"): 1,
    ("data", "layer"): "",
    ("data", "normalise"): "none",
    ("probe", "max_eval"): 50000,
    ("data", "column"): "",
    ("data", "id"): "",
    ("finetune", "max_test"): 50000,
}
# Settings that do not change what is learned (config.NOT_LEARNED) but that the published bench hashed, at
# these defaults: hashed at them whatever they are set to, for the same reason.
HASHED_AT_DEFAULT = {("train", "dist_timeout"): 600.0, ("train", "compile"): False, ("finetune", "threads"): 0}


def config_hash(values: dict) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:10]


def fraction_column(fraction: float) -> str:
    return f"ft_{fraction:g}"


def fit_columns(fraction: float, result: dict) -> dict:
    """The test score at a label fraction, the validation score (what a recipe is chosen on) and, for a
    trained model, the steps it ran and its best step."""
    columns = {fraction_column(fraction): result["test"], f"val_{fraction:g}": result["val"]}
    if "steps_run" in result:
        columns[f"steps_{fraction:g}"] = f"{result['steps_run']} ({result['best_step']}, {result['stopped']})"
    return columns


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: Path, rows: list[dict]) -> None:
    """The whole CSV, atomically; columns are the union over rows (label fractions may differ)."""
    columns = FIXED_COLUMNS + SCORES
    for row in rows:
        columns += [key for key in row if key not in columns]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def pretraining_cost(run_dir: Path, batch_size: int) -> tuple[float, float, float]:
    """(seconds, samples/s, CPU-seconds) of the optimizer steps, summed from metrics.jsonl (resumed parts
    included). CPU-seconds count the process's own time, so they hold when other jobs share the cores;
    NaN for a run logged before they were recorded."""
    seconds, cpu, previous, samples = 0.0, 0.0, 0, 0
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        steps = record["step"] - previous
        previous = record["step"]
        samples += steps * batch_size
        seconds += steps * batch_size / max(record["samples_per_s"], 1e-9)
        cpu += record.get("cpu_s", math.nan)
    return seconds, samples / max(seconds, 1e-9), cpu


class Bench:
    def __init__(self, plan: BenchPlan, base: Config, out: Path, overrides: list[str]) -> None:
        unknown = [s for s in plan.strategies if s not in STRATEGIES]
        if unknown:
            raise UserError(f"--strategies: unknown {', '.join(unknown)} (known: {', '.join(STRATEGIES)})")
        if plan.seeds < 1:
            raise UserError("--seeds must be at least 1")
        self.plan, self.out = plan, Path(out)
        self.base = apply_overrides(copy.deepcopy(base), (QUICK if plan.quick else []) + overrides)
        if plan.labels:
            self.base.finetune.labels = tuple(plan.labels)
        validate(self.base)
        self.finetune = self.base.finetune
        self.seeds = 1 if plan.quick else plan.seeds
        self.steps = plan.steps or [30 if plan.quick else self.base.train.steps]
        self.out.mkdir(parents=True, exist_ok=True)
        self.csv = self.out / "results.csv"
        self.rows = read_rows(self.csv)
        self.done = {(r["dataset"], r["strategy"], r["seed"], r["config_hash"]) for r in self.rows}

    def record(self, row: dict) -> None:
        """Add a row to results.csv, with the rows other bench processes wrote there meanwhile (a lock
        makes the read and the write one step, so that several processes can share a folder)."""
        with open(self.out / "results.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.rows = read_rows(self.csv)
            self.rows.append({k: v if isinstance(v, str) else json.dumps(v) for k, v in row.items()})
            write_rows(self.csv, self.rows)
            write_report(self.rows, self.out)
        self.done = {(r["dataset"], r["strategy"], r["seed"], r["config_hash"]) for r in self.rows}

    def finished(self, dataset: str, strategy: str, seed: int, digest: str) -> bool:
        return (dataset, strategy, str(seed), digest) in self.done

    def run(self) -> None:
        for name in self.plan.datasets:
            corpus_name, _, task_name = name.partition(":")  # PRETRAIN:TASK, or one dataset for both
            config = copy.deepcopy(self.base)
            config.data.name = corpus_name
            corpus = load_dataset(config.data)
            dataset = load_dataset(dataclasses.replace(config.data, name=task_name)) if task_name else corpus
            dataset.name = name
            if dataset.labels is None or dataset.task == "none" or dataset.metric not in METRICS:
                raise UserError(
                    f"bench: dataset '{name}' has no labels to score (give a labelled dataset, or PRETRAIN:TASK)"
                )
            for seed in range(self.seeds):  # first, so that a part-finished run can already be compared
                self.references(config, dataset, seed)
            for steps in self.steps:
                for strategy in self.plan.strategies:
                    if SELECTORS[STRATEGIES[strategy]["masking.strategy"]].needs_grid and dataset.spec.grid is None:
                        print(f"bench: {name}: {strategy} masks need tokens on a 2-D grid; skipped", file=sys.stderr)
                        continue
                    for seed in range(self.seeds):
                        self.cell(config, corpus, dataset, strategy, steps, seed)

    def cell_config(self, config: Config, strategy: str, steps: int, seed: int) -> Config:
        cell = copy.deepcopy(config)
        for key, value in STRATEGIES[strategy].items():
            set_value(cell, key, value, source=f"bench strategy {strategy}")
        cell.train.steps, cell.train.seed = steps, seed
        return cell

    def digest(self, config: Config, *parts) -> str:
        """What a cell learns and how it is scored: the config less the seed (a column of its own) and
        the settings that do not change what is learned; the fine-tuning settings after the rest."""
        values = config.to_dict()
        values["train"].pop("seed")
        for key in NOT_LEARNED:
            section, _, name = key.partition(".")
            values[section].pop(name)
        for (section, key), default in HASHED_AT_DEFAULT.items():
            values[section][key] = default
        for (section, key), default in NEWER_DEFAULTS.items():
            if values[section].get(key, default) == default:
                values[section].pop(key, None)
        finetune = values.pop("finetune")
        if not finetune["evals"]:  # the budget by epochs: its lr halves on a plateau (cells before that differ)
            finetune["schedule"] = "halve on plateau"
        return config_hash([values, finetune, *parts])

    def cell(self, config: Config, corpus: Dataset, dataset: Dataset, strategy: str, steps: int, seed: int) -> None:
        """Pretrain on `corpus`, then probe and fine-tune on `dataset` (the same one unless PRETRAIN:TASK)."""
        cell = self.cell_config(config, strategy, steps, seed)
        digest = self.digest(cell)
        if self.finished(dataset.name, strategy, seed, digest):
            return
        run_dir = self.out / "runs" / slug(dataset.name) / f"{strategy}-{digest}" / f"seed{seed}"
        print(f"bench: {dataset.name}, {strategy}, {steps} steps, seed {seed} -> {run_dir}", file=sys.stderr)
        pretrain(cell, run_dir, resume=(run_dir / FILENAME).exists(), dataset=corpus)
        seconds, rate, cpu = pretraining_cost(run_dir, min(cell.train.batch_size, len(corpus.splits["train"])))
        model, _ = load_model(run_dir, dataset)
        row = self.row(dataset, strategy, seed, digest, steps, seconds, rate)
        row["cpu_s"] = round(cpu, 2)
        row.update(self.probe(model, dataset, cell))
        for fraction in self.finetune.labels:
            task = self.task(dataset, fraction, seed)
            result, _ = finetune_encoder(model, dataset, cell.model, task, self.finetune, seed)
            row.update(fit_columns(fraction, result))
        self.record(row)

    def references(self, config: Config, dataset: Dataset, seed: int) -> None:
        """scratch (probe: the untrained encoder) and every baseline, for one seed."""
        digest = self.digest(config, "reference")
        names = [REFERENCE, *baseline_names(dataset)]
        if all(self.finished(dataset.name, name, seed, digest) for name in names):
            return
        print(f"bench: {dataset.name}, {', '.join(names)}, seed {seed}", file=sys.stderr)
        torch.manual_seed(0)  # as evaluate.untrained_like
        untrained = MaskedAutoencoder(dataset.spec, config.model).eval()
        for name in names:
            if self.finished(dataset.name, name, seed, digest):
                continue
            row = self.row(dataset, name, seed, digest, 0, 0.0, 0.0)
            if name == REFERENCE:
                row.update(self.probe(untrained, dataset, config))
            for fraction in self.finetune.labels:
                task = self.task(dataset, fraction, seed)
                if name == REFERENCE:
                    result, _ = finetune_encoder(None, dataset, config.model, task, self.finetune, seed)
                else:
                    result = run_baseline(name, dataset, task, self.finetune, seed)
                row.update(fit_columns(fraction, result))
            self.record(row)

    def row(self, dataset: Dataset, strategy: str, seed: int, digest: str, steps: int, seconds: float, rate: float):
        return {
            "dataset": dataset.name,
            "metric": dataset.metric,
            "strategy": strategy,
            "seed": seed,
            "config_hash": digest,
            "steps": steps,
            "seconds": round(seconds, 2),
            "samples_per_s": round(rate, 1),
        }

    def task(self, dataset: Dataset, fraction: float, seed: int):
        classify = metric_named(dataset.metric, dataset.name, "bench").classifies
        train = label_subset(dataset.splits["train"], dataset.labels, fraction, seed, classify)
        return encoder_task(dataset, {"train": train, **selection_splits(dataset, self.finetune)})

    def probe(self, model, dataset: Dataset, config: Config) -> dict:
        splits = probe_splits(dataset, config.probe)
        labels = {split: dataset.labels[index] for split, index in splits.items()}
        layers = {
            split: embed_layers(model, dataset, index, config.probe.batch_size) for split, index in splits.items()
        }
        result = evaluate_layers(
            metric_named(dataset.metric, dataset.name, "bench"), layers, labels, config.probe.knn_k
        )
        return {
            "probe": result["linear"]["test"],
            "probe_layer": result["linear"]["layer"],
            "probe_C": result["linear"]["C"],
            "knn": result["knn"]["test"],
        }


def slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name).name)


def score_columns(rows: list[dict]) -> list[str]:
    columns = ["probe", "knn"]
    fractions = sorted({k for r in rows for k in r if k.startswith("ft_")}, key=lambda k: float(k[3:]))
    return columns + fractions


def values_of(rows: list[dict], column: str) -> list[float]:
    return [float(r[column]) for r in rows if r.get(column) not in (None, "")]


def mean_std(values: list[float]) -> tuple[float, float, int]:
    """Mean, std and the number of seeds (a single seed has no spread to judge a difference by)."""
    return float(np.mean(values)), float(np.std(values)), len(values)


def groups(rows: list[dict]) -> dict[str, dict[tuple[str, int], list[dict]]]:
    """dataset -> (strategy, steps) -> rows, in the order first seen; pretrained strategies before the references."""
    out: dict[str, dict[tuple[str, int], list[dict]]] = {}
    for r in rows:
        out.setdefault(r["dataset"], {}).setdefault((r["strategy"], int(r["steps"])), []).append(r)
    return {name: dict(sorted(cells.items(), key=lambda item: item[0][1] == 0)) for name, cells in out.items()}


def tied(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """A difference within the spread: |mean_a - mean_b| <= sqrt(std_a^2 + std_b^2)."""
    return abs(a[0] - b[0]) <= math.hypot(a[1], b[1])


def markdown(rows: list[dict]) -> str:
    """Mean ± std per cell; in each column the best and every cell tied with it are bold."""
    lines = [
        "Mean ± std over seeds (n). Bold: the best in its column and every cell tied with it "
        "(difference within sqrt(std_a² + std_b²)). probe: linear probe on the layer chosen on validation; "
        "ft_F: fine-tuned with fraction F of the training labels. scratch: the same encoder from random "
        "init (its probe: untrained). Every score is on the test split.",
        "",
    ]
    for dataset, cells in groups(rows).items():
        metric = next(iter(cells.values()))[0]["metric"]
        columns = score_columns([r for rs in cells.values() for r in rs])
        summary = {
            key: {c: mean_std(values_of(rs, c)) for c in columns if values_of(rs, c)} for key, rs in cells.items()
        }
        higher = METRICS[metric].higher_is_better
        best = {}
        for c in columns:
            scored = [s[c] for s in summary.values() if c in s]
            if scored:
                best[c] = max(scored, key=lambda m: m[0] if higher else -m[0])
        lines += [f"### {dataset} ({metric}, {'higher' if higher else 'lower'} is better)", ""]
        lines.append("| strategy | steps | n | s/run | samples/s | " + " | ".join(columns) + " |")
        lines.append("|---" * (5 + len(columns)) + "|")
        for (strategy, steps), rs in cells.items():
            cells_text = []
            for c in columns:
                if c not in summary[(strategy, steps)]:
                    cells_text.append("")
                    continue
                m = summary[(strategy, steps)][c]
                text = f"{m[0]:.4f} ± {m[1]:.4f}"
                cells_text.append(f"**{text}**" if tied(m, best[c]) else text)
            seconds = np.mean([float(r["seconds"]) for r in rs])
            rate = np.mean([float(r["samples_per_s"]) for r in rs])
            timing = f"{seconds:.0f} | {rate:.0f}" if steps else "- | -"
            lines.append(f"| {strategy} | {steps or '-'} | {len(rs)} | {timing} | " + " | ".join(cells_text) + " |")
        judged = compute_verdicts(summary, higher) if len(self_steps(cells)) > 1 else verdicts(summary, higher)
        lines += ["", *steps_used(cells), *judged, ""]
    return "\n".join(lines)


def steps_used(cells: dict[tuple[str, int], list[dict]]) -> list[str]:
    """Per label fraction, the fine-tuning steps each trained model ran (mean over seeds), and how many
    runs the cap ended (validation should end them all)."""
    columns = sorted({k for rs in cells.values() for r in rs for k in r if k.startswith("steps_")})
    lines = []
    for column in columns:
        used, capped, runs = [], 0, 0
        for (strategy, steps), rs in cells.items():
            ran = [r[column] for r in rs if r.get(column)]  # "steps (best step, what ended it)"
            if ran:
                used.append(f"{strategy}{f' {steps}' if steps else ''} {np.mean([int(v.split()[0]) for v in ran]):.0f}")
                capped += sum(v.endswith("cap)") for v in ran)
                runs += len(ran)
        if not runs:  # a fraction this dataset was not fine-tuned at (another dataset of the folder was)
            continue
        ended = f"; {capped} of {runs} runs ended by the cap" if capped else "; validation ended every run"
        lines.append(f"- Fine-tuning steps used at {column[6:]} of the labels: {', '.join(used)}{ended}.")
    return lines


ONE_SEED = "is not judged (one seed) against"


def compare(a: tuple[float, float, int], b: tuple[float, float, int], higher: bool) -> str:
    """'beats', 'ties' (within the spread) or 'loses to': a against b; ONE_SEED where either side has a
    single seed, whose spread of zero would call any difference a win."""
    if min(a[2], b[2]) < 2:
        return ONE_SEED
    if tied(a, b):
        return "ties"
    return "beats" if (a[0] > b[0]) == higher else "loses to"


def verdicts(summary: dict[tuple[str, int], dict[str, tuple[float, float, int]]], higher: bool) -> list[str]:
    """Per fine-tuning fraction, in words (so that a loss reads as one): random masks, the default and
    chosen by nobody, against scratch and the best baseline; then the best strategy, and sma vs random."""
    pick = max if higher else min
    lines = []
    columns = [c for c in dict.fromkeys(c for s in summary.values() for c in s) if c.startswith("ft_")]
    for column in columns:
        scored = {key: s[column] for key, s in summary.items() if column in s}
        pretrained = {key: m for key, m in scored.items() if key[1]}
        baselines = {key: m for key, m in scored.items() if not key[1] and key[0] != REFERENCE}
        scratch = next((m for key, m in scored.items() if key[0] == REFERENCE), None)
        random = next((m for key, m in pretrained.items() if key[0] == "random"), None)
        parts = []
        if random is not None:
            against = [f"{compare(random, scratch, higher)} scratch"] if scratch is not None else []
            if baselines:
                top = pick(baselines, key=lambda k: baselines[k][0])
                against.append(f"{compare(random, baselines[top], higher)} {top[0]} ({baselines[top][0]:.4f})")
            parts.append(f"random ({random[0]:.4f}) " + (" and ".join(against) or "alone"))
        if pretrained:
            best = pick(pretrained, key=lambda k: pretrained[k][0])
            parts.append(f"best strategy {best[0]} ({pretrained[best][0]:.4f})")
        sma = next((m for key, m in pretrained.items() if key[0] == "sma"), None)
        if sma is not None and random is not None:
            parts.append(f"sma {compare(sma, random, higher)} random")
        if parts:
            lines.append(f"- {float(column[3:]):.0%} of the labels: " + "; ".join(parts) + ".")
    return lines


def compute_verdicts(summary: dict[tuple[str, int], dict[str, tuple[float, float, int]]], higher: bool) -> list[str]:
    """With several pretraining budgets, per fine-tuning fraction: the smallest budget at which each
    strategy beats scratch and the best baseline beyond the spread (or that it never does), and each
    strategy's advantage over random masks (positive: better) at every budget."""
    sign = 1 if higher else -1
    lines = []
    columns = [c for c in dict.fromkeys(c for s in summary.values() for c in s) if c.startswith("ft_")]
    for column in columns:
        scored = {key: s[column] for key, s in summary.items() if column in s}
        references = {key[0]: m for key, m in scored.items() if not key[1]}
        baselines = {name: m for name, m in references.items() if name != REFERENCE}
        against = {REFERENCE: references[REFERENCE]} if REFERENCE in references else {}
        if baselines:
            best = max(baselines, key=lambda name: sign * baselines[name][0])
            against[f"the best baseline ({best}, {baselines[best][0]:.4f})"] = baselines[best]
        budgets = sorted({key[1] for key in scored if key[1]})
        lines.append(f"- {float(column[3:]):.0%} of the labels:")
        for strategy in dict.fromkeys(key[0] for key in scored if key[1]):
            ran = [b for b in budgets if (strategy, b) in scored]
            wins = [
                b for b in ran if all(compare(scored[(strategy, b)], m, higher) == "beats" for m in against.values())
            ]
            verdict = (
                f"beats {' and '.join(against)} from {wins[0]} steps"
                if wins
                else f"never beats {' and '.join(against)}"
            )
            single = [str(b) for b in ran if scored[(strategy, b)][2] < 2]
            verdict += f" (ran {', '.join(map(str, ran))} steps" + (
                f"; one seed, not judged, at {', '.join(single)})" if single else ")"
            )
            if strategy != "random":
                words = {
                    b: compare(scored[(strategy, b)], scored[("random", b)], higher)
                    for b in ran
                    if ("random", b) in scored
                }
                gaps = [
                    f"{sign * (scored[(strategy, b)][0] - scored[('random', b)][0]):+.4f} "
                    f"({'one seed' if word == ONE_SEED else word}) at {b}"
                    for b, word in words.items()
                ]
                if gaps:
                    verdict += "; against random: " + ", ".join(gaps)
            lines.append(f"  - {strategy}: {verdict}.")
    return lines


def plots(rows: list[dict], out: Path) -> list[Path]:
    """Score per strategy (error bars), score vs label fraction, and probe vs pretraining steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = groups(rows)
    written = []
    n = len(data)

    def figure():
        fig, axes = plt.subplots(1, n, figsize=(5 * n, 4), squeeze=False)
        return fig, axes[0]

    fig, axes = figure()
    for ax, (dataset, cells) in zip(axes, data.items()):
        columns = score_columns([r for rs in cells.values() for r in rs])
        keys = list(cells)
        width = 0.8 / len(columns)
        for j, c in enumerate(columns):
            stats = [mean_std(values_of(cells[k], c)) if values_of(cells[k], c) else (np.nan, 0.0) for k in keys]
            ax.bar(np.arange(len(keys)) + j * width, [s[0] for s in stats], width, yerr=[s[1] for s in stats], label=c)
        ax.set_xticks(
            np.arange(len(keys)) + 0.4 - width / 2,
            [k[0] if len(self_steps(cells)) == 1 else f"{k[0]}@{k[1]}" for k in keys],
            rotation=45,
            ha="right",
        )
        ax.set_title(f"{dataset} ({next(iter(cells.values()))[0]['metric']})")
        legend(ax, 7)
    fig.tight_layout()
    written.append(save(fig, out / "scores.png"))

    fig, axes = figure()
    for ax, (dataset, cells) in zip(axes, data.items()):
        fractions = [c for c in score_columns([r for rs in cells.values() for r in rs]) if c.startswith("ft_")]
        x = [float(c[3:]) for c in fractions]
        for (strategy, steps), rs in cells.items():
            if steps and steps != max(self_steps(cells)):
                continue
            stats = [mean_std(values_of(rs, c)) if values_of(rs, c) else (np.nan, 0.0) for c in fractions]
            ax.errorbar(x, [s[0] for s in stats], yerr=[s[1] for s in stats], marker="o", capsize=3, label=strategy)
        ax.set_xscale("log")
        ax.set_xlabel("fraction of training labels")
        ax.set_title(f"{dataset}: fine-tuned")
        legend(ax, 7)
    fig.tight_layout()
    written.append(save(fig, out / "label_fraction.png"))

    fig, axes = figure()
    for ax, (dataset, cells) in zip(axes, data.items()):
        for strategy in dict.fromkeys(k[0] for k in cells if k[1]):
            keys = sorted((k for k in cells if k[0] == strategy), key=lambda k: k[1])
            stats = [mean_std(values_of(cells[k], "probe")) for k in keys]
            ax.errorbar(
                [k[1] for k in keys],
                [s[0] for s in stats],
                yerr=[s[1] for s in stats],
                marker="o",
                capsize=3,
                label=strategy,
            )
        ax.set_xlabel("pretraining steps")
        ax.set_title(f"{dataset}: linear probe")
        legend(ax, 7)
    fig.tight_layout()
    written.append(save(fig, out / "steps.png"))
    if any(len(self_steps(cells)) > 1 for cells in data.values()):
        written.append(compute_plot(data, out / "compute.png"))
    return written


def compute_seconds(row: dict) -> float:
    """Pretraining CPU-seconds of a row; wall seconds for a row from before they were recorded."""
    cpu = float(row.get("cpu_s") or "nan")
    return float(row["seconds"]) if math.isnan(cpu) else cpu


def compute_plot(data: dict[str, dict[tuple[str, int], list[dict]]], path: Path) -> Path:
    """Per dataset (columns) and its label fractions (rows, smallest first): the fine-tuned score against
    pretraining CPU-seconds (log axis), one line per strategy with its spread; scratch and the best
    baseline as bands. A dataset with fewer fractions than the others leaves its lower panels out."""
    import matplotlib.pyplot as plt

    fractions = {
        dataset: sorted(
            {c for rs in cells.values() for r in rs for c in r if c.startswith("ft_") and r[c] not in ("", None)},
            key=lambda c: float(c[3:]),
        )
        for dataset, cells in data.items()
    }
    rows = max(len(f) for f in fractions.values())
    fig, axes = plt.subplots(rows, len(data), figsize=(4.5 * len(data), 3.5 * rows), squeeze=False)
    for col, (dataset, cells) in enumerate(data.items()):
        metric = next(iter(cells.values()))[0]["metric"]
        higher = METRICS[metric].higher_is_better
        for row in range(len(fractions[dataset]), rows):
            axes[row][col].axis("off")
        for row, column in enumerate(fractions[dataset]):
            ax = axes[row][col]
            references = {
                k[0]: mean_std(values_of(rs, column)) for k, rs in cells.items() if not k[1] and values_of(rs, column)
            }
            baselines = {name: m for name, m in references.items() if name != REFERENCE}
            bands = [(REFERENCE, references.get(REFERENCE), "grey")]
            if baselines:
                best = (max if higher else min)(baselines, key=lambda name: baselines[name][0])
                bands.append((f"best baseline ({best})", baselines[best], "tab:orange"))
            for label, stats, color in bands:
                if stats is not None:
                    ax.axhspan(stats[0] - stats[1], stats[0] + stats[1], color=color, alpha=0.25, label=label)
            for strategy in dict.fromkeys(k[0] for k in cells if k[1]):
                keys = sorted(
                    (k for k in cells if k[0] == strategy and values_of(cells[k], column)), key=lambda k: k[1]
                )
                if not keys:
                    continue
                seconds = [np.mean([compute_seconds(r) for r in cells[k]]) for k in keys]
                stats = [mean_std(values_of(cells[k], column)) for k in keys]
                ax.errorbar(
                    seconds, [s[0] for s in stats], yerr=[s[1] for s in stats], marker="o", capsize=3, label=strategy
                )
            ax.set_xscale("log")
            ax.set_xlabel("pretraining CPU-seconds")
            ax.set_ylabel(f"{metric}, fine-tuned")
            ax.set_title(f"{dataset}: {float(column[3:]):.0%} of the labels", fontsize=9)
            legend(ax, 6)
    fig.tight_layout()
    return save(fig, path)


def legend(ax, size: int) -> None:
    """A legend where the panel has labelled lines (a bench of references only has none yet)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=size)


def self_steps(cells: dict) -> list[int]:
    return sorted({k[1] for k in cells if k[1]}) or [0]


def save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_bench(plan: BenchPlan, base: Config, out: Path, overrides: list[str]) -> str:
    """Run every unfinished cell (the report is rewritten after each), then return the table."""
    bench = Bench(plan, base, out, overrides)
    bench.run()
    return write_report(bench.rows, bench.out)


def write_report(rows: list[dict], out: Path) -> str:
    """results.md and the plots from the rows so far (a part-finished bench can already be read)."""
    table = markdown(rows)
    (out / "results.md").write_text(table + "\n")
    try:
        plots(rows, out)
    except ImportError:
        print("bench: plots need matplotlib (pip install 'anymae[plot]'); wrote the CSV and table only")
    return table
