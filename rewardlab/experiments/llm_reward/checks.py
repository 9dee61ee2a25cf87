"""The check a reward program passes before any training: run it on real states.

:func:`smoke_test` validates the program, then runs it in the sandbox, as the
:class:`~rewardlab.reward_models.program_reward.ProgramReward` training would call, on the
states of random rollouts of the task and of the env's scripted expert (so goal, success and
terminal states are among them). It checks what a learner would trip over: exceptions, wrong
shapes, non-finite values, nondeterminism (also across worker processes), rewards that depend
on the batch (its size, or the other states in it), component names that change between calls
(the sandbox's guard fails such a call), slowness and a reward that is constant (no signal).
Problems come back as an LLM-readable message (:meth:`SmokeReport.message`) for a repair
round; what was measured (time per call, the sandbox's hardening) is in the report's fields.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import numpy as np

from rewardlab.envs.core import expert_policy, get_task
from rewardlab.envs.tasks import make
from rewardlab.info_keys import STATE_PREFIX
from rewardlab.reward_models.base import RewardBatch, RewardOutput
from rewardlab.reward_models.check import (
    RewardModelCheckError,
    check_reward_model,
    first_difference,
    take_rows,
)
from rewardlab.reward_models.program_reward import ProgramReward
from rewardlab.sandbox import (
    ProgramContained,
    ProgramRejected,
    SandboxLimits,
    ValidatedProgram,
    validate_program,
)

__all__ = ["SmokeReport", "random_states", "smoke_test"]

LATENCY_LIMIT_MS = 50.0
"""Most milliseconds a call on a 64-row batch, or on the training batch, may take: the floor
of a training run's reward budget (:class:`~rewardlab.wrappers.timing.RewardBudget`)."""

ROWS_ALONE = 2
"""States of the first batch also called alone (a call costs a round trip to the sandbox)."""

