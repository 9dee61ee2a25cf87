"""Zero-shot CLIP rewards: a frame's image embedding scored against language prompts.

Notation: ``e`` is the normalized image embedding of a frame, ``g`` the goal text embedding,
``b`` the baseline text embedding and ``n_i`` the negatives' embeddings. A prompt given as a
list of strings is a prompt set: its normalized embeddings are averaged **and re-normalized**.

Heads (``head=``, with their options; the default, for every entry point, is
:class:`CLIPOptions`'s ``goal_baseline`` with ``alpha = 0.5``):

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

Importing this module is cheap (:class:`CLIPOptions` is configuration): torch and open_clip
are imported when a model is built.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import socket
import threading
import urllib.parse
import urllib.request
import warnings
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rewardlab.reward_models.base import RewardBatch, RewardModel, RewardOutput
from rewardlab.reward_models.frame_cache import FrameEmbeddingCache, check_frames
from rewardlab.reward_models.preprocess import RESIZE_POLICIES, ResizePolicy, preprocess_frames

if TYPE_CHECKING:
    import torch

    from rewardlab.envs.core import Task

__all__ = [
    "HEADS",
    "CLIPOptions",
    "CLIPRewardModel",
    "PretrainedWeightsNotFoundError",
    "is_file_path",
]

Prompt = str | Sequence[str]

# Every head with its options and their defaults.
HEADS: Mapping[str, Mapping[str, float]] = {
    "cosine": {},
    "goal_baseline": {"alpha": 0.5},
    "contrast": {"c": 0.03},
    "softmax": {"temperature": 0.01},
    "success": {"temperature": 0.01, "threshold": 0.5},
}

PRECISIONS = ("fp16", "bf16", "fp32")


class PretrainedWeightsNotFoundError(FileNotFoundError):
    """Pretrained CLIP weights could neither be found locally nor downloaded."""


@dataclass(frozen=True)
class CLIPOptions:
    """Every option of a zero-shot CLIP reward but its prompts, with the one set of defaults
    :class:`CLIPRewardModel`, :class:`~rewardlab.wrappers.clip.CLIPReward` and the
    ``{kind: clip}`` reward spec share. The default head (module docstring) is the one the
    shipped CLIP experiment and the reward-eval sweep use: every rewardlab task has a baseline.

    Attributes:
        model: open_clip model name (``"ViT-B-32"``), or an ``hf-hub:``/``local-dir:`` id.
        pretrained: open_clip pretrained tag, a local checkpoint path, or None for random
            weights (warns; for tests only).
        head: One of :data:`HEADS`.
        head_options: The head's options (``alpha``, ``c``, ``temperature``, ``threshold``),
            completed with its defaults from :data:`HEADS`.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
        resize: ``"letterbox"`` or ``"center_crop"`` for frames whose aspect ratio differs from
            the encoder's (see :mod:`rewardlab.reward_models.preprocess`).
        crop: Optional box ``(top, left, height, width)`` cut from every frame first.
        precision: Autocast dtype on CUDA (``"fp16"``, ``"bf16"``, ``"fp32"``); CPU: float32.
        cache_size: LRU cache of frame embeddings keyed by the frame's bytes (0 = off), for
            frames that repeat (gridworlds).
        cache_dir: Download cache of open_clip (default: the Hugging Face cache).

    Raises:
        ValueError: Unknown head, bad option values.
        TypeError: Options that do not belong to ``head``.
    """

    model: str = "ViT-B-32"
    pretrained: str | None = "laion2b_s34b_b79k"
    head: str = "goal_baseline"
    head_options: Mapping[str, float] = field(default_factory=dict, hash=False)
    device: str = "auto"
    resize: ResizePolicy = "letterbox"
    crop: tuple[int, int, int, int] | None = None
    precision: str = "fp16"
    cache_size: int = 0
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; choose one of {sorted(HEADS)}")
        unknown = sorted(set(self.head_options) - set(HEADS[self.head]))
        if unknown:
            raise TypeError(
                f"head {self.head!r} takes options {sorted(HEADS[self.head]) or 'none'}, "
                f"got unexpected {unknown}"
            )
        opts = {**HEADS[self.head], **self.head_options}
        if "alpha" in opts and not 0.0 <= opts["alpha"] <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {opts['alpha']}")
        if "c" in opts and not opts["c"] > 0.0:
            raise ValueError(f"c must be > 0, got {opts['c']}")
        if "temperature" in opts and not opts["temperature"] > 0.0:
            raise ValueError(f"temperature must be > 0, got {opts['temperature']}")
        if "threshold" in opts and not 0.0 < opts["threshold"] < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {opts['threshold']}")
        object.__setattr__(self, "head_options", {k: float(v) for k, v in opts.items()})
        if self.resize not in RESIZE_POLICIES:
            raise ValueError(f"resize must be one of {RESIZE_POLICIES}, got {self.resize!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {self.cache_size}")
        if self.crop is not None and len(self.crop) != 4:
            raise ValueError(f"crop must be (top, left, height, width), got {self.crop!r}")

    def replace(self, **options: Any) -> CLIPOptions:
        """A copy with the given options: fields by name, and a head's options by theirs.

        A head option alone (``alpha=0.7``) changes that option of the current head; with
        ``head=`` or ``head_options=`` the head's options start from its defaults.

        Raises:
            TypeError: For a name that is neither a field nor any head's option.
        """
        head_options = {k: options.pop(k) for k in list(options) if k not in _FIELDS}
        unknown = sorted(set(head_options) - _HEAD_OPTION_NAMES)
        if unknown:
            raise TypeError(
                f"unknown CLIP option(s) {unknown}; the options are {sorted(_FIELDS)} and the "
                f"heads' options {sorted(_HEAD_OPTION_NAMES)}"
            )
        if head_options or "head" in options or "head_options" in options:
            kept = {} if {"head", "head_options"} & set(options) else self.head_options
            options["head_options"] = {**kept, **options.get("head_options", {}), **head_options}
        return dataclasses.replace(self, **options)


_FIELDS = frozenset(f.name for f in dataclasses.fields(CLIPOptions))
_HEAD_OPTION_NAMES = frozenset(name for opts in HEADS.values() for name in opts)


def is_file_path(pretrained: str) -> bool:
    """Whether a ``pretrained`` value names a local checkpoint file rather than an open_clip
    tag (tags have no path separator and no checkpoint extension)."""
    return (
        os.sep in pretrained
        or "/" in pretrained
        or pretrained.endswith((".bin", ".pt", ".pth", ".safetensors"))
    )


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


def _require_prompts(head: str, has_baseline: bool, n_negatives: int) -> None:
    if head == "goal_baseline" and not has_baseline:
        raise ValueError(
            "head 'goal_baseline' needs a baseline prompt (a caption of the scene without the "
            "goal achieved), got baseline=None; pass baseline=, or head='cosine'"
        )
    if head in ("contrast", "softmax", "success") and not n_negatives:
        raise ValueError(f"head {head!r} needs at least one negative prompt, got none")


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the Hugging Face hub cannot be used now, or None when a connection opens.

    Without a network a download would retry for most of a minute before failing; a TCP
    connection (to the proxy, if one is set) that does not open within ``timeout`` seconds,
    name lookup included, says so at once.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    url = urllib.parse.urlsplit(constants.ENDPOINT)
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(url.hostname or ""):
        url = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    errors: list[OSError] = []

    def connect() -> None:
        try:
            address = (url.hostname, url.port or (443 if url.scheme == "https" else 80))
            socket.create_connection(address, timeout=timeout).close()
        except OSError as e:
            errors.append(e)

    # A thread bounds the name lookup too, which the socket timeout does not cover.
    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout)
    if probe.is_alive() or errors:
        why = errors[0] if errors else f"no connection within {timeout:g} s"
        return f"the Hugging Face hub {constants.ENDPOINT} cannot be reached ({why})"
    return None


def _load_model(options: CLIPOptions, device: torch.device) -> tuple[Any, Any]:
    """An open_clip model and its tokenizer, every missing-weights failure one clear error.

    Where the weights must come from the hub and it cannot be reached, only the local cache
    is searched (the hub's offline mode, for this call), so a missing weight fails in seconds.
    """
    import open_clip
    from huggingface_hub import constants

    model, pretrained = options.model, options.pretrained
    schema = model.startswith(("hf-hub:", "local-dir:"))
    if not schema and model not in open_clip.list_models():
        raise ValueError(
            f"unknown open_clip model {model!r}; valid names are listed by "
            "open_clip.list_models() (e.g. 'ViT-B-32', 'ViT-L-14'), and "
            "open_clip.list_pretrained() pairs them with pretrained tags"
        )
    how_to_fix = (
        f"Pass a local checkpoint with pretrained='/path/to/open_clip_pytorch_model.bin'; or "
        f"point cache_dir= at a cache holding it; or download it once on a connected machine "
        f"(HF_HUB_OFFLINE unset) with open_clip.create_model({model!r}, "
        f"pretrained={pretrained!r}) so it lands in the Hugging Face cache (HF_HUB_CACHE), and "
        f"set HF_HUB_OFFLINE=1 where there is no network; or pass pretrained=None for random "
        f"weights."
    )
    from_hub = model.startswith("hf-hub:")
    if pretrained is None and not schema:
        warnings.warn(
            f"CLIPRewardModel: pretrained=None, so {model!r} has RANDOM weights; its rewards "
            "are meaningless except for tests",
            UserWarning,
            stacklevel=3,
        )
    elif pretrained is not None and not schema and not os.path.isfile(pretrained):
        if is_file_path(pretrained):
            raise PretrainedWeightsNotFoundError(
                f"CLIP checkpoint file for {model!r} not found: {pretrained!r}. Give the path "
                "of an open_clip checkpoint that exists on this machine (e.g. "
                "open_clip_pytorch_model.bin, downloaded once on a connected machine), or an "
                f"open_clip pretrained tag: open_clip.list_pretrained_tags_by_model({model!r})"
            )
        tags = open_clip.list_pretrained_tags_by_model(model)
        if pretrained not in tags:
            raise ValueError(
                f"unknown pretrained tag {pretrained!r} for {model!r}; its tags are {tags} "
                "(or pass a local checkpoint file path)"
            )
        from_hub = True
    offline = _hub_unreachable() if from_hub else None
    was_offline = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = was_offline or offline is not None
    # open_clip logs a failed download on the root logger, which would configure logging
    # and print it beside our own error; a handler there keeps it quiet.
    root = logging.getLogger()
    guard = None if root.handlers else logging.NullHandler()
    if guard is not None:
        root.addHandler(guard)
    try:
        # pretrained_text=False: random weights means no tower download either.
        clip = open_clip.create_model(
            model,
            pretrained,
            device=device,
            cache_dir=options.cache_dir,
            require_pretrained=pretrained is not None,
            pretrained_text=pretrained is not None,
        )
        return clip, open_clip.get_tokenizer(model, cache_dir=options.cache_dir)
    except (RuntimeError, OSError) as e:
        if pretrained is None and not from_hub:
            raise
        where = f": {offline}, so only the local cache was searched" if offline else ""
        raise PretrainedWeightsNotFoundError(
            f"could not load pretrained weights {pretrained!r} for CLIP model {model!r}{where}."
            f"\n{how_to_fix}\nCause: {e}"
        ) from e
    finally:
        if guard is not None:
            root.removeHandler(guard)
        constants.HF_HUB_OFFLINE = was_offline


class CLIPRewardModel(RewardModel):
    """Zero-shot reward from a CLIP model's image-text similarity (see the module docstring).

    Args:
        model: As :attr:`CLIPOptions.model`, or a :class:`CLIPOptions` holding every option.
        pretrained: As :attr:`CLIPOptions.pretrained`; set in the options when ``model`` is a
            :class:`CLIPOptions`.
        goal: Goal caption, or a prompt set (list of captions).
        baseline: Baseline caption or prompt set; required by ``"goal_baseline"``.
        negatives: Failure captions; each is one label for ``"softmax"``/``"success"``, all
            together one prompt set for ``"contrast"``. An entry may itself be a prompt set.
        **options: Any other :class:`CLIPOptions` field (``head``, ``device``, ``resize``,
            ``crop``, ``precision``, ``cache_size``, ``cache_dir``) and the head's options
            (``alpha``, ``c``, ``temperature``, ``threshold``), over the defaults there.

    Raises:
        ValueError: Unknown head or model name, bad option values, empty prompts, or a prompt
            the head needs that is missing.
        TypeError: Unknown options, or options that do not belong to the head.
        PretrainedWeightsNotFoundError: The weights can be neither found nor downloaded (in
            seconds where the hub cannot be reached); the message says how to supply them.
    """

    needs_frames = True

    def __init__(
        self,
        model: str | CLIPOptions = CLIPOptions.model,
        pretrained: str | None = CLIPOptions.pretrained,
        *,
        goal: Prompt,
        baseline: Prompt | None = None,
        negatives: Prompt | Sequence[Prompt] = (),
        **options: Any,
    ) -> None:
        if isinstance(model, CLIPOptions) and pretrained != CLIPOptions.pretrained:
            raise TypeError("pretrained is given beside a CLIPOptions: set it in the CLIPOptions")
        base = model if isinstance(model, CLIPOptions) else CLIPOptions(model, pretrained)
        self.options = opts = base.replace(**options)
        goal_prompts, baseline_prompts, negative_sets = _prompt_sets(goal, baseline, negatives)
        # Before loading the weights: a missing prompt fails at once.
        _require_prompts(opts.head, baseline_prompts is not None, len(negative_sets))
        import open_clip
        import torch

        auto = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(auto if opts.device == "auto" else opts.device)
        # Any: open_clip's CLIP and CustomTextCLIP share encode_image/encode_text, no protocol.
        self.clip_model: Any
        self.clip_model, self.tokenizer = _load_model(opts, self.device)
        self.clip_model.eval()
        cfg = open_clip.get_model_preprocess_cfg(self.clip_model)
        size = cfg.get("size", 224)
        self.input_size: tuple[int, int] = (size, size) if isinstance(size, int) else tuple(size)
        self.mean: tuple[float, ...] = tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
        self.std: tuple[float, ...] = tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD))
        self.fill = cfg.get("fill_color", 0)
        self.interpolation = cfg.get("interpolation", "bicubic")
        self._cache = FrameEmbeddingCache(opts.cache_size)

        # Text embeddings once, at construction: float64 unit vectors.
        self._set_prompts(goal_prompts, baseline_prompts, negative_sets)
        self._check_prompts_for(opts.head)

    @property
    def head(self) -> str:
        """The head scoring the embeddings (``options.head``)."""
        return self.options.head

    @property
    def precision(self) -> str:
        """The autocast dtype on CUDA (``options.precision``)."""
        return self.options.precision

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
    def from_task(
        cls, task: Task, options: CLIPOptions | None = None, **kwargs: Any
    ) -> CLIPRewardModel:
        """A model prompted with ``task.goal``, ``task.baseline`` and ``task.negatives``
        (unless ``goal=`` etc. are given), with ``options`` (default :class:`CLIPOptions`)
        and any keyword options over them, as in the constructor."""
        prompts = {k: kwargs.pop(k, getattr(task, k)) for k in ("goal", "baseline", "negatives")}
        return cls((options or CLIPOptions()).replace(**kwargs), **prompts)

    def with_head(self, head: str, **head_options: float) -> CLIPRewardModel:
        """A copy scoring with another head, sharing this model's encoder and text embeddings."""
        opts = self.options.replace(head=head, head_options=head_options)
        self._check_prompts_for(head)
        other = copy.copy(self)
        other.options = opts
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
        if head is None and head_options:
            raise TypeError(f"head options {sorted(head_options)} need head=")
        other = copy.copy(self)
        other._set_prompts(*_prompt_sets(goal, baseline, negatives))
        if head is not None:
            other.options = self.options.replace(head=head, head_options=head_options)
        other._check_prompts_for(other.head)
        return other

    def _check_prompts_for(self, head: str) -> None:
        _require_prompts(head, self.baseline_embedding is not None, len(self.negative_embeddings))
        if head == "goal_baseline":
            assert self.baseline_embedding is not None
            if np.linalg.norm(self.goal_embedding - self.baseline_embedding) < 1e-8:
                raise ValueError("goal and baseline embeddings coincide: g - b is zero")

    def _autocast(self) -> Any:
        import torch

        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision)
        if self.device.type == "cuda" and dtype is not None:
            return torch.autocast("cuda", dtype=dtype)
        return nullcontext()

    def embed_prompts(self, prompts: Sequence[str]) -> np.ndarray:
        """Unit ``(D,)`` float64 embedding of a prompt set: normalized mean of normalized rows."""
        import torch

        tokens = self.tokenizer(list(prompts)).to(self.device)
        with torch.inference_mode(), self._autocast():
            text = self.clip_model.encode_text(tokens)
        rows = _normalize(text.float().cpu().numpy().astype(np.float64))
        # Averaging unit vectors shortens them: re-normalize (a known bug in public code).
        return _normalize(rows.mean(axis=0))

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """The encoder's input for uint8 ``(B, H, W, 3)`` frames, on the model's device:
        crop, resize policy and normalization, batched."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        return preprocess_frames(
            x,
            self.input_size,
            self.mean,
            self.std,
            resize=self.options.resize,
            fill=self.fill,
            crop=self.options.crop,
            interpolation=self.interpolation,
        )

    def _encode(self, frames: np.ndarray) -> np.ndarray:
        import torch

        pixels = self.preprocess(frames)
        with torch.inference_mode(), self._autocast():
            emb = self.clip_model.encode_image(pixels)
        return _normalize(emb.float().cpu().numpy().astype(np.float64))

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        """Normalized image embeddings of a frame batch, in one forward pass.

        Args:
            frames: ``(B, H, W, 3)`` uint8 array.

        Returns:
            ``(B, D)`` float64 unit vectors.
        """
        return self._cache.embed(check_frames(frames), self._encode)

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        """Rewards ``(B,)`` float64 of image embeddings ``(B, D)`` under this model's head."""
        e = np.asarray(embeddings, dtype=np.float64)
        g = self.goal_embedding
        opts = self.options.head_options
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
