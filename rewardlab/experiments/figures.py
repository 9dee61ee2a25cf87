"""Helpers shared by the reports: Agg figures saved atomically, colours, JSON and Markdown."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rewardlab.experiments.files import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["colors", "json_safe", "md_cell", "new_figure", "save_png"]


def new_figure(
    ncols: int = 1, width: float = 6.0, height: float = 4.0, nrows: int = 1
) -> tuple[Figure, Any]:
    """A figure on an explicit Agg canvas (no pyplot state, no global backend switch) and its
    axes: a flat array of ``nrows * ncols``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False).ravel()


def save_png(fig: Figure, path: Path) -> None:
    """Write ``fig`` as a PNG, atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write(path, buf.getvalue())


def colors(names: list[str]) -> dict[str, Any]:
    """A tab10 colour per name, in order."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {v: cmap(i % 10) for i, v in enumerate(names)}


def json_safe(x: Any) -> Any:
    """NaN and inf to ``None``, numpy scalars to Python numbers, recursively."""
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def md_cell(text: str) -> str:
    """Escape a name for a Markdown table cell."""
    return text.replace("|", r"\|")
