"""Property-based fuzzing of every reader (hypothesis): random bytes, and valid files from
tests/data mutated byte by byte and line by line. Properties: a reader never raises anything
but UserError (one clear line), and under --on-bad-record skip every record of the file is
either read or skipped and counted (records read + skipped = records in the file, counted
here independently of the readers). A few examples per reader in CI; many more with -m slow."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from anymae.config import DataConfig
from anymae.data import load_dataset
from anymae.errors import UserError

DATA = Path(__file__).parent / "data"
EXAMPLES = [pytest.param(25, id="ci"), pytest.param(400, id="many", marks=pytest.mark.slow)]
SEEDS = {  # name: (suffix, a valid file to mutate, settings)
    "fasta": (".fasta", DATA / "uniprot_head.fasta", {}),
    "text lines": (".txt", DATA / "glosses.txt", {}),
    "csv of texts (quoted)": (".csv", DATA / "rotten_head.csv", {"label": "category"}),
    "csv of sequences": (".csv", DATA / "amp_head.csv", {"label": "label"}),
    "ts": (".ts", DATA / "ItalyPowerDemand_head.ts", {}),
}
NOISE = [
    b'"',
    b",",
    b"\n",
    b"\r\n",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\x00",
    b">",
    b"@data\n",
    b":",
    b"1e400",
    b"1_0",
    b"\t",
]


def fuzz(examples: int):
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,  # the same examples on every run: a failure in CI can be reproduced
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@st.composite
def mutated(draw, seed: bytes) -> bytes:
    """A valid file with a few edits: bytes flipped, inserted (random or CSV / FASTA / UTF
    troublemakers), ranges deleted, lines repeated or dropped, or the file cut short."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "noise", "delete", "line", "cut"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=20))
        elif kind == "noise":
            data[at:at] = draw(st.sampled_from(NOISE))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 50))]
        elif kind == "line":
            lines = bytes(data).split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            lines = lines[:i] + ([lines[i]] * 2 if draw(st.booleans()) else []) + lines[i + 1 :]
            data = bytearray(b"\n".join(lines))
        elif kind == "cut":
            data = data[:at]
    return bytes(data)


def read(path: Path, policy: str, **settings):
    """The dataset, or None for a UserError; anything else propagates and fails the test."""
    try:
        return load_dataset(DataConfig(name=str(path), on_bad_record=policy, **settings))
    except UserError as error:
        assert "\n" not in str(error)  # one line
        return None


def lines_of(data: bytes) -> list[tuple[bytes, str | None]]:
    """(raw line, text or None when not UTF-8 / holding NUL), split as the readers split."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    out = []
    for raw in data.split(b"\n")[: -1 if data.endswith(b"\n") else None]:
        raw = raw.rstrip(b"\r\n")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        out.append((raw, None if text is None or "\x00" in text else text))
    return out


def records_in(suffix: str, data: bytes) -> int | None:
    """Records in a file by its format's definition, or None where that is not countable here."""
    lines = lines_of(data)
    if suffix == ".txt":
        return sum(1 for _, text in lines if text is None or text.strip())
    if suffix == ".fasta":
        headers = sum(1 for raw, _ in lines if raw.startswith(b">"))
        first = next((i for i, (raw, _) in enumerate(lines) if raw.startswith(b">")), len(lines))
        orphans = any(raw.strip() for raw, _ in lines[:first])
        return headers + orphans
    if suffix == ".ts":  # undecodable lines anywhere, and the cases after '@data'
        start = next(
            (i for i, (_, t) in enumerate(lines) if t is not None and t.strip().lower().startswith("@data")), None
        )
        cases = (
            0
            if start is None
            else sum(1 for _, t in lines[start + 1 :] if t is not None and t.strip() and not t.strip().startswith("#"))
        )
        return sum(1 for _, t in lines if t is None) + cases
    if suffix == ".csv" and b'"' not in data and b"\r" not in data.replace(b"\r\n", b"\n"):
        undecodable = sum(1 for _, text in lines if text is None)
        blank = {i for i, (_, text) in enumerate(lines) if text is not None and ("," not in text and not text.strip())}
        rows = sum(1 for i, (_, text) in enumerate(lines) if text is not None and i not in blank)
        return undecodable + max(rows - 1, 0)  # less the header
    return None


