"""Rewards learned from labelled trajectories: a progress/success head (GVL, Rank2Reward style).

The labels are an eval-reward dataset's (:mod:`rewardlab.evaluation.datasets`): every state
row's ``progress`` in [0, 1] and ``success``, which are the simulator's ground truth, not a
human's. A :class:`~rewardlab.learned.heads.ProgressHead` over state variables, frame features
of a frozen encoder, or both, is trained on a weighted sum of

- **regression**: the MSE of ``sigmoid(progress logit)`` to the progress label;
- **ranking** (Rank2Reward, Yang et al. 2024): for pairs of states of one episode whose
  progress differs, the logistic loss ``softplus(-(l_i - l_j) sign(p_i - p_j))`` of their
  progress-logit difference, so the head orders an episode's states even where it cannot
  place them on the absolute scale;
- **success**: the binary cross-entropy of the success logit to the success label.

Episodes are split into training and held-out sides **by layout seed** (``Episode.seed``),
never by frame: neighbouring frames of one episode are near copies, and a split by frame would
score memorization as generalization (REFERENCE.md 3b). The reward the checkpoint pays is the
predicted progress, standardized by its mean and spread on the training states.

With a frozen encoder (always, here), every frame's features are computed once, in batches,
and the head trains on them: an epoch costs a few MLP passes, whatever the encoder.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rewardlab.learned.judging import (
    cell,
    dataset_env_kwargs,
    eval_reward_lines,
    judge_checkpoint,
)
from rewardlab.progress import Progress

if TYPE_CHECKING:
    import torch

    from rewardlab.evaluation.datasets import Episode, TrajectoryDataset
    from rewardlab.learned.reward_net import RewardNetConfig

__all__ = [
    "LabelFit",
    "LossWeights",
    "SeedSplit",
    "fit_labels",
    "label_inputs",
    "label_metrics",
    "learn_from_labels",
    "partners",
    "ranking_loss",
    "sample_pairs",
    "split_by_seed",
]


# --- the split -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedSplit:
    """Episodes split by layout seed: no seed is on both sides.

    Attributes:
        train_seeds, heldout_seeds: The layout seeds of each side (sorted).
        train_episodes, heldout_episodes: Indices of each side's episodes in the dataset.
    """

    train_seeds: tuple[int, ...]
    heldout_seeds: tuple[int, ...]
    train_episodes: tuple[int, ...]
    heldout_episodes: tuple[int, ...]


def split_by_seed(
    episodes: Sequence[Episode], heldout_fraction: float, rng: np.random.Generator
) -> SeedSplit:
    """Hold out ``heldout_fraction`` of the distinct layout seeds (at least one, and at least
    one left to train on), with every episode of a seed on that seed's side.

    Raises:
        ValueError: A fraction outside (0, 1), or fewer than two distinct seeds (nothing can
            be held out without sharing a layout with training).
    """
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    seeds = sorted({int(e.seed) for e in episodes})
    if len(seeds) < 2:
        raise ValueError(
            f"the dataset's {len(episodes)} episode(s) share {len(seeds)} layout seed(s) "
            f"{seeds}: a held-out split by seed needs two or more (generate one with more "
            "episodes)"
        )
    n_heldout = min(len(seeds) - 1, max(1, round(len(seeds) * heldout_fraction)))
    shuffled = [seeds[i] for i in rng.permutation(len(seeds))]
    heldout = set(shuffled[:n_heldout])
    return SeedSplit(
        train_seeds=tuple(s for s in seeds if s not in heldout),
        heldout_seeds=tuple(sorted(heldout)),
        train_episodes=tuple(i for i, e in enumerate(episodes) if int(e.seed) not in heldout),
        heldout_episodes=tuple(i for i, e in enumerate(episodes) if int(e.seed) in heldout),
    )


# --- the objective ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LossWeights:
    """Weights of the three terms of the objective (any may be 0, not all).

    Raises:
        ValueError: A negative or non-finite weight, or all three 0.
    """

    regression: float = 1.0
    ranking: float = 1.0
    success: float = 1.0

    def __post_init__(self) -> None:
        for name, w in self.items():
            if not (math.isfinite(w) and w >= 0):
                raise ValueError(f"the {name} weight must be a finite number >= 0, got {w}")
        if not any(w > 0 for _, w in self.items()):
            raise ValueError(
                "the regression, ranking and success weights are all 0: nothing to train; "
                "give at least one a positive weight"
            )

    def items(self) -> list[tuple[str, float]]:
        return [
            ("regression", self.regression),
            ("ranking", self.ranking),
            ("success", self.success),
        ]

    @property
    def objective(self) -> str:
        """The objective's name, e.g. ``"progress_regression+ranking+success"``."""
        names = {"regression": "progress_regression", "ranking": "ranking", "success": "success"}
        return "+".join(names[n] for n, w in self.items() if w > 0)


