"""Zero-shot CLIP rewards: a frame's image embedding scored against language prompts.

Notation: ``e`` is the normalized image embedding of a frame, ``g`` the goal text embedding,
``b`` the baseline text embedding and ``n_i`` the negatives' embeddings. A prompt given as a
list of strings is a prompt set: its normalized embeddings are averaged **and re-normalized**.

Heads (``head=``, with their options):

- ``"cosine"``: ``r = e . g`` (the CLIP reward).
- ``"goal_baseline"`` (``alpha`` in ``[0, 1]``, default 0.5), VLM-RM (Rocamonde et al. 2023):
  ``d = g - b``, ``P = alpha d d^T / |d|^2 + (1 - alpha) I``,
  ``r = 1 - 0.5 |(e - g) P|^2``. With unit vectors ``alpha = 0`` equals the cosine head exactly
  (``1 - 0.5 |e - g|^2 = e . g``); ``alpha = 1`` keeps only the component along ``g - b``.
- ``"contrast"`` (``c > 0``, default 0.03), VLM-RL: positive ``p = g``, negative ``n`` = the
  negatives as one prompt set, ``raw = e . n - e . p``, ``r = 1 - clip(raw, 0, c) / c`` in
  ``[0, 1]``.
- ``"softmax"`` (``temperature`` tau > 0, default 0.01, CLIP's learned logit scale of 100):
  ``r = softmax([e . g, e . n_1, ...] / tau)[0]``; each negative is one label.
- ``"success"`` (``temperature`` as above, ``threshold`` in ``(0, 1)``, default 0.5): the softmax
  probability thresholded to a binary ``1.0 / 0.0`` success detector.

Image embeddings can be computed once with :meth:`CLIPRewardModel.encode_frames` and scored by
several heads with :meth:`CLIPRewardModel.score` (:meth:`CLIPRewardModel.with_head` shares the
encoder), which is how a sweep over heads avoids re-encoding frames.

This module imports torch and open_clip; ``rewardlab.reward_models`` exports
:class:`CLIPRewardModel` lazily so ``import rewardlab`` stays cheap.
"""

from __future__ import annotations

import copy
import hashlib
import os
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np
import open_clip
import torch

from rewardlab.reward_models.base import RewardBatch, RewardModel, RewardOutput
from rewardlab.reward_models.preprocess import RESIZE_POLICIES, ResizePolicy, preprocess_frames

if TYPE_CHECKING:
    from rewardlab.envs.core import Task

__all__ = ["HEADS", "CLIPRewardModel", "PretrainedWeightsNotFoundError"]

Prompt = str | Sequence[str]

# Every head with its options and their defaults.
HEADS: Mapping[str, Mapping[str, float]] = {
    "cosine": {},
    "goal_baseline": {"alpha": 0.5},
    "contrast": {"c": 0.03},
    "softmax": {"temperature": 0.01},
    "success": {"temperature": 0.01, "threshold": 0.5},
}

_PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


class PretrainedWeightsNotFoundError(FileNotFoundError):
    """Pretrained CLIP weights could neither be found locally nor downloaded."""


def _validate_head(head: str, options: Mapping[str, Any]) -> dict[str, float]:
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; choose one of {sorted(HEADS)}")
    unknown = sorted(set(options) - set(HEADS[head]))
    if unknown:
        raise TypeError(
            f"head {head!r} takes options {sorted(HEADS[head]) or 'none'}, got unexpected {unknown}"
        )
    opts = {**HEADS[head], **options}
    if "alpha" in opts and not 0.0 <= opts["alpha"] <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {opts['alpha']}")
    if "c" in opts and not opts["c"] > 0.0:
        raise ValueError(f"c must be > 0, got {opts['c']}")
    if "temperature" in opts and not opts["temperature"] > 0.0:
        raise ValueError(f"temperature must be > 0, got {opts['temperature']}")
    if "threshold" in opts and not 0.0 < opts["threshold"] < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {opts['threshold']}")
    return {k: float(v) for k, v in opts.items()}


def _prompt_list(name: str, prompt: Prompt) -> list[str]:
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    if not prompts:
        raise ValueError(f"{name} must be a non-empty string or list of strings, got {prompt!r}")
    for p in prompts:
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"{name} prompts must be non-empty strings, got {p!r} in {prompt!r}")
    return prompts


