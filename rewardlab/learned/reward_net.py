"""Reward networks learned from data, and their checkpoints, as reward models.

A :class:`RewardNet` maps a state ``s'`` to a reward: its state variables (concatenated,
flattened, in the task's order), the features of its frame under an image encoder
(:mod:`rewardlab.learned.encoders`), or both, through an MLP. :class:`LearnedReward` is the
batched :class:`~rewardlab.reward_models.base.RewardModel` that pays it: one forward pass per
vector step, on CUDA when present, frame features cached when the encoder is frozen.

A checkpoint (:func:`save_checkpoint`) is one torch file holding the weights and what they
were trained on: env id and keywords, state layout, observation space, encoder, objective,
data, seed and metrics. :func:`load_learned_reward` refuses a checkpoint on an env whose state
layout or observation space differs from the one it was trained on.

Use it as ``{model: {kind: learned, path: CHECKPOINT}}`` in ``train``, ``compare``,
``eval-reward`` and ``rewardlab.make_vec_env``.
"""

from __future__ import annotations

import datetime
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.info_keys import STATE_PREFIX
from rewardlab.reward_models.base import RewardBatch, RewardModel, RewardOutput
from rewardlab.reward_models.frame_cache import FrameEmbeddingCache

__all__ = [
    "CHECKPOINT_FORMAT",
    "LearnedReward",
    "Normalization",
    "RewardNetConfig",
    "TrainedOn",
    "build_reward_net",
    "load_learned_reward",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "rewardlab.reward_net/1"
INPUTS = ("state", "frames", "both")
HEAD_SHAPE_LENGTH = {"mlp": 0, "progress": 0, "perceptual": 2, "goal_distance": 1}
"""The heads (:mod:`rewardlab.learned.heads`) and how many sizes their ``head_shape`` has."""
HEADS = tuple(HEAD_SHAPE_LENGTH)


@dataclass(frozen=True)
class RewardNetConfig:
    """The architecture of a reward network.

    Attributes:
        inputs: ``"state"``, ``"frames"`` or ``"both"``.
        state_layout: ``(name, shape)`` of each state variable read, in order (state inputs).
        encoder: An encoder name (:func:`~rewardlab.learned.encoders.load_encoder`) for
            frame inputs, else None.
        freeze_encoder: Keep the encoder's weights fixed (its features are then cached).
        hidden: Widths of the MLP's hidden layers (``mlp`` and ``progress`` heads).
        head: What turns the input vector into a reward (:mod:`rewardlab.learned.heads`):
            ``"mlp"``, ``"progress"``, ``"perceptual"`` or ``"goal_distance"``.
        head_shape: The fitted heads' sizes: ``(steps, features per step)`` for
            ``perceptual``, ``(goals,)`` for ``goal_distance``, ``()`` otherwise.
    """

    inputs: str = "state"
    state_layout: tuple[tuple[str, tuple[int, ...]], ...] = ()
    encoder: str | None = None
    freeze_encoder: bool = True
    hidden: tuple[int, ...] = (64, 64)
    head: str = "mlp"
    head_shape: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {INPUTS}, got {self.inputs!r}")
        if self.inputs in ("state", "both") and not self.state_layout:
            raise ValueError(f"inputs={self.inputs!r} needs a state_layout")
        if self.inputs in ("frames", "both") and self.encoder is None:
            raise ValueError(f"inputs={self.inputs!r} needs an encoder")
        if any(w < 1 for w in self.hidden):
            raise ValueError(f"hidden widths must be >= 1, got {self.hidden}")
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; one of {HEADS}")
        if len(self.head_shape) != HEAD_SHAPE_LENGTH[self.head]:
            raise ValueError(
                f"head {self.head!r} takes a head_shape of {HEAD_SHAPE_LENGTH[self.head]} "
                f"sizes, got {self.head_shape}"
            )

    @property
    def state_dim(self) -> int:
        return sum(int(np.prod(shape)) for _, shape in self.state_layout)

    def state_vector(self, value: Callable[[str], Any], n: int) -> np.ndarray:
        """``(n, state_dim)`` float32: the state variables ``value(name)`` (each ``(n,
        *shape)``), flattened and concatenated in the layout's order: the network's input."""
        columns = [
            np.asarray(value(name), dtype=np.float32).reshape(n, -1)
            for name, _ in self.state_layout
        ]
        return np.concatenate(columns, axis=1)


@dataclass(frozen=True)
class TrainedOn:
    """What a checkpoint was trained on (recorded with it; shown in errors and reports).

    Attributes:
        env_id: The env's id.
        env_kwargs: Its ``gym.make`` keywords.
        observation_space: ``repr`` of its observation space.
        objective: How it was trained (``"bradley_terry"``, ``"progress_regression"``, ...).
        data: What it was trained on, in words or a path.
        seed: The training seed.
        metrics: Metrics of the fit, each named by the data it was measured on: held-out
            (``heldout_*``) or the training data itself (``demo_*``, ``train_*``).
    """

    env_id: str
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    observation_space: str = ""
    objective: str = ""
    data: str = ""
    seed: int | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)