TIMED_CALLS = 5
"""Calls timed at each size (after one untimed call); the median is reported."""

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
    env = make(env_id, **dict(env_kwargs or {}))
    task = get_task(env)
    if "expert" not in task.features():  # another env's task may have none: random play
        expert_episodes = 0
        episodes = max(episodes, 1)
    expert = expert_policy(env) if expert_episodes else None
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
            assert expert is not None
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
            ``"slow"``, ``"constant"``). A runtime failure has the reason of the program's own
            error (``"exception"``, ``"bad_output"``: component names that change between
            calls among them, ...).
        problems: LLM-readable descriptions of every problem.
        warnings: Things worth knowing that do not fail the check.
        latency_ms: Median milliseconds per call on a 64-row batch.
        reward_stats: Min, mean, max and std of the reward over the states.
        components: Component names.
        n_envs: The training batch size it was checked at (None: not given).
        train_ms_per_call: Median milliseconds per call on a batch of ``n_envs`` rows.
        train_us_per_row: The same per row, in microseconds: what each env adds to a
            vector step in training.
        hardening: The layers the sandbox worker applied to itself
            (:attr:`~rewardlab.sandbox.SandboxWorker.hardening`; empty when no worker ran).
    """

    passed: bool
    stage: str
    reason: str = ""
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    latency_ms: float | None = None
    reward_stats: dict[str, float] = field(default_factory=dict)
    components: list[str] = field(default_factory=list)
    n_envs: int | None = None
    train_ms_per_call: float | None = None
    train_us_per_row: float | None = None
    hardening: list[str] = field(default_factory=list)

    def message(self) -> str:
        """The problems as a message to the LLM, asking for a corrected program.

        It holds no measured time: a message that changed from run to run would make a
        recorded search unreplayable (its requests would differ).
        """
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

    def cost(self) -> str:
        """The measured cost at the training batch size, in one line ('' when not measured)."""
        if self.n_envs is None or self.train_ms_per_call is None:
            return ""
        envs = "1 env" if self.n_envs == 1 else f"{self.n_envs} envs"
        per_row = self.train_ms_per_call / self.n_envs
        return (
            f"cost at the training batch size ({envs}): {_duration(self.train_ms_per_call)} "
            f"per call, {_duration(per_row)} per row"
        )


def _duration(ms: float) -> str:
    """Milliseconds in words: ``"2.5 ms"``, or ``"40 us"`` below a millisecond."""
    return f"{ms:.3g} ms" if ms >= 1 else f"{ms * 1e3:.3g} us"


def _failure(exc: ProgramContained) -> tuple[str, str]:
    """Reason and message of the failure itself, not of the exception budget around it.

    With ``max_exceptions=1`` every failure reaches the caller as :class:`GuardedProgram`'s
    ``"exception_budget"``, raised from the contained failure; the LLM needs the latter.
    """
    cause = exc.__cause__
    if isinstance(cause, ProgramContained):
        return cause.reason, cause.message
    return exc.last_reason or exc.reason, exc.message


def _called_with(size: int) -> str:
    """What a message about a call on ``size`` states starts with."""
    envs = "one env" if size == 1 else f"{size} envs"
    return f"called with a batch of B={size} (as in training with {envs}): "


def _training_rows(n: int, n_envs: int) -> list[np.ndarray]:
    """State indices of full batches of ``n_envs`` rows covering all ``n`` states (the last
    batch, and a batch larger than ``n``, wrap around to the first states)."""
    return list((np.arange(-(-n // n_envs) * n_envs) % n).reshape(-1, n_envs))


def _timed(model: ProgramReward, batch: RewardBatch, times: list[float]) -> RewardOutput:
    start = perf_counter()
    result = model(batch)
    times.append(perf_counter() - start)
    return result


# Values near the float64 limit overflow the guard's and this check's sums: expected here,
# and not worth a warning on the terminal.
@np.errstate(over="ignore", invalid="ignore")
def smoke_test(
    source: str | ValidatedProgram,
    variables: Mapping[str, tuple[int, ...]],
    states: Mapping[str, np.ndarray],
    *,
    n_envs: int | None = None,
    limits: SandboxLimits | None = None,
    latency_limit_ms: float = LATENCY_LIMIT_MS,
) -> SmokeReport:
    """Validate ``source`` and run it in the sandbox on ``states`` (see the module docstring).

    In one worker the program runs on all states in batches of 64, through
    :func:`~rewardlab.reward_models.check.check_reward_model` on the first batch (again, its
    first :data:`ROWS_ALONE` states alone, reversed; its components need not sum to the
    reward), and, with ``n_envs``, on all states in batches of ``n_envs`` (the batch a
    training run with that many envs calls it with; a program found too slow there stops
    after :data:`TIMED_CALLS` + 1 calls). Every output must have its batch's shape (the
    sandbox rejects any other) and equal the same state's in the batches of 64. A second,
    separate worker process then runs the batches of 64 again: a reward is a function of the
    state alone, so its outputs must be the same. Calls on 64 states and on ``n_envs`` states
    are timed (median of :data:`TIMED_CALLS`, after one untimed call).

    Args:
        source: The program's source (validated here), or a program already validated.
        variables: Declared variables and their per-env shapes.
        states: ``{name: (N, *shape)}`` real states (:func:`random_states`).
        n_envs: The training batch size: sub-envs of the vector env the program will reward
            (None: check only the sizes above).
        limits: Sandbox limits.
        latency_limit_ms: Most milliseconds a call on 64 states, or on ``n_envs`` states,
            may take.

    Raises:
        ValueError: When ``states`` holds no state, or ``n_envs`` is below 1.
    """
    if n_envs is not None and n_envs < 1:
        raise ValueError(f"n_envs must be >= 1, got {n_envs}")
    if isinstance(source, ValidatedProgram):
        program = source
    else:
        try:
            program = validate_program(source, variables)
        except ProgramRejected as exc:
            return SmokeReport(False, "validation", exc.reason, [exc.message])
    inputs = {STATE_PREFIX + p: np.asarray(states[p]) for p in program.parameters}
    n = len(next(iter(inputs.values())))
    if n == 0:
        raise ValueError("states must hold at least one state, got 0 rows")
    empty = np.zeros((n, 0))
    everything = RewardBatch(empty, empty, empty, np.zeros(n, dtype=bool), info=inputs)
    batches = [take_rows(everything, np.arange(i, min(i + 64, n))) for i in range(0, n, 64)]
    training = _training_rows(n, n_envs) if n_envs is not None else []
    during = ""
    hardening: list[str] = []
    latency: list[float] = []
    train_times: list[float] = []
    checked: RewardModelCheckError | None = None
    try:
        with closing(ProgramReward(program, limits=limits, max_exceptions=1)) as model:
            if model.guarded.worker is not None:
                hardening = list(model.guarded.worker.hardening)
            first = [model(b) for b in batches]
            stats = model.guarded.stats
            nonfinite, clipped = stats.nonfinite, stats.clipped
            component_nonfinite = {
                name: c.nonfinite for name, c in stats.components.items() if c.nonfinite
            }
            try:
                check_reward_model(model, batches[0], components_sum=False, rows_alone=ROWS_ALONE)
            except RewardModelCheckError as exc:
                if not isinstance(exc.__cause__, ProgramContained):
                    checked = exc
                else:  # the program failed: a runtime failure, reported as such below
                    size = exc.batch_size or 0
                    during = "" if size == len(batches[0]) else _called_with(size)
                    raise exc.__cause__  # noqa: B904  (its own cause is the program's error)
            at_training: list[tuple[RewardOutput, np.ndarray]] = []
            if n_envs is not None:
                during = _called_with(n_envs)
                for rows in training:
                    at_training.append(
                        (_timed(model, take_rows(everything, rows), train_times), rows)
                    )
                    if (
                        len(train_times) > TIMED_CALLS
                        and statistics.median(train_times[1:]) * 1e3 > latency_limit_ms
                    ):
                        break  # too slow already: with one env, every state is one call
                first_batch = take_rows(everything, training[0])
                while len(train_times) < TIMED_CALLS + 1:
                    _timed(model, first_batch, train_times)
            during = ""
            for _ in range(TIMED_CALLS):
                _timed(model, batches[0], latency)
            # A second process, alive beside the first (so not the first's process id
            # reused): what differs between processes must not reach the reward.
            during = "run again in a second, separate worker process: "
            with closing(ProgramReward(program, limits=limits, max_exceptions=1)) as other:
                second = [other(b) for b in batches]
            during = ""
    except ProgramContained as exc:
        reason, message = _failure(exc)
        return SmokeReport(False, "runtime", reason, [during + message], hardening=hardening)

    # One set of names: the guard fixes it at the first call and fails any call that changes it.
    names = sorted(first[0].components)
    reward = np.concatenate([r.reward for r in first])
    full = RewardOutput(
        reward, {k: np.concatenate([r.components[k] for r in first]) for k in names}
    )
    latency_ms = statistics.median(latency) * 1e3
    # The first call at the training size is its warm-up (a new input layout).
    train_ms = statistics.median(train_times[1:]) * 1e3 if train_times else None

    def verdict(reason: str, problems: list[str], **more: Any) -> SmokeReport:
        return SmokeReport(
            passed=not problems,
            stage="checks" if problems else "ok",
            reason=reason,
            problems=problems,
            latency_ms=latency_ms,
            n_envs=n_envs,
            train_ms_per_call=train_ms,
            train_us_per_row=None
            if train_ms is None or n_envs is None
            else train_ms * 1e3 / n_envs,
            hardening=hardening,
            **more,
        )

    # Nondeterminism first, and alone, in words of its own: the values a nondeterministic
    # program returns change from run to run, and so would any message quoting them (a
    # recorded search must replay).
    if checked is not None and checked.reason == "nondeterministic":
        return verdict(
            "nondeterministic",
            ["it returned different rewards for the same states (no randomness)"],
        )
    if any(
        sorted(b.components) != sorted(a.components) or first_difference(b, a) is not None
        for a, b in zip(first, second, strict=True)
    ):
        return verdict(
            "nondeterministic",
            [
                "it returned different rewards for the same states in two separate processes: "
                "a reward must be a function of the state alone (no randomness, no clock, "
                "nothing that differs from one process to another, such as the address of an "
                "object in memory)"
            ],
        )
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
    if checked is not None:  # each state alone, or reversed, differs from the batch of 64
        reason = reason or checked.reason
        problems.append(str(checked))
    elif dependence := _batch_dependence(full, at_training, n_envs):
        reason = reason or "batch_dependent"
        problems.append(dependence)
    # The measured times are in the report's fields, not in these messages: a message that
    # changes from run to run would make a recorded search unreplayable.
    if latency_ms > latency_limit_ms:
        reason = reason or "slow"
        problems.append(
            f"it takes more than {latency_limit_ms:g} ms per call on 64 states: vectorize "
            "with numpy, no Python loops over the batch"
        )
    if train_ms is not None and train_ms > latency_limit_ms:
        reason = reason or "slow"
        problems.append(
            f"it takes more than {latency_limit_ms:g} ms per call on {n_envs} states, the "
            f"batch of a training run with {n_envs} envs, where it would slow training down: "
            "vectorize with numpy, no Python loops over the batch"
        )
    if float(np.std(reward)) < 1e-9:
        reason = reason or "constant"
        problems.append(
            f"its reward is the same ({reward[0]:.4g}) on all {len(reward)} states from random "
            "and expert play: it gives the agent no signal"
        )
    if clipped:
        warnings.append(f"{clipped} values were clipped to the guard's range")
    for name in names:
        # np.ptp, not np.std, which overflows near 1.7e308.
        if float(np.ptp(full.components[name])) < 1e-12:
            warnings.append(f"component {name!r} is constant on these states")
    return verdict(
        reason,
        problems,
        warnings=warnings,
        reward_stats={
            stat: float(getattr(reward, stat)()) for stat in ("min", "mean", "max", "std")
        },
        components=names,
    )


def _batch_dependence(
    full: RewardOutput, calls: Sequence[tuple[RewardOutput, np.ndarray]], n_envs: int | None
) -> str | None:
    """How a call on ``n_envs`` states (``rows`` of ``full``) differs from the batches of 64."""
    for result, rows in calls:
        found = first_difference(result, full, rows)
        if found is None:
            continue
        state = int(rows[found.row])
        size = len(result.reward)
        together = min(64, len(full.reward) - state // 64 * 64)
        return (
            f"its {found.what} for a state depends on the batch it is in: a state gets "
            f"{found.value:.6g} in a batch of {size} and {found.expected:.6g} in a batch of "
            f"{together} (training with {n_envs} envs calls it on batches of {n_envs}); "
            "compute each row from its own state only, nothing that depends on the batch size "
            "or on the other states (no mean, max, sum or normalization over the batch axis 0)"
        )
    return None
