"""``[k/N, ETA ...]`` prefixes for long steps: runs of a comparison, candidates of a search,
rewards scored and frames encoded by eval-reward."""

from __future__ import annotations

import time

__all__ = ["Progress"]


class Progress:
    """Counts finished items of ``total`` and estimates the rest from the mean wall time per
    item so far.

    Example:
        >>> p = Progress(3)
        >>> p.tick().startswith("[1/3, ETA")
        True
    """

    def __init__(self, total: int) -> None:
        self.total, self.done, self.start = total, 0, time.perf_counter()

    def tick(self, n: int = 1) -> str:
        """Count ``n`` more finished items; return ``[k/N, ETA ...]`` (``[N/N]`` at the end)."""
        self.done += n
        left = self.total - self.done
        if left <= 0:
            return f"[{self.done}/{self.total}]"
        eta = (time.perf_counter() - self.start) / self.done * left
        when = (
            f"{eta:.0f} s"
            if eta < 90
            else f"{eta / 60:.0f} min"
            if eta < 5400
            else f"{eta / 3600:.1f} h"
        )
        return f"[{self.done}/{self.total}, ETA {when}]"
