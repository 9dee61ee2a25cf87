"""Expose a task's state variables in the step info, for rewards written against them."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from rewardlab.envs.core import get_task
from rewardlab.info_keys import STATE_PREFIX
from rewardlab.wrappers.frames import _Capture

__all__ = ["STATE_PREFIX", "CaptureState", "state_keys"]


def state_keys(needs_info: tuple[str, ...]) -> tuple[str, ...]:
    """The state-variable names among a reward model's ``needs_info`` keys."""
    return tuple(k.removeprefix(STATE_PREFIX) for k in needs_info if k.startswith(STATE_PREFIX))


class CaptureState(_Capture):
    """Puts every task state variable of the state entered into ``info["state/<name>"]``.

    Read inside the env's own ``step``, like
    :class:`~rewardlab.wrappers.frames.CaptureFrames`, so a vector env's auto-reset cannot
    replace the last state of an episode. Reward models ask for a variable by listing
    ``"state/<name>"`` in ``needs_info`` (LLM-written reward programs do);
    :func:`rewardlab.make_vec_env` then adds this wrapper. Privileged variables (the policy does
    not observe them) are included: a reward may read them, a policy never does.

    Args:
        env: A rewardlab env (any wrappers).
        names: The variables to expose; None for all of the task's.

    Raises:
        ValueError: For a name the task does not declare, listing the declared ones.

    Example:
        >>> import gymnasium as gym
        >>> import rewardlab
        >>> env = CaptureState(gym.make("rewardlab/GridEmpty-v0"), names=["agent_pos"])
        >>> obs, info = env.reset(seed=0)
        >>> info["state/agent_pos"]
        array([1, 1])
    """

    def __init__(self, env: gym.Env[Any, Any], names: tuple[str, ...] | None = None) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, names=names)
        gym.Wrapper.__init__(self, env)
        self._task = get_task(env)
        declared = [v.name for v in self._task.state_variables]
        unknown = sorted(set(names or ()) - set(declared))
        if unknown:
            raise ValueError(f"unknown state variable(s) {unknown}; the task declares {declared}")
        self._names = tuple(names) if names is not None else tuple(declared)

    def _add(self, info: dict[str, Any]) -> dict[str, Any]:
        state = self._task.state()
        info.update({STATE_PREFIX + name: state[name] for name in self._names})
        return info
