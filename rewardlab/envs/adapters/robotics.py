"""Tasks of Gymnasium-Robotics' Fetch envs: ``FetchReach``, ``FetchPush`` and
``FetchPickAndPlace`` (``-v1`` to ``-v4``, sparse and ``Dense`` ids).

The envs are Plappert et al. 2018, "Multi-Goal Reinforcement Learning: Challenging Robotics
Environments and Request for Research" (arXiv:1802.09464), as documented in
Gymnasium-Robotics (``gymnasium_robotics/envs/fetch``). Their observation is a ``Dict``
(``observation``, ``achieved_goal``, ``desired_goal``) that rewardlab keeps as it is: SB3
takes it with ``MultiInputPolicy`` (see :func:`rewardlab.agents.factory.make_agent`).

The adapter reads the unwrapped env's own observation function (``_get_obs``, which only reads
the simulator), so success, progress, state and expert hold under any observation wrapper.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from rewardlab.envs.adapters._distance import distance_progress
from rewardlab.envs.core import StateVariable
from rewardlab.envs.tasks import TaskAdapter

__all__ = ["FetchTask"]

_STEP = "m/step"
_PER_STEP = "per control step (velocity x dt, dt = 0.04 s)"

# Layout of ``obs["observation"]`` (Gymnasium-Robotics' Fetch docs, ``BaseFetchEnv._get_obs``):
# name -> (start, stop, units, doc). FetchReach has no object, so its observation is the
# 10 values of the gripper; FetchPush and FetchPickAndPlace add the object's 15.
_REACH_LAYOUT: dict[str, tuple[int, int, str, str]] = {
    "grip_pos": (0, 3, "m", "gripper (site robot0:grip) position, world frame"),
    "gripper_state": (3, 5, "m", "right and left finger joint displacements (opening)"),
    "grip_velp": (5, 8, _STEP, f"gripper linear velocity, world frame, {_PER_STEP}"),
    "gripper_vel": (8, 10, _STEP, f"finger joint velocities, {_PER_STEP}"),
}
_OBJECT_LAYOUT: dict[str, tuple[int, int, str, str]] = {
    "grip_pos": (0, 3, "m", "gripper (site robot0:grip) position, world frame"),
    "object_pos": (3, 6, "m", "block (site object0) centre position, world frame"),
    "object_rel_pos": (6, 9, "m", "object_pos - grip_pos"),
    "gripper_state": (9, 11, "m", "right and left finger joint displacements (opening)"),
    "object_rot": (11, 14, "rad", "block orientation as XYZ Euler angles"),
    "object_velp": (14, 17, _STEP, f"block linear velocity relative to the gripper, {_PER_STEP}"),
    "object_velr": (17, 20, "rad/step", f"block angular velocity, {_PER_STEP}"),
    "grip_velp": (20, 23, _STEP, f"gripper linear velocity, world frame, {_PER_STEP}"),
    "gripper_vel": (23, 25, _STEP, f"finger joint velocities, {_PER_STEP}"),
}


def _variables(layout: Mapping[str, tuple[int, int, str, str]]) -> tuple[StateVariable, ...]:
    obs = tuple(StateVariable(k, (b - a,), u, d) for k, (a, b, u, d) in layout.items())
    goal = StateVariable("goal_pos", (3,), "m", "target position (desired_goal), world frame")
    return (*obs, goal)


_TEXT: dict[str, dict[str, Any]] = {
    "reach": {
        "name": "reach_target",
        "goal": "a robot arm with its gripper touching a small red sphere",
        "baseline": "a robot arm above a white table",
        "negatives": ("a robot arm with its gripper far away from a small red sphere",),
        "description": (
            "A 7-DoF Fetch arm with a two-fingered gripper stands at a table; each step the agent "
            "moves the gripper by up to 5 cm along x, y and z (the fourth action, the fingers, "
            "does nothing here). The task is to bring the gripper (grip_pos) within 5 cm of a "
            "target point (goal_pos) sampled up to 15 cm from the gripper's start along each "
            "axis. Episodes last 50 steps and never terminate early."
        ),
    },
    "push": {
        "name": "push_block",
        "goal": "a dark grey block on a small red target on a white table",
        "baseline": "a robot arm next to a dark grey block on a white table",
        "negatives": (
            "a dark grey block far away from a small red target on a white table",
            "a robot arm pushing a dark grey block off the edge of the table",
        ),
        "description": (
            "A 7-DoF Fetch arm with closed, locked fingers stands at a table with a 5 cm block "
            "on it; each step the agent moves the gripper by up to 5 cm along x, y and z. The "
            "task is to push (or roll) the block until its centre (object_pos) is within 5 cm "
            "of a target on the table (goal_pos). The block cannot be grasped. Episodes last 50 "
            "steps and never terminate early; a block pushed off the table is a failure."
        ),
    },
    "pick_and_place": {
        "name": "pick_and_place_block",
        "goal": "a robot gripper holding a dark grey block at a small red target",
        "baseline": "a robot arm next to a dark grey block on a white table",
        "negatives": (
            "a dark grey block lying on the table far away from a small red target",
            "a robot arm with an empty gripper above a white table",
        ),
        "description": (
            "A 7-DoF Fetch arm with a two-fingered gripper stands at a table with a 5 cm block "
            "on it; each step the agent moves the gripper by up to 5 cm along x, y and z, and "
            "the fourth action opens (+1) or closes (-1) the fingers. The task is to move the "
            "block so that its centre (object_pos) is within 5 cm of the target (goal_pos), "
            "which is on the table or, in half the episodes, up to 45 cm in the air, so the "
            "block must be grasped and carried. Episodes last 50 steps and never terminate "
            "early."
        ),
    },
}


class FetchTask(TaskAdapter):
    """The task of a Fetch env: bring the achieved goal within 5 cm of the desired goal.

    Which task (reach, push, pick and place) is read from the env: no object is FetchReach,
    locked fingers (``block_gripper``) are FetchPush, otherwise FetchPickAndPlace.

    Success (the env's own, Plappert et al. 2018 and ``BaseFetchEnv._is_success``): the
    Euclidean distance between ``achieved_goal`` (the gripper for Reach, the block's centre
    otherwise) and ``desired_goal`` is below ``distance_threshold`` (0.05 m). The env writes it
    as the float ``info["is_success"]`` on steps only; the adapter computes it from the state,
    so reset infos carry it as well, as a bool.

    Progress: 1 in success states. Otherwise, with ``d`` that distance, ``d0`` its value at
    reset and ``r`` the threshold, ``place = clip((d0 - d) / (d0 - r), 0, 1)``: 0 at the
    start, rising linearly to 1 at the success boundary. FetchReach's progress is ``place``;
    with a block it is ``0.2 * reach + 0.8 * place``, where ``reach = clip(1 - h / h0, 0, 1)``
    for the gripper-to-block distance ``h`` (``h0`` at reset), the approach the block's
    distance does not see. Never 1 outside success. The reset values are cached by
    :meth:`on_reset` (rewardlab's :func:`~rewardlab.envs.tasks.make` calls it); an env reset
    without it takes them at the first call after the reset.

    Expert (scripted, reads the simulator): Reach moves the gripper straight to the target.
    Push goes above the point 5 cm behind the block on the goal's far side, descends, and
    pushes along the block-goal line at most 2.5 cm per step (slower near the goal: the block
    slides on), holding still once the block is within 3 cm. PickAndPlace opens the fingers
    above the block, descends, closes them and carries the block to the target. 100 of 100
    seeded episodes of each ``-v4`` id succeed at their last step.

    Idle action: zeros (the gripper holds its position; the fingers' effort is 0).

    Reward: the env's sparse reward is ``-1`` per step without success, ``0`` with it;
    ``reward_type="dense"`` (the ``Dense`` ids) is ``-d``, the task's reference dense reward.
    """

    # FetchPush's and FetchPickAndPlace's; FetchReach instances have the gripper's alone.
    state_variables = _variables(_OBJECT_LAYOUT)
    success_key: ClassVar[str | None] = None  # the env's flag: a float, in step infos only
    dense_reward_type: ClassVar[str | None] = "dense"
    reward_types: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "sparse": {"reward_type": "sparse"},
        "dense": {"reward_type": "dense"},
    }
    render_kwargs: ClassVar[Mapping[str, Any]] = {"width": 224, "height": 224}

    reach_weight: ClassVar[float] = 0.2
    """Share of progress from the gripper's approach to the block (Push, PickAndPlace)."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        inner: Any = env.unwrapped
        if not inner.has_object:
            self.kind = "reach"
        elif inner.block_gripper:
            self.kind = "push"
        else:
            self.kind = "pick_and_place"
        text = _TEXT[self.kind]
        self.name = text["name"]
        self.goal = text["goal"]
        self.baseline = text["baseline"]
        self.negatives = text["negatives"]
        self.description = text["description"]
        self._layout = _OBJECT_LAYOUT if inner.has_object else _REACH_LAYOUT
        self.state_variables = _variables(self._layout)
        self._episode_goal: Any = None
        self._start: tuple[float, float] = (0.0, 0.0)
        # The sites _get_obs reads the goals from, by id: reading two positions is cheap,
        # building the whole observation (velocities included) is not, and success and
        # progress run every step. The last state's distances are kept for both.
        import mujoco

        site = mujoco.mjtObj.mjOBJ_SITE
        self._grip_site = mujoco.mj_name2id(inner.model, site, "robot0:grip")
        self._object_site = (
            mujoco.mj_name2id(inner.model, site, "object0") if inner.has_object else -1
        )
        self._measured: tuple[float, Any, tuple[float, float]] | None = None

    # --- the state -------------------------------------------------------------------------

    def _obs(self) -> dict[str, np.ndarray]:
        obs: dict[str, np.ndarray] = self.env.unwrapped._get_obs()  # type: ignore[attr-defined]
        return obs

    def _distances(self) -> tuple[float, float]:
        """``(d, h)``: achieved-to-desired goal, gripper-to-block (0 without a block), from
        the sites ``_get_obs`` reads (``achieved_goal`` is the block's or the gripper's)."""
        inner: Any = self.env.unwrapped
        data, goal = inner.data, inner.goal
        last = self._measured
        # The same simulation time and goal array (reset assigns a new one): the same state.
        if last is not None and last[0] == data.time and last[1] is goal:
            return last[2]
        xpos = data.site_xpos
        grip = xpos[self._grip_site]
        achieved = grip if self._object_site < 0 else xpos[self._object_site]
        diff = achieved - goal
        d = math.sqrt(float(diff @ diff))
        h = 0.0
        if self._object_site >= 0:
            rel = achieved - grip
            h = math.sqrt(float(rel @ rel))
        self._measured = (data.time, goal, (d, h))
        return d, h

    def _threshold(self) -> float:
        return float(self.env.unwrapped.distance_threshold)  # type: ignore[attr-defined]

    def on_reset(self, obs: Any, info: Mapping[str, Any]) -> None:
        self._episode_goal = self.env.unwrapped.goal  # type: ignore[attr-defined]
        self._start = self._distances()

    def success(self, obs: Any, info: Mapping[str, Any]) -> bool:
        return self._distances()[0] < self._threshold()

    def progress(self) -> float:
        # reset() assigns a new goal array: a goal not seen yet is a new episode.
        if self.env.unwrapped.goal is not self._episode_goal:  # type: ignore[attr-defined]
            self.on_reset(None, {})
        d, h = self._distances()
        r = self._threshold()
        if d < r:
            return 1.0
        weight = None if self.kind == "reach" else self.reach_weight
        return distance_progress(self._start, d, h, r, weight)

    def state_dict(self) -> dict[str, np.ndarray]:
        obs = self._obs()
        state = {
            k: obs["observation"][a:b].astype(np.float64)
            for k, (a, b, _, _) in self._layout.items()
        }
        state["goal_pos"] = np.asarray(obs["desired_goal"], dtype=np.float64).copy()
        return state

    # --- the expert ------------------------------------------------------------------------

    def expert_action(self, obs: Any) -> np.ndarray:
        o = self._obs()
        grip, goal = o["observation"][:3], o["desired_goal"]
        if self.kind == "reach":
            return _toward(grip, goal, gain=1.0, gripper=0.0)
        block = o["observation"][3:6]
        if self.kind == "push":
            return _push(grip, block, goal)
        return _pick_and_place(grip, block, goal, fingers=float(o["observation"][9:11].sum()))

    def idle_action(self) -> np.ndarray:
        return np.zeros(4, dtype=np.float32)


# The expert's controllers. An action moves the gripper by 5 cm per unit
# (``BaseFetchEnv._set_action``), so ``(target - grip) / 0.05`` reaches the target in one step.


def _toward(
    grip: np.ndarray, target: np.ndarray, gain: float, gripper: float, limit: float = 1.0
) -> np.ndarray:
    action = np.empty(4, dtype=np.float32)
    action[:3] = np.clip(gain * (target - grip) / 0.05, -limit, limit)
    action[3] = gripper
    return action


def _push(grip: np.ndarray, block: np.ndarray, goal: np.ndarray) -> np.ndarray:
    to_goal = goal[:2] - block[:2]
    remaining = float(np.linalg.norm(to_goal))
    if remaining < 0.03:  # inside the 5 cm threshold with a margin: the block slides on
        return np.zeros(4, dtype=np.float32)
    u = to_goal / remaining
    behind = block[:2] - 0.05 * u  # where the gripper touches the block's far side
    rel = grip[:2] - block[:2]
    along = float(rel @ u)
    lateral = float(np.linalg.norm(rel - along * u))
    low = grip[2] < block[2] + 0.03
    z = block[2] + 0.005
    if along < -0.03 and lateral < 0.02 and low:  # in position: push along the line
        target = np.array([*(behind + u * min(0.5 * remaining, 0.02)), z])
        return _toward(grip, target, gain=2.0, gripper=-1.0, limit=0.5)
    if np.linalg.norm(grip[:2] - behind) < 0.02:  # above the pushing point: descend
        target = np.array([*behind, z])
    elif low and np.linalg.norm(rel) < 0.08:  # low beside the block: lift clear of it first
        target = np.array([*grip[:2], block[2] + 0.1])
    else:
        target = np.array([*behind, block[2] + 0.05])
    return _toward(grip, target, gain=2.0, gripper=-1.0)


def _pick_and_place(
    grip: np.ndarray, block: np.ndarray, goal: np.ndarray, fingers: float
) -> np.ndarray:
    rel = block - grip
    if np.linalg.norm(rel) < 0.02 and fingers < 0.06:  # held: carry it, fingers closed
        return _toward(grip, goal, gain=1.5, gripper=-1.0)
    if np.linalg.norm(rel[:2]) < 0.01:
        if abs(rel[2]) < 0.01:  # around the block: close the fingers
            return _toward(grip, grip, gain=1.5, gripper=-1.0)
        return _toward(grip, block, gain=1.5, gripper=1.0)  # above it: descend, open
    return _toward(grip, block + np.array([0.0, 0.0, 0.05]), gain=1.5, gripper=1.0)
