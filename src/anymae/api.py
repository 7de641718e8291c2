"""The Python API: pretrain an encoder, load a run's encoder, and embed raw inputs with it.

    encoder = anymae.pretrain("breast-cancer", "runs/bc", {"train.steps": 200})
    encoder = anymae.load("runs/bc")            # needs only the checkpoint, not the data
    features = encoder.embed(rows)              # (n, D) NumPy array

A run's checkpoint stores its modality spec (feature names and scales, alphabet, patch size),
so raw inputs become exactly the tokens the encoder was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anymae.checkpoint import load_checkpoint
from anymae.config import MODALITIES, Config, DataConfig, load_config, set_value
from anymae.data import Dataset
from anymae.data import load_dataset as load_data_config
from anymae.data.images import pixel_scale
from anymae.errors import UserError, UserTypeError
from anymae.evaluate import embed as embed_dataset
from anymae.model import MaskedAutoencoder
from anymae.tokens import FeatureTokens, ImagePatches, ModalitySpec, TokenArrays, ValueSet, spec_from_dict, spec_to_dict
from anymae.train import pretrain as run_pretraining


@dataclass
class Encoder:
    """A pretrained encoder: `module` is the torch.nn.Module (the whole masked autoencoder)."""

    module: MaskedAutoencoder
    spec: ModalitySpec
    config: Config
    step: int

    @property
    def dim(self) -> int:
        return self.module.config.dim

    def tokens(self, inputs, label: str = "") -> TokenArrays:
        """Raw inputs as this encoder's tokens: a file path (read like `--data`; `label` names a column to
        leave out), a list of strings (text, proteins, DNA, SMILES), or an array (images (n, H, W[, C]),
        table rows (n, F) in the training columns' order, series (n, T)) or a list of arrays (series, sets).

        Checked as the readers check files: images are scaled as the run's were (integers by its
        pixel scale; floats must lie in [0, 1]), complex or text values are a TypeError, and every
        sample needs a valid token (not empty, not all missing). Mistakes raise UserError (a ValueError)
        or UserTypeError (a TypeError) naming the input."""
        if isinstance(inputs, (str, Path)):
            if not str(inputs).strip():
                raise UserError("inputs is an empty path; to embed text, pass a list of strings")
            return self._file_tokens(Path(inputs), label)
        if self.spec.discrete:
            if isinstance(inputs, np.ndarray) or not all(isinstance(s, str) for s in inputs):
                raise UserTypeError(f"this encoder takes {self.spec.name} strings: pass a list of str (or a file path)")
            samples = []
            for i, sample in enumerate(inputs):
                sample, problem = self.spec.check(sample)  # as the readers check and rewrite them
                if problem:
                    raise UserError(f"inputs[{i}]: {problem}")
                samples.append(sample)
            return self._tokenize(samples)
        if isinstance(self.spec, ImagePatches):
            inputs = self._images(inputs)
        else:
            numeric_arrays(inputs)
        return self._tokenize(inputs)

    def _images(self, inputs) -> np.ndarray:
        """Images scaled to [0, 1] as the run's were (see tokens)."""
        images = np.asarray(numeric_arrays(inputs))
        if images.ndim not in (3, 4):
            hint = " (one image? pass x[None])" if images.ndim == 2 else ""
            raise UserError(f"inputs: images must be (n, H, W) or (n, H, W, C), got shape {images.shape}{hint}")
        scale = pixel_scale("inputs", images)
        if images.dtype.kind in "iu" and self.spec.pixel_scale > 1:  # the run's own scale, recorded with it
            if images.max() > self.spec.pixel_scale:
                raise UserError(
                    f"inputs: pixels up to {images.max()}, but this run's pixels were scaled by "
                    f"1/{self.spec.pixel_scale:g}; pass values in 0-{self.spec.pixel_scale:g} or floats in [0, 1]"
                )
            scale = self.spec.pixel_scale
        return images.astype(np.float32) / np.float32(scale)

    def embed(self, inputs, label: str = "", batch_size: int = 512) -> np.ndarray:
        """Pooled features (n, D) of the frozen encoder, no masking (as `anymae embed`)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise UserError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
        tokens = self.tokens(inputs, label)
        dataset = Dataset("inputs", self.spec, tokens, None, {}, task="none")
        return embed_dataset(self.module, dataset, np.arange(len(tokens)), batch_size)

    def _tokenize(self, raw) -> TokenArrays:
        if len(raw) == 0:
            raise UserError("inputs is empty: pass at least one sample")
        try:
            tokens = self.spec.tokenize(raw)
        except (ValueError, TypeError) as error:
            raise UserError(f"inputs do not fit this {self.spec.name} encoder: {error}") from None
        empty = np.flatnonzero(tokens.valid.sum(1) == 0)
        if len(empty):
            raise UserError(
                f"inputs[{empty[0]}]: no valid token (empty, or every value missing); {len(empty)} such samples"
            )
        return tokens

    def _file_tokens(self, path: Path, label: str) -> TokenArrays:
        """Read a file with the data readers, then map its tokens onto the training spec."""
        if not path.exists():
            raise UserError(f"no such file: {path} (to embed text, pass a list of strings)")
        config = DataConfig(
            name=str(path),
            patch=getattr(self.spec, "patch", 0),
            max_tokens=self.spec.max_tokens,
            modality=self.spec.name if self.spec.name in MODALITIES else "",
            label=label,
        )
        found = load_data_config(config)
        return conform(found.tokens, found.spec, self.spec, path)


def numeric_arrays(inputs):
    """Numbers only: complex values (their imaginary part would be dropped), text and objects are a
    TypeError; inf is refused naming the sample (NaN is a missing value where the modality has them)."""
    parts = [inputs] if isinstance(inputs, np.ndarray) else list(inputs) if isinstance(inputs, (list, tuple)) else None
    if parts is None:
        raise UserTypeError(f"inputs must be an array, a list of arrays or a file path, not {type(inputs).__name__}")
    for i, part in enumerate(parts):
        try:
            array = np.asarray(part)
        except ValueError as error:  # ragged nested lists
            raise UserError(f"inputs[{i}]: not an array of numbers ({error})") from None
        if array.dtype.kind not in "biuf":
            raise UserTypeError(
                f"inputs{'' if len(parts) == 1 and part is inputs else f'[{i}]'}: values must be "
                f"real numbers, got {array.dtype} values"
            )
        if array.dtype.kind == "f" and np.isinf(array).any():
            where = np.argwhere(np.isinf(array))[0]
            raise UserError(f"inputs: inf at index {tuple(int(k) for k in where)}")
    return inputs


def conform(tokens: TokenArrays, found: ModalitySpec, spec: ModalitySpec, where: Path) -> TokenArrays:
    """Tokens read with the spec a reader fitted to one file -> tokens of the training `spec`.

    Tables and sets: undo the file's own standardisation and apply the training one (table
    columns are matched by name). Other specs must agree on everything but the token count.
    """
    if type(found) is not type(spec) or found.name != spec.name:
        raise UserError(f"{where} reads as {found.name} data; this encoder takes {spec.name} data")
    valid = tokens.valid
    if isinstance(spec, (FeatureTokens, ValueSet)):
        values = tokens.inputs[..., 0] if isinstance(spec, FeatureTokens) else tokens.inputs  # (n, F) or (n, N, C)
        raw = values * np.asarray(found.scale or 1.0, np.float32) + np.asarray(found.mean or 0.0, np.float32)
        if isinstance(spec, ValueSet):
            return spec.tokenize([elements[ok] for elements, ok in zip(raw, valid)])
        missing = [name for name in spec.features if name not in found.features]
        if missing:
            raise UserError(f"{where}: no feature {', '.join(missing[:5])} (the encoder was trained on these columns)")
        columns = [found.features.index(name) for name in spec.features]
        return spec.tokenize(np.where(valid, raw, np.nan)[:, columns])
    ignored = ("max_tokens", "pixel_scale")  # pixels are in [0, 1] by then, however they were scaled
    same = {k: v for k, v in spec_to_dict(spec).items() if k not in ignored}
    other = {k: v for k, v in spec_to_dict(found).items() if k not in ignored}
    if same != other:
        differ = ", ".join(f"{k} {other.get(k)} (trained: {v})" for k, v in same.items() if other.get(k) != v)
        raise UserError(f"{where}: its tokens differ from the encoder's: {differ}")
    n = spec.max_tokens  # truncate, or pad with invalid tokens, to the trained length
    inputs, valid = tokens.inputs[:, :n], valid[:, :n]
    if inputs.shape[1] < n:
        width = [(0, 0), (0, n - inputs.shape[1])] + [(0, 0)] * (inputs.ndim - 2)
        inputs, valid = np.pad(inputs, width), np.pad(valid, width[:2])
    return TokenArrays(inputs=inputs, valid=valid)


def load(run: str | Path) -> Encoder:
    """The encoder of a run folder (or checkpoint file), in eval mode on the CPU."""
    saved = load_checkpoint(Path(run))
    if "spec" in saved.extra:
        try:
            spec = spec_from_dict(saved.extra["spec"])
        except (ValueError, TypeError) as error:
            raise UserError(f"{run}: the checkpoint's modality spec is not readable ({error})") from None
    else:  # checkpoints written before the spec was stored: rebuild it from the run's data
        try:
            spec = load_data_config(saved.config.data).spec
        except UserError as error:
            raise UserError(
                f"{run}: this checkpoint predates stored modality specs, and its data could not be read to "
                f"rebuild one ({error})"
            ) from None
    model = MaskedAutoencoder(spec, saved.config.model)
    try:
        model.load_state_dict(saved.model)
    except RuntimeError as error:
        raise UserError(f"{run}: the checkpoint does not fit its own config ({str(error)[:300]})") from None
    return Encoder(model.eval(), spec, saved.config, saved.step)


def pretrain(
    data: str | Path | Dataset,
    out: str | Path,
    settings: dict | None = None,
    config: str | Path | Config | None = None,
    resume: bool = False,
) -> Encoder:
    """Pretrain on a built-in name, a file path or a Dataset; `settings` are dotted keys as on the
    command line ({"train.steps": 500, "model.dim": 64}), applied over `config` (a YAML recipe or a
    Config). Writes the run folder `out` and returns its encoder."""
    check_type("data", data, (str, Path, Dataset))
    check_type("out", out, (str, Path))
    check_type("settings", settings, (dict, type(None)))
    check_type("config", config, (str, Path, Config, type(None)))
    config = config if isinstance(config, Config) else load_config(config, [])
    dataset = data if isinstance(data, Dataset) else None
    set_value(config, "data.name", data.name if dataset else str(data), source="pretrain()")
    for key, value in (settings or {}).items():
        set_value(config, key, value, source="pretrain()")
    result = run_pretraining(config, Path(out), resume=resume, dataset=dataset)
    return load(result.run_dir)


def check_type(argument: str, value, kinds: tuple[type, ...]) -> None:
    """A TypeError naming the argument, not an AttributeError from deep inside."""
    if not isinstance(value, kinds) or isinstance(value, bool):
        names = ", ".join("None" if k is type(None) else k.__name__ for k in kinds)
        example = ' (for example {"train.steps": 2})' if argument == "settings" else ""
        raise UserTypeError(f"{argument} must be one of {names}{example}, got {type(value).__name__}: {value!r:.60}")


def load_dataset(name: str | Path, **fields) -> Dataset:
    """A built-in dataset or a user's file as tokens with splits; `fields` are `data.*` settings
    (modality, label, max_tokens, patch, on_bad_record)."""
    config = Config()
    set_value(config, "data.name", str(name), source="load_dataset()")
    for key, value in fields.items():
        set_value(config, f"data.{key}", value, source="load_dataset()")
    return load_data_config(config.data)
