"""Pretraining's peak memory and speed with train.recompute=true (which also bounds glibc's heap:
anymae/heap.py) against the default, and each of its two parts alone, side by side.

The default model (batch 256) pretrains on a prepared store of 100k synthetic proteins of 50-500
letters (benchmarks/corpus.py writes and prepares it under --work; data.max_tokens=256), each variant
in its own process, rounds alternating: the median samples/s of steps 3 and later, and the peak
resident set (ru_maxrss).

    python benchmarks/activation_memory.py [--rounds 2] [--steps 6]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from corpus import write_fasta

RUN = """
import resource, sys
import anymae.cli as cli, anymae.train as train
if sys.argv[1] == "glibc":  # recompute with glibc's own heap
    train.bound_heap = lambda: False
code = cli.main(sys.argv[2:])
print("peak_mib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
sys.exit(code)
"""
RECOMPUTE = ["train.recompute=true"]
VARIANTS = {  # name: (settings, heap, environment)
    "default": ([], "", {}),
    "bounded heap alone": ([], "", {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)}),
    "recompute, glibc's own heap": (RECOMPUTE, "glibc", {}),
    "train.recompute=true": (RECOMPUTE, "", {}),
}


def run(variant: str, store: Path, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        argv = ["pretrain", "--data", str(store), "--steps", str(steps), "--out", out, "train.log_every=1"]
        settings, heap, env = VARIANTS[variant]
        done = subprocess.run(
            [sys.executable, "-c", RUN, heap, *argv, *settings],
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ, **env),
        )
        lines = [json.loads(x) for x in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    peak = float(done.stdout.split("peak_mib")[-1])
    return {"samples_per_s": statistics.median(x["samples_per_s"] for x in lines[2:]), "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--work", type=Path, default=Path("/tmp/anymae-corpus"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/activation_memory.json"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    fasta, store = args.work / "p100000.fasta", args.work / "p100000.store"
    if not fasta.exists():
        write_fasta(fasta, 100_000)
    if not store.exists():
        subprocess.run([sys.executable, "-m", "anymae", "data", "prepare", str(fasta), "--out", str(store)], check=True)
    runs: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    load = os.getloadavg()
    for _ in range(args.rounds):
        for name in VARIANTS:
            runs[name].append(run(name, store, args.steps))
    base = statistics.median(r["samples_per_s"] for r in runs["default"])
    results = []
    for name, rows in runs.items():
        rate = statistics.median(r["samples_per_s"] for r in rows)
        peak = max(r["peak_mib"] for r in rows)
        row = {"variant": name, "samples_per_s": rate, "x_default": rate / base, "peak_mib": peak}
        results.append(row)
        print(f"{name:<28} {rate:6.1f} samples/s  x{row['x_default']:.2f}  peak {row['peak_mib']:6.0f} MiB", flush=True)
    setup = {"model": "default (batch 256)", "max_tokens": 256, "store": "100k proteins", "steps": args.steps}
    setup |= {"rounds": args.rounds, "load_average_at_start": load, "load_average_at_end": os.getloadavg()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"setup": setup, "results": results, "runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
