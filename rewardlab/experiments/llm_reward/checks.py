"""The check a reward program passes before any training: run it on real states.

:func:`smoke_test` validates the program, then runs it in the sandbox on the states of random
rollouts of the task and of the env's scripted expert (so goal, success and terminal states are
among them), and checks what a learner would trip over: exceptions, wrong shapes (batches of 64
states, and of 1 and 2 as with one or two envs), non-finite values, nondeterminism, rewards that
depend on the other states in the batch, component names that change between calls, slowness
and a reward that is constant (no signal). Problems come back as an LLM-readable message
(:meth:`SmokeReport.message`) for a repair round.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from rewardlab.envs.core import expert_policy, get_task
from rewardlab.sandbox import (
    GuardedProgram,
    ProgramContained,
    ProgramRejected,
    RewardCallResult,
    SandboxLimits,
    validate_program,
)

__all__ = ["SmokeReport", "random_states", "smoke_test"]

LATENCY_LIMIT_MS = 50.0
"""Most milliseconds a call on a 64-row batch may take (a vector step's reward budget)."""

SMALL_BATCHES = (1, 2)
"""Batch sizes a program is also called with: training with one or two envs passes these."""

_EXPERT_MAX_STEPS = 1000
"""Backstop on an expert episode's length, for an env made without a time limit."""


def random_states(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    episodes: int = 4,
    max_steps: int = 64,
    expert_episodes: int = 2,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Every task state variable along random and expert rollouts, stacked: ``{name: (N, *shape)}``.

    Random play covers the states an untrained agent visits; it seldom reaches what the task is
    about (a door unlocked, the goal cell, the block on its target), where programs that divide
    by a distance or take a log of it return NaN. So the env's scripted expert
    (:func:`~rewardlab.envs.core.expert_policy`) also plays ``expert_episodes`` episodes to
    their end: the goal reached (and held, where success does not end the episode), a terminal
    state, or the time limit. Each episode's states include the one its last step entered (the
    terminal state, before any reset). The rows are shuffled, so any batch holds varied states.

    Args:
        env_id: A rewardlab env id.
        env_kwargs: Its keyword overrides.
        episodes: Random episodes, each cut after ``max_steps`` steps.
        max_steps: Steps per random episode at most.
        expert_episodes: Expert episodes (0: random play only).
        seed: Seeds the resets (episode ``i`` resets with ``seed + i``, the expert's follow the
            random ones), the random actions and the shuffle: equal seeds give equal states.

    Raises:
        ValueError: When a count is negative or no episode is asked for.
    """
    for name, value in (
        ("episodes", episodes),
        ("max_steps", max_steps),
        ("expert_episodes", expert_episodes),
    ):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if episodes + expert_episodes == 0:
        raise ValueError("episodes + expert_episodes must be at least 1, got 0 episodes")
    env = gym.make(env_id, **dict(env_kwargs or {}))
    task = get_task(env)
    expert = expert_policy(env)
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    rows: list[dict[str, np.ndarray]] = []

    def play(reset_seed: int, act: Callable[[Any], Any], steps: int) -> None:
        obs, _ = env.reset(seed=reset_seed)
        rows.append(task.state())
        for _ in range(steps):
            obs, _, terminated, truncated, _ = env.step(act(obs))
            rows.append(task.state())
            if terminated or truncated:
                break

    try:
        for episode in range(episodes):
            play(seed + episode, lambda obs: env.action_space.sample(), max_steps)
        for episode in range(expert_episodes):
            play(seed + episodes + episode, expert, _EXPERT_MAX_STEPS)
    finally:
        env.close()
    order = rng.permutation(len(rows))
    return {k: np.stack([rows[i][k] for i in order]) for k in rows[0]}


@dataclass
class SmokeReport:
    """The verdict of :func:`smoke_test`.

    Attributes:
        passed: No problem found.
        stage: ``"validation"``, ``"runtime"`` or ``"checks"`` where it failed, else ``"ok"``.
        reason: Short code of the first problem (``ProgramRejected``/``ProgramContained``
            reasons, or ``"nonfinite"``, ``"nondeterministic"``, ``"batch_dependent"``,
            ``"unstable_components"``, ``"slow"``, ``"constant"``). A runtime failure has the
            reason of the program's own error (``"exception"``, ``"bad_output"``, ...).
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


def _failure(exc: ProgramContained) -> tuple[str, str]:
    """Reason and message of the failure itself, not of the exception budget around it.

    With ``max_exceptions=1`` every failure reaches the caller as :class:`GuardedProgram`'s
    ``"exception_budget"``, raised from the contained failure; the LLM needs the latter.
    """
    cause = exc.__cause__
    if isinstance(cause, ProgramContained):
        return cause.reason, cause.message
    return exc.last_reason or exc.reason, exc.message


def _batch_dependence(head: RewardCallResult, small: RewardCallResult) -> str | None:
    """How ``small`` (the first rows of ``head``'s batch, alone) differs from ``head``."""
    size = len(small.reward)
    pairs = [("reward", small.reward, head.reward[:size])]
    pairs += [
        (f"component {name!r}", values, head.components[name][:size])
        for name, values in small.components.items()
        if name in head.components
    ]
    for what, alone, together in pairs:
        if not np.allclose(alone, together, rtol=1e-9, atol=1e-12):
            return (
                f"its {what} for a state depends on the other states in the batch: the first "
                f"state gets {alone[0]:.6g} in a batch of {size} and {together[0]:.6g} in a "
                f"batch of {len(head.reward)}; compute each row from its own state only (no "
                "mean, max, sum or normalization over the batch axis 0)"
            )
    return None


def smoke_test(
    source: str,
    variables: Mapping[str, tuple[int, ...]],
    states: Mapping[str, np.ndarray],
    *,
    limits: SandboxLimits | None = None,
    latency_limit_ms: float = LATENCY_LIMIT_MS,
) -> SmokeReport:
    """Validate ``source`` and run it in the sandbox on ``states`` (see the module docstring).

    The program runs on all states in batches of 64, on the first batch again (determinism,
    then latency), and on the first 1 and 2 states alone (:data:`SMALL_BATCHES`), whose rewards
    must have those shapes (the sandbox rejects any other) and equal the same rows of the first
    batch.

    Args:
        source: The program.
        variables: Declared variables and their per-env shapes.
        states: ``{name: (N, *shape)}`` real states (:func:`random_states`).
        limits: Sandbox limits.
        latency_limit_ms: Most milliseconds a call on 64 states may take.

    Raises:
        ValueError: When ``states`` holds no state.
    """
    try:
        program = validate_program(source, variables)
    except ProgramRejected as exc:
        return SmokeReport(False, "validation", exc.reason, [exc.message])
    inputs = {p: np.asarray(states[p]) for p in program.parameters}
    n = len(next(iter(inputs.values())))
    if n == 0:
        raise ValueError("states must hold at least one state, got 0 rows")
    batches = _batches(inputs, 64)
    small = [_batches(inputs, size)[0] for size in SMALL_BATCHES if size <= n]
    during = ""
    try:
        with GuardedProgram(program, limits, max_exceptions=1) as guarded:
            first = [guarded(b) for b in batches]
            stats = guarded.stats
            nonfinite, clipped = stats.nonfinite, stats.clipped
            component_nonfinite = {
                name: c.nonfinite for name, c in stats.components.items() if c.nonfinite
            }
            again = guarded(batches[0])
            alone = []
            for batch in small:
                size = len(next(iter(batch.values())))
                envs = "one env" if size == 1 else f"{size} envs"
                during = f"called with a batch of B={size} (as in training with {envs}): "
                alone.append(guarded(batch))
            during = ""
            start = time.perf_counter()
            repeats = 5
            for _ in range(repeats):
                guarded(batches[0])
            latency_ms = (time.perf_counter() - start) / repeats * 1e3
    except ProgramContained as exc:
        reason, message = _failure(exc)
        return SmokeReport(False, "runtime", reason, [during + message])

    reward = np.concatenate([r.reward for r in first])
    keys = [sorted(r.components) for r in (*first, again, *alone)]
    problems: list[str] = []
    reason = ""
    warnings: list[str] = []
    if nonfinite:
        reason = reason or "nonfinite"
        problems.append(
            f"it returned NaN or inf {nonfinite} times on {len(reward)} states (guard against "
            "division by zero, log of 0, overflow in exp; the states include goal and success "
            "states, where distances are 0)"
        )
    if component_nonfinite:
        reason = reason or "nonfinite"
        counts = ", ".join(f"{name!r} {n} times" for name, n in component_nonfinite.items())
        problems.append(
            f"its components were NaN or inf ({counts}); they are reported back to you, so "
            "keep them finite too"
        )
    if not np.array_equal(again.reward, first[0].reward):
        reason = reason or "nondeterministic"
        problems.append("it returned different rewards for the same states (no randomness)")
    dependence = [d for d in (_batch_dependence(first[0], r) for r in alone) if d]
    if dependence:
        reason = reason or "batch_dependent"
        problems.append(dependence[0])
    if any(k != keys[0] for k in keys):
        reason = reason or "unstable_components"
        others = sorted({tuple(k) for k in keys if k != keys[0]})
        problems.append(
            f"its component names change between calls ({keys[0]} vs "
            f"{', '.join(str(list(k)) for k in others)}): return the same keys every time"
        )
    if latency_ms > latency_limit_ms:
        reason = reason or "slow"
        problems.append(
            # The measured time is in latency_ms, not in this message: a message that changes
            # from run to run would make a recorded search unreplayable.
            f"it takes more than {latency_limit_ms:g} ms per call on 64 states: vectorize "
            "with numpy, no Python loops over the batch"
        )
    if float(np.std(reward)) < 1e-9:
        reason = reason or "constant"
        problems.append(
            f"its reward is the same ({reward[0]:.4g}) on all {len(reward)} states from random "
            "and expert play: it gives the agent no signal"
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
