"""Every modality spec through the same checks: shapes, padding, determinism, a finite
masked-reconstruction loss in a tiny model; then what is particular to each."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anymae.config import MaskingConfig, ModelConfig
from anymae.errors import UserError
from anymae.masking import SELECTORS, build_strategy, mask_counts
from anymae.model import MaskedAutoencoder
from anymae.objective import reconstruction
from anymae.tokens import (
    AlphabetSequence,
    FeatureTokens,
    SeriesPatches,
    ValueSet,
    dna_spec,
    protein_spec,
    smiles_spec,
)

RNG = np.random.default_rng(0)
CASES = {
    "protein": (protein_spec(12), ["MKTAYIAKQRQISFVK", "acdw", "MSTNPK"]),
    "dna": (dna_spec(8), ["ACGT", "ggccaattN", "A"]),
    "smiles": (smiles_spec(16), ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1"]),
    "tabular": (
        FeatureTokens(features=("a", "b", "c"), mean=(0.0, 1.0, 2.0), scale=(1.0, 2.0, 1.0)),
        np.array([[0.5, np.nan, 2.0], [1.0, 3.0, -1.0], [0.0, 1.0, 2.0]]),
    ),
    "set": (ValueSet(channels=4, max_tokens=5), [RNG.random((n, 4)) for n in (3, 7, 1)]),
    "series": (SeriesPatches(max_tokens=4, patch=3), [RNG.random(10), RNG.random(5), RNG.random(30)]),
}
DEFAULT_RATIOS = {"protein": 0.15, "dna": 0.15, "smiles": 0.3, "tabular": 0.2}


@pytest.mark.parametrize("name", list(CASES))
def test_spec_contract(name):
    spec, raw = CASES[name]
    tokens = spec.tokenize(raw)
    n, size = tokens.valid.shape
    assert n == len(raw) and size == spec.max_tokens and tokens.valid.any(1).all()
    if spec.discrete:
        assert tokens.inputs.shape == (n, size) and tokens.inputs.max() < spec.vocab_size
        assert (tokens.inputs[~tokens.valid] == 0).all()
    else:
        assert tokens.inputs.shape == (n, size, spec.channels) and np.isfinite(tokens.inputs).all()
        assert (tokens.inputs[~tokens.valid] == 0).all()
    again = spec.tokenize(raw)
    assert np.array_equal(again.inputs, tokens.inputs) and np.array_equal(again.valid, tokens.valid)
    assert spec.name == name and spec.default_ratio == DEFAULT_RATIOS.get(name, spec.default_ratio)
    assert spec.raw_features(tokens).shape[0] == n

    torch.manual_seed(0)
    config = ModelConfig(dim=32, depth=2, heads=4, decoder_dim=32, decoder_depth=1)
    model = MaskedAutoencoder(spec, config)
    batch = tokens.batch(np.arange(n), spec.discrete)
    out = reconstruction(model, batch, build_strategy(MaskingConfig(), spec), torch.Generator().manual_seed(0))
    assert torch.isfinite(out.loss) and not (out.masked & ~batch.valid).any()


def test_alphabet_ids_round_trip_and_unknown_letters_are_named():
    spec = protein_spec(10)
    tokens = spec.tokenize(["MKWv"])
    assert spec.vocab_size == 26 and spec.to_text(tokens.inputs[0], tokens.valid[0]) == "MKWV"
    with pytest.raises(ValueError, match="record 1: letter 'J' at column 3 is not in the protein alphabet"):
        spec.tokenize(["MK", "MKJ"])
    assert AlphabetSequence("AB", name="ab").invalid("ABC") == "letter 'C' at column 3 is not in the ab alphabet AB"


def test_features_are_standardised_and_missing_values_are_not_tokens():
    spec, raw = CASES["tabular"]
    tokens = spec.tokenize(raw)
    assert tokens.valid.tolist()[0] == [True, False, True]
    assert tokens.inputs[1, 1, 0] == pytest.approx((3.0 - 1.0) / 2.0)
    with pytest.raises(ValueError, match="inf"):
        spec.tokenize(np.array([[np.inf, 0.0, 0.0]]))


def test_sets_are_ordered_by_the_first_value_and_truncated():
    spec = ValueSet(channels=2, max_tokens=2)
    tokens = spec.tokenize([np.array([[1.0, 10.0], [3.0, 30.0], [2.0, 20.0]])])
    assert tokens.inputs[0, :, 1].tolist() == [30.0, 20.0] and tokens.valid.all()
    features = spec.raw_features(tokens)
    assert features[0, 0] == 2 and features.shape == (1, 1 + 2 * 2)


def test_series_patches_pad_the_last_patch_and_are_z_normalised():
    spec = SeriesPatches(max_tokens=3, patch=4, znorm=True)
    tokens = spec.tokenize([np.arange(6.0)])
    assert tokens.valid.tolist() == [[True, True, False]]
    steps = tokens.inputs[0, :2].reshape(-1)[:6]
    assert abs(steps.mean()) < 1e-6 and tokens.inputs[0, 1, 2:].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("strategy", list(SELECTORS))
@pytest.mark.parametrize("name", list(CASES))
def test_every_strategy_on_every_spec_masks_exact_counts_or_refuses_in_one_line(name, strategy):
    spec, raw = CASES[name]
    tokens = spec.tokenize(raw)
    batch = tokens.batch(np.arange(len(raw)), spec.discrete)
    config = MaskingConfig(strategy=strategy, start=0.0)
    if SELECTORS[strategy].needs_grid and spec.grid is None:
        with pytest.raises(UserError, match=f"masking.strategy={strategy} needs tokens on a 2-D grid"):
            build_strategy(config, spec)
        return
    torch.manual_seed(0)
    model = MaskedAutoencoder(spec, ModelConfig(dim=32, depth=2, heads=4, decoder_dim=32, decoder_depth=1)).eval()
    strategy_ = build_strategy(config, spec, model.config)
    with torch.no_grad():
        out = reconstruction(model, batch, strategy_, torch.Generator().manual_seed(0), progress=0.5)
    expected = mask_counts(strategy_.ratio(len(raw), torch.Generator().manual_seed(0)), batch.valid)
    assert out.masked.sum(1).tolist() == expected.tolist() and not (out.masked & ~batch.valid).any()
    assert torch.isfinite(out.loss)
