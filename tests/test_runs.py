"""Damaged, incompatible or busy run folders through `anymae.cli.main`: exit status and one line on stderr.

Each case copies a small finished run (4 steps, a checkpoint every 2, so the previous one is kept
too), damages or misuses it, and runs one command.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from anymae.checkpoint import FILENAME, PREVIOUS, Checkpoint, NonFiniteState, digest, load_checkpoint, save_checkpoint
from anymae.cli import main
from anymae.config import Config
from anymae.errors import EXIT_DIVERGED, UserError
from anymae.runfolder import LOCK

TINY = [
    "model.dim=32",
    "model.depth=2",
    "model.decoder_dim=32",
    "model.decoder_depth=1",
    "train.batch_size=64",
    "train.log_every=100",  # no progress lines on stderr: the error is the only line
    "train.checkpoint_every=2",
    "train.threads=1",
]


def pretrain_argv(out: Path, *more: str, data: str = "digits", steps: int = 4) -> list[str]:
    return ["pretrain", "--data", data, "--steps", str(steps), "--out", str(out), *TINY, *more]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("base") / "run"
    assert main(pretrain_argv(out)) == 0
    return out


def rewrite(path: Path, change, rehash: bool = True) -> None:
    """Change a checkpoint's tensors / metadata in place; with `rehash`, as a consistent (re-signed) file."""
    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as f:
        metadata = dict(f.metadata())
    change(tensors, metadata)
    if rehash:
        metadata["sha256"] = digest(tensors, metadata)
    save_file(tensors, str(path), metadata=metadata)


def first(tensors: dict, prefix: str) -> str:
    return next(k for k in sorted(tensors) if k.startswith(prefix))


def drop_model_tensor(t, m):
    del t[first(t, "model.")]


def add_model_tensor(t, m):
    t["model.surplus.weight"] = torch.zeros(3)


def reshape_model_tensor(t, m):
    key = first(t, "model.")
    t[key] = torch.zeros(t[key].numel() + 1)


def drop_optimizer(t, m):
    for key in [k for k in t if k.startswith("optim.")]:
        del t[key]
    m["optimizer_state"] = "null"


def drop_optimizer_tensor(t, m):
    del t["optim.0.exp_avg"]


def drop_optimizer_param(t, m):  # tensors and listing both gone: the groups no longer match
    groups = json.loads(m["optimizer_groups"])
    groups[0]["params"] = groups[0]["params"][1:]
    m["optimizer_groups"] = json.dumps(groups)


def drop_optimizer_moment(t, m):  # tensor and its listing gone: a consistent file, yet AdamW would half reset
    del t["optim.0.exp_avg"]
    listed = json.loads(m["optimizer_state"])
    listed["0"].remove("exp_avg")
    m["optimizer_state"] = json.dumps(listed)


def reshape_optimizer_moment(t, m):
    t["optim.1.exp_avg_sq"] = torch.zeros(t["optim.1.exp_avg_sq"].numel() + 2)


def reshape_optimizer_tensor(t, m):
    t["optim.0.exp_avg"] = torch.zeros(t["optim.0.exp_avg"].numel() + 2)


def drop_rng(t, m):
    del t["rng.mask"]


def shorten_rng(t, m):
    t["rng.mask"] = t["rng.mask"][:100].clone()


def negative_step(t, m):
    m["step"] = "-3"


def text_step(t, m):
    m["step"] = "four"


def edit_step(t, m):
    m["step"] = "2"


def edit_config(t, m):
    config = json.loads(m["config"])
    config["train"]["lr"] = 0.5
    m["config"] = json.dumps(config)


def old_format(t, m):
    m["format"] = "anymae-checkpoint-1"
    del m["sha256"]


def nan_weights(t, m):
    key = first(t, "model.blocks")
    t[key] = torch.full_like(t[key], float("nan"))


def unknown_tensor(t, m):
    t["stray"] = torch.zeros(2)


def meta(key: str, value: str):
    def change(t, m):
        m[key] = value

    return change


