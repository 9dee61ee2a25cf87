"""A trained policy evaluated on the TRUE task reward: a separate env with no learned reward
or shaping on it (success rate and true return, on fixed seeds)."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

__all__ = ["EVAL_COLUMNS", "EvalResult", "TrueTaskEval", "evaluate_policy_on_task"]

EVAL_COLUMNS = ("step", "success_rate", "mean_return", "mean_length", "episodes")
"""Columns of ``eval.csv``, one row per evaluation."""


@dataclass(frozen=True)
class EvalResult:
    """Per-episode outcomes of one evaluation.

    Attributes:
        successes: ``(n,)`` bool, ``info["is_success"]`` at each episode's last step.
        returns: ``(n,)`` undiscounted returns of the env's own (true) reward.
        lengths: ``(n,)`` episode lengths.
    """

    successes: np.ndarray
    returns: np.ndarray
    lengths: np.ndarray

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.successes))

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))

    @property
    def mean_length(self) -> float:
        return float(np.mean(self.lengths))


def evaluate_policy_on_task(
    model: BaseAlgorithm,
    envs: Sequence[gym.Env[Any, Any]],
    seeds: Sequence[int],
    *,
    deterministic: bool = True,
    frames: list[np.ndarray] | None = None,
) -> EvalResult:
    """Run one episode per seed, ``envs[k]`` reset with ``seeds[k]``, all in lockstep.

    Every step makes one batched ``model.predict`` for the episodes still running. Success
    is ``info["is_success"]`` at the episode's last step (the Fetch convention: where
    success does not end the episode, the final state decides). The envs must not carry
    learned-reward or shaping wrappers: their reward is reported as the true return. With
    ``frames`` (and ``rgb_array`` envs), episode 0's frames are appended to it.

    Raises:
        ValueError: If ``envs`` and ``seeds`` differ in length.
        KeyError: If an env does not report ``info["is_success"]``.
    """
    if len(envs) != len(seeds):
        raise ValueError(f"one env per seed: got {len(envs)} envs and {len(seeds)} seeds")
    n = len(seeds)
    obs = [env.reset(seed=int(seed))[0] for env, seed in zip(envs, seeds, strict=True)]
    successes = np.zeros(n, dtype=bool)
    returns = np.zeros(n)
    lengths = np.zeros(n, dtype=np.int64)
    active = list(range(n))
    while active:
        batch = [obs[k] for k in active]
        stacked = (  # a Dict observation (Fetch) is stacked key by key
            {key: np.stack([o[key] for o in batch]) for key in batch[0]}
            if isinstance(batch[0], dict)
            else np.stack(batch)
        )
        actions, _ = model.predict(stacked, deterministic=deterministic)
        still = []
        for k, action in zip(active, actions, strict=True):
            obs[k], reward, terminated, truncated, info = envs[k].step(action)
            returns[k] += float(reward)
            lengths[k] += 1
            if frames is not None and k == 0:
                frames.append(np.asarray(envs[k].render()))
            if not (terminated or truncated):
                still.append(k)
                continue
            if "is_success" not in info:
                raise KeyError("evaluation needs info['is_success'] from the env")
            successes[k] = bool(info["is_success"])
        active = still
    return EvalResult(successes, returns, lengths)


class TrueTaskEval(BaseCallback):
    """Evaluates the policy on the true task every ``eval_freq`` env steps.

    Evaluations run at the start of training, whenever ``num_timesteps`` (summed over
    sub-envs) crosses a multiple of ``eval_freq``, and at the end, each on the same fixed
    ``seeds``. Each is logged as ``eval/success_rate``, ``eval/mean_return`` and
    ``eval/mean_length`` and appended (and flushed) to ``csv_path`` (columns
    :data:`EVAL_COLUMNS`), so a killed run keeps every evaluation it finished.

    Args:
        make_env: Builds an evaluation env (one per seed, stepped in lockstep): the task with
            its own reward, no reward wrappers (``render_mode="rgb_array"`` with ``video_dir``).
        eval_freq: Env steps between evaluations.
        seeds: Reset seeds of the evaluation episodes, one episode each.
        csv_path: Where to append the rows; None keeps them in :attr:`rows` only.
        video_dir: Write the first episode of every evaluation as ``eval_<step>.gif`` here.
        deterministic: Act greedily.
    """

    def __init__(
        self,
        make_env: Callable[[], gym.Env[Any, Any]],
        eval_freq: int,
        seeds: Sequence[int],
        csv_path: str | os.PathLike[str] | None = None,
        video_dir: str | os.PathLike[str] | None = None,
        deterministic: bool = True,
    ) -> None:
        super().__init__()
        if eval_freq < 1:
            raise ValueError(f"eval_freq must be >= 1 env step, got {eval_freq}")
        if len(seeds) == 0:
            raise ValueError("seeds must name at least one evaluation episode")
        self.make_env = make_env
        self.eval_freq = int(eval_freq)
        self.seeds = [int(s) for s in seeds]
        self.csv_path = Path(csv_path) if csv_path is not None else None
        self.video_dir = Path(video_dir) if video_dir is not None else None
        self.deterministic = deterministic
        self.rows: list[dict[str, float]] = []
        self._envs: list[gym.Env[Any, Any]] = []
        self._next = 0

    def _evaluate(self) -> None:
        frames: list[np.ndarray] | None = [] if self.video_dir is not None else None
        result = evaluate_policy_on_task(
            self.model, self._envs, self.seeds, deterministic=self.deterministic, frames=frames
        )
        row = {
            "step": float(self.num_timesteps),
            "success_rate": result.success_rate,
            "mean_return": result.mean_return,
            "mean_length": result.mean_length,
            "episodes": float(len(self.seeds)),
        }
        self.rows.append(row)
        for key in ("success_rate", "mean_return", "mean_length"):
            self.logger.record(f"eval/{key}", row[key])
        if self.csv_path is not None:
            new = not self.csv_path.exists()
            with self.csv_path.open("a", newline="") as fh:
                writer = csv.writer(fh)
                if new:
                    writer.writerow(EVAL_COLUMNS)
                writer.writerow([int(row["step"]), *(row[k] for k in EVAL_COLUMNS[1:])])
                fh.flush()
                os.fsync(fh.fileno())
        if frames and self.video_dir is not None:
            import imageio.v3 as iio

            self.video_dir.mkdir(parents=True, exist_ok=True)
            iio.imwrite(self.video_dir / f"eval_{self.num_timesteps}.gif", np.stack(frames))
        self._next = (self.num_timesteps // self.eval_freq + 1) * self.eval_freq

    def _on_training_start(self) -> None:
        self._envs = [self.make_env() for _ in self.seeds]
        self._evaluate()

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._evaluate()
        return True

    def _on_training_end(self) -> None:
        if not self.rows or self.rows[-1]["step"] < self.num_timesteps:
            self._evaluate()
        self.close()

    def close(self) -> None:
        """Close the evaluation envs (also after a failed ``learn``)."""
        for env in self._envs:
            env.close()
        self._envs = []
