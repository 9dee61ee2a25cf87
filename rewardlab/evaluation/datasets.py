"""Labelled trajectory datasets for judging rewards before training on them.

A dataset holds episodes of one rewardlab env, rolled out by policies of known quality:

================  ==================================================================================
``expert``        the env's scripted expert until the episode ends
``random``        uniformly random actions
``partial``       the expert for ``k`` steps (``k`` a random fraction in ``partial_fraction`` of
                  the steps the expert needs from that seed), then ``continuation``: random
                  actions or the env's idle action
``near_miss``     the expert until progress first reaches a random level in ``near_miss_progress``,
                  then random actions; an episode that still succeeds is redrawn with the next
                  seed, so every kept near-miss fails
``counterfactual``  alternately (``variant``) ``"clipped"``: the expert episode cut one step before
                  its first success state, and ``"other_goal"``: the expert's actions for another
                  seed's task (another goal, layout or traffic) replayed open-loop
================  ==================================================================================

Labels are what the simulator says, never the generator's intent: ``success`` and ``progress``
come from the env's info, so a replayed "other goal" episode that happens to succeed is
labelled a success.

Format (a folder; ``N`` states, ``M = N - n_episodes`` transitions; episode ``e`` holds the
state rows ``state_start[e] .. state_start[e] + n_steps[e]`` and the transition rows
``state_start[e] - e .. state_start[e] - e + n_steps[e] - 1``; transition ``t`` of episode ``e``
goes from state row ``state_start[e] + t`` to the next row):

=========================  ========================================================================
``metadata.json``          format and version, env id and kwargs, package versions, generator
                           settings (enough to regenerate the dataset), sizes, SHA-256 of each array
``episodes.json``          one record per episode: kind, variant, seed, state_start, n_steps,
                           success, terminated, truncated, return, dense_return, switch step
``obs.npy``                ``(N, *obs_shape)`` observations
``frames.npy``             ``(N, H, W, 3)`` uint8 rendered frames (when generated with frames)
``progress.npy``           ``(N,)`` float64 ground-truth progress of each state
``success.npy``            ``(N,)`` bool ``is_success`` of each state
``terminal.npy``           ``(N,)`` bool, True for an episode's last state when it terminated
``state/<name>.npy``       ``(N, *shape)`` every task state variable (privileged ones included)
``actions.npy``            ``(M, *action_shape)``
``rewards.npy``            ``(M,)`` the env's own reward
``dense_rewards.npy``      ``(M,)`` the env family's hand-designed dense reward
                           (``dense_reward_type``, recorded by a twin env stepped in lockstep when
                           the env's own reward is another one)
=========================  ========================================================================

Arrays are plain ``.npy`` files opened memory-mapped, so loading reads nothing until an array
is indexed: scoring a million frames never holds them all in memory. A dataset is written to a
temporary folder and renamed into place when complete, so an interrupted generation leaves no
half-written dataset.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rewardlab.envs.core import Task, expert_policy, get_task
from rewardlab.envs.tasks import make, resolve_env_id, task_reward_types
from rewardlab.provenance import file_sha256, package_versions

__all__ = [
    "EPISODE_KINDS",
    "FORMAT",
    "FORMAT_VERSION",
    "DatasetConfig",
    "Episode",
    "TrajectoryDataset",
    "generate_dataset",
    "load_dataset",
]

FORMAT = "rewardlab-trajectories"
FORMAT_VERSION = 1
EPISODE_KINDS = ("expert", "random", "partial", "near_miss", "counterfactual")
_CONTINUATIONS = ("random", "idle")
_MAX_REDRAWS = 50  # seeds tried for a failing near-miss before giving up

Policy = Callable[[int, Any, Mapping[str, Any]], Any]
"""``policy(t, obs, info) -> action`` at step ``t`` of an episode."""


def _check_range(name: str, value: tuple[float, float], low: float, high: float) -> None:
    a, b = value
    if not low <= a <= b <= high:
        raise ValueError(f"{name} must be (a, b) with {low} <= a <= b <= {high}, got {value!r}")


@dataclass(frozen=True)
class DatasetConfig:
    """How a dataset is generated; stored in its metadata, so it can be regenerated exactly.

    Attributes:
        env_id: A registered rewardlab env id, e.g. ``"rewardlab/GridKeyDoor-v0"``.
        episodes: Episodes per kind, e.g. ``{"expert": 10, "random": 10}``; kinds left out
            get none.
        seed: Base seed: episode seeds are ``seed, seed + 1, ...`` in generation order, and
            every policy's random stream is seeded from the episode's seed.
        env_kwargs: ``gym.make`` keywords (e.g. render size).
        frames: Render and store a frame of every state.
        max_steps: Cut episodes after this many steps (counted as truncated); None keeps the
            registered time limit.
        continuation: What ``partial`` episodes do after the expert part: ``"random"`` or
            ``"idle"``.
        partial_fraction: Range of the fraction of the expert's steps a partial episode keeps.
        near_miss_progress: Range of the progress at which near-misses leave the expert.
    """

    env_id: str
    episodes: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(EPISODE_KINDS, 4))
    seed: int = 0
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    frames: bool = True
    max_steps: int | None = None
    continuation: str = "random"
    partial_fraction: tuple[float, float] = (0.2, 0.8)
    near_miss_progress: tuple[float, float] = (0.6, 0.9)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.episodes) - set(EPISODE_KINDS))
        if unknown:
            raise ValueError(f"unknown episode kind(s) {unknown}; valid kinds are {EPISODE_KINDS}")
        for kind, n in self.episodes.items():
            if not isinstance(n, int) or n < 0:
                raise ValueError(f"episodes[{kind!r}] must be an int >= 0, got {n!r}")
        if sum(self.episodes.values()) == 0:
            raise ValueError(
                "a dataset needs at least one episode, but every count in episodes is 0 "
                "(pass --episodes 1 or more)"
            )
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {self.max_steps!r}")
        if self.continuation not in _CONTINUATIONS:
            raise ValueError(
                f"continuation must be one of {_CONTINUATIONS}, got {self.continuation!r}"
            )
        _check_range("partial_fraction", self.partial_fraction, 0.0, 1.0)
        _check_range("near_miss_progress", self.near_miss_progress, 0.0, 1.0)
        resolve_env_id(self.env_id)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (``DatasetConfig(**d)`` rebuilds it)."""
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetConfig:
        """Inverse of :meth:`to_dict`."""
        d = dict(data)
        for key in ("partial_fraction", "near_miss_progress"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


@dataclass(frozen=True)
class Episode:
    """One episode's record in ``episodes.json`` (see the module docstring)."""

    kind: str
    variant: str
    seed: int
    state_start: int
    n_steps: int
    success: bool
    terminated: bool
    truncated: bool
    episode_return: float
    dense_return: float
    switch_step: int | None


class _Rollout:
    """Arrays of one episode, collected step by step."""

    def __init__(self) -> None:
        self.obs: list[np.ndarray] = []
        self.frames: list[np.ndarray] = []
        self.progress: list[float] = []
        self.success: list[bool] = []
        self.state: list[dict[str, np.ndarray]] = []
        self.actions: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.dense_rewards: list[float] = []
        self.terminated = False
        self.truncated = False


def _random_action(space: gym.Space[Any], rng: np.random.Generator) -> Any:
    if isinstance(space, gym.spaces.Discrete):
        return int(space.start + rng.integers(space.n))
    if isinstance(space, gym.spaces.Box):
        return rng.uniform(space.low, space.high).astype(space.dtype)
    raise TypeError(f"random actions for {type(space).__name__} spaces are not supported")


class _Generator:
    """Rolls out episodes of one env (and its dense-reward twin) for :func:`generate_dataset`."""

    def __init__(self, config: DatasetConfig) -> None:
        self.config = config
        kwargs = dict(config.env_kwargs)
        render: dict[str, Any] = {"render_mode": "rgb_array"} if config.frames else {}
        self.env = make(config.env_id, **render, **kwargs)
        self.task: Task = get_task(self.env)
        for feature in ("success", "progress", "expert", "idle_action"):
            self.task.require(feature, "a dataset of expert, partial and idle episodes")
        self.expert = expert_policy(self.env)
        self.state_names = [v.name for v in self.task.state_variables]
        if "state" not in self.task.features():
            self.state_names = []
        own_type, self.dense_type = task_reward_types(self.env, kwargs)
        # The dense reward is a different reward of the same dynamics: a twin env with that
        # reward_type, stepped with the same seed and actions, reports it (no dense reward:
        # recorded as NaN).
        self.twin: gym.Env[Any, Any] | None = None
        if self.dense_type is not None and own_type != self.dense_type:
            self.twin = make(config.env_id, **{**kwargs, "reward_type": self.dense_type})
        self._expert_cache: dict[int, tuple[list[Any], int | None]] = {}

    def close(self) -> None:
        self.env.close()
        if self.twin is not None:
            self.twin.close()

    def _record_state(self, out: _Rollout, obs: Any, info: Mapping[str, Any]) -> None:
        out.obs.append(np.asarray(obs))
        out.progress.append(float(info["progress"]))
        out.success.append(bool(info["is_success"]))
        out.state.append(self.task.state() if self.state_names else {})
        if self.config.frames:
            frame = self.env.render()
            assert isinstance(frame, np.ndarray)
            out.frames.append(frame)

    def rollout(self, seed: int, policy: Policy, limit: int | None = None) -> _Rollout:
        """One episode from ``reset(seed)``, ended after ``limit`` steps if given (not counted
        as truncated)."""
        out = _Rollout()
        obs, info = self.env.reset(seed=seed)
        if self.twin is not None:
            self.twin.reset(seed=seed)
        self._record_state(out, obs, info)
        t = 0
        while limit is None or t < limit:
            action = policy(t, obs, info)
            obs, reward, terminated, truncated, info = self.env.step(action)
            dense: Any = reward if self.dense_type is not None else math.nan
            if self.twin is not None:
                _, dense, _, _, twin_info = self.twin.step(action)
                if twin_info["progress"] != info["progress"]:
                    raise RuntimeError(
                        f"{self.config.env_id} is not deterministic: its twin with "
                        f"reward_type={self.dense_type!r} diverged at step {t} of seed {seed}"
                    )
            out.actions.append(np.asarray(action))
            out.rewards.append(float(reward))
            out.dense_rewards.append(float(dense))
            self._record_state(out, obs, info)
            t += 1
            if terminated or truncated:
                out.terminated, out.truncated = bool(terminated), bool(truncated)
                break
            if self.config.max_steps is not None and t >= self.config.max_steps:
                out.truncated = True
                break
        return out

    def expert_plan(self, seed: int) -> tuple[list[Any], int | None]:
        """The expert's actions from ``seed`` (without rendering) and its first success step."""
        if seed not in self._expert_cache:
            env = make(self.config.env_id, **dict(self.config.env_kwargs))
            act = expert_policy(env)
            obs, info = env.reset(seed=seed)
            actions: list[Any] = []
            first_success: int | None = None
            done = False
            while not done and len(actions) < (self.config.max_steps or math.inf):
                a = act(obs)
                actions.append(a)
                obs, _, terminated, truncated, info = env.step(a)
                done = terminated or truncated
                if info["is_success"] and first_success is None:
                    first_success = len(actions)
            env.close()
            self._expert_cache[seed] = (actions, first_success)
        return self._expert_cache[seed]


def _episode(kind: str, variant: str, seed: int, r: _Rollout, switch: int | None) -> Episode:
    return Episode(
        kind=kind,
        variant=variant,
        seed=seed,
        state_start=-1,
        n_steps=len(r.actions),
        success=any(r.success),
        terminated=r.terminated,
        truncated=r.truncated,
        episode_return=float(sum(r.rewards)),
        dense_return=float(sum(r.dense_rewards)),
        switch_step=switch,
    )


class _Switch:
    """``first`` until step ``at_step`` or progress ``at_progress``, then ``then``; remembers the
    switch step."""

    def __init__(
        self,
        first: Policy,
        then: Policy,
        *,
        at_step: float = math.inf,
        at_progress: float = math.inf,
    ) -> None:
        self.first, self.then = first, then
        self.at_step, self.at_progress = at_step, at_progress
        self.step: int | None = None

    def __call__(self, t: int, obs: Any, info: Mapping[str, Any]) -> Any:
        if self.step is None and (t >= self.at_step or info["progress"] >= self.at_progress):
            self.step = t
        return (self.first if self.step is None else self.then)(t, obs, info)


def _generate(gen: _Generator) -> Iterator[tuple[Episode, _Rollout]]:
    """Every episode of the dataset, in a fixed order (kinds as in ``EPISODE_KINDS``)."""
    cfg, source, space = gen.config, gen.task.env, gen.env.action_space
    seeds = itertools.count(cfg.seed)

    def expert(t: int, obs: Any, info: Mapping[str, Any]) -> Any:
        return gen.expert(obs)

    def idle(t: int, obs: Any, info: Mapping[str, Any]) -> Any:
        return source.idle_action()

    for kind in EPISODE_KINDS:
        for i in range(cfg.episodes.get(kind, 0)):
            seed = next(seeds)
            rng = np.random.default_rng([cfg.seed, seed, EPISODE_KINDS.index(kind)])

            def random(t: int, obs: Any, info: Mapping[str, Any], rng: Any = rng) -> Any:
                return _random_action(space, rng)

            if kind == "expert":
                r = gen.rollout(seed, expert)
                yield _episode(kind, "", seed, r, None), r
            elif kind == "random":
                r = gen.rollout(seed, random)
                yield _episode(kind, "", seed, r, 0), r
            elif kind == "partial":
                plan, first_success = gen.expert_plan(seed)
                need = first_success if first_success is not None else len(plan)
                k = int(round(rng.uniform(*cfg.partial_fraction) * need))
                then = random if cfg.continuation == "random" else idle
                policy = _Switch(expert, then, at_step=k)
                r = gen.rollout(seed, policy)
                yield _episode(kind, cfg.continuation, seed, r, k), r
            elif kind == "near_miss":
                yield _near_miss(gen, seed, rng, seeds, expert, random)
            elif i % 2 == 0:  # counterfactual: the expert, cut one step before success
                yield _clipped(gen, seed, seeds, expert)
            else:  # counterfactual: another seed's expert actions, replayed open-loop
                plan, _ = gen.expert_plan(next(seeds))

                def replay(t: int, obs: Any, info: Mapping[str, Any], plan: Any = plan) -> Any:
                    return plan[t]

                r = gen.rollout(seed, replay, limit=len(plan))
                yield _episode(kind, "other_goal", seed, r, None), r


def _clipped(
    gen: _Generator, seed: int, seeds: Iterator[int], expert: Policy
) -> tuple[Episode, _Rollout]:
    """The expert cut one step before its first success; redrawn with the next seed when the
    expert does not succeed or succeeds at once (nothing to cut)."""
    for _ in range(_MAX_REDRAWS):
        _, first_success = gen.expert_plan(seed)
        if first_success is not None and first_success >= 2:
            r = gen.rollout(seed, expert, limit=first_success - 1)
            return _episode("counterfactual", "clipped", seed, r, first_success - 1), r
        seed = next(seeds)
    raise RuntimeError(
        f"the expert of {gen.config.env_id} never took 2 or more steps to succeed in "
        f"{_MAX_REDRAWS} seeds: there is no episode to clip"
    )


def _near_miss(
    gen: _Generator,
    seed: int,
    rng: np.random.Generator,
    seeds: Iterator[int],
    expert: Policy,
    random: Policy,
) -> tuple[Episode, _Rollout]:
    """The expert until progress reaches a random level, then random actions; redrawn with
    the next seed until the episode fails."""
    for _ in range(_MAX_REDRAWS):
        level = float(rng.uniform(*gen.config.near_miss_progress))
        policy = _Switch(expert, random, at_progress=level)
        r = gen.rollout(seed, policy)
        if not any(r.success):
            return _episode("near_miss", "", seed, r, policy.step), r
        seed = next(seeds)
    raise RuntimeError(
        f"no near-miss of {gen.config.env_id} failed in {_MAX_REDRAWS} seeds: random actions "
        "near the goal keep succeeding; lower near_miss_progress"
    )


def _is_dataset(path: Path) -> bool:
    try:
        return json.loads((path / "metadata.json").read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def generate_dataset(
    config: DatasetConfig, path: str | Path, *, overwrite: bool = False
) -> TrajectoryDataset:
    """Roll out the episodes ``config`` describes and save them as a dataset folder.

    The same config gives byte-identical arrays (every random stream is seeded from it).
    Episodes are written to disk as they finish, so memory holds one episode at a time.

    Args:
        config: What to generate.
        path: Folder to create. Written as a temporary sibling folder first and renamed into
            place when complete.
        overwrite: Replace an existing dataset at ``path`` (never a folder that is not one).

    Returns:
        The new dataset, opened lazily.

    Raises:
        FileExistsError: If ``path`` exists and ``overwrite`` is False.
        ValueError: If ``path`` exists and is not a rewardlab dataset (it is never deleted).
    """
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise FileExistsError(
                f"{path} already exists; load it with load_dataset, or pass overwrite=True "
                "(--overwrite-dataset) to regenerate it"
            )
        if not _is_dataset(path):
            raise ValueError(
                f"{path} exists and is not a {FORMAT} dataset (no metadata.json of that "
                "format); refusing to delete it: choose another path"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        _write(config, tmp)
        if path.exists():
            # Old out of the way first, new in, old deleted last: a crash in between leaves
            # both on disk, never neither.
            old = tmp.with_name(tmp.name + ".old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_dataset(path, env_id=config.env_id)


class _Sink:
    """Arrays appended episode by episode to raw files, turned into ``.npy`` files at the end
    (a ``.npy`` header needs the final row count)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._files: dict[str, Any] = {}
        self._layout: dict[str, tuple[np.dtype[Any], tuple[int, ...]]] = {}
        self._rows: dict[str, int] = {}

    def append(self, name: str, rows: Sequence[Any], dtype: Any = None) -> None:
        if name not in self._layout:
            first = np.asarray(rows[0], dtype=dtype)
            self._layout[name] = (first.dtype, first.shape)
            self._rows[name] = 0
            raw = self.folder / f"{name}.raw"
            raw.parent.mkdir(parents=True, exist_ok=True)
            self._files[name] = raw.open("wb")
        dt, shape = self._layout[name]
        arr = np.asarray(rows, dtype=dt)
        if arr.shape[1:] != shape:
            raise ValueError(f"{name}: rows of shape {arr.shape[1:]}, expected {shape}")
        self._files[name].write(np.ascontiguousarray(arr).tobytes())
        self._rows[name] += len(arr)

    def finish(self) -> None:
        for name, f in self._files.items():
            f.close()
            dt, shape = self._layout[name]
            raw = self.folder / f"{name}.raw"
            header = {
                "descr": np.lib.format.dtype_to_descr(dt),
                "fortran_order": False,
                "shape": (self._rows[name], *shape),
            }
            with (self.folder / f"{name}.npy").open("wb") as out, raw.open("rb") as src:
                np.lib.format.write_array_header_1_0(out, header)
                shutil.copyfileobj(src, out)  # the raw rows are the .npy's C-order data
            raw.unlink()


def _write(config: DatasetConfig, folder: Path) -> None:
    sink = _Sink(folder)
    gen = _Generator(config)
    episodes: list[Episode] = []
    start = 0
    try:
        state_names = gen.state_names
        for ep, r in _generate(gen):
            episodes.append(dataclasses.replace(ep, state_start=start))
            start += len(r.obs)
            sink.append("obs", r.obs)
            if config.frames:
                sink.append("frames", r.frames, np.uint8)
            sink.append("progress", r.progress, np.float64)
            sink.append("success", r.success, bool)
            sink.append(
                "terminal", [r.terminated and j == len(r.obs) - 1 for j in range(len(r.obs))], bool
            )
            for name in state_names:
                sink.append(f"state/{name}", [x[name] for x in r.state])
            sink.append("actions", r.actions)
            sink.append("rewards", r.rewards, np.float64)
            sink.append("dense_rewards", r.dense_rewards, np.float64)
        dense_type = gen.dense_type
    finally:
        gen.close()
    sink.finish()

    spec = gym.spec(config.env_id)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.npy"))
    (folder / "episodes.json").write_text(
        json.dumps([dataclasses.asdict(e) for e in episodes], indent=1)
    )
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "env_id": config.env_id,
        "env_version": spec.version,
        "max_episode_steps": spec.max_episode_steps,
        "dense_reward_type": dense_type,
        "versions": package_versions(("rewardlab", "gymnasium", "numpy", "mujoco")),
        "generator": config.to_dict(),
        "n_episodes": len(episodes),
        "n_states": start,
        "n_transitions": start - len(episodes),
        "state_variables": state_names,
        "sha256": {f: file_sha256(folder / f) for f in files},
    }
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=1))


class _Stored:
    """An attribute of :class:`TrajectoryDataset`: its stored array of the same name."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, ds: TrajectoryDataset | None, owner: type) -> Any:
        return self if ds is None else ds.array(self.name)

    def __set__(self, ds: TrajectoryDataset, value: Any) -> None:
        raise AttributeError(f"{self.name} is stored in the dataset folder; it cannot be set")


class TrajectoryDataset:
    """A dataset folder opened lazily (arrays are memory-mapped on first use).

    Use :func:`load_dataset` to open one and :func:`generate_dataset` to make one.

    Attributes:
        path: The folder.
        metadata: The parsed ``metadata.json``.
        episodes: The episode records, in storage order.
    """

    def __init__(self, path: Path, metadata: dict[str, Any], episodes: list[Episode]) -> None:
        self.path = path
        self.metadata = metadata
        self.episodes = episodes
        self._arrays: dict[str, np.ndarray] = {}

    # -- sizes and layout --

    @property
    def env_id(self) -> str:
        """The env id the episodes were rolled out in."""
        return str(self.metadata["env_id"])

    @property
    def config(self) -> DatasetConfig:
        """The generator settings; ``generate_dataset(ds.config, ...)`` regenerates it."""
        return DatasetConfig.from_dict(self.metadata["generator"])

    @property
    def n_states(self) -> int:
        """Number of state rows ``N``."""
        return int(self.metadata["n_states"])

    @property
    def n_transitions(self) -> int:
        """Number of transition rows ``M = N - episodes``."""
        return int(self.metadata["n_transitions"])

    @property
    def has_frames(self) -> bool:
        """True when the dataset was generated with frames."""
        return (self.path / "frames.npy").exists()

    @property
    def state_starts(self) -> np.ndarray:
        """``(E,)`` first state row of each episode."""
        return np.array([e.state_start for e in self.episodes], dtype=np.int64)

    @property
    def transition_starts(self) -> np.ndarray:
        """``(E,)`` first transition row of each episode."""
        return self.state_starts - np.arange(len(self.episodes))

    @property
    def n_steps(self) -> np.ndarray:
        """``(E,)`` transitions per episode."""
        return np.array([e.n_steps for e in self.episodes], dtype=np.int64)

    def transition_states(self) -> tuple[np.ndarray, np.ndarray]:
        """``(s, s2)``: the state rows each transition leaves and enters, each ``(M,)``."""
        s = np.arange(self.n_transitions) + self.transition_episode()
        return s, s + 1

    def transition_episode(self) -> np.ndarray:
        """``(M,)`` episode index of every transition."""
        return np.repeat(np.arange(len(self.episodes)), self.n_steps)

    # -- arrays (memory-mapped) --

    def array(self, name: str) -> np.ndarray:
        """A stored array by file stem (``"frames"``, ``"state/agent_pos"``), memory-mapped.

        Raises:
            KeyError: Naming the arrays the dataset has.
        """
        if name not in self._arrays:
            file = self.path / f"{name}.npy"
            if not file.exists():
                have = sorted(f.removesuffix(".npy") for f in self.metadata["sha256"])
                hint = (
                    "; it was generated without frames (regenerate with frames=True)"
                    if name == "frames"
                    else ""
                )
                raise KeyError(f"dataset {self.path} has no array {name!r}{hint}; it has {have}")
            self._arrays[name] = np.load(file, mmap_mode="r")
        return self._arrays[name]

    obs = _Stored("``(N, *obs_shape)`` observations.")
    frames = _Stored("``(N, H, W, 3)`` uint8 frames.")
    progress = _Stored("``(N,)`` ground-truth progress.")
    success = _Stored("``(N,)`` bool ``is_success``.")
    terminal = _Stored("``(N,)`` bool, True for the last state of an episode that terminated.")
    actions = _Stored("``(M, *action_shape)`` actions.")
    rewards = _Stored("``(M,)`` the env's own rewards.")
    dense_rewards = _Stored("``(M,)`` the env family's dense expert rewards.")

    def state(self, name: str) -> np.ndarray:
        """``(N, *shape)`` values of the task state variable ``name``."""
        return self.array(f"state/{name}")

    def verify(self) -> None:
        """Check every array against the SHA-256 in the metadata.

        Raises:
            ValueError: Naming the files that changed since generation.
        """
        bad = [f for f, h in self.metadata["sha256"].items() if file_sha256(self.path / f) != h]
        if bad:
            raise ValueError(f"dataset {self.path}: {bad} changed since generation; regenerate it")

    def __repr__(self) -> str:
        kinds = {k: sum(e.kind == k for e in self.episodes) for k in EPISODE_KINDS}
        kinds = {k: n for k, n in kinds.items() if n}
        return (
            f"TrajectoryDataset({str(self.path)!r}, env_id={self.env_id!r}, episodes={kinds}, "
            f"transitions={self.n_transitions}, frames={self.has_frames})"
        )


def load_dataset(path: str | Path, *, env_id: str | None = None) -> TrajectoryDataset:
    """Open a dataset folder lazily, checking its format and, if given, its env id.

    Args:
        path: The folder :func:`generate_dataset` wrote.
        env_id: The env the caller will judge rewards on; the dataset must come from exactly
            this id (name and version).

    Raises:
        FileNotFoundError: No dataset at ``path``.
        ValueError: Another format or format version, another env or env version, or no
            transitions.
    """
    path = Path(path)
    meta_file = path / "metadata.json"
    if not meta_file.exists():
        raise FileNotFoundError(
            f"no trajectory dataset at {path} (no metadata.json); generate one: rewardlab "
            "eval-reward --env ID without --dataset writes <out>/dataset, or call "
            "generate_dataset(DatasetConfig(ID), PATH)"
        )
    metadata = json.loads(meta_file.read_text())
    if metadata.get("format") != FORMAT or metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} is not a {FORMAT} v{FORMAT_VERSION} dataset (format "
            f"{metadata.get('format')!r} v{metadata.get('format_version')!r}); regenerate it"
        )
    if env_id is not None and metadata["env_id"] != env_id:
        mine, theirs = metadata["env_id"], env_id
        same_task = mine.rsplit("-v", 1)[0] == theirs.rsplit("-v", 1)[0]
        why = (
            "another version of the env: its dynamics, rewards or observations differ"
            if same_task
            else "another env"
        )
        raise ValueError(
            f"dataset {path} was generated from {mine}, not {theirs} ({why}); generate one for "
            f"{theirs}: rewardlab eval-reward --env {theirs} without --dataset (it writes "
            "<out>/dataset), or generate_dataset(DatasetConfig(...), NEW_PATH)"
        )
    try:
        resolve_env_id(metadata["env_id"])
    except ValueError:
        raise ValueError(
            f"dataset {path} comes from {metadata['env_id']}, which is not registered here; "
            "install the rewardlab version or the package that registers it"
        ) from None
    episodes = [Episode(**e) for e in json.loads((path / "episodes.json").read_text())]
    if not episodes or metadata["n_transitions"] == 0:
        raise ValueError(
            f"dataset {path} is empty (no transitions); regenerate it with more episodes"
        )
    return TrajectoryDataset(path, metadata, episodes)
