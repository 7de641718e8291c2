"""Pictures of what a model masks and how it reconstructs, and a summary of its masks.

The picture follows the token layout, not the dataset: tokens on a 2-D grid give an image grid,
discrete tokens give character strips, other tokens give a per-token frequency heat map.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from anymae.data import Dataset
from anymae.errors import UserError
from anymae.masking import MaskingStrategy, random_mask
from anymae.model import MaskedAutoencoder
from anymae.objective import reconstruction, targets, token_losses


def masks_for(
    model: MaskedAutoencoder, dataset: Dataset, index: np.ndarray, strategy: MaskingStrategy, seed: int = 0
) -> dict[str, np.ndarray]:
    """Masks, predictions and per-token losses for the samples `index`, as at the end of training;
    also random masks with the same counts and the per-token losses under them."""
    generator = torch.Generator().manual_seed(seed)
    keys = ("masked", "prediction", "token_loss", "random", "random_token_loss")
    parts: dict[str, list] = {key: [] for key in keys}
    model.eval()
    for start in range(0, len(index), 256):
        batch = dataset.tokens.batch(index[start : start + 256], dataset.spec.discrete)
        with torch.no_grad():
            out = reconstruction(model, batch, strategy, generator, progress=1.0)
            random = random_mask(batch.valid, out.masked.sum(1), generator)
            prediction = model.decode(model.encode(batch, masked=random), batch.valid.shape[1])
            random_loss = token_losses(prediction, targets(model, batch))
        parts["masked"].append(out.masked.numpy())
        parts["prediction"].append(out.prediction.float().numpy())
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


def draw_images(ax_rows, dataset: Dataset, index: np.ndarray, result: dict, normalised: bool) -> None:
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
                rgb = np.where(hidden[sample][..., None], 0.35 * rgb + 0.65 * np.array([0.2, 0.45, 0.9]), rgb)
            ax.imshow(np.clip(rgb, 0, 1))
            ax.set_xticks([])
            ax.set_yticks([])
            if sample == 0:
                ax.set_title(title, fontsize=9)


def draw_strips(ax, dataset: Dataset, index: np.ndarray, result: dict, width: int = 64) -> None:
    import matplotlib.pyplot as plt

    tokens, valid = dataset.tokens.inputs[index], dataset.tokens.valid[index]
    error = result["token_loss"]
    top = max(float(error[result["masked"]].max(initial=0)), 1e-6)
    cmap = plt.get_cmap("Reds")
    for row in range(len(index)):
        for col in range(min(width, int(valid[row].sum()))):
            masked = bool(result["masked"][row, col])
            colour = cmap(0.2 + 0.8 * error[row, col] / top) if masked else (0.92, 0.92, 0.92, 1)
            ax.add_patch(plt.Rectangle((col, -row - 1), 1, 1, color=colour))
            char = dataset.spec.token_text(int(tokens[row, col]))
            ax.text(
                col + 0.5,
                -row - 0.5,
                char if char.isprintable() else "·",
                ha="center",
                va="center",
                fontsize=6,
                family="monospace",
            )
    ax.set_xlim(0, width)
    ax.set_ylim(-len(index), 0)
    ax.set_axis_off()
    ax.set_title("masked tokens in red (darker = larger reconstruction error), visible in grey", fontsize=9)


def draw_frequency(ax, masked: np.ndarray, valid: np.ndarray) -> None:
    frequency = masked.sum(0) / np.maximum(valid.sum(0), 1)
    image = ax.imshow(frequency[None, :], aspect="auto", cmap="viridis", vmin=0, vmax=1)
    ax.set_yticks([])
    ax.set_xlabel("token (feature) index")
    ax.set_title("how often each token is masked", fontsize=9)
    ax.figure.colorbar(image, ax=ax, orientation="horizontal", pad=0.35)


def show(
    model: MaskedAutoencoder,
    dataset: Dataset,
    strategy: MaskingStrategy,
    out: Path,
    samples: int = 8,
    summary_samples: int = 2000,
    seed: int = 0,
) -> dict:
    """Write the picture to `out` and return the mask summary over up to `summary_samples` test samples."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("pictures need matplotlib: pip install 'anymae[plot]'") from None
    split = dataset.splits["test"] if len(dataset.splits["test"]) else np.arange(len(dataset))
    index = split[: max(samples, summary_samples)]
    result = masks_for(model, dataset, index, strategy, seed)
    valid = dataset.tokens.valid[index]
    summary = summarise(result["masked"], result["random"], valid, dataset.spec.grid)
    # reconstruction loss per masked token: under the model's own masks, and under random ones
    summary["loss_own_masks"] = float(result["token_loss"][result["masked"]].mean())
    summary["loss_random_masks"] = float(result["random_token_loss"][result["random"]].mean())
    shown = {key: value[:samples] for key, value in result.items()}
    spec = dataset.spec
    if spec.grid is not None and not spec.discrete:
        fig, axes = plt.subplots(samples, 4, figsize=(6, 1.6 * samples), squeeze=False)
        draw_images(axes, dataset, index[:samples], shown, model.config.norm_targets)
    elif spec.discrete:
        fig, ax = plt.subplots(figsize=(12, 0.4 * samples + 0.8))
        draw_strips(ax, dataset, index[:samples], shown)
    else:
        fig, ax = plt.subplots(figsize=(10, 2.2))
        draw_frequency(ax, result["masked"], valid)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return summary


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
