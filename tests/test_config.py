"""The one validated config: values read as their field's type, every setting range-checked
before any data is read, and every mistake one line and exit status 2 through the CLI."""

from __future__ import annotations

import argparse
import dataclasses
import math

import pytest

from anymae.cli import build_parser, main
from anymae.config import (
    MAX_SEED,
    Config,
    DataConfig,
    MaskingConfig,
    choices,
    literal_fields,
    load_config,
    parse_override,
    set_value,
    validate,
)
from anymae.errors import UserError
from anymae.masking import SELECTORS

TINY = ["model.dim=32", "model.depth=2", "model.decoder_dim=32", "model.decoder_depth=1", "train.batch_size=64"]


def fails_in_one_line(argv: list[str], capsys, message: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err, err
    return err


@pytest.fixture
def no_data_read(monkeypatch):
    """Fail the test if the data would be read: the config must be refused first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the data was read before the config was checked")

    monkeypatch.setattr("anymae.train.load_dataset", refuse)


# --- values read as their field's type -----------------------------------------------------------

SPELLINGS = [
    # (key, text, value)
    ("train.lr", "1e-3", 1e-3),
    ("train.lr", "1E6", 1e6),
    ("train.lr", ".5", 0.5),
    ("train.lr", "3", 3.0),
    ("train.lr", "+2.5e-1", 0.25),
    ("masking.hint", "0", 0.0),
    ("train.steps", "12", 12),
    ("train.steps", "1E6", 1_000_000),
    ("train.steps", "1e3", 1000),
    ("train.steps", "2.0", 2),
    ("train.seed", str(MAX_SEED), MAX_SEED),
    ("model.norm_targets", "true", True),
    ("model.norm_targets", "True", True),
    ("model.norm_targets", "yes", True),
    ("model.norm_targets", "on", True),
    ("model.norm_targets", "1", True),
    ("model.norm_targets", "false", False),
    ("model.norm_targets", "no", False),
    ("model.norm_targets", "0", False),
    ("data.label", "1e-3", "1e-3"),  # text stays text
    ("data.label", "true", "true"),
    ("data.label", "[a, b]", "[a, b]"),
    ("data.label", "", ""),
    ("masking.ratio", "uniform:0.6,0.9", "uniform:0.6,0.9"),
    ("model.mode", "latent", "latent"),
]


@pytest.mark.parametrize("key,text,value", SPELLINGS)
def test_overrides_are_read_as_their_fields_type(key, text, value):
    config = load_config(None, [f"{key}={text}"])
    section, name = key.split(".")
    got = getattr(getattr(config, section), name)
    assert got == value and type(got) is type(value)


YAML_TYPED = {("data.label", "true"), ("data.label", "[a, b]")}  # YAML reads a bool and a list: quote them


@pytest.mark.parametrize("key,text,value", [case for case in SPELLINGS if case[:2] not in YAML_TYPED])
def test_yaml_recipes_are_read_as_their_fields_type(key, text, value, tmp_path):
    section, name = key.split(".")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"{section}:\n  {name}: {text or repr('')}\n")  # unquoted, as a person writes it
    got = getattr(getattr(load_config(recipe, []), section), name)
    assert got == value and type(got) is type(value)


WRONG_TYPES = [
    ("train.lr", "fast", "train.lr must be a number"),
    ("train.lr", "[1, 2]", "train.lr must be a number"),
    ("train.lr", "1_0", "train.lr must be a number"),
    ("train.lr", "true", "train.lr must be a number"),
    ("train.lr", "nan", "train.lr must be a finite number"),
    ("train.lr", "inf", "train.lr must be a finite number"),
    ("train.steps", "1.5", "train.steps must be an integer"),
    ("train.steps", ".5", "train.steps must be an integer"),
    ("train.steps", "ten", "train.steps must be an integer"),
    ("train.steps", "[1]", "train.steps must be an integer"),
    ("train.steps", "1e400", "train.steps must be an integer"),
    ("model.norm_targets", "maybe", "model.norm_targets must be true or false"),
    ("model.norm_targets", "2", "model.norm_targets must be true or false"),
]


@pytest.mark.parametrize("key,text,message", WRONG_TYPES)
def test_a_value_of_the_wrong_type_is_one_line(key, text, message, tmp_path, capsys, no_data_read):
    fails_in_one_line(["pretrain", "--data", "digits", "--out", str(tmp_path / "r"), f"{key}={text}"], capsys, message)


def test_yaml_values_of_the_wrong_type_name_the_file(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  lr: [1, 2]\n")
    with pytest.raises(UserError, match=r"r.yaml: train.lr must be a number, got \[1, 2\]"):
        load_config(recipe, [])
    recipe.write_text("train:\n  steps: true\n")
    with pytest.raises(UserError, match="train.steps must be an integer, got True"):
        load_config(recipe, [])
    recipe.write_text("data:\n  label: [a, b]\n")
    with pytest.raises(UserError, match=r"data.label must be text, got \['a', 'b'\]"):
        load_config(recipe, [])


def test_override_syntax():
    assert parse_override("train.lr=1e-3") == ("train.lr", "1e-3")
    assert parse_override("data.label=a=b") == ("data.label", "a=b")
    for text in ("train.lr", "=3"):
        with pytest.raises(UserError, match="key=value"):
            parse_override(text)


# --- enumerated fields: Literal annotations, one table for the config and the CLI -----------------

ENUMERATED = [*literal_fields(), ("masking.strategy", tuple(SELECTORS))]


def test_the_enumerated_fields_are_the_literal_annotations():
    keys = {key for key, _ in ENUMERATED}
    assert {"data.modality", "data.on_bad_record", "model.mode", "masking.aggregation", "train.device"} <= keys
    assert choices(MaskingConfig, "rank") == ("main", "ambiguous")
    assert set(SELECTORS) >= {"random", "span", "block", "sma", "informed"}


@pytest.mark.parametrize("key,allowed", ENUMERATED, ids=[key for key, _ in ENUMERATED])
def test_every_enumerated_field_refuses_a_wrong_value_in_one_line(key, allowed, tmp_path, capsys, no_data_read):
    out = str(tmp_path / "r")
    err = fails_in_one_line(["pretrain", "--data", "digits", "--out", out, f"{key}=bogus"], capsys, key)
    assert all(value in err for value in allowed if value)  # the line lists what is allowed
    section, name = key.split(".")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"{section}:\n  {name}: bogus\n")
    fails_in_one_line(["pretrain", "--config", str(recipe), "--out", out], capsys, key)
    for value in allowed:  # and every allowed value is accepted
        set_value(Config(), key, value, "test")


def flag_choices(command: str) -> dict[str, tuple]:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: tuple(a.choices) for a in subparsers.choices[command]._actions if a.choices}


@pytest.mark.parametrize("command", ["pretrain", "show"])
def test_the_cli_takes_its_choices_from_the_same_tables(command):
    flags = flag_choices(command)
    assert flags["strategy"] == tuple(SELECTORS)
    if command == "pretrain":
        assert flags["loss_weighting"] == choices(MaskingConfig, "loss_weighting")
        assert flags["on_bad_record"] == choices(DataConfig, "on_bad_record")
        assert flags["modality"] == tuple(m for m in choices(DataConfig, "modality") if m)


def test_a_config_built_in_python_is_checked_too():
    config = Config()
    config.model.mode = "foo"
    with pytest.raises(UserError, match="model.mode must be one of self, latent"):
        validate(config)


# --- ranges, divisibility and the rules between fields, before any data is read ------------------

SETTINGS = [
    # (override, what the line must name): the cases of the reliability issue first, then ours
    ("model.mode=foo", "model.mode must be one of self, latent"),
    ("model.heads=5", "model.heads must be a divisor of model.dim (128)"),
    ("model.depth=0", "model.depth must be an integer >= 1"),
    ("model.latents=0", "model.latents must be an integer >= 1"),
    ("model.dim=0", "model.dim must be an integer >= 1"),
    ("model.heads=0", "model.heads must be an integer >= 1"),
    ("model.dim=30", "model.heads must be a divisor of model.dim (30)"),
    ("masking.hint=2", "masking.hint must be a share in [0, 1)"),
    ("masking.span_length=-1", "masking.span_length must be a mean span length >= 1"),
    ("masking.schedule=-1", "masking.schedule must be a fraction of training in [0, 1]"),
    ("train.weight_decay=-1", "train.weight_decay must be >= 0"),
    ("data.on_bad_record=maybe", "data.on_bad_record must be one of fail, skip"),
    ("data.patch=-1", "data.patch must be 0 (the dataset's default) or a patch size >= 1"),
    ("train.log_every=0", "train.log_every must be an integer >= 1"),
    ("train.checkpoint_every=0", "train.checkpoint_every must be an integer >= 1"),
    ("train.seed=-1", f"train.seed must be an integer in [0, {MAX_SEED}]"),
    (f"train.seed={2**64}", f"train.seed must be an integer in [0, {MAX_SEED}]"),
    ("train.threads=-1", "train.threads must be 0 (torch's default) to this machine's"),
    ("train.lr=-1", "train.lr must be > 0"),
    ("train.lr=0", "train.lr must be > 0"),
    ("train.lr=nan", "train.lr must be a finite number"),
    ("data.max_tokens=0", "data.max_tokens must be an integer >= 2"),
    ("data.max_tokens=-3", "data.max_tokens must be an integer >= 2"),
    ("probe.knn_k=0", "probe.knn_k must be an integer >= 1"),
    ("train.batch_size=0", "train.batch_size must be an integer >= 1"),
    ("probe.batch_size=0", "probe.batch_size must be an integer >= 1"),
    ("probe.max_train=0", "probe.max_train must be an integer >= 1"),
    ("masking.ratio=fixed:1.5", "ratio 'fixed:1.5' is not valid"),
    ("masking.ratio=uniform:0.9,0.1", "ratio 'uniform:0.9,0.1' is not valid"),
    ("model.decoder_heads=3", "model.decoder_heads must be a divisor of model.decoder_dim (64)"),
    ("model.decoder_heads=0", "model.decoder_heads must be an integer >= 1"),
    ("model.decoder_dim=0", "model.decoder_dim must be an integer >= 1"),
    ("model.decoder_depth=0", "model.decoder_depth must be an integer >= 1"),
    ("model.mlp_ratio=0", "model.mlp_ratio must be > 0"),
    ("masking.per_query=0", "masking.per_query must be an integer >= 1"),
    ("masking.start=1.5", "masking.start must be a fraction of training in [0, 1]"),
    ("masking.cut_tau=1", "masking.cut_tau must be a similarity threshold in [0, 1)"),
    ("masking.cut_layer=9", "masking.cut_layer must be 0 (the last layer) or a layer 1..4"),
    ("masking.cut_layer=-1", "masking.cut_layer must be 0 (the last layer) or a layer 1..4"),
    ("masking.tau=0", "masking.tau must be > 0"),
    ("masking.tau_end=-1", "masking.tau_end must be >= 0"),
    ("train.steps=0", "train.steps must be an integer >= 1"),
    ("train.accumulate=0", "train.accumulate must be an integer >= 1"),
    ("train.warmup=2", "train.warmup must be a fraction of the steps in [0, 1]"),
    ("train.min_lr=1", "train.min_lr must be in [0, train.lr (0.0015)]"),
    ("train.clip=-1", "train.clip must be >= 0"),
    ("data.name= ", "data.name must be a built-in dataset name or a file path"),
    ("model.mode=latent masking.strategy=informed", "masking.strategy=informed needs per-token features"),
    ("model.mode=latent masking.loss_weighting=attention-guided", "masking.map_source=cut needs per-token features"),
]


@pytest.mark.parametrize("overrides,message", SETTINGS, ids=[case for case, _ in SETTINGS])
def test_each_bad_setting_is_one_line_before_any_data_is_read(overrides, message, tmp_path, capsys, no_data_read):
    argv = ["pretrain", "--data", "digits", "--out", str(tmp_path / "r"), *overrides.split()]
    fails_in_one_line(argv, capsys, message)
    assert not (tmp_path / "r").exists()


def test_every_numeric_field_has_a_range():
    """Each int or float setting set to -1e9 is refused (ours to keep true for new fields)."""
    unchecked = []
    for section in dataclasses.fields(Config):
        for f in dataclasses.fields(section.default_factory()):  # type: ignore[misc]
            if f.type in ("int", "float"):
                config = Config()
                setattr(getattr(config, section.name), f.name, -1_000_000_000 if f.type == "int" else -1e9)
                try:
                    validate(config)
                    unchecked.append(f"{section.name}.{f.name}")
                except UserError:
                    pass
    assert unchecked == []


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["data.patch=16"], "each image sample is 1 token; masking needs at least 2: choose a smaller data.patch"),
        (["data.patch=8"], "each image sample is 1 token; masking needs at least 2: choose a smaller data.patch"),
    ],
)
def test_the_patch_must_fit_the_image(overrides, message, tmp_path, capsys):
    fails_in_one_line(["pretrain", "--data", "digits", "--out", str(tmp_path / "r"), *overrides], capsys, message)


def test_a_patch_that_does_not_divide_the_image_pads_it():
    from anymae.api import load_dataset

    dataset = load_dataset("digits", patch=3)  # 8x8 -> padded to 9x9: 3x3 patches, each partly image
    assert dataset.spec.grid == (3, 3) and dataset.tokens.valid.all()
    assert (dataset.tokens.inputs.reshape(len(dataset), 3, 3, 9)[:, 2, :, 6:] == 0).all()  # the padded row


def test_block_masks_on_data_without_a_grid_is_one_line(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("".join(f"line number {i} of some text\n" for i in range(40)))
    argv = ["pretrain", "--data", str(text), "--strategy", "block", "--out", str(tmp_path / "r"), *TINY]
    fails_in_one_line(argv, capsys, "masking.strategy=block needs tokens on a 2-D grid")


@pytest.mark.parametrize(
    "flags,message",
    [(["--steps", "ten"], "train.steps must be an integer"), (["--seed", "-1"], "train.seed must be an integer in")],
)
def test_flags_are_read_and_checked_like_overrides(flags, message, tmp_path, capsys, no_data_read):
    fails_in_one_line(["pretrain", "--data", "digits", "--out", str(tmp_path / "r"), *flags], capsys, message)


def test_the_readme_example_runs(tmp_path):
    out = tmp_path / "d"
    argv = ["pretrain", "--data", "digits", "--ratio", "uniform:0.6,0.9", "--steps", "2e0", "--out", str(out)]
    assert main([*argv, *TINY, "model.dim=64", "train.lr=1e-3"]) == 0
    config = load_config(out / "config.yaml", [])
    assert config.train.lr == 1e-3 and config.model.dim == 64 and math.isclose(config.train.lr, 0.001)


# --- recipe files that are not recipes ------------------------------------------------------------


def write_recipe(tmp_path, kind: str):
    path = tmp_path / "recipe.yaml"
    if kind == "folder":
        path.mkdir()
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    elif kind == "latin-1":
        path.write_bytes("data:\n  label: caf\xe9\n".encode("latin-1"))
    elif kind == "nul":
        path.write_bytes(b"train:\n  steps: 5\x00\n")
    elif kind == "alias-bomb":
        lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        for i in range(1, 10):
            lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [{','.join(['*' + chr(96 + i)] * 9)}]")
        path.write_text("\n".join(lines) + "\n")
    elif kind == "deep":
        path.write_text("a: " + "[" * 5_000 + "]" * 5_000 + "\n")
    elif kind == "huge":
        path.write_text("# " + "x" * (2 << 20) + "\n")
    elif kind == "list":
        path.write_text("- train\n- model\n")
    elif kind == "scalar-section":
        path.write_text("train: 5\n")
    elif kind == "bad-yaml":
        path.write_text("train:\n  lr: [1, 2\n")
    elif kind == "unknown-key":
        path.write_text("model:\n  size: 3\n")
    return path


@pytest.mark.parametrize(
    "kind,message",
    [
        ("folder", "is a folder, not a YAML file"),
        ("binary", "not UTF-8 text"),
        ("latin-1", "not UTF-8 text"),
        ("nul", "holds NUL bytes"),
        ("alias-bomb", "aliases (*name) are not allowed in a recipe"),
        ("huge", "larger than 1 MiB"),
        ("deep", "nested too deeply"),
        ("list", "expected a mapping of sections"),
        ("scalar-section", "section 'train' must hold settings"),
        ("bad-yaml", "not valid YAML"),
        ("unknown-key", "unknown setting 'model.size'"),
    ],
)
def test_a_config_that_is_not_a_recipe_is_one_line(kind, message, tmp_path, capsys, no_data_read):
    recipe = write_recipe(tmp_path, kind)
    fails_in_one_line(["pretrain", "--config", str(recipe), "--out", str(tmp_path / "r")], capsys, message)


def test_a_utf8_bom_is_accepted(tmp_path):
    recipe = tmp_path / "bom.yaml"
    recipe.write_bytes("\ufefftrain:\n  steps: 7\n".encode())
    assert load_config(recipe, []).train.steps == 7
