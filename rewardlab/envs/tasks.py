"""Tasks for envs rewardlab did not write: the registry that gives any Gymnasium env what
rewardlab's own envs provide.

A rewardlab env (:class:`~rewardlab.envs.core.TaskEnv`) describes its task itself. Any other env
gets the same from a :class:`TaskAdapter` registered for its id, id pattern or class with
:func:`register_task`: the language goal, baseline and negative prompts, ``success`` (from the
step info or the env's state), an optional ``progress`` potential in ``[0, 1]``, state variables
for reward programs, an optional expert and idle action, and the reward variants the env offers.

:func:`make` is ``gym.make`` plus the adapter: it wraps the env in :class:`TaskInfo`, which writes
``info["is_success"]`` and ``info["progress"]`` as rewardlab's envs do, so shaping, training,
evaluation and the reward checks work unchanged. :func:`~rewardlab.envs.core.get_task` finds the
adapter of any env through its wrappers (the registry is keyed on the innermost env's spec id).

rewardlab ships adapters for Gymnasium's classic-control and MuJoCo envs, Minigrid, highway-env,
Gymnasium-Robotics' Fetch and Meta-World (:data:`SHIPPED`); their modules, and the packages
they need, are imported on the first lookup of a matching id, never by ``import rewardlab``.

Example:
    >>> import gymnasium as gym
    >>> import rewardlab
    >>> import numpy as np
    >>> def tip_above_bar(env, obs, info):
    ...     theta1, theta2 = env.state[:2]
    ...     return -np.cos(theta1) - np.cos(theta1 + theta2) > 1.0
    >>> _ = rewardlab.register_task(
    ...     "Acrobot-v1", name="swing_up", goal="a two-link pendulum swung up",
    ...     success=tip_above_bar, replace=True)
    >>> env = rewardlab.make("Acrobot-v1")
    >>> _, info = env.reset(seed=0)
    >>> info["is_success"], rewardlab.get_task(env).goal
    (False, 'a two-link pendulum swung up')
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
import numpy as np

from rewardlab.envs.core import StateVariable, Task, TaskEnv
from rewardlab.envs.headless import load_triton_first

__all__ = [
    "FEATURES",
    "INFO_KEYS",
    "SHIPPED",
    "MissingTaskFeature",
    "TaskAdapter",
    "TaskInfo",
    "TaskNotFound",
    "find_adapter",
    "import_task_modules",
    "make",
    "register_task",
    "resolve_env_id",
    "task_reward_types",
]

FEATURES = ("success", "progress", "state", "expert", "idle_action")
"""What a task can provide beyond its text: each is a method of :class:`TaskAdapter`."""

_HOW = 'README "Your own env"'


class MissingTaskFeature(ValueError):
    """A path needs something the env's task does not provide (its message says what to
    register: the task's adapter with the feature added, keeping what it has)."""

    def __init__(
        self,
        env_id: str,
        feature: str,
        needed_for: str,
        adapter: type[TaskAdapter] | None = None,
    ) -> None:
        self.env_id, self.feature, self.needed_for = env_id, feature, needed_for
        self.adapter = adapter
        if adapter is not None and vars(adapter).get("_from_keywords"):
            how = f"add {feature}=... to the rewardlab.register_task({env_id!r}, ...) call"
        else:
            base = ""
            if adapter is not None and adapter is not TaskAdapter:
                module = importlib.import_module(adapter.__module__)
                importable = getattr(module, adapter.__qualname__, None) is adapter
                base = (
                    f"{adapter.__module__}.{adapter.__qualname__}, "
                    if importable
                    else "type(rewardlab.get_task(env).env), "
                )
            how = f"rewardlab.register_task({env_id!r}, {base}{feature}=..., replace=True)"
        super().__init__(
            f"{env_id}'s task has no {feature}, which {needed_for} needs; register one: "
            f"{how} ({_HOW})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.env_id, self.feature, self.needed_for, self.adapter)


class TaskNotFound(TypeError, ValueError):
    """No task is registered for the env (neither a rewardlab env nor a registered id)."""


class TaskAdapter:
    """The task of one env instance that rewardlab did not write.

    Subclass it (or let :func:`register_task` build one from callables) and override what the
    env supports; each method left alone is a missing feature (:meth:`features`), which the
    paths needing it report as :class:`MissingTaskFeature` before any work. Text attributes
    may be class attributes or set per instance in ``__init__`` (a goal read from the env).

    Attributes:
        env: The innermost (unwrapped) env.
        name: Short task name, an identifier (``"balance_pole"``).
        goal: Language goal, a caption of a successful frame.
        baseline: Neutral caption of the scene (VLM-RM's baseline); "" if none.
        negatives: Captions of failure states.
        description: One paragraph for reward-writing LLMs.
        state_variables: What :meth:`state_dict` returns, in order.
        success_key: An info key holding the env's own success flag; the default
            :meth:`success` reads it.
        dense_reward_type: The ``reward_type`` whose reward is the env's hand-designed dense
            reward ("env" when the env's own reward is that reference); None if none.
        reward_types: ``reward_type`` name -> ``gym.make`` keywords selecting it. ``"env"``
            is always the env's own reward and ``"sparse"`` (unless listed) is emulated as
            ``float(success)`` by :class:`TaskInfo`.
        render_kwargs: ``gym.make`` keywords for frames (besides ``render_mode``), which
            :func:`make` adds when a ``render_mode`` is given (the caller's win).
        make_defaults: ``gym.make`` keywords :func:`make` passes unless the caller gives them:
            settings the task needs (Humanoid kneeling: no termination below 1 m).
    """

    name: str = "task"
    goal: str = ""
    baseline: str = ""
    negatives: tuple[str, ...] = ()
    description: str = ""
    state_variables: tuple[StateVariable, ...] = ()
    success_key: ClassVar[str | None] = None
    dense_reward_type: ClassVar[str | None] = None
    reward_types: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    render_kwargs: ClassVar[Mapping[str, Any]] = {}
    make_defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        self.env = env
        self._task: Task | None = None

    @property
    def env_id(self) -> str:
        spec = self.env.spec
        return spec.id if spec is not None else type(self.env).__name__

    @property
    def task(self) -> Task:
        """The :class:`~rewardlab.envs.core.Task` view of this adapter (built once)."""
        if self._task is None:
            self._task = Task(
                name=self.name,
                goal=self.goal,
                baseline=self.baseline,
                negatives=tuple(self.negatives),
                state_variables=tuple(self.state_variables),
                env=self,
                description=self.description,
            )
        return self._task

    @classmethod
    def wrap(cls, env: gym.Env[Any, Any]) -> gym.Env[Any, Any]:
        """Wrappers :func:`make` puts on the env before :class:`TaskInfo` (default none): for
        observations SB3 cannot take as they are, e.g. Minigrid's mission text."""
        return env

    def on_reset(self, obs: Any, info: Mapping[str, Any]) -> None:
        """Called by :class:`TaskInfo` after each reset (cache per-episode values here)."""

    def success(self, obs: Any, info: Mapping[str, Any]) -> bool:
        """True in a success state (the true task metric every comparison judges)."""
        if self.success_key is None:
            raise MissingTaskFeature(
                self.env_id, "success", "the evaluation on the true task", type(self)
            )
        if self.success_key not in info:
            raise ValueError(
                f"{self.env_id}'s info has no {self.success_key!r}, the key its task reads "
                f"success from (it has {sorted(info)}); register the task with the right key"
            )
        return bool(info[self.success_key])

    def progress(self) -> float:
        """Ground-truth progress potential of the current state, in ``[0, 1]``."""
        raise MissingTaskFeature(self.env_id, "progress", "progress shaping", type(self))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Current values of :attr:`state_variables`, keyed by name."""
        raise MissingTaskFeature(self.env_id, "state", "a reward program", type(self))

    def expert_action(self, obs: Any) -> Any:
        """A scripted or loaded expert's action for the observation the env last returned."""
        raise MissingTaskFeature(self.env_id, "expert", "a dataset of expert episodes", type(self))

    def idle_action(self) -> Any:
        """An action that makes no progress (a no-op, hold still, brake)."""
        raise MissingTaskFeature(
            self.env_id, "idle_action", "a dataset of idle episodes", type(self)
        )

    def features(self) -> frozenset[str]:
        """The :data:`FEATURES` this adapter provides: the methods its class overrides (and
        ``state`` only with state variables). Override to drop what one instance lacks (an
        expert for one action space only), calling ``super().features()``."""
        have = _class_features(type(self))
        if "state" in have and not self.state_variables:
            have -= {"state"}
        return have

    def require(self, feature: str, needed_for: str) -> None:
        """Raise :class:`MissingTaskFeature` unless this adapter provides ``feature``."""
        if feature not in FEATURES:
            raise ValueError(f"unknown task feature {feature!r}; one of {FEATURES}")
        if feature not in self.features():
            raise MissingTaskFeature(self.env_id, feature, needed_for, type(self))


def _class_features(cls: type[TaskAdapter]) -> frozenset[str]:
    """The :data:`FEATURES` an adapter class's methods provide."""
    methods = {
        "progress": "progress",
        "state": "state_dict",
        "expert": "expert_action",
        "idle_action": "idle_action",
    }
    have = {f for f, m in methods.items() if getattr(cls, m) is not getattr(TaskAdapter, m)}
    if cls.success_key is not None or cls.success is not TaskAdapter.success:
        have.add("success")
    return frozenset(have)


def _reward_type_kwargs(
    cls: type[TaskAdapter], env_id: str, reward_type: str | None
) -> tuple[dict[str, Any], bool]:
    """``(gym.make keywords, emulate sparse)`` for a ``reward_type``."""
    if reward_type is None or reward_type == "env":
        return {}, False
    if reward_type in cls.reward_types:
        return dict(cls.reward_types[reward_type]), False
    if reward_type == "sparse":
        if "success" not in _class_features(cls):
            raise MissingTaskFeature(env_id, "success", "reward_type 'sparse'", cls)
        return {}, True
    valid = sorted({"env", "sparse", *cls.reward_types})
    raise ValueError(f"{env_id} has no reward_type {reward_type!r}; its reward types: {valid}")


# --- the registry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    key: str | type[gym.Env[Any, Any]]
    adapter: type[TaskAdapter] | str  # a class, or "module:Class" imported on first use
    package: str | None = None  # imported before gym.make (it registers the ids)
    extra: str | None = None  # the pip extra that installs the package

    def matches(self, env_id: str | None, env: gym.Env[Any, Any] | type | None) -> bool:
        if isinstance(self.key, str):
            return env_id is not None and fnmatch.fnmatchcase(env_id, self.key)
        if isinstance(env, type):
            return issubclass(env, self.key)
        return env is not None and isinstance(env, self.key)

    def adapter_class(self) -> type[TaskAdapter]:
        if isinstance(self.adapter, str):
            module, _, name = self.adapter.partition(":")
            return getattr(importlib.import_module(module), name)
        return self.adapter


_A = "rewardlab.envs.adapters."

SHIPPED: tuple[_Entry, ...] = (
    *(
        _Entry(i, f"{_A}classic:{c}", None, "classic")
        for i, c in (
            ("CartPole-v1", "CartPole"),
            ("MountainCar-v0", "MountainCar"),
            ("MountainCarContinuous-v0", "MountainCarContinuous"),
            ("Pendulum-v1", "Pendulum"),
        )
    ),
    *(
        _Entry(f"{c}-v5", f"{_A}mujoco:{c}", None, "mujoco")
        for c in ("InvertedPendulum", "Hopper", "HalfCheetah", "Humanoid")
    ),
    _Entry("MiniGrid-*", f"{_A}minigrid:MinigridTask", "minigrid", "minigrid"),
    *(
        _Entry(i, f"{_A}highway:HighwayTask", "highway_env", "highway")
        for i in ("highway-v0", "highway-fast-v0", "merge-v*", "roundabout-v*", "intersection-v*")
    ),
    *(
        _Entry(f"Fetch{t}-v*", f"{_A}robotics:FetchTask", "gymnasium_robotics", "robotics")
        for t in ("Reach", "Push", "PickAndPlace", "ReachDense", "PushDense", "PickAndPlaceDense")
    ),
    _Entry("Meta-World/*", f"{_A}metaworld:MetaWorldTask", "metaworld", "metaworld"),
)
"""The adapters rewardlab ships: id pattern, adapter, the package registering the ids, extra."""

_registered: list[_Entry] = []
_ADAPTER_ATTRIBUTE = "_rewardlab_task_adapter"
"""Where an env keeps its adapter: on the env itself, so that both are freed together (a
mapping from envs to adapters, which hold their env, would keep every env alive)."""


def register_task(
    env_id: str | type[gym.Env[Any, Any]],
    adapter: type[TaskAdapter] | None = None,
    *,
    name: str | None = None,
    goal: str | None = None,
    baseline: str | None = None,
    negatives: Sequence[str] | None = None,
    description: str | None = None,
    success: str | Callable[[Any, Any, Mapping[str, Any]], bool] | None = None,
    progress: Callable[[Any], float] | None = None,
    state_variables: Sequence[StateVariable] | None = None,
    state: Callable[[Any], Mapping[str, Any]] | None = None,
    expert: Callable[[Any, Any], Any] | None = None,
    idle_action: Callable[[Any], Any] | None = None,
    dense_reward_type: str | None = None,
    reward_types: Mapping[str, Mapping[str, Any]] | None = None,
    render_kwargs: Mapping[str, Any] | None = None,
    replace: bool = False,
) -> type[TaskAdapter]:
    """Register the task of an env id, an id pattern (``"MyEnv-*"``) or an env class.

    Either pass a :class:`TaskAdapter` subclass, or describe the task with keywords (which
    also override an adapter's): callables receive the innermost env first. User registrations
    take precedence over rewardlab's shipped adapters; the latest registration wins among
    patterns.

    Args:
        env_id: A Gymnasium id, a glob pattern over ids, or an env class (matched with
            ``isinstance`` on the innermost env).
        adapter: A :class:`TaskAdapter` subclass.
        name, goal, baseline, negatives, description: The task's text.
        success: An info key holding the env's success flag, or ``(env, obs, info) -> bool``.
        progress: ``env -> float`` in ``[0, 1]``: 1 exactly in success states.
        state_variables: What ``state`` returns, for reward programs.
        state: ``env -> {name: value}``.
        expert: ``(env, obs) -> action``.
        idle_action: ``env -> action`` that makes no progress.
        dense_reward_type, reward_types, render_kwargs: See :class:`TaskAdapter`.
        replace: Replace an earlier registration of the same ``env_id``.

    Returns:
        The adapter class registered.

    Raises:
        ValueError: For a ``rewardlab/`` id (those envs describe their own task), a second
            registration without ``replace=True``, or a bad value.
    """
    if isinstance(env_id, str):
        if not env_id.strip():
            raise ValueError("register_task needs an env id, pattern or class")
        if env_id.startswith("rewardlab/"):
            raise ValueError(f"{env_id} is a rewardlab env: it describes its own task")
    elif not (isinstance(env_id, type) and issubclass(env_id, gym.Env)):
        raise TypeError(f"env_id must be an id, a pattern or a gym.Env class, got {env_id!r}")
    elif issubclass(env_id, TaskEnv):
        raise ValueError(f"{env_id.__name__} is a rewardlab env: it describes its own task")
    if adapter is not None and not (isinstance(adapter, type) and issubclass(adapter, TaskAdapter)):
        raise TypeError(f"adapter must be a TaskAdapter subclass, got {adapter!r}")
    base = adapter or TaskAdapter
    attrs: dict[str, Any] = {}
    text = {"name": name, "goal": goal, "baseline": baseline, "description": description}
    for key, value in text.items():
        if value is not None:
            if not isinstance(value, str):
                raise TypeError(f"{key} must be a str, got {type(value).__name__}")
            attrs[key] = value
    if adapter is None and goal is None:
        raise ValueError("register_task needs goal= (the task's language goal) or an adapter")
    if "name" in attrs and not attrs["name"].isidentifier():
        raise ValueError(f"name must be an identifier, got {attrs['name']!r}")
    if negatives is not None:
        if isinstance(negatives, str) or not all(isinstance(n, str) for n in negatives):
            raise TypeError("negatives must be a list of captions")
        attrs["negatives"] = tuple(negatives)
    if state_variables is not None:
        if not all(isinstance(v, StateVariable) for v in state_variables):
            raise TypeError("state_variables must be StateVariable instances")
        attrs["state_variables"] = tuple(state_variables)
    options: dict[str, Any] = {
        "dense_reward_type": dense_reward_type,
        "reward_types": reward_types,
        "render_kwargs": render_kwargs,
    }
    attrs.update({k: v for k, v in options.items() if v is not None})
    if isinstance(success, str):
        if not success:
            raise ValueError("success= must name an info key (or be a callable), got ''")
        attrs["success_key"] = success
    elif success is not None:
        attrs["success"] = _call(success, "success", with_obs_info=True)
    elif adapter is None:
        raise ValueError("register_task needs success= (an info key or a callable)")
    for key, fn, method in (
        ("progress", progress, "progress"),
        ("state", state, "state_dict"),
        ("idle_action", idle_action, "idle_action"),
    ):
        if fn is not None:
            attrs[method] = _call(fn, key)
    if expert is not None:
        attrs["expert_action"] = _call(expert, "expert", with_obs=True)
    if state is not None and adapter is None and not state_variables:
        raise ValueError("state= needs state_variables= (their names, shapes, units and docs)")
    label = env_id if isinstance(env_id, str) else env_id.__name__
    if attrs:
        # Built from these keywords: the user's own call, which a missing feature names.
        cls = type(f"{base.__name__}[{label}]", (base,), {**attrs, "_from_keywords": True})
    else:
        cls = base
    for i, entry in enumerate(_registered):
        if entry.key == env_id:
            if not replace:
                raise ValueError(
                    f"a task is already registered for {label}; pass replace=True to replace it"
                )
            del _registered[i]
            break
    _registered.append(_Entry(env_id, cls))
    return cls


def _call(
    fn: Callable[..., Any], what: str, *, with_obs: bool = False, with_obs_info: bool = False
) -> Callable[..., Any]:
    """A user's callable as an adapter method (its values are checked by :class:`TaskInfo`,
    which names the env and the callable)."""
    if not callable(fn):
        raise TypeError(f"{what} must be callable, got {type(fn).__name__}")
    if with_obs_info:

        def method(self: TaskAdapter, obs: Any, info: Mapping[str, Any]) -> Any:
            return fn(self.env, obs, info)
    elif with_obs:

        def method(self: TaskAdapter, obs: Any) -> Any:  # type: ignore[misc]
            return fn(self.env, obs)
    elif what == "state":

        def method(self: TaskAdapter) -> Any:  # type: ignore[misc]
            return {k: np.array(v) for k, v in fn(self.env).items()}
    else:

        def method(self: TaskAdapter) -> Any:  # type: ignore[misc]
            return fn(self.env)

    return method


def _lookup(env_id: str | None, env: gym.Env[Any, Any] | type | None = None) -> _Entry | None:
    """The registration for an id or an env (instance or class): exact ids first, then
    patterns and classes (latest first), then rewardlab's shipped adapters."""
    user = list(reversed(_registered))
    exact = [e for e in user if isinstance(e.key, str) and e.key == env_id]
    for entry in (*exact, *user, *SHIPPED):
        if entry.matches(env_id, env):
            return entry
    return None


def find_adapter(env: gym.Env[Any, Any]) -> TaskAdapter | None:
    """The adapter of ``env``'s innermost env (one per env instance), or None when no task is
    registered for it. rewardlab's own envs have none: they are their own task."""
    inner = env.unwrapped
    if isinstance(inner, TaskEnv):
        return None
    bound: TaskAdapter | None = vars(inner).get(_ADAPTER_ATTRIBUTE)
    if bound is not None:
        return bound
    spec = inner.spec
    entry = _lookup(spec.id if spec is not None else None, inner)
    if entry is None:
        return None
    bound = entry.adapter_class()(inner)
    vars(inner)[_ADAPTER_ATTRIBUTE] = bound
    return bound


def resolve_env_id(env_id: str) -> str:
    """Make sure ``env_id`` is registered with Gymnasium, importing the package of a shipped
    adapter that registers it (``minigrid``, ``highway_env``, ...).

    Raises:
        ValueError: An unknown id (with close matches), or a package that is not installed
            (naming the extra that installs it).
    """
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env id must be a non-empty string, got {env_id!r}")
    if env_id in gym.registry:
        return env_id
    module, _, rest = env_id.partition(":")
    if rest:  # Gymnasium's "module:EnvId"
        _import_package(module, None, rest)
        env_id = rest
    else:
        for entry in SHIPPED:
            if entry.package is not None and entry.matches(env_id, None):
                _import_package(entry.package, entry.extra, env_id)
                break
    if env_id not in gym.registry:
        import difflib

        close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(
            f"unknown env id {env_id!r}.{hint} `rewardlab envs` lists rewardlab's ids and the "
            "third-party ids it has tasks for"
        )
    return env_id


def _import_package(package: str, extra: str | None, env_id: str) -> None:
    try:
        importlib.import_module(package)
    except ImportError as exc:
        how = f"pip install 'rewardlab[{extra}]'" if extra else f"install {package}"
        raise ValueError(
            f"{env_id} needs the package {package!r}, which cannot be imported ({exc}); {how}"
        ) from None


def import_task_modules(modules: Sequence[str]) -> None:
    """Import the modules that register tasks (each a module name, or a path to a ``.py``
    file): what a spawned worker, which imports only rewardlab, needs to see a user's tasks.

    Raises:
        ValueError: A module that cannot be imported (with the error it raised).
    """
    import sys
    from pathlib import Path

    for name in modules:
        try:
            if name.endswith(".py"):
                path = Path(name).resolve()
                module = f"rewardlab_tasks_{abs(hash(str(path))):x}"
                if module in sys.modules:
                    continue
                loader = importlib.util.spec_from_file_location(module, path)
                if loader is None or loader.loader is None or not path.is_file():
                    raise ImportError(f"no such file: {path}")
                mod = importlib.util.module_from_spec(loader)
                sys.modules[module] = mod
                try:
                    loader.loader.exec_module(mod)
                except BaseException:
                    del sys.modules[module]
                    raise
            else:
                importlib.import_module(name)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 (the user's module: any error)
            raise ValueError(
                f"cannot import the task module {name!r} ({type(exc).__name__}: {exc}); give "
                "an importable module name or a path to a .py file that calls "
                "rewardlab.register_task"
            ) from None


INFO_KEYS = ("is_success", "progress")
"""The info keys :class:`TaskInfo` can write."""


def make(env_id: str, *, info_keys: Sequence[str] = INFO_KEYS, **kwargs: Any) -> gym.Env[Any, Any]:
    """``gym.make`` for any env with a task: rewardlab's, or one registered with
    :func:`register_task` (or shipped), wrapped in :class:`TaskInfo`.

    ``reward_type`` selects the env's reward variant: rewardlab's envs take it as a keyword;
    for another env it is one of its adapter's ``reward_types``, ``"env"`` (its own reward) or
    ``"sparse"`` (``float(success)``). Other keywords go to ``gym.make``, after the adapter's
    ``make_defaults`` (and with a ``render_mode``, its ``render_kwargs``).

    Args:
        env_id: A registered id (a shipped adapter's package is imported to register it).
        info_keys: What :class:`TaskInfo` writes of :data:`INFO_KEYS`; fewer is cheaper per
            step (a run that does not shape needs no progress).
        kwargs: ``gym.make`` keywords, and ``reward_type``.

    Raises:
        ValueError: An unknown id, a missing package (naming its extra) or reward type.
    """
    env_id = resolve_env_id(env_id)
    spec = gym.spec(env_id)
    entry = None if env_id.startswith("rewardlab/") else _lookup(env_id, _creator(spec))
    if entry is None:
        return gym.make(env_id, **kwargs)
    adapter_cls = entry.adapter_class()
    kwargs = {**adapter_cls.make_defaults, **kwargs}
    extra, sparse = _reward_type_kwargs(adapter_cls, env_id, kwargs.pop("reward_type", None))
    kwargs.update(extra)
    if kwargs.get("render_mode") is not None:
        kwargs = {**adapter_cls.render_kwargs, **kwargs}
        load_triton_first()  # before a MuJoCo env's first EGL context (see there)
    try:
        env = adapter_cls.wrap(gym.make(env_id, **kwargs))
    except gym.error.DependencyNotInstalled as exc:
        raise ValueError(
            f"{env_id} needs a package that is not installed ({exc}); pip install "
            f"'rewardlab[{entry.extra}]'"
        ) from None
    except gym.error.Error as exc:  # e.g. Meta-World's vector-only ids through make
        raise ValueError(f"{env_id} cannot be made as one env: {exc}") from None
    adapter = find_adapter(env)
    assert adapter is not None  # the same entry matches the made env
    return TaskInfo(env, adapter, sparse=sparse, keys=info_keys)


def _creator(spec: gym.envs.registration.EnvSpec) -> Any:
    """The class an id's entry point names (for tasks registered by class), or None."""
    entry: Any = spec.entry_point
    if isinstance(entry, str):
        try:
            entry = gym.envs.registration.load_env_creator(entry)
        except Exception:  # noqa: BLE001 (a broken entry point fails in gym.make, as usual)
            return None
    return entry if isinstance(entry, type) else None


def task_reward_types(
    env: gym.Env[Any, Any], env_kwargs: Mapping[str, Any]
) -> tuple[str, str | None]:
    """The ``reward_type`` an env made with ``env_kwargs`` pays, and the one of its task's
    hand-designed dense reward (None when it has none; ``"env"`` when it is the env's own).

    Raises:
        TypeError: (:class:`TaskNotFound`) No task is registered for the env.
    """
    inner = env.unwrapped
    if isinstance(inner, TaskEnv):
        return str(inner.config.reward_type), inner.dense_reward_type
    adapter = find_adapter(env)
    if adapter is None:
        raise TaskNotFound(_not_found(env))
    return str(env_kwargs.get("reward_type") or "env"), adapter.dense_reward_type


class TaskInfo(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """Write a registered task's ``is_success`` and ``progress`` into every reset and step
    info, as rewardlab's envs do (only what the task provides; an info key the env writes
    itself is left alone). With ``sparse``, the reward is ``float(success)`` of the new state.

    Args:
        env: An env with a registered task (see :func:`register_task`).
        adapter: Its adapter; default :func:`find_adapter`.
        sparse: Replace the reward by the task's success.
        keys: Which of :data:`INFO_KEYS` to write (default both).
    """

    def __init__(
        self,
        env: gym.Env[Any, Any],
        adapter: TaskAdapter | None = None,
        sparse: bool = False,
        keys: Sequence[str] = INFO_KEYS,
    ) -> None:
        # Recorded (for env.spec and the env checker's re-make) without the adapter, which
        # find_adapter binds again.
        gym.utils.RecordConstructorArgs.__init__(self, sparse=sparse, keys=tuple(keys))
        super().__init__(env)
        found = adapter if adapter is not None else find_adapter(env)
        if found is None:
            raise TaskNotFound(_not_found(env))
        unknown = sorted(set(keys) - set(INFO_KEYS))
        if unknown:
            raise ValueError(f"TaskInfo writes {list(INFO_KEYS)}, not {unknown}")
        self.adapter = found
        features = found.features()
        self.sparse = sparse
        own = found.success_key == "is_success"  # the env writes it already (maybe a float)
        self._own_success = own and "is_success" in keys
        wanted = "is_success" in keys or sparse
        # Bound methods, looked up once: this runs every step.
        self._success = found.success if wanted and "success" in features and not own else None
        self._progress = found.progress if "progress" in keys and "progress" in features else None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        adapter = self.adapter
        adapter.on_reset(obs, info)
        key = adapter.success_key
        if key is not None and key not in info:
            # Envs report their success flag in step infos; a reset state is not a success.
            info["is_success"] = False
        elif self._success is not None:
            info["is_success"] = self._checked_success(obs, info)
        if self._progress is not None:
            info["progress"] = self._checked_progress()
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self._success is not None:
            success = info["is_success"] = self._checked_success(obs, info)
        elif self.sparse or self._own_success:
            success = info["is_success"] = bool(info["is_success"])  # a float flag, often
        if self._progress is not None:
            info["progress"] = self._checked_progress()
        if self.sparse:
            reward = float(success)
        return obs, reward, terminated, truncated, info

    def _checked_success(self, obs: Any, info: Mapping[str, Any]) -> bool:
        assert self._success is not None
        value = self._success(obs, info)
        try:
            return bool(value)
        except (TypeError, ValueError):  # an array of several values, say
            raise ValueError(
                f"{self.adapter.env_id}'s task success returned {value!r}; it must be one "
                "bool for the env's current state"
            ) from None

    def _checked_progress(self) -> float:
        assert self._progress is not None
        value = self._progress()
        try:
            progress = float(value)
        except (TypeError, ValueError):
            progress = math.nan
        if not 0.0 <= progress <= 1.0:  # NaN too
            raise ValueError(
                f"{self.adapter.env_id}'s task progress returned {value!r}; it must be a "
                "number in [0, 1] (1 exactly in success states)"
            )
        return progress


def _not_found(env: gym.Env[Any, Any]) -> str:
    inner = env.unwrapped
    spec = inner.spec
    if spec is not None:
        label, key = spec.id, repr(spec.id)
    else:  # made without gym.make: registered by its class
        cls = type(inner)
        label, key = cls.__name__, f"{cls.__module__}.{cls.__qualname__}"
    return (
        f"{label} is not a rewardlab environment and has no registered task; register one "
        f"with rewardlab.register_task({key}, goal=..., success=...) ({_HOW})"
    )
