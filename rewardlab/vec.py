"""``make_vec_env``: an SB3 vector env of a task that pays a reward spec, a reward model and/or
shaping."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from rewardlab.envs.tasks import INFO_KEYS, import_task_modules, resolve_env_id
from rewardlab.envs.tasks import make as make_task_env
from rewardlab.reward_models.base import RewardModel
from rewardlab.reward_models.potentials import check_mismatched_discount
from rewardlab.reward_spec import (
    BuiltModelSpec,
    RewardSpec,
    build_model,
    parse_reward,
)
from rewardlab.wrappers.core import Potential, RewardMode, as_potential_model
from rewardlab.wrappers.frames import CaptureFrames
from rewardlab.wrappers.state import CaptureState, state_keys
from rewardlab.wrappers.vec import (
    VecMismatchedShaping,
    VecModelReward,
    VecPotentialShaping,
    VecProgressBonus,
)

__all__ = ["make_vec", "make_vec_env"]


def _make_one(
    env_id: str,
    env_kwargs: dict[str, Any],
    capture_frames: bool,
    state: tuple[str, ...],
    info_keys: tuple[str, ...] = INFO_KEYS,
    task_modules: tuple[str, ...] = (),
) -> gym.Env[Any, Any]:
    # Module-level (picklable) so SubprocVecEnv can use it with any start method; unpickling
    # it imports rewardlab, which registers the ids in a spawned process, and the user's task
    # modules register theirs.
    import_task_modules(task_modules)
    env = make_task_env(env_id, info_keys=info_keys, **env_kwargs)
    env = Monitor(env)
    if capture_frames:
        env = CaptureFrames(env)
    if state:
        env = CaptureState(env, names=state)
    return env


def _require_progress(env_id: str, env_kwargs: dict[str, Any], needed_for: str) -> None:
    """Raise a ``ValueError`` saying what to register unless the env's task has a progress
    (rewardlab's envs always do)."""
    if env_id.startswith("rewardlab/"):
        return
    from rewardlab.envs.core import get_task
    from rewardlab.envs.tasks import TaskNotFound

    with make_task_env(env_id, **env_kwargs) as env:
        try:
            task = get_task(env)
        except TaskNotFound as exc:
            raise ValueError(f"{needed_for} needs the env's task progress: {exc}") from None
        task.require("progress", needed_for)


def make_vec_env(
    env_id: str,
    n_envs: int = 1,
    reward: RewardSpec | str | Mapping[str, Any] | RewardModel | None = None,
    shaping: Potential | None = None,
    *,
    seed: int = 0,
    gamma: float = 0.99,
    reward_mode: RewardMode = "replace",
    env_kwargs: Mapping[str, Any] | None = None,
    vec_env_cls: type[VecEnv] = DummyVecEnv,
    vec_env_kwargs: Mapping[str, Any] | None = None,
    task_modules: Sequence[str] = (),
) -> VecEnv:
    """Build ``n_envs`` copies of a task as an SB3 vector env that pays the given reward.

    Layers, innermost first: :func:`rewardlab.make` (``gym.make`` with the registered time
    limit and the spec's ``reward_type``, and for an env rewardlab did not write its registered
    task's :class:`~rewardlab.envs.tasks.TaskInfo`), SB3 ``Monitor`` (so
    ``rollout/ep_rew_mean`` is the TRUE task return, never the learned or shaped one),
    :class:`~rewardlab.wrappers.frames.CaptureFrames` when a model reads pixels,
    :class:`~rewardlab.wrappers.state.CaptureState` when one reads state variables
    (``"state/<name>"`` in its ``needs_info``), ``vec_env_cls``, then the reward layers:
    :class:`~rewardlab.wrappers.vec.VecModelReward` for a reward model,
    :class:`~rewardlab.wrappers.vec.VecPotentialShaping` with ``gamma`` for shaping (or
    the spec's negative control, :class:`~rewardlab.wrappers.vec.VecMismatchedShaping` or
    :class:`~rewardlab.wrappers.vec.VecProgressBonus`). Sub-env ``i`` is seeded with
    ``seed + i`` at the first ``reset()``. (An SB3 algorithm built with ``seed=s``
    re-seeds them with ``s + i``; ``rewardlab.agents.train`` re-seeds after it.)

    Args:
        env_id: A registered id, e.g. ``"rewardlab/GridKeyDoor-v0"``, or another env's with a
            task (:func:`rewardlab.register_task`).
        n_envs: Number of sub-envs.
        reward: What the agent is paid: a :class:`~rewardlab.reward_spec.RewardSpec`, a
            short name or YAML mapping as on the command line (``"pbrs"``, ``"clip"``,
            ``"{model: {kind: info, key: progress}}"``), or a reward model replacing (or,
            with ``reward_mode="add"``, added to) the env's reward. None: the env's own.
        shaping: A potential for policy-invariant shaping on top: ``"progress"``, a callable
            ``(B, *obs_shape) -> (B,)`` or a ``RewardModel`` read as ``Phi(s')``. Not with a
            spec that shapes already.
        seed: Seed of sub-env 0; sub-env ``i`` gets ``seed + i``.
        gamma: The agent's discount, which shaping uses (see
            :class:`~rewardlab.agents.callbacks.ShapingDiscountCheck`).
        reward_mode: ``"replace"`` or ``"add"``, for a reward model given as ``reward``.
        env_kwargs: Keyword arguments for ``gym.make``.
        vec_env_cls: ``DummyVecEnv`` or ``SubprocVecEnv``.
        vec_env_kwargs: Keyword arguments for ``vec_env_cls`` (e.g. ``start_method``).
        task_modules: Modules registering the env's task (:func:`rewardlab.register_task`),
            imported in each sub-env's process: a ``SubprocVecEnv`` worker started by spawn
            or forkserver sees only rewardlab's tasks otherwise.

    Returns:
        The vector env (not reset).

    Raises:
        ValueError: For an unknown ``env_id`` or reward name, an invalid spec,
            ``n_envs < 1``, shaping given twice, or a ``render_mode`` other than
            ``"rgb_array"`` when frames are needed.

    Example:
        >>> import rewardlab
        >>> venv = rewardlab.make_vec_env("rewardlab/GridEmpty-v0", n_envs=2, reward="pbrs")
        >>> venv.reset().shape
        (2, 17)
        >>> venv.close()
    """
    import_task_modules(task_modules)  # here too: the checks below need the tasks
    env_id = resolve_env_id(env_id)
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive int, got {n_envs!r}")
    spec = RewardSpec() if reward is None or isinstance(reward, RewardModel) else None
    if spec is None:
        spec = parse_reward(reward)  # type: ignore[arg-type]
        if reward_mode != "replace":
            raise ValueError("reward_mode is for a reward model; a spec sets its own mode")
        reward_mode = spec.mode
    if spec.shaping is not None and shaping is not None:
        raise ValueError("the reward spec shapes already; drop shaping= or the spec's shaping")
    if spec.shaping_gamma is not None:
        check_mismatched_discount(spec.shaping_gamma, gamma)  # before building anything
    kwargs = dict(env_kwargs or {})
    if spec.reward_type is not None:
        kwargs["reward_type"] = spec.reward_type

    # (layer class, model, keyword arguments), innermost first.
    layers: list[tuple[Any, RewardModel, dict[str, Any]]] = []

    def add(cls: Any, spec_model: Any, **options: Any) -> None:
        if isinstance(spec_model, BuiltModelSpec):
            spec_model = build_model(spec_model, env_id, kwargs)
        layers.append((cls, as_potential_model(spec_model), options))

    venv: VecEnv | None = None
    try:
        model = reward if isinstance(reward, RewardModel) else spec.model
        if model is not None:
            add(VecModelReward, model, mode=reward_mode)
        potential = shaping if shaping is not None else spec.shaping
        if isinstance(potential, str) or spec.progress_bonus is not None:
            why = "progress shaping" if spec.progress_bonus is None else "a progress bonus"
            _require_progress(env_id, kwargs, why)
        if spec.shaping_gamma is not None:
            add(VecMismatchedShaping, potential, gamma=spec.shaping_gamma, agent_gamma=gamma)
        elif potential is not None:
            add(VecPotentialShaping, potential, gamma=gamma)
        if spec.progress_bonus is not None:
            add(VecProgressBonus, "progress", scale=spec.progress_bonus)
        models = [built for _, built, _ in layers]
        capture_frames = any(m.needs_frames for m in models)
        if capture_frames:
            mode = kwargs.setdefault("render_mode", "rgb_array")
            if mode != "rgb_array":
                raise ValueError(
                    f"capturing frames needs render_mode='rgb_array', env_kwargs has {mode!r}"
                )
        state = tuple(dict.fromkeys(name for m in models for name in state_keys(m.needs_info)))
        # What another env's TaskInfo computes each step: success (the training episodes'
        # log reads it), progress only where a layer reads it.
        read = {"is_success"} | {key for m in models for key in m.needs_info}
        info_keys = tuple(k for k in INFO_KEYS if k in read)
        modules = tuple(task_modules)
        make = functools.partial(
            _make_one, env_id, kwargs, capture_frames, state, info_keys, modules
        )
        venv = vec_env_cls([make] * n_envs, **(vec_env_kwargs or {}))  # type: ignore[arg-type]
        venv.seed(seed)
        for cls, built, options in layers:
            venv = cls(venv, built, **options)
    except BaseException:
        if venv is not None:  # sub-env processes (SubprocVecEnv) are running
            venv.close()
        for _, built, _ in layers:  # so is a reward program's worker (close is idempotent)
            built.close()
        raise
    return venv


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
    """Deprecated alias of :func:`make_vec_env`, removed in the next release."""
    warnings.warn(
        "rewardlab.make_vec is deprecated; use rewardlab.make_vec_env", DeprecationWarning, 2
    )
    if capture_frames is not None or capture_state:
        raise TypeError(
            "capture_frames and capture_state are gone: make_vec_env captures what its layers "
            "read; wrap the sub-envs in CaptureFrames or CaptureState yourself for more"
        )
    return make_vec_env(
        env_id,
        n_envs,
        reward,
        shaping,
        seed=seed,
        gamma=gamma,
        reward_mode=reward_mode,
        env_kwargs=env_kwargs,
        vec_env_cls=vec_env_cls,
        vec_env_kwargs=vec_env_kwargs,
    )
