"""``make_vec``: an SB3 vector env of a task with a learned reward and/or shaping on top."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from rewardlab.reward_models.base import RewardModel
from rewardlab.wrappers.frames import CaptureFrames
from rewardlab.wrappers.reward import RewardMode
from rewardlab.wrappers.shaping import Potential
from rewardlab.wrappers.state import CaptureState, state_keys
from rewardlab.wrappers.vec import VecModelReward, VecPotentialShaping

__all__ = ["make_vec"]


def _make_one(
    env_id: str, env_kwargs: dict[str, Any], capture_frames: bool, state: tuple[str, ...]
) -> gym.Env[Any, Any]:
    # Module-level (picklable) so SubprocVecEnv can use it with any start method.
    import rewardlab  # noqa: F401  (registers the ids in a spawned process)

    env: gym.Env[Any, Any] = Monitor(gym.make(env_id, **env_kwargs))
    if capture_frames:
        env = CaptureFrames(env)
    if state:
        env = CaptureState(env, names=state)
    return env


def _check_env_id(env_id: str) -> None:
    import rewardlab  # noqa: F401

    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(
            f"unknown env id {env_id!r}.{hint} List the valid rewardlab ids with "
            "`rewardlab envs` (or rewardlab.env_ids())"
        )


def make_vec(
    env_id: str,
    n_envs: int = 1,
    reward: RewardModel | None = None,
    shaping: Potential | None = None,
    seed: int = 0,
    vec_env_cls: type[VecEnv] = DummyVecEnv,
    gamma: float = 0.99,
    env_kwargs: dict[str, Any] | None = None,
    capture_frames: bool | None = None,
    reward_mode: RewardMode = "replace",
    vec_env_kwargs: dict[str, Any] | None = None,
    capture_state: Sequence[str] = (),
) -> VecEnv:
    """Build ``n_envs`` copies of a task as an SB3 vector env, with reward layers on top.

    Layers, innermost first: ``gym.make(env_id)`` (with its registered time limit), SB3
    ``Monitor`` (so ``rollout/ep_rew_mean`` is the TRUE task return, never the learned or
    shaped one), :class:`~rewardlab.wrappers.frames.CaptureFrames` when frames are needed,
    :class:`~rewardlab.wrappers.state.CaptureState` when a model reads state variables
    (``"state/<name>"`` in its ``needs_info``), ``vec_env_cls``,
    :class:`~rewardlab.wrappers.vec.VecModelReward` if ``reward`` is given,
    :class:`~rewardlab.wrappers.vec.VecPotentialShaping` if ``shaping`` is given. Sub-env
    ``i`` is seeded with ``seed + i`` at the first ``reset()``. (An SB3 algorithm built with
    ``seed=s`` re-seeds them with ``s + i``; ``rewardlab.agents.train`` re-seeds after it.)

    Args:
        env_id: A registered id, e.g. ``"rewardlab/GridKeyDoor-v0"``.
        n_envs: Number of sub-envs.
        reward: A reward model replacing (or, with ``reward_mode="add"``, added to) the env's.
        shaping: A potential for policy-invariant shaping: ``"progress"``, a callable
            ``(B, *obs_shape) -> (B,)`` or a ``RewardModel``.
        seed: Seed of sub-env 0; sub-env ``i`` gets ``seed + i``.
        vec_env_cls: ``DummyVecEnv`` or ``SubprocVecEnv``.
        gamma: The shaping discount: must be the agent's (see
            :class:`~rewardlab.agents.callbacks.ShapingDiscountCheck`).
        env_kwargs: Keyword arguments for ``gym.make``.
        capture_frames: Wrap each sub-env in ``CaptureFrames`` (and render ``rgb_array``).
            Default: when ``reward`` or ``shaping`` needs frames.
        reward_mode: ``"replace"`` or ``"add"``, see ``VecModelReward``.
        vec_env_kwargs: Keyword arguments for ``vec_env_cls`` (e.g. ``start_method``).
        capture_state: State variables to capture besides those ``reward`` and ``shaping``
            read: for reward layers the caller adds on top.

    Returns:
        The vector env (not reset).

    Raises:
        ValueError: For an unknown ``env_id``, ``n_envs < 1``, ``capture_frames=False`` with
            a model that needs frames, or a ``render_mode`` other than ``"rgb_array"`` when
            frames are needed.

    Example:
        >>> import rewardlab
        >>> venv = rewardlab.make_vec("rewardlab/GridEmpty-v0", n_envs=2, shaping="progress")
        >>> venv.reset().shape
        (2, 17)
        >>> venv.close()
    """
    _check_env_id(env_id)
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive int, got {n_envs!r}")
    if reward is not None and not isinstance(reward, RewardModel):
        raise TypeError(f"reward must be a RewardModel or None, got {type(reward).__name__}")
    needs_frames = (reward is not None and reward.needs_frames) or (
        isinstance(shaping, RewardModel) and shaping.needs_frames
    )
    if capture_frames is None:
        capture_frames = needs_frames
    elif needs_frames and not capture_frames:
        raise ValueError(
            "the reward or shaping model needs frames; leave capture_frames=None or set True"
        )
    kwargs = dict(env_kwargs or {})
    if capture_frames:
        mode = kwargs.setdefault("render_mode", "rgb_array")
        if mode != "rgb_array":
            raise ValueError(
                f"capturing frames needs render_mode='rgb_array', env_kwargs has {mode!r}"
            )
    state = tuple(
        dict.fromkeys(
            [
                *(
                    name
                    for model in (reward, shaping)
                    if isinstance(model, RewardModel)
                    for name in state_keys(model.needs_info)
                ),
                *capture_state,
            ]
        )
    )
    fns = [
        functools.partial(_make_one, env_id, kwargs, capture_frames, state) for _ in range(n_envs)
    ]
    venv: VecEnv = vec_env_cls(fns, **(vec_env_kwargs or {}))  # type: ignore[arg-type]
    venv.seed(seed)
    if reward is not None:
        venv = VecModelReward(venv, reward, mode=reward_mode)
    if shaping is not None:
        venv = VecPotentialShaping(venv, shaping, gamma)
    return venv
