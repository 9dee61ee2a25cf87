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
        >>> p.tick(running=1).startswith("[2/3 done, 1 running, 0 queued, ETA")
        True
    """

    def __init__(self, total: int) -> None:
        self.total, self.done, self.start = total, 0, time.perf_counter()

    def tick(self, n: int = 1, *, running: int | None = None) -> str:
        """Count ``n`` more finished items; return ``[k/N, ETA ...]`` (``[N/N]`` at the end).

        With ``running`` (items started and not finished), ``[k/N done, r running, q queued,
        ETA ...]``, ``q`` the items not started.
        """
        self.done += n
        left = self.total - self.done
        counts = f"{self.done}/{self.total}"
        if running is not None:
            counts += f" done, {running} running, {left - running} queued"
        if left <= 0:
            return f"[{counts}]"
        eta = (time.perf_counter() - self.start) / self.done * left
        when = (
            f"{eta:.0f} s"
            if eta < 90
            else f"{eta / 60:.0f} min"
            if eta < 5400
            else f"{eta / 3600:.1f} h"
        )
        return f"[{counts}, ETA {when}]"
