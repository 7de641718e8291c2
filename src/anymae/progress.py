"""Progress of the long phases (reading, preparing, embedding, probing, fine-tuning): a bar on a
terminal, a line every few seconds in a log, and a closing line with the count and the rate."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

EVERY_S = 10.0  # seconds between lines when stderr is not a terminal


class Counter:
    """Counts `unit` done by a phase named `what` (of `total` when known)."""

    def __init__(self, what: str, unit: str, total: int | None = None, every: float = EVERY_S) -> None:
        self.what, self.unit, self.total, self.every = what, unit, total, every
        self.tty = sys.stderr.isatty()
        self.bar = tqdm(
            total=total, desc=what, unit=f" {unit}", unit_scale=True, dynamic_ncols=True, disable=not self.tty
        )
        self.done, self.started = 0, time.perf_counter()
        self.last, self.now_doing = self.started, ""

    def doing(self, text: str) -> None:
        """What the phase is at now (the fit under way), shown beside the count."""
        self.now_doing = text
        self.bar.set_postfix_str(text, refresh=False)

    def update(self, n: int) -> None:
        self.done += n
        self.bar.update(n)
        now = time.perf_counter()
        if not self.tty and now - self.last >= self.every:
            self.last = now
            of = f" of {self.total:,}" if self.total else ""
            at = f"; {self.now_doing}" if self.now_doing else ""
            print(f"{self.what}: {self.done:,}{of} {self.unit} ({self.pace()}){at}", file=sys.stderr, flush=True)

    def rate(self) -> float:
        return self.done / max(time.perf_counter() - self.started, 1e-9)

    def pace(self) -> str:
        """'1,234/s', or for units slower than one a second (fits) the seconds each took."""
        rate = self.rate()
        return f"{rate:,.0f}/s" if rate >= 1 or not self.done else f"{1 / rate:,.1f} s each"

    def close(self) -> None:
        self.bar.close()
        seconds = time.perf_counter() - self.started
        print(f"{self.what}: {self.done:,} {self.unit} in {seconds:.1f} s ({self.pace()})", file=sys.stderr)
