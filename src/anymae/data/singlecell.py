"""Single-cell expression (.h5ad, read with anndata): cells are samples, genes are feature tokens.

The matrix is `X` (sparse or dense), `raw.X` with data.layer=raw, or a named layer. What it
holds depends on who wrote the file: raw counts, log-normalised values, or values already scaled
per gene (pbmc68k_reduced's X). data.normalise=library-log1p turns counts into the usual
log-expression (each cell scaled to 10,000 counts in total, then log1p), and refuses values that
cannot be counts. Genes beyond data.max_tokens are left out: the max_tokens genes of highest
variance (over all cells, labels unused) are kept in the file's order, so the default (256) works
for files of thousands of genes; raise it (with model.mode=latent past a few hundred) to keep
more. The kept genes are standardised like any table's features.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from anymae.config import DataConfig
from anymae.data.carriers import Carrier, Library
from anymae.data.dataset import Dataset, Splits, make_dataset
from anymae.data.records import BadRecords, brief, check_size
from anymae.errors import UserError
from anymae.tokens import FLOAT32_MAX, FeatureTokens, fit_scale

INSTALL = "pip install 'anymae[singlecell]'  (or: pip install anndata)"
LIBRARY_SIZE = 10_000.0  # counts per cell after library-size normalisation (scanpy's usual target)


def read_anndata(path: Path):
    try:
        import anndata
    except ImportError:
        raise UserError(f"{path}: .h5ad files need anndata; install it with: {INSTALL}") from None
    check_size(path, path.stat().st_size)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # anndata's notes on moving old fields (FutureWarning)
            return anndata.read_h5ad(path)
    except Exception as error:  # h5py and anndata raise many kinds for a damaged or foreign file
        raise UserError(f"{path}: not a readable .h5ad file ({brief(error)})") from None


def matrix(path: Path, data, layer: str):
    """(cells x genes matrix, gene names, which matrix) for data.layer."""
    if layer == "raw":
        if data.raw is None:
            raise UserError(f"{path}: data.layer=raw, but the file has no raw matrix")
        return data.raw.X, [str(g) for g in data.raw.var_names], "raw.X"
    if layer:
        if layer not in data.layers:
            known = ", ".join(["raw"] * (data.raw is not None) + list(data.layers)) or "none"
            raise UserError(f"{path}: no layer '{layer}' (data.layer; layers: {known}, or '' for X)")
        return data.layers[layer], [str(g) for g in data.var_names], f"layers['{layer}']"
    if data.X is None:
        raise UserError(f"{path}: the file has no X matrix; pick one with data.layer (--layer)")
    return data.X, [str(g) for g in data.var_names], "X"


def dense_rows(values, where: str) -> tuple[np.ndarray | object, bool]:
    """The matrix as float64 (scipy sparse stays sparse); a non-numeric matrix is an error."""
    dtype = getattr(values, "dtype", None)
    if dtype is None or np.dtype(dtype).kind not in "biuf":
        raise UserError(f"{where} must hold numbers, got {dtype} values")
    if hasattr(values, "tocsr"):
        return values.tocsr().astype(np.float64), True
    return np.asarray(values, dtype=np.float64), False


def normalise_counts(x, sparse: bool, where: str):
    """Each cell scaled to LIBRARY_SIZE counts in total, then log1p (zeros stay zeros)."""
    data = x.data if sparse else x
    finite = data[np.isfinite(data)]
    if (finite < 0).any():
        raise UserError(
            f"{where} holds negative values, so not counts: data.normalise=library-log1p needs raw counts "
            "(pick them with data.layer, or use data.normalise=none for values already normalised)"
        )
    totals = np.asarray(x.sum(1)).reshape(-1)
    scale = LIBRARY_SIZE / np.where(totals > 0, totals, 1.0)
    if sparse:
        x = x.multiply(scale[:, None]).tocsr()
        x.data = np.log1p(x.data)
        return x
    return np.log1p(x * scale[:, None])


def gene_variance(x, sparse: bool) -> np.ndarray:
    if sparse:
        mean = np.asarray(x.mean(0)).reshape(-1)
        return np.asarray(x.multiply(x).mean(0)).reshape(-1) - mean**2
    return np.nanvar(x, axis=0)


def h5ad_dataset(
    path: Path, config: DataConfig, bad: BadRecords, splits: Splits = None, layer: str | None = None, **about
) -> Dataset:
    """Cells of an .h5ad file as feature tokens; labels from obs[data.label]. `layer` overrides
    data.layer (a built-in dataset's choice); `about`: name, source, license, metric, task."""
    if config.importance:
        raise UserError(f"{path}: data.importance is not supported for .h5ad files")
    data = read_anndata(path)
    layer = config.layer if layer is None else layer
    values, genes, which = matrix(path, data, layer)
    where = f"{path}: {which}"
    x, sparse = dense_rows(values, where)
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise UserError(f"{where} is empty ({x.shape[0]} cells x {x.shape[1]} genes)")
    cells = [str(c) for c in data.obs_names]
    labels = None
    if config.label:
        if config.label not in data.obs.columns:
            columns = ", ".join(map(str, data.obs.columns)) or "none"
            raise UserError(f"{path}: no obs column '{config.label}' (--label); obs columns: {columns}")
        labels = data.obs[config.label].tolist()
    if config.normalise == "library-log1p":
        x = normalise_counts(x, sparse, where)
    keep = np.arange(x.shape[1])
    if x.shape[1] > config.max_tokens:  # the most variable genes, in the file's order
        variance = np.nan_to_num(gene_variance(x, sparse), nan=-1.0)
        keep = np.sort(np.argsort(-variance, kind="stable")[: config.max_tokens])
    x = x[:, keep]
    x = x.toarray() if sparse else x
    good = []
    for row, cell in enumerate(cells):
        wrong = np.flatnonzero(~np.isfinite(x[row]) | (np.abs(np.nan_to_num(x[row])) > FLOAT32_MAX))
        if len(wrong):
            bad(f"cell '{cell}'", f"gene '{genes[keep[wrong[0]]]}' is {float(x[row, wrong[0]])}, not a finite float32")
        elif labels is not None and is_missing(labels[row]):
            bad(f"cell '{cell}'", f"obs '{config.label}' is missing")
        else:
            good.append(row)
    if not good:
        raise UserError(f"{where}: no usable cells ({bad.count} bad)")
    x = x[good]
    mean, scale = fit_scale(x)
    spec = FeatureTokens(features=tuple(genes[g] for g in keep), mean=mean, scale=scale)
    notes = {"matrix": which, "normalise": config.normalise, "genes": len(keep), "genes_in_file": len(genes)}
    about = {"name": path.name, "source": str(path), **about}
    return make_dataset(
        spec,
        x,
        [f"cell '{cells[r]}'" for r in good],
        bad,
        labels=None if labels is None else [labels[r] if is_number(labels[r]) else str(labels[r]) for r in good],
        splits=splits,
        notes=notes,
        **about,
    )


def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


SCANPY = Carrier("scanpy", "1.11.5")  # carries datasets/10x_pbmc68k_reduced.h5ad; never imported
ANNDATA = Library("anndata", "0.12.19")


def load_pbmc68k_reduced(config: DataConfig, entry) -> Dataset:
    """scanpy's PBMC 68k subsample: raw.X holds log-normalised expression (X the same, scaled per
    gene and with covariates regressed out), so it is read as is; labels obs['bulk_labels']."""
    path = SCANPY.path("datasets/10x_pbmc68k_reduced.h5ad")
    config = DataConfig(**{**vars(config), "label": config.label or "bulk_labels"})
    return h5ad_dataset(
        path, config, BadRecords(path, "fail"), layer=config.layer or "raw", task="classification", **entry.about()
    )
