""".h5ad files (anndata): cells as samples, genes as named feature tokens, labels from obs, the
matrix to read (--layer), library-size + log1p normalisation, gene selection, and one-line errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from anymae.cli import main
from anymae.config import DataConfig
from anymae.data import load_dataset
from anymae.data.catalog import BUILTINS
from anymae.errors import UserError

anndata = pytest.importorskip("anndata")
sparse = pytest.importorskip("scipy.sparse")

TINY = ["model.dim=32", "model.depth=2", "model.decoder_dim=32", "model.decoder_depth=1", "train.batch_size=8"]
GENES = ["CD3E", "MS4A1", "LYZ", "NKG7", "PPBP"]


def counts(cells: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale = np.array([1.0, 2.0, 8.0, 0.5, 4.0])  # LYZ varies most, NKG7 least
    return rng.poisson(scale, size=(cells, len(GENES))).astype(np.float32)


def write(path, x=None, **extra):
    x = counts() if x is None else x
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical(["T", "B", "mono"] * (len(x) // 3)), "depth": np.arange(len(x), dtype=float)},
        index=[f"cell{i}" for i in range(len(x))],
    )
    data = anndata.AnnData(X=sparse.csr_matrix(x), obs=obs, var=pd.DataFrame(index=GENES), **extra)
    data.write_h5ad(path)
    return path


def values(dataset) -> np.ndarray:
    """The kept genes' values as read (before the per-gene standardisation)."""
    spec = dataset.spec
    return dataset.tokens.inputs[..., 0] * np.array(spec.scale) + np.array(spec.mean)


def test_cells_are_samples_genes_named_tokens_labels_from_obs(tmp_path):
    dataset = load_dataset(DataConfig(name=str(write(tmp_path / "c.h5ad")), label="cell_type"))
    assert len(dataset) == 30 and dataset.spec.features == tuple(GENES)
    assert dataset.task == "classification" and dataset.notes["classes"] == ["B", "T", "mono"]
    assert dataset.labels[:3].tolist() == [1, 0, 2] and dataset.notes["matrix"] == "X"
    np.testing.assert_allclose(values(dataset), counts(), atol=1e-4)


def test_library_size_and_log1p(tmp_path):
    path = write(tmp_path / "c.h5ad")
    dataset = load_dataset(DataConfig(name=str(path), normalise="library-log1p"))
    x = counts().astype(np.float64)
    expected = np.log1p(x / np.maximum(x.sum(1, keepdims=True), 1) * 10_000)
    np.testing.assert_allclose(values(dataset), expected, rtol=1e-5, atol=1e-4)


def test_the_most_variable_genes_are_kept_in_file_order(tmp_path):
    dataset = load_dataset(DataConfig(name=str(write(tmp_path / "c.h5ad")), max_tokens=3))
    assert dataset.spec.features == ("MS4A1", "LYZ", "PPBP")
    assert dataset.notes["genes"] == 3 and dataset.notes["genes_in_file"] == 5


def test_layer_and_raw_pick_the_matrix(tmp_path):
    x = counts()
    path = write(tmp_path / "c.h5ad", layers={"doubled": 2 * x})
    np.testing.assert_allclose(values(load_dataset(DataConfig(name=str(path), layer="doubled"))), 2 * x, atol=1e-4)
    with pytest.raises(UserError, match=r"no layer 'spliced' \(data.layer; layers: doubled, or '' for X\)"):
        load_dataset(DataConfig(name=str(path), layer="spliced"))
    with pytest.raises(UserError, match="data.layer=raw, but the file has no raw matrix"):
        load_dataset(DataConfig(name=str(path), layer="raw"))


def test_a_cell_with_nan_is_a_bad_record(tmp_path):
    x = counts()
    x[4, 2] = np.nan
    path = write(tmp_path / "c.h5ad", x=x)
    with pytest.raises(UserError, match="cell 'cell4': gene 'LYZ' is nan, not a finite float32"):
        load_dataset(DataConfig(name=str(path)))
    dataset = load_dataset(DataConfig(name=str(path), on_bad_record="skip"))
    assert len(dataset) == 29 and dataset.notes["skipped"] == 1


@pytest.mark.parametrize(
    "setting,message",
    [
        ("--label=stage", "c.h5ad: no obs column 'stage' (--label); obs columns: cell_type, depth"),
        ("--layer=names", "c.h5ad: layers['names'] must hold numbers, got"),
        ("data.normalise=library-log1p", "c.h5ad: layers['centred'] holds negative values, so not counts"),
    ],
)
def test_malformed_h5ad_is_one_line_and_status_2(setting, message, tmp_path, capsys):
    x = counts()
    names = np.array([["a"] * len(GENES)] * len(x), dtype=object)
    path = write(tmp_path / "c.h5ad", layers={"names": names, "centred": x - x.mean(0)})
    layer = ["--layer", "centred"] if "normalise" in setting else []
    argv = ["pretrain", "--data", str(path), *layer, setting, "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_h5ad_settings_on_other_data_are_refused():
    with pytest.raises(UserError, match="data.layer and data.normalise apply to .h5ad files only"):
        load_dataset(DataConfig(name="digits", normalise="library-log1p"))


def test_a_users_h5ad_trains(tmp_path):
    path = write(tmp_path / "c.h5ad")
    out = tmp_path / "run"
    assert (
        main(["pretrain", "--data", str(path), "--label", "cell_type", "--steps", "2", "--out", str(out), *TINY]) == 0
    )
    assert main(["probe", "--checkpoint", str(out)]) == 0


@pytest.mark.skipif(not BUILTINS["pbmc68k-reduced"].ready(), reason="anymae data install pbmc68k-reduced")
def test_pbmc68k_reduced():
    dataset = load_dataset(DataConfig(name="pbmc68k-reduced"))
    assert len(dataset) == 700 and len(dataset.notes["classes"]) == 10 and dataset.notes["matrix"] == "raw.X"
    assert dataset.spec.max_tokens == 256 and dataset.notes["genes_in_file"] == 765
    assert {"LYZ", "CD74"} <= set(dataset.spec.features)
    louvain = load_dataset(DataConfig(name="pbmc68k-reduced", label="louvain", max_tokens=765))
    assert louvain.spec.max_tokens == 765 and louvain.notes["classes"] != dataset.notes["classes"]
