"""The engine: checkpoint round trip, exact resume, a clear stop on a non-finite loss."""

from __future__ import annotations

import json
import math

import numpy as np
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


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, digits, monkeypatch):
    config = tiny_config(steps=8)
    pretrain(config, tmp_path, dataset=digits, stop_after=4)
    fingerprint = load_checkpoint(tmp_path).extra["data"]  # the resume's data check passes on the poisoned data
    monkeypatch.setattr("anymae.train.data_fingerprint", lambda dataset: fingerprint)
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


def all_specs():
    """Every modality spec (tests/test_specs.py's cases), images and bytes."""
    from anymae.tokens import ByteSequence, ImagePatches
    from tests.test_specs import CASES

    return {**{name: spec for name, (spec, _) in CASES.items()}, "image": ImagePatches(8, 8), "text": ByteSequence(16)}


@pytest.mark.parametrize("mode", ["self", "latent"])
@pytest.mark.parametrize("name", list(all_specs()))
def test_weight_decay_goes_to_every_weight_matrix_and_nothing_else(name, mode):
    from anymae.config import ModelConfig
    from anymae.model import MaskedAutoencoder
    from anymae.train import make_optimizer

    config = ModelConfig(mode=mode, dim=32, depth=2, heads=4, latents=4, decoder_dim=32, decoder_depth=1)
    model = MaskedAutoencoder(all_specs()[name], config)
    decay, no_decay = make_optimizer(model, tiny_config().train).param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    kept = {names[id(p)] for p in no_decay["params"]}
    assert decayed.isdisjoint(kept) and decayed | kept == set(names.values())  # each parameter in exactly one group
    embeddings = {"position", "decoder_position", "latents", "mask_token"}
    assert decayed == {n for n, p in model.named_parameters() if p.ndim >= 2 and n not in embeddings}
    assert "head.weight" in decayed and "embed.weight" in decayed  # the tabular head too (shape[0] == 1)
    assert all(n.endswith("bias") or "norm" in n or n in embeddings for n in kept)
    if mode == "latent":
        assert "latents" in kept


def test_resume_is_exact_with_running_position_means(tmp_path, digits):
    config = tiny_config(steps=8)
    config.masking.strategy, config.masking.position_debias = "sma", True
    straight = pretrain(config, tmp_path / "straight", dataset=digits)
    pretrain(config, tmp_path / "resumed", dataset=digits, stop_after=4)
    saved = load_checkpoint(tmp_path / "resumed").extra["masking"]
    assert saved["updates"] == 4 and len(saved["position_mean"]) == digits.spec.max_tokens
    resumed = pretrain(config, tmp_path / "resumed", dataset=digits, resume=True)
    assert resumed.final_loss == straight.final_loss
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    assert a.extra == b.extra
    for name in a.model:
        assert torch.equal(a.model[name], b.model[name]), name


def test_resume_is_exact_with_kept_informed_scores(tmp_path, digits):
    config = tiny_config(steps=8)
    config.train.batch_size = 512  # about 3 batches an epoch: rows are drawn again within the run
    config.masking.strategy, config.masking.start, config.masking.refresh_every = "informed", 0.0, 2
    straight = pretrain(config, tmp_path / "straight", dataset=digits)
    pretrain(config, tmp_path / "resumed", dataset=digits, stop_after=4)
    kept = load_checkpoint(tmp_path / "resumed").masking
    assert set(kept) == {"masking/scores", "masking/uses"} and kept["masking/uses"].max() == 2
    resumed = pretrain(config, tmp_path / "resumed", dataset=digits, resume=True)
    assert resumed.final_loss == straight.final_loss
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    assert torch.equal(a.masking["masking/scores"], b.masking["masking/scores"])
    for name in a.model:
        assert torch.equal(a.model[name], b.model[name]), name


def test_train_step_makes_no_update_on_a_non_finite_loss(digits):
    from anymae.masking import build_strategy
    from anymae.model import MaskedAutoencoder
    from anymae.train import StepContext, make_optimizer, train_step

    config = tiny_config()
    model = MaskedAutoencoder(digits.spec, config.model)
    optimizer = make_optimizer(model, config.train)
    strategy = build_strategy(config.masking, digits.spec, config.model)
    batch = digits.tokens.batch(np.arange(16), False)
    batch.values[:] = float("nan")
    before = {n: p.clone() for n, p in model.named_parameters()}
    result = train_step(StepContext(model, optimizer, strategy, torch.Generator().manual_seed(0)), [batch], 1e-3, 0.0)
    assert math.isnan(result.loss) and len(result.masked) == 1
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
