"""Training throughput of anymae against Hugging Face's ViTMAEForPreTraining, side by side.

Both models are built here with no download, at the same width, depth, heads, decoder, tokens,
mask ratio and batch (28x28 one-channel images, patch 4 -> 49 tokens, patch 2 -> 196 tokens).
Full training steps (forward, backward, AdamW) are timed, alternating the models round by round
in one process so drift on a shared machine hits them alike; a model's step time is its median
round's mean step. Reported per size: samples/s, the ratio to the reference, peak memory of a
step (CUDA: allocator peak; CPU: growth of the resident set in a forked process) and the share of
this machine's measured fp32 matmul peak (the larger of two measurements, before and after) that
anymae's counted FLOPs reach. Needs the `bench` extra (pip install -e ".[bench]").

    python benchmarks/throughput.py [--tokens 49 196] [--rounds 3] [--steps 4] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from anymae.config import MaskingConfig, ModelConfig, TrainConfig
from anymae.masking import build_strategy
from anymae.model import MaskedAutoencoder
from anymae.tokens import ImagePatches, TokenBatch
from anymae.train import StepContext, make_optimizer, train_step

STRATEGIES = {
    "random": MaskingConfig(strategy="random"),
    "sma": MaskingConfig(strategy="sma"),
    "informed": MaskingConfig(strategy="informed", start=0.0),
    # each sample's scores kept for 4 draws (4 epochs): one full pass in 4 steps, as in training after warm-up
    "informed-keep4": MaskingConfig(strategy="informed", start=0.0, refresh_every=4),
}


def anymae_step(model, batch: TokenBatch, strategy, optimizer, generator: torch.Generator) -> float:
    """One training step, the engine's own."""
    return train_step(StepContext(model, optimizer, strategy, generator), [batch], lr=1e-4, progress=0.5).loss


def reference_model(config: ModelConfig, patch: int, ratio: float):
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    hf = ViTMAEConfig(
        hidden_size=config.dim,
        num_hidden_layers=config.depth,
        num_attention_heads=config.heads,
        intermediate_size=int(config.dim * config.mlp_ratio),
        decoder_hidden_size=config.decoder_dim,
        decoder_num_hidden_layers=config.decoder_depth,
        decoder_num_attention_heads=config.decoder_heads,
        decoder_intermediate_size=int(config.decoder_dim * config.mlp_ratio),
        image_size=28,
        patch_size=patch,
        num_channels=1,
        mask_ratio=ratio,
        norm_pix_loss=config.norm_targets,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    hf._attn_implementation = "sdpa"
    return ViTMAEForPreTraining(hf)


def matmul_peak(device: torch.device, size: int = 2048, reps: int = 5) -> float:
    """The best fp32 matmul rate (FLOP/s) of `reps` products of two size x size matrices."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(reps + 1):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_memory(step: Callable[[], object], device: torch.device) -> float:
    """MiB a step needs at its peak beyond what was allocated before it (CUDA: allocator peak;
    CPU: growth of the peak resident set over two steps, so measure each model in its own process)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    with open("/proc/self/statm") as statm:
        before = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**10  # resident KiB now
    step()
    step()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024  # ru_maxrss: KiB on Linux


def memory_in_child(name: str, n_tokens: int, args: argparse.Namespace) -> float:
    """Run `peak_memory` for one model in a fresh process (the CPU peak resident set never falls)."""
    command = [sys.executable, __file__, "--memory-of", name, "--tokens", str(n_tokens)]
    command += ["--batch-size", str(args.batch_size), "--device", args.device]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    return float(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else float("nan")


# torch's counter has no formula for the CPU flash-attention kernels SDPA picks: give it the same ones it uses on CUDA
CPU_ATTENTION_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: lambda q, k, v, *a, **kw: sdpa_flop_count(q, k, v),
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: (
        lambda g, q, k, v, *a, **kw: sdpa_backward_flop_count(g, q, k, v)
    ),
}


def step_flops(step: Callable[[], object]) -> int:
    """Counted FLOPs of one step (matmuls and attention; elementwise work is not counted)."""
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS) as counter:
        step()
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, nargs="+", default=[49, 196], choices=[16, 49, 196, 784])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each model's step time is the median round")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per model per round (a round: their mean)")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models (memory measured eagerly)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/throughput.json"))
    parser.add_argument("--memory-of", default="", help=argparse.SUPPRESS)  # internal: one model's peak memory
    args = parser.parse_args()
    device = torch.device(args.device)
    config, ratio = ModelConfig(), 0.75
    if args.memory_of:
        steps = build_steps(args.tokens[0], config, ratio, args.batch_size, [args.memory_of], device)
        print(peak_memory(steps[args.memory_of], device))
        return
    peak = matmul_peak(device)
    results = []
    for n_tokens in args.tokens:
        steps = build_steps(n_tokens, config, ratio, args.batch_size, ["reference", *args.strategies], device)
        parameters = {name: sum(p.numel() for p in step.model.parameters()) for name, step in steps.items()}
        flops = {name: sum(step_flops(step) for _ in range(args.steps)) / args.steps for name, step in steps.items()}
        if device.type == "cuda":
            memory = {name: peak_memory(step, device) for name, step in steps.items()}
        else:
            memory = {name: memory_in_child(name, n_tokens, args) for name in steps}
        if args.compile:  # after counting: the counter does not see inside compiled graphs
            for name, step in steps.items():
                if name == "reference":
                    step.model.compile(dynamic=True)
                else:
                    step.model.compile_layers()
        times: dict[str, list[float]] = {name: [] for name in steps}
        for step in steps.values():  # warm-up
            step()
        for _ in range(args.rounds):
            for name, step in steps.items():
                sync(device)
                start = time.perf_counter()
                for _ in range(args.steps):
                    step()
                sync(device)
                times[name].append((time.perf_counter() - start) / args.steps)
        base = statistics.median(times["reference"])
        for name in steps:
            seconds = statistics.median(times[name])
            results.append(
                {
                    "tokens": n_tokens,
                    "model": name if name == "reference" else f"anymae-{name}",
                    "step_s": seconds,
                    "samples_per_s": args.batch_size / seconds,
                    "ratio_to_reference": base / seconds,
                    "peak_memory_mib": memory[name],
                    "gflop_per_step": flops[name] / 1e9,
                    "parameters": parameters[name],
                }
            )
    peak = max(peak, matmul_peak(device))  # measured before and after: a transient slow-down once gave 127 for 185
    for r in results:
        r["share_of_matmul_peak"] = r["gflop_per_step"] * 1e9 / r["step_s"] / peak
    setup = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "steps": args.steps,
        "mask_ratio": ratio,
        "matmul_peak_gflop_s": peak / 1e9,
        "torch": torch.__version__,
        "compiled": args.compile,
        "model": vars(config),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"setup": setup, "results": results}, indent=2) + "\n")
    print(f"fp32 matmul peak {peak / 1e9:.0f} GFLOP/s, {torch.get_num_threads()} threads, batch {args.batch_size}")
    print(f"{'tokens':>6}  {'model':<18} {'samples/s':>10} {'x ref':>6} {'peak MiB':>9} {'GFLOP':>7} {'% peak':>7}")
    for r in results:
        print(
            f"{r['tokens']:>6}  {r['model']:<18} {r['samples_per_s']:>10.1f} {r['ratio_to_reference']:>6.2f} "
            f"{r['peak_memory_mib']:>9.0f} {r['gflop_per_step']:>7.1f} {100 * r['share_of_matmul_peak']:>6.0f}%"
        )


