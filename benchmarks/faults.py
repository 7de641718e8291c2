"""Crash safety: SIGKILL a training run at random moments, resume it each time, compare with a run left alone.

A small run on `digits` writes a checkpoint after every step (train.checkpoint_every=1). It is
killed with SIGKILL `--kills` times: half of the kills wait for a checkpoint write to be under way
(its temp file exists) and strike inside it, the others strike at a random instant of a step (the
first one early, maybe before any checkpoint). After each kill the folder must load cleanly, and the
run is started again (with --resume once a checkpoint exists). At the end the weights, optimizer
and RNG states must equal those of an uninterrupted run bit for bit, and metrics.jsonl must hold
each step once, with the same losses.

    .venv/bin/python benchmarks/faults.py                      # writes benchmarks/results/faults.json
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from anymae.checkpoint import FILENAME, load_checkpoint

SETTINGS = [
    "model.dim=32",
    "model.depth=2",
    "model.decoder_dim=32",
    "model.decoder_depth=1",
    "train.batch_size=64",
    "train.checkpoint_every=1",
    "train.log_every=1",
    "train.threads=1",
]


def launch(out: Path, steps: int, log: Path) -> subprocess.Popen:
    resume = ["--resume"] if (out / FILENAME).exists() else []
    argv = [sys.executable, "-m", "anymae", "pretrain", "--data", "digits", "--steps", str(steps), "--out", str(out)]
    with open(log, "a") as sink:
        return subprocess.Popen([*argv, *resume, *SETTINGS], stdout=sink, stderr=sink)


def logged_steps(out: Path) -> int:
    path = out / "metrics.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


def wait_for(condition, process: subprocess.Popen, limit: float = 300.0) -> bool:
    """Poll (tightly) until `condition()` or the process ends; True if the condition came first."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.0002)
    raise TimeoutError("the training process made no progress")


def metrics(out: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "faults.json")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="anymae-faults-"))
    log = work / "log.txt"

    reference = work / "straight"
    started = time.perf_counter()
    assert launch(reference, args.steps, log).wait() == 0, log.read_text()
    reference_s = time.perf_counter() - started

    run = work / "killed"
    kills, resumes_ok = [], 0
    for i in range(args.kills):
        process = launch(run, args.steps, log)
        resumed_from = load_checkpoint(run).step if (run / FILENAME).exists() else None
        launched = time.perf_counter()
        before = logged_steps(run)
        wait_for(lambda before=before: logged_steps(run) > before, process)  # training has started
        tmp = run / (FILENAME + ".tmp")
        if i == 0:
            kind = "early (right after the first step)"
        elif i % 2:
            kind = "inside a checkpoint write"
            wait_for(tmp.exists, process)
        else:
            kind = "random instant of a step"
            time.sleep(rng.uniform(0.0, 0.2))
        ran = process.poll() is None
        process.send_signal(signal.SIGKILL)
        process.wait()
        record = {
            "kill": i + 1,
            "moment": kind,
            "seconds_after_launch": round(time.perf_counter() - launched, 3),
            "resumed_from_step": resumed_from,
            "temp_file_left": tmp.exists(),
            "process_was_running": ran,
        }
        try:  # the folder must hold a whole checkpoint (or none, if killed before the first one)
            record["checkpoint_step_after_kill"] = load_checkpoint(run).step if (run / FILENAME).exists() else None
            record["folder_ok"] = True
        except Exception as error:  # noqa: BLE001 - any failure is the finding
            record["folder_ok"], record["error"] = False, str(error)
        resumes_ok += (
            i > 0 and ran and record["folder_ok"]
        )  # the restart before this kill trained and left a whole folder
        kills.append(record)
        print(json.dumps(record), flush=True)

    final = launch(run, args.steps, log)
    final_ok = final.wait() == 0
    resumes_ok += final_ok
    a, b = load_file(str(reference / FILENAME)), load_file(str(run / FILENAME))
    equal = a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)
    same_metrics = metrics(reference) == metrics(run)
    result = {
        "command": "python benchmarks/faults.py " + " ".join(sys.argv[1:]),
        "settings": ["--data digits", f"--steps {args.steps}", *SETTINGS],
        "uninterrupted_run_s": round(reference_s, 1),
        "kills": kills,
        "kills_inside_checkpoint_writes": sum(k["temp_file_left"] for k in kills),
        "resumes_succeeded": f"{resumes_ok}/{args.kills}",
        "final_step": load_checkpoint(run).step if final_ok else None,
        "weights_optimizer_rng_bitwise_equal": equal,
        "metrics_steps_and_losses_equal": same_metrics,
    }
    print(
        f"resumes succeeded: {resumes_ok}/{args.kills}; "
        f"kills inside checkpoint writes: {result['kills_inside_checkpoint_writes']}; "
        f"final weights, optimizer and RNG states bitwise equal to the uninterrupted run: {equal}; "
        f"metrics equal: {same_metrics}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if resumes_ok == args.kills and equal:
        shutil.rmtree(work)
    else:
        print(f"kept {work} for inspection")
    return 0 if resumes_ok == args.kills and equal and same_metrics else 1


if __name__ == "__main__":
    sys.exit(main())
