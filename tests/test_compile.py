"""train.compile: the compiled layers give the eager losses and gradients (slow: compiling takes minutes on CPU)."""

from __future__ import annotations

import pytest
import torch

from anymae.objective import reconstruction
from tests.conftest import tiny_model, value_batch
from tests.test_model import some_mask


@pytest.mark.slow
def test_compiled_layers_match_eager(mode):
    batch = value_batch()
    masked = some_mask(batch.valid, 0.5)
    eager, compiled = tiny_model(mode=mode), tiny_model(mode=mode)
    compiled.compile_layers()
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # checkpoints stay interchangeable
    assert hasattr(compiled.guide.attend, "_torchdynamo_orig_callable")  # the known-mask path is compiled too
    losses = [reconstruction(model, batch, masked=masked).loss for model in (eager, compiled)]
    assert losses[1].item() == pytest.approx(losses[0].item(), rel=1e-4)
    grads = [torch.autograd.grad(loss, model.guide.block.q.weight)[0] for loss, model in zip(losses, (eager, compiled))]
    assert torch.allclose(grads[0], grads[1], atol=1e-5)
