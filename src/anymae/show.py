"""Pictures of what a model masks and how it reconstructs, a summary of its masks, and a run's curves.

The picture follows the token layout, not the dataset: tokens on a 2-D grid give an image grid
(input, mask, reconstruction); discrete tokens give character strips with the predicted letters;
table rows give each sample's value per feature; series and sets give each sample's curve. The
masked tokens are shaded and their reconstruction is drawn beside the truth. Every figure names
the strategy, the ratio and the checkpoint step, and has a legend.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from anymae.data import Dataset
from anymae.errors import UserError
from anymae.masking import MaskingStrategy, random_mask
from anymae.model import MaskedAutoencoder
from anymae.objective import reconstruction, targets, token_losses
from anymae.tokens import FeatureTokens, SeriesPatches

MAX_FEATURES = 64  # feature tokens drawn (and named) per row; wider tables show their first 64


def masks_for(
    model: MaskedAutoencoder, dataset: Dataset, index: np.ndarray, strategy: MaskingStrategy, seed: int = 0
) -> dict[str, np.ndarray]:
    """Masks, predictions (ids for discrete tokens) and per-token losses for the samples `index`, as
    at the end of training; also random masks with the same counts and the per-token losses under them."""
    generator = torch.Generator().manual_seed(seed)
    keys = ("masked", "prediction", "token_loss", "random", "random_token_loss")
    parts: dict[str, list] = {key: [] for key in keys}
    model.eval()
    for start in range(0, len(index), 256):
        batch = dataset.tokens.batch(index[start : start + 256], dataset.spec.discrete)
        with torch.no_grad():
            out = reconstruction(model, batch, strategy, generator, progress=1.0, everywhere=True)
            random = random_mask(batch.valid, out.masked.sum(1), generator)
            prediction = model.decode(model.encode(batch, masked=random), batch.valid.shape[1])
            random_loss = token_losses(prediction, targets(model, batch))
        predicted = out.prediction.float()  # discrete tokens: the predicted ids, not the logits
        parts["masked"].append(out.masked.numpy())
        parts["prediction"].append((predicted.argmax(-1) if dataset.spec.discrete else predicted).numpy())
        parts["token_loss"].append(out.token_loss.numpy())
        parts["random"].append(random.numpy())
        parts["random_token_loss"].append(random_loss.numpy())
    return {key: np.concatenate(value) for key, value in parts.items()}


def mean_run_length(masked: np.ndarray) -> float:
    """Mean length of the runs of consecutive masked tokens (1-D)."""
    starts = masked[:, 0].sum() + (masked[:, 1:] & ~masked[:, :-1]).sum()
    return float(masked.sum() / max(starts, 1))


def masked_neighbour_share(masked: np.ndarray, grid: tuple[int, int]) -> float:
    """Share of masked tokens with at least one masked 4-neighbour on the grid (2-D)."""
    m = masked.reshape(-1, *grid)
    padded = np.pad(m, ((0, 0), (1, 1), (1, 1)))
    neighbours = padded[:, :-2, 1:-1] | padded[:, 2:, 1:-1] | padded[:, 1:-1, :-2] | padded[:, 1:-1, 2:]
    return float((neighbours & m).sum() / max(m.sum(), 1))


def summarise(masked: np.ndarray, random: np.ndarray, valid: np.ndarray, grid: tuple[int, int] | None) -> dict:
    """How often each position is masked, and how contiguous the masks are, beside random masks."""
    frequency = masked.sum(0) / np.maximum(valid.sum(0), 1)
    seen = valid.sum(0) > 0
    summary = {
        "samples": int(len(masked)),
        "position_frequency": {
            "min": float(frequency[seen].min()),
            "max": float(frequency[seen].max()),
            "std": float(frequency[seen].std()),
            "random_std": float((random.sum(0) / np.maximum(valid.sum(0), 1))[seen].std()),
        },
        "mean_run_length": mean_run_length(masked),
        "random_mean_run_length": mean_run_length(random),
    }
    if grid is not None:
        summary["masked_neighbour_share"] = masked_neighbour_share(masked, grid)
        summary["random_masked_neighbour_share"] = masked_neighbour_share(random, grid)
    return summary


def denormalise(prediction: np.ndarray, values: np.ndarray, normalised: bool) -> np.ndarray:
    """Undo per-token target normalisation with each true token's own mean and spread (as MAE's pictures)."""
    if not normalised or values.shape[-1] == 1:
        return prediction
    mean, var = values.mean(-1, keepdims=True), values.var(-1, ddof=1, keepdims=True)
    return prediction * np.sqrt(var + 1e-6) + mean


MASK_COLOUR = (0.2, 0.45, 0.9)  # masked tokens, in every picture
TRUTH_COLOUR = "0.15"
RECONSTRUCTION_COLOUR = (0.85, 0.2, 0.1)


def draw_images(ax_rows, dataset: Dataset, index: np.ndarray, result: dict, normalised: bool) -> list:
    spec = dataset.spec
    values = dataset.tokens.inputs[index]
    masked = result["masked"][..., None]
    prediction = np.clip(denormalise(result["prediction"], values, normalised), 0, 1)
    panels = {
        "input": values,
        "mask": values,
        "reconstruction": prediction,
        "with visible pasted": np.where(masked, prediction, values),
    }
    hidden = spec.to_images(np.broadcast_to(masked, values.shape).astype(np.float32)).max(-1) > 0
    for row, sample in zip(ax_rows, range(len(index))):
        for ax, (title, tokens) in zip(row, panels.items()):
            image = spec.to_images(tokens[sample : sample + 1])[0]
            rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
            if title == "mask":  # masked tokens tinted blue
                rgb = np.where(hidden[sample][..., None], 0.35 * rgb + 0.65 * np.array(MASK_COLOUR), rgb)
            ax.imshow(np.clip(rgb, 0, 1))
            ax.set_xticks([])
            ax.set_yticks([])
            if sample == 0:
                ax.set_title(title, fontsize=9)
    from matplotlib.patches import Patch

    return [
        Patch(color=MASK_COLOUR, label="masked patch (mask column)"),
        Patch(color="0.6", label="reconstruction: every patch predicted; last column pastes the visible ones back"),
    ]


def draw_strips(ax, dataset: Dataset, index: np.ndarray, result: dict, width: int = 64) -> list:
    """Per sample two lines: the true tokens (masked ones red, darker = larger error), and under each
    masked token the model's prediction (green when right)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    tokens, valid = dataset.tokens.inputs[index], dataset.tokens.valid[index]
    error = result["token_loss"]
    top = max(float(error[result["masked"]].max(initial=0)), 1e-6)
    cmap = plt.get_cmap("Reds")
    width = min(width, max(last_valid(v) for v in valid))

    def letter(token: int) -> str:
        char = dataset.spec.token_text(int(token))
        return char if char.isprintable() and char.strip() else "·"

    for row in range(len(index)):
        y = -2 * row
        for col in range(min(width, last_valid(valid[row]))):  # invalid slots inside (DNA's N) drawn grey
            masked = bool(result["masked"][row, col])
            shade = 0.25 + 0.75 * error[row, col] / top
            colour = cmap(shade) if masked else (0.9, 0.9, 0.9, 1)
            ax.add_patch(plt.Rectangle((col, y - 1), 1, 1, color=colour, ec="white", lw=0.3))
            ink = "white" if masked and shade > 0.6 else "black"  # readable on dark red
            ax.text(col + 0.5, y - 0.5, letter(tokens[row, col]), ha="center", va="center", fontsize=6.5, color=ink)
            if masked:
                guess = int(result["prediction"][row, col])
                right = guess == int(tokens[row, col])
                ax.text(
                    col + 0.5,
                    y - 1.45,
                    letter(guess),
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    color=(0.1, 0.55, 0.2) if right else RECONSTRUCTION_COLOUR,
                    fontweight="bold",
                )
    ax.set_xlim(0, width)
    ax.set_ylim(-2 * len(index), 0.2)
    ax.set_axis_off()
    return [
        Patch(color=(0.9, 0.9, 0.9), label="visible token"),
        Patch(color=cmap(0.7), label="masked token (darker = larger reconstruction error)"),
        Line2D([], [], ls="none", marker="$a$", color=(0.1, 0.55, 0.2), label="predicted, right"),
        Line2D([], [], ls="none", marker="$a$", color=RECONSTRUCTION_COLOUR, label="predicted, wrong"),
    ]


