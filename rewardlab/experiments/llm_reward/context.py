"""The reward context an LLM writes a reward program from (Text2Reward's compact form).

A task is described by its goal in words and by the state variables a reward program may
read, each with its batched shape, units and meaning, in a typed, Pythonic form::

    class State:
        \"\"\"Batched: every field has a leading batch dimension B.\"\"\"
        block_pos: np.ndarray  # (B, 3) m: centre of the red block, world
        ...

Privileged variables (hidden from the policy) are marked: a reward may read them. The env's
source can be appended (Eureka's form) with ``include_source=True``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from rewardlab.envs.core import StateVariable, get_task
from rewardlab.envs.registration import NAMESPACE, all_specs
from rewardlab.envs.tasks import TaskNotFound, make, resolve_env_id
from rewardlab.sandbox.protocol import MAX_COMPONENTS, MAX_NAME_CHARS, RESERVED_NAMES

__all__ = ["PROGRAM_CONTRACT", "RewardContext", "reward_context"]

_KINDS = {"b": "bool", "i": "int", "u": "int", "f": "float"}

_RESERVED = ", ".join(f"`{name}`" for name in sorted(RESERVED_NAMES))

PROGRAM_CONTRACT = f"""\
Write the reward as one Python function

    def compute_reward({{params}}) -> tuple[np.ndarray, dict[str, np.ndarray]]:

- Its parameters are state variables listed in `State`, by name; use only the ones you need.
- Every argument is a numpy array with a leading batch dimension B (many envs at once): write
  vectorized numpy (e.g. `np.linalg.norm(a - b, axis=-1)`), never loop over the batch.
- Return `(reward, components)`: `reward` of shape (B,), and a dict of named (B,) arrays,
  the terms the reward is made of, so their values can be reported back to you.
- `np` (numpy) and `math` are available; do not import anything. Helper functions are
  allowed; only function definitions may appear at module level.
- Arrays hold bool, int or float values only (no object, string or datetime dtypes). Use
  numpy functions and the common array methods (`.sum`, `.mean`, `.max`, `.clip`, `.astype`,
  `.reshape`, ...); raw-memory and conversion methods (`.item`, `.tolist`, `.view`,
  `.resize`, ...) are not available: index the array instead.
- Return the same component names on every call: identifiers (letters, digits, `_`) of at
  most {MAX_NAME_CHARS} characters, at most {MAX_COMPONENTS} of them, none named {_RESERVED}.
- Keep the reward finite and of moderate scale (roughly within [-10, 10] per step).
- Answer with a single ```python code block holding the program.
"""


@dataclass(frozen=True)
class RewardContext:
    """What an LLM is told about a task.

    Attributes:
        env_id: The env id.
        description: The task in one sentence (the registry's description).
        goal: The goal as a caption of a successful state.
        max_episode_steps: The time limit.
        variables: The state variables a program may read.
        source: The env's module source, when asked for.
        settings: The ``gym.make`` keywords the env was made with (e.g. ``{"size": 5}``): the
            description is the registered default's.
        kinds: The element kind of each variable as the env returns it (``"bool"``, ``"int"``
            or ``"float"``), in the order of ``variables``; empty: ``"bool"`` for the units
            ``"bool"``, else ``"float"``.
    """

    env_id: str
    description: str
    goal: str
    max_episode_steps: int | None
    variables: tuple[StateVariable, ...]
    source: str | None = None
    kinds: tuple[str, ...] = ()
    settings: tuple[tuple[str, Any], ...] = ()

    @property
    def variable_names(self) -> tuple[str, ...]:
        """Names a program's parameters may take."""
        return tuple(v.name for v in self.variables)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """One env's shape of every variable (a program sees a leading batch dimension)."""
        return {v.name: v.shape for v in self.variables}

    def state_class(self) -> str:
        """The variables as a typed, documented Python class (Text2Reward style)."""
        lines = [
            "class State:",
            '    """Batched: every field has a leading batch dimension B."""',
        ]
        width = max(len(v.name) for v in self.variables)
        kinds = self.kinds or tuple(
            "bool" if v.units == "bool" else "float" for v in self.variables
        )
        for v, kind in zip(self.variables, kinds, strict=True):
            shape = "(B, " + ", ".join(map(str, v.shape)) + ")" if v.shape else "(B,)"
            hidden = " [privileged: the policy does not observe it]" if v.privileged else ""
            units = "" if v.units in ("-", "bool") else f" {v.units}"
            lines.append(
                f"    {v.name:<{width}}: np.ndarray  # {shape} {kind}{units}: {v.doc}{hidden}"
            )
        return "\n".join(lines)

    def render(self) -> str:
        """The task section of a prompt: goal, episode, ``State``, optional source."""
        limit = f"up to {self.max_episode_steps} steps" if self.max_episode_steps else "no limit"
        made = ", ".join(f"{k}={v!r}" for k, v in self.settings)
        parts = [
            f"Task ({self.env_id}): {self.description}.",
            *([f"This env is made with {made}, which overrides the above."] if made else []),
            f"A successful state looks like: {self.goal}.",
            f"Episodes last {limit}; the reward is computed after every step from the state "
            "the step entered.",
            "",
            self.state_class(),
        ]
        if self.source:
            parts += ["", "The environment's source code:", "```python", self.source, "```"]
        return "\n".join(parts)

    def contract(self) -> str:
        """The reward-program contract, with this task's variable names."""
        return PROGRAM_CONTRACT.format(params=", ".join(self.variable_names))


def reward_context(
    env_id: str, env_kwargs: dict[str, Any] | None = None, *, include_source: bool = False
) -> RewardContext:
    """The :class:`RewardContext` of an env with a task: rewardlab's, or one registered with
    :func:`rewardlab.register_task` (which must provide state variables).

    Raises:
        ValueError: For an unknown env id, an env without a task, or a task without state.
    """
    env_id = resolve_env_id(env_id)
    env = make(env_id, **(env_kwargs or {}))
    try:
        try:
            task = get_task(env)
        except TaskNotFound as exc:
            raise ValueError(str(exc)) from None
        task.require("state", "a reward program's context")
        # Integer variables (grid cells, lane indices) reach a program as integer arrays: one
        # told "float" may fill np.zeros_like(agent_dir) with 0.5 and silently get 0.
        env.reset(seed=0)
        state = task.state()
        kinds = tuple(
            _KINDS.get(np.asarray(state[v.name]).dtype.kind, "float") for v in task.state_variables
        )
        # The env's source (rewardlab's env, or the adapter's: what defines its state).
        module = inspect.getmodule(type(task.env))
        source = inspect.getsource(module) if include_source and module is not None else None
    finally:
        env.close()
    descriptions = {f"{NAMESPACE}/{name}": text for name, _, _, _, text in all_specs()}
    spec = gym.spec(env_id)
    return RewardContext(
        env_id=env_id,
        description=descriptions.get(env_id, task.description or task.name).rstrip("."),
        goal=task.goal,
        max_episode_steps=spec.max_episode_steps,
        variables=task.state_variables,
        source=source,
        kinds=kinds,
        settings=tuple(sorted((env_kwargs or {}).items())),
    )