def build_reward_net(config: RewardNetConfig, pretrained: bool = True) -> Any:
    """A fresh :class:`RewardNet` (a ``torch.nn.Module``) for ``config``; ``pretrained``
    loads the encoder's pretrained weights (not needed when a checkpoint's follow)."""
    return _reward_net_class()(config, pretrained)


def _reward_net_class() -> Any:
    import torch
    from torch import nn

    from rewardlab.learned.encoders import load_encoder
    from rewardlab.learned.heads import build_head

    class RewardNet(nn.Module):
        """``r(s')``: a head (:mod:`rewardlab.learned.heads`) over the state vector, the
        frame features, or both."""

        def __init__(self, config: RewardNetConfig, pretrained: bool = True) -> None:
            super().__init__()
            self.config = config
            self.encoder = load_encoder(config.encoder, pretrained) if config.encoder else None
            if self.encoder is not None:
                self.tower = self.encoder.module  # registered: saved and moved with the net
                if config.freeze_encoder:
                    self.tower.requires_grad_(False)
            width = (config.state_dim if config.inputs != "frames" else 0) + (
                self.encoder.dim if self.encoder is not None else 0
            )
            self.head = build_head(config.head, width, config.hidden, config.head_shape)

        @staticmethod
        def inputs(state: torch.Tensor | None, features: torch.Tensor | None) -> torch.Tensor:
            """The head's input vector: state and features, concatenated."""
            parts = [p for p in (state, features) if p is not None]
            return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

        def forward(self, state: torch.Tensor | None, features: torch.Tensor | None) -> Any:
            return self.head(self.inputs(state, features))

    return RewardNet


@dataclass(frozen=True)
class Normalization:
    """The affine map a learned reward is paid through: ``(r - shift) / scale``.

    Learned rewards have an arbitrary offset and scale (Bradley-Terry fixes neither), so a
    checkpoint records the mean and standard deviation of the raw reward on its training
    states, and the reward model pays the standardized value (see ``REFERENCE.md`` 3b)."""

    shift: float = 0.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.shift) and math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"a normalization needs a finite shift and scale > 0, got {self}")

    @classmethod
    def of(cls, rewards: np.ndarray) -> Normalization:
        """Mean and standard deviation of ``rewards`` (scale 1 where they are constant)."""
        values = np.asarray(rewards, dtype=np.float64)
        if values.size == 0 or not np.all(np.isfinite(values)):
            raise ValueError("cannot normalize a reward that is empty or not finite")
        std = float(values.std())
        return cls(float(values.mean()), std if std > 1e-8 else 1.0)


TOWER_PREFIX = "tower."
"""State-dict keys of a reward net's image encoder."""


