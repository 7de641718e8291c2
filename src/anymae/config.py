"""Typed configuration: one dataclass per part, YAML recipes, dotted `key=value` overrides.

This module is the one place a config's values are checked. Each value is checked against its
field's type when it is set (a `Literal[...]` field against its choices), from YAML, flags and
overrides alike; `validate` then checks ranges and the rules between fields before any data
is read, and `check_fits` the rules that need the dataset's modality spec, before the model
is built. The masking strategy, a name in the selector table, is checked where it is used
(`anymae.masking.check_strategy`). Every mistake is one `UserError` line naming the key and
what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from anymae.errors import UserError

Modality = Literal["", "text", "protein", "dna", "smiles", "tabular", "image", "set", "series"]
MODALITIES: tuple[str, ...] = typing.get_args(Modality)[1:]  # the one list (data.modality "" = inferred)
MAX_SEED = 2**63 - 1  # torch and numpy both take any seed in [0, 2**63 - 1]
MAX_STEPS = 10**9  # optimizer steps (or accumulated batches per step): beyond this a run never ends
MAX_CONFIG_BYTES = 1 << 20  # a recipe is a few hundred bytes; anything this large is not one
# Settings that change how a run goes and reports, never what it learns: a resumed run may change
# them (and train.steps), and a bench cell's hash leaves them out.
NOT_LEARNED = (
    "train.log_every",
    "train.checkpoint_every",
    "train.device",
    "train.threads",
    "train.dist_timeout",
    "train.compile",
    "train.recompute",
    "finetune.threads",
)


@dataclass
class DataConfig:
    name: str = "fashion-mnist"  # a built-in dataset name or a path
    patch: int = 0  # image patch size in pixels (1 = pixels as tokens); 0 = the dataset's default
    max_tokens: int = 256  # longest sequence kept (longer ones are truncated)
    modality: Modality = ""  # users' files; "" = inferred from the file
    label: str = ""  # users' tables: the label column ("" = unlabelled)
    column: str = ""  # users' tables and JSON Lines: the column (field) of string samples ("" = by its name)
    id: str = ""  # users' tables: the column that names each sample (embed's ids file); not a feature
    on_bad_record: Literal["fail", "skip"] = "fail"  # skipped records are counted and reported
    importance: str = ""  # per-token maps for masking.map_source=given: a column / .npz key, or a .npy file
    kmer: int = 1  # DNA: bases per token (non-overlapping k-mers, 1..6)
    layer: str = ""  # .h5ad: the matrix to read ("" = X, "raw" = raw.X, else a name in layers)
    normalise: Literal["none", "library-log1p"] = "none"  # .h5ad counts: per-cell total to 10,000, then log1p


@dataclass
class ModelConfig:
    mode: Literal["self", "latent"] = "self"  # self: MAE-style self-attention; latent: learned latents, linear in N
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
    strategy: str = "random"  # a name in anymae.masking.SELECTORS (random | span | block | sma | informed)
    ratio: str = ""  # "fixed:R" or "uniform:LO,HI"; empty = the modality's default fixed ratio
    per_sample: bool = False  # uniform ratio: one draw per sample instead of per batch
    span_length: float = 3.0  # span: mean of the geometric span length
    # sma (self-guided, from the guide layer's attention in the same pass)
    per_query: int = 3  # k: tokens masked per chosen query row
    aggregation: Literal["mean", "random_mix"] = "mean"  # random_mix: one head per query row
    mask_self: bool = True  # self mode: the chosen query tokens are masked too
    curriculum: bool = False  # random -> self-guided by a half cosine over the first `schedule` of training
    schedule: float = 0.25
    guide_scores: Literal["full", "content"] = "full"  # content: select from logits without position embeddings
    position_debias: bool = False  # subtract each position's running-mean score before the top-k
    # informed (Self-Guided MAE: normalized cut of the model's own features)
    start: float = 0.2  # random masks before this fraction of training
    rank: Literal["main", "ambiguous"] = "main"
    hint: float = 0.1  # share of the chosen tokens swapped for random ones
    cut_tau: float = 0.2  # affinities below this are set to eps
    refresh_every: int = 1  # informed: reuse a sample's scores the next k - 1 times it is drawn (1 = fresh each time)
    cut_layer: int = 0  # encoder layer whose token features are cut (1 = guide layer; 0 = the last)
    # loss weighting
    loss_weighting: Literal["uniform", "attention-guided"] = "uniform"
    map_source: Literal["cut", "attention", "given"] = "cut"  # attention-guided: where the map comes from
    tau: float = 0.75  # w = exp(M / tau)
    tau_end: float = 0.0  # > 0: tau follows a half cosine from `tau` to `tau_end`
    normalise: Literal["masked", "weights"] = "masked"  # masked: sum(w l m) / sum(m); weights: / sum(w m)


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
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0  # torch CPU threads; 0 = torch's default
    dist_timeout: float = 600.0  # several processes (torchrun): seconds one waits for the others before it stops
    compile: bool = False  # torch.compile the model's layers (pays off on GPUs; the first steps compile)
    recompute: bool = False  # keep one block's activations, recompute the rest in the backward pass (~1/3 more compute)


@dataclass
class ProbeConfig:
    max_train: int = 10000  # labelled training examples used by the probes (subsampled, fixed seed)
    max_eval: int = 50000  # validation and test examples each, likewise (every encoder embeds them)
    knn_k: int = 20
    batch_size: int = 512


@dataclass
class FinetuneConfig:
    labels: tuple[float, ...] = (0.01, 0.1, 1.0)  # fractions of the training labels
    seeds: int = 3
    # The budget is by epochs with early stopping: validation (after every epoch, or every
    # MIN_STEPS_BETWEEN_VALIDATIONS steps on tiny subsets) ends a run, the cap is a guard.
    epochs: int = 100  # at most this many validation passes (each at least an epoch of the labelled subset)
    max_steps: int = 100000  # and at most this many steps
    batch_size: int = 32
    lr: tuple[float, ...] = (1e-3,)  # several: each is run and validation picks one (the recipe)
    layer_decay: float = 0.75  # lr of layer l = lr * layer_decay ** (top - l)
    weight_decay: float = 0.05
    warmup: float = 0.02  # fraction of the cap with linear warm-up; then the lr halves at each validation
    # pass that is not better (cosine to 0 at the cap instead when evals > 0)
    evals: int = 0  # validation passes spread evenly over the cap; 0: after every epoch (see above)
    patience: int = 5  # stop after this many validation passes without a better score
    max_val: int = 1000  # validation examples used for selection (subsampled with a fixed seed)
    max_test: int = 50000  # test examples scored (subsampled with a fixed seed)
    head_init: Literal["probe", "random"] = "probe"  # probe: the head starts as a linear probe (LP-FT)
    threads: int = 0  # torch CPU threads; 0 = torch's default


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> Config:
        config = cls()
        sections = [f.name for f in dataclasses.fields(cls)]
        for name in sections:
            if name in values and values[name] is not None and not isinstance(values[name], dict):
                example = dataclasses.fields(getattr(config, name))[0].name
                raise UserError(
                    f"{source}: section '{name}' must hold settings, one per indented line under '{name}:' "
                    f"(for example {name}: {{{example}: ...}}), got {values[name]!r}"
                )
        values = {key: value for key, value in values.items() if not (key in sections and value is None)}
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


# --- one value against its field's type --------------------------------------------------------

NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")  # 1, -2, 1.5, .5, 1e-3, 1E6 (no 1_0)
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def choices(cls: type, name: str) -> tuple[str, ...]:
    """The values a `Literal[...]` field allows (what the CLI's `choices=` reads); () for any other field."""
    kind = typing.get_type_hints(cls)[name]
    return typing.get_args(kind) if typing.get_origin(kind) is Literal else ()


def literal_fields() -> list[tuple[str, tuple[str, ...]]]:
    """Every enumerated setting as (dotted key, allowed values)."""
    found = []
    for section in dataclasses.fields(Config):
        for f in dataclasses.fields(section.default_factory()):  # type: ignore[misc]
            allowed = choices(section.default_factory, f.name)  # type: ignore[arg-type]
            if allowed:
                found.append((f"{section.name}.{f.name}", allowed))
    return found


def parse_text(text: str, kind) -> object:
    """A setting's text (an override, or a YAML 1.1 string such as `1e-3`) read as `kind`; None if it is not one."""
    word = text.strip()
    if kind is bool:
        return True if word.lower() in TRUE else False if word.lower() in FALSE else None
    if kind in (int, float) and NUMBER.fullmatch(word):
        number = float(word)
        if kind is float:
            return number
        if re.fullmatch(r"[+-]?\d+", word):
            return int(word)
        return int(number) if math.isfinite(number) and number == int(number) else None
    if kind is float and word.lower() in ("nan", ".nan", "inf", "+inf", "-inf", ".inf", "-.inf"):
        return float(word.lower().replace(".", ""))
    return None


def type_name(kind) -> str:
    allowed = typing.get_args(kind)
    if allowed:
        return "one of " + ", ".join(repr(a) if a == "" else a for a in allowed)
    return {bool: "true or false", int: "an integer", float: "a number", str: "text"}[kind]


def numbers(value, key: str, source: str) -> tuple[float, ...]:
    """A list of numbers: a YAML list, '[1e-3,3e-4]', '1e-3,3e-4' or one number."""
    items = value if isinstance(value, (list, tuple)) else [value]
    if isinstance(value, str):
        items = [v for v in value.strip().strip("[]").split(",") if v.strip()]
    try:
        return tuple(coerce(v, float, key, source) for v in items)
    except UserError:
        raise UserError(f"{source}: {key} must be a number or a list of numbers, got {value!r}") from None


def coerce(value, kind, key: str, source: str):
    """Check a value against a field's type: text is parsed as the type, int widens to float."""
    if typing.get_origin(kind) is tuple:
        return numbers(value, key, source)
    allowed = typing.get_args(kind)
    base = str if allowed else kind
    result = None
    if isinstance(value, str) and base is not str:
        result = parse_text(value, base)
    elif base is bool:
        result = value if isinstance(value, bool) else parse_text(str(value), bool) if type(value) is int else None
    elif base is int:
        result = value if isinstance(value, int) and not isinstance(value, bool) else None
        if isinstance(value, float) and math.isfinite(value) and value == int(value):
            result = int(value)
    elif base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        result = float(value) if isinstance(value, float) or abs(value) < 2**1023 else math.inf
    elif base is str:
        if isinstance(value, str):
            result = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and not allowed:
            result = str(value)  # a YAML number given as a column name or path
    if result is None or (allowed and result not in allowed):
        raise UserError(f"{source}: {key} must be {type_name(kind)}, got {value!r}")
    if base is float and not math.isfinite(result):
        raise UserError(f"{source}: {key} must be a finite number, got {value!r}")
    return result


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


def parse_override(text: str) -> tuple[str, str]:
    """'train.lr=3e-4' -> ('train.lr', '3e-4'); `set_value` reads the text as the field's type."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"override '{text}' is not of the form key=value (for example train.steps=500)")
    return key.strip(), raw


def apply_overrides(config: Config, overrides: list[str]) -> Config:
    for text in overrides:
        set_value(config, *parse_override(text), source="command line")
    return config


# --- YAML recipes ---------------------------------------------------------------------------------


class RecipeLoader(yaml.SafeLoader):
    """Safe YAML without aliases: a recipe never needs them, and an alias bomb cannot expand."""

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a recipe", mark)
        return super().compose_node(parent, index)


def read_recipe(path: Path) -> dict:
    path = Path(path)
    if path.is_dir():
        raise UserError(f"--config {path} is a folder, not a YAML file")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read the config file ({error.strerror})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise UserError(f"{path}: larger than {MAX_CONFIG_BYTES >> 20} MiB; not a recipe")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text (byte {error.start + 1}); a recipe is a YAML text file") from None
    if "\x00" in text:
        raise UserError(f"{path}: holds NUL bytes; a recipe is a YAML text file")
    try:
        values = yaml.load(text, Loader=RecipeLoader) or {}
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    except RecursionError:
        raise UserError(f"{path}: nested too deeply; a recipe is sections of settings") from None
    if not isinstance(values, dict):
        raise UserError(f"{path}: expected a mapping of sections (data, model, masking, train, probe, finetune)")
    return values


def load_config(path: Path | None, overrides: list[str]) -> Config:
    """Defaults, then a YAML recipe, then `key=value` overrides; each value checked as it is set."""
    values = read_recipe(path) if path is not None else {}
    config = Config.from_dict(values, source=str(path or "config"))
    return apply_overrides(config, overrides)


def save_config(config: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


# --- ranges and the rules between fields ----------------------------------------------------------


def check_section(section, prefix: str) -> None:
    """Every field of a section against its type (for configs built in Python, not through `set_value`)."""
    for name, kind in typing.get_type_hints(type(section)).items():
        coerce(getattr(section, name), kind, f"{prefix}.{name}", "config")


def require(ok: bool, key: str, allowed: str, value) -> None:
    if not ok:
        raise UserError(f"{key} must be {allowed}, got {value!r}")


def at_least(config: Config, keys: str, low: int) -> None:
    for key in keys.split():
        value = getattr(getattr(config, key.split(".")[0]), key.split(".")[1])
        require(value >= low, key, f"an integer >= {low}", value)


def validate(config: Config) -> Config:
    """Ranges of every numeric setting and the rules between fields; needs no data."""
    for section in dataclasses.fields(config):
        check_section(getattr(config, section.name), section.name)
    d, m, k, t = config.data, config.model, config.masking, config.train
    require(bool(d.name.strip()), "data.name", "a built-in dataset name or a file path", d.name)
    require(d.patch >= 0, "data.patch", "0 (the dataset's default) or a patch size >= 1", d.patch)
    at_least(config, "data.max_tokens", 2)  # one token hidden and one seen
    require(1 <= d.kmer <= 6, "data.kmer", "bases per DNA token, 1..6", d.kmer)
    at_least(config, "model.dim model.depth model.heads model.latents model.decoder_dim", 1)
    at_least(config, "model.decoder_depth model.decoder_heads", 1)
    require(m.dim % m.heads == 0, "model.heads", f"a divisor of model.dim ({m.dim})", m.heads)
    require(
        m.decoder_dim % m.decoder_heads == 0,
        "model.decoder_heads",
        f"a divisor of model.decoder_dim ({m.decoder_dim})",
        m.decoder_heads,
    )
    require(min(m.dim, m.decoder_dim) * m.mlp_ratio >= 1, "model.mlp_ratio", "> 0 (hidden width >= 1)", m.mlp_ratio)
    require(k.span_length >= 1, "masking.span_length", "a mean span length >= 1", k.span_length)
    at_least(config, "masking.per_query", 1)
    for key in ("schedule", "start"):
        require(0 <= getattr(k, key) <= 1, f"masking.{key}", "a fraction of training in [0, 1]", getattr(k, key))
    require(0 <= k.hint < 1, "masking.hint", "a share in [0, 1)", k.hint)
    require(0 <= k.cut_tau < 1, "masking.cut_tau", "a similarity threshold in [0, 1)", k.cut_tau)
    require(k.refresh_every >= 1, "masking.refresh_every", "a whole number of draws, at least 1", k.refresh_every)
    require(
        0 <= k.cut_layer <= m.depth, "masking.cut_layer", f"0 (the last layer) or a layer 1..{m.depth}", k.cut_layer
    )
    require(k.tau > 0, "masking.tau", "> 0", k.tau)
    require(k.tau_end >= 0, "masking.tau_end", ">= 0 (0 = a constant tau)", k.tau_end)
    at_least(config, "train.steps train.batch_size train.accumulate train.log_every train.checkpoint_every", 1)
    require(t.lr > 0, "train.lr", "> 0", t.lr)
    require(0 <= t.min_lr <= t.lr, "train.min_lr", f"in [0, train.lr ({t.lr})]", t.min_lr)
    require(t.weight_decay >= 0, "train.weight_decay", ">= 0", t.weight_decay)
    require(0 <= t.warmup <= 1, "train.warmup", "a fraction of the steps in [0, 1]", t.warmup)
    require(t.clip >= 0, "train.clip", ">= 0 (0 = off)", t.clip)
    require(0 <= t.seed <= MAX_SEED, "train.seed", f"an integer in [0, {MAX_SEED}]", t.seed)
    require(t.steps <= MAX_STEPS, "train.steps", f"at most {MAX_STEPS:,}", t.steps)
    require(
        t.accumulate <= MAX_STEPS // t.steps, "train.accumulate", f"at most {MAX_STEPS:,} / train.steps", t.accumulate
    )
    cpus = os.cpu_count() or 1
    require(0 <= t.threads <= cpus, "train.threads", f"0 (torch's default) to this machine's {cpus} CPUs", t.threads)
    require(t.dist_timeout > 0, "train.dist_timeout", "> 0 seconds", t.dist_timeout)
    at_least(config, "probe.max_train probe.max_eval probe.knn_k probe.batch_size", 1)
    f = config.finetune
    require(bool(f.labels) and all(0 < x <= 1 for x in f.labels), "finetune.labels", "fractions in (0, 1]", f.labels)
    at_least(config, "finetune.seeds finetune.epochs finetune.max_steps finetune.batch_size", 1)
    at_least(config, "finetune.patience finetune.max_val finetune.max_test", 1)
    at_least(config, "finetune.evals", 0)
    require(bool(f.lr) and all(x > 0 for x in f.lr), "finetune.lr", "learning rates > 0", f.lr)
    require(0 < f.layer_decay <= 1, "finetune.layer_decay", "in (0, 1] (1 = one lr for all layers)", f.layer_decay)
    require(f.weight_decay >= 0, "finetune.weight_decay", ">= 0", f.weight_decay)
    require(0 <= f.warmup <= 1, "finetune.warmup", "a fraction of the steps in [0, 1]", f.warmup)
    require(f.threads >= 0, "finetune.threads", "an integer >= 0 (0 = torch's default)", f.threads)
    return config


def check_fits(config: Config, spec) -> None:
    """The rules that need the data's modality spec (known once the data is read), before the model is built.

    The masking strategy is checked against the spec where it is built (`anymae.masking.check_strategy`)."""
    if spec.max_tokens < 2:
        hint = ": choose a smaller data.patch" if spec.grid is not None else ""
        raise UserError(f"each {spec.name} sample is {spec.max_tokens} token; masking needs at least 2{hint}")