def _prompt_sets(
    goal: Prompt, baseline: Prompt | None, negatives: Prompt | Sequence[Prompt]
) -> tuple[list[str], list[str] | None, list[list[str]]]:
    """Goal, baseline and negative prompts as lists of captions (a set per negative)."""
    negative_sets = [
        _prompt_list("negatives", n)
        for n in ([negatives] if isinstance(negatives, str) else negatives)
    ]
    baseline_prompts = None if baseline is None else _prompt_list("baseline", baseline)
    return _prompt_list("goal", goal), baseline_prompts, negative_sets


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _looks_like_path(pretrained: str) -> bool:
    return (
        os.sep in pretrained
        or "/" in pretrained
        or pretrained.endswith((".bin", ".pt", ".pth", ".safetensors"))
    )


def _load_model(
    model: str, pretrained: str | None, device: torch.device, cache_dir: str | None
) -> torch.nn.Module:
    """Create an open_clip model, turning every missing-weights failure into one clear error."""
    schema = model.startswith(("hf-hub:", "local-dir:"))
    if not schema and model not in open_clip.list_models():
        raise ValueError(
            f"unknown open_clip model {model!r}; valid names are listed by "
            "open_clip.list_models() (e.g. 'ViT-B-32', 'ViT-L-14'), and "
            "open_clip.list_pretrained() pairs them with pretrained tags"
        )
    how_to_fix = (
        f"Pass a local checkpoint with pretrained='/path/to/open_clip_pytorch_model.bin', or "
        f"download it once on a connected machine (HF_HUB_OFFLINE unset) with "
        f"open_clip.create_model({model!r}, pretrained={pretrained!r}) so it lands in the "
        f"Hugging Face cache, or pass pretrained=None for random weights."
    )
    if pretrained is None:
        if not schema:
            warnings.warn(
                f"CLIPRewardModel: pretrained=None, so {model!r} has RANDOM weights; its rewards "
                "are meaningless except for tests",
                UserWarning,
                stacklevel=3,
            )
        # pretrained_text=False: random weights means no tower download either.
        return open_clip.create_model(model, None, device=device, pretrained_text=False)
    if not schema and not os.path.isfile(pretrained):
        if _looks_like_path(pretrained):
            raise PretrainedWeightsNotFoundError(
                f"CLIP checkpoint file for {model!r} not found: {pretrained!r}. {how_to_fix}"
            )
        tags = open_clip.list_pretrained_tags_by_model(model)
        if pretrained not in tags:
            raise ValueError(
                f"unknown pretrained tag {pretrained!r} for {model!r}; its tags are {tags} "
                "(or pass a local checkpoint file path)"
            )
    try:
        return open_clip.create_model(
            model, pretrained, device=device, cache_dir=cache_dir, require_pretrained=True
        )
    except (RuntimeError, OSError) as e:
        raise PretrainedWeightsNotFoundError(
            f"could not load pretrained weights {pretrained!r} for CLIP model {model!r} "
            f"(offline or hub unreachable?).\n{how_to_fix}\nCause: {e}"
        ) from e