REHASHED = {  # consistent files that are incomplete or wrong: the completeness checks answer
    "drop_model_tensor": (drop_model_tensor, "model tensors missing"),
    "add_model_tensor": (add_model_tensor, "unexpected model tensors"),
    "reshape_model_tensor": (reshape_model_tensor, "has shape"),
    "drop_optimizer_tensor": (drop_optimizer_tensor, "optimizer tensor 'optim.0.exp_avg' is missing"),
    "shorten_rng": (shorten_rng, "RNG state 'rng.mask' has 100"),
    "negative_step": (negative_step, "step -3 in its metadata is negative"),
    "text_step": (text_step, "is not a number"),
    "nan_weights": (nan_weights, "non-finite weights"),
    "unknown_tensor": (unknown_tensor, "unexpected tensor 'stray'"),
    "config_not_mapping": (meta("config", "[1, 2]"), "not a mapping"),
    "config_bad_json": (meta("config", "{not json"), "not a readable anymae checkpoint"),
    "config_bad_value": (meta("config", '{"model": {"dim": "wide"}}'), "model.dim must be an integer"),
    "extra_not_mapping": (meta("extra", '"x"'), "not a mapping"),
    "optimizer_state_list": (meta("optimizer_state", "[0, 1]"), "optimizer_state metadata"),
    "optimizer_groups_mapping": (meta("optimizer_groups", '{"a": 1}'), "optimizer_groups metadata"),
    "no_format": (meta("format", ""), "format is ''"),
}
RESUME_ONLY = {  # fine for embed / probe / show, not for an exact resume
    "drop_optimizer": (drop_optimizer, "no optimizer state"),
    "drop_optimizer_param": (drop_optimizer_param, "optimizer groups hold"),
    "reshape_optimizer_tensor": (reshape_optimizer_tensor, "optimizer tensor 0.exp_avg has shape"),
    "drop_rng": (drop_rng, "RNG state 'mask' is missing"),
    "drop_optimizer_moment": (drop_optimizer_moment, "optimizer state of parameter 0 holds ['exp_avg_sq', 'step']"),
    "reshape_optimizer_moment": (reshape_optimizer_moment, "optimizer tensor 1.exp_avg_sq has shape"),
}
EDITED = {  # edited without re-signing: the SHA-256 answers
    "edit_step": (edit_step, "SHA-256 does not match"),
    "edit_config": (edit_config, "SHA-256 does not match"),
    "old_format": (old_format, "format is 'anymae-checkpoint-1'"),
}


def commands(run: Path, tmp: Path) -> dict[str, list[str]]:
    return {
        "resume": ["pretrain", "--out", str(run), "--resume", "train.steps=6"],
        "embed": ["embed", "--checkpoint", str(run), "--out", str(tmp / "f.npy")],
        "probe": ["probe", "--checkpoint", str(run)],
        "show": ["show", "--checkpoint", str(run), "--out", str(tmp / "m.png"), "--samples", "2"],
    }


def damaged_cases():
    for name, (change, message) in {**REHASHED, **EDITED}.items():
        for command in ("resume", "embed", "probe", "show"):
            yield pytest.param(name, change, name in REHASHED, command, 2, message, id=f"{name}-{command}")
    for name, (change, message) in RESUME_ONLY.items():
        yield pytest.param(name, change, True, "resume", 2, message, id=f"{name}-resume")
        yield pytest.param(name, change, True, "embed", 0, "", id=f"{name}-embed-works")


def one_line(err: str, message: str) -> None:
    assert message in err and "Traceback" not in err and err.count("\n") == 1, err


@pytest.mark.parametrize("name,change,rehash,command,status,message", list(damaged_cases()))
def test_a_damaged_checkpoint_is_refused_in_one_line(
    name, change, rehash, command, status, message, base_run, tmp_path, capsys
):
    if command == "show":
        pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    rewrite(run / FILENAME, change, rehash=rehash)
    (run / PREVIOUS).unlink()
    assert main(commands(run, tmp_path)[command]) == status
    err = capsys.readouterr().err
    if status == 2:
        one_line(err, message)
        assert str(run / FILENAME) in err
    else:
        assert np.isfinite(np.load(tmp_path / "f.npy")).all()


def huge_weights(t, m):  # finite, but the encoder overflows
    for key in [k for k in t if k.startswith("model.blocks") and k.endswith("weight")]:
        t[key] = torch.full_like(t[key], 1e30)


