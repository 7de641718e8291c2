"""Time series: UCR/UEA `.ts` files, or one series per CSV row (`--modality series`).

Each series is z-normalised, cut into patches of `data.patch` steps (default 4; 0 = the
default) and each patch is a token. Series may differ in length (shorter ones are padded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anymae.config import DataConfig
from anymae.data.dataset import Dataset, make_dataset
from anymae.data.records import BadRecords, numbered_lines
from anymae.data.tables import Table, as_number, is_missing
from anymae.errors import UserError
from anymae.tokens import FLOAT32_MAX, SeriesPatches


def read_ts(path: Path, bad: BadRecords) -> tuple[list[np.ndarray], list[str] | None, list[str]]:
    """(series (T, dims), labels or None, places) of a `.ts` file: '#' comments, '@' header
    lines up to '@data', then one case per line, dimensions separated by ':', values by ',',
    the class label last when '@classLabel true' (a case whose label is not among the classes
    that line declares is a bad record)."""
    has_labels, in_data, declared = False, False, set()
    series, labels, places = [], [], []
    for number, line in numbered_lines(path, bad):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not in_data:
            lower = text.lower()
            if lower.startswith("@classlabel"):
                has_labels = lower.split()[1:2] == ["true"]
                declared = set(text.split()[2:]) if has_labels else set()
            elif lower.startswith("@data"):
                in_data = True
            elif not lower.startswith("@"):
                raise UserError(f"{path}, line {number}: expected '@' header lines and '@data' before the data")
            continue
        fields = text.split(":")
        if has_labels:
            *fields, label = fields
        dims = []
        for field in fields:
            cells = field.split(",")
            values = [as_number(c) for c in cells]
            if any(v is None or not abs(v) <= FLOAT32_MAX for v in values) or any(is_missing(c) for c in cells):
                dims = None
                break
            dims.append(values)
        if not dims:
            bad(f"line {number}", "values must be finite numbers separated by ',' (missing values are not supported)")
            continue
        if len({len(d) for d in dims}) != 1:
            bad(f"line {number}", "dimensions of different lengths")
            continue
        if has_labels and declared and label.strip() not in declared:
            shown = ", ".join(sorted(declared)[:10])
            bad(f"line {number}", f"label {label.strip()!r} is not one of the classes of @classLabel ({shown})")
            continue
        series.append(np.array(dims, dtype=np.float64).T)
        if has_labels:
            labels.append(label.strip())
        places.append(f"line {number}")
    if not in_data:
        raise UserError(f"{path}: no '@data' line (not a .ts file?)")
    if len({s.shape[1] for s in series}) > 1:
        raise UserError(f"{path}: cases have different numbers of dimensions")
    return series, labels if has_labels else None, places


def table_series(table: Table, bad: BadRecords, label: str = "") -> tuple[list[np.ndarray], list | None, list[str]]:
    """One series per row: every column but the label is a time step; trailing empty cells make
    a row shorter; a missing value inside a row, or inf, is a bad record."""
    label_index = table.column(label, "--label") if label else None
    series, labels, places = [], [] if label_index is not None else None, []
    for row, place in zip(table.rows, table.places):
        cells = [c for i, c in enumerate(row) if i != label_index]
        while cells and is_missing(cells[-1]):
            cells.pop()
        values = [None if is_missing(c) else as_number(c) for c in cells]
        if not values or any(v is None or not abs(v) <= FLOAT32_MAX for v in values):
            column = next((i for i, v in enumerate(values) if v is None or not abs(v) <= FLOAT32_MAX), 0)
            bad(place, f"step {column + 1} is missing, not a number, infinite or beyond the float32 range")
            continue
        if label_index is not None:
            if is_missing(row[label_index]):
                bad(place, f"label '{table.columns[label_index]}' is missing")
                continue
            labels.append(row[label_index])
        series.append(np.array(values, dtype=np.float64)[:, None])
        places.append(place)
    return series, labels, places


def series_dataset(
    series: list[np.ndarray], places: list[str], bad: BadRecords, config: DataConfig, labels=None, **about
) -> Dataset:
    """Series cut into patches of `data.patch` steps. `about`: name, source, license, splits, ..."""
    if len(series) < 2:
        raise UserError(f"{about['name']}: fewer than 2 usable series ({bad.count} bad)")
    patch = config.patch or 4
    if patch < 1:
        raise UserError(f"{about['name']}: data.patch must be at least 1 step, got {patch}")
    longest = max(len(s) for s in series)
    spec = SeriesPatches(
        max_tokens=min(-(-longest // patch), config.max_tokens), patch=patch, series_channels=series[0].shape[1]
    )
    return make_dataset(spec, series, places, bad, labels=labels, **{"task": "classification", **about})
