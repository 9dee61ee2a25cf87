"""Rendering headless: what every env that renders through MuJoCo's EGL context needs."""

from __future__ import annotations

import contextlib
import functools
import importlib.util

__all__ = ["load_triton_first"]


@functools.cache
def load_triton_first() -> None:
    """Import triton (shipped with torch's CUDA builds) before the first EGL context.

    Mesa's software EGL and triton each load their own LLVM; loading triton's second
    crashes the process (a segmentation fault in ``import triton``), and torch imports it
    lazily the first time an optimizer is built: rendering a frame, then training an agent
    (eval-reward's probe after a frame dataset, a CLIP reward's first frame before PPO
    builds its optimizer) died. In the other order both work.
    """
    if importlib.util.find_spec("triton") is not None:
        with contextlib.suppress(Exception):
            import triton  # noqa: F401
