"""Quark / gluon jets from Pythia 8: the cache format and loader (fast, with a stand-in cache),
and a handful of generated jets (slow; needs pythia8mc)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from anymae.cli import main
from anymae.config import DataConfig
from anymae.data import BUILTINS, load_dataset, particles
from anymae.data.particles import jet_coordinates


def test_jet_coordinates_are_relative_to_the_jet_axis():
    jet = np.array([[300.0, 0.5, 3.1, 211], [100.0, 0.7, -3.1, 22]], dtype=np.float32)
    out = jet_coordinates(jet)
    assert np.allclose(np.exp(out[:, 0]).sum(), 1.0) and out[:, 3].tolist() == [211, 22]
    assert abs(out[0, 2]) < 0.1 and abs(out[1, 2]) < 0.2  # phi wraps around +-pi


def test_quark_gluon_loads_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ANYMAE_DATA", str(tmp_path))
    assert not BUILTINS["quark-gluon"].ready()
    assert main(["pretrain", "--data", "quark-gluon", "--out", str(tmp_path / "r")]) == 2
    rng = np.random.default_rng(0)
    counts = rng.integers(5, 40, 30)
    x = np.column_stack(
        [rng.uniform(1, 100, counts.sum()), rng.normal(0, 1, (counts.sum(), 2)), np.full(counts.sum(), 211)]
    )
    np.savez_compressed(tmp_path / "quark-gluon.npz", x=x.astype(np.float32), counts=counts, y=np.arange(30) % 2)
    dataset = load_dataset(DataConfig(name="quark-gluon"))
    assert dataset.spec.name == "set" and len(dataset) == 30 and dataset.tokens.valid.sum() == counts.sum()


@pytest.mark.slow
def test_pythia_generates_quark_and_gluon_jets_in_the_window(tmp_path, monkeypatch):
    pytest.importorskip("pythia8mc")
    monkeypatch.setenv("ANYMAE_DATA", str(tmp_path))
    assert main(["data", "prepare", "quark-gluon", "--jets", "4", "--seed", "5"]) == 0
    arrays = np.load(tmp_path / "quark-gluon.npz")
    assert arrays["y"].tolist() == [0, 0, 1, 1] and arrays["counts"].min() > 1
    sets = np.split(arrays["x"], np.cumsum(arrays["counts"])[:-1])
    for jet in sets:
        assert 450 < jet[:, 0].sum() < 600  # constituents' scalar pT sum is near the jet pT (500-550)


@pytest.mark.slow
def test_pythia_generates_higgs_like_events_with_missing_jets_as_missing_tokens(tmp_path, monkeypatch):
    pytest.importorskip("pythia8mc")
    monkeypatch.setenv("ANYMAE_DATA", str(tmp_path))
    assert main(["data", "prepare", "higgs-like", "--events", "6", "--seed", "5"]) == 0
    arrays = np.load(tmp_path / "higgs-like.npz")
    assert arrays["x"].shape == (6, 23) and arrays["y"].tolist() == [0, 0, 0, 1, 1, 1]
    assert (arrays["x"][:, 0] > 25).all() and np.isfinite(arrays["x"][:, :13]).all()  # lepton, MET, 2 jets
    dataset = load_dataset(DataConfig(name="higgs-like"))
    assert dataset.spec.max_tokens == 23
    assert np.array_equal(dataset.tokens.valid, np.isfinite(arrays["x"]))


def test_generation_goes_on_from_the_chunks_a_killed_run_left(tmp_path, monkeypatch):
    """Chunks are kept as they finish: a rerun after a crash generates only the rest, a larger run
    reuses a smaller one's chunks, and the result equals one uninterrupted run."""
    calls: list[tuple[int, int, int]] = []

    def fake(label: int, n: int, seed: int) -> list[np.ndarray]:
        calls.append((label, n, seed))
        if len(calls) == 3 and crash:
            raise KeyboardInterrupt
        return [np.full(23, seed * 100 + i, dtype=np.float32) for i in range(n)]

    monkeypatch.setattr(particles, "pythia8", lambda: None)
    monkeypatch.setitem(particles.GENERATORS, "higgs-like", (fake, *particles.GENERATORS["higgs-like"][1:]))
    monkeypatch.setattr(particles, "CHUNK", 2)
    out = tmp_path / "higgs-like.npz"
    crash = True
    with pytest.raises(KeyboardInterrupt):
        particles.prepare("higgs-like", 8, out=out)  # 2 chunks of 2 per class
    assert not out.exists() and len(calls) == 3
    crash = False
    calls.clear()
    particles.prepare("higgs-like", 8, out=out)
    assert calls == [(1, 2, 15001), (1, 2, 15002)]  # the two chunks finished before the crash were kept
    resumed = np.load(out)["x"]
    calls.clear()
    particles.prepare("higgs-like", 12, out=out)
    assert calls == [(0, 2, 10003), (1, 2, 15003)]  # only the chunks a smaller run did not make
    grown = np.load(out)
    assert grown["y"].tolist() == [0] * 6 + [1] * 6
    assert np.array_equal(grown["x"][[0, 1, 2, 3, 6, 7, 8, 9]], resumed)
    shutil.rmtree(tmp_path / "higgs-like-seed1.chunks")
    calls.clear()
    particles.prepare("higgs-like", 8, out=out)  # from nothing: the same samples
    assert len(calls) == 4 and np.array_equal(np.load(out)["x"], resumed)