def partners(episode: np.ndarray, i: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each row ``i``, a row drawn uniformly from the rows of its episode (itself
    included), vectorized.

    Args:
        episode: ``(R,)`` the episode of each row.
        i: Row positions.
        rng: The random stream.
    """
    episode = np.asarray(episode)
    order = np.argsort(episode, kind="stable")
    ids, starts, counts = np.unique(episode[order], return_index=True, return_counts=True)
    group = np.searchsorted(ids, episode[i])
    return order[starts[group] + (rng.random(len(i)) * counts[group]).astype(np.int64)]


def sample_pairs(
    episode: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pairs ``(i, j)`` of rows of one episode each (``episode[i] == episode[j]``):
    ``i`` uniform over the rows, ``j`` its :func:`partners`."""
    i = rng.integers(0, len(episode), n)
    return i, partners(episode, i, rng)


def ranking_loss(
    logits: torch.Tensor, progress: torch.Tensor, i: torch.Tensor, j: torch.Tensor
) -> torch.Tensor:
    """Rank2Reward's logistic ranking loss over pairs ``(i, j)`` (rows of one episode each):
    the mean of ``softplus(-(l_i - l_j) * sign(p_i - p_j))`` over the pairs whose progress
    differs (0, with gradients, when none does).

    A perfectly ordered prediction with a large margin scores near 0, a reversed one about the
    margin, and constant logits ``log 2``.
    """
    import torch
    import torch.nn.functional as F

    sign = torch.sign(progress[i] - progress[j])
    keep = sign != 0
    if not bool(keep.any()):
        return logits.sum() * 0.0
    diff = (logits[i] - logits[j])[keep] * sign[keep]
    return F.softplus(-diff).mean()


def _objective(
    head: Any,
    x: torch.Tensor,
    progress: torch.Tensor,
    success: torch.Tensor,
    i: torch.Tensor,
    j: torch.Tensor,
    weights: LossWeights,
) -> torch.Tensor:
    """The weighted loss of rows ``x`` (their labels ``progress`` and ``success``) with the
    ranking pairs ``(i, j)`` indexing those rows."""
    import torch
    import torch.nn.functional as F

    p_logit, s_logit = head.logits(x)
    total = torch.zeros(())
    if weights.regression > 0:
        total = total + weights.regression * F.mse_loss(torch.sigmoid(p_logit), progress)
    if weights.ranking > 0:
        total = total + weights.ranking * ranking_loss(p_logit, progress, i, j)
    if weights.success > 0:
        total = total + weights.success * F.binary_cross_entropy_with_logits(s_logit, success)
    return total


# --- inputs ----------------------------------------------------------------------------------


def label_inputs(
    ds: TrajectoryDataset,
    net: Any,
    config: RewardNetConfig,
    device: str = "cpu",
    log: Callable[[str], None] = lambda _msg: None,
) -> np.ndarray:
    """``(N, width)`` float32 head inputs of every dataset state row: state variables, frame
    features of ``net``'s frozen encoder (computed once, by
    :meth:`~rewardlab.learned.encoders.ImageEncoder.encode`), or both, concatenated as the
    network concatenates them.

    Raises:
        ValueError: A frames network on a dataset without frames, or non-finite inputs.
    """
    import torch

    from rewardlab.learned.preferences import _state_inputs

    parts: list[np.ndarray] = []
    if config.inputs != "frames":
        parts.append(_state_inputs(ds, config))
    if config.inputs != "state":
        if not ds.has_frames:
            raise ValueError(
                f"inputs={config.inputs!r} reads frames, but the dataset {ds.path} has none; "
                "generate one with frames (DatasetConfig(..., frames=True)) or use inputs='state'"
            )
        dev = torch.device(device)
        tower = net.encoder.module.to(dev).eval()
        feats = net.encoder.encode(ds.frames, dev, log=log)
        tower.to("cpu")
        parts.append(feats)
    x = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    if not np.all(np.isfinite(x)):
        raise ValueError(f"the dataset {ds.path} gives non-finite network inputs (NaN or inf)")
    return x


def _labels(ds: TrajectoryDataset) -> tuple[np.ndarray, np.ndarray]:
    progress = np.asarray(ds.progress, dtype=np.float64)
    success = np.asarray(ds.success, dtype=bool)
    bad = ~np.isfinite(progress) | (progress < 0) | (progress > 1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"the dataset {ds.path} has {int(bad.sum())} progress label(s) outside [0, 1] or "
            f"not finite (row {row}: {progress[row]}); regenerate it"
        )
    return progress, success


def _episode_rows(ds: TrajectoryDataset, episodes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The state rows of ``episodes`` and the episode index of each."""
    rows = [
        np.arange(
            ds.episodes[e].state_start, ds.episodes[e].state_start + ds.episodes[e].n_steps + 1
        )
        for e in episodes
    ]
    eps = [np.full(len(r), e) for r, e in zip(rows, episodes, strict=True)]
    return np.concatenate(rows), np.concatenate(eps)


# --- metrics ---------------------------------------------------------------------------------


def _ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return np.asarray(rankdata(x), dtype=np.float64)


def _auc(score: np.ndarray, positive: np.ndarray) -> float | None:
    """ROC AUC by Mann-Whitney (ties count half); None when one class is absent."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    r = _ranks(score)
    return float((r[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def label_metrics(
    predicted: np.ndarray,
    success_logit: np.ndarray,
    progress: np.ndarray,
    success: np.ndarray,
    episode: np.ndarray,
) -> dict[str, Any]:
    """How predictions match labels on a set of state rows.

    Args:
        predicted: Predicted progress (``sigmoid`` of the progress logit).
        success_logit: The success logit.
        progress, success: The labels.
        episode: The episode of each row.

    Returns:
        ``progress_mse``; ``spearman``: the mean over episodes whose true progress varies of
        the Spearman correlation of predicted and true progress (a constant prediction counts
        0; None when no episode's progress varies), with ``spearman_episodes`` counted;
        ``success_accuracy`` (logit > 0) and ``success_auc`` (None when one class is absent).
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    rhos = []
    for e in np.unique(episode):
        rows = episode == e
        truth, guess = progress[rows], predicted[rows]
        if np.ptp(truth) == 0:
            continue
        if np.ptp(guess) == 0:
            rhos.append(0.0)
            continue
        rhos.append(float(np.corrcoef(_ranks(truth), _ranks(guess))[0, 1]))
    positive = np.asarray(success, dtype=bool)
    return {
        "progress_mse": float(np.mean((predicted - progress) ** 2)),
        "spearman": float(np.mean(rhos)) if rhos else None,
        "spearman_episodes": len(rhos),
        "success_accuracy": float(np.mean((success_logit > 0) == positive)),
        "success_auc": _auc(np.asarray(success_logit, dtype=np.float64), positive),
        "n_states": len(progress),
        "n_successes": int(positive.sum()),
    }


# --- fitting ---------------------------------------------------------------------------------


@dataclass
class LabelFit:
    """A fitted progress head and how it did.

    Attributes:
        train_loss, heldout_loss: The objective per epoch on each side (its state rows, with
            ranking pairs drawn once).
        train_metrics, heldout_metrics: :func:`label_metrics` of each side after training.
        train_rewards: The reward (predicted progress) on every training state row.
    """

    train_loss: list[float]
    heldout_loss: list[float]
    train_metrics: dict[str, Any]
    heldout_metrics: dict[str, Any]
    train_rewards: np.ndarray


def fit_labels(
    net: Any,
    inputs: np.ndarray,
    ds: TrajectoryDataset,
    split: SeedSplit,
    weights: LossWeights,
    *,
    epochs: int = 100,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    log: Callable[[str], None] = lambda _msg: None,
) -> LabelFit:
    """Train ``net``'s :class:`~rewardlab.learned.heads.ProgressHead` (in place) on the head
    inputs of every state row (:func:`label_inputs`) of the training side of ``split``.

    Each step takes ``batch_size`` training rows and, for ranking, one partner row of the same
    episode per row. The per-epoch losses are of the whole side with pairs drawn once, so the
    curves compare across epochs.

    Raises:
        ValueError: A network without a progress head, or sizes below 1.
    """
    import torch

    if net.config.head != "progress":
        raise ValueError(f"fit_labels trains a progress head, not {net.config.head!r}")
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError("epochs and batch_size must be >= 1 and lr > 0")
    progress, success = _labels(ds)
    head = net.head
    rng = np.random.default_rng(seed)
    x_all = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))
    p_all = torch.from_numpy(progress.astype(np.float32))
    s_all = torch.from_numpy(success.astype(np.float32))

    def side(episodes: Sequence[int]) -> tuple[np.ndarray, np.ndarray, torch.Tensor, torch.Tensor]:
        rows, eps = _episode_rows(ds, episodes)
        i, j = sample_pairs(eps, len(rows), rng)
        return rows, eps, torch.from_numpy(i), torch.from_numpy(j)

    train_rows, train_eps, ti, tj = side(split.train_episodes)
    held_rows, held_eps, hi, hj = side(split.heldout_episodes)
    opt = torch.optim.Adam(head.parameters(), lr=lr)

    def side_loss(rows: np.ndarray, i: torch.Tensor, j: torch.Tensor) -> float:
        r = torch.from_numpy(rows)
        with torch.inference_mode():
            return float(_objective(head, x_all[r], p_all[r], s_all[r], i, j, weights))

    train_curve, held_curve = [], []
    every = max(1, epochs // 10)
    progress_bar = Progress(epochs)
    n = len(train_rows)
    for epoch in range(epochs):
        head.train()
        perm = rng.permutation(n)
        for start in range(0, n, batch_size):
            a = perm[start : start + batch_size]
            b = partners(train_eps, a, rng)
            rows = torch.from_numpy(train_rows[np.concatenate([a, b])])
            k = torch.arange(len(a))
            loss = _objective(head, x_all[rows], p_all[rows], s_all[rows], k, k + len(a), weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
        head.eval()
        train_curve.append(side_loss(train_rows, ti, tj))
        held_curve.append(side_loss(held_rows, hi, hj))
        status = progress_bar.tick()
        if (epoch + 1) % every == 0 or epoch + 1 == epochs:
            log(
                f"{status} epoch {epoch + 1}/{epochs}: loss {train_curve[-1]:.4f} training, "
                f"{held_curve[-1]:.4f} held out"
            )

    def measure(rows: np.ndarray, eps: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
        with torch.inference_mode():
            p_logit, s_logit = head.logits(x_all[torch.from_numpy(rows)])
        predicted = torch.sigmoid(p_logit).double().numpy()
        metrics = label_metrics(
            predicted, s_logit.double().numpy(), progress[rows], success[rows], eps
        )
        return metrics, predicted

    train_metrics, train_rewards = measure(train_rows, train_eps)
    heldout_metrics, _ = measure(held_rows, held_eps)
    return LabelFit(train_curve, held_curve, train_metrics, heldout_metrics, train_rewards)


# --- the command -----------------------------------------------------------------------------


def learn_from_labels(
    env_id: str,
    out_dir: str | Path,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    dataset: str | Path | None = None,
    inputs: str = "state",
    encoder: str = "efficientnet_lite0",
    regression: float = 1.0,
    ranking: float = 1.0,
    success: float = 1.0,
    heldout_fraction: float = 0.25,
    epochs: int = 100,
    batch_size: int = 64,
    lr: float = 3e-3,
    hidden: tuple[int, ...] = (64, 64),
    episodes: int = 8,
    seed: int = 0,
    device: str = "auto",
    judge: bool = True,
    log: Callable[[str], None] = lambda _msg: None,
) -> Path:
    """Train a progress/success head on ``env_id``'s labelled episodes; return ``report.md``.

    Writes ``checkpoint.pt`` (usable as ``{model: {kind: learned, path: ...}}``; its reward is
    the predicted progress, standardized on the training states), ``loss.png``,
    ``summary.json``, ``report.md`` and, with ``judge``, eval-reward's verdict on a dataset of
    other episodes (``eval/``).

    Args:
        env_id: The env (rewardlab's, or one with a registered task).
        out_dir: Output folder (must not hold a checkpoint already).
        env_kwargs: ``gym.make`` keywords; None takes a given dataset's.
        dataset: An eval-reward dataset of ``env_id`` to train on; None generates one
            (``episodes`` per kind, with frames when the network reads them) in
            ``out_dir/dataset``.
        inputs: ``"state"`` (the task's state variables), ``"frames"`` or ``"both"``.
        encoder: The frozen image encoder of frame inputs
            (:func:`~rewardlab.learned.encoders.load_encoder`).
        regression, ranking, success: Weights of the objective's terms (see the module
            docstring); any may be 0, not all. The ranking term pushes progress logits apart
            and so trades calibration for order: on GridEmpty 5x5 (6 episodes per kind, state
            inputs) held-out progress MSE was 0.063 with weights 1/1/1, 0.009 with ranking 0.1
            and 0.006 with ranking 0, all at Spearman 0.94; ranking alone ordered best (0.98)
            at MSE 0.12.
        heldout_fraction: Share of the layout seeds held out, in (0, 1).
        epochs, batch_size, lr, hidden: The fit.
        episodes: Episodes per kind of the generated datasets.
        seed: Seed of everything (the judging dataset uses ``seed + 10000``).
        device: Where frame features are computed: ``"auto"`` (CUDA when present), ``"cpu"``,
            ``"cuda"``.
        judge: Run ``eval-reward`` on the learned reward.
        log: Progress lines.

    Raises:
        ValueError: Bad input, said before anything is written.
    """
    import torch

    from rewardlab.envs import get_task, make
    from rewardlab.evaluation.datasets import (
        EPISODE_KINDS,
        DatasetConfig,
        generate_dataset,
        load_dataset,
    )
    from rewardlab.learned.reward_net import (
        INPUTS,
        Normalization,
        RewardNetConfig,
        TrainedOn,
        build_reward_net,
        save_checkpoint,
    )

    started = time.perf_counter()
    out = Path(out_dir)
    if (out / "checkpoint.pt").exists():
        raise ValueError(f"{out} already holds a checkpoint; give another --out")
    if dataset is None and (out / "dataset").exists():
        raise ValueError(
            f"{out / 'dataset'} exists (an earlier run's?): pass it as the dataset, or give "
            "another --out"
        )
    if inputs not in INPUTS:
        raise ValueError(f"inputs must be one of {INPUTS}, got {inputs!r}")
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("episodes", episodes)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be > 0, got {lr}")
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: no CUDA device here; use 'auto' or 'cpu'")
    weights = LossWeights(regression, ranking, success)
    frames = inputs != "state"
    ds = None
    if dataset is not None:
        try:
            ds = load_dataset(dataset, env_id=env_id)
        except FileNotFoundError as exc:
            raise ValueError(str(exc)) from None
        recorded = dataset_env_kwargs(ds, env_kwargs)
        if frames and not ds.has_frames:
            raise ValueError(
                f"inputs={inputs!r} reads frames, but the dataset {ds.path} has none; "
                "generate one with frames or use inputs='state'"
            )
    kwargs = recorded if ds is not None else dict(env_kwargs or {})
    with make(env_id, **kwargs) as env:
        task = get_task(env)
        if inputs != "frames":
            task.require("state", "a reward network over state variables")
        layout = tuple((v.name, tuple(v.shape)) for v in task.state_variables)
        space = repr(env.observation_space)
    rng = np.random.default_rng(seed)
    if ds is not None:
        split = split_by_seed(ds.episodes, heldout_fraction, rng)
        _labels(ds)
    config = RewardNetConfig(
        inputs=inputs,
        state_layout=layout if inputs != "frames" else (),
        encoder=encoder if frames else None,
        hidden=tuple(hidden),
        head="progress",
    )
    generated = DatasetConfig(env_id, dict.fromkeys(EPISODE_KINDS, episodes), seed, kwargs, frames)
    torch.manual_seed(seed)
    log(f"building the network ({inputs}" + (f", encoder {encoder}" if frames else "") + ") ...")
    net = build_reward_net(config)  # loads the encoder's weights: fails here, not after writing

    if ds is None:
        log(f"generating the training dataset ({episodes} episodes per kind) ...")
        ds = generate_dataset(generated, out / "dataset")
        split = split_by_seed(ds.episodes, heldout_fraction, rng)
    feature_device = (
        ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    )
    x = label_inputs(ds, net, config, feature_device, log)
    fit = fit_labels(
        net, x, ds, split, weights, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, log=log
    )
    net.eval()
    source = (
        f"{ds.path}: the simulator's ground-truth progress and success of every state; "
        f"training layout seeds {list(split.train_seeds)}, held-out seeds "
        f"{list(split.heldout_seeds)}"
    )
    metrics = {
        f"heldout_{k}": float(v)
        for k, v in fit.heldout_metrics.items()
        if v is not None and not k.startswith("n_") and k != "spearman_episodes"
    }
    trained = TrainedOn(env_id, kwargs, space, weights.objective, source, seed, metrics)
    checkpoint = save_checkpoint(
        out / "checkpoint.pt", net, trained, Normalization.of(fit.train_rewards)
    )
    _plot_losses(fit.train_loss, fit.heldout_loss, weights.objective, out / "loss.png")
    summary: dict[str, Any] = {
        "env_id": env_id,
        "env_kwargs": kwargs,
        "labels": "the simulator's ground-truth progress and success of every state",
        "dataset": str(ds.path),
        "n_episodes": len(ds.episodes),
        "inputs": inputs,
        "encoder": config.encoder,
        "objective": weights.objective,
        "weights": dict(weights.items()),
        "split": {
            "heldout_fraction": heldout_fraction,
            "train_seeds": list(split.train_seeds),
            "heldout_seeds": list(split.heldout_seeds),
            "train_episodes": len(split.train_episodes),
            "heldout_episodes": len(split.heldout_episodes),
        },
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "hidden": list(hidden),
        "seed": seed,
        "loss": {"train": fit.train_loss, "heldout": fit.heldout_loss},
        "train_metrics": fit.train_metrics,
        "heldout_metrics": fit.heldout_metrics,
        "checkpoint": str(checkpoint),
    }
    if judge:
        judge_checkpoint(
            summary,
            env_id,
            checkpoint,
            out / "eval",
            env_kwargs=kwargs,
            episodes=episodes,
            frames=frames,
            seed=seed,
            train_seeds=(e.seed for e in ds.episodes),
            log=log,
        )
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "report.md").write_text(_report(summary))
    return out / "report.md"


def _plot_losses(train: list[float], heldout: list[float], objective: str, path: Path) -> None:
    from rewardlab.experiments.figures import new_figure, save_png

    fig, axes = new_figure()
    ax = axes[0]
    epochs = range(1, len(train) + 1)
    ax.plot(epochs, train, label="training episodes")
    ax.plot(epochs, heldout, label="held-out layout seeds")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"loss ({objective})")
    ax.legend()
    save_png(fig, path)


def _findings(s: Mapping[str, Any]) -> list[str]:
    """Plain statements of what worked and what did not, from the numbers."""
    held, train, w = s["heldout_metrics"], s["train_metrics"], s["weights"]
    out = []
    rho = held["spearman"]
    if rho is None:
        out.append("No held-out episode's progress varies: the ordering could not be judged.")
    elif rho >= 0.8:
        out.append(
            f"Worked: the head orders held-out episodes' states by progress (Spearman {rho:.2f})."
        )
    elif rho >= 0.5:
        out.append(f"Partly: held-out states are ordered only loosely (Spearman {rho:.2f}).")
    else:
        out.append(
            f"Did not work: held-out states are not ordered by progress (Spearman {rho:.2f})."
        )
    if train["spearman"] is not None and rho is not None and train["spearman"] - rho > 0.15:
        out.append(
            f"It overfits the training layouts: Spearman {train['spearman']:.2f} on them vs "
            f"{rho:.2f} held out (more episodes or seeds would help)."
        )
    if held["progress_mse"] > 2 * train["progress_mse"] + 0.005:
        out.append(
            f"Absolute progress generalizes worse than it fits: MSE {held['progress_mse']:.4f} "
            f"held out vs {train['progress_mse']:.4f} training."
        )
    if w["success"] == 0:
        out.append("The success head was not trained (weight 0): its numbers mean nothing.")
    elif held["success_auc"] is None:
        out.append("Held-out success AUC is undefined: one class is absent on that side.")
    elif held["success_auc"] < 0.7:
        out.append(
            "The success head does not separate held-out successes "
            f"(AUC {held['success_auc']:.2f})."
        )
    rows = s.get("eval_reward", {})
    if "learned" in rows:
        mine = rows["learned"]["verdict"]
        truth = rows.get("progress", {}).get("verdict")
        dense = [
            v["verdict"] for k, v in rows.items() if k.startswith("ref:") and k.endswith("(expert)")
        ]
        line = (
            f"eval-reward on other episodes rates the learned reward {mine!r}; the true "
            f"progress it imitates, paid as a reward, is rated {truth!r}"
            + (f", the env's dense reward {dense[0]!r}" if dense else "")
            + "."
        )
        if mine == truth and mine != "good" and rho is not None and rho >= 0.8:
            line += (
                " The head learned its labels, and the labels themselves make a poor reward "
                "here: fitting progress better cannot fix that."
            )
        out.append(line)
    return out


def _report(s: Mapping[str, Any]) -> str:
    split = s["split"]
    what = s["inputs"] + (f" (frozen encoder {s['encoder']})" if s["encoder"] else "")
    lines = [
        f"# Reward learned from labelled trajectories: {s['env_id']}",
        "",
        "- Labels: the simulator's ground-truth progress and success of every state (the "
        "task's own, not a human's or a model's): this shows what a progress head can learn "
        "from perfect labels, an upper bound for noisier ones.",
        f"- Data: `{s['dataset']}`, {s['n_episodes']} episodes; split by layout seed: "
        f"{split['train_episodes']} episodes (seeds {split['train_seeds']}) to train, "
        f"{split['heldout_episodes']} (seeds {split['heldout_seeds']}) held out.",
        f"- Network: {what} -> progress head {s['hidden']}; objective `{s['objective']}` "
        f"(weights {s['weights']}), {s['epochs']} epochs, seed {s['seed']}; final loss "
        f"{s['loss']['train'][-1]:.4f} training, {s['loss']['heldout'][-1]:.4f} held out "
        "(`loss.png`).",
        f"- Checkpoint: `{s['checkpoint']}`; its reward is the predicted progress, "
        "standardized on the training states; use it as `{model: {kind: learned, path: ...}}`.",
        f"- Wall time: {s['wall_s']:.0f} s.",
        "",
        "| states | progress MSE | Spearman within episodes | success acc. | success AUC |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, m in (("training", s["train_metrics"]), ("held out", s["heldout_metrics"])):
        lines.append(
            f"| {name} ({m['n_states']}) | {m['progress_mse']:.4f} | {cell(m['spearman'])} "
            f"({m['spearman_episodes']} ep.) | {m['success_accuracy']:.3f} | "
            f"{cell(m['success_auc'])} |"
        )
    if "eval_reward" in s:
        lines += eval_reward_lines(s["eval_reward"])
    lines += ["", "## What worked and what did not", ""]
    lines += [f"- {line}" for line in _findings(s)]
    return "\n".join(lines) + "\n"
