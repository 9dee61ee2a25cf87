"""A reward program (LLM-written or by hand) as a batched reward model, run in the sandbox.

The program's ``compute_reward(<state variables>)`` is called once per vector step on the
variables of the states entered: the model lists them as ``"state/<name>"`` in
``needs_info``, so :func:`rewardlab.make_vec_env` adds
:class:`~rewardlab.wrappers.state.CaptureState` to every sub-env. The program runs in a
:class:`~rewardlab.sandbox.GuardedProgram` (separate process, resource limits,
timeouts, non-finite values replaced and counted, clipping, an exception budget).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import Any

import numpy as np

from rewardlab.info_keys import STATE_PREFIX
from rewardlab.reward_models.base import RewardBatch, RewardModel, RewardOutput
from rewardlab.sandbox import (
    GuardedProgram,
    ProgramContained,
    SandboxLimits,
    ValidatedProgram,
    validate_program,
)

__all__ = ["ProgramReward", "corrections", "reference_program"]


def corrections(diagnostics: Mapping[str, Any]) -> dict[str, int]:
    """What a program's sandbox had to correct, from :meth:`ProgramReward.diagnostics`: the
    non-zero counts of ``"nonfinite"`` rewards replaced, rewards ``"clipped"`` and
    ``"failed_calls"`` absorbed (empty when it corrected nothing)."""
    failures = diagnostics.get("failures") or {}
    counts = {
        "nonfinite": diagnostics.get("nonfinite") or 0,
        "clipped": diagnostics.get("clipped") or 0,
        "failed_calls": sum(failures.values()),
    }
    return {name: int(n) for name, n in counts.items() if n}


def reference_program(task_name: str) -> str:
    """The source of the shipped reference program of a task (``rewardlab/assets/
    reward_programs/<task>.py``), e.g. ``"push"``.

    Raises:
        FileNotFoundError: Naming the tasks that have one.
    """
    folder = resources.files("rewardlab.assets") / "reward_programs"
    path = folder / f"{task_name}.py"
    if not path.is_file():
        have = sorted(
            p.name.removesuffix(".py") for p in folder.iterdir() if p.name.endswith(".py")
        )
        raise FileNotFoundError(
            f"no reference reward program for task {task_name!r}; there are {have}"
        )
    return path.read_text()


class ProgramReward(RewardModel):
    """Rewards from a validated reward program, on the state variables of ``s'``.

    Args:
        program: A :class:`~rewardlab.sandbox.validation.ValidatedProgram`, or its source
            with ``variables`` to validate it against.
        variables: Declared state variables (name -> per-env shape) when ``program`` is a
            source.
        limits: Sandbox limits.
        clip: Bounds of the reward.
        max_exceptions: Failed calls after which training stops with the reason.

    The components the program returns are passed on (``info["reward_model/<name>"]``); a
    program's components need not sum to its reward (check it with
    ``check_reward_model(model, batch, components_sum=False)``).
    """

    def __init__(
        self,
        program: ValidatedProgram | str,
        variables: dict[str, tuple[int, ...]] | None = None,
        *,
        limits: SandboxLimits | None = None,
        clip: tuple[float, float] | None = (-100.0, 100.0),
        max_exceptions: int = 3,
    ) -> None:
        if isinstance(program, str):
            if variables is None:
                raise TypeError("a program given as source needs its declared variables")
            program = validate_program(program, variables)
        self.program = program
        self.needs_info = tuple(STATE_PREFIX + p for p in program.parameters)
        self._guard_args = (limits, clip, max_exceptions)
        self.guarded = GuardedProgram(program, limits, clip=clip, max_exceptions=max_exceptions)

    def values(self, states: dict[str, Any], batch_size: int = 4096) -> np.ndarray:
        """Rewards of many states at once: ``states`` maps names to ``(N, *shape)`` arrays.

        Raises:
            ProgramContained: When a chunk fails. Unlike a training step, where a failed call
                pays the fallback reward while the exception budget lasts, a judged reward
                must not have fallback values mixed into its scores.
        """
        n = len(next(iter(states.values())))
        out = np.empty(n)
        for i in range(0, n, batch_size):
            chunk = {p: np.asarray(states[p][i : i + batch_size]) for p in self.program.parameters}
            result = self.guarded(chunk)
            if result.error is not None:
                reason, _, message = result.error.partition(": ")
                last = i + len(result.reward) - 1
                raise ProgramContained(reason, f"on states {i}..{last}: {message}")
            out[i : i + batch_size] = result.reward
        return out

    def __call__(self, batch: RewardBatch) -> RewardOutput:
        """The program's reward of every row's ``s'``, with its components."""
        variables = {p: batch.info[STATE_PREFIX + p] for p in self.program.parameters}
        result = self.guarded(variables)
        return RewardOutput(reward=result.reward, components=dict(result.components))

    def diagnostics(self) -> dict[str, Any]:
        """The program's ``sha256`` and the sandbox's record: successful and failed calls (by
        reason, with the last error), non-finite values replaced, rewards clipped, worker
        restarts, and running statistics of the reward and each component."""
        return {"sha256": self.program.sha256, **self.guarded.stats.snapshot()}

    def close(self) -> None:
        """Stop the sandbox worker."""
        self.guarded.close()

    def __getstate__(self) -> dict[str, Any]:
        # A worker process cannot be pickled: a copy (SubprocVecEnv, a spawned runner)
        # starts its own.
        return {k: v for k, v in self.__dict__.items() if k != "guarded"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        limits, clip, budget = self._guard_args
        self.guarded = GuardedProgram(self.program, limits, clip=clip, max_exceptions=budget)
