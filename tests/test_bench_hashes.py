"""The published bench keeps its cells: every config hash that benchmarks/bench_all.sh would give a cell
is the one in benchmarks/results/bench/results.csv, so a refactor that changes a hash (and so reruns the
cell) fails here. Reads the script's own lines; no data is loaded and nothing is trained."""

from __future__ import annotations

import copy
import csv
import shlex
from pathlib import Path

from anymae.bench import REFERENCE, Bench, BenchPlan
from anymae.cli import build_parser
from anymae.config import load_config

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_all.sh"
RESULTS = ROOT / "benchmarks" / "results" / "bench" / "results.csv"


def bench_calls(function: str = "bench") -> list[list[str]]:
    """Each `FUNCTION ...` line of the script (bench: the published bench; bench_new: the R²MAE domains)
    as the argument list `anymae bench` gets."""
    lines = SCRIPT.read_text().splitlines()
    variables = {}
    for line in lines:
        if line.startswith("strategies="):
            value = line.partition("=")[2]
            if value.startswith("${") and ":-" in value:  # ${STRATEGIES:-a,b}: the default
                value = value.partition(":-")[2].removesuffix("}")
            variables["$strategies"] = value
        if line.startswith("fixed_budget="):
            variables["$fixed_budget"] = shlex.split(line.partition("=")[2])[0]
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{function}() {{")) + 1
    shared = " ".join(lines[start : start + 2]).replace("\\", " ")
    shared = shlex.split(shared.replace("$fixed_budget", variables["$fixed_budget"]))
    split = shared.index("$@")  # the line's own arguments go there, as in the shell
    before = [w for w in shared[shared.index("bench") + 1 : split] if w != "$out"]
    before = [w for w in before if w not in ("--out", "$new_out")]
    calls = []
    for line in lines:
        if line.startswith(f"{function} --data"):
            for name, value in variables.items():
                line = line.replace(name, value)
            calls.append(["bench", *before, *shlex.split(line)[1:], *shared[split + 1 :]])
    return calls


def published(results: Path = RESULTS) -> dict[tuple[str, str], set[str]]:
    hashes: dict[tuple[str, str], set[str]] = {}
    with open(results, newline="") as f:
        for row in csv.DictReader(f):
            hashes.setdefault((row["dataset"], row["strategy"]), set()).add(row["config_hash"])
    return hashes


def expected_hashes(tmp_path: Path, function: str = "bench") -> dict[tuple[str, str], str]:
    """(dataset, strategy or 'scratch') -> the hash bench gives it, for every line of the script."""
    found = {}
    for argv in bench_calls(function):
        args = build_parser().parse_args([*argv, "--out", str(tmp_path / "bench")])
        strategies = [s for s in args.strategies.split(",") if s]
        labels = [float(f) for f in args.labels.split(",")]
        plan = BenchPlan(args.data.split(","), strategies, seeds=args.seeds, labels=labels)
        bench = Bench(plan, load_config(ROOT / args.config, []), tmp_path / "bench", args.overrides)
        for name in plan.datasets:
            config = copy.deepcopy(bench.base)
            config.data.name = name.partition(":")[0]  # as Bench.run: the pretraining corpus
            found[(name, REFERENCE)] = bench.digest(config, "reference")
            for strategy in strategies:
                found[(name, strategy)] = bench.digest(bench.cell_config(config, strategy, bench.steps[0], 0))
    return found


def test_the_published_bench_cells_keep_their_hashes(tmp_path):
    expected = expected_hashes(tmp_path)
    assert len(expected) == 9 * 7 + 1  # nine datasets, six strategies and scratch; block on fashion-mnist
    table = published()
    assert {dataset for dataset, _ in table} == {dataset for dataset, _ in expected}
    for (dataset, strategy), digests in table.items():  # baselines share scratch's hash
        assert digests == {expected.get((dataset, strategy), expected[(dataset, REFERENCE)])}, (dataset, strategy)


def test_the_new_domains_cells_keep_their_hashes(tmp_path):
    expected = expected_hashes(tmp_path, "bench_new")
    assert len(expected) == 2 * 4  # dm3 and PBMC: random, r2mae, sma and scratch
    table = published(RESULTS.parents[1] / "bench-new-domains" / "results.csv")
    assert {dataset for dataset, _ in table} <= {dataset for dataset, _ in expected}
    for (dataset, strategy), digests in table.items():
        assert digests == {expected.get((dataset, strategy), expected[(dataset, REFERENCE)])}, (dataset, strategy)
