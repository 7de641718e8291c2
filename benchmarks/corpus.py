"""Real-corpus targets of the token store (issue 19), on synthetic files of realistic shape.

Writes FASTA files of N protein sequences (50-500 letters, uniform) under --work (default
/tmp/anymae-corpus; never the repository), then, each command in its own child process with
its peak resident set read from the kernel (os.wait4):

- `anymae data prepare FILE --out STORE`: seconds, sequences/s, peak memory;
- `anymae pretrain --data STORE --steps S` (the default protein model, data.max_tokens=256):
  seconds from the command to the start of its first training step, steps' samples/s and
  peak memory; the same run with `--data FILE` (in memory) for the smaller file beside it;
- `anymae embed` of the store's test split (20%) with a tiny model (its memory is the data's,
  not the model's): peak memory.

    python benchmarks/corpus.py [--sizes 100000,1000000] [--steps 20] [--out benchmarks/results/corpus.json]

Memory numbers are robust; timings on a shared machine are not (the JSON notes the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

LETTERS = np.frombuffer(b"ACDEFGHIKLMNPQRSTVWY", dtype=np.uint8)
ANYMAE = [sys.executable, "-m", "anymae"]


def write_fasta(path: Path, n: int, seed: int = 0) -> None:
    """n sequences of 50-500 letters, one line each, written a block at a time (seconds for 1M)."""
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        for start in range(0, n, 100_000):
            lengths = rng.integers(50, 501, min(100_000, n - start))
            letters = LETTERS[rng.integers(0, len(LETTERS), int(lengths.sum()))]
            ends = np.cumsum(lengths)
            text = letters.tobytes()
            f.write(
                b"".join(b">seq%d\n%s\n" % (start + i, text[e - k : e]) for i, (k, e) in enumerate(zip(lengths, ends)))
            )


def run(argv: list[str], first: str = "") -> dict:
    """A command in a child process: seconds, peak resident set (MiB), and seconds until a stderr
    line starting with `first` (when given)."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_at, tail = None, []
    for line in child.stderr:  # type: ignore[union-attr]
        tail = (tail + [line])[-5:]
        if first and first_at is None and line.startswith(first):
            first_at = time.perf_counter() - started
    child.stdout.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{' '.join(argv)} failed:\n{''.join(tail)}")
    result = {"seconds": round(time.perf_counter() - started, 2), "peak_mib": round(usage.ru_maxrss / 1024)}
    if first:
        result["first_step_s"] = round(first_at or float("nan"), 2)
    return result


def pretrain(data: str, out: Path, steps: int) -> dict:
    """A run's peak memory, seconds from the command to the start of its first step (the first
    step's line less the step itself, which metrics.jsonl times), and the median samples/s of
    its steps after the first two (warm-up)."""
    argv = [*ANYMAE, "pretrain", "--data", data, "--steps", str(steps), "--out", str(out)]
    result = run([*argv, "train.log_every=1", f"train.checkpoint_every={steps}"], first="step 1/")
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    result["to_first_step_s"] = round(result.pop("first_step_s") - lines[0]["elapsed_s"], 2)
    return {**result, "samples_per_s": round(float(np.median([x["samples_per_s"] for x in lines[2:]])), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--work", type=Path, default=Path("/tmp/anymae-corpus"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/corpus.json"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict = {"load_average_at_start": os.getloadavg(), "cpus": os.cpu_count(), "steps": args.steps, "runs": {}}
    for n in sizes:
        fasta, store, runs = args.work / f"p{n}.fasta", args.work / f"p{n}.store", args.work / f"runs{n}"
        if not fasta.exists():
            write_fasta(fasta, n)
        row: dict = {"file_mib": round(fasta.stat().st_size / 2**20)}
        row["prepare"] = run([*ANYMAE, "data", "prepare", str(fasta), "--out", str(store)])
        row["prepare"]["sequences_per_s"] = round(n / row["prepare"]["seconds"])
        row["pretrain_store"] = pretrain(str(store), runs / "store", args.steps)
        if n == sizes[0]:
            row["pretrain_memory"] = pretrain(str(fasta), runs / "memory", args.steps)
        tiny = ["model.dim=32", "model.depth=1", "model.decoder_dim=32", "model.decoder_depth=1"]
        run([*ANYMAE, "pretrain", "--data", str(store), "--steps", "1", "--out", str(runs / "tiny"), *tiny])
        embed = [*ANYMAE, "embed", "--checkpoint", str(runs / "tiny"), "--split", "test"]
        row["embed_test_split"] = run([*embed, "--out", str(runs / "features.npy")])
        results["runs"][n] = row
        print(json.dumps({n: row}), flush=True)
        subprocess.run(["rm", "-rf", str(runs)], check=True)
    results["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
