"""SB3 callbacks."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecNormalize

from rewardlab.info_keys import IS_SUCCESS, MODEL_PREFIX, POTENTIAL_MODEL_PREFIX, REWARD_LAYERS
from rewardlab.reward_models.program_reward import ProgramReward
from rewardlab.sandbox import RunningStats
from rewardlab.wrappers.shaping import check_shaping_gamma
from rewardlab.wrappers.timing import RewardBudget, RewardCost, RewardTooSlow, StepTimes
from rewardlab.wrappers.vec import VecRewardLayer, reward_layers

__all__ = [
    "PROXY",
    "RewardComponentLog",
    "RewardCostCheck",
    "ShapingDiscountCheck",
    "StopAtBudget",
    "TrainingEpisodeLog",
]


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


class _WindowedLog(BaseCallback):
    """Training split into ``n_points`` windows of equal length, each closed with
    :meth:`_close_window` at the first vector step at or past its end.

    A vector step adds ``n_envs`` env steps, so boundaries fall between steps: the windows
    divide what will really be trained (the budget rounded up to a whole vector step, where
    :class:`StopAtBudget` stops), and a step past several boundaries closes one window.
    """

    def __init__(self, total_steps: int, n_points: int) -> None:
        super().__init__()
        if total_steps < 1 or n_points < 1:
            raise ValueError(
                f"total_steps and n_points must be >= 1, got {total_steps}, {n_points}"
            )
        self.total_steps, self.n_points = total_steps, n_points
        self._start, self._span, self._closed = 0, float(total_steps), 0
        self._window_end = self._span / n_points
        self._opened = 0  # the step the open window started at

    def _on_training_start(self) -> None:
        n_envs = self.model.n_envs
        self._span = float(-(-self.total_steps // n_envs) * n_envs)
        self._start = self._opened = self.num_timesteps
        self._window_end = self._start + self._span / self.n_points

    def _advance(self) -> None:
        """Close the open window if this step is at or past its end."""
        if self.num_timesteps >= self._window_end:
            self._close_window()
            self._opened = self.num_timesteps
            done = (self.num_timesteps - self._start) * self.n_points / self._span
            self._closed = max(self._closed + 1, int(done))
            self._window_end = self._start + (self._closed + 1) * self._span / self.n_points

    def _close_window(self) -> None:
        raise NotImplementedError

    def _on_step(self) -> bool:
        raise NotImplementedError


class RewardComponentLog(_WindowedLog):
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
        super().__init__(total_steps, n_points)
        self.windows: list[dict[str, float]] = []
        # Statistics of the finite values by name: this window's, and overall.
        self._window: dict[str, RunningStats] = {}
        self._overall: dict[str, RunningStats] = {}

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
        self._advance()
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


PROXY = (
    "the reward the agent is trained on: the training env's reward after every rewardlab "
    "reward layer (model, shaping, composition), before VecNormalize's scaling"
)
"""What :class:`TrainingEpisodeLog` calls the proxy, as written in its summary."""


def _moments(values: list[float]) -> dict[str, Any]:
    """``{"mean", "std", "n"}`` of the finite ``values`` (mean and std None without any; a
    std that overflows is None), ``nonfinite`` when some were left out."""
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    out: dict[str, Any] = {"mean": None, "std": None, "n": int(finite.size)}
    if finite.size:
        stats = RunningStats()
        stats.update(finite)  # a mean that does not overflow near the largest float
        with np.errstate(over="ignore", invalid="ignore"):
            std = float(np.std(finite))
        out["mean"], out["std"] = stats.mean, std if math.isfinite(std) else None
    if finite.size < array.size:
        out["nonfinite"] = int(array.size - finite.size)
    return out


class TrainingEpisodeLog(_WindowedLog):
    """The proxy reward's episode return beside the true task outcome, per training episode.

    Reward hacking shows as a proxy return that rises while the task is not solved more
    often (Skalse et al. 2022). For every training episode that finishes (terminated or
    truncated, on any sub-env) this records:

    - ``proxy_return``: the sum of the rewards the agent was trained on over the episode
      (:data:`PROXY`: after every rewardlab reward layer; when the training env has an SB3
      ``VecNormalize`` above them, its unnormalized reward, ``get_original_reward()``);
    - ``success``: ``info["is_success"]`` at the episode's last step; an env that does not
      report it gives no success (not a failure);
    - ``proxy_return_failed``: the proxy return of the episodes that reported no success:
      a proxy that rises there is paid for something other than the task (a success-like
      proxy, the sparse task reward itself, stays flat there however its learner improves);
    - ``task_return``: the env's own return (SB3 ``Monitor``'s ``info["episode"]["r"]``),
      with ``task_return=True`` only: it is the true task's return unless the run changed
      the env's ``reward_type``;
    - ``length``, and whether the time limit truncated it;
    - ``components``: each reward-model component's episode sum (``info["reward_model/
      <name>"]`` as ``<name>``, as :class:`RewardComponentLog` names them) and each reward
      layer's term summed over the episode (``term/<layer>``, from
      ``info["reward_layers"]``: e.g. ``term/shaping``, the shaping layer's ``F``). A shaping
      potential's components are state values, whose episode sum means nothing: left out.

    Episodes are aggregated into the ``n_points`` windows of :class:`RewardComponentLog`
    (an episode belongs to the window in which it ends; one still running at the end of
    training is not recorded). Per window: ``{"start", "end", "episodes", "truncated",
    "proxy_return", "proxy_return_failed", "task_return", "length", "components": {name: M},
    "success": {"rate", "n"}}``, where ``M`` is ``{"mean", "std", "n"}`` over the episodes'
    finite values (NaN and infinite ones are left out and counted in ``nonfinite``; mean and
    std are None without any) and ``success`` is over the ``n`` episodes that reported it (rate None
    without any). Logged under ``monitor/...`` too.

    Args:
        total_steps: The ``learn`` budget in env steps.
        n_points: Windows.
        task_return: Whether the env's own reward is the true task's.

    Attributes:
        windows: One record per closed window, in order.
    """

    def __init__(self, total_steps: int, n_points: int = 10, *, task_return: bool = True) -> None:
        super().__init__(total_steps, n_points)
        self.task_return = task_return
        self.windows: list[dict[str, Any]] = []
        self._normalize: VecNormalize | None = None
        self._proxy = np.zeros(0)
        self._length = np.zeros(0, dtype=np.int64)
        self._sums: dict[str, np.ndarray] = {}  # running episode sums, by component
        self._layers: list[str] | None = None
        self._clear()

    def _clear(self) -> None:
        self._episodes: dict[str, list[float]] = {"proxy_return": [], "length": []}
        self._task: list[float] = []
        self._success: list[float] = []
        self._failed: list[float] = []  # proxy returns of episodes that reported no success
        self._truncated = 0
        self._components: dict[str, list[float]] = {}

    def _on_training_start(self) -> None:
        super()._on_training_start()
        n = self.training_env.num_envs
        self._proxy, self._length = np.zeros(n), np.zeros(n, dtype=np.int64)
        self._sums, self._layers = {}, None
        # The proxy is the reward the layers returned: under a VecNormalize above them, the
        # unnormalized one; a VecNormalize below a reward layer is not the proxy's business.
        layer: VecEnv = self.training_env
        self._normalize = None
        while isinstance(layer, VecEnvWrapper) and not isinstance(layer, VecRewardLayer):
            if isinstance(layer, VecNormalize):
                self._normalize = layer
                break
            layer = layer.venv

    def _add(self, name: str, values: Any) -> None:
        acc = self._sums.get(name)
        if acc is None:
            acc = self._sums[name] = np.zeros(len(self._proxy))
        acc += values

    def _on_step(self) -> bool:
        if self._normalize is not None:
            rewards = self._normalize.get_original_reward()
        else:
            rewards = self.locals["rewards"]
        self._proxy += rewards
        self._length += 1
        infos: list[dict[str, Any]] = self.locals["infos"]
        first = infos[0]
        for key in first:
            if key.startswith(MODEL_PREFIX):
                self._add(key[len(MODEL_PREFIX) :], [i.get(key, 0.0) for i in infos])
        records = first.get(REWARD_LAYERS)
        if records is not None:
            if self._layers is None:
                self._layers = _layer_names([r[0] for r in records])
            terms = [[r[2] for r in i[REWARD_LAYERS]] for i in infos]
            for name, column in zip(self._layers, zip(*terms, strict=True), strict=True):
                self._add(name, column)
        dones = self.locals["dones"]
        if dones.any():
            for i in np.flatnonzero(dones).tolist():
                self._finish(i, infos[i])
        self._advance()
        return True

    def _finish(self, i: int, info: dict[str, Any]) -> None:
        """Record sub-env ``i``'s episode, which ended on this step, and restart its sums."""
        self._episodes["proxy_return"].append(float(self._proxy[i]))
        self._episodes["length"].append(float(self._length[i]))
        self._proxy[i], self._length[i] = 0.0, 0
        success = info.get(IS_SUCCESS)
        if success is not None:
            self._success.append(float(success))
            if not success:
                self._failed.append(self._episodes["proxy_return"][-1])
        episode = info.get("episode")
        if self.task_return and isinstance(episode, Mapping) and "r" in episode:
            self._task.append(float(episode["r"]))
        self._truncated += bool(info.get("TimeLimit.truncated", False))
        for name, acc in self._sums.items():
            self._components.setdefault(name, []).append(float(acc[i]))
            acc[i] = 0.0

    def _close_window(self) -> None:
        success = np.asarray(self._success, dtype=np.float64)
        success = success[np.isfinite(success)]
        window: dict[str, Any] = {
            "start": int(self._opened),
            "end": int(self.num_timesteps),
            "episodes": len(self._episodes["proxy_return"]),
            "truncated": self._truncated,
            "proxy_return": _moments(self._episodes["proxy_return"]),
            "proxy_return_failed": _moments(self._failed),
            "task_return": _moments(self._task),
            "length": _moments(self._episodes["length"]),
            "success": {
                "rate": float(success.mean()) if success.size else None,
                "n": int(success.size),
            },
            "components": {name: _moments(v) for name, v in self._components.items()},
        }
        for name in ("proxy_return", "task_return"):
            if window[name]["mean"] is not None:
                self.logger.record(f"monitor/{name}", window[name]["mean"])
        if window["success"]["rate"] is not None:
            self.logger.record("monitor/success", window["success"]["rate"])
        self.windows.append(window)
        self._clear()

    def _on_training_end(self) -> None:
        if self.num_timesteps > self._opened:
            self._close_window()

    def summary(self) -> dict[str, Any]:
        """``{"proxy", "task_return", "n_envs", "steps", "episodes", "windows"}``: what the
        proxy is, whether ``task_return`` was recorded, the sub-envs, the env steps the
        windows divide, the episodes recorded and the windows (see the class docstring)."""
        return {
            "proxy": PROXY,
            "task_return": self.task_return,
            "n_envs": len(self._proxy),
            "steps": int(self._span),
            "episodes": sum(w["episodes"] for w in self.windows),
            "windows": self.windows,
        }


def _layer_names(names: list[str]) -> list[str]:
    """``term/<name>`` per reward layer, innermost first; a repeated name gets ``_2``, ..."""
    out: list[str] = []
    for name in names:
        key, n = f"term/{name}", 1
        while key in out:
            n += 1
            key = f"term/{name}_{n}"
        out.append(key)
    return out


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