class CLIPRewardModel(RewardModel):
    """Zero-shot reward from a CLIP model's image-text similarity (see the module docstring).

    Args:
        model: open_clip model name (``"ViT-B-32"``), or an ``hf-hub:``/``local-dir:`` id.
        pretrained: open_clip pretrained tag (``"laion2b_s34b_b79k"``), a local checkpoint
            path, or None for random weights (warns; for tests only).
        head: One of :data:`HEADS`.
        goal: Goal caption, or a prompt set (list of captions).
        baseline: Baseline caption or prompt set; required by ``"goal_baseline"``.
        negatives: Failure captions; each is one label for ``"softmax"``/``"success"``, all
            together one prompt set for ``"contrast"``. An entry may itself be a prompt set.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
        resize: ``"letterbox"`` or ``"center_crop"`` for frames whose aspect ratio differs from
            the encoder's (see :mod:`rewardlab.reward_models.preprocess`).
        crop: Optional box ``(top, left, height, width)`` cut from every frame first.
        precision: Autocast dtype on CUDA, ``"fp16"``, ``"bf16"`` or ``"fp32"``; CPU always
            runs in float32.
        cache_size: Number of frame embeddings kept in an LRU cache keyed by the frame's
            bytes (0 = off). Useful where frames repeat (gridworlds).
        cache_dir: Download cache directory passed to open_clip.
        **head_options: The head's options (``alpha``, ``c``, ``temperature``, ``threshold``).

    Raises:
        ValueError: Unknown head or model name, bad option values, empty prompts, or a prompt
            the head needs that is missing.
        TypeError: Options that do not belong to ``head``.
        PretrainedWeightsNotFoundError: The weights can be neither found nor downloaded.
    """

    needs_frames = True

    def __init__(
        self,
        model: str = "ViT-B-32",
        pretrained: str | None = "laion2b_s34b_b79k",
        *,
        head: str = "cosine",
        goal: Prompt,
        baseline: Prompt | None = None,
        negatives: Prompt | Sequence[Prompt] = (),
        device: str = "auto",
        resize: ResizePolicy = "letterbox",
        crop: tuple[int, int, int, int] | None = None,
        precision: str = "fp16",
        cache_size: int = 0,
        cache_dir: str | None = None,
        **head_options: float,
    ) -> None:
        self.head = head
        self.head_options = _validate_head(head, head_options)
        if resize not in RESIZE_POLICIES:
            raise ValueError(f"resize must be one of {RESIZE_POLICIES}, got {resize!r}")
        if precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(_PRECISIONS)}, got {precision!r}")
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        if crop is not None and len(crop) != 4:
            raise ValueError(f"crop must be (top, left, height, width), got {crop!r}")
        goal_prompts, baseline_prompts, negative_sets = _prompt_sets(goal, baseline, negatives)
        if head == "goal_baseline" and baseline_prompts is None:
            raise ValueError("head 'goal_baseline' needs a baseline prompt, got baseline=None")
        if head in ("contrast", "softmax", "success") and not negative_sets:
            raise ValueError(f"head {head!r} needs at least one negative prompt, got none")

        self.device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
        # Any: open_clip's CLIP and CustomTextCLIP share encode_image/encode_text, no protocol.
        self.clip_model: Any = _load_model(model, pretrained, self.device, cache_dir).eval()
        self.tokenizer = open_clip.get_tokenizer(model)
        cfg = open_clip.get_model_preprocess_cfg(self.clip_model)
        size = cfg.get("size", 224)
        self.input_size: tuple[int, int] = (size, size) if isinstance(size, int) else tuple(size)
        self.mean: tuple[float, ...] = tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
        self.std: tuple[float, ...] = tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD))
        self.fill = cfg.get("fill_color", 0)
        self.interpolation = cfg.get("interpolation", "bicubic")
        self.resize = resize
        self.crop = crop
        self.precision = precision
        self.cache_size = cache_size
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()

        # Text embeddings once, at construction: float64 unit vectors.
        self._set_prompts(goal_prompts, baseline_prompts, negative_sets)
        self._check_prompts_for(head)

    def _set_prompts(
        self, goal: list[str], baseline: list[str] | None, negatives: list[list[str]]
    ) -> None:
        self.goal_embedding = self.embed_prompts(goal)
        self.baseline_embedding = None if baseline is None else self.embed_prompts(baseline)
        self.negative_embeddings = (
            np.stack([self.embed_prompts(n) for n in negatives])
            if negatives
            else np.zeros((0, self.goal_embedding.shape[0]))
        )

    @classmethod
    def from_task(cls, task: Task, **kwargs: Any) -> CLIPRewardModel:
        """A model prompted with ``task.goal``, ``task.baseline`` and ``task.negatives``."""
        kwargs.setdefault("goal", task.goal)
        kwargs.setdefault("baseline", task.baseline)
        kwargs.setdefault("negatives", task.negatives)
        return cls(**kwargs)

    def with_head(self, head: str, **head_options: float) -> CLIPRewardModel:
        """A copy scoring with another head, sharing this model's encoder and text embeddings."""
        opts = _validate_head(head, head_options)
        self._check_prompts_for(head)
        other = copy.copy(self)
        other.head, other.head_options = head, opts
        return other

    def with_prompts(
        self,
        goal: Prompt,
        baseline: Prompt | None = None,
        negatives: Prompt | Sequence[Prompt] = (),
        *,
        head: str | None = None,
        **head_options: float,
    ) -> CLIPRewardModel:
        """A copy with other prompts (as in the constructor) and optionally another head,
        sharing this model's encoder and frame-embedding cache: a prompt sweep loads the
        weights once."""
        other = copy.copy(self)
        other._set_prompts(*_prompt_sets(goal, baseline, negatives))
        if head is not None:
            other.head, other.head_options = head, _validate_head(head, head_options)
        elif head_options:
            raise TypeError(f"head options {sorted(head_options)} need head=")
        other._check_prompts_for(other.head)
        return other

    def _check_prompts_for(self, head: str) -> None:
        if head == "goal_baseline":
            if self.baseline_embedding is None:
                raise ValueError("head 'goal_baseline' needs a baseline prompt, got baseline=None")
            if np.linalg.norm(self.goal_embedding - self.baseline_embedding) < 1e-8:
                raise ValueError("goal and baseline embeddings coincide: g - b is zero")
        if head in ("contrast", "softmax", "success") and len(self.negative_embeddings) == 0:
            raise ValueError(f"head {head!r} needs at least one negative prompt, got none")

    def _autocast(self) -> Any:
        dtype = _PRECISIONS[self.precision]
        if self.device.type == "cuda" and dtype is not None:
            return torch.autocast("cuda", dtype=dtype)
        return nullcontext()

    def embed_prompts(self, prompts: Sequence[str]) -> np.ndarray:
        """Unit ``(D,)`` float64 embedding of a prompt set: normalized mean of normalized rows."""
        tokens = self.tokenizer(list(prompts)).to(self.device)
        with torch.inference_mode(), self._autocast():
            text = self.clip_model.encode_text(tokens)
        rows = _normalize(text.float().cpu().numpy().astype(np.float64))
        # Averaging unit vectors shortens them: re-normalize (a known bug in public code).
        return _normalize(rows.mean(axis=0))

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """The encoder's input for uint8 ``(B, H, W, 3)`` frames, on the model's device:
        crop, resize policy and normalization, batched."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        return preprocess_frames(
            x,
            self.input_size,
            self.mean,
            self.std,
            resize=self.resize,
            fill=self.fill,
            crop=self.crop,
            interpolation=self.interpolation,
        )

    def _encode(self, frames: np.ndarray) -> np.ndarray:
        pixels = self.preprocess(frames)
        with torch.inference_mode(), self._autocast():
            emb = self.clip_model.encode_image(pixels)
        return _normalize(emb.float().cpu().numpy().astype(np.float64))

    @staticmethod
    def _frame_key(frame: np.ndarray) -> bytes:
        h = hashlib.blake2b(str(frame.shape).encode(), digest_size=16)
        h.update(np.ascontiguousarray(frame).data)
        return h.digest()

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        """Normalized image embeddings of a frame batch, in one forward pass.

        Args:
            frames: ``(B, H, W, 3)`` uint8 array.

        Returns:
            ``(B, D)`` float64 unit vectors.
        """
        if (
            not isinstance(frames, np.ndarray)
            or frames.dtype != np.uint8
            or frames.ndim != 4
            or frames.shape[-1] != 3
        ):
            got = (
                f"shape {frames.shape} dtype {frames.dtype}"
                if isinstance(frames, np.ndarray)
                else type(frames).__name__
            )
            raise ValueError(f"frames must be a (B, H, W, 3) uint8 numpy array, got {got}")
        if self.cache_size == 0:
            return self._encode(frames)
        keys = [self._frame_key(f) for f in frames]
        missing: dict[bytes, int] = {}
        for i, k in enumerate(keys):
            if k in self._cache:
                self._cache.move_to_end(k)
            elif k not in missing:
                missing[k] = i
        if missing:
            new = self._encode(frames[list(missing.values())])
            for k, e in zip(missing, new, strict=True):
                self._cache[k] = e
        out = np.stack([self._cache[k] for k in keys])
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        """Rewards ``(B,)`` float64 of image embeddings ``(B, D)`` under this model's head."""
        e = np.asarray(embeddings, dtype=np.float64)
        g = self.goal_embedding
        opts = self.head_options
        if self.head == "cosine":
            return e @ g
        if self.head == "goal_baseline":
            assert self.baseline_embedding is not None
            d = g - self.baseline_embedding
            d_hat = d / np.linalg.norm(d)
            diff = e - g
            # (e - g) P with P = alpha d^ d^T + (1 - alpha) I, without forming the D x D matrix.
            alpha = opts["alpha"]
            proj = alpha * (diff @ d_hat)[:, None] * d_hat + (1.0 - alpha) * diff
            return 1.0 - 0.5 * np.sum(proj**2, axis=1)
        if self.head == "contrast":
            n = _normalize(self.negative_embeddings.mean(axis=0))
            raw = e @ n - e @ g
            return 1.0 - np.clip(raw, 0.0, opts["c"]) / opts["c"]
        logits = e @ np.vstack([g, self.negative_embeddings]).T / opts["temperature"]
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        prob = p[:, 0] / p.sum(axis=1)
        if self.head == "softmax":
            return prob
        return (prob >= opts["threshold"]).astype(np.float64)

    def __call__(self, batch: RewardBatch) -> RewardOutput:
        """Score ``batch.frames``; the single component is ``"clip"``."""
        if batch.frames is None:
            raise ValueError("CLIPRewardModel needs batch.frames (B, H, W, 3) uint8, got None")
        reward = self.score(self.encode_frames(batch.frames))
        return RewardOutput(reward=reward, components={"clip": reward})
