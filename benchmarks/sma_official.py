"""How far anymae's SMA masks are from the official code's, rule by rule, on planted attention.

The official selection (Johnathan-Xie/sma, `RandomlySelectedCrossAttentionMasking` in
src/transformers/models/sma/transforms_sma.py) is re-written here per sample from its counting
rules, each switchable to anymae's. Both draw their query rows and the curriculum's random fill
from the same noise (the noise `self_guided_mask` draws from its generator), and ties are broken
by position in both, so a mask that differs does so because of a rule, never the dice.

Planted attention: random logits with a few "attractor" tokens that many heads and queries look
at, padded samples, ratios 0.15-0.75, k = 1, 3, 4, 1-8 heads, with and without the curriculum,
self and latent mode. For each rule the count of masks that differ when only that rule is the
official one; then all rules official ("as each code runs") and none ("aligned", which checks
this transcription: it must give anymae's masks exactly).

    python benchmarks/sma_official.py [--samples 8]
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import torch

from anymae.masking.ratios import mask_counts
from anymae.masking.selectors import self_guided_mask, uniform_noise

RULES = {
    "query_rows": "query rows: official round(n_valid r / k) (can be 0); anymae round(m / k), at least 1",
    "count_clamp": "mask count: official round(r n_valid); anymae also clamps it to [1, n_valid - 1]",
    "curriculum_rounding": "curriculum: official rounds the scored and the random part separately; anymae m - scored",
    "self_marker": "mask_self: official gives chosen queries the score num_heads; anymae +inf",
    "latent_padded_length": "latent mode: official counts query rows on the padded length; anymae on n_valid",
    "padding_candidates": "top-k: official over every position, padding included (score 0); anymae valid only",
}
PADDED, LATENTS = 48, 8


def first_by_noise(noise: torch.Tensor, allowed: torch.Tensor, count: int) -> torch.Tensor:
    """The `count` allowed positions with the highest noise (ties by position), as a bool mask."""
    order = noise.masked_fill(~allowed, float("-inf")).argsort(descending=True, stable=True)
    picked = torch.zeros_like(allowed)
    picked[order[: max(0, min(count, int(allowed.sum())))]] = True
    return picked


def official_mask(logits, valid, ratio, per_query, mask_self, sigma, row_noise, fill_noise, official: set[str]):
    """One sample (logits (H, Nq, N), valid (N,)) under the official rules named in `official`, anymae's otherwise."""
    heads, n_queries, n = logits.shape
    n_valid = int(valid.sum())
    self_mode = n_queries == n
    exact = ratio * n_valid
    m = round(exact) if "count_clamp" in official else int(mask_counts(torch.tensor([ratio]), valid[None])[0])
    length = n if "latent_padded_length" in official and not self_mode else n_valid
    if "query_rows" in official:
        rows = round(length * ratio / per_query)
    else:
        everything = torch.ones(1, length, dtype=torch.bool)  # anymae's rule on the padded length, if asked
        m_rows = m if length == n_valid else int(mask_counts(torch.tensor([ratio]), everything)[0])
        rows = max(1, round(m_rows / per_query))
    query_allowed = valid if self_mode else torch.ones(n_queries, dtype=torch.bool)
    chosen = first_by_noise(row_noise, query_allowed, rows)
    attention = logits.masked_fill(~valid, float("-inf")).softmax(-1).nan_to_num(0.0).mean(0)  # (Nq, N)
    summed = attention[chosen].sum(0)
    if mask_self and self_mode:
        summed[chosen] = float(heads) if "self_marker" in official else float("inf")
    if sigma > 0:
        base = exact if "count_clamp" in official else m
        n_top = round(base * (1 - sigma)) if "curriculum_rounding" in official else round(m * (1 - sigma))
        n_fill = round(base * sigma) if "curriculum_rounding" in official else m - n_top
    else:
        n_top, n_fill = m, 0
    candidates = torch.ones_like(valid) if "padding_candidates" in official else valid
    top = first_by_noise(summed, candidates, n_top)  # the scores are the "noise" here: highest first
    return top | first_by_noise(fill_noise, valid & ~top, n_fill)


def planted_logits(g: torch.Generator, heads: int, n_queries: int, n: int) -> torch.Tensor:
    """Random logits, plus 1-3 attractor tokens that a random half of the (head, query) rows look at."""
    logits = torch.randn(heads, n_queries, n, generator=g) * (1 + 2 * torch.rand(1, generator=g))
    attractors = torch.randint(n, (int(torch.randint(1, 4, (1,), generator=g)),), generator=g)
    rows = torch.rand(heads, n_queries, 1, generator=g) < 0.5
    bonus = torch.zeros(n)
    bonus[attractors] = 3 + 3 * torch.rand(len(attractors), generator=g)
    return logits + rows * bonus


def compare(samples: int) -> dict:
    variants = {"aligned": set(), **{rule: {rule} for rule in RULES}, "official": set(RULES)}
    differ = {name: {"self": 0, "latent": 0} for name in variants}
    total = {"self": 0, "latent": 0}
    grid = itertools.product((0.15, 0.3, 0.5, 0.75), (1, 3, 4), (1, 4, 8), (0.0, 0.3, 0.5), ("self", "latent"))
    for case, (ratio, per_query, heads, sigma, mode) in enumerate(grid):
        g = torch.Generator().manual_seed(case)
        n_queries = PADDED if mode == "self" else LATENTS
        lengths = torch.randint(2, PADDED + 1, (samples,), generator=g)
        valid = torch.arange(PADDED)[None] < lengths[:, None]  # padding at the end, as the official code assumes
        logits = torch.stack([planted_logits(g, heads, n_queries, PADDED) for _ in range(samples)])
        logits = logits.masked_fill(~valid[:, None, None, :], float("-inf"))
        counts = mask_counts(torch.full((samples,), ratio), valid)
        draw = torch.Generator().manual_seed(1000 + case)
        dice = torch.Generator().set_state(draw.get_state())  # the same noise self_guided_mask draws
        row_noise = uniform_noise((samples, n_queries), dice, valid.device)
        fill_noise = uniform_noise(valid.shape, dice, valid.device)
        ours = self_guided_mask(logits, valid, counts, draw, per_query, "mean", True, sigma)
        for b in range(samples):
            total[mode] += 1
            for name, official in variants.items():
                theirs = official_mask(
                    logits[b], valid[b], ratio, per_query, True, sigma, row_noise[b], fill_noise[b], official
                )
                differ[name][mode] += int(not torch.equal(theirs, ours[b]))
    return {"samples": total, "masks_that_differ": differ, "rules": RULES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=8, help="samples per case of the grid (216 cases)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sma_official.json"))
    args = parser.parse_args()
    result = compare(args.samples)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    total = result["samples"]
    print(f"masks that differ from anymae's, of {total['self']} self-mode and {total['latent']} latent-mode samples")
    for name, count in result["masks_that_differ"].items():
        print(f"{name:<22} self {count['self']:>4}  latent {count['latent']:>4}  {RULES.get(name, '')}")


if __name__ == "__main__":
    main()