def last_valid(valid: np.ndarray) -> int:
    """One past the last valid slot of a sample (0 when it has none)."""
    found = np.flatnonzero(valid)
    return int(found[-1]) + 1 if len(found) else 0


def draw_features(axes, dataset: Dataset, index: np.ndarray, result: dict) -> list:
    """Table rows: each sample's standardised value per feature; masked features shaded, with the
    reconstruction beside the truth. Feature names under the last row."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    prediction, masked = result["prediction"][..., 0], result["masked"]
    shown = masked.shape[1]  # the first MAX_FEATURES of a wide table (genes of a cell)
    values, valid = dataset.tokens.inputs[index][:, :shown, 0], dataset.tokens.valid[index][:, :shown]
    x = np.arange(values.shape[1])
    for row, ax in enumerate(axes):
        for col in np.flatnonzero(masked[row]):
            ax.axvspan(col - 0.5, col + 0.5, color=MASK_COLOUR, alpha=0.18, lw=0)
        seen = valid[row] & ~masked[row]
        ax.plot(x[seen], values[row, seen], "o", color=TRUTH_COLOUR, ms=3.5)
        hidden = masked[row]
        ax.plot(x[hidden], values[row, hidden], "o", mfc="none", mec=TRUTH_COLOUR, ms=5)
        ax.plot(x[hidden], prediction[row, hidden], "x", color=RECONSTRUCTION_COLOUR, ms=5, mew=1.5)
        for col in np.flatnonzero(hidden):
            ax.plot([col, col], [values[row, col], prediction[row, col]], color=RECONSTRUCTION_COLOUR, lw=0.7)
        for col in np.flatnonzero(~valid[row]):
            ax.text(col, 0, "?", ha="center", va="center", fontsize=7, color="0.5")
        ax.axhline(0, color="0.85", lw=0.6, zorder=0)
        ax.set_xlim(-0.5, len(x) - 0.5)
        ax.set_xticks(x)
        ax.set_xticklabels([])
        ax.tick_params(labelsize=6)
        ax.set_ylabel(f"sample {row + 1}", fontsize=7)
    total = dataset.tokens.valid.shape[1]
    part = f", the first {shown} of {total}" if shown < total else ""
    axes[0].set_title(f"standardised value of each feature (0 = the column's mean{part})", fontsize=8)
    return [
        Line2D([], [], ls="none", marker="o", color=TRUTH_COLOUR, ms=3.5, label="visible value"),
        Line2D([], [], ls="none", marker="o", mfc="none", mec=TRUTH_COLOUR, ms=5, label="masked value (truth)"),
        Line2D([], [], ls="none", marker="x", color=RECONSTRUCTION_COLOUR, mew=1.5, label="reconstruction"),
        Patch(color=MASK_COLOUR, alpha=0.18, label="masked feature"),
        Line2D([], [], ls="none", marker="$?$", color="0.5", label="missing value (not a token)"),
    ]


def draw_curves(axes, dataset: Dataset, index: np.ndarray, result: dict, normalised: bool) -> list:
    """Series: each sample's curve; sets: each element's values side by side (points, elements in
    their stored order). Masked tokens shaded, their reconstruction drawn over the truth."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    spec = dataset.spec
    series = isinstance(spec, SeriesPatches)
    values, valid, masked = dataset.tokens.inputs[index], dataset.tokens.valid[index], result["masked"]
    prediction = denormalise(result["prediction"], values, normalised)
    steps = spec.patch if series else spec.channels  # values per token along the x axis
    channels = spec.channels // steps
    truth_style = {"color": TRUTH_COLOUR, "lw": 1.1} if series else {"color": TRUTH_COLOUR, "ls": "none", "marker": "o"}
    guess_style = {"color": RECONSTRUCTION_COLOUR, "lw": 1.4}
    if not series:
        guess_style.update(ls="none", marker="x", mew=1.5)
    for row, ax in enumerate(axes):
        n = int(valid[row].sum())
        for token in np.flatnonzero(masked[row, :n]):
            ax.axvspan(token * steps - 0.5, (token + 1) * steps - 0.5, color=MASK_COLOUR, alpha=0.18, lw=0)
        if not series:  # element boundaries
            for token in range(1, n):
                ax.axvline(token * steps - 0.5, color="0.85", lw=0.5, zorder=0)
        ax.plot(np.arange(n * steps), values[row, :n].reshape(n * steps, channels), ms=3, **truth_style)
        guess = prediction[row, :n].reshape(n, steps, channels)
        for token in np.flatnonzero(masked[row, :n]):
            ax.plot(np.arange(token * steps, (token + 1) * steps), guess[token], ms=4, **guess_style)
        ax.set_xlim(-0.5, max(int(valid.sum(1).max()) * steps - 0.5, 0.5))
        ax.tick_params(labelsize=6)
        ax.set_ylabel(f"sample {row + 1}", fontsize=7)
    unit = "step" if series else "element x value"
    axes[-1].set_xlabel(f"{unit} ({steps} per token)", fontsize=7)
    how = (
        "; the model predicts each token's shape (normalised targets), drawn with the true token's mean and spread"
        if normalised
        else ""
    )
    what = "values (z-normalised)" if series else "standardised values of each element"
    axes[0].set_title(what + how, fontsize=8)
    shape = " (its shape)" if normalised else ""
    return [
        Line2D([], [], label="truth", **truth_style),
        Line2D([], [], label="reconstruction of masked tokens" + shape, **guess_style),
        Patch(color=MASK_COLOUR, alpha=0.18, label="masked token"),
    ]


