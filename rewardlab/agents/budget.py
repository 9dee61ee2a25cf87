"""A training run's time budget for its reward programs.

A reward program runs once per vector step, in its sandbox worker, on every sub-env's state.
One written with a Python loop over the rows can cost many times the env step, only at the
training batch size, and slow training down without failing. :class:`RewardCostCheck` (an
SB3 callback) reads what each reward layer measured
(:class:`~rewardlab.wrappers.timing.StepTimes`: medians over windows of vector steps, after a
warm-up) and, when a program's call costs more than :meth:`RewardBudget.limit_ms`, stops
training with :class:`RewardTooSlow` or, with ``on_exceed="warn"``, records a warning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from rewardlab.reward_models.program_reward import ProgramReward
from rewardlab.sandbox import ProgramContained
from rewardlab.wrappers.timing import StepTimes

__all__ = ["RewardBudget", "RewardCost", "RewardCostCheck", "RewardTooSlow"]

WARN_HINT = "--slow-reward warn"
"""How the command line switches the budget to a warning (``rewardlab train``)."""


class RewardBudget(BaseModel):
    """How much time a reward program may take per vector step in training.

    The limit of one call (all sub-envs' rows at once) is ``max(multiple * env step,
    min_ms)``: the env step is the vector env's step measured the same way in the same run,
    and the floor keeps cheap envs (a gridworld steps in microseconds) from failing every
    sandboxed program, whose call alone costs ~0.1-0.2 ms.

    Attributes:
        multiple: Most times the env step a call may cost.
        min_ms: A call may always take this many milliseconds.
        on_exceed: ``"error"`` stops training with :class:`RewardTooSlow`; ``"warn"`` lets it
            finish and reports the cost (:attr:`RewardCostCheck.warnings`).
        warmup: Vector steps not measured at the start (a new worker's first calls).
        window: Vector steps per measurement: each judges the medians of one window.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    multiple: float = Field(default=10.0, gt=0.0)
    min_ms: float = Field(default=50.0, ge=0.0)
    on_exceed: Literal["error", "warn"] = "error"
    warmup: int = Field(default=16, ge=0)
    window: int = Field(default=64, ge=1)

    def limit_ms(self, env_step_ms: float) -> float:
        """Most milliseconds one call may take, when the env step takes ``env_step_ms``.

        Example:
            >>> budget = RewardBudget()
            >>> budget.limit_ms(0.2), budget.limit_ms(8.0)
            (50.0, 80.0)
        """
        return max(self.multiple * env_step_ms, self.min_ms)


@dataclass(frozen=True)
class RewardCost:
    """One window's measurement of a reward program's cost in training.

    Attributes:
        program: How the program is named to the user (its file, or ``"given as source"``).
        role: ``"reward"`` or ``"potential"``: the layer it pays through.
        n_envs: Rows per call (the vector env's sub-envs).
        call_ms: Median milliseconds of one call.
        env_step_ms: Median milliseconds of the vector env's step over the same steps.
        limit_ms: The budget's limit for this env step.
        multiple: The budget's multiple.
        min_ms: The budget's floor.
    """

    program: str
    role: str
    n_envs: int
    call_ms: float
    env_step_ms: float
    limit_ms: float
    multiple: float
    min_ms: float

    @property
    def exceeded(self) -> bool:
        """True when the call costs more than the limit."""
        return self.call_ms > self.limit_ms

    def describe(self) -> str:
        """The measurement and the limit, for the user.

        Example:
            >>> cost = RewardCost("my_reward.py", "reward", 8, 212.0, 5.3, 53.0, 10.0, 50.0)
            >>> print(cost.describe())
            reward program my_reward.py costs 212 ms per call at 8 envs (26.5 ms per row), \
40x the env step (5.3 ms); the limit is 53 ms per call (10x the env step, at least 50 ms)
        """
        ratio = self.call_ms / self.env_step_ms if self.env_step_ms > 0 else math.inf
        envs = "1 env" if self.n_envs == 1 else f"{self.n_envs} envs"
        return (
            f"{self.role} program {self.program} costs {_ms(self.call_ms)} per call at {envs} "
            f"({_ms(self.call_ms / self.n_envs)} per row), {ratio:.0f}x the env step "
            f"({_ms(self.env_step_ms)}); the limit is {_ms(self.limit_ms)} per call "
            f"({self.multiple:g}x the env step, at least {self.min_ms:g} ms)"
        )


def _ms(value: float) -> str:
    return f"{value:.3g} ms"


class RewardTooSlow(ProgramContained):
    """A reward program cost more than its time budget in training (reason ``"slow"``).

    :attr:`message` is what the program's author (the LLM, in a search) is told; it holds no
    measured time, so that it is the same from run to run (a recorded search replays the same
    requests). The measurement is in :attr:`cost`, and ``str()`` of the error, which is what
    a failed run records, gives both.

    Args:
        cost: The measurement that exceeded the budget.
    """

    def __init__(self, cost: RewardCost) -> None:
        envs = "one env" if cost.n_envs == 1 else f"{cost.n_envs} envs"
        super().__init__(
            "slow",
            f"compute_reward costs more per call than training allows (with {envs}: more "
            f"than {cost.multiple:g}x the env step and more than {cost.min_ms:g} ms per "
            "call); vectorize it with numpy over the batch axis 0, no Python loops over the "
            "rows",
        )
        self.cost = cost

    @property
    def report(self) -> str:
        """The measurement, the limit and how to go on, for the user."""
        return (
            f"{self.cost.describe()}. Vectorize it (numpy over the batch axis 0, no Python "
            f"loops over the rows), or pass {WARN_HINT} (reward_budget: {{on_exceed: warn}} "
            "in a training config) to only warn"
        )

    def __str__(self) -> str:
        return f"{self.reason}: {self.report}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Raised in a process pool's or Ray's worker, it is pickled back to the parent.
        return (type(self), (self.cost,))


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
        self._layers, self._env_times = _program_layers(self.training_env)
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


def _program_layers(venv: VecEnv) -> tuple[list[tuple[str, StepTimes]], StepTimes | None]:
    """The timed layers over ``venv`` that run a reward program, as ``(role, times)``,
    outermost first; and the innermost timed layer's times (whose inner step is the envs')."""
    from rewardlab.wrappers.vec import VecModelReward, _VecPotentialLayer

    programs: list[tuple[str, StepTimes]] = []
    innermost: StepTimes | None = None
    layer: VecEnv = venv
    while isinstance(layer, VecEnvWrapper):
        model: object = None
        role = ""
        if isinstance(layer, VecModelReward):
            role, model = "reward", layer.model
        elif isinstance(layer, _VecPotentialLayer):
            role, model = "potential", layer.potential
        times = getattr(layer, "times", None)
        if isinstance(times, StepTimes):
            innermost = times
            if isinstance(model, ProgramReward):
                programs.append((role, times))
        layer = layer.venv
    return programs, innermost
