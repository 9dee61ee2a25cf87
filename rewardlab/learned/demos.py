"""Rewards from a few demonstrations, on a frozen image encoder: ``learn-reward --from demos``.

Two methods, both fit in closed form (no gradient step) to the encoder's features of the
demonstration frames:

``perceptual``  Sermanet, Xu & Levine (2016), ``REFERENCE.md`` section 3. Each demonstration
                is split into ``steps`` segments by the segmentation that minimizes the
                within-segment feature variance (:func:`segment_features`: exact dynamic
                programming over the cut points); step ``i`` of every demonstration is the
                same step (aligned by index). Per step, the ``features`` encoder features that
                best separate its frames from the other steps' frames are kept
                (:func:`select_features`), with their mean and spread over the step's frames:
                a :class:`~rewardlab.learned.heads.PerceptualHead` whose reward is the
                ``2^(i-1)``-weighted mean of the steps' Gaussian-style scores, in [0, 1].
``goal``        A goal-embedding reward (VIP-style, Ma et al. 2022): the goals are the
                features of each demonstration's last (successful) frame, and
                ``r(o) = -min_g ||phi(o) - phi(g)||``
                (:class:`~rewardlab.learned.heads.GoalDistanceHead`), 0 at a goal frame.
                Used as a shaping potential, ``{shaping: {kind: learned, path: CHECKPOINT}}``,
                it pays ``gamma r(o') - r(o)``: VIP's difference of consecutive frames'
                goal distances (exactly so at ``gamma = 1``; the normalization a checkpoint
                applies is a positive scale and a shift, which shaping leaves
                policy-invariant).

Demonstrations come from the env's scripted expert (a frames dataset of expert episodes,
generated into ``OUT/demos``), or from a user's recordings (:func:`read_demos`): a rewardlab
dataset folder with frames (its successful episodes; the reward is for the env settings the
dataset was recorded with), or a folder of ``.npy`` files, one episode's uint8 ``(T, H, W, 3)``
frames each (all of one frame size, at least ``MIN_FRAME_SIZE`` pixels a side), read in
file-name order, whose last frame is taken to show the task done.

Bad input is refused before anything is written; expert demonstrations that turn out too short
for ``steps`` once generated are removed again, so a rerun into the same folder works.

:func:`learn_from_demos` writes ``checkpoint.pt`` (``{model: {kind: learned, path: ...}}``),
``curves.png``, ``summary.json`` and ``report.md``, and judges the reward with eval-reward on
a frames dataset of other episodes (``eval/``), next to a random-encoder control where the
encoder has pretrained weights.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.learned.encoders import ENCODE_BATCH
from rewardlab.learned.judging import dataset_env_kwargs
from rewardlab.learned.judging import judge as judge_reward
from rewardlab.progress import Progress

__all__ = [
    "METHODS",
    "Demonstrations",
    "PerceptualFit",
    "check_demo",
    "expert_demos",
    "fit_perceptual",
    "learn_from_demos",
    "read_demos",
    "segment_features",
    "select_features",
]

METHODS = {"perceptual": "sermanet_perceptual", "goal": "goal_embedding"}
"""The methods :func:`learn_from_demos` takes, and the objective each checkpoint records."""
STD_FLOOR = 0.1
"""A selected feature's in-step spread is at least this fraction of its spread over all
demonstration frames: a step whose frames agree exactly would otherwise score 0 a hair away."""
EVAL_METRICS = ("preference", "spearman_return", "voc", "pearson_progress", "epic")
"""The eval-reward metrics the report repeats (``eval/report.md`` has them all)."""
RANDOM_CONTROL = {"efficientnet_lite0": "efficientnet_lite0:random"}
"""Pretrained encoders and the same architecture with random weights (the control)."""
MIN_FRAME_SIZE = 16
"""Demonstration frames are at least this many pixels high and wide: an encoder upsamples a
smaller one to its input size (224 px) into a blur of a few pixels that tells no step apart."""


# --- demonstrations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Demonstrations:
    """Demonstration videos.

    Attributes:
        frames: One uint8 ``(T, H, W, 3)`` array per demonstration.
        names: A name per demonstration (file name or ``episode <i>``).
        source: Where they came from, in words (recorded in the checkpoint).
        seeds: The layout seeds of episodes from a dataset (none for recordings): judging
            stays clear of them.
        env_kwargs: The env keywords a dataset was recorded with (None for ``.npy`` files,
            which do not say).
    """

    frames: tuple[np.ndarray, ...]
    names: tuple[str, ...]
    source: str
    seeds: tuple[int, ...] = ()
    env_kwargs: dict[str, Any] | None = None

    @property
    def n_frames(self) -> int:
        return sum(len(f) for f in self.frames)


def check_demo(frames: Any, name: str, min_frames: int = 1) -> np.ndarray:
    """``frames`` if it is one demonstration's uint8 ``(T, H, W, 3)`` frames with
    ``T >= min_frames`` (the ``steps`` it is split into) and ``H, W >= MIN_FRAME_SIZE``, else a
    one-line ``ValueError`` naming ``name``."""
    if not isinstance(frames, np.ndarray):
        raise ValueError(
            f"demonstration {name}: expected a numpy array, got {type(frames).__name__}"
        )
    if frames.dtype != np.uint8:
        hint = (
            " (float frames are refused: convert to 0-255 uint8 first)"
            if np.issubdtype(frames.dtype, np.floating)
            else ""
        )
        raise ValueError(
            f"demonstration {name}: frames must be uint8 RGB, got dtype {frames.dtype}{hint}"
        )
    if frames.ndim != 4 or frames.shape[-1] != 3 or min(frames.shape[1:3], default=0) < 1:
        raise ValueError(
            f"demonstration {name}: frames must have shape (T, H, W, 3), got {frames.shape}"
        )
    if len(frames) == 0:
        raise ValueError(f"demonstration {name} is empty (0 frames)")
    if min(frames.shape[1:3]) < MIN_FRAME_SIZE:
        raise ValueError(
            f"demonstration {name}: frames of {frames.shape[1]}x{frames.shape[2]} pixels are "
            f"too small to encode; record them at {MIN_FRAME_SIZE}x{MIN_FRAME_SIZE} pixels "
            "or more"
        )
    if len(frames) < min_frames:
        raise ValueError(
            f"demonstration {name} has {len(frames)} frame(s), fewer than steps (--demo-steps) "
            f"{min_frames} to split it into: pass a smaller --demo-steps or a longer "
            "demonstration"
        )
    return frames


def _one_frame_size(demos: Sequence[np.ndarray], names: Sequence[str]) -> None:
    """Raise unless every demonstration has frames of one shape, naming the files per shape."""
    by_shape: dict[tuple[int, ...], list[str]] = {}
    for frames, name in zip(demos, names, strict=True):
        by_shape.setdefault(tuple(frames.shape[1:]), []).append(name)
    if len(by_shape) > 1:
        sizes = "; ".join(
            f"{h}x{w}: {', '.join(n[:3])}" + (f" and {len(n) - 3} more" if len(n) > 3 else "")
            for (h, w, _), n in by_shape.items()
        )
        raise ValueError(
            f"demonstrations must share one frame size, got {len(by_shape)} ({sizes}); "
            "record them all at one resolution"
        )


def read_demos(
    path: str | Path,
    env_id: str,
    min_frames: int = 1,
    env_kwargs: Mapping[str, Any] | None = None,
) -> Demonstrations:
    """A user's recorded demonstrations: a rewardlab dataset folder of ``env_id`` with frames
    (its successful episodes), or a folder of ``.npy`` files (one episode's uint8
    ``(T, H, W, 3)`` frames each, all of one size, in file-name order).

    Args:
        path: The folder.
        env_id: The env the demonstrations are of.
        min_frames: Frames each demonstration must have (the ``steps`` it is split into).
        env_kwargs: The env keywords asked for; a dataset recorded with other ones is
            refused. None: take the dataset's (``Demonstrations.env_kwargs``).

    Raises:
        ValueError: A missing or empty folder, a dataset of another env or other env keywords,
            without frames or without a successful episode, a file that is not one episode's
            uint8 frames, or files of different frame sizes.
    """
    from rewardlab.evaluation.datasets import load_dataset

    path = Path(path)
    if not path.is_dir():
        raise ValueError(
            f"no demonstrations at {path}: give a rewardlab dataset folder with frames or a "
            "folder of .npy files (one episode's uint8 (T, H, W, 3) frames each)"
        )
    if (path / "metadata.json").exists():
        ds = load_dataset(path, env_id=env_id)
        recorded = dataset_env_kwargs(ds, env_kwargs, "demonstrations dataset")
        if not ds.has_frames:
            raise ValueError(
                f"dataset {path} has no frames; regenerate it with frames "
                "(DatasetConfig(..., frames=True), or eval-reward --frames)"
            )
        chosen = [i for i, e in enumerate(ds.episodes) if e.success]
        if not chosen:
            raise ValueError(
                f"dataset {path} has no successful episode ({len(ds.episodes)} in all) to "
                "learn from: demonstrations must show the task done"
            )
        starts, lengths = ds.state_starts, ds.n_steps + 1
        frames = tuple(
            check_demo(
                np.array(ds.frames[starts[i] : starts[i] + lengths[i]]), f"episode {i}", min_frames
            )
            for i in chosen
        )
        source = (
            f"recorded demonstrations: the {len(chosen)} successful episode(s) of the dataset "
            f"{path} (of {len(ds.episodes)})"
        )
        seeds = tuple(ds.episodes[i].seed for i in chosen)
        names = tuple(f"episode {i}" for i in chosen)
        return Demonstrations(frames, names, source, seeds, recorded)
    files = sorted(p for p in path.iterdir() if p.suffix == ".npy" and p.is_file())
    if not files:
        raise ValueError(
            f"{path} holds no .npy files and is not a rewardlab dataset: give one episode's "
            "uint8 (T, H, W, 3) frames per .npy file"
        )
    demos = []
    for file in files:
        try:
            array = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"demonstration {file.name} is not a readable .npy array: {exc}"
            ) from None
        demos.append(check_demo(array, file.name, min_frames))
    _one_frame_size(demos, [f.name for f in files])
    source = f"recorded demonstrations: {len(files)} .npy file(s) in {path}"
    return Demonstrations(tuple(demos), tuple(f.name for f in files), source)


def expert_demos(
    env_id: str,
    n: int,
    path: Path,
    *,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
    min_frames: int = 1,
    log: Callable[[str], None] = lambda _msg: None,
) -> Demonstrations:
    """``n`` episodes of the env's scripted expert with frames, generated into ``path`` (or
    read from it when an earlier call generated the same there); its successful ones, each of
    at least ``min_frames`` frames (the ``steps`` they are split into).

    Raises:
        ValueError: ``path`` holds something else, no expert episode succeeded, or one has
            fewer than ``min_frames`` frames. Then ``path`` is removed again if this call
            generated it, so that a rerun with other settings can generate there.
    """
    from rewardlab.evaluation.datasets import DatasetConfig, generate_dataset, load_dataset

    config = DatasetConfig(env_id, {"expert": n}, seed, dict(env_kwargs or {}), frames=True)
    generated = not path.exists()
    if not generated:
        try:
            same = load_dataset(path, env_id=env_id).config == config
        except (OSError, ValueError):
            same = False
        if not same:
            raise ValueError(
                f"{path} exists and is not the expert dataset asked for; remove it or give "
                "another --out"
            )
        log(f"reusing the expert demonstrations in {path}")
    else:
        log(f"generating {n} expert demonstration(s) with frames ...")
        generate_dataset(config, path)
    try:
        demos = read_demos(path, env_id, env_kwargs=config.env_kwargs)
        short = [
            f"{name} ({len(f)} frames)"
            for name, f in zip(demos.names, demos.frames, strict=True)
            if len(f) < min_frames
        ]
        if short:
            raise ValueError(
                f"expert demonstration(s) {', '.join(short)} have fewer frames than steps "
                f"(--demo-steps) {min_frames}: pass a smaller --demo-steps"
            )
    except BaseException:
        if generated:
            shutil.rmtree(path, ignore_errors=True)
        raise
    return Demonstrations(
        demos.frames,
        demos.names,
        f"the env's scripted expert: {len(demos.frames)} successful episode(s) of {n} "
        f"(seeds {seed}..{seed + n - 1}) in {path}",
        demos.seeds,
        demos.env_kwargs,
    )


# --- Sermanet et al.'s perceptual reward ------------------------------------------------------


def segment_features(x: np.ndarray, steps: int) -> np.ndarray:
    """The split of a sequence of feature vectors into ``steps`` contiguous, non-empty
    segments that minimizes the within-segment variance: the sum over segments of the squared
    distances of their rows to the segment mean (each segment's variance weighted by its
    length, so a one-frame step is no free zero; Sermanet et al. average the variances).

    Exact: dynamic programming over the cut points, the cost of every segment ``[a, b)`` from
    cumulative sums, ``O(steps T^2)``.

    Args:
        x: ``(T, D)`` features, ``T >= steps``.
        steps: Segments.

    Returns:
        ``(steps + 1,)`` boundaries ``0 = b_0 < b_1 < ... < b_steps = T``: segment ``i`` is
        rows ``b_i .. b_{i+1} - 1``.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"segment_features takes (T, D) features, got shape {x.shape}")
    n = len(x)
    if not 1 <= steps <= n:
        raise ValueError(f"cannot split {n} frame(s) into {steps} step(s)")
    x = x - x.mean(axis=0)  # centred: the cumulative sums lose less to cancellation
    s1 = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])  # (T+1, D)
    s2 = np.concatenate([[0.0], np.cumsum(np.einsum("td,td->t", x, x))])  # (T+1,)
    # cost[a, b] = sum_{a<=t<b} |x_t|^2 - |sum_{a<=t<b} x_t|^2 / (b - a), for a < b.
    norms = np.einsum("td,td->t", s1, s1)
    gram = s1 @ s1.T
    sq = np.maximum(norms[:, None] + norms[None, :] - 2.0 * gram, 0.0)
    length = np.arange(n + 1)[None, :] - np.arange(n + 1)[:, None]
    valid = length > 0
    cost = np.full((n + 1, n + 1), np.inf)
    cost[valid] = (s2[None, :] - s2[:, None])[valid] - sq[valid] / length[valid]
    cost = np.maximum(cost, 0.0)
    # best[k, b]: least cost of the first b rows in k + 1 segments; arg[k, b] its last cut.
    best = np.full((steps, n + 1), np.inf)
    arg = np.zeros((steps, n + 1), dtype=np.int64)
    best[0] = cost[0]
    for k in range(1, steps):
        total = best[k - 1][:, None] + cost  # (a, b): first a rows in k segments, then [a, b)
        arg[k] = np.argmin(total, axis=0)
        best[k] = total[arg[k], np.arange(n + 1)]
    bounds = [n]
    for k in range(steps - 1, 0, -1):
        bounds.append(int(arg[k, bounds[-1]]))
    bounds.append(0)
    return np.array(bounds[::-1], dtype=np.int64)