def check(suffix: str, data: bytes, **settings) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        read(path, "fail", **settings)
        dataset = read(path, "skip", **settings)
        expected = records_in(suffix, data)
        if dataset is not None and expected is not None:
            assert len(dataset) + dataset.notes["skipped"] == expected


@pytest.mark.parametrize(
    "suffix", [".fasta", ".txt", ".csv", ".ts", ".smi", ".npz", ".npy", ".parquet", ".fasta.gz", ".txt.bz2"]
)
@pytest.mark.parametrize("examples", EXAMPLES)
def test_random_bytes_never_raise_anything_but_a_user_error(suffix, examples):
    @fuzz(examples)
    @given(st.binary(max_size=3000))
    def run(data):
        check(suffix, data)

    run()


@pytest.mark.parametrize("name", list(SEEDS))
@pytest.mark.parametrize("examples", EXAMPLES)
def test_mutated_files_are_read_or_refused_and_every_record_counted(name, examples):
    suffix, path, settings = SEEDS[name]
    seed = path.read_bytes()

    @fuzz(examples)
    @given(mutated(seed))
    def run(data):
        check(suffix, data, **settings)

    run()


@pytest.mark.parametrize("examples", EXAMPLES)
def test_mutated_smiles_tables(examples):
    pytest.importorskip("rdkit")
    seed = (DATA / "freesolv_head.csv").read_bytes()

    @fuzz(examples)
    @given(mutated(seed))
    def run(data):
        check(".csv", data, label="expt")

    run()


@pytest.mark.parametrize("examples", EXAMPLES)
def test_mutated_images_in_a_folder_are_read_or_skipped_one_by_one(examples):
    pytest.importorskip("PIL")
    seed = (DATA / "mnist_png" / "1" / "0.png").read_bytes()

    @fuzz(examples)
    @given(mutated(seed), st.booleans())
    def run(data, as_new_file):
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder) / "imgs"
            shutil.copytree(DATA / "mnist_png", root)
            target = root / "1" / ("fuzz.png" if as_new_file else "0.png")
            target.write_bytes(data)
            files = len(list(root.rglob("*.png")))
            read(root, "fail")
            dataset = read(root, "skip")
            if dataset is not None:
                assert len(dataset) + dataset.notes["skipped"] == files

    run()


DTYPES = st.sampled_from([np.float64, np.float32, np.int64, np.uint8, np.uint16, np.bool_, np.dtype("U3")])


def arrays(max_dims: int = 4):
    shape = hnp.array_shapes(min_dims=1, max_dims=max_dims, min_side=0, max_side=6)
    return DTYPES.flatmap(lambda dtype: hnp.arrays(dtype, shape))


@pytest.mark.parametrize("examples", EXAMPLES)
def test_npz_of_any_arrays(examples):
    @fuzz(examples)
    @given(
        arrays(),
        st.none() | arrays(1),
        st.none() | arrays(1),
        st.sampled_from(["", "tabular", "series", "image", "set"]),
    )
    def run(x, y, counts, modality):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "a.npz"
            parts = {
                "x": x,
                **({"y": y} if y is not None else {}),
                **({"counts": counts} if counts is not None else {}),
            }
            np.savez(path, **parts)
            read(path, "fail", modality=modality)
            dataset = read(path, "skip", modality=modality)
            if dataset is not None:  # one record per set (counts), else per row / image of x
                assert len(dataset) + dataset.notes["skipped"] == len(counts if counts is not None else x)

    run()


@pytest.mark.parametrize("examples", EXAMPLES)
def test_mutated_parquet_files(examples):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    with tempfile.TemporaryDirectory() as folder:
        table = pa.table({"a": [1.0, None, 3.0, 4.0, 5.0], "b": ["x", "y", "x", "y", "x"], "y": [0, 1, 0, 1, 0]})
        pq.write_table(table, Path(folder) / "seed.parquet")
        seed = (Path(folder) / "seed.parquet").read_bytes()

    @fuzz(examples)
    @given(mutated(seed))
    def run(data):
        check(".parquet", data, label="y")

    run()
