"""Every rewardlab environment id, registered with Gymnasium under the ``rewardlab/`` namespace.

Entry points are strings, so registering imports no simulator: MuJoCo is imported by the first
``gym.make`` of a manipulation id, not by ``import rewardlab``. Variants are ids with different
kwargs, never subclasses. Time limits come from ``max_episode_steps`` here, so ``truncated`` is
Gymnasium's ``TimeLimit`` and ``terminated`` is left to true terminal states.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

NAMESPACE = "rewardlab"

# (name, entry point, kwargs, max_episode_steps, one-line description)
_GRID = "rewardlab.envs.gridworld:GridWorldEnv"
_MANIP = "rewardlab.envs.manipulation:ManipulationEnv"
_DRIVE = "rewardlab.envs.driving:DrivingEnv"

# --- gridworlds -------------------------------------------------------------------------------
GRIDWORLD_IDS: list[tuple[str, str, dict[str, Any], int, str]] = []

# --- manipulation -----------------------------------------------------------------------------
MANIPULATION_IDS: list[tuple[str, str, dict[str, Any], int, str]] = []

# --- driving ----------------------------------------------------------------------------------
DRIVING_IDS: list[tuple[str, str, dict[str, Any], int, str]] = []


def all_specs() -> list[tuple[str, str, dict[str, Any], int, str]]:
    """Every (name, entry point, kwargs, max_episode_steps, description) rewardlab registers."""
    return [*GRIDWORLD_IDS, *MANIPULATION_IDS, *DRIVING_IDS]


def env_ids() -> list[str]:
    """Every registered rewardlab env id, e.g. ``"rewardlab/GridKeyDoor-v0"``."""
    return [f"{NAMESPACE}/{name}" for name, *_ in all_specs()]


def register_all() -> None:
    """Register every id with Gymnasium (idempotent)."""
    for name, entry_point, kwargs, max_steps, _ in all_specs():
        env_id = f"{NAMESPACE}/{name}"
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id, entry_point=entry_point, kwargs=kwargs, max_episode_steps=max_steps
        )
