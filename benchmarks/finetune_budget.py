"""Does the fine-tuning budget let every supervised model converge? With all Fashion-MNIST labels, the
small CNN must reach what a small CNN is known to reach there (at least 0.90 test accuracy), and the
encoder from scratch must stop improving (validation ends its run) before the cap.

Runs each model once (seed 0) with the default `finetune` settings (by epochs, early stopping on
validation) and reports the test score, the steps run, the best step and what ended the run. Writes
benchmarks/results/finetune_budget.json after each model.

    python benchmarks/finetune_budget.py [--models cnn scratch] [--fraction 1.0] [--config configs/image-sma.yaml]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from anymae.baselines import run_baseline
from anymae.config import load_config
from anymae.data import load_dataset
from anymae.finetune import encoder_task, finetune_encoder, label_subset, selection_splits
from anymae.fitting import budget

OUT = Path(__file__).parent / "results" / "finetune_budget.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["cnn", "scratch"])
    parser.add_argument("--fraction", type=float, default=1.0)
    parser.add_argument("--config", default="configs/image-sma.yaml")
    args = parser.parse_args()
    config = load_config(Path(args.config), ["data.name=fashion-mnist"])
    dataset = load_dataset(config.data)
    ft = config.finetune
    train = label_subset(dataset.splits["train"], dataset.labels, args.fraction, 0, True)
    task = encoder_task(dataset, {"train": train, **selection_splits(dataset, ft)})
    batch, cap, every, _ = budget(len(train), ft)
    epoch = math.ceil(len(train) / batch)
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    for name in args.models:
        started = time.perf_counter()
        if name == "scratch":
            result, _ = finetune_encoder(None, dataset, config.model, task, ft, seed=0)
        else:
            result = run_baseline(name, dataset, task, ft, seed=0)
        result = {k: result[k] for k in ("val", "test", "steps_run", "best_step", "stopped")}
        results[f"{name} @ {args.fraction:g}"] = {
            **result,
            "epochs_run": round(result["steps_run"] / epoch, 2),
            "labels": int(len(train)),
            "cap_steps": cap,
            "validated_every": every,
            "seconds": round(time.perf_counter() - started, 1),
            "recipe": args.config,
        }
        OUT.write_text(json.dumps(results, indent=2) + "\n")
        r = results[f"{name} @ {args.fraction:g}"]
        print(
            f"{name:<8} {args.fraction:>5g} labels={r['labels']:>6} test={r['test']:.4f} val={r['val']:.4f} "
            f"steps={r['steps_run']} (best {r['best_step']}; {r['epochs_run']} epochs of cap {cap}) "
            f"ended by {r['stopped']}, {r['seconds']} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
