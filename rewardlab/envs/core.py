"""What every rewardlab environment shares: task descriptions, config handling, experts.

Reward research needs more from an environment than a reward: a language description of the
goal (for vision-language rewards), a ground-truth progress measure (for shaping and for judging
learned rewards), a structured list of the state variables (for LLM-written rewards) and a
scripted expert (for demonstrations and datasets). :class:`TaskEnv` is the small base class that
exposes these uniformly; :func:`get_task` and :func:`expert_policy` reach them through any stack
of Gymnasium wrappers.

This module imports neither MuJoCo nor torch, so ``import rewardlab`` stays cheap.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import gymnasium as gym
import numpy as np

__all__ = [
    "StateVariable",
    "Task",
    "TaskEnv",
    "expert_policy",
    "get_task",
    "resolve_config",
]


@dataclass(frozen=True)
class StateVariable:
    """One variable of an environment's state, as a reward-writing LLM is told about it.

    Attributes:
        name: Identifier, valid as a Python parameter name (``block_pos``).
        shape: Shape of one env's value (``()`` for a scalar).
        units: Physical units or ``"-"`` when unitless (``"m"``, ``"m/s"``, ``"bool"``).
        doc: One line saying what the value means and in which frame it is expressed.
        privileged: True when the policy's observation does not contain it.
    """

    name: str
    shape: tuple[int, ...]
    units: str
    doc: str
    privileged: bool = False

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"state variable name must be an identifier, got {self.name!r}")


@dataclass(frozen=True)
class Task:
    """The description of the task an environment poses, bound to that environment.

    Attributes:
        name: Short task name (``"push_block"``).
        goal: Language goal, phrased as a caption of a successful frame for CLIP-style models
            (``"a red block on the green target"``).
        baseline: Neutral caption of the scene without the goal achieved (VLM-RM's baseline).
        negatives: Captions of failure states, for contrastive and softmax heads.
        state_variables: The variables :meth:`state` returns, in order.
        env: What answers for the task: the rewardlab env itself, or the
            :class:`~rewardlab.envs.tasks.TaskAdapter` registered for another env.
        description: One paragraph about the task for reward-writing LLMs ("" if none).
    """

    name: str
    goal: str
    baseline: str
    negatives: tuple[str, ...]
    state_variables: tuple[StateVariable, ...]
    env: Any = field(repr=False, compare=False)
    description: str = ""

    def progress(self) -> float:
        """Ground-truth progress potential of the env's current state, in ``[0, 1]``.

        Close to 0 in the initial states and exactly 1 in success states.
        """
        return self.env.progress()

    def state(self) -> dict[str, np.ndarray]:
        """Current values of :attr:`state_variables`, keyed by name (copies)."""
        return self.env.state_dict()

    def features(self) -> frozenset[str]:
        """What the task provides beyond its text (``rewardlab.envs.tasks.FEATURES``): all of
        it for a rewardlab env."""
        if isinstance(self.env, TaskEnv):
            from rewardlab.envs.tasks import FEATURES

            return frozenset(FEATURES)
        return self.env.features()

    def require(self, feature: str, needed_for: str) -> None:
        """Raise ``MissingTaskFeature`` (a ``ValueError`` saying what to register) unless the
        task provides ``feature``, which ``needed_for`` needs."""
        if not isinstance(self.env, TaskEnv):
            self.env.require(feature, needed_for)


ConfigT = TypeVar("ConfigT")


def resolve_config(
    config_cls: type[ConfigT], config: ConfigT | None, overrides: Mapping[str, Any]
) -> ConfigT:
    """Build an env config from an optional base config and keyword overrides.

    Unknown keywords raise ``TypeError`` naming them (a misspelt option must never be silently
    ignored); value checks are the config dataclass's ``__post_init__``'s job.

    Args:
        config_cls: A dataclass type.
        config: A base instance, or None for the defaults.
        overrides: Keyword arguments, typically from ``gym.make(id, **kwargs)``.

    Returns:
        A new instance of ``config_cls``.
    """
    if config is not None and not isinstance(config, config_cls):
        raise TypeError(f"config must be a {config_cls.__name__}, got {type(config).__name__}")
    names = {f.name for f in dataclasses.fields(config_cls)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(
            f"{config_cls.__name__} got unexpected keyword argument(s) {unknown}; "
            f"valid options are {sorted(names)}"
        )
    base = config if config is not None else config_cls()
    return dataclasses.replace(base, **overrides)  # type: ignore[type-var]


class TaskEnv(gym.Env[Any, Any], Generic[ConfigT]):
    """Base class of rewardlab environments: a Gymnasium env that also describes its task.

    Subclasses set :attr:`task` in ``__init__`` and :attr:`dense_reward_type`, and implement
    :meth:`progress`, :meth:`state_dict`, :meth:`expert_action` and :meth:`idle_action`. Every
    ``reset`` and ``step`` info holds ``is_success`` (bool) and ``progress`` (float); every
    ``step`` info also holds the components ``reward_<name>`` of the reward just returned,
    which sum to it.
    """

    task: Task
    config: ConfigT
    dense_reward_type: ClassVar[str]
    """The ``reward_type`` of the env's hand-designed dense reward: the "human expert" reward
    learned rewards are compared with (the config's ``reward_type`` selects it)."""

    @abstractmethod
    def progress(self) -> float:
        """Ground-truth progress potential of the current state, in ``[0, 1]``."""

    @abstractmethod
    def state_dict(self) -> dict[str, np.ndarray]:
        """Current values of ``task.state_variables``, keyed by name."""

    @abstractmethod
    def expert_action(self) -> Any:
        """The scripted expert's action in the current state (may read privileged state)."""

    @abstractmethod
    def idle_action(self) -> Any:
        """An action that makes no progress: a no-op where the env has one, else the closest
        (hold still, brake). Trajectory datasets use it for "expert, then idle" episodes."""

    def _init_render_mode(self, render_mode: str | None) -> None:
        """Check ``render_mode`` against ``metadata["render_modes"]`` and store it."""
        modes = self.metadata["render_modes"]
        if render_mode is not None and render_mode not in modes:
            raise ValueError(f"render_mode must be one of {modes} or None, got {render_mode!r}")
        self.render_mode = render_mode

    def _require_render_mode(self) -> None:
        if self.render_mode is not None:
            return
        if self.spec is not None:
            how = f'gym.make("{self.spec.id}", render_mode="rgb_array")'
        else:
            how = f'{type(self).__name__}(render_mode="rgb_array")'
        raise ValueError(f"render() needs a render mode; create the env with {how}")


def _task_env(env: gym.Env[Any, Any]) -> TaskEnv[Any] | None:
    inner = env.unwrapped
    return inner if isinstance(inner, TaskEnv) else None


def get_task(env: gym.Env[Any, Any]) -> Task:
    """Return the :class:`Task` of an env, through any wrappers: a rewardlab env's own, or the
    task registered for another env (:func:`rewardlab.register_task`).

    Raises:
        TypeError: (:class:`~rewardlab.envs.tasks.TaskNotFound`) If no task is registered for
            the innermost env.
    """
    inner = _task_env(env)
    if inner is not None:
        return inner.task
    from rewardlab.envs.tasks import TaskNotFound, _not_found, find_adapter

    adapter = find_adapter(env)
    if adapter is None:
        raise TaskNotFound(_not_found(env))
    return adapter.task


def expert_policy(env: gym.Env[Any, Any]) -> Callable[[Any], Any]:
    """Return the expert of an env's task as ``act(obs) -> action``.

    A rewardlab env's scripted expert reads the simulator's privileged state, so it is bound to
    ``env`` and ignores ``obs`` beyond accepting it; call it with the observation ``env`` last
    returned. Another env's expert is its registered task's.

    Raises:
        TypeError: If no task is registered for the env.
        ValueError: (:class:`~rewardlab.envs.tasks.MissingTaskFeature`) If its task has no
            expert.
    """
    inner = _task_env(env)
    if inner is not None:
        return lambda obs: inner.expert_action()
    adapter = get_task(env).env
    adapter.require("expert", "an expert policy")
    return adapter.expert_action
