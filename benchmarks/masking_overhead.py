"""Training-step cost of each masking strategy relative to random masking, side by side.

All strategies train the same model size on the same real batches (Fashion-MNIST by default),
interleaved round by round so drift on a shared machine hits them alike; the table reports the
median step time of each as a ratio to random masking, and the share of a step spent choosing
the mask (timed alone on the same inputs).

    python benchmarks/masking_overhead.py [--rounds 5] [--steps 10] [--patch 4] [--data fashion-mnist]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from anymae.config import Config, MaskingConfig
from anymae.data import load_dataset
from anymae.masking import SELECTORS, build_strategy
from anymae.masking.selectors import self_guided_mask
from anymae.model import MaskedAutoencoder
from anymae.train import StepContext, make_optimizer, train_step

# every registered strategy (informed from the first step), then variants
STRATEGIES = {name: MaskingConfig(strategy=name, start=0.0) for name in SELECTORS} | {
    "informed@layer2": MaskingConfig(strategy="informed", start=0.0, cut_layer=2),
    "random+attg": MaskingConfig(loss_weighting="attention-guided"),
    "informed+attg": MaskingConfig(strategy="informed", start=0.0, loss_weighting="attention-guided"),
}


def selection_seconds(name: str, model, strategy, batch, generator) -> float:
    """Time to choose one mask (for SMA from the guide layer's logits, as inside the forward pass)."""
    context = strategy.context(model, batch, generator, 1.0)
    with torch.no_grad():
        if name.startswith("sma"):
            x = model.embed_tokens(batch)
            scores = model.guide.guide_logits(x, batch.valid, None)
            start = time.perf_counter()
            self_guided_mask(scores, batch.valid, context.counts, generator)
            return time.perf_counter() - start
        start = time.perf_counter()
        strategy.selector(context)  # one full pass serves selector and weighting
        if strategy.weighting is not None:
            strategy.weighting(context)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--patch", type=int, default=0, help="image patch size (0 = the dataset's default)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per strategy per round")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/masking_overhead.json"))
    args = parser.parse_args()

    config = Config()
    config.data.name, config.data.patch = args.data, args.patch
    dataset = load_dataset(config.data)
    index = dataset.splits["train"][: args.batch_size * args.steps]
    batches = [
        dataset.tokens.batch(index[i : i + args.batch_size], dataset.spec.discrete)
        for i in range(0, len(index), args.batch_size)
    ]
    runs = {}
    for name, masking in STRATEGIES.items():
        torch.manual_seed(0)
        model = MaskedAutoencoder(dataset.spec, config.model)
        runs[name] = (model, build_strategy(masking, dataset.spec, config.model), make_optimizer(model, config.train))
    generator = torch.Generator().manual_seed(0)
    step_times: dict[str, list[float]] = {name: [] for name in runs}
    select_times: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(args.rounds + 1):  # round 0 warms up
        for name, (model, strategy, optimizer) in runs.items():
            model.train()
            context = StepContext(model, optimizer, strategy, generator, config.train.clip)
            start = time.perf_counter()
            for batch in batches:  # the training loop's own step
                train_step(context, [batch], config.train.lr, 0.5)
            if round_:
                step_times[name].append((time.perf_counter() - start) / len(batches))
                select_times[name].append(selection_seconds(name, model, strategy, batches[0], generator))

    base = statistics.median(step_times["random"])
    rows = []
    for name in runs:
        step, select = statistics.median(step_times[name]), statistics.median(select_times[name])
        rows.append(
            {
                "strategy": name,
                "step_ms": 1000 * step,
                "ratio_to_random": step / base,
                "selection_ms": 1000 * select,
                "selection_share": select / step,
            }
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "data": args.data,
        "tokens": dataset.spec.max_tokens,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "steps": args.steps,
        "threads": torch.get_num_threads(),
        "model": vars(config.model),
    }
    args.out.write_text(json.dumps({"setup": meta, "results": rows}, indent=2) + "\n")
    print(
        f"{args.data}: {dataset.spec.max_tokens} tokens, batch {args.batch_size}, median of {args.rounds} rounds "
        f"x {args.steps} steps, {torch.get_num_threads()} threads (raw numbers: {args.out})"
    )
    print(f"{'strategy':<16}{'step ms':>10}{'x random':>10}{'select ms':>11}{'select share':>14}")
    for r in rows:
        print(
            f"{r['strategy']:<16}{r['step_ms']:>10.1f}{r['ratio_to_random']:>10.2f}"
            f"{r['selection_ms']:>11.2f}{r['selection_share']:>14.1%}"
        )


if __name__ == "__main__":
    main()