@pytest.mark.parametrize("command", ["embed", "probe", "show"])
def test_features_that_are_not_finite_are_refused(command, base_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    rewrite(run / FILENAME, huge_weights)
    assert main(commands(run, tmp_path)[command]) == 2
    one_line(capsys.readouterr().err, "features are not finite")
    assert not (tmp_path / "f.npy").exists() and not (tmp_path / "m.png").exists()
    assert not (run / "probe.json").exists()


def write_pickle(path: Path) -> None:
    torch.save({"model": torch.zeros(3)}, path)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize(
    "spoil,message",
    [(write_pickle, "not a readable anymae checkpoint"), (truncate, "not a readable"), (empty, "not a readable")],
)
@pytest.mark.parametrize("command", ["resume", "embed", "probe"])
def test_pickles_and_cut_files_are_refused_and_the_previous_checkpoint_is_offered(
    spoil, message, command, base_run, tmp_path, capsys
):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    spoil(run / FILENAME)
    assert main(commands(run, tmp_path)[command]) == 2
    err = capsys.readouterr().err
    one_line(err, message)
    assert f"the previous checkpoint {run / PREVIOUS} (step 2) is whole" in err


def test_the_previous_checkpoint_resumes_a_run_whose_newest_file_is_damaged(base_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    assert load_checkpoint(run / PREVIOUS).step == 2 and load_checkpoint(run).step == 4
    truncate(run / FILENAME)
    os.replace(run / PREVIOUS, run / FILENAME)  # what the error message tells the user to do
    assert main(commands(run, tmp_path)["resume"]) == 0
    assert load_checkpoint(run).step == 6


def test_both_checkpoints_damaged_says_so(base_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    truncate(run / FILENAME)
    truncate(run / PREVIOUS)
    assert main(commands(run, tmp_path)["embed"]) == 2
    one_line(capsys.readouterr().err, f"the previous checkpoint {run / PREVIOUS} is damaged too")


def test_a_flipped_byte_anywhere_is_detected(base_run, tmp_path):
    """20 seeded random offsets: 10 in the header (length prefix and JSON metadata), 10 in the tensor data."""
    original = (base_run / FILENAME).read_bytes()
    header_end = 8 + int.from_bytes(original[:8], "little")
    rng = np.random.default_rng(9)
    offsets = [*rng.integers(0, header_end, 10), *rng.integers(header_end, len(original), 10)]
    path = tmp_path / FILENAME
    for offset in offsets:
        data = bytearray(original)
        data[offset] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(data))
        with pytest.raises(UserError, match=str(path)) as error:
            load_checkpoint(path)
        assert "\n" not in str(error.value)
    path.write_bytes(original)
    assert load_checkpoint(path).step == 4  # and the untouched file loads


def test_the_checksum_check_can_be_skipped_for_huge_files(base_run, tmp_path, monkeypatch):
    path = tmp_path / FILENAME
    shutil.copy(base_run / FILENAME, path)
    rewrite(path, edit_step, rehash=False)
    with pytest.raises(UserError, match="SHA-256"):
        load_checkpoint(path)
    assert load_checkpoint(path, verify=False).step == 2
    monkeypatch.setenv("ANYMAE_SKIP_CHECKSUM", "1")
    assert load_checkpoint(path).step == 2


def test_save_refuses_non_finite_weights_or_optimizer_state(tmp_path):
    weights = {"w": torch.tensor([1.0, float("inf")])}
    with pytest.raises(NonFiniteState, match="model.w"):
        save_checkpoint(tmp_path / FILENAME, Checkpoint(Config(), 1, weights, None, {}, {}))
    optimizer = {"state": {0: {"exp_avg": torch.tensor([float("nan")])}}, "param_groups": []}
    with pytest.raises(NonFiniteState, match="optim.0.exp_avg"):
        save_checkpoint(tmp_path / FILENAME, Checkpoint(Config(), 1, {"w": torch.ones(1)}, optimizer, {}, {}))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("lr", ["1.0e+3", "1.0e+6", "1.0e+30"])
def test_no_learning_rate_leaves_a_checkpoint_with_non_finite_weights(lr, tmp_path, capsys):
    run = tmp_path / "run"
    status = main(pretrain_argv(run, f"train.lr={lr}", "train.checkpoint_every=1", "train.warmup=0", steps=12))
    err = capsys.readouterr().err
    files = [p for p in (run / FILENAME, run / PREVIOUS) if p.exists()]
    for path in files:
        saved = load_checkpoint(path)
        tensors = [*saved.model.values(), *(v for s in saved.optimizer["state"].values() for v in s.values())]
        assert all(torch.isfinite(v).all() for v in tensors), path
    assert status in (0, EXIT_DIVERGED)
    if status == EXIT_DIVERGED:
        assert "Traceback" not in err and err.count("\n") == 1 and "stopped" in err
        if files:
            kept = load_checkpoint(run).step
            assert f"the last good checkpoint, {run / FILENAME} (step {kept}), is kept" in err
        else:
            assert "no checkpoint was written" in err
    assert not list(run.glob("*.tmp"))


def test_divergence_before_any_checkpoint_says_none_was_written(tmp_path, capsys):
    status = main(pretrain_argv(tmp_path / "run", "train.lr=1.0e+30", "train.warmup=0", "train.checkpoint_every=50"))
    err = capsys.readouterr().err
    assert status == EXIT_DIVERGED and "no checkpoint was written" in err and err.count("\n") == 1
    assert not (tmp_path / "run" / FILENAME).exists()


def hold_lock(run: Path):
    run.mkdir(parents=True, exist_ok=True)
    handle = open(run / LOCK, "a+")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    handle.truncate(0)
    handle.write("4242\n")
    handle.flush()
    return handle


def run_case(case: str, base_run: Path, tmp: Path):
    """Set up one misuse; returns (argv, expected status, expected message, a cleanup)."""
    run = tmp / "run"
    if case not in ("fresh-folder", "empty-out", "out-is-file", "unwritable-out", "other-file-data"):
        shutil.copytree(base_run, run)
    if case == "second-run":
        return (
            pretrain_argv(run, "--resume", steps=6),
            2,
            "is in use by another anymae run (process 4242)",
            hold_lock(run),
        )
    if case == "second-run-fresh":
        other = tmp / "busy"
        return pretrain_argv(other), 2, "is in use by another anymae run", hold_lock(other)
    if case == "fresh-into-run":
        return pretrain_argv(run), 2, "already holds a run; pass --resume"
    if case == "resume-model-override":
        return ["pretrain", "--out", str(run), "--resume", "model.dim=64"], 2, "--resume with model.dim changed"
    if case == "resume-masking-override":
        return ["pretrain", "--out", str(run), "--resume", "--strategy", "span"], 2, "masking.strategy changed"
    if case == "resume-lr-override":
        return ["pretrain", "--out", str(run), "--resume", "train.lr=0.5"], 2, "train.lr changed"
    if case == "resume-other-data":
        return ["pretrain", "--out", str(run), "--resume", "--data", "iris"], 2, "--resume on other data"
    if case == "resume-with-config":
        (tmp / "c.yaml").write_text("train:\n  steps: 3\n")
        argv = ["pretrain", "--out", str(run), "--resume", "--config", str(tmp / "c.yaml")]
        return argv, 2, "drop --config"
    if case == "resume-nothing":
        (run / FILENAME).unlink()
        (run / PREVIOUS).unlink()
        return ["pretrain", "--out", str(run), "--resume"], 2, "no checkpoint in"
    if case == "empty-out":
        return ["pretrain", "--data", "digits", "--out", ""], 2, "--out is empty"
    if case == "blank-out":
        return ["pretrain", "--data", "digits", "--out", "  "], 2, "--out is empty"
    if case == "out-is-file":
        tmp.joinpath("file").write_text("x")
        return pretrain_argv(tmp / "file"), 2, "is a file, not a folder"
    if case == "out-under-file":
        tmp.joinpath("file").write_text("x")
        return pretrain_argv(tmp / "file" / "run"), 2, "cannot write to the run folder"
    if case == "unwritable-out":
        return pretrain_argv(Path("/proc/anymae-run")), 2, "cannot write to the run folder"
    if case == "embed-out-folder":
        return ["embed", "--checkpoint", str(run), "--out", str(tmp / "features")], 2, "must name a .npy file"
    if case == "embed-out-empty":
        return ["embed", "--checkpoint", str(run), "--out", ""], 2, "--out is empty"
    if case == "show-out-empty":
        return ["show", "--checkpoint", str(run), "--out", ""], 2, "--out is empty"
    if case == "embed-other-shape":
        np.savez(tmp / "wide.npz", x=np.zeros((40, 16, 16), np.uint8), y=np.zeros(40, int))
        argv = ["embed", "--checkpoint", str(run), "--data", str(tmp / "wide.npz"), "--out", str(tmp / "f.npy")]
        return (
            argv,
            2,
            "the run was trained on images of 8x8 pixels in 2x2 patches (16 tokens), and this data is images of 16x16",
        )
    if case == "other-file-data":  # same path, other contents
        data = tmp / "x.npz"
        np.savez(data, x=np.zeros((60, 8, 8), np.uint8), y=np.zeros(60, int))
        assert main(pretrain_argv(run, data=str(data))) == 0
        np.savez(data, x=np.zeros((90, 8, 8), np.uint8), y=np.zeros(90, int))
        return ["pretrain", "--out", str(run), "--resume", "train.steps=6"], 2, "--resume on other data"
    if case == "probe-model-override":
        return ["probe", "--checkpoint", str(run), "model.dim=64"], 2, "probe takes probe.* and data.* settings"
    if case == "probe-checkpoint-is-folder-of-nothing":
        return ["probe", "--checkpoint", str(tmp)], 2, "no checkpoint at"
    raise AssertionError(case)


MISUSES = [
    "second-run",
    "second-run-fresh",
    "fresh-into-run",
    "resume-model-override",
    "resume-masking-override",
    "resume-lr-override",
    "resume-other-data",
    "resume-with-config",
    "resume-nothing",
    "empty-out",
    "blank-out",
    "out-is-file",
    "out-under-file",
    "unwritable-out",
    "embed-out-folder",
    "embed-out-empty",
    "show-out-empty",
    "embed-other-shape",
    "other-file-data",
    "probe-checkpoint-is-folder-of-nothing",
    "probe-model-override",
]


@pytest.mark.parametrize("case", MISUSES)
def test_a_misused_run_folder_gives_one_line_and_status_2(case, base_run, tmp_path, capsys):
    argv, status, message, *held = run_case(case, base_run, tmp_path)
    capsys.readouterr()
    try:
        assert main(argv) == status
    finally:
        for handle in held:
            handle.close()
    one_line(capsys.readouterr().err, message)


def test_a_read_only_folder_is_refused_before_training(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(0o500)
    try:
        assert main(pretrain_argv(run)) == 2
    finally:
        run.chmod(0o700)
    one_line(capsys.readouterr().err, "cannot write to the run folder")


def test_a_lock_left_by_a_killed_process_does_not_block_a_resume(base_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import fcntl,time; f=open({str(run / LOCK)!r},'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    assert main(commands(run, tmp_path)["resume"]) == 2
    assert "in use by another anymae run" in capsys.readouterr().err
    holder.kill()  # SIGKILL: the kernel drops its lock
    holder.wait()
    assert (run / LOCK).exists()
    assert main(commands(run, tmp_path)["resume"]) == 0
    assert load_checkpoint(run).step == 6


def test_resuming_a_finished_run_says_so_and_exits_0(base_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    before = (run / FILENAME).read_bytes()
    assert main(["pretrain", "--out", str(run), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "already finished (step 4 of train.steps=4)" in out and "nan" not in out
    assert (run / FILENAME).read_bytes() == before


def test_a_fresh_start_replaces_metrics_of_a_run_that_died_before_its_first_checkpoint(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 2, "loss": 9.0}\n{"step": 4, "loss": 8.0}\n{"step": 6, "lo')
    assert main(pretrain_argv(run, "train.log_every=2")) == 0
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4]


def test_a_resume_drops_metric_lines_after_the_checkpoint_and_a_cut_line(base_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    rows = ['{"step": 2, "loss": 1.0}', '{"step": 4, "loss": 1.0}', '{"step": 6, "loss": 1.0}', '{"step": 8, "lo']
    (run / "metrics.jsonl").write_text("\n".join(rows))
    assert main(["pretrain", "--out", str(run), "--resume", "train.steps=6", "train.log_every=2"]) == 0
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]


def test_a_full_disk_while_checkpointing_is_one_line(tmp_path, capsys, monkeypatch):
    import anymae.checkpoint

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(anymae.checkpoint, "save_file", full)
    assert main(pretrain_argv(tmp_path / "run")) == 2
    one_line(capsys.readouterr().err, "No space left on device")
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_probe_prints_its_table_before_a_failed_write_of_probe_json(base_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    (run / "probe.json").mkdir()  # cannot be replaced by a file
    assert main(["probe", "--checkpoint", str(run), "--json"]) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)["pretrained"]["linear"]["test"] >= 0
    progress, error = captured.err.splitlines(keepends=True)  # the probe's progress, then what went wrong
    assert progress.startswith("probe on digits: ") and "samples embedded" in progress
    one_line(error, f"could not write {run / 'probe.json'}")
    assert "the report above is complete" in captured.err


def test_embed_reports_the_file_it_wrote(base_run, tmp_path, capsys):
    out = tmp_path / "sub" / "f.npy"
    assert main(["embed", "--checkpoint", str(base_run), "--out", str(out)]) == 0
    assert f"to {out}, their ids" in capsys.readouterr().out and np.load(out).shape == (1797, 32)
    assert sorted(p.name for p in out.parent.iterdir()) == ["f.ids.txt", "f.npy"]


@pytest.mark.slow
def test_sigkill_inside_checkpoint_writes_then_resume_equals_the_run_left_alone(tmp_path):
    """benchmarks/faults.py in small: 4 kills (2 inside checkpoint writes), each resumed, weights bitwise equal."""
    script = Path(__file__).parent.parent / "benchmarks" / "faults.py"
    out = tmp_path / "faults.json"
    done = subprocess.run(
        [sys.executable, str(script), "--kills", "4", "--steps", "12", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert result["resumes_succeeded"] == "4/4" and result["weights_optimizer_rng_bitwise_equal"]
    assert result["metrics_steps_and_losses_equal"] and result["final_step"] == 12
    assert all(kill["folder_ok"] for kill in result["kills"])


def test_temp_files_left_by_a_write_cut_short_are_cleared_on_resume(base_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    (run / (FILENAME + ".tmp")).write_bytes(b"half a checkpoint")
    (run / (PREVIOUS + ".tmp")).write_bytes(b"")
    assert main(commands(run, tmp_path)["resume"]) == 0
    assert load_checkpoint(run).step == 6 and load_checkpoint(run / PREVIOUS).step == 4
    assert not list(run.glob("*.tmp"))


def test_the_previous_checkpoint_is_copied_where_hard_links_are_not_supported(base_run, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)

    def no_links(*args):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    assert main(commands(run, tmp_path)["resume"]) == 0
    assert load_checkpoint(run).step == 6 and load_checkpoint(run / PREVIOUS).step == 4


def test_a_full_disk_anywhere_else_in_a_run_is_one_line(tmp_path, capsys, monkeypatch):
    import anymae.train

    def full(config, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(anymae.train, "save_config", full)
    assert main(pretrain_argv(tmp_path / "run")) == 2
    one_line(capsys.readouterr().err, f"{tmp_path / 'run' / 'config.yaml'}: No space left on device")


def test_a_format_2_checkpoint_loads_with_its_guide_layer_renamed(base_run, tmp_path):
    """Before the guide layer became a Block, its parameters sat directly under `guide.`; such a
    checkpoint (format 2) still loads, resumes and gives the same weights."""
    path = base_run / FILENAME
    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    old_names = {"block.norm_memory": "norm_kv", "block.norm": "norm_q", "block.": ""}

    def old(key: str) -> str:
        if key.startswith("model.guide.block."):
            rest = key[len("model.guide.") :]
            for new, before in old_names.items():
                if rest.startswith(new + ".") or (new.endswith(".") and rest.startswith(new)):
                    return "model.guide." + before + rest[len(new) :]
        return key

    old_tensors = {old(k): v for k, v in tensors.items()}
    assert "model.guide.norm_q.weight" in old_tensors and "model.guide.mlp.0.weight" in old_tensors
    metadata = {**metadata, "format": "anymae-checkpoint-2"}
    metadata["sha256"] = digest(old_tensors, metadata)
    run = tmp_path / "old"
    shutil.copytree(base_run, run)
    save_file(old_tensors, str(run / FILENAME), metadata=metadata)
    loaded, current = load_checkpoint(run), load_checkpoint(base_run)
    assert sorted(loaded.model) == sorted(current.model)
    assert all(torch.equal(loaded.model[k], current.model[k]) for k in current.model)
    assert main(["probe", "--checkpoint", str(run)]) == 0
