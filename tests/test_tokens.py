from __future__ import annotations

import numpy as np
import pytest

from anymae.tokens import ByteSequence, ImagePatches


@pytest.mark.parametrize("patch,channels", [(4, 1), (2, 3), (1, 1)])
def test_image_patches_round_trip(patch, channels):
    spec = ImagePatches(height=8, width=12, image_channels=channels, patch=patch)
    images = np.random.default_rng(0).random((3, 8, 12, channels)).astype(np.float32)
    tokens = spec.tokenize(images)
    assert tokens.inputs.shape == (3, (8 // patch) * (12 // patch), patch * patch * channels)
    assert tokens.valid.all()
    assert np.array_equal(spec.to_images(tokens.inputs), images)
    # the first token is the top-left patch
    assert np.array_equal(tokens.inputs[0, 0].reshape(patch, patch, channels), images[0, :patch, :patch])


def test_image_patches_reject_a_wrong_size():
    with pytest.raises(ValueError, match="expected images of 8x8x1"):
        ImagePatches(height=8, width=8, patch=2).tokenize(np.zeros((2, 8, 6)))


def test_byte_sequence_pads_truncates_and_round_trips():
    spec = ByteSequence(max_tokens=6)
    tokens = spec.tokenize(["héllo", "ab", "abcdefghij"])
    assert tokens.valid.sum(1).tolist() == [6, 2, 6]
    assert spec.to_text(tokens.inputs[1], tokens.valid[1]) == "ab"
    assert spec.to_text(tokens.inputs[0], tokens.valid[0]) == "héllo"
    assert (tokens.inputs[1, 2:] == 0).all()


def test_raw_features_are_bag_of_tokens_for_ids():
    spec = ByteSequence(max_tokens=4)
    features = spec.raw_features(spec.tokenize(["aab", "c"]))
    assert features.shape == (2, 256)
    assert features[0, ord("a")] == pytest.approx(2 / 3) and features[1, ord("c")] == 1.0


def test_the_string_modalities_are_modalities_each_with_its_spec():
    from anymae.config import MODALITIES
    from anymae.tokens import STRING_SPECS

    assert set(STRING_SPECS) <= set(MODALITIES)
    for name, make in STRING_SPECS.items():
        spec = make(32, 1)
        assert spec.name == name and spec.max_tokens == 32
