"""Step time and peak memory against tokens per sample, self and latent modes (byte text).

Each (mode, length) runs full training steps (forward, backward, AdamW) of the default model on
random bytes, batch 8, random masks at the text ratio; each is measured in its own process so
the peak memory is its own (CUDA: allocator peak; CPU: peak resident set growth). Lengths run
from short to long and a mode stops once a step exceeds --max-step-s. Writes
benchmarks/results/scaling.json, a table, and scaling.png (with the `plot` extra).

    python benchmarks/scaling.py [--lengths 256 1024 4096 16384] [--modes self latent] [--steps 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from anymae.config import MaskingConfig, ModelConfig, TrainConfig
from anymae.masking import build_strategy
from anymae.model import MaskedAutoencoder
from anymae.tokens import ByteSequence, TokenBatch
from anymae.train import StepContext, make_optimizer, train_step

sys.path.insert(0, str(Path(__file__).parent))
from throughput import sync  # noqa: E402


def resident_mib(device: torch.device) -> float:
    """Memory in use now: the CUDA allocator's (its peak reset), or the resident set of this process."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**20
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux


def measure(mode: str, length: int, batch_size: int, steps: int, device: torch.device) -> dict:
    spec = ByteSequence(max_tokens=length)
    config = ModelConfig(mode=mode)
    torch.manual_seed(0)
    model = MaskedAutoencoder(spec, config).to(device)
    strategy = build_strategy(MaskingConfig(strategy="random"), spec, config)
    optimizer = make_optimizer(model, TrainConfig())
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 256, (batch_size, length), generator=torch.Generator().manual_seed(0))
    batch = TokenBatch(valid=torch.ones(batch_size, length, dtype=torch.bool), ids=ids).to(device)

    def step() -> float:
        return train_step(StepContext(model, optimizer, strategy, generator), [batch], lr=1e-4, progress=0.5).loss

    before = resident_mib(device)
    times = []
    for _ in range(1 + steps):  # the first is a warm-up; all count for the peak memory
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    memory = peak_mib(device) - before
    times = times[1:]
    return {"mode": mode, "tokens": length, "step_s": min(times), "peak_memory_mib": memory}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    parser.add_argument("--modes", nargs="+", default=["latent", "self"], choices=["self", "latent"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=1, help="timed steps after a warm-up")
    parser.add_argument("--max-step-s", type=float, default=60.0, help="skip longer lengths of a mode past this")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scaling.json"))
    parser.add_argument("--point", nargs=2, metavar=("MODE", "LENGTH"), help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.point:
        print(json.dumps(measure(args.point[0], int(args.point[1]), args.batch_size, args.steps, device)))
        return
    results = []
    for mode in args.modes:
        for length in sorted(args.lengths):
            command = [sys.executable, __file__, "--point", mode, str(length), "--batch-size", str(args.batch_size)]
            command += ["--steps", str(args.steps), "--device", args.device]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                results.append(
                    {"mode": mode, "tokens": length, "error": (done.stderr.strip().splitlines() or ["killed"])[-1]}
                )
                break
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
            if results[-1]["step_s"] > args.max_step_s:
                break
    setup = {"device": str(device), "threads": torch.get_num_threads(), "batch_size": args.batch_size}
    setup.update(torch=torch.__version__, model=vars(ModelConfig()), data="random bytes", masking="random")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"setup": setup, "results": results}, indent=2) + "\n")
    print(f"{'mode':<7} {'tokens':>6} {'step s':>8} {'x 256':>7} {'peak MiB':>9}")
    for r in results:
        if "error" in r:
            print(f"{r['mode']:<7} {r['tokens']:>6}  failed: {r['error'][:80]}")
            continue
        first = next(x for x in results if x["mode"] == r["mode"] and "step_s" in x)
        print(
            f"{r['mode']:<7} {r['tokens']:>6} {r['step_s']:>8.3f} {r['step_s'] / first['step_s']:>7.1f} "
            f"{r['peak_memory_mib']:>9.0f}"
        )
    plot(results, args.out.with_suffix(".png"))


def plot(results: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (the `plot` extra): no plot")
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    for mode in sorted({r["mode"] for r in results}):
        points = [r for r in results if r["mode"] == mode and "step_s" in r]
        tokens = [r["tokens"] for r in points]
        left.plot(tokens, [r["step_s"] for r in points], "o-", label=mode)
        right.plot(tokens, [r["peak_memory_mib"] for r in points], "o-", label=mode)
    for ax, label in ((left, "step time (s)"), (right, "peak memory (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("tokens per sample")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("anymae training step, byte text, batch 8 (to be re-measured on a quiet machine)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
