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
GRIDWORLD_IDS: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("GridEmpty-v0", _GRID, {"layout": "empty"}, 100, "Empty 8x8 room: reach the far corner."),
    (
        "GridFourRooms-v0",
        _GRID,
        {"layout": "four_rooms"},
        100,
        "Sutton's four rooms, 13x13: reach a random goal cell in the far room.",
    ),
    (
        "GridKeyDoor-v0",
        _GRID,
        {"layout": "key_door"},
        300,
        "Minigrid DoorKey 8x8: pick up the key, unlock the door, reach the goal.",
    ),
    (
        "GridKeyDoorDense-v0",
        _GRID,
        {"layout": "key_door", "reward_type": "dense"},
        300,
        "GridKeyDoor with the hand-designed dense reward (key, door, approach, step terms).",
    ),
    (
        "GridLavaCrossing-v0",
        _GRID,
        {"layout": "lava_crossing"},
        324,
        "Cross a lava river through its one gap, 9x9; lava ends the episode.",
    ),
]

# --- manipulation -----------------------------------------------------------------------------
MANIPULATION_IDS: list[tuple[str, str, dict[str, Any], int, str]] = [
    (
        "ManipReach-v0",
        _MANIP,
        {"task": "reach"},
        50,
        "Cartesian gripper: touch a green ball floating above the table",
    ),
    (
        "ManipPush-v0",
        _MANIP,
        {"task": "push"},
        100,
        "Cartesian gripper: push a red block onto a green disc on the table",
    ),
    (
        "ManipPickPlace-v0",
        _MANIP,
        {"task": "pick_place"},
        100,
        "Cartesian gripper: pick up a red block and place it on a raised green platform",
    ),
]

# --- driving ----------------------------------------------------------------------------------
DRIVING_IDS: list[tuple[str, str, dict[str, Any], int, str]] = [
    (
        "DriveHighway-v0",
        _DRIVE,
        {"reward_type": "carl"},
        200,
        "3-lane highway, 20 IDM cars, 600 m route; CaRL reward (progress x infraction factors)",
    ),
    (
        "DriveHighwaySparse-v0",
        _DRIVE,
        {"reward_type": "sparse"},
        200,
        "3-lane highway, 20 IDM cars, 600 m route; reward 1 on completing the route",
    ),
    (
        "DriveHighwayWeighted-v0",
        _DRIVE,
        {"reward_type": "weighted"},
        200,
        "3-lane highway, 20 IDM cars, 600 m route; highway-env's weighted speed/lane/collision",
    ),
    (
        "DriveDense-v0",
        _DRIVE,
        {"reward_type": "carl", "lanes_count": 4, "vehicles_count": 40, "vehicles_density": 4.0},
        200,
        "4-lane highway, 40 closely spaced IDM cars, 600 m route; CaRL reward",
    ),
    (
        "DriveExit-v0",
        _DRIVE,
        {"reward_type": "carl", "lanes_count": 4, "vehicles_count": 30, "target_lane": -1},
        200,
        "4-lane highway, 30 IDM cars; the route ends in the rightmost lane; CaRL reward",
    ),
]


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
        gym.register(id=env_id, entry_point=entry_point, kwargs=kwargs, max_episode_steps=max_steps)
