"""SB3 callbacks."""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from rewardlab.wrappers.reward import COMPONENT_PREFIX, POTENTIAL_COMPONENT_PREFIX
from rewardlab.wrappers.shaping import check_shaping_gamma

__all__ = ["RewardComponentLog", "ShapingDiscountCheck"]


class ShapingDiscountCheck(BaseCallback):
    """Refuses to train when a shaping layer's discount differs from the agent's.

    Potential-based shaping (Ng, Harada & Russell 1999) is policy-invariant only when its
    ``gamma`` is the learner's discount. At training start this calls
    :func:`~rewardlab.wrappers.shaping.check_shaping_gamma` on the training env with
    ``model.gamma``, so a mismatch fails before any step is taken.

    Raises:
        ValueError: From ``learn()``, at training start, on a mismatch.
        TypeError: If the training env hides sub-envs in other processes
            (``SubprocVecEnv``) below the shaping layers; see ``check_shaping_gamma``.

    Example:
        >>> from stable_baselines3 import PPO
        >>> from rewardlab import make_vec
        >>> venv = make_vec("rewardlab/GridEmpty-v0", shaping="progress", gamma=0.9)
        >>> model = PPO("MlpPolicy", venv, gamma=0.99, n_steps=8, batch_size=8)
        >>> model.learn(8, callback=ShapingDiscountCheck())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: VecPotentialShaping shapes with gamma=0.9 but the agent discounts ...
    """

    def _on_training_start(self) -> None:
        gamma = getattr(self.model, "gamma", None)
        if gamma is None:
            raise TypeError(f"{type(self.model).__name__} has no gamma to check shaping against")
        check_shaping_gamma(self.training_env, gamma)

    def _on_step(self) -> bool:
        return True


class RewardComponentLog(BaseCallback):
    """Statistics of a reward model's components over training, for reward reflection.

    Eureka (Ma et al. 2023) feeds back each reward component's value at about ten points of
    training with its max, mean and min. This callback splits training into ``n_points``
    windows of equal length and keeps, per window, the mean of every component the reward
    model reports (``info["reward_model/<name>"]``; a shaping potential's
    ``info["potential_model/<name>"]`` as ``potential/<name>``) and of the reward the agent
    receives, plus their overall max, mean and min. Logged under ``reward/<name>`` too.

    Args:
        total_steps: The ``learn`` budget in env steps (an on-policy run trains whole
            rollouts: the windows divide that).
        n_points: Windows (points of the reflection).

    Attributes:
        windows: One ``{name: mean}`` per finished window (``"reward"`` is the agent's).
    """

    def __init__(self, total_steps: int, n_points: int = 10) -> None:
        super().__init__()
        if total_steps < 1 or n_points < 1:
            raise ValueError(
                f"total_steps and n_points must be >= 1, got {total_steps}, {n_points}"
            )
        self.total_steps, self.n_points = total_steps, n_points
        self._start, self._span, self._closed = 0, float(total_steps), 0
        self.windows: list[dict[str, float]] = []
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._max: dict[str, float] = {}
        self._min: dict[str, float] = {}
        self._total: dict[str, float] = {}
        self._n: dict[str, int] = {}
        self._window_end = self._span / n_points

    def _on_training_start(self) -> None:
        # On-policy algorithms finish their last rollout: a budget below one rollout trains a
        # whole one. Windows divide what will really be trained, so there are n_points.
        n_steps = getattr(self.model, "n_steps", None)
        if isinstance(n_steps, int) and n_steps > 0:
            rollout = n_steps * self.model.n_envs
            self._span = float(-(-self.total_steps // rollout) * rollout)
        self._start = self.num_timesteps
        self._window_end = self._start + self._span / self.n_points

    def _add(self, name: str, values: list[float]) -> None:
        self._sums[name] = self._sums.get(name, 0.0) + sum(values)
        self._counts[name] = self._counts.get(name, 0) + len(values)
        self._total[name] = self._total.get(name, 0.0) + sum(values)
        self._n[name] = self._n.get(name, 0) + len(values)
        self._max[name] = max(self._max.get(name, -np.inf), max(values))
        self._min[name] = min(self._min.get(name, np.inf), min(values))

    def _on_step(self) -> bool:
        infos: list[dict[str, Any]] = self.locals.get("infos", [])
        self._add("reward", np.asarray(self.locals["rewards"], dtype=np.float64).tolist())
        if infos:
            for key in infos[0]:
                if key.startswith(COMPONENT_PREFIX):
                    self._add(key.removeprefix(COMPONENT_PREFIX), [i[key] for i in infos])
                elif key.startswith(POTENTIAL_COMPONENT_PREFIX):
                    name = "potential/" + key.removeprefix(POTENTIAL_COMPONENT_PREFIX)
                    self._add(name, [i[key] for i in infos])
        if self.num_timesteps >= self._window_end:
            # Window k ends at the first step at or past k/n of the span (one vector step
            # adds n_envs env steps, so boundaries fall between steps).
            self._close_window()
            done = (self.num_timesteps - self._start) * self.n_points / self._span
            self._closed = max(self._closed + 1, int(done))
            self._window_end = self._start + (self._closed + 1) * self._span / self.n_points
        return True

    def _close_window(self) -> None:
        window = {k: self._sums[k] / self._counts[k] for k in self._sums if self._counts[k]}
        for name, value in window.items():
            self.logger.record(f"reward/{name}", value)
        self.windows.append(window)
        self._sums, self._counts = {}, {}

    def _on_training_end(self) -> None:
        if self._counts and any(self._counts.values()):
            self._close_window()

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per name: ``values`` (window means, in order), ``max``, ``mean``, ``min``."""
        return {
            name: {
                "values": [w[name] for w in self.windows if name in w],
                "max": self._max[name],
                "mean": self._total[name] / self._n[name],
                "min": self._min[name],
            }
            for name in self._n
        }
