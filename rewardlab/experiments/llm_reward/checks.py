"""The check a reward program passes before any training: run it on real states.

:func:`smoke_test` validates the program, then runs it in the sandbox on the states of random
rollouts of the task and checks what a learner would trip over: exceptions, wrong shapes,
non-finite values, nondeterminism, component names that change between calls, slowness and a
reward that is constant (no signal). Problems come back as an LLM-readable message
(:meth:`SmokeReport.message`) for a repair round.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from rewardlab.envs.core import get_task
from rewardlab.reward_models.program import ProgramRejected, validate_program
from rewardlab.reward_models.sandbox import GuardedProgram, ProgramContained, SandboxLimits

__all__ = ["SmokeReport", "random_states", "smoke_test"]

LATENCY_LIMIT_MS = 50.0
"""Most milliseconds a call on a 64-row batch may take (a vector step's reward budget)."""


def random_states(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    episodes: int = 4,
    max_steps: int = 64,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Every task state variable along random rollouts, stacked: ``{name: (N, *shape)}``."""
    env = gym.make(env_id, **dict(env_kwargs or {}))
    task = get_task(env)
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    rows: list[dict[str, np.ndarray]] = []
    try:
        for episode in range(episodes):
            env.reset(seed=seed + episode)
            rows.append(task.state())
            for _ in range(max_steps):
                action = env.action_space.sample()
                _, _, terminated, truncated, _ = env.step(action)
                rows.append(task.state())
                if terminated or truncated:
                    break
    finally:
        env.close()
    order = rng.permutation(len(rows))  # mix episodes so any batch holds varied states
    return {k: np.stack([rows[i][k] for i in order]) for k in rows[0]}


@dataclass
class SmokeReport:
    """The verdict of :func:`smoke_test`.

    Attributes:
        passed: No problem found.
        stage: ``"validation"``, ``"runtime"`` or ``"checks"`` where it failed, else ``"ok"``.
        reason: Short code of the first problem (``ProgramRejected``/``ProgramContained``
            reasons, or ``"nonfinite"``, ``"nondeterministic"``, ``"unstable_components"``,
            ``"slow"``, ``"constant"``).
        problems: LLM-readable descriptions of every problem.
        warnings: Things worth knowing that do not fail the check.
        latency_ms: Milliseconds per call on a 64-row batch.
        reward_stats: Min, mean, max and std of the reward over the states.
        components: Component names.
    """

    passed: bool
    stage: str
    reason: str = ""
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    latency_ms: float | None = None
    reward_stats: dict[str, float] = field(default_factory=dict)
    components: list[str] = field(default_factory=list)

    def message(self) -> str:
        """The problems as a message to the LLM, asking for a corrected program."""
        if self.passed:
            return "The program passed the pre-training check."
        lines = [f"Your reward program failed the check before training ({self.stage}):"]
        lines += [f"- {p}" for p in self.problems]
        lines.append(
            "Fix these and answer with the whole corrected program in one ```python block."
        )
        return "\n".join(lines)

    def summary(self) -> str:
        """One line for a terminal."""
        if not self.passed:
            return f"REJECTED ({self.stage}: {self.reason}): " + "; ".join(self.problems)
        stats = self.reward_stats
        return (
            f"passed: reward in [{stats['min']:.3g}, {stats['max']:.3g}] (mean "
            f"{stats['mean']:.3g}, std {stats['std']:.3g}), components {self.components}, "
            f"{self.latency_ms:.2f} ms per 64-row call"
        )


def _batches(states: Mapping[str, np.ndarray], size: int) -> list[dict[str, np.ndarray]]:
    n = len(next(iter(states.values())))
    return [{k: v[i : i + size] for k, v in states.items()} for i in range(0, n, size)]


def smoke_test(
    source: str,
    variables: Mapping[str, tuple[int, ...]],
    states: Mapping[str, np.ndarray],
    *,
    limits: SandboxLimits | None = None,
) -> SmokeReport:
    """Validate ``source`` and run it in the sandbox on ``states`` (see the module docstring).

    Args:
        source: The program.
        variables: Declared variables and their per-env shapes.
        states: ``{name: (N, *shape)}`` real states (:func:`random_states`).
        limits: Sandbox limits.
    """
    try:
        program = validate_program(source, variables)
    except ProgramRejected as exc:
        return SmokeReport(False, "validation", exc.reason, [exc.message])
    inputs = {p: np.asarray(states[p]) for p in program.parameters}
    batches = _batches(inputs, 64)
    problems: list[str] = []
    reason = ""
    try:
        with GuardedProgram(program, limits, max_exceptions=1) as guarded:
            first = [guarded(b) for b in batches]
            nonfinite, clipped = guarded.stats.nonfinite, guarded.stats.clipped
            again = guarded(batches[0])
            start = time.perf_counter()
            repeats = 5
            for _ in range(repeats):
                guarded(batches[0])
            latency_ms = (time.perf_counter() - start) / repeats * 1e3
    except ProgramContained as exc:
        return SmokeReport(False, "runtime", exc.last_reason or exc.reason, [exc.message])

    reward = np.concatenate([r.reward for r in first])
    keys = [sorted(r.components) for r in first]
    warnings: list[str] = []
    if nonfinite:
        reason = reason or "nonfinite"
        problems.append(
            f"it returned NaN or inf {nonfinite} times on {len(reward)} states (guard against "
            "division by zero, log of 0, overflow in exp)"
        )
    if not np.array_equal(again.reward, first[0].reward):
        reason = reason or "nondeterministic"
        problems.append("it returned different rewards for the same states (no randomness)")
    if any(k != keys[0] for k in keys):
        reason = reason or "unstable_components"
        problems.append(
            f"its component names change between calls ({keys[0]} vs others): return the "
            "same keys every time"
        )
    if latency_ms > LATENCY_LIMIT_MS:
        reason = reason or "slow"
        problems.append(
            f"it takes {latency_ms:.1f} ms per call on 64 states (limit {LATENCY_LIMIT_MS} ms): "
            "vectorize with numpy, no Python loops over the batch"
        )
    if float(np.std(reward)) < 1e-9:
        reason = reason or "constant"
        problems.append(
            f"its reward is the same ({reward[0]:.4g}) on all {len(reward)} states from random "
            "play: it gives the agent no signal"
        )
    if clipped:
        warnings.append(f"{clipped} values were clipped to the guard's range")
    for name in keys[0]:
        values = np.concatenate([r.components[name] for r in first])
        if float(np.std(values)) < 1e-12:
            warnings.append(f"component {name!r} is constant on these states")
    return SmokeReport(
        passed=not problems,
        stage="checks" if problems else "ok",
        reason=reason,
        problems=problems,
        warnings=warnings,
        latency_ms=latency_ms,
        reward_stats={
            "min": float(reward.min()),
            "mean": float(reward.mean()),
            "max": float(reward.max()),
            "std": float(reward.std()),
        },
        components=keys[0],
    )