def draw_frequency(ax, masked: np.ndarray, valid: np.ndarray, names: tuple[str, ...] = ()) -> list:
    """How often each token is masked; a table's feature names label the tokens."""
    from matplotlib.patches import Patch

    frequency = masked.sum(0) / np.maximum(valid.sum(0), 1)
    ax.bar(np.arange(len(frequency)), frequency, color=MASK_COLOUR, width=0.8)
    ax.set_xlim(-0.5, len(frequency) - 0.5)
    ax.set_ylim(0, 1)
    ax.tick_params(labelsize=6)
    if names:
        ax.set_xticks(np.arange(len(names)))
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=6.5)
    else:
        ax.set_xlabel("token index", fontsize=7)
    ax.set_title("how often each token is masked, over the test samples", fontsize=8)
    return [Patch(color=MASK_COLOUR, label="share of samples in which the token is masked")]


def describe(strategy_name: str, ratio: str, step: int | None) -> str:
    """The line every figure carries: which masks, how many, which checkpoint."""
    at = f", checkpoint step {step}" if step is not None else ""
    return f"masks: {strategy_name}, ratio {ratio}{at}"


def show(
    model: MaskedAutoencoder,
    dataset: Dataset,
    strategy: MaskingStrategy,
    out: Path,
    samples: int = 8,
    summary_samples: int = 2000,
    seed: int = 0,
    caption: str = "",
) -> dict:
    """Write the picture to `out` and return the mask summary over up to `summary_samples` test samples.

    `caption` (see `describe`) heads the figure: the strategy, the ratio and the checkpoint step.
    """
    plt = pyplot()
    split = dataset.splits["test"] if len(dataset.splits["test"]) else np.arange(len(dataset))
    index = split[: max(samples, summary_samples)]
    samples = min(samples, len(index))
    result = masks_for(model, dataset, index, strategy, seed)
    valid = dataset.tokens.valid[index]
    summary = summarise(result["masked"], result["random"], valid, dataset.spec.grid)
    # reconstruction loss per masked token: under the model's own masks, and under random ones
    summary["loss_own_masks"] = float(result["token_loss"][result["masked"]].mean())
    summary["loss_random_masks"] = float(result["random_token_loss"][result["random"]].mean())
    if not (np.isfinite(summary["loss_own_masks"]) and np.isfinite(summary["loss_random_masks"])):
        # finite but huge decoder weights (a run stopped as it diverged) overflow the reconstruction
        raise UserError(
            f"the reconstruction loss is not finite ({summary['loss_own_masks']} under these masks, "
            f"{summary['loss_random_masks']} under random ones): the decoder's outputs overflow; nothing is drawn"
        )
    shown = {key: value[:samples] for key, value in result.items()}
    spec, normalised = dataset.spec, model.config.norm_targets
    if spec.grid is not None and not spec.discrete:
        fig, axes = plt.subplots(samples, 4, figsize=(6.4, 1.6 * samples + 1.2), squeeze=False, layout="constrained")
        handles = draw_images(axes, dataset, index[:samples], shown, normalised)
    elif spec.discrete:
        width = min(64, max(last_valid(v) for v in valid[:samples]))
        chars = len(spec.token_text(1))  # letters per token (DNA k-mers: k)
        size = (max(6.0, 0.17 * chars * width + 0.5), 0.55 * samples + 1.6)
        fig, ax = plt.subplots(figsize=size, layout="constrained")
        handles = draw_strips(ax, dataset, index[:samples], shown, width)
    else:
        wide = isinstance(spec, FeatureTokens)
        if wide:  # a cell's genes: the first MAX_FEATURES are drawn, named
            shown = {key: value[:, :MAX_FEATURES] for key, value in shown.items()}
        columns = min(spec.max_tokens, MAX_FEATURES)
        fig, axes = plt.subplots(
            samples + 1,
            1,
            figsize=(max(7.0, 0.28 * columns + 1.5) if wide else 9.0, 1.05 * samples + 3.2),
            gridspec_kw={"height_ratios": [1] * samples + [0.8]},
            squeeze=False,
            layout="constrained",
        )
        axes = axes[:, 0]
        if wide:
            handles = draw_features(axes[:samples], dataset, index[:samples], shown)
        else:
            handles = draw_curves(axes[:samples], dataset, index[:samples], shown, normalised)
        if wide:
            names = spec.features[:MAX_FEATURES]
            handles += draw_frequency(axes[-1], result["masked"][:, :columns], valid[:, :columns], names)
        else:
            handles += draw_frequency(axes[-1], result["masked"], valid)
    fig.suptitle(f"{dataset.name}: {caption}" if caption else dataset.name, fontsize=9)
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3), fontsize=7, frameon=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return summary


