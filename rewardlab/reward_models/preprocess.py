"""Batched image preprocessing for vision-language encoders, on tensors.

Per-frame PIL preprocessing is a known bottleneck of CLIP rewards, and a plain
``Resize((s, s))`` silently squashes non-square renders. :func:`preprocess_frames` takes a whole
``(B, H, W, 3)`` uint8 batch on the encoder's device and applies, in order:

1. an optional crop box ``(top, left, height, width)`` in pixels;
2. a resize policy that keeps the aspect ratio:

   - ``"letterbox"``: resize the frame to fit the encoder's input, keeping its aspect ratio,
     then pad it (centered) with the model's fill color: the whole frame is seen, with bars
     on the short side;
   - ``"center_crop"``: resize so the short side matches the encoder's input, then crop the
     center: no bars, but the ends of the long side are cut off;

   the resize (``torch.nn.functional.interpolate``, antialiased) is skipped entirely when the
   frame is already at the encoder's input size;
3. scaling to ``[0, 1]`` and normalization with the model's per-channel mean and std.

Resizing and padding happen on uint8 pixels, as in PIL: the fill color is rounded to uint8
and resized pixels are rounded and clamped to ``[0, 255]``. On the CPU the resize runs on the
uint8 channels-last batch itself (torch's vectorized uint8 kernel, several times faster than a
float resize); on other devices it runs in float32 and is rounded. Normalization is one
in-place multiply-add per element.

Importing this module is cheap: torch is imported on the first call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

__all__ = ["RESIZE_POLICIES", "ResizePolicy", "preprocess_frames"]

ResizePolicy = Literal["letterbox", "center_crop"]
RESIZE_POLICIES: tuple[str, ...] = ("letterbox", "center_crop")


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Antialiased resize of a uint8 ``(B, 3, H, W)`` batch, to uint8 pixel values."""
    import torch
    import torch.nn.functional as F

    if tuple(x.shape[-2:]) == size:
        return x
    if x.device.type == "cpu":
        # A channels-last uint8 batch takes torch's vectorized uint8 path (as PIL, in uint8).
        return F.interpolate(
            x.contiguous(memory_format=torch.channels_last),
            size=size,
            mode=mode,
            align_corners=False,
            antialias=True,
        )
    out = F.interpolate(x.float(), size=size, mode=mode, align_corners=False, antialias=True)
    # Bicubic overshoots: round and clamp to uint8 values, as the CPU path and PIL do.
    return out.round_().clamp_(0.0, 255.0)


def preprocess_frames(
    frames: torch.Tensor,
    size: tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
    *,
    resize: ResizePolicy = "letterbox",
    fill: float | Sequence[float] = 0.0,
    crop: tuple[int, int, int, int] | None = None,
    interpolation: str = "bicubic",
) -> torch.Tensor:
    """Turn a batch of uint8 frames into the encoder's normalized input.

    Args:
        frames: ``(B, H, W, 3)`` uint8 tensor (already on the target device).
        size: Encoder input ``(height, width)``.
        mean: Per-channel mean in ``[0, 1]`` units.
        std: Per-channel std in ``[0, 1]`` units.
        resize: ``"letterbox"`` or ``"center_crop"`` (see the module docstring).
        fill: Letterbox fill color in ``[0, 255]`` pixel units (rounded to uint8), one value
            or one per channel.
        crop: Optional box ``(top, left, height, width)`` applied before resizing.
        interpolation: ``"bicubic"`` or ``"bilinear"``.

    Returns:
        ``(B, 3, size[0], size[1])`` float32 tensor.

    Raises:
        ValueError: On a malformed batch, an unknown policy or a crop box outside the frame.
    """
    import torch

    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"frames must be a (B, H, W, 3) uint8 batch, got shape {tuple(frames.shape)} "
            f"dtype {frames.dtype}"
        )
    if resize not in RESIZE_POLICIES:
        raise ValueError(f"resize must be one of {RESIZE_POLICIES}, got {resize!r}")
    if interpolation not in ("bicubic", "bilinear"):
        raise ValueError(f"interpolation must be 'bicubic' or 'bilinear', got {interpolation!r}")
    th, tw = size
    if crop is not None:
        top, left, ch, cw = crop
        height, width = frames.shape[1:3]
        if top < 0 or left < 0 or ch <= 0 or cw <= 0 or top + ch > height or left + cw > width:
            raise ValueError(
                f"crop box (top, left, height, width)={crop} does not fit in a "
                f"{height}x{width} frame"
            )
        frames = frames[:, top : top + ch, left : left + cw]
    h, w = frames.shape[1:3]
    if resize == "letterbox":
        # Scale the whole frame to fit, keeping its aspect ratio, then pad it (centered) to the
        # encoder's size: resizing the frame alone, not a padded canvas, reads 25% fewer pixels
        # on a 4:3 frame and keeps the fill color from bleeding into the frame's edges.
        scale = min(th / h, tw / w)
        rh, rw = min(th, max(1, round(h * scale))), min(tw, max(1, round(w * scale)))
        # (B, H, W, 3) viewed as (B, 3, H, W) is a channels-last tensor: no copy.
        x = _resize(frames.permute(0, 3, 1, 2), (rh, rw), interpolation)
        if (rh, rw) != (th, tw):
            fill_t = torch.as_tensor(fill, dtype=torch.float32).round().clamp(0, 255)
            fill_px = fill_t.to(dtype=torch.uint8, device=x.device).reshape(-1)
            canvas = fill_px.reshape(1, -1, 1, 1).expand(x.shape[0], 3, th, tw)
            canvas = canvas.contiguous(memory_format=torch.channels_last)
            top, left = (th - rh) // 2, (tw - rw) // 2
            canvas[:, :, top : top + rh, left : left + rw] = x
            x = canvas
    else:
        scale = max(th / h, tw / w)
        rh, rw = max(th, round(h * scale)), max(tw, round(w * scale))
        x = _resize(frames.permute(0, 3, 1, 2), (rh, rw), interpolation)
        top, left = (rh - th) // 2, (rw - tw) // 2
        x = x[:, :, top : top + th, left : left + tw]
    # (x / 255 - mean) / std as one multiply-add, in place on a fresh contiguous float copy.
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=x.device).reshape(1, 3, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=x.device).reshape(1, 3, 1, 1)
    out = x.to(torch.float32, memory_format=torch.contiguous_format)
    return out.mul_(1.0 / (255.0 * std_t)).add_(-mean_t / std_t)
