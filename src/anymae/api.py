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
from anymae.config import Config, DataConfig, load_config, set_value
from anymae.data import Dataset
from anymae.data import load_dataset as load_data_config
from anymae.data.files import MODALITIES
from anymae.errors import UserError
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
        table rows (n, F) in the training columns' order, series (n, T)) or a list of arrays (series, sets)."""
        if isinstance(inputs, (str, Path)):
            return self._file_tokens(Path(inputs), label)
        if self.spec.discrete:
            if isinstance(inputs, np.ndarray) or not all(isinstance(s, str) for s in inputs):
                raise UserError(f"this encoder takes {self.spec.name} strings: pass a list of str (or a file path)")
            samples = []
            for i, sample in enumerate(inputs):
                sample, problem = self.spec.check(sample)  # as the readers check and rewrite them
                if problem:
                    raise UserError(f"inputs[{i}]: {problem}")
                samples.append(sample)
            return self._tokenize(samples)
        if isinstance(inputs, np.ndarray) and isinstance(self.spec, ImagePatches) and inputs.dtype == np.uint8:
            inputs = inputs.astype(np.float32) / 255.0  # as the image readers scale pixels
        return self._tokenize(inputs)

    def embed(self, inputs, label: str = "", batch_size: int = 512) -> np.ndarray:
        """Pooled features (n, D) of the frozen encoder, no masking (as `anymae embed`)."""
        tokens = self.tokens(inputs, label)
        dataset = Dataset("inputs", self.spec, tokens, None, {}, task="none")
        return embed_dataset(self.module, dataset, np.arange(len(tokens)), batch_size)

    def _tokenize(self, raw) -> TokenArrays:
        try:
            return self.spec.tokenize(raw)
        except (ValueError, TypeError) as error:
            raise UserError(f"inputs do not fit this {self.spec.name} encoder: {error}") from None

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
    same = {k: v for k, v in spec_to_dict(spec).items() if k != "max_tokens"}
    other = {k: v for k, v in spec_to_dict(found).items() if k != "max_tokens"}
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
    config = config if isinstance(config, Config) else load_config(config, [])
    dataset = data if isinstance(data, Dataset) else None
    set_value(config, "data.name", data.name if dataset else str(data), source="pretrain()")
    for key, value in (settings or {}).items():
        set_value(config, key, value, source="pretrain()")
    result = run_pretraining(config, Path(out), resume=resume, dataset=dataset)
    return load(result.run_dir)


def load_dataset(name: str | Path, **fields) -> Dataset:
    """A built-in dataset or a user's file as tokens with splits; `fields` are `data.*` settings
    (modality, label, max_tokens, patch, on_bad_record)."""
    config = Config()
    set_value(config, "data.name", str(name), source="load_dataset()")
    for key, value in fields.items():
        set_value(config, f"data.{key}", value, source="load_dataset()")
    return load_data_config(config.data)