def read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        raise UserError(f"no training metrics at {path} (give the run folder written by `anymae pretrain --out`)")
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: a line is not JSON ({error})") from None


def show_curves(metrics: Path, out: Path, caption: str = "") -> None:
    """A run's training curves from metrics.jsonl: the training loss beside the held-out loss under
    random masks, and how evenly positions are masked (per-position frequency min, max and spread)."""
    records = read_metrics(metrics)
    if not records:
        raise UserError(f"{metrics}: no metrics logged yet")
    plt = pyplot()
    step = [r["step"] for r in records]

    def series(key: str) -> list[float]:
        return [r.get(key, float("nan")) for r in records]

    fig, (loss_ax, freq_ax) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    loss_ax.plot(step, series("loss"), color=TRUTH_COLOUR, label="training loss (under the run's own masks)")
    if any("val_loss_random_masks" in r for r in records):
        loss_ax.plot(
            step,
            series("val_loss_random_masks"),
            color=RECONSTRUCTION_COLOUR,
            label="loss on a fixed held-out batch, random masks",
        )
    loss_ax.set_xlabel("step", fontsize=8)
    loss_ax.set_ylabel("loss per masked token", fontsize=8)
    loss_ax.set_title("reconstruction loss", fontsize=9)
    low, high, spread = series("mask_freq_min"), series("mask_freq_max"), series("mask_freq_std")
    freq_ax.fill_between(step, low, high, color=MASK_COLOUR, alpha=0.2, label="min to max over positions")
    freq_ax.plot(step, spread, color=MASK_COLOUR, label="standard deviation over positions")
    freq_ax.set_ylim(0, 1)
    freq_ax.set_xlabel("step", fontsize=8)
    freq_ax.set_title("how often each position is masked (per log window)", fontsize=9)
    for ax in (loss_ax, freq_ax):
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle(f"training curves of {metrics.parent.name}" + (f" ({caption})" if caption else ""), fontsize=9)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("pictures need matplotlib: pip install 'anymae[plot]'") from None
    return plt


def format_summary(summary: dict) -> str:
    freq = summary["position_frequency"]
    lines = [
        f"masks over {summary['samples']} test samples:",
        f"  per-position masking frequency: min {freq['min']:.2f}  max {freq['max']:.2f}  "
        f"std {freq['std']:.3f} (random masks: std {freq['random_std']:.3f})",
        f"  mean run length of masked tokens: {summary['mean_run_length']:.2f} "
        f"(random: {summary['random_mean_run_length']:.2f})",
    ]
    lines.append(
        f"  reconstruction loss per masked token: {summary['loss_own_masks']:.4f} under these masks, "
        f"{summary['loss_random_masks']:.4f} under random masks"
    )
    if "masked_neighbour_share" in summary:
        lines.append(
            f"  masked tokens with a masked neighbour: {summary['masked_neighbour_share']:.3f} "
            f"(random: {summary['random_masked_neighbour_share']:.3f})"
        )
    return "\n".join(lines)