def _tower_sha256(weights: Mapping[str, Any]) -> str:
    """SHA-256 of the encoder's tensors (names, shapes and float32 values, layout-free)."""
    import hashlib

    digest = hashlib.sha256()
    for key in sorted(k for k in weights if k.startswith(TOWER_PREFIX)):
        value = weights[key].detach().cpu().contiguous()
        digest.update(f"{key}{tuple(value.shape)}".encode())
        digest.update(value.float().numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(
    path: str | os.PathLike[str],
    net: Any,
    trained_on: TrainedOn,
    normalization: Normalization | None = None,
) -> Path:
    """Write ``net``'s weights with its config, what it was trained on and the normalization
    its reward is paid through (none: the raw output) (atomic).

    A frozen encoder whose weights come from a source (``efficientnet_lite0``'s package, an
    open_clip tag or file: :func:`~rewardlab.learned.encoders.has_source_weights`) is not
    stored: the checkpoint records its SHA-256, and loading takes the weights from the source
    again and refuses them if they differ. That keeps such a checkpoint at the head's size
    (kilobytes, not the encoder's 18 MB).

    Returns:
        The path written.
    """
    import torch

    from rewardlab.learned.encoders import has_source_weights

    path = Path(path)
    weights = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "config": asdict(net.config),
        "trained_on": asdict(trained_on),
        "normalization": asdict(normalization or Normalization()),
        "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    encoder = net.config.encoder
    if encoder is not None and net.config.freeze_encoder and has_source_weights(encoder):
        payload["encoder_weights"] = {"source": encoder, "sha256": _tower_sha256(weights)}
        weights = {k: v for k, v in weights.items() if not k.startswith(TOWER_PREFIX)}
    payload["weights"] = weights
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def _config_from(data: Mapping[str, Any]) -> RewardNetConfig:
    layout = tuple((str(n), tuple(int(d) for d in shape)) for n, shape in data["state_layout"])
    return RewardNetConfig(
        inputs=data["inputs"],
        state_layout=layout,
        encoder=data["encoder"],
        freeze_encoder=bool(data["freeze_encoder"]),
        hidden=tuple(int(w) for w in data["hidden"]),
        head=str(data.get("head", "mlp")),
        head_shape=tuple(int(d) for d in data.get("head_shape", ())),
    )


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint's contents (weights included), checked to be one.

    Raises:
        ValueError: A missing file, or a file that is not a rewardlab reward-net checkpoint.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"no reward-net checkpoint at {path}; train one with rewardlab learn-reward"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (any unreadable file: one message)
        raise ValueError(f"{path} is not a readable reward-net checkpoint: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a rewardlab reward-net checkpoint ({CHECKPOINT_FORMAT})")
    return payload


def checkpoint_reads_frames(path: str | os.PathLike[str]) -> bool:
    """Whether a checkpoint's network reads frames (False where there is no checkpoint: the
    error comes when the model is built)."""
    try:
        return str(read_checkpoint(path)["config"]["inputs"]) != "state"
    except (ValueError, KeyError, TypeError):
        return False


class LearnedReward(RewardModel):
    """A trained :class:`RewardNet` as a batched reward ``r(s')``.

    Args:
        net: The network (moved to ``device``, eval mode).
        trained_on: What it was trained on.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``...
        cache_size: Frames whose features are kept (frozen encoders only).
        normalization: The affine map the raw output is paid through.
    """

    def __init__(
        self,
        net: Any,
        trained_on: TrainedOn,
        device: str = "auto",
        cache_size: int = 4096,
        normalization: Normalization | None = None,
    ) -> None:
        import torch

        auto = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(auto if device == "auto" else device)
        self.net = net.to(self.device).eval()
        self.config: RewardNetConfig = net.config
        self.trained_on = trained_on
        self.normalization = normalization or Normalization()
        self.needs_frames = self.config.inputs != "state"
        self.needs_info = (
            tuple(f"{STATE_PREFIX}{name}" for name, _ in self.config.state_layout)
            if self.config.inputs != "frames"
            else ()
        )
        frozen = self.config.freeze_encoder
        self._cache = FrameEmbeddingCache(cache_size if frozen else 0)

    def _features(self, frames: np.ndarray) -> np.ndarray:
        import torch

        encoder = self.net.encoder
        with torch.inference_mode():
            return encoder.features(frames, self.device).cpu().numpy()

    def __call__(self, batch: RewardBatch) -> RewardOutput:
        import torch

        n = len(batch)
        state = features = None
        if self.config.inputs != "frames":
            vector = self.config.state_vector(lambda name: batch.info[STATE_PREFIX + name], n)
            state = torch.from_numpy(vector).to(self.device)
        if self.needs_frames:
            if batch.frames is None:
                raise ValueError("this learned reward reads frames, but the batch has none")
            features = torch.from_numpy(self._cache.embed(batch.frames, self._features))
            features = features.to(self.device)
        with torch.inference_mode():
            reward = self.net(state, features).double().cpu().numpy()
        norm = self.normalization
        return RewardOutput((reward - norm.shift) / norm.scale)


def _restore(path: str | os.PathLike[str], config: RewardNetConfig, payload: Any) -> Any:
    """The network of a checkpoint: its weights, and an unstored frozen encoder's from its
    source, checked against the SHA-256 recorded at training."""
    stored = payload.get("encoder_weights")
    net = build_reward_net(config, pretrained=stored is not None)
    try:
        if stored is None:
            net.load_state_dict(payload["weights"])
            return net
        smuggled = sorted(k for k in payload["weights"] if k.startswith(TOWER_PREFIX))
        if smuggled or stored.get("source") != config.encoder:
            raise ValueError(
                f"the reward net {path} records its encoder {stored.get('source')!r} by hash "
                f"but "
                + (
                    f"also stores its weights ({smuggled[0]}, ...)"
                    if smuggled
                    else f"its config names {config.encoder!r}"
                )
                + ": train it again (rewardlab learn-reward)"
            )
        own = {k: v for k, v in net.state_dict().items() if k.startswith(TOWER_PREFIX)}
        if _tower_sha256(own) != stored.get("sha256"):
            raise ValueError(
                f"the encoder weights {config.encoder} gives here differ from those the reward "
                f"net {path} was trained with (SHA-256 {str(stored.get('sha256'))[:12]}...): "
                "install the encoder's weights it was trained with, or train one on these "
                "(rewardlab learn-reward)"
            )
        net.load_state_dict({**own, **payload["weights"]})
    except (RuntimeError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"the reward net {path} does not fit its own config: {exc}") from None
    return net


def load_learned_reward(
    path: str | os.PathLike[str],
    env_id: str,
    state_layout: Sequence[tuple[str, tuple[int, ...]]],
    observation_space: str,
    device: str = "auto",
) -> LearnedReward:
    """The :class:`LearnedReward` of a checkpoint, for an env it may be used on.

    Args:
        path: The checkpoint.
        env_id: The env it will pay rewards on.
        state_layout: That env's task's ``(name, shape)`` state variables, in order.
        observation_space: ``repr`` of that env's observation space.
        device: Where it runs.

    Raises:
        ValueError: A missing or foreign file, or an env whose state layout or observation
            space differs from the one it was trained on (naming both).
    """
    payload = read_checkpoint(path)
    try:
        config = _config_from(payload["config"])
        trained = TrainedOn(**payload["trained_on"])
        normalization = Normalization(**payload.get("normalization", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{path} is not a consistent reward-net checkpoint ({type(exc).__name__}: {exc}); "
            "train it again (rewardlab learn-reward)"
        ) from None
    here = {name: tuple(shape) for name, shape in state_layout}
    for name, shape in config.state_layout:
        if here.get(name) != shape:
            raise ValueError(
                f"the reward net {path} was trained on {trained.env_id}, whose state variable "
                f"{name!r} has shape {shape}; {env_id} has "
                + (f"shape {here[name]}" if name in here else f"no {name!r} (it has {list(here)})")
                + ": train one on this env (rewardlab learn-reward)"
            )
    if trained.observation_space and trained.observation_space != observation_space:
        raise ValueError(
            f"the reward net {path} was trained on {trained.env_id}'s observations "
            f"{trained.observation_space}, and {env_id}'s are {observation_space}: train one "
            "on this env (rewardlab learn-reward)"
        )
    if config.inputs != "state" and trained.env_id != env_id:
        # Observation spaces can match across envs (rewardlab's gridworlds share one) while
        # their frames show other scenes.
        raise ValueError(
            f"the reward net {path} reads frames of {trained.env_id}, not of {env_id}: train "
            "one on this env (rewardlab learn-reward)"
        )
    if trained.env_id != env_id:
        warnings.warn(
            f"the reward net {path} was trained on {trained.env_id} and pays rewards on "
            f"{env_id}: their state layouts match, but what the states mean may not",
            stacklevel=2,
        )
    net = _restore(path, config, payload)
    return LearnedReward(net, trained, device=device, normalization=normalization)
