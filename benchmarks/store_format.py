"""The token store's format: memory-mapped NumPy arrays (what anymae writes) against an Arrow IPC
file of the same tokens (pyarrow, the `tables` extra), side by side.

For a prepared ragged store (default: benchmarks/corpus.py's 1M-protein store under /tmp), writes
its tokens as an Arrow IPC file (a LargeList<uint8> column,
built from the store's own arrays), then draws the same random batches of 256 samples as padded
token ids, as training does, from each: the store's `StoredTokens.take` (one gather from the map)
and Arrow (`take` on the memory-mapped table, then the same padding from its offsets and values).
Rounds alternate; all must give identical batches. Arrow twice: the whole column as one record batch,
and in record batches of 65,536 (as Arrow writers chunk; `take` then spans chunks). Also: seconds to
write and size on disk.

    python benchmarks/store_format.py [--store /tmp/anymae-corpus/p1000000.store] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from anymae.config import DataConfig
from anymae.data import load_dataset
from anymae.data.store import pad

BATCH, DRAWS = 256, 300
LAYOUTS = {"arrow, one record batch": 10**12, "arrow, record batches of 65,536": 65_536}


def write_arrow(flat: np.ndarray, offsets: np.ndarray, path: Path, record_batch: int) -> float:
    """The ragged tokens as an Arrow IPC file, `record_batch` samples at a time; seconds taken."""
    started = time.perf_counter()
    schema = pa.schema([("tokens", pa.large_list(pa.uint8()))])
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for begin in range(0, len(offsets) - 1, record_batch):
            end = min(begin + record_batch, len(offsets) - 1)
            part = offsets[begin : end + 1]
            values = pa.array(np.asarray(flat[part[0] : part[-1]]), type=pa.uint8())
            column = pa.LargeListArray.from_arrays(pa.array(part - part[0], type=pa.int64()), values)
            writer.write_batch(pa.record_batch([column], schema=schema))
    return time.perf_counter() - started


def arrow_take(table: pa.Table, index: np.ndarray, width: int) -> np.ndarray:
    rows = table.column("tokens").take(pa.array(index)).combine_chunks()
    offsets = rows.offsets.to_numpy()
    values = rows.values.to_numpy(zero_copy_only=False)
    return pad(values, offsets - offsets[0], np.arange(len(index)), width).inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=Path("/tmp/anymae-corpus/p1000000.store"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/store_format.json"))
    args = parser.parse_args()
    dataset = load_dataset(DataConfig(name=str(args.store)))
    tokens, width = dataset.tokens, dataset.spec.max_tokens
    if not tokens.ragged:
        raise SystemExit(f"{args.store}: a ragged store (text, protein, DNA, SMILES) is needed")
    files = {name: args.store.parent / f"{args.store.name}.{size}.arrow" for name, size in LAYOUTS.items()}
    write_s = {name: write_arrow(tokens.flat, tokens.offsets, files[name], size) for name, size in LAYOUTS.items()}
    tables = {name: pa.ipc.open_file(pa.memory_map(str(f))).read_all() for name, f in files.items()}  # zero-copy
    rng = np.random.default_rng(0)
    draws = [np.sort(rng.choice(len(tokens), BATCH, replace=False)) for _ in range(DRAWS)]
    readers = {"numpy": lambda i: tokens.take(i).inputs}
    for name, table in tables.items():
        readers[name] = lambda i, table=table: arrow_take(table, i, width)
        for index in draws[:5]:
            np.testing.assert_array_equal(tokens.take(index).inputs, readers[name](index))
    load = os.getloadavg()
    timings: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(args.rounds):
        for name, draw in readers.items():
            started = time.perf_counter()
            for index in draws:
                draw(index)
            timings[name].append((time.perf_counter() - started) / DRAWS)
    ms = {name: statistics.median(t) * 1000 for name, t in timings.items()}
    store_bytes = sum((args.store / f).stat().st_size for f in ("tokens.npy", "offsets.npy"))
    result = {
        "store": str(args.store),
        "samples": len(tokens),
        "batch": BATCH,
        "ms_per_batch": ms,
        "x_numpy": {name: value / ms["numpy"] for name, value in ms.items()},
        "arrow_write_s": write_s,
        "bytes": {"numpy tokens + offsets": store_bytes, **{name: f.stat().st_size for name, f in files.items()}},
        "load_average": [load, os.getloadavg()],
        "rounds": args.rounds,
    }
    for f in files.values():
        f.unlink()
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
