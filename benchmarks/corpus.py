"""Real-corpus targets of the token store (issue 19), on synthetic files of realistic shape.

Writes FASTA files of N protein sequences (50-500 letters, uniform) under --work (default
/tmp/anymae-corpus; never the repository), then, each command in its own child process with
its peak resident set read from the kernel (os.wait4; it counts the pages of mapped files the
process touched, which are page cache shared by every process mapping them) and its peak
anonymous memory (RssAnon, sampled every 0.1 s: what the process itself holds):

- `anymae data prepare FILE --out STORE`: seconds, sequences/s, peak memory;
- `anymae pretrain --data STORE --steps S` (the default protein model, data.max_tokens=256; and
  with train.recompute=true):
  seconds from the command to the start of its first training step, steps' samples/s and
  peak memory; the same run with `--data FILE` (in memory) for the smaller file beside it;
- the data side alone (open the data, draw 200 batches of 256 as training does): peak memory
  and samples/s, store and in memory;
- with --timing (instead of the runs above, on a quiet machine): `data prepare`, the seconds to the
  first step and the samples/s on the store against the file, alternating
  (benchmarks/results/corpus_timing.json);
- with --torchrun (instead of the runs above): 1 and 2 processes (torchrun) pretraining a tiny model on the store, their
  summed proportional set size (a page shared by the processes counted once) and own memory;
- `anymae embed` of the store's test split (20%) with a tiny model (its memory is the data's,
  not the model's): peak memory.

    python benchmarks/corpus.py [--sizes 100000,1000000] [--steps 20] [--out benchmarks/results/corpus.json]

With --table (instead of the runs above): CSV tables of N rows x 28 numeric columns (HIGGS-like,
5 decimals) prepared into a store, per size: seconds, rows/s, peak memory
(benchmarks/results/corpus_table.json by default).

    python benchmarks/corpus.py --table --sizes 200000,2000000

Memory numbers are robust; timings on a shared machine are not (the JSON notes the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
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


def write_table(path: Path, n: int, seed: int = 0, columns: int = 28) -> None:
    """n rows of `columns` normal numbers with 5 decimals, and a header, written in blocks."""
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        f.write(",".join(f"x{i}" for i in range(columns)) + "\n")
        for begin in range(0, n, 100_000):
            block = rng.normal(size=(min(100_000, n - begin), columns))
            f.write("\n".join(",".join(f"{v:.5f}" for v in row) for row in block.tolist()) + "\n")


def prepare_tables(sizes: list[int], work: Path) -> dict:
    runs = {}
    for n in sizes:
        table, store = work / f"t{n}.csv", work / f"t{n}.store"
        if not table.exists():
            write_table(table, n)
        row = {"file_mib": round(table.stat().st_size / 2**20), "load_average_before": os.getloadavg()}
        row["prepare"] = run([*ANYMAE, "data", "prepare", str(table), "--out", str(store)])
        row["prepare"]["rows_per_s"] = round(n / row["prepare"]["seconds"])
        row["prepare"]["rows_per_cpu_s"] = round(n / row["prepare"]["cpu_s"])
        row["load_average_after"] = os.getloadavg()
        runs[n] = row
        print(json.dumps({n: row}), flush=True)
        subprocess.run(["rm", "-rf", str(store)], check=True)
    return runs


def anonymous_mib(pid: int) -> float:
    """The process's anonymous resident memory (its own: heap, arrays), without the file pages it
    maps (the page cache, shared by every process that maps the file, and reclaimable)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("RssAnon:")), 0.0)


def watch(pid: int, peak: list[float]) -> None:
    while Path(f"/proc/{pid}").exists():
        peak[0] = max(peak[0], anonymous_mib(pid))
        time.sleep(0.1)


def run(argv: list[str], first: str = "") -> dict:
    """A command in a child process: seconds, peak resident set (MiB; file pages it maps
    included), peak anonymous memory (sampled every 0.1 s), and seconds until a stderr line
    starting with `first` (when given)."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0.0]
    threading.Thread(target=watch, args=(child.pid, peak), daemon=True).start()
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
    result = {
        "seconds": round(time.perf_counter() - started, 2),
        "peak_mib": round(usage.ru_maxrss / 1024),
        "peak_anonymous_mib": round(peak[0]),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),  # robust where other jobs share the cores
    }
    if first:
        result["first_step_s"] = round(first_at or float("nan"), 2)
    return result


LOADER = """
import sys, time
import numpy as np
from anymae.config import DataConfig
from anymae.data import load_dataset
dataset = load_dataset(DataConfig(name=sys.argv[1]))
train, rng = dataset.splits["train"], np.random.default_rng(0)
started = time.perf_counter()
for _ in range(200):
    dataset.tokens.batch(train[np.sort(rng.choice(len(train), 256, replace=False))], True)
