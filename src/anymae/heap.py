"""glibc's heap, bounded: large blocks get their own mmap, so freed activations go back to the system.

glibc serves a block from its heap unless it is larger than the mmap threshold, and it raises that
threshold (up to 32 MiB) each time a mapped block is freed. A training step allocates and frees
activations of many sizes, so after the first steps they all come from the heap, which fragments and
is never given back: the resident set stays far above what a step holds at once. train.recompute
frees each block's activations as it goes, which only pays off with a fixed threshold (the protein
model's peak: 2.3 GB with glibc's own heap, 1.25 GB bounded; README, Performance). Not the default:
mapping the blocks afresh every step costs page faults (0.78x the samples/s without recomputing).
`anymae embed` sets it too: its batches of every padded width grew glibc's heap with their number
(the peak at 1M samples 1.25x that at 100k), at no measurable cost in its speed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
THRESHOLD = 1 << 20


def mallopt(option: int, value: int) -> int:
    """glibc's mallopt; 0 (nothing set) where the C library has none (macOS) or ignores it (musl)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(option, value)
    except (OSError, AttributeError):
        return 0


def bound_heap() -> bool:
    """Fix glibc's mmap threshold at 1 MiB, unless the environment sets one or preloads another
    allocator (LD_PRELOAD); whether it was set."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or os.environ.get("LD_PRELOAD"):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD))
