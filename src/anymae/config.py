"""Typed configuration: one dataclass per part, YAML recipes, dotted `key=value` overrides."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from anymae.errors import UserError


@dataclass
class DataConfig:
    name: str = "fashion-mnist"  # a built-in dataset name or a path
    patch: int = 0  # image patch size in pixels (1 = pixels as tokens); 0 = the dataset's default
    max_tokens: int = 256  # longest sequence kept (longer ones are truncated)
    modality: str = ""  # users' files: text|protein|dna|smiles|tabular|image|set|series; "" = inferred
    label: str = ""  # users' tables: the label column ("" = unlabelled)
    on_bad_record: str = "fail"  # fail | skip (skipped records are counted and reported)


@dataclass
class ModelConfig:
    mode: str = "self"  # "self": MAE-style self-attention; "latent": learned latents, linear in N
    dim: int = 128
    depth: int = 4  # encoder layers, the guide layer included
    heads: int = 4
    mlp_ratio: float = 4.0
    latents: int = 32  # latent mode only
    decoder_dim: int = 64
    decoder_depth: int = 2
    decoder_heads: int = 4
    norm_targets: bool = True  # continuous tokens: per-token normalised targets (MAE's norm_pix)


@dataclass
class MaskingConfig:
    strategy: str = "random"  # random | span | block | sma | informed
    ratio: str = ""  # "fixed:R" or "uniform:LO,HI"; empty = the modality's default fixed ratio
    per_sample: bool = False  # uniform ratio: one draw per sample instead of per batch
    span_length: float = 3.0  # span: mean of the geometric span length
    # sma (self-guided, from the guide layer's attention in the same pass)
    per_query: int = 3  # k: tokens masked per chosen query row
    aggregation: str = "mean"  # mean | random_mix (one head per query row)
    mask_self: bool = True  # self mode: the chosen query tokens are masked too
    curriculum: bool = False  # random -> self-guided by a half cosine over the first `schedule` of training
    schedule: float = 0.25
    guide_scores: str = "full"  # full (faithful) | content: select from logits without position embeddings
    position_debias: bool = False  # subtract each position's batch-mean score before the top-k
    # informed (Self-Guided MAE: normalized cut of the model's own features)
    start: float = 0.2  # random masks before this fraction of training
    rank: str = "main"  # main | ambiguous
    hint: float = 0.1  # share of the chosen tokens swapped for random ones
    cut_tau: float = 0.2  # affinities below this are set to eps
    cut_layer: int = 0  # encoder layer whose token features are cut (1 = guide layer; 0 = the last)
    # loss weighting
    loss_weighting: str = "uniform"  # uniform | attention-guided
    map_source: str = "cut"  # attention-guided: cut | attention | given
    tau: float = 0.75  # w = exp(M / tau)
    tau_end: float = 0.0  # > 0: tau follows a half cosine from `tau` to `tau_end`
    normalise: str = "masked"  # masked: sum(w l m) / sum(m); weights: sum(w l m) / sum(w m)


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 256
    lr: float = 1.5e-3
    min_lr: float = 1.0e-5
    weight_decay: float = 0.05
    warmup: float = 0.05  # fraction of steps with linear warm-up
    clip: float = 1.0  # gradient-norm clipping (0 = off)
    accumulate: int = 1  # gradient accumulation steps per optimizer step
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 500
    device: str = "auto"  # "auto", "cpu" or "cuda"
    threads: int = 0  # torch CPU threads; 0 = torch's default


@dataclass
class ProbeConfig:
    max_train: int = 10000  # labelled training examples used by the probes (subsampled, fixed seed)
    knn_k: int = 20
    batch_size: int = 512


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> Config:
        config = cls()
        for key, value in flatten(values).items():
            set_value(config, key, value, source)
        return config


def flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def coerce(value, kind, key: str, source: str):
    """Check (and, for int -> float, convert) a value against a field's type."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    matches = isinstance(value, bool) if kind is bool else isinstance(value, kind) and not isinstance(value, bool)
    if not matches:
        raise UserError(f"{source}: {key} must be {kind.__name__}, got {value!r}")
    return value


def set_value(config: Config, key: str, value, source: str) -> None:
    section_name, _, name = key.partition(".")
    section = getattr(config, section_name, None) if name else None
    if (
        section is None
        or not dataclasses.is_dataclass(section)
        or name not in {f.name for f in dataclasses.fields(section)}
    ):
        raise UserError(f"{source}: unknown setting '{key}' (known: {', '.join(known_keys())})")
    kind = typing.get_type_hints(type(section))[name]
    setattr(section, name, coerce(value, kind, key, source))


def known_keys() -> list[str]:
    return list(flatten(Config().to_dict()))


def parse_override(text: str) -> tuple[str, object]:
    """'train.lr=3e-4' -> ('train.lr', 0.0003); values are read as YAML scalars."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise UserError(f"override '{text}' is not of the form key=value (for example train.steps=500)")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_config(path: Path | None, overrides: list[str]) -> Config:
    """Defaults, then a YAML recipe, then `key=value` overrides."""
    values: dict = {}
    if path is not None:
        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise UserError(f"config file not found: {path}") from None
        except yaml.YAMLError as error:
            raise UserError(f"{path}: not valid YAML: {error}") from None
        if not isinstance(values, dict):
            raise UserError(f"{path}: expected a mapping of sections (data, model, masking, train, probe)")
    config = Config.from_dict(values, source=str(path or "config"))
    for text in overrides:
        key, value = parse_override(text)
        set_value(config, key, value, source="command line")
    return config


def save_config(config: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
