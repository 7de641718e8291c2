"""The engine: checkpoint round trip, exact resume, a clear stop on a non-finite loss."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from anymae.checkpoint import FILENAME, load_checkpoint
from anymae.config import Config
from anymae.data import load_dataset
from anymae.errors import TrainingDiverged, UserError
from anymae.train import batch_order, learning_rate, load_model, pretrain


def tiny_config(steps: int = 8) -> Config:
    config = Config()
    config.data.name = "digits"
    config.model.dim, config.model.depth, config.model.decoder_dim, config.model.decoder_depth = 32, 2, 32, 1
    config.train.steps, config.train.batch_size, config.train.log_every = steps, 64, 2
    config.train.checkpoint_every = 4
    return config


@pytest.fixture(scope="module")
def digits():
    return load_dataset(tiny_config().data)


def test_checkpoint_round_trip_restores_weights_optimizer_and_generator(tmp_path, digits):
    config = tiny_config()
    pretrain(config, tmp_path, dataset=digits)
    saved = load_checkpoint(tmp_path)
    assert saved.step == 8 and saved.config == config
    model, loaded_config = load_model(tmp_path, digits)
    assert loaded_config == config
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, saved.model[name])
    assert saved.optimizer["state"] and len(saved.optimizer["param_groups"]) == 2
    assert saved.generators["mask"].dtype == torch.uint8
    # the file is plain safetensors: nothing to unpickle
    assert any(key.startswith("optim.") for key in load_file(str(tmp_path / FILENAME)))
    assert not list(tmp_path.glob("*.tmp"))


def test_resume_reproduces_the_uninterrupted_run(tmp_path, digits):
    config = tiny_config(steps=12)
    straight = pretrain(config, tmp_path / "straight", dataset=digits)
    pretrain(config, tmp_path / "resumed", dataset=digits, stop_after=6)
    assert load_checkpoint(tmp_path / "resumed").step == 6
    resumed = pretrain(config, tmp_path / "resumed", dataset=digits, resume=True)
    assert resumed.steps == 12
    assert resumed.final_loss == pytest.approx(straight.final_loss, rel=1e-5)
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    for name in a.model:
        assert torch.allclose(a.model[name], b.model[name], atol=1e-6), name
    lines = [json.loads(x) for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == list(range(2, 13, 2))


def test_a_run_folder_is_not_overwritten_without_resume(tmp_path, digits):
    pretrain(tiny_config(steps=2), tmp_path, dataset=digits)
    with pytest.raises(UserError, match="--resume"):
        pretrain(tiny_config(steps=2), tmp_path, dataset=digits)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, digits):
    config = tiny_config(steps=8)
    pretrain(config, tmp_path, dataset=digits, stop_after=4)
    digits.tokens.inputs[:] = float("nan")  # poison the data from step 5 on
    try:
        with pytest.raises(TrainingDiverged, match="step 5"):
            pretrain(config, tmp_path, dataset=digits, resume=True)
    finally:
        digits.tokens.inputs[:] = load_dataset(config.data).tokens.inputs
    assert load_checkpoint(tmp_path).step == 4


def test_learning_rate_warms_up_then_decays():
    config = tiny_config(steps=100).train
    config.warmup = 0.1
    lrs = [learning_rate(s, config) for s in range(100)]
    assert lrs[0] == pytest.approx(config.lr / 10) and lrs[9] == pytest.approx(config.lr)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] < 0.01 * config.lr


def test_batch_order_is_stateless_and_covers_each_epoch():
    first = list(zip(range(7), batch_order(10, 3, seed=1, start=0)))
    again = list(zip(range(4), batch_order(10, 3, seed=1, start=3)))
    assert all((a[1] == b[1]).all() for a, b in zip(first[3:], again))
    epoch = set(map(int, [i for _, b in first[:3] for i in b]))
    assert len(epoch) == 9  # 3 full batches of distinct samples, the last one dropped
