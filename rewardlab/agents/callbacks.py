"""SB3 callbacks."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from rewardlab.info_keys import MODEL_PREFIX, POTENTIAL_MODEL_PREFIX
from rewardlab.reward_models.program_reward import ProgramReward
from rewardlab.sandbox import RunningStats
from rewardlab.wrappers.shaping import check_shaping_gamma
from rewardlab.wrappers.timing import RewardBudget, RewardCost, RewardTooSlow, StepTimes
from rewardlab.wrappers.vec import reward_layers

__all__ = ["RewardComponentLog", "RewardCostCheck", "ShapingDiscountCheck", "StopAtBudget"]


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
        >>> from rewardlab import make_vec_env
        >>> venv = make_vec_env("rewardlab/GridEmpty-v0", shaping="progress", gamma=0.9)
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


class StopAtBudget(BaseCallback):
    """Stops ``learn()`` at the first vector step at or past ``steps`` env steps.

    SB3's on-policy algorithms otherwise finish their last rollout (a 12,000-step budget with
    512-step rollouts trains 12,288 steps), so runs of one budget would end at different
    steps and "final" would not be the policy at the budget. The partial last rollout is not
    trained on.

    Args:
        steps: The budget in env steps (summed over sub-envs).
    """

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def _on_step(self) -> bool:
        return self.num_timesteps < self.steps


class RewardComponentLog(BaseCallback):
    """Statistics of a reward model's components over training, for reward reflection.

    Eureka (Ma et al. 2023) feeds back each reward component's value at about ten points of
    training with its max, mean and min. This callback splits training into ``n_points``
    windows of equal length and keeps, per window, the mean of every component the reward
    model reports (``info["reward_model/<name>"]``; a shaping potential's
    ``info["potential_model/<name>"]`` as ``potential/<name>``) and of the reward the agent
    receives, plus their overall max, mean and min. Logged under ``reward/<name>`` too.

    Every statistic is finite, so that ``reward_components.json`` is strict JSON: NaN and
    infinite values are left out and counted (``nonfinite``; a name that had no finite value
    has ``None`` statistics), and means are weighted averages of the steps' means, which do
    not overflow on finite values near the largest float as sums would.

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
        # Statistics of the finite values by name: this window's, and overall.
        self._window: dict[str, RunningStats] = {}
        self._overall: dict[str, RunningStats] = {}
        self._window_end = self._span / n_points

    def _on_training_start(self) -> None:
        # A vector step adds n_envs env steps: training stops at the first one at or past the
        # budget (StopAtBudget). Windows divide what will really be trained: n_points of them.
        n_envs = self.model.n_envs
        self._span = float(-(-self.total_steps // n_envs) * n_envs)
        self._start = self.num_timesteps
        self._window_end = self._start + self._span / self.n_points

    def _add(self, name: str, values: list[float]) -> None:
        overall = self._overall.get(name) or self._overall.setdefault(name, RunningStats())
        n = len(values)
        mean = sum(values) / n
        if math.isfinite(mean):  # the common case, in plain Python: a few values per step
            window = self._window.get(name) or self._window.setdefault(name, RunningStats())
            low, high = min(values), max(values)
            window.fold(n, mean, low, high)
            overall.fold(n, mean, low, high)
            return
        # A non-finite value, or finite ones whose sum overflows.
        array = np.asarray(values, dtype=np.float64)
        finite = array[np.isfinite(array)]
        overall.nonfinite += n - finite.size
        if finite.size:
            self._window.setdefault(name, RunningStats()).update(finite)
            overall.update(finite)

    def _on_step(self) -> bool:
        infos: list[dict[str, Any]] = self.locals.get("infos", [])
        self._add("reward", np.asarray(self.locals["rewards"], dtype=np.float64).tolist())
        for key in infos[0] if infos else ():
            for prefix, name in ((MODEL_PREFIX, ""), (POTENTIAL_MODEL_PREFIX, "potential/")):
                if key.startswith(prefix):
                    self._add(name + key.removeprefix(prefix), [i[key] for i in infos])
        if self.num_timesteps >= self._window_end:
            # Window k ends at the first step at or past k/n of the span (one vector step
            # adds n_envs env steps, so boundaries fall between steps).
            self._close_window()
            done = (self.num_timesteps - self._start) * self.n_points / self._span
            self._closed = max(self._closed + 1, int(done))
            self._window_end = self._start + (self._closed + 1) * self._span / self.n_points
        return True

    def _close_window(self) -> None:
        window = {name: stats.mean for name, stats in self._window.items()}
        for name, value in window.items():
            self.logger.record(f"reward/{name}", value)
        self.windows.append(window)
        self._window = {}

    def _on_training_end(self) -> None:
        if self._window:
            self._close_window()

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per name: ``values`` (window means, in order), ``max``, ``mean``, ``min`` (None
        when no value was finite) and ``nonfinite`` (values left out)."""
        return {
            name: {
                "values": [w[name] for w in self.windows if name in w],
                "max": stats.max if stats.count else None,
                "mean": stats.mean if stats.count else None,
                "min": stats.min if stats.count else None,
                "nonfinite": stats.nonfinite,
            }
            for name, stats in self._overall.items()
        }


class RewardCostCheck(BaseCallback):
    """Holds every reward program of the training env to a :class:`RewardBudget`.

    At training start it finds the reward layers over the training env whose model is a
    :class:`~rewardlab.reward_models.program_reward.ProgramReward` and restarts their
    :class:`~rewardlab.wrappers.timing.StepTimes` with the budget's warm-up and window. Each
    time a window completes it judges every program's median call against the limit for the
    median env step (the innermost reward layer's inner step: the envs themselves), logs
    ``reward_cost/<role>_ms`` and ``reward_cost/env_step_ms``, and raises
    :class:`RewardTooSlow` from ``learn()`` or, with ``on_exceed="warn"``, adds the first
    excess of each program to :attr:`warnings`. A run shorter than the warm-up plus one
    window is not judged.

    Args:
        budget: The budget.
        programs: How to name each role's program to the user (``{"reward": "my.py"}``);
            a role not given is ``"given as source"``.

    Attributes:
        costs: The last measurement of each role.
        warnings: One line per program that exceeded the budget (``on_exceed="warn"``).
    """

    def __init__(self, budget: RewardBudget, programs: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.budget = budget
        self.programs = dict(programs or {})
        self.costs: dict[str, RewardCost] = {}
        self.warnings: list[str] = []
        self._warned: set[str] = set()
        self._layers: list[tuple[str, StepTimes]] = []
        self._env_times: StepTimes | None = None
        self._seen = 0

    def _on_training_start(self) -> None:
        layers = reward_layers(self.training_env)  # outermost first
        self._layers = [
            (layer.core.role, layer.times)
            for layer in layers
            if isinstance(layer.core.model, ProgramReward)
        ]
        # The innermost layer's inner step is the envs' own.
        self._env_times = layers[-1].times if layers else None
        if self._env_times is None:
            return
        for _, times in self._layers:
            times.reset(self.budget.warmup, self.budget.window)
        self._env_times.reset(self.budget.warmup, self.budget.window)
        self._seen = 0

    def _on_step(self) -> bool:
        env_times = self._env_times
        if env_times is None or not self._layers or env_times.windows == self._seen:
            return True
        self._seen = env_times.windows
        calls = {role: times.model_s for role, times in self._layers}
        costs = self.judge(env_times.env_s, calls, self.training_env.num_envs)
        self.logger.record("reward_cost/env_step_ms", env_times.env_s * 1e3)
        for cost in costs:
            self.logger.record(f"reward_cost/{cost.role}_ms", cost.call_ms)
        return True

    def judge(
        self, env_step_s: float, call_s: Mapping[str, float], n_envs: int
    ) -> list[RewardCost]:
        """Judge one window's medians: the env step, and each role's program call.

        Returns:
            The measurements, in the order of ``call_s`` (also kept in :attr:`costs`).

        Raises:
            RewardTooSlow: For the first call over the limit, when ``on_exceed`` is
                ``"error"``.
        """
        budget = self.budget
        env_ms = env_step_s * 1e3
        costs = []
        for role, seconds in call_s.items():
            cost = RewardCost(
                program=self.programs.get(role, "given as source"),
                role=role,
                n_envs=n_envs,
                call_ms=seconds * 1e3,
                env_step_ms=env_ms,
                limit_ms=budget.limit_ms(env_ms),
                multiple=budget.multiple,
                min_ms=budget.min_ms,
            )
            self.costs[role] = cost
            costs.append(cost)
            if not cost.exceeded:
                continue
            if budget.on_exceed == "error":
                raise RewardTooSlow(cost)
            if role not in self._warned:  # once per program: the later windows say the same
                self._warned.add(role)
                self.warnings.append(f"{cost.describe()}; training went on (on_exceed: warn)")
        return costs