@dataclass
class Step:
    """One model's training step on a fixed batch, callable."""

    model: torch.nn.Module
    run: Callable[[], object]

    def __call__(self) -> object:
        return self.run()


def build_steps(
    n_tokens: int, config: ModelConfig, ratio: float, batch_size: int, names: list[str], device: torch.device
) -> dict[str, Step]:
    """The same random 28x28 images for every model; `reference` is ViTMAE, the others anymae strategies."""
    patch = int(round(28 / n_tokens**0.5))
    spec = ImagePatches(height=28, width=28, patch=patch)
    images = np.random.default_rng(0).random((batch_size, 28, 28), dtype=np.float32)
    arrays = spec.tokenize(images)
    index = torch.arange(batch_size)  # sample rows, so that kept informed scores are found again
    batch = TokenBatch(valid=torch.from_numpy(arrays.valid), values=torch.from_numpy(arrays.inputs), index=index)
    batch = batch.to(device)
    pixels = torch.from_numpy(images)[:, None].to(device)
    steps = {}
    for name in names:
        torch.manual_seed(0)
        if name == "reference":
            model = reference_model(config, patch, ratio).to(device)
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            steps[name] = Step(model, lambda m=model, o=optimizer: reference_step(m, pixels, o))
            continue
        model = MaskedAutoencoder(spec, config).to(device)
        strategy = build_strategy(STRATEGIES[name], spec, config)
        optimizer = make_optimizer(model, TrainConfig())
        generator = torch.Generator().manual_seed(0)
        steps[name] = Step(model, lambda m=model, s=strategy, o=optimizer, g=generator: anymae_step(m, batch, s, o, g))
    return steps


def reference_step(model, pixels: torch.Tensor, optimizer) -> torch.Tensor:
    loss = model(pixel_values=pixels).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss


if __name__ == "__main__":
    main()
