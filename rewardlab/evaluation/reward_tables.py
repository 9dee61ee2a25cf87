"""Rewards as arrays over a table of states: each reward spec evaluated, in batches, on the
states of a trajectory dataset (or on every state of a gridworld).

Every reward a :class:`~rewardlab.reward_spec.RewardSpec` describes pays, on a transition
``(s, a, s')``::

    R(s, a, s') = u(s, a, s') + v(s') + gamma * Phi'(s') - Phi'(s)
    Phi'(s) = (1 - terminal(s)) * Phi(s)

``u`` is a reward the env recorded (its own, or its dense reference reward), ``v`` the state
reward (a reward model of ``s'``: CLIP score of its frame, an info value such as progress),
``Phi`` the shaping potential. ``Phi'`` is zero on true terminal states, exactly as the shaping
wrappers pay it (:func:`~rewardlab.reward_models.potentials.shaping_term`), so the shaping part
is a pure potential difference. A :class:`TermReward` holds these terms as arrays over a
*state table* (the dataset's state rows, or every state of a tabular MDP): rewards that have no
recorded term can then be evaluated on any ``(s, a, s')`` of the table, which EPIC's
canonicalization needs.

Frames are encoded once per encoder (:class:`ModelCache`): every CLIP reward sharing a
model, weights and resize policy, whatever its head, options or prompts, reuses the same image
embeddings.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from rewardlab.progress import Progress
from rewardlab.reward_models.potentials import check_mismatched_discount
from rewardlab.reward_spec import (
    BuiltModelSpec,
    ClipModelSpec,
    InfoModelSpec,
    LearnedModelSpec,
    ProgramModelSpec,
    RewardSpec,
    build_model,
)

__all__ = [
    "STATE_INFO_KEYS",
    "ModelCache",
    "StateTable",
    "TermReward",
    "check_spec",
    "random_reward",
    "recorded_reward",
    "spec_reward",
]

STATE_INFO_KEYS = ("progress", "is_success")
"""Info keys a dataset stores per state; reward models may read these."""


@dataclass
class StateTable:
    """States a reward is scored on, one row each.

    Attributes:
        key: Names the table (cache key of its frame embeddings).
        obs: ``(N, *obs_shape)`` observations.
        progress: ``(N,)`` ground-truth progress.
        success: ``(N,)`` bool success.
        terminal: ``(N,)`` bool, True for true terminal states.
        frames: ``(N, H, W, 3)`` uint8 frames (may be memory-mapped), or None.
        states: ``{name: (N, *shape)}`` task state variables (reward programs read them).
    """

    key: str
    obs: np.ndarray
    progress: np.ndarray
    success: np.ndarray
    terminal: np.ndarray
    frames: np.ndarray | None = None
    states: Mapping[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.progress)

    def info(self, key: str) -> np.ndarray:
        """``(N,)`` values of a state-level info key."""
        _check_state_key(key)
        return np.asarray(self.progress if key == "progress" else self.success, dtype=np.float64)


def _check_state_key(key: str) -> None:
    if key not in STATE_INFO_KEYS:
        raise ValueError(
            f"info key {key!r} is not stored per state; reward models judged on a dataset may "
            f"read {list(STATE_INFO_KEYS)} (transition-level keys such as reward_* are not kept)"
        )


@dataclass(frozen=True)
class TermReward:
    """A reward as ``u + v(s') + gamma Phi'(s') - Phi'(s)`` over a state table.

    Attributes:
        name: Row label in reports.
        values: ``(N,)`` state reward ``v`` of each row, or None.
        potential: ``(N,)`` shaping potential ``Phi`` of each row, or None.
        gamma: Shaping discount.
        recorded: Which recorded reward ``u`` is added: ``"env"`` (the env's own), ``"dense"``
            (its dense reference reward) or None.
        is_negative_control: True for the controls that break policy invariance on purpose.
    """

    name: str
    values: np.ndarray | None = None
    potential: np.ndarray | None = None
    gamma: float = 0.99
    recorded: str | None = None
    is_negative_control: bool = False

    def _phi(self, terminal: np.ndarray) -> np.ndarray | None:
        if self.potential is None:
            return None
        return np.where(np.asarray(terminal, dtype=bool), 0.0, self.potential)

    def _add_terms(self, out: np.ndarray, s: Any, s2: Any, phi: np.ndarray | None) -> np.ndarray:
        """``out + v(s') + gamma Phi'(s') - Phi'(s)`` on rows ``s -> s2`` (broadcast)."""
        if self.values is not None:
            out += self.values[s2]
        if phi is not None:
            out += self.gamma * phi[s2] - phi[s]
        return out

    def _recorded_or_zeros(
        self, shape: tuple[int, ...], recorded: np.ndarray | None, what: str
    ) -> np.ndarray:
        out = np.zeros(shape)
        if self.recorded is not None:
            if recorded is None:
                raise ValueError(f"{self.name}: needs the recorded {self.recorded} {what}")
            out += recorded
        return out

    def on_transitions(
        self, s: np.ndarray, s2: np.ndarray, terminal: np.ndarray, recorded: np.ndarray | None
    ) -> np.ndarray:
        """``(M,)`` rewards of transitions ``s -> s2`` (rows of the table), with the
        recorded rewards of those same transitions when :attr:`recorded` is set."""
        out = self._recorded_or_zeros((len(s),), recorded, "rewards")
        return self._add_terms(out, s, s2, self._phi(terminal))

    def index_function(
        self, terminal: np.ndarray
    ) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None:
        """``R(s_idx, a_idx, s2_idx)`` on ANY rows of the table (actions do not matter), or None
        for rewards with a recorded term (known only on the transitions that happened)."""
        if self.recorded is not None:
            return None
        values, phi, gamma = self.values, self._phi(terminal), self.gamma

        def reward(s: np.ndarray, a: np.ndarray, s2: np.ndarray) -> np.ndarray:
            # (v + gamma Phi') - Phi, in this order: earlier reports' values, bit for bit.
            out = np.zeros(len(s), dtype=np.float64) if values is None else values[s2]
            if phi is not None:
                out = out + gamma * phi[s2] - phi[s]
            return out

        return reward

    def tensor(
        self, terminal: np.ndarray, n_actions: int, recorded: np.ndarray | None
    ) -> np.ndarray:
        """``(S, A, S)`` reward tensor over every state of a tabular table."""
        n = len(terminal)
        out = self._recorded_or_zeros((n, n_actions, n), recorded, "reward tensor")
        rows = np.arange(n)
        return self._add_terms(out, rows[:, None, None], rows[None, None, :], self._phi(terminal))


class ModelCache:
    """The models reward specs need, built once: CLIP encoders (with their frame embeddings,
    computed once per encoder and table) and sandboxed reward programs.

    Args:
        env_id: The env whose task prompts CLIP specs default to.
        env_kwargs: Its ``gym.make`` keywords.
        batch_size: Frames per forward pass.
        log: Progress of frame encoding (``[k/N, ETA ...]`` about ten times per encoder and
            table), or None.
    """

    def __init__(
        self,
        env_id: str,
        env_kwargs: Mapping[str, Any] | None = None,
        batch_size: int = 64,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.env_id = env_id
        self.log = log
        self.env_kwargs = dict(env_kwargs or {})
        self.batch_size = batch_size
        self._models: dict[tuple[Any, ...], Any] = {}  # one loaded encoder per key
        self._points: dict[str, Any] = {}  # one prompted, headed model per spec
        self._embeddings: dict[tuple[Any, ...], np.ndarray] = {}
        self._programs: dict[str, Any] = {}  # one sandboxed program per spec
        self.frames_encoded = 0

    def program(self, spec: ProgramModelSpec | LearnedModelSpec) -> Any:
        """The model of a program spec (a
        :class:`~rewardlab.reward_models.program_reward.ProgramReward`, validated against the
        task, its sandbox worker started once) or of a learned reward (its checkpoint checked
        against the env), built once."""
        key = spec.model_dump_json()
        if key not in self._programs:
            self._programs[key] = build_model(spec, self.env_id, self.env_kwargs)
        return self._programs[key]

    def program_corrections(self) -> dict[str, dict[str, Any]]:
        """The diagnostics of each program whose sandbox had to correct it (non-finite
        values replaced, rewards clipped, failed calls), by the program's path (or hash)."""
        from rewardlab.reward_models.program_reward import corrections

        out = {}
        for key, model in self._programs.items():
            report = model.diagnostics()
            if corrections(report):
                path = json.loads(key).get("path")
                out[path if path else report["sha256"][:12]] = report
        return out

    def close(self) -> None:
        """Stop the sandbox workers of the programs."""
        for model in self._programs.values():
            model.close()
        self._programs.clear()

    @functools.cached_property
    def _task_prompts(self) -> dict[str, Any]:
        """The task's own goal, baseline and negatives (what ``CLIPRewardModel.from_task`` uses)."""
        from rewardlab.envs import get_task, make

        env = make(self.env_id, **self.env_kwargs)
        try:
            task = get_task(env)
        finally:
            env.close()
        return {"goal": task.goal, "baseline": task.baseline, "negatives": list(task.negatives)}

    @staticmethod
    def encoder_key(spec: ClipModelSpec) -> tuple[Any, ...]:
        """What decides the image embeddings: model, weights, device, frame policy, precision."""
        return (spec.model, spec.pretrained, spec.device, spec.resize, spec.crop, spec.precision)

    def model(self, spec: ClipModelSpec) -> Any:
        """A :class:`~rewardlab.reward_models.clip.CLIPRewardModel` for ``spec``, sharing the
        encoder of every spec with the same :meth:`encoder_key`."""
        point = spec.model_dump_json()
        if point not in self._points:
            key = self.encoder_key(spec)
            if key not in self._models:
                self._models[key] = build_model(spec, self.env_id, self.env_kwargs)
            prompts = dict(self._task_prompts)
            for name in ("goal", "baseline", "negatives"):
                if getattr(spec, name) is not None:
                    prompts[name] = getattr(spec, name)
            self._points[point] = self._models[key].with_prompts(
                **prompts, head=spec.head, **spec.options
            )
        return self._points[point]

    def embeddings(self, spec: ClipModelSpec, table: StateTable) -> np.ndarray:
        """``(N, D)`` float32 image embeddings of every frame of ``table``, once per encoder."""
        key = (*self.encoder_key(spec), table.key)
        if key not in self._embeddings:
            if table.frames is None:
                raise ValueError(
                    f"CLIP rewards need frames, but {table.key} has none; regenerate the dataset "
                    "with frames (eval-reward --frames --overwrite-dataset, or "
                    "DatasetConfig(frames=True))"
                )
            model = self.model(spec)
            # float32, filled batch by batch: half the memory of float64 for a million frames
            # (the heads score in float64 again).
            out: np.ndarray | None = None
            progress, every = Progress(len(table)), max(len(table) // 10, self.batch_size)
            next_log = every
            for i in range(0, len(table), self.batch_size):
                emb = model.encode_frames(np.asarray(table.frames[i : i + self.batch_size]))
                if out is None:
                    out = np.empty((len(table), emb.shape[1]), dtype=np.float32)
                out[i : i + len(emb)] = emb
                tick = progress.tick(len(emb))
                if self.log is not None and progress.done >= min(next_log, len(table)):
                    self.log(f"{tick} frames encoded by {spec.model} ({table.key})")
                    next_log = progress.done + every
            assert out is not None, "a state table has at least one row"
            self.frames_encoded += len(table)
            self._embeddings[key] = out
        return self._embeddings[key]

    def values(self, spec: ClipModelSpec, table: StateTable) -> np.ndarray:
        """``(N,)`` rewards of ``spec`` on every frame of ``table``."""
        emb = self.embeddings(spec, table)
        return np.asarray(self.model(spec).score(emb), dtype=np.float64)


def _model_values(
    spec: Literal["progress"] | BuiltModelSpec,
    table: StateTable,
    models: ModelCache,
) -> np.ndarray:
    if spec == "progress":
        return table.info("progress")
    if isinstance(spec, InfoModelSpec):
        return spec.scale * table.info(spec.key) + spec.shift
    if isinstance(spec, ProgramModelSpec):
        if table.states is None:
            raise ValueError(f"reward programs need state variables, but {table.key} has none")
        return np.asarray(models.program(spec).values(table.states), dtype=np.float64)
    if isinstance(spec, LearnedModelSpec):
        return _learned_values(models.program(spec), table, log=models.log, name=spec.path)
    return models.values(spec, table)


def _learned_values(
    model: Any,
    table: StateTable,
    chunk: int = 256,
    log: Callable[[str], None] | None = None,
    name: str = "the learned reward",
) -> np.ndarray:
    """``(N,)`` rewards of a learned reward ``r(s')`` on every state of ``table``, in batches
    (frames stay memory-mapped until their batch); a frames reward logs its progress about ten
    times."""
    from rewardlab.info_keys import STATE_PREFIX
    from rewardlab.reward_models.base import RewardBatch

    if model.needs_frames and table.frames is None:
        raise ValueError(f"this learned reward reads frames, but {table.key} has none")
    if not model.needs_frames:
        table = dataclasses.replace(table, frames=None)
    n = len(table.terminal)
    out = np.empty(n, dtype=np.float64)
    progress, every = Progress(n), max(n // 10, chunk)
    next_log = every
    for start in range(0, n, chunk):
        rows = slice(start, min(n, start + chunk))
        info = {f"{STATE_PREFIX}{k}": v[rows] for k, v in (table.states or {}).items()}
        frames = np.asarray(table.frames[rows]) if table.frames is not None else None
        obs = np.asarray(table.obs[rows])
        batch = RewardBatch.of_rows(
            obs, np.zeros((len(obs), 0)), obs, table.terminal[rows], frames, info
        )
        out[rows] = model(batch).reward
        tick = progress.tick(len(obs))
        if log is not None and model.needs_frames and progress.done >= min(next_log, n):
            log(f"{tick} frames scored by {name} ({table.key})")
            next_log = progress.done + every
    return out


def _recorded_term(spec: RewardSpec, own: str, dense: str | None) -> str | None:
    """Which env reward a spec pays: ``"env"``, ``"dense"``, ``"sparse"`` or None (none)."""
    if spec.model is not None and spec.mode == "replace":
        return None
    kind = spec.reward_type
    if kind is None or kind == own:
        # A sparse own reward is success(s'): scored as a state reward, EPIC can canonicalize it.
        return "sparse" if own == "sparse" else "env"
    if kind == dense:
        return "dense"
    if kind == "sparse":
        return "sparse"
    recorded = sorted({own, "sparse"} | ({dense} if dense is not None else set()))
    raise ValueError(
        f"reward_type {kind!r} is not in the dataset, which records {recorded} ('sparse' as "
        f"success(s')); to judge it, generate a dataset of that reward: --env-kwarg "
        f"reward_type={kind} with another --out (or --overwrite-dataset)"
    )


def check_spec(
    name: str,
    spec: RewardSpec,
    *,
    gamma: float,
    own_reward_type: str,
    dense_reward_type: str | None,
) -> None:
    """Raise if a dataset cannot score ``spec`` or training would refuse it (a shaping
    discount equal to the agent's in a mismatched-discount control); builds nothing.

    Raises:
        ValueError: Saying what is wrong and what to do.
    """
    try:
        _recorded_term(spec, own_reward_type, dense_reward_type)
        for part in (spec.model, spec.shaping):
            if isinstance(part, InfoModelSpec):
                _check_state_key(part.key)
        if spec.shaping_gamma is not None:
            check_mismatched_discount(spec.shaping_gamma, gamma)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def spec_reward(
    name: str,
    spec: RewardSpec,
    table: StateTable,
    *,
    gamma: float,
    models: ModelCache,
    own_reward_type: str,
    dense_reward_type: str | None,
) -> TermReward:
    """The :class:`TermReward` of a reward spec on a state table.

    Args:
        name: Row label.
        spec: The reward (as ``rewardlab train`` would pay it).
        table: The states.
        gamma: The agent's discount (the shaping discount unless ``spec.shaping_gamma``).
        models: Shared models (CLIP encoders, reward programs).
        own_reward_type: The dataset env's own ``reward_type``.
        dense_reward_type: The env family's dense reward type (recorded too).

    Raises:
        ValueError: A reward the dataset cannot score (:func:`check_spec`).
    """
    check_spec(
        name,
        spec,
        gamma=gamma,
        own_reward_type=own_reward_type,
        dense_reward_type=dense_reward_type,
    )
    term = _recorded_term(spec, own_reward_type, dense_reward_type)
    state_terms = []  # the terms of the state reward v(s')
    if term == "sparse":
        state_terms.append(table.info("is_success"))
    if spec.model is not None:
        state_terms.append(_model_values(spec.model, table, models))
    if spec.progress_bonus is not None:
        state_terms.append(spec.progress_bonus * table.info("progress"))
    return TermReward(
        name=name,
        values=functools.reduce(np.add, state_terms) if state_terms else None,
        potential=None if spec.shaping is None else _model_values(spec.shaping, table, models),
        gamma=spec.shaping_gamma if spec.shaping_gamma is not None else gamma,
        recorded=term if term in ("env", "dense") else None,
        is_negative_control=spec.is_negative_control,
    )


def recorded_reward(name: str, which: str) -> TermReward:
    """A reward the env recorded: ``"env"`` (its own) or ``"dense"`` (its dense reference)."""
    return TermReward(name=name, recorded=which)


def random_reward(name: str, table: StateTable, seed: int) -> TermReward:
    """A random reward function: i.i.d. standard normal values per state (a chance baseline)."""
    rng = np.random.default_rng(seed)
    return TermReward(name=name, values=rng.standard_normal(len(table)))