def select_features(x: np.ndarray, in_step: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``m`` features that best separate the rows ``in_step`` from the others: the largest
    ``|mu_in - mu_out| / (sigma_in + sigma_out)`` (ties by feature index).

    Args:
        x: ``(N, D)`` features.
        in_step: ``(N,)`` bool, True for the step's rows (some True, some False).
        m: Features to keep, ``1 <= m <= D``.

    Returns:
        ``(index, separation)``: the ``(m,)`` feature indices, best first, and their scores.
    """
    x = np.asarray(x, dtype=np.float64)
    in_step = np.asarray(in_step, dtype=bool)
    if not 1 <= m <= x.shape[1]:
        raise ValueError(f"cannot select {m} of {x.shape[1]} features")
    if in_step.all() or not in_step.any():
        raise ValueError("feature selection needs frames both in and out of the step")
    inside, outside = x[in_step], x[~in_step]
    gap = np.abs(inside.mean(axis=0) - outside.mean(axis=0))
    score = gap / (inside.std(axis=0) + outside.std(axis=0) + 1e-12)
    index = np.argsort(-score, kind="stable")[:m]
    return index, score[index]


@dataclass(frozen=True)
class PerceptualFit:
    """What :func:`fit_perceptual` found.

    Attributes:
        boundaries: Per demonstration, its ``(steps + 1,)`` step boundaries.
        index: ``(steps, m)`` the features each step keeps.
        mean, std: ``(steps, m)`` their mean and (floored) spread over the step's frames.
        separation: ``(steps, m)`` their separation scores.
    """

    boundaries: tuple[np.ndarray, ...]
    index: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    separation: np.ndarray


def fit_perceptual(features: Sequence[np.ndarray], steps: int, m: int) -> PerceptualFit:
    """Sermanet et al.'s per-step feature classifiers from demonstrations' features.

    Args:
        features: Per demonstration, its ``(T_i, D)`` frame features (``T_i >= steps``).
        steps: Steps per demonstration (``>= 2``: a step is told from the others).
        m: Features kept per step.
    """
    if steps < 2:
        raise ValueError(
            f"steps must be >= 2 (a single step has no other frames to be told from), got {steps}"
        )
    boundaries = tuple(segment_features(f, steps) for f in features)
    x = np.concatenate([np.asarray(f, dtype=np.float64) for f in features])
    label = np.concatenate([np.repeat(np.arange(steps), np.diff(b)) for b in boundaries])
    floor = np.maximum(STD_FLOOR * x.std(axis=0), 1e-6)
    index = np.empty((steps, m), dtype=np.int64)
    mean, std, separation = (np.empty((steps, m)) for _ in range(3))
    for i in range(steps):
        index[i], separation[i] = select_features(x, label == i, m)
        inside = x[label == i][:, index[i]]
        mean[i] = inside.mean(axis=0)
        std[i] = np.maximum(inside.std(axis=0), floor[index[i]])
    return PerceptualFit(boundaries, index, mean, std, separation)


def fill_perceptual(head: Any, fit: PerceptualFit) -> None:
    """Copy a fit into a :class:`~rewardlab.learned.heads.PerceptualHead` of its shape."""
    import torch

    with torch.no_grad():
        head.index.copy_(torch.from_numpy(fit.index))
        head.mean.copy_(torch.from_numpy(fit.mean))
        head.std.copy_(torch.from_numpy(fit.std))


def fill_goals(head: Any, goals: np.ndarray) -> None:
    """Copy ``(G, D)`` goal features into a :class:`~rewardlab.learned.heads.GoalDistanceHead`."""
    import torch

    with torch.no_grad():
        head.goals.copy_(torch.from_numpy(np.asarray(goals)))


# --- learn-reward --from demos ----------------------------------------------------------------


@dataclass
class _Fitted:
    """A net fit to the demonstrations, and its raw rewards on them."""

    net: Any
    features: list[np.ndarray]
    rewards: list[np.ndarray]
    scores: list[np.ndarray] | None  # perceptual: (T_i, steps) step scores
    fit: PerceptualFit | None


def _fit_net(
    method: str,
    encoder: str,
    demos: Demonstrations,
    steps: int,
    features: int,
    seed: int,
    log: Callable[[str], None],
    net: Any = None,
) -> _Fitted:
    import torch

    if net is None:
        net = _build(method, encoder, steps, features, len(demos.frames), seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = net.to(device).eval()
    total = Progress(len(demos.frames))
    feats = []
    for frames, name in zip(demos.frames, demos.names, strict=True):
        long = len(frames) > 10 * ENCODE_BATCH  # lines within a long demonstration too
        encoded = net.encoder.encode(frames, device, log=log if long else None)
        feats.append(encoded.astype(np.float64))
        log(f"{total.tick()} encoded {name} ({len(frames)} frames, {encoder})")
    fit = None
    if method == "perceptual":
        fit = fit_perceptual(feats, steps, features)
        fill_perceptual(net.head, fit)
    else:
        fill_goals(net.head, np.stack([f[-1] for f in feats]))
    rewards, scores = [], []
    with torch.inference_mode():
        for f in feats:
            x = torch.from_numpy(f).float().to(device)
            rewards.append(net.head(x).double().cpu().numpy())
            if method == "perceptual":
                scores.append(net.head.step_scores(x).double().cpu().numpy())
    return _Fitted(net.cpu(), feats, rewards, scores if method == "perceptual" else None, fit)


def _build(method: str, encoder: str, steps: int, features: int, goals: int, seed: int) -> Any:
    import torch

    from rewardlab.learned.reward_net import RewardNetConfig, build_reward_net

    shape = (steps, features) if method == "perceptual" else (goals,)
    head = "perceptual" if method == "perceptual" else "goal_distance"
    torch.manual_seed(seed)  # encoders without pretrained weights start from the seed
    config = RewardNetConfig(inputs="frames", encoder=encoder, head=head, head_shape=shape)
    return build_reward_net(config)


def _spearman(values: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(values) < 2 or np.ptp(values) == 0:
        return math.nan
    return float(spearmanr(np.arange(len(values)), values).statistic)


def _metrics(fitted: _Fitted) -> dict[str, float]:
    first = np.array([r[0] for r in fitted.rewards])
    last = np.array([r[-1] for r in fitted.rewards])
    rho = [_spearman(r) for r in fitted.rewards]
    metrics = {
        "demo_first_reward_mean": float(first.mean()),
        "demo_final_reward_mean": float(last.mean()),
        "demo_final_above_first": float(np.mean(last > first)),
        "demo_spearman_time_mean": float(np.nanmean(rho))
        if not np.all(np.isnan(rho))
        else math.nan,
    }
    if fitted.scores is not None and fitted.fit is not None:
        hits = [
            np.argmax(s, axis=1) == np.repeat(np.arange(s.shape[1]), np.diff(b))
            for s, b in zip(fitted.scores, fitted.fit.boundaries, strict=True)
        ]
        metrics["demo_step_accuracy"] = float(np.concatenate(hits).mean())
    return metrics


def learn_from_demos(
    env_id: str,
    out_dir: str | Path,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    method: str = "perceptual",
    demos: str | Path | None = None,
    n_demos: int = 5,
    steps: int = 4,
    features: int = 32,
    encoder: str = "efficientnet_lite0",
    episodes: int = 4,
    seed: int = 0,
    judge: bool = True,
    control: bool = True,
    log: Callable[[str], None] = lambda _msg: None,
) -> Path:
    """Fit a frames reward to demonstrations on ``env_id``; return ``report.md``.

    Args:
        env_id: The env the reward is for (its frames are judged).
        out_dir: Output folder (must not hold a checkpoint already).
        env_kwargs: ``gym.make`` keywords; None: none given (a demonstrations dataset's own,
            else the env's defaults). A dataset recorded with other ones is refused.
        method: ``"perceptual"`` (Sermanet et al.) or ``"goal"`` (goal embedding).
        demos: A user's recordings (:func:`read_demos`); None generates ``n_demos`` episodes
            of the env's scripted expert into ``OUT/demos``.
        n_demos: Expert demonstrations to generate.
        steps: Steps per demonstration (perceptual; ``--demo-steps``).
        features: Features kept per step (perceptual).
        encoder: The frozen image encoder
            (:func:`~rewardlab.learned.encoders.load_encoder`).
        episodes: Episodes per kind of the judging dataset.
        seed: Seed of the expert demonstrations (the judging dataset uses ``seed + 10000``).
        judge: Run ``eval-reward`` on the learned reward.
        control: Also fit and judge the same method on the encoder's architecture with random
            weights (where the encoder has pretrained ones).
        log: Progress messages.

    Raises:
        ValueError: Bad input, said before anything is written (expert demonstrations found
            too short for ``steps`` once generated are removed again).
    """
    from rewardlab.envs import get_task, make
    from rewardlab.learned.reward_net import Normalization, TrainedOn, save_checkpoint

    out = Path(out_dir)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; one of {list(METHODS)}")
    if (out / "checkpoint.pt").exists():
        raise ValueError(f"{out} already holds a checkpoint; give another --out")
    checks = [("episodes", episodes, 1), ("n_demos", n_demos, 1)]
    if method == "perceptual":
        checks += [("steps", steps, 2), ("features", features, 1)]
    for name, value, low in checks:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            flag = " (--demo-steps)" if name == "steps" else ""
            raise ValueError(f"{name}{flag} must be an int >= {low}, got {value!r}")
    min_frames = steps if method == "perceptual" else 1
    recorded = read_demos(demos, env_id, min_frames, env_kwargs) if demos is not None else None
    # The reward is for the env the demonstrations show: a dataset's own settings.
    kwargs = dict(
        recorded.env_kwargs
        if recorded is not None and recorded.env_kwargs is not None
        else env_kwargs or {}
    )
    with make(env_id, **kwargs) as env:
        task = get_task(env)
        if demos is None:
            task.require("expert", "demonstrations from the env's scripted expert")
        if judge:
            task.require("progress", "judging a learned reward with eval-reward")
        space = repr(env.observation_space)
        limit = env.spec.max_episode_steps if env.spec is not None else None
    if demos is None and limit is not None and min_frames > limit + 1:
        raise ValueError(
            f"steps (--demo-steps) {steps} is more than the {limit + 1} frames an episode of "
            f"{env_id} has at most: pass a smaller --demo-steps"
        )
    n_goals = len(recorded.frames) if recorded is not None else n_demos
    net = _build(method, encoder, steps, features, n_goals, seed)  # bad encoder/features: now
    control_encoder = RANDOM_CONTROL.get(encoder) if control else None

    if recorded is None:
        made_out = not out.exists()
        try:
            recorded = expert_demos(
                env_id,
                n_demos,
                out / "demos",
                seed=seed,
                env_kwargs=kwargs,
                min_frames=min_frames,
                log=log,
            )
        except BaseException:
            if made_out and out.is_dir() and not any(out.iterdir()):
                out.rmdir()  # created for the demonstrations just removed
            raise
        if len(recorded.frames) != n_goals:
            net = _build(method, encoder, steps, features, len(recorded.frames), seed)
    log(f"fitting the {method} reward to {len(recorded.frames)} demonstration(s) ...")
    fitted = _fit_net(method, encoder, recorded, steps, features, seed, log, net)
    objective = METHODS[method]
    metrics = _metrics(fitted)
    trained = TrainedOn(env_id, kwargs, space, objective, recorded.source, seed, metrics)
    normalization = Normalization.of(np.concatenate(fitted.rewards))
    checkpoint = save_checkpoint(out / "checkpoint.pt", fitted.net, trained, normalization)
    _plot(fitted, recorded, method, out / "curves.png")
    summary: dict[str, Any] = {
        "env_id": env_id,
        "env_kwargs": kwargs,
        "method": method,
        "objective": objective,
        "encoder": encoder,
        "demonstrations": recorded.source,
        "n_demos": len(recorded.frames),
        "demo_frames": [len(f) for f in recorded.frames],
        "steps": steps if method == "perceptual" else None,
        "features": features if method == "perceptual" else None,
        "boundaries": [b.tolist() for b in fitted.fit.boundaries] if fitted.fit else None,
        "metrics": metrics,
        "normalization": {"shift": normalization.shift, "scale": normalization.scale},
        "checkpoint": str(checkpoint),
    }
    rewards: list[dict[str, Any]] = [
        {"name": "learned", "model": {"kind": "learned", "path": str(checkpoint.resolve())}}
    ]
    if control_encoder is not None:
        log(f"fitting the control: the same on {control_encoder} ...")
        ctrl = _fit_net(method, control_encoder, recorded, steps, features, seed, log)
        ctrl_metrics = _metrics(ctrl)
        ctrl_trained = TrainedOn(
            env_id,
            kwargs,
            space,
            objective,
            f"{recorded.source} (random-encoder control)",
            seed,
            ctrl_metrics,
        )
        ctrl_path = save_checkpoint(
            out / "control" / "checkpoint.pt",
            ctrl.net,
            ctrl_trained,
            Normalization.of(np.concatenate(ctrl.rewards)),
        )
        summary["control"] = {
            "encoder": control_encoder,
            "metrics": ctrl_metrics,
            "checkpoint": str(ctrl_path),
        }
        rewards.append(
            {
                "name": "random-encoder control",
                "model": {"kind": "learned", "path": str(ctrl_path.resolve())},
            }
        )
    if judge:
        judged_summary = judge_reward(
            env_id,
            rewards,
            out / "eval",
            env_kwargs=kwargs,
            episodes=episodes,
            frames=True,
            seed=seed,
            train_seeds=recorded.seeds,
            grow=False,
            log=log,
        )
        summary["judging_seed"] = judged_summary["judging_seed"]
        summary["eval_reward"] = {
            r["name"]: {
                **{k: r.get(k) for k in ("verdict", *EVAL_METRICS)},
                "preference_interval": r.get("intervals", {}).get("preference"),
            }
            for r in judged_summary["rewards"]
        }
        summary["eval_support"] = {
            "success_transitions": judged_summary["success_transitions"],
            "low_support_metrics": judged_summary["low_support_metrics"],
        }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "report.md").write_text(_report(summary))
    return out / "report.md"


def _plot(fitted: _Fitted, demos: Demonstrations, method: str, path: Path) -> None:
    from rewardlab.experiments.figures import new_figure, save_png

    perceptual = fitted.scores is not None and fitted.fit is not None
    fig, axes = new_figure(ncols=2 if perceptual else 1)
    ax = axes[0]
    for name, r in zip(demos.names, fitted.rewards, strict=True):
        ax.plot(np.arange(len(r)), r, label=name)
    ax.set_xlabel("frame of the demonstration")
    ax.set_ylabel("raw reward" + (" (weighted step score)" if perceptual else " (-goal distance)"))
    ax.set_title(f"{method} reward along each demonstration")
    if len(demos.names) <= 10:
        ax.legend(fontsize="small")
    if perceptual:
        assert fitted.scores is not None and fitted.fit is not None
        ax = axes[1]
        scores, bounds = fitted.scores[0], fitted.fit.boundaries[0]
        for i in range(scores.shape[1]):
            ax.plot(np.arange(len(scores)), scores[:, i], label=f"step {i + 1}")
        for b in bounds[1:-1]:
            ax.axvline(b - 0.5, color="grey", linestyle=":")
        ax.set_xlabel(f"frame of {demos.names[0]} (dotted: its step boundaries)")
        ax.set_ylabel("step score")
        ax.set_title("per-step scores")
        ax.legend(fontsize="small")
    save_png(fig, path)


def _cell(value: Any) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.3f}"
    )


def _report(s: Mapping[str, Any]) -> str:
    m = s["metrics"]
    title = {
        "perceptual": "perceptual reward (Sermanet et al. 2016)",
        "goal": "goal-embedding reward (VIP-style)",
    }
    lines = [
        f"# Reward learned from demonstrations: {s['env_id']}",
        "",
        f"- Method: {title[s['method']]}, encoder `{s['encoder']}` (frozen).",
        f"- Demonstrations: {s['demonstrations']}; frames per demonstration {s['demo_frames']}.",
    ]
    if s["method"] == "perceptual":
        lines.append(
            f"- {s['steps']} steps per demonstration, {s['features']} features per step; step "
            f"boundaries {s['boundaries']}. A demonstration frame's best-scoring step is its "
            f"own in {_cell(m.get('demo_step_accuracy'))} of frames."
        )
    lines += [
        "- On the demonstrations themselves (raw reward): first frames "
        f"{_cell(m['demo_first_reward_mean'])}, "
        f"final frames {_cell(m['demo_final_reward_mean'])}; final above first in "
        f"{_cell(m['demo_final_above_first'])} of them; Spearman of reward with time "
        f"{_cell(m['demo_spearman_time_mean'])} (mean over demonstrations). These are the data the "
        "reward was fit to, not a test (`curves.png`).",
        f"- Checkpoint: `{s['checkpoint']}`; use it as `{{model: {{kind: learned, path: ...}}}}`"
        + (
            ", or as a potential `{shaping: {kind: learned, path: ...}}` for VIP's "
            "consecutive-frame difference."
            if s["method"] == "goal"
            else "."
        ),
    ]
    if "control" in s:
        c = s["control"]["metrics"]
        lines.append(
            f"- Control: the same fit on `{s['control']['encoder']}` (random weights): final "
            "minus first frames "
            f"{_cell(c['demo_final_reward_mean'] - c['demo_first_reward_mean'])}, "
            f"Spearman with time {_cell(c['demo_spearman_time_mean'])}."
        )
    if "eval_reward" in s:
        rows = s["eval_reward"]
        support = s["eval_support"]
        lines += [
            "",
            "## eval-reward on other episodes (`eval/report.md`)",
            "",
            f"{support['success_transitions']} transition(s) of the judging dataset enter success"
            + (
                f"; too few to trust {', '.join(support['low_support_metrics'])} (greyed out "
                "in `eval/report.md`)."
                if support["low_support_metrics"]
                else "."
            ),
            "",
            "| reward | verdict | pref. acc. | Spearman ret. | VOC | Pearson prog. | EPIC |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for name, row in rows.items():
            cells = " | ".join(_cell(row[k]) for k in EVAL_METRICS)
            lines.append(f"| {name} | {row['verdict']} | {cells} |")
        lines += ["", _verdict(rows, support["low_support_metrics"])]
    return "\n".join(lines) + "\n"


def _verdict(rows: Mapping[str, Mapping[str, Any]], low_support: Sequence[str]) -> str:
    """Plain sentences on how the learned reward did against its references."""
    mine = rows.get("learned", {})
    head = f"**Verdict**: eval-reward rates the learned reward '{mine.get('verdict')}'."

    def versus(key: str, label: str) -> str:
        value = mine.get(key)
        if value is None or math.isnan(value):
            return f"{label}: not measured."
        others = {k: v[key] for k, v in rows.items() if k != "learned" and _known(v[key])}
        above = sorted(k for k, v in others.items() if value > v)
        below = sorted(k for k, v in others.items() if value <= v)
        caveat = " (too few successes to trust)" if key in low_support else ""
        return (
            f"{label} {value:.3f}{caveat}: above {', '.join(above) or 'none'}; "
            f"not above {', '.join(below) or 'none'}."
        )

    return " ".join(
        [
            head,
            versus("preference", "Preference accuracy"),
            versus("voc", "VOC"),
            versus("pearson_progress", "Pearson with progress"),
        ]
    )


def _known(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))
