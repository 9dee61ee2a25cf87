"""What the LLM is told after a round: reward reflection, failure analysis, human notes.

- Reward reflection (Eureka, Ma et al. 2023): the true success rate and each reward
  component's mean at about ten points of training, with its max, mean and min, so the model
  can see which terms moved, which stayed flat and which dwarfed the others.
- Failure analysis (Auto MC-Reward's trajectory analyzer, Li et al. 2023): how the trained
  policy's failed evaluation episodes ended: by the time limit or by a terminal state, how far
  they got (ground-truth progress), and which boolean state flags were set at the end.
- Human feedback: the text of an optional file, passed on verbatim.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rewardlab.envs.core import get_task
from rewardlab.envs.tasks import make

__all__ = ["EpisodeEnd", "analyze_failures", "failure_summary", "reward_reflection"]


def _series(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.3g}" for v in values) + "]"


def reward_reflection(components: Mapping[str, Mapping[str, Any]], success: Sequence[float]) -> str:
    """Eureka-style reflection from :class:`~rewardlab.agents.callbacks.RewardComponentLog`
    statistics and the evaluation success rates over training.

    Args:
        components: Name -> ``{"values": [...], "max", "mean", "min"}``; ``"reward"`` is the
            total reward the agent received.
        success: True-task success rate at each evaluation, in order.
    """
    lines = [
        "We trained a policy with your reward function. Values during training (means over "
        "equal parts of training, in order), then Max, Mean and Min:",
        f"task_success_rate: {_series(success)}, Max: {max(success, default=0):.3g}, "
        f"Mean: {float(np.mean(success)) if success else 0:.3g}, "
        f"Min: {min(success, default=0):.3g}",
    ]
    for name in sorted(components, key=lambda n: (n != "reward", n)):
        c = components[name]
        label = "total_reward" if name == "reward" else name
        lines.append(
            f"{label}: {_series(c['values'])}, Max: {c['max']:.3g}, Mean: {c['mean']:.3g}, "
            f"Min: {c['min']:.3g}"
        )
    lines += [
        "",
        "How to read this: the task success rate is what counts. If it stays near zero, the "
        "reward does not lead to the goal: rewrite it rather than tune it. A component whose "
        "values hardly change during training gives the agent nothing to learn from: rescale "
        "it, reshape it or drop it. A component much larger than the others drowns them: "
        "rescale it. Terms the agent can collect without finishing (for standing near the "
        "goal, say) invite it to stall.",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class EpisodeEnd:
    """How one evaluation episode ended.

    Attributes:
        seed: Reset seed.
        success: The task was achieved in the last state (as the true-task evaluation judges
            it: where success does not end the episode, the final state decides).
        reason: ``"success"``, ``"left_success"`` (a success state was reached, the episode
            ended elsewhere), ``"time_limit"`` or ``"terminal_failure"``.
        steps: Episode length.
        final_progress: Ground-truth progress of the last state.
        max_progress: Highest progress reached.
        flags: Boolean state variables that were True in the last state.
    """

    seed: int
    success: bool
    reason: str
    steps: int
    final_progress: float
    max_progress: float
    flags: tuple[str, ...]


def analyze_failures(
    env_id: str,
    act: Callable[[Any], Any],
    seeds: Sequence[int],
    env_kwargs: Mapping[str, Any] | None = None,
) -> list[EpisodeEnd]:
    """Run ``act(obs) -> action`` for one episode per seed and record how each ended."""
    env = make(env_id, **dict(env_kwargs or {}))
    task = get_task(env)
    flags = [v.name for v in task.state_variables if v.units == "bool" and v.shape == ()]
    out = []
    try:
        for seed in seeds:
            obs, info = env.reset(seed=seed)
            progress = [float(info["progress"])]
            reached, terminated, truncated = bool(info["is_success"]), False, False
            while not (terminated or truncated):
                obs, _, terminated, truncated, info = env.step(act(obs))
                progress.append(float(info["progress"]))
                reached = reached or bool(info["is_success"])
            state = task.state()
            success = bool(info["is_success"])
            if success:
                reason = "success"
            elif reached:
                reason = "left_success"
            else:
                reason = "terminal_failure" if terminated else "time_limit"
            out.append(
                EpisodeEnd(
                    seed=seed,
                    success=success,
                    reason=reason,
                    steps=len(progress) - 1,
                    final_progress=progress[-1],
                    max_progress=max(progress),
                    flags=tuple(f for f in flags if bool(state[f])),
                )
            )
    finally:
        env.close()
    return out


def failure_summary(ends: Sequence[EpisodeEnd]) -> str:
    """A short account of the failed episodes, for the next prompt."""
    failed = [e for e in ends if not e.success]
    if not ends:
        return "No evaluation episodes were run."
    head = f"The trained policy succeeded in {len(ends) - len(failed)} of {len(ends)} episodes."
    if not failed:
        return head
    lines = [head, "How the failed episodes ended:"]
    for reason, text in (
        ("left_success", "reached a success state but did not stay there"),
        ("time_limit", "ran out of time"),
        ("terminal_failure", "ended in a terminal state without success"),
    ):
        group = [e for e in failed if e.reason == reason]
        if not group:
            continue
        final = float(np.mean([e.final_progress for e in group]))
        best = float(np.mean([e.max_progress for e in group]))
        steps = float(np.mean([e.steps for e in group]))
        line = (
            f"- {len(group)} {text} after {steps:.0f} steps on average, with ground-truth "
            f"progress {final:.2f} at the end (best reached {best:.2f}; 1 is success)"
        )
        flags = sorted({f for e in group for f in e.flags})
        if flags:
            counts = ", ".join(f"{f} in {sum(f in e.flags for e in group)}" for f in flags)
            line += f"; set at the end: {counts}"
        lines.append(line + ".")
    stalled = [e for e in failed if e.max_progress - e.final_progress > 0.2]
    if stalled:
        lines.append(
            f"- {len(stalled)} got much closer to the goal than where they ended: the policy "
            "may be drifting away or being paid for something other than finishing."
        )
    return "\n".join(lines)