print(200 * 256 / (time.perf_counter() - started))
"""


def loader(data: str) -> dict:
    """The data side alone: peak memory of opening the data and drawing 200 batches of 256, and
    the samples/s of those draws."""
    child = subprocess.Popen([sys.executable, "-c", LOADER, data], stdout=subprocess.PIPE, text=True)
    peak = [0.0]
    threading.Thread(target=watch, args=(child.pid, peak), daemon=True).start()
    rate = float(child.stdout.read())  # type: ignore[union-attr]
    _, _, usage = os.wait4(child.pid, 0)
    return {
        "peak_mib": round(usage.ru_maxrss / 1024),
        "peak_anonymous_mib": round(peak[0]),
        "batch_samples_per_s": round(rate),
    }


def pretrain(data: str, out: Path, steps: int, *settings: str) -> dict:
    """A run's peak memory, seconds from the command to the start of its first step (the first
    step's line less the step itself, which metrics.jsonl times), and the median samples/s of
    its steps after the first two (warm-up)."""
    argv = [*ANYMAE, "pretrain", "--data", data, "--steps", str(steps), "--out", str(out)]
    result = run([*argv, "train.log_every=1", f"train.checkpoint_every={steps}", *settings], first="step 1/")
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    result["to_first_step_s"] = round(result.pop("first_step_s") - lines[0]["elapsed_s"], 2)
    return {**result, "samples_per_s": round(float(np.median([x["samples_per_s"] for x in lines[2:]])), 1)}


def timing(n: int, work: Path, steps: int) -> dict:
    """The timed targets alone: `data prepare` of n sequences, then seconds to the first step and the
    steps' samples/s of the default model on the store and on the file (in memory), alternating."""
    fasta, store = work / f"p{n}.fasta", work / f"p{n}.store"
    if not fasta.exists():
        write_fasta(fasta, n)
    row = {"prepare": run([*ANYMAE, "data", "prepare", str(fasta), "--out", str(store)])}
    row["prepare"]["sequences_per_s"] = round(n / row["prepare"]["seconds"])
    for round_ in (1, 2):  # store and file alternate: the steps' samples/s side by side
        for name, data in (("store", store), ("memory", fasta)):
            subprocess.run(["rm", "-rf", str(work / "timing-run")], check=True)
            row[f"pretrain_{name}_{round_}"] = pretrain(str(data), work / "timing-run", steps)
    rates = {name: [row[f"pretrain_{name}_{r}"]["samples_per_s"] for r in (1, 2)] for name in ("store", "memory")}
    row["store_over_memory"] = round(float(np.median(rates["store"]) / np.median(rates["memory"])), 3)
    return row


def memory_of(marker: str) -> tuple[float, float]:
    """Summed (Pss, RssAnon) in MiB of the running processes whose command line holds `marker`:
    proportional set size shares each page among the processes mapping it, so a total of Pss
    counts a page the processes share (the store's, the libraries') once."""
    pss = anon = 0.0
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                pss += sum(
                    int(x.split()[1]) for x in (proc / "smaps_rollup").read_text().splitlines() if x.startswith("Pss:")
                )
                anon += anonymous_mib(int(proc.name)) * 1024
        except OSError:
            continue
    return pss / 1024, anon / 1024


def torchrun(store: Path, runs: Path, steps: int) -> dict:
    """Peak summed memory of 1 and of 2 processes (torchrun) pretraining a tiny model on the store."""
    tiny = ["model.dim=32", "model.depth=1", "model.decoder_dim=32", "model.decoder_depth=1", "train.batch_size=64"]
    result = {}
    for world in (1, 2):
        out = runs / f"torchrun{world}"
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(world)]
        argv = [*launch, "-m", "anymae", "pretrain", "--data", str(store), "--steps", str(steps), "--out", str(out)]
        child = subprocess.Popen([*argv, *tiny], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = (0.0, 0.0)
        while child.poll() is None:
            now = memory_of(f"--out\x00{out}\x00")  # the launcher and its workers
            peak = (max(peak[0], now[0]), max(peak[1], now[1]))
            time.sleep(0.2)
        if child.returncode:
            raise SystemExit(f"torchrun with {world} processes failed")
        result[f"{world}_process"] = {"peak_pss_mib": round(peak[0]), "peak_anonymous_mib": round(peak[1])}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--loader-only", action="store_true", help="prepare and measure the data side only")
    parser.add_argument(
        "--torchrun", action="store_true", help="prepare, then 1 vs 2 processes under torchrun only (tiny model)"
    )
    parser.add_argument("--table", action="store_true", help="prepare CSV tables of 28 numeric columns only")
    parser.add_argument(
        "--timing", action="store_true", help="the timed targets only (preparation, first step): for a quiet machine"
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/anymae-corpus"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict = {"load_average_at_start": os.getloadavg(), "cpus": os.cpu_count(), "steps": args.steps, "runs": {}}
    if args.table:
        out = args.out or Path("benchmarks/results/corpus_table.json")
        results = {"load_average_at_start": os.getloadavg(), "cpus": os.cpu_count()}
        results["runs"] = prepare_tables(sizes, args.work)
        results["load_average_at_end"] = os.getloadavg()
        out.write_text(json.dumps(results, indent=1) + "\n")
        return
    if args.timing:
        out = args.out or Path("benchmarks/results/corpus_timing.json")
        results["runs"] = {n: timing(n, args.work, args.steps) for n in sizes}
        results["load_average_at_end"] = os.getloadavg()
        out.write_text(json.dumps(results, indent=1) + "\n")
        return
    args.out = args.out or Path("benchmarks/results/corpus.json")
    for n in sizes:
        fasta, store, runs = args.work / f"p{n}.fasta", args.work / f"p{n}.store", args.work / f"runs{n}"
        if not fasta.exists():
            write_fasta(fasta, n)
        row: dict = {"file_mib": round(fasta.stat().st_size / 2**20)}
        row["prepare"] = run([*ANYMAE, "data", "prepare", str(fasta), "--out", str(store)])
        row["prepare"]["sequences_per_s"] = round(n / row["prepare"]["seconds"])
        row["loader_store"] = loader(str(store))
        if n == sizes[0]:
            row["loader_memory"] = loader(str(fasta))
        if args.loader_only:
            results["runs"][n] = row
            continue
        if args.torchrun:
            row["torchrun_tiny"] = torchrun(store, runs, args.steps)
            results["runs"][n] = row
            continue
        row["pretrain_store"] = pretrain(str(store), runs / "store", args.steps)
        row["pretrain_store_recompute"] = pretrain(str(store), runs / "recompute", args.steps, "train.recompute=true")
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
