"""Training steps under glibc's malloc against tcmalloc (and jemalloc), each in its own process.

glibc serves blocks of 32 MiB or more with fresh mmaps and unmaps them on free, so every step
page-faults its largest activations in again. A preloaded allocator that keeps freed memory
avoids that; its memory must stay bounded when batch shapes vary. Each allocator runs a child
process per round (rounds alternate allocators): random masks at 196 tokens, batch 256, median
step time and minor page faults per step; then 100 steps with a batch size drawn from 96-256
each step, for the peak resident set. Allocators whose library is missing are skipped.
Nothing in anymae preloads an allocator: in the main job itself tcmalloc's gain did not stand
out from this machine's drift (README, Performance).

    python benchmarks/allocator.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

LIBRARIES = {
    "glibc": "",
    "glibc-mmap-1mib": "",  # glibc with a fixed 1 MiB mmap threshold (what the anymae command sets: anymae/heap.py)
    "tcmalloc": "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",  # Debian: libtcmalloc-minimal4
    "jemalloc": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",  # Debian: libjemalloc2
}
SETTINGS = {"glibc-mmap-1mib": {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)}}

CHILD = """
import json, resource, statistics, sys, time
import numpy as np, torch
from anymae.config import MaskingConfig, ModelConfig, TrainConfig
from anymae.masking import build_strategy
from anymae.model import MaskedAutoencoder
from anymae.tokens import ImagePatches, TokenBatch
from anymae.train import make_optimizer, StepContext, train_step

spec = ImagePatches(height=28, width=28, patch=2)  # 196 tokens
images = np.random.default_rng(0).random((256, 28, 28), dtype=np.float32)
arrays = spec.tokenize(images)
valid, values = torch.from_numpy(arrays.valid), torch.from_numpy(arrays.inputs)
batch = TokenBatch(valid=valid, values=values, index=torch.arange(256))
model = MaskedAutoencoder(spec, ModelConfig())
strategy = build_strategy(MaskingConfig(strategy="random"), spec, model.config)
optimizer, generator = make_optimizer(model, TrainConfig()), torch.Generator().manual_seed(0)

def step(size=256):
    part = TokenBatch(valid=batch.valid[:size], values=batch.values[:size], index=batch.index[:size])
    train_step(StepContext(model, optimizer, strategy, generator), [part], lr=1e-4, progress=0.5)

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

if sys.argv[1] == "speed":
    step(), step()
    times, before = [], faults()
    for _ in range(6):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    print(json.dumps({"step_s": statistics.median(times), "faults_per_step": (faults() - before) / 6}))
else:
    sizes = np.random.default_rng(0).integers(96, 257, 100)
    for size in sizes:
        step(int(size))
    print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child(name: str, library: str, task: str) -> dict:
    env = dict(os.environ, **SETTINGS.get(name, {}))  # the child imports anymae, not its CLI (which sets the heap)
    if library:
        env["LD_PRELOAD"] = library
    done = subprocess.run([sys.executable, "-c", CHILD, task], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--allocators", default=",".join(LIBRARIES), help="which of " + ", ".join(LIBRARIES))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/allocator.json"))
    args = parser.parse_args()
    chosen = args.allocators.split(",")
    present = {name: lib for name, lib in LIBRARIES.items() if name in chosen and (not lib or Path(lib).exists())}
    runs: dict[str, list[dict]] = {name: [] for name in present}
    for _ in range(args.rounds):
        for name, library in present.items():
            runs[name].append(child(name, library, "speed"))
    base = statistics.median(r["step_s"] for r in runs["glibc"])
    results = []
    for name, library in present.items():
        seconds = statistics.median(r["step_s"] for r in runs[name])
        row = {
            "allocator": name,
            "library": library,
            "step_s": seconds,
            "speedup_over_glibc": base / seconds,
            "faults_per_step": statistics.median(r["faults_per_step"] for r in runs[name]),
            **child(name, library, "memory"),
        }
        results.append(row)
        print(
            f"{name:<9} {seconds * 1000:6.0f} ms/step  x{row['speedup_over_glibc']:.2f}  "
            f"{row['faults_per_step']:8.0f} faults/step  peak {row['peak_rss_mib']:6.0f} MiB (varying batch)",
            flush=True,
        )
    setup = {"tokens": 196, "batch_size": 256, "rounds": args.rounds, "timed_steps": 6, "memory_steps": 100}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"setup": setup, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
