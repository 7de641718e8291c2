"""Fine-tuning, the per-layer probe, the baselines and `anymae bench` on tiny inputs; and that no choice
reads the test labels."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from anymae import bench as bench_module
from anymae.baselines import baseline_names, boosted_trees, fingerprints, kmer_features
from anymae.bench import Bench, BenchPlan, markdown, run_bench
from anymae.cli import main
from anymae.config import (
    Config,
    DataConfig,
    FinetuneConfig,
    ModelConfig,
    ProbeConfig,
    apply_overrides,
    load_config,
    validate,
)
from anymae.data import Dataset, load_dataset
from anymae.data.dataset import random_splits
from anymae.errors import UserError
from anymae.evaluate import embed_layers, pooled_layers, probe_report
from anymae.finetune import (
    encoder_task,
    finetune_encoder,
    finetune_report,
    format_finetune,
    label_subset,
    selection_splits,
)
from anymae.fitting import MIN_STEPS_BETWEEN_VALIDATIONS, EncoderHead, budget, param_groups, schedule
from anymae.masking import UniformRatio, parse_ratio
from anymae.metrics import METRICS
from anymae.model import MaskedAutoencoder
from anymae.tokens import ByteSequence, FeatureTokens, ImagePatches, ValueSet, protein_spec, smiles_spec

TINY_MODEL = ModelConfig(dim=16, depth=3, heads=2, decoder_dim=16, decoder_depth=1, decoder_heads=2)
TINY_FT = FinetuneConfig(labels=(0.2, 1.0), seeds=2, max_steps=8, batch_size=16, evals=4, patience=2)
TINY = ["model.dim=16", "model.depth=2", "model.heads=2", "model.decoder_dim=16", "model.decoder_depth=1"]


def images(n: int = 160, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """8x8 images whose class (0..2) sets which quarter is bright, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.uniform(0, 0.5, (n, 8, 8)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, (c // 2) * 4 : (c // 2) * 4 + 4, (c % 2) * 4 : (c % 2) * 4 + 4] += 0.5
    return x, y


def image_dataset(shuffle_test: bool = False) -> Dataset:
    x, y = images()
    spec = ImagePatches(height=8, width=8, patch=2)
    splits = random_splits(len(y), seed=0, val=0.25, test=0.25)
    if shuffle_test:
        y = y.copy()
        test = splits["test"]
        y[test] = np.random.default_rng(5).permutation(y[test])
    return Dataset("toy", spec, spec.tokenize(x), y, splits)


def tiny_encoder(dataset: Dataset, seed: int = 3) -> MaskedAutoencoder:
    torch.manual_seed(seed)
    return MaskedAutoencoder(dataset.spec, TINY_MODEL).eval()


def test_label_subsets_are_stratified_per_seed_and_within_train():
    train = np.arange(100, 1100)
    labels = np.zeros(1200, dtype=np.int64)
    labels[100:1100] = np.arange(1000) % 4  # 250 of each class in train
    labels[1050:1100] = 3  # class 3: 300, class 2: 225 (+ shift)
    a = label_subset(train, labels, 0.1, seed=0, classify=True)
    counts = {c: int((labels[train] == c).sum()) for c in range(4)}
    assert {c: int((labels[a] == c).sum()) for c in range(4)} == {c: round(0.1 * n) for c, n in counts.items()}
    assert set(a) <= set(train) and len(set(a)) == len(a)
    assert np.array_equal(a, label_subset(train, labels, 0.1, seed=0, classify=True))
    assert not np.array_equal(a, label_subset(train, labels, 0.1, seed=1, classify=True))
    assert np.array_equal(label_subset(train, labels, 1.0, seed=0, classify=True), train)
    tiny = label_subset(train, labels, 0.0001, seed=0, classify=True)
    assert sorted(labels[tiny]) == [0, 1, 2, 3]  # at least one of each class


def test_regression_subsets_cover_every_decile():
    train = np.arange(1000)
    y = np.random.default_rng(0).normal(size=1000)
    subset = label_subset(train, y, 0.02, seed=0, classify=False)
    deciles = np.searchsorted(np.quantile(y, np.linspace(0, 1, 11)[1:-1]), y[subset], side="right")
    assert len(subset) == 20 and sorted(set(deciles)) == list(range(10))


def test_layer_wise_lr_decay_scales_each_layer():
    dataset = image_dataset()
    net = EncoderHead(tiny_encoder(dataset), 3)
    groups = param_groups(net, depth=3, layer_decay=0.5, weight_decay=0.05)
    scale = {id(p): g["scale"] for g in groups for p in g["params"]}
    assert scale[id(net.head.weight)] == 1.0 and scale[id(net.encoder.norm.weight)] == 1.0
    assert scale[id(net.encoder.blocks[1].mlp[0].weight)] == 0.5  # the last block: layer 3 of 3
    assert scale[id(net.encoder.blocks[0].mlp[0].weight)] == 0.25
    assert scale[id(net.encoder.guide.block.mlp[0].weight)] == 0.125
    assert scale[id(net.encoder.embed.weight)] == 0.0625
    trained = {id(p) for g in groups for p in g["params"]}
    assert all(id(p) not in trained for p in net.encoder.decoder.parameters())  # decoder is not fine-tuned
    assert all(g["weight_decay"] == 0.0 for g in groups for p in g["params"] if p.ndim == 1)


def test_pooled_layers_end_in_the_encoders_own_features(mode):
    dataset = image_dataset()
    torch.manual_seed(0)
    model = MaskedAutoencoder(dataset.spec, dataclasses.replace(TINY_MODEL, mode=mode, latents=4)).eval()
    batch = dataset.tokens.batch(np.arange(10), False)
    with torch.no_grad():
        layers = pooled_layers(model, batch)
    assert len(layers) == 3 and all(t.shape == (10, 16) for t in layers)
    torch.testing.assert_close(layers[-1], model.features(batch))


def test_finetune_report_holds_pretrained_scratch_and_baselines_per_fraction():
    dataset = image_dataset()
    report = finetune_report(tiny_encoder(dataset), dataset, TINY_FT)
    assert list(report["fractions"]) == ["0.2", "1"]
    entry = report["fractions"]["0.2"]
    assert entry["n_labels"] == len(label_subset(dataset.splits["train"], dataset.labels, 0.2, 0, True))
    for name in ("pretrained", "scratch", "raw linear", "cnn"):
        assert len(entry[name]["values"]) == 2 and 0 <= entry[name]["mean"] <= 1
        assert entry[name]["mean"] == pytest.approx(np.mean(entry[name]["values"]))
    runs = entry["pretrained"]["runs"]
    assert all(0 <= r["best_step"] <= r["steps_run"] <= TINY_FT.max_steps for r in runs)
    assert report["fractions"]["1"]["raw linear"]["mean"] > 0.6  # the toy task is learnable


def choices(report: dict) -> dict:
    picked = {}
    for fraction, entry in report["fractions"].items():
        for name, result in entry.items():
            if name != "n_labels":
                picked[(fraction, name)] = [
                    (r["val"], r.get("best_step"), r.get("lr"), r.get("choice")) for r in result["runs"]
                ]
    return picked


def test_no_choice_reads_the_test_labels():
    """Shuffled test labels: the same layer, C, early-stopping step, learning rate and baseline settings."""
    clean, shuffled = image_dataset(), image_dataset(shuffle_test=True)
    config = dataclasses.replace(TINY_FT, lr=(3e-3, 1e-2), labels=(0.5,), seeds=1)
    a = finetune_report(tiny_encoder(clean), clean, config)
    b = finetune_report(tiny_encoder(shuffled), shuffled, config)
    assert choices(a) == choices(b)
    test_scores = [
        [entry[n]["values"] for n in entry if n != "n_labels"] for r in (a, b) for entry in r["fractions"].values()
    ]
    assert test_scores[0] != test_scores[1]  # the test labels did change
    probe = ProbeConfig(knn_k=5)
    pa, pb = probe_report(tiny_encoder(clean), clean, probe), probe_report(tiny_encoder(shuffled), shuffled, probe)
    for name in ("pretrained", "untrained", "raw"):
        assert pa[name]["linear"]["C"] == pb[name]["linear"]["C"]
        assert pa[name]["linear"]["val"] == pb[name]["linear"]["val"]
        assert pa[name]["linear"].get("layer") == pb[name]["linear"].get("layer")
    assert pa["pretrained"]["layers_val"] == pb["pretrained"]["layers_val"]


def test_probe_tries_every_layer_and_the_last_two():
    dataset = image_dataset()
    report = probe_report(tiny_encoder(dataset), dataset, ProbeConfig(knn_k=5))
    assert list(report["pretrained"]["layers_val"]) == ["layer 1", "layer 2", "layer 3", "layers 2+3"]
    best = max(report["pretrained"]["layers_val"].items(), key=lambda kv: kv[1])
    assert report["pretrained"]["linear"]["layer"] == best[0]
    assert len(embed_layers(tiny_encoder(dataset), dataset, np.arange(7), 3)) == 3


def test_linear_heads_are_fitted_on_one_blas_thread_and_the_setting_is_restored(monkeypatch):
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_info, threadpool_limits

    from anymae.finetune import encoder_task
    from anymae.fitting import probe_head

    def blas_threads() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    seen, fit = [], LogisticRegression.fit

    def recording_fit(self, *args, **kwargs):
        seen.append(blas_threads())
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(LogisticRegression, "fit", recording_fit)
    dataset = image_dataset()
    with threadpool_limits(2, user_api="blas"):
        probe_report(tiny_encoder(dataset), dataset, ProbeConfig(knn_k=5))
        probed = len(seen)
        probe_head(EncoderHead(tiny_encoder(dataset), 3), encoder_task(dataset, dict(dataset.splits)))
        after = blas_threads()
    assert probed > 0 and len(seen) > probed  # both the probe and the fine-tuning head fitted
    assert all(threads == {1} for threads in seen)
    assert after == {2}


def test_baselines_follow_the_modality():
    def named(spec, metric="accuracy"):
        return baseline_names(Dataset("x", spec, None, None, {}, metric=metric))

    assert named(ImagePatches(height=8, width=8, patch=2)) == ["raw linear", "cnn"]
    assert named(smiles_spec()) == ["raw linear", "ecfp4 forest"]
    assert named(smiles_spec(), "rmse") == ["raw linear", "ecfp4 ridge"]
    assert named(protein_spec()) == named(ByteSequence()) == ["raw linear", "k-mers"]
    assert named(FeatureTokens(features=("a", "b"))) == named(ValueSet()) == ["raw linear", "boosted trees"]


def test_boosted_trees_split_even_a_handful_of_labels():
    rng = np.random.default_rng(0)
    y = {split: np.arange(n) % 2 for split, n in (("train", 6), ("val", 40), ("test", 40))}
    x = {split: (labels * 2.0 + rng.normal(0, 0.1, len(labels)))[:, None] for split, labels in y.items()}
    result = boosted_trees(METRICS["accuracy"], x, y, seed=0)
    assert result["val"] == 1.0 and result["test"] == 1.0  # not the majority class (0.5)


def test_fingerprints_and_kmers():
    pytest.importorskip("rdkit")
    spec = smiles_spec(max_tokens=8)
    smiles = ["CCO", "c1ccccc1", "C(C(C(C(C"]  # the last is no molecule: zero bits, kept
    dataset = Dataset("m", spec, spec.tokenize(smiles), np.zeros(3), {})
    bits = fingerprints(dataset, np.arange(3))
    assert bits.shape == (3, 2048) and bits[0].sum() > 0 and bits[1].sum() > 0 and bits[2].sum() == 0
    text = ByteSequence(max_tokens=8)
    docs = Dataset("t", text, text.tokenize(["abab", "abba", "ba"]), np.zeros(3), {})
    features = kmer_features(docs, {"train": np.array([0, 1]), "val": np.array([2])})
    assert features["train"].shape[0] == 2 and features["val"].shape == (1, features["train"].shape[1])
    assert features["train"].shape[1] == 4  # a, b, ab, ba: the k-mers seen in both training texts (min_df=2)


def test_uniform_alone_takes_the_modality_range():
    assert parse_ratio("uniform", spec=ImagePatches(height=8, width=8, patch=2)) == UniformRatio(0.6, 0.9)
    assert parse_ratio("uniform", spec=ByteSequence()) == UniformRatio(0.05, 0.45)
    assert parse_ratio("uniform", spec=FeatureTokens(features=("a",))) == UniformRatio(0.1, 0.5)


def test_finetune_settings_are_a_section_of_the_config(tmp_path):
    config = apply_overrides(Config(), ["finetune.lr=[1e-3,3e-4]", "finetune.epochs=5", "finetune.labels=0.5"])
    assert (config.finetune.lr, config.finetune.epochs, config.finetune.labels) == ((1e-3, 3e-4), 5, (0.5,))
    recipe = tmp_path / "r.yaml"
    recipe.write_text("finetune:\n  lr: [1e-3, 3e-4]\n  head_init: random\n")
    assert load_config(recipe, []).finetune == FinetuneConfig(lr=(1e-3, 3e-4), head_init="random")
    with pytest.raises(UserError, match="unknown setting 'finetune.bogus'"):
        apply_overrides(Config(), ["finetune.bogus=1"])
    with pytest.raises(UserError, match="finetune.head_init must be one of probe, random, got 'linear'"):
        apply_overrides(Config(), ["finetune.head_init=linear"])
    with pytest.raises(UserError, match="finetune.lr must be a number or a list of numbers, got '1e-3,x'"):
        apply_overrides(Config(), ["finetune.lr=1e-3,x"])
    for bad, message in (
        ("finetune.labels=[0.5,2]", "finetune.labels must be fractions in (0, 1]"),
        ("finetune.lr=[]", "finetune.lr must be learning rates > 0"),
        ("finetune.layer_decay=0", "finetune.layer_decay must be in (0, 1]"),
    ):
        with pytest.raises(UserError, match=re.escape(message)):
            validate(apply_overrides(Config(), [bad]))


def test_ties_are_marked_within_the_spread():
    rows = [
        {"dataset": "d", "metric": "accuracy", "strategy": s, "seed": i, "steps": 10, "seconds": 1,
         "samples_per_s": 1, "probe": v, "knn": v}
        for s, values in (("a", (0.80, 0.82)), ("b", (0.80, 0.81)), ("c", (0.50, 0.51)))
        for i, v in enumerate(values)
    ]  # fmt: skip
    table = markdown(rows)
    line = {row.split("|")[1].strip(): row for row in table.splitlines() if row.startswith("| ")}
    assert "**0.8100 ± 0.0100**" in line["a"] and "**0.8050 ± 0.0050**" in line["b"]
    assert "**" not in line["c"]


def test_verdicts_say_beats_ties_or_loses_against_scratch_baselines_and_random():
    def rows(strategy, steps, values):
        return [
            {"dataset": "d", "metric": "rmse", "strategy": strategy, "seed": i, "steps": steps, "seconds": 1,
             "samples_per_s": 1, "ft_0.1": v}
            for i, v in enumerate(values)
        ]  # fmt: skip

    table = markdown(
        rows("random", 10, (0.6, 0.8))  # 0.7 ± 0.1
        + rows("sma", 10, (0.5, 0.6))  # best (lower is better): 0.55 ± 0.05
        + rows("scratch", 0, (0.55, 0.7))  # 0.625 ± 0.075: within the spread of random
        + rows("ecfp4 ridge", 0, (0.3, 0.3))  # better than every strategy
    )
    assert (
        "- 10% of the labels: random (0.7000) ties scratch and loses to ecfp4 ridge (0.3000); "
        "best strategy sma (0.5500); sma beats random." in table.splitlines()
    )


@pytest.fixture()
def image_file(tmp_path):
    path = tmp_path / "toy.npz"
    x, y = images(120)
    np.savez(path, x=(x * 255).clip(0, 255).astype(np.uint8), y=y)
    return path


def test_bench_writes_results_and_never_reruns_a_finished_cell(image_file, tmp_path, monkeypatch):
    out = tmp_path / "bench"
    plan = BenchPlan(datasets=[str(image_file)], strategies=["random", "r2mae"], seeds=1, steps=[4], labels=[0.5])
    overrides = [*TINY, "train.batch_size=16", "probe.knn_k=5", "finetune.max_steps=6", "finetune.evals=2"]
    run_bench(plan, Config(), out, overrides)
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["strategy"] for r in rows] == ["scratch", "raw linear", "cnn", "random", "r2mae"]  # references first
    assert all(r["ft_0.5"] and r["val_0.5"] for r in rows) and rows[3]["probe_layer"].startswith("layer")
    assert rows[2]["steps_0.5"] and not rows[1]["steps_0.5"]  # the CNN's steps; the linear model has none
    assert rows[3]["config_hash"] != rows[4]["config_hash"] and rows[3]["steps"] == "4"
    assert (out / "results.md").exists() and (out / "scores.png").exists() and (out / "label_fraction.png").exists()
    table = [line.split("|")[1].strip() for line in (out / "results.md").read_text().splitlines() if line[:2] == "| "]
    assert table[1:] == ["random", "r2mae", "scratch", "raw linear", "cnn"]  # strategies before the references

    def no_pretraining(*args, **kwargs):
        raise AssertionError("a finished cell was run again")

    monkeypatch.setattr("anymae.train.pretrain", no_pretraining)
    monkeypatch.setattr(bench_module, "finetune_encoder", no_pretraining)
    run_bench(plan, Config(), out, overrides)
    assert list(csv.DictReader(open(out / "results.csv"))) == rows


def test_bench_choices_do_not_read_the_test_labels(image_file, tmp_path):
    dataset = load_dataset(DataConfig(name=str(image_file)))
    archive = np.load(image_file)
    y = archive["y"].copy()
    test = dataset.splits["test"]
    y[test] = np.random.default_rng(1).permutation(y[test])
    shuffled = tmp_path / "shuffled" / image_file.name  # same file name: the same dataset name
    shuffled.parent.mkdir()
    np.savez(shuffled, x=archive["x"], y=y)
    picked = []
    for path, out in ((image_file, tmp_path / "a"), (shuffled, tmp_path / "b")):
        plan = BenchPlan(datasets=[str(path)], strategies=["random"], seeds=1, steps=[3], labels=[0.5])
        run_bench(plan, Config(), out, [*TINY, "train.batch_size=16", "probe.knn_k=5", "finetune.max_steps=4"])
        rows = list(csv.DictReader(open(out / "results.csv")))
        picked.append([(r["strategy"], r["probe_layer"], r["probe_C"]) for r in rows])
    assert picked[0] == picked[1] and all(c for s, _, c in picked[0] if s in ("random", "scratch"))


def test_cli_finetune_writes_its_report(image_file, tmp_path):
    run, recipe = tmp_path / "run", tmp_path / "recipe.yaml"
    recipe.write_text("finetune:\n  max_steps: 4\n  evals: 3\n")  # the run's recipe carries its fine-tuning
    argv = ["pretrain", "--data", str(image_file), "--steps", "3", "--config", str(recipe), "--out", str(run)]
    assert main([*argv, *TINY]) == 0
    argv = ["finetune", "--checkpoint", str(run), "--labels", "0.5", "--seeds", "1", "--save-weights"]
    assert main([*argv, "finetune.evals=2", "--no-baselines"]) == 0
    report = json.loads((run / "finetune.json").read_text())
    assert (report["recipe"]["max_steps"], report["recipe"]["evals"]) == (4, 2)  # the recipe's, then the override
    assert set(report["fractions"]["0.5"]) == {"n_labels", "pretrained", "scratch"}
    assert main(["finetune", "--checkpoint", str(run), "model.dim=8"]) == 2  # the run's model is fixed
    assert (run / "finetuned" / "pretrained-0.5-seed0.safetensors").exists()
    assert main(["finetune", "--checkpoint", str(run), "--labels", "2"]) == 2
    assert main(["bench", "--data", "digits", "--steps", "ten", "--out", str(tmp_path / "b")]) == 2
    assert main(["bench", "--data", "digits", "--strategies", "bogus", "--out", str(tmp_path / "b")]) == 2


def test_new_commands_have_help():
    for argv in (["finetune", "--help"], ["bench", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0


@pytest.mark.parametrize("classes", [2, 3])
def test_the_head_starts_as_the_best_probe_on_validation(classes):
    from sklearn.linear_model import LogisticRegression

    from anymae.evaluate import REGULARISATION, pool
    from anymae.finetune import encoder_task
    from anymae.fitting import outputs_of, probe_head

    dataset = image_dataset()
    dataset.labels = dataset.labels % classes
    task = encoder_task(
        dataset, {"train": dataset.splits["train"], "val": dataset.splits["val"], "test": dataset.splits["test"]}
    )
    net = EncoderHead(tiny_encoder(dataset), classes)
    probe_head(net, task)
    with torch.no_grad():
        z = {s: net.norm(pool(net.encoder.encode(task.inputs(i)).memory, None)).numpy() for s, i in task.splits.items()}
    y = {s: dataset.labels[i] for s, i in task.splits.items()}
    fits = [LogisticRegression(C=c, max_iter=300).fit(z["train"], y["train"]) for c in REGULARISATION]
    best = max(fits, key=lambda m: m.score(z["val"], y["val"]))  # the first of equal scores, as probe_head
    head_predictions = outputs_of(net, task, task.splits["test"]).argmax(1)
    assert np.array_equal(head_predictions, best.predict(z["test"]))


def test_bench_pretrains_on_one_dataset_and_evaluates_on_another(image_file, tmp_path):
    corpus = tmp_path / "corpus.npz"
    x, _ = images(60, seed=7)
    np.savez(corpus, x=(x * 255).astype(np.uint8))  # unlabelled
    name = f"{corpus}:{image_file}"
    plan = BenchPlan(datasets=[name], strategies=["random"], seeds=1, steps=[2], labels=[0.5])
    run_bench(plan, Config(), tmp_path / "b", [*TINY, "train.batch_size=16", "probe.knn_k=5", "finetune.max_steps=2"])
    rows = list(csv.DictReader(open(tmp_path / "b" / "results.csv")))
    assert {r["dataset"] for r in rows} == {name} and rows[-1]["strategy"] == "random"
    (config,) = (tmp_path / "b" / "runs").rglob("config.yaml")
    assert str(corpus) in config.read_text()


def test_regression_is_fine_tuned_and_scored_by_rmse():
    dataset = image_dataset()
    x = dataset.tokens.inputs
    dataset.labels = x.reshape(len(x), -1).mean(1).astype(np.float64) * 10  # brightness
    dataset.task, dataset.metric = "regression", "rmse"
    config = dataclasses.replace(TINY_FT, labels=(0.5,), seeds=1)
    entry = finetune_report(tiny_encoder(dataset), dataset, config)["fractions"]["0.5"]
    spread = float(np.std(dataset.labels[dataset.splits["test"]]))
    for name in ("pretrained", "scratch", "raw linear", "cnn"):
        assert 0 <= entry[name]["mean"] < 3 * spread
    assert entry["raw linear"]["mean"] < spread  # brightness is linear in the pixels: better than the mean


@pytest.mark.parametrize(
    "section, key, other",
    [("masking", "refresh_every", 4), ("data", "id", "name"), ("finetune", "max_test", 100)],
)
def test_a_setting_added_after_the_published_bench_keeps_cell_hashes_at_its_default(
    tmp_path, monkeypatch, section, key, other
):
    bench = bench_module.Bench(BenchPlan(["digits"], ["informed"]), Config(), tmp_path, [])
    at_default = bench.digest(Config())
    original = Config.to_dict

    def before_the_setting(self):  # the config as the published bench wrote it, without the setting
        values = original(self)
        values[section].pop(key)
        return values

    monkeypatch.setattr(Config, "to_dict", before_the_setting)
    assert bench.digest(Config()) == at_default
    monkeypatch.setattr(Config, "to_dict", original)
    changed = Config()
    setattr(getattr(changed, section), key, other)
    assert bench.digest(changed) != at_default


def test_validation_and_test_are_capped_by_fixed_subsamples_and_the_report_says_so(capsys):
    dataset = image_dataset()
    assert (len(dataset.splits["val"]), len(dataset.splits["test"])) == (40, 40)
    capped = dataclasses.replace(TINY_FT, labels=(1.0,), seeds=1, max_val=25, max_test=30)
    fixed = selection_splits(dataset, capped)
    assert {part: len(index) for part, index in fixed.items()} == {"val": 25, "test": 30}
    assert set(fixed["test"]) <= set(dataset.splits["test"]) and (np.diff(fixed["test"]) > 0).all()
    np.testing.assert_array_equal(selection_splits(dataset, capped)["test"], fixed["test"])  # fixed seed
    assert len(selection_splits(dataset, TINY_FT)["test"]) == 40  # under the default cap: all of it
    report = finetune_report(tiny_encoder(dataset), dataset, capped, baselines=False)
    assert report["sizes"] == {"train": 80, "val": 25, "test": 30}
    assert "(30 examples; chosen on 25 validation examples)" in format_finetune(report)
    err = capsys.readouterr().err
    assert re.search(r"fine-tuning on toy: 2 fits in [0-9.]+ s \(", err), err  # pretrained and scratch


@pytest.mark.parametrize("command", ["finetune", "bench"])
def test_every_finetune_setting_is_in_the_help(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(f"finetune.{f.name}=" in text for f in dataclasses.fields(FinetuneConfig))


def test_bench_arms_are_the_selectors_two_variants_of_random_and_sma_with_its_remedies():
    from anymae.masking import SELECTORS

    assert list(bench_module.STRATEGIES) == [*SELECTORS, "r2mae", "attg", "sma-remedies"]
    assert all(bench_module.STRATEGIES[name] == {"masking.strategy": name} for name in SELECTORS)
    assert bench_module.STRATEGIES["r2mae"] == {"masking.strategy": "random", "masking.ratio": "uniform"}
    cell = bench_module.Bench(BenchPlan(["x"], ["sma-remedies"]), Config(), Path("/tmp/unused"), [])
    config = cell.cell_config(Config(), "sma-remedies", 10, 0).masking
    assert (config.strategy, config.guide_scores, config.position_debias) == ("sma", "content", True)


def test_a_compute_axis_gets_its_plot_and_every_model_its_steps_used(tmp_path):
    rows = []
    for seed in range(2):
        rows.append(
            {
                "dataset": "d",
                "metric": "accuracy",
                "strategy": "scratch",
                "seed": seed,
                "steps": 0,
                "seconds": 0,
                "samples_per_s": 0,
                "ft_0.1": 0.5 + seed / 10,
                "steps_0.1": "40 (20, validation)",
            }
        )
        for steps, seconds in ((100, 5.0), (300, 15.0)):
            rows.append(
                {
                    "dataset": "d",
                    "metric": "accuracy",
                    "strategy": "random",
                    "seed": seed,
                    "steps": steps,
                    "seconds": seconds,
                    "samples_per_s": 1,
                    "probe": 0.6,
                    "knn": 0.5,
                    "ft_0.1": 0.7,
                    "steps_0.1": f"{60 + 40 * seed} (40, {'cap' if seed else 'validation'})",
                }
            )
    one_seed = {**rows[-1], "strategy": "sma", "seed": 0, "ft_0.1": 0.9, "steps_0.1": "40 (20, validation)"}
    rows.append(one_seed)  # far above everything, but with no spread to judge the difference by
    assert "compute.png" in [p.name for p in bench_module.plots(rows, tmp_path)]
    table = markdown(rows)
    assert (
        "  - sma: never beats scratch (ran 300 steps; one seed, not judged, at 300); "
        "against random: +0.2000 (one seed) at 300." in table
    ), table
    assert (
        "- Fine-tuning steps used at 0.1 of the labels: random 100 80, random 300 80, sma 300 40, scratch 40; "
        "2 of 7 runs ended by the cap." in table
    )
    assert "  - random: beats scratch from 100 steps (ran 100, 300 steps)." in table  # 0.70 ± 0 vs 0.55 ± 0.05


def test_the_budget_is_by_epochs_validated_every_epoch_or_every_20_steps():
    epochs = FinetuneConfig(epochs=100, max_steps=100000, batch_size=32, evals=0)
    assert budget(3200, epochs) == (32, 100 * 100, 100, 100 * 100)  # 100 steps an epoch: validated after each
    # 2 steps an epoch: validated every 20; the cap is 100 passes of validation, not 100 epochs (5 passes,
    # too few for patience to end a run); the warm-up is still laid out over 100 epochs
    assert budget(64, epochs) == (32, 100 * MIN_STEPS_BETWEEN_VALIDATIONS, MIN_STEPS_BETWEEN_VALIDATIONS, 200)
    assert budget(10, epochs) == (10, 2000, 20, 100)  # the batch is never larger than the subset
    assert budget(3200, dataclasses.replace(epochs, max_steps=500)) == (32, 500, 100, 500)  # the guard caps it
    assert budget(64, dataclasses.replace(epochs, max_steps=500)) == (32, 500, 20, 200)
    # evals > 0: that many passes spread over the cap (the published bench's fixed budget)
    assert budget(3200, FinetuneConfig(epochs=30, max_steps=100, evals=5)) == (32, 100, 20, 100)
    assert budget(64, FinetuneConfig(epochs=30, max_steps=100, evals=5)) == (32, 60, 12, 60)


def fit_run(lr: float, **budget_settings) -> dict:
    dataset = image_dataset()
    train = label_subset(dataset.splits["train"], dataset.labels, 1.0, 0, True)
    task = encoder_task(dataset, {"train": train, "val": dataset.splits["val"], "test": dataset.splits["test"]})
    config = FinetuneConfig(batch_size=16, lr=(lr,), **budget_settings)
    result, _ = finetune_encoder(tiny_encoder(dataset), dataset, TINY_MODEL, task, config, seed=0)
    return result


def test_validation_ends_a_run_that_stops_improving_and_the_cap_one_that_does_not():
    # an lr too small to change any prediction: no validation pass is better than step 0's
    frozen = fit_run(1e-12, epochs=1000, patience=3)
    assert frozen["stopped"] == "validation"
    assert frozen["steps_run"] == 3 * MIN_STEPS_BETWEEN_VALIDATIONS and frozen["best_step"] == 0
    # patience longer than the cap: the cap ends it, after `epochs` validation passes (an epoch is 80 / 16 =
    # 5 steps, so validation waits 20 steps)
    capped = fit_run(1e-3, epochs=4, patience=1000)
    assert capped["stopped"] == "cap" and capped["steps_run"] == 4 * MIN_STEPS_BETWEEN_VALIDATIONS


def test_two_bench_processes_share_a_folder_without_losing_rows(tmp_path):
    first, second = (Bench(BenchPlan(["d"], ["random"]), Config(), tmp_path, []) for _ in range(2))
    row = {"dataset": "d", "metric": "accuracy", "strategy": "random", "config_hash": "h", "steps": 1, "seconds": 1.0}
    row |= {"samples_per_s": 1.0, "probe": 0.5, "knn": 0.5, "ft_0.1": 0.6}
    first.record({**row, "seed": 0})
    second.record({**row, "seed": 1})  # it started before the first row was written
    first.record({**row, "seed": 2})
    assert [r["seed"] for r in csv.DictReader(open(tmp_path / "results.csv"))] == ["0", "1", "2"]
    assert first.finished("d", "random", 1, "h") and not second.finished("d", "random", 2, "h")


def test_pretraining_cost_counts_cpu_seconds_of_every_resumed_part(tmp_path):
    lines = [{"step": 10, "samples_per_s": 100.0, "cpu_s": 1.5}, {"step": 30, "samples_per_s": 200.0, "cpu_s": 2.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    seconds, rate, cpu = bench_module.pretraining_cost(tmp_path, batch_size=10)
    assert (seconds, rate, cpu) == (2.0, 150.0, 3.5)  # 100 samples at 100/s, then 200 at 200/s


def test_the_lr_warms_up_then_halves_per_pass_without_progress_or_follows_the_cosine_of_a_fixed_budget():
    warm = [schedule(step, 1000, 0.02, halvings=0) for step in range(20)]
    assert warm == [pytest.approx((s + 1) / 20) for s in range(20)]  # the first 2% of the cap
    assert [schedule(500, 1000, 0.02, halvings=h) for h in range(4)] == [1.0, 0.5, 0.25, 0.125]
    assert schedule(20, 1000, 0.02) == 1.0 and schedule(999, 1000, 0.02) == pytest.approx(0.0, abs=1e-4)
