"""Table-top manipulation with a Cartesian parallel-jaw gripper, simulated in MuJoCo.

One environment class, :class:`ManipulationEnv`, poses three tasks chosen by
``ManipulationConfig.task``: reaching a floating ball, pushing a red block onto a green disc,
and picking the block up to place it on a raised green platform. The MJCF models live in
``rewardlab/assets/tabletop`` (one scene per task sharing ``robot.xml`` and ``table.xml``).

This module imports MuJoCo at the top; it is imported by ``gym.make``, never by
``import rewardlab``.
"""

from __future__ import annotations

import atexit
import math
import weakref
from dataclasses import dataclass
from importlib import resources
from typing import Any

import mujoco
import numpy as np
from gymnasium import spaces

from rewardlab.envs.core import StateVariable, Task, TaskEnv, resolve_config
from rewardlab.envs.headless import load_triton_first

__all__ = ["CAMERAS", "TASKS", "ManipulationConfig", "ManipulationEnv"]

# Every live renderer, closed at exit before MuJoCo's EGL display is terminated: one freed
# after that (by the garbage collector, at interpreter shutdown) printed an EGLError.
_RENDERERS: weakref.WeakSet[mujoco.Renderer] = weakref.WeakSet()


def _close_renderers() -> None:
    for renderer in list(_RENDERERS):
        renderer.close()


TASKS = ("reach", "push", "pick_place")
REWARD_TYPES = ("sparse", "dense")
CAMERAS = ("front", "top", "side")

# Geometry of the MJCF scenes (rewardlab/assets/tabletop), in metres; the table top is z = 0.
_BLOCK_HALF = 0.025  # half edge of the cube
_PLATFORM_TOP = 0.05  # height of the pick-and-place platform
_FINGER_OPEN = 0.045  # each finger's inner face travels from 0 (closed) to this offset
_HAND_LOW = (-0.25, -0.25, 0.015)  # workspace of the grip site (joint ranges)
_HAND_HIGH = (0.25, 0.25, 0.30)
_HAND_HOME = np.array([0.0, 0.0, 0.15])
_HAND_HOME_NOISE = 0.03
_REACH_Z_RANGE = (0.05, 0.25)
_Z_TOLERANCE = 0.01  # how far the block's centre may be above or below its resting height
_CARRY_CLEARANCE = 0.03  # height the expert (and the lift stage) keeps above the platform
_GRASP_GAP = 2 * _BLOCK_HALF + 0.006  # finger gap below which a centred block counts as held

# Dense reward weights, per component name (see the class docstring).
_DENSE_WEIGHTS = {
    "reach": 1.0,
    "grasp": 0.25,
    "lift": 0.25,
    "push": 1.0,
    "place": 1.0,
    "success": 1.0,
    "action_penalty": 0.01,
}

_CAPTIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "reach": (
        "a robot gripper touching a green ball",
        "a robot gripper and a green ball above a table",
        (
            "a robot gripper far away from a green ball",
            "a robot gripper resting above an empty table",
        ),
    ),
    "push": (
        "a red block on the green target",
        "a red block and a green target on a table",
        (
            "a red block far away from the green target",
            "a robot gripper pushing a red block off the green target",
        ),
    ),
    "pick_place": (
        "a red block on top of the green platform",
        "a red block and a green platform on a table",
        (
            "a red block on the table next to the green platform",
            "a robot gripper holding a red block in the air",
        ),
    ),
}


# Block (half-width 0.025 m) and platform (0.045 m) overlap when their centres are closer than
# 0.07 m along both axes, i.e. possibly at any distance below 0.07 * sqrt(2).
_MIN_PLATFORM_DISTANCE = (0.025 + 0.045) * math.sqrt(2)


@dataclass(frozen=True)
class ManipulationConfig:
    """Everything that defines a :class:`ManipulationEnv` MDP and its rendering.

    Attributes:
        task: ``"reach"``, ``"push"`` or ``"pick_place"``.
        reward_type: ``"sparse"`` (1 on success steps, else 0) or ``"dense"`` (the
            hand-designed sum of named components).
        frame_skip: Physics substeps (of 5 ms) per env step.
        action_scale: Largest gripper displacement per step and axis, in metres.
        object_range: The block's start is uniform in ``[-object_range, object_range]^2``.
        target_range: The target's x and y are uniform in ``[-target_range, target_range]``.
        min_target_distance: Least start distance (m) from the block (push, pick_place) or the
            gripper (reach) to the target; targets are resampled until it holds.
        distance_threshold: Success radius in metres (3-D for reach, horizontal otherwise).
        render_width: Width of rendered frames in pixels.
        render_height: Height of rendered frames in pixels.
        camera: Name of the fixed MJCF camera ``render()`` uses: ``"front"``, ``"top"`` or
            ``"side"``.
    """

    task: str = "push"
    reward_type: str = "sparse"
    frame_skip: int = 5
    action_scale: float = 0.02
    object_range: float = 0.15
    target_range: float = 0.15
    min_target_distance: float = 0.12
    distance_threshold: float = 0.04
    render_width: int = 224
    render_height: int = 224
    camera: str = "front"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.reward_type not in REWARD_TYPES:
            raise ValueError(f"reward_type must be one of {REWARD_TYPES}, got {self.reward_type!r}")
        if self.camera not in CAMERAS:
            raise ValueError(f"camera must be one of {CAMERAS}, got {self.camera!r}")
        for name in ("frame_skip", "render_width", "render_height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.render_width > 4096 or self.render_height > 4096:
            raise ValueError(
                f"render size must be at most 4096x4096, got "
                f"{self.render_width}x{self.render_height}"
            )
        if not 0.0 < self.action_scale <= 0.05:
            raise ValueError(f"action_scale must be in (0, 0.05] m, got {self.action_scale!r}")
        for name in ("object_range", "target_range"):
            value = getattr(self, name)
            if not 0.0 <= value <= 0.2:
                raise ValueError(f"{name} must be in [0, 0.2] m, got {value!r}")
        if not 0.0 < self.distance_threshold <= 0.1:
            raise ValueError(
                f"distance_threshold must be in (0, 0.1] m, got {self.distance_threshold!r}"
            )
        if not self.distance_threshold < self.min_target_distance <= self.target_range:
            raise ValueError(
                "min_target_distance must exceed distance_threshold (else episodes could start "
                "solved) and be at most target_range (else no target can be sampled), got "
                f"{self.min_target_distance!r}"
            )
        if self.task == "pick_place" and self.min_target_distance < _MIN_PLATFORM_DISTANCE:
            raise ValueError(
                f"pick_place needs min_target_distance >= {_MIN_PLATFORM_DISTANCE:.3f} m, else "
                f"the block can start inside the platform; got {self.min_target_distance!r}"
            )


def _load_model(task: str) -> mujoco.MjModel:
    scene = resources.files("rewardlab.assets") / "tabletop" / f"{task}.xml"
    with resources.as_file(scene) as path:
        return mujoco.MjModel.from_xml_path(str(path))


def _clip01(x: float) -> float:
    return min(1.0, max(0.0, x))


class ManipulationEnv(TaskEnv[ManipulationConfig]):
    """A Cartesian parallel-jaw gripper over a table: reach, push, or pick and place.

    The hand moves in x, y and z on three position-actuated slide joints and has two
    position-controlled fingers. The red block is a 5 cm cube; the green target is a floating
    ball (reach), a flat disc on the table (push) or a 5 cm high platform (pick_place). The
    block and target positions are resampled at every reset.

    ## Observation Space

    ``Box(low, high, (n,), float32)``, all positions in the world frame (metres, table top at
    z = 0, x to the right and y away from the front camera). The bounds are loose physical
    limits: 1 m for positions and the quaternion, 2 m for offsets, [0, 0.1] m for the finger
    gap, 10 m/s for linear and 100 rad/s for angular velocities.

    - reach (n = 13): 0-2 gripper position (the grip site between the fingertips),
      3-5 gripper velocity (m/s), 6 finger gap (m), 7-9 target position,
      10-12 target - gripper.
    - push, pick_place (n = 29): 0-2 gripper position, 3-5 gripper velocity, 6 finger gap,
      7-9 block position, 10-13 block orientation quaternion (w, x, y, z), 14-16 block linear
      velocity (world frame), 17-19 block angular velocity (body frame), 20-22 block -
      gripper, 23-25 target position, 26-28 target - block.

    The target position is where the controlled point must end up: the ball's centre
    (reach), or the block's centre resting on the disc (z = 0.025) or on the platform
    (z = 0.075).

    ## Action Space

    ``Box(-1, 1, (4,), float32)``: ``a[:3]`` moves the gripper's position set-point by
    ``a[:3] * action_scale`` metres from where the gripper is (clipped to the workspace);
    ``a[3]`` sets the fingers, -1 closed to +1 fully open (9 cm between the jaws).

    ## Rewards

    ``reward_type="sparse"`` (default): ``1.0`` on every step whose resulting state is a
    success, else ``0.0``, reported as ``info["reward_success"]``. (Fetch's ``-1/0``
    convention is this reward minus one.)

    ``reward_type="dense"``, a hand-designed "human expert" reward, with ``d(a, b)`` the
    Euclidean distance, ``g`` the gripper, ``b`` the block, ``t`` the target:

    - reach: ``reward_reach = -d(g, t)``, ``reward_success = 1[success]``,
      ``reward_action_penalty = -0.01 * |a|^2``.
    - push: ``reward_reach = -d(g, b)``, ``reward_push = -d_xy(b, t)``, ``reward_success``,
      ``reward_action_penalty``.
    - pick_place: ``reward_reach = -d(g, b)``, ``reward_grasp = 0.25 * held``,
      ``reward_lift = 0.25 * lift``, ``reward_place = -d(b, t)``, ``reward_success``,
      ``reward_action_penalty``; ``held`` is 1 when the finger gap is below 5.6 cm with the
      block's centre within 2 cm of the grip point, else 0; ``lift`` is the block's height
      above the table as a fraction (clipped to [0, 1]) of the carrying height that clears
      the platform by 3 cm.

    The reward is exactly the sum of the ``info["reward_<name>"]`` entries. Success
    (``info["is_success"]``): reach, ``d(g, t) < distance_threshold``; push and pick_place,
    ``d_xy(b, t) < distance_threshold`` and the block's centre within 1 cm of its resting
    height on the target.

    ``info["progress"]`` is a ground-truth potential in [0, 1], exactly 1 on success states,
    0 at reset. Distances are normalized by their values at reset (stored per episode, like
    the target): with ``r(x) = clip(1 - d/d_0, 0, 1)``, reach: ``r(d(g, t))``; push:
    ``0.2 r(d(g, b)) + 0.8 r(d_xy(b, t))``; pick_place:
    ``0.15 r(d(g, b)) + 0.15 held + 0.2 lift + 0.5 r(d(b, t))``.

    ## Episode End

    Success does not end the episode (as in Fetch, and because early termination leaks task
    completion to learned rewards). ``terminated`` is always False: the workspace keeps the
    block on the table, so there is no terminal state. Episodes are truncated by the time
    limit: 50 steps (``ManipReach-v0``) or 100 steps (``ManipPush-v0``,
    ``ManipPickPlace-v0``), at 40 steps per simulated second with the default
    ``frame_skip=5``.

    ## Arguments

    ``gym.make(id, render_mode=None | "rgb_array", config=None, **overrides)`` where the
    overrides are :class:`ManipulationConfig` fields (``reward_type``, ``frame_skip``,
    ``camera``, ``render_width``, ...). An unknown keyword raises ``TypeError``; a bad value
    raises ``ValueError``. Rendering uses the fixed camera ``camera`` without shadows or
    reflections and returns ``uint8`` arrays of shape ``(render_height, render_width, 3)``.

    ## Version History

    - v0: initial release (MuJoCo 3.3.0; 5 ms semi-implicit Euler step, elliptic friction
      cones, block-table friction 0.5, finger-block friction 1.2).

    Example:
        >>> import gymnasium as gym
        >>> import rewardlab
        >>> env = gym.make("rewardlab/ManipPush-v0")
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape, info["is_success"], info["progress"]
        ((29,), False, 0.0)
        >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        >>> reward == info["reward_success"]
        True
        >>> env.close()
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 40}
    dense_reward_type = "dense"

    def __init__(
        self,
        config: ManipulationConfig | None = None,
        render_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.config = cfg = resolve_config(ManipulationConfig, config, kwargs)
        self._init_render_mode(render_mode)
        self._task_name = cfg.task
        self._has_block = cfg.task != "reach"

        self.model = _load_model(cfg.task)
        self.data = mujoco.MjData(self.model)
        self.dt = float(self.model.opt.timestep) * cfg.frame_skip
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.dt)}

        model, data = self.model, self.data
        self._camera_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, cfg.camera)
        if self._camera_id < 0:
            raise ValueError(f"camera {cfg.camera!r} is not a camera of the {cfg.task} scene")
        # The offscreen buffer must hold the requested frame size.
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, cfg.render_width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, cfg.render_height)

        # Named views into mjData, looked up once (rows of data.qpos etc., updated in place).
        self._hand_qpos = [data.joint(n).qpos for n in ("hand_x", "hand_y", "hand_z")]
        self._hand_qvel = [data.joint(n).qvel for n in ("hand_x", "hand_y", "hand_z")]
        self._finger_qpos = [data.joint(n).qpos for n in ("finger_left", "finger_right")]
        self._hand_act_ids = [model.actuator(n).id for n in ("hand_x", "hand_y", "hand_z")]
        self._finger_act_ids = [model.actuator(n).id for n in ("finger_left", "finger_right")]
        self._grip_xpos = data.site("grip").xpos
        self._target_mocap = int(model.body("target").mocapid[0])
        if self._has_block:
            self._block_body = data.body("block")
            self._block_joint = data.joint("block")
            self._block_geom = model.geom("block").id
            self._finger_geoms = {model.geom("finger_left").id, model.geom("finger_right").id}

        self._target = np.zeros(3)
        self._target_list = self._target.tolist()
        self._d0: dict[str, float] = {}
        self._renderer: mujoco.Renderer | None = None

        self.observation_space = self._observation_space()
        self._obs_buf = np.zeros(self.observation_space.shape, dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float32)

        goal, baseline, negatives = _CAPTIONS[cfg.task]
        self.task = Task(
            name=cfg.task,
            goal=goal,
            baseline=baseline,
            negatives=negatives,
            state_variables=self._state_variables(),
            env=self,
        )

    def _observation_space(self) -> spaces.Box:
        # Loose physical bounds (see the class docstring), finite so checkers and
        # normalizers can use them: positions 1 m, offsets 2 m, speeds 10 m/s, spins 100 rad/s.
        gripper = [(1.0, 3), (10.0, 3)]
        if self._has_block:
            rest = [(1.0, 3), (1.0, 4), (10.0, 3), (100.0, 3), (2.0, 3), (1.0, 3), (2.0, 3)]
        else:
            rest = [(1.0, 3), (2.0, 3)]
        high = np.concatenate([np.full(n, b) for b, n in [*gripper, (0.1, 1), *rest]])
        low = -high
        low[6] = 0.0  # the finger gap
        return spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)

    # --- state ---------------------------------------------------------------------------------

    def _state_variables(self) -> tuple[StateVariable, ...]:
        gripper = (
            StateVariable("gripper_pos", (3,), "m", "grip point between the fingertips, world"),
            StateVariable("gripper_vel", (3,), "m/s", "velocity of the grip point, world"),
            StateVariable("finger_gap", (), "m", "distance between the finger pads (0: closed)"),
        )
        if not self._has_block:
            doc = "centre of the green ball the gripper must reach, world"
            return (*gripper, StateVariable("target_pos", (3,), "m", doc))
        doc = "where the block's centre must rest on the green target, world"
        return (
            *gripper,
            StateVariable("block_pos", (3,), "m", "centre of the red block, world"),
            StateVariable("block_quat", (4,), "-", "block orientation quaternion (w, x, y, z)"),
            StateVariable("block_linvel", (3,), "m/s", "block linear velocity, world"),
            StateVariable("block_angvel", (3,), "rad/s", "block angular velocity, body frame"),
            StateVariable("target_pos", (3,), "m", doc),
            StateVariable(
                "block_grasped", (), "bool", "both fingers touch the block", privileged=True
            ),
        )

    def _finger_gap(self) -> float:
        # Closing fingers overshoot their soft joint limit at 0 by up to a few mm (they do not
        # collide with each other); a gap below 0 means closed.
        return max(float(self._finger_qpos[0][0] + self._finger_qpos[1][0]), 0.0)

    def _block_grasped(self) -> bool:
        """Both finger pads are in contact with the block."""
        pairs = self.data.contact.geom[: self.data.ncon]
        touching = pairs[(pairs == self._block_geom).any(axis=1)]
        return self._finger_geoms <= set(touching.ravel().tolist())

    def _block_held(self, dist: dict[str, float]) -> bool:
        """The block is centred between nearly closed fingers (a geometric grasp test)."""
        return self._finger_gap() < _GRASP_GAP and dist["gripper_block"] < 0.02

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {
            "gripper_pos": self._grip_xpos.copy(),
            "gripper_vel": np.array([q[0] for q in self._hand_qvel]),
            "finger_gap": np.array(self._finger_gap()),
        }
        if self._has_block:
            state["block_pos"] = self._block_body.xpos.copy()
            state["block_quat"] = self._block_body.xquat.copy()
            state["block_linvel"] = self._block_joint.qvel[:3].copy()
            state["block_angvel"] = self._block_joint.qvel[3:].copy()
        state["target_pos"] = self._target.copy()
        if self._has_block:
            state["block_grasped"] = np.array(self._block_grasped())
        return state

    def _obs(self) -> np.ndarray:
        # Slice writes into one preallocated buffer: a 13-piece np.concatenate costs as much
        # as a physics substep.
        buf, gripper, target = self._obs_buf, self._grip_xpos, self._target
        buf[0:3] = gripper
        for i, qvel in enumerate(self._hand_qvel):
            buf[3 + i] = qvel[0]
        buf[6] = self._finger_gap()
        if not self._has_block:
            buf[7:10] = target
            buf[10:13] = target - gripper
            return buf.copy()
        block = self._block_body.xpos
        buf[7:10] = block
        buf[10:14] = self._block_body.xquat
        buf[14:20] = self._block_joint.qvel
        buf[20:23] = block - gripper
        buf[23:26] = target
        buf[26:29] = target - block
        return buf.copy()

    # --- success, progress, reward -------------------------------------------------------------

    def _distances(self) -> dict[str, float]:
        """The distances success, progress and the dense reward are built from.

        Plain floats (``math`` on lists), as numpy calls on 3-vectors would dominate a step.
        """
        gripper, target = self._grip_xpos.tolist(), self._target_list
        if not self._has_block:
            return {"gripper_target": math.dist(gripper, target)}
        block = self._block_body.xpos.tolist()
        return {
            "gripper_block": math.dist(gripper, block),
            "block_target_xy": math.dist(block[:2], target[:2]),
            "block_target": math.dist(block, target),
            "block_height": block[2],
        }

    def _is_success(self, dist: dict[str, float]) -> bool:
        threshold = self.config.distance_threshold
        if not self._has_block:
            return dist["gripper_target"] < threshold
        return (
            dist["block_target_xy"] < threshold
            and abs(dist["block_height"] - self._target_list[2]) < _Z_TOLERANCE
        )

    @staticmethod
    def _lift(dist: dict[str, float]) -> float:
        carry = _PLATFORM_TOP + _BLOCK_HALF + _CARRY_CLEARANCE
        return _clip01((dist["block_height"] - _BLOCK_HALF) / (carry - _BLOCK_HALF))

    def _progress(self, success: bool, dist: dict[str, float]) -> float:
        if success:
            return 1.0

        def r(name: str) -> float:
            return _clip01(1.0 - dist[name] / self._d0[name])

        if self._task_name == "reach":
            return r("gripper_target")
        if self._task_name == "push":
            return 0.2 * r("gripper_block") + 0.8 * r("block_target_xy")
        return (
            0.15 * r("gripper_block")
            + 0.15 * float(self._block_held(dist))
            + 0.2 * self._lift(dist)
            + 0.5 * r("block_target")
        )

    def progress(self) -> float:
        dist = self._distances()
        return self._progress(self._is_success(dist), dist)

    def _reward_components(
        self, action: np.ndarray, success: bool, dist: dict[str, float]
    ) -> dict[str, float]:
        if self.config.reward_type == "sparse":
            return {"reward_success": float(success)}
        gripper_to = "gripper_target" if self._task_name == "reach" else "gripper_block"
        terms = {"reach": -dist[gripper_to]}
        if self._task_name == "push":
            terms["push"] = -dist["block_target_xy"]
        elif self._task_name == "pick_place":
            terms["grasp"] = float(self._block_held(dist))
            terms["lift"] = self._lift(dist)
            terms["place"] = -dist["block_target"]
        terms["success"] = float(success)
        terms["action_penalty"] = -float(action @ action)
        return {f"reward_{k}": _DENSE_WEIGHTS[k] * v for k, v in terms.items()}

    # --- gymnasium API -------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        cfg, rng, data = self.config, self.np_random, self.data
        r = cfg.target_range
        mujoco.mj_resetData(self.model, data)

        home = _HAND_HOME.copy()
        home[:2] += rng.uniform(-_HAND_HOME_NOISE, _HAND_HOME_NOISE, size=2)
        for q, x in zip(self._hand_qpos, home, strict=True):
            q[0] = x
        data.ctrl[self._hand_act_ids] = home
        for q in self._finger_qpos:
            q[0] = _FINGER_OPEN
        data.ctrl[self._finger_act_ids] = _FINGER_OPEN

        if self._has_block:
            block_xy = rng.uniform(-cfg.object_range, cfg.object_range, size=2)
            self._block_joint.qpos[:] = [*block_xy, _BLOCK_HALF, 1.0, 0.0, 0.0, 0.0]
            rest_z = _BLOCK_HALF + (_PLATFORM_TOP if self._task_name == "pick_place" else 0.0)
            target_xy = self._sample_away_from(block_xy, (-r, -r), (r, r))
            self._target = np.array([*target_xy, rest_z])
            data.mocap_pos[self._target_mocap] = [*target_xy, 0.0]
        else:
            z_low, z_high = _REACH_Z_RANGE
            self._target = self._sample_away_from(home, (-r, -r, z_low), (r, r, z_high))
            data.mocap_pos[self._target_mocap] = self._target
        self._target_list = self._target.tolist()
        mujoco.mj_forward(self.model, data)

        self._d0 = self._distances()
        return self._obs(), {"is_success": self._is_success(self._d0), "progress": self.progress()}

    def _sample_away_from(
        self, start: np.ndarray, low: tuple[float, ...], high: tuple[float, ...]
    ) -> np.ndarray:
        """A point uniform in ``[low, high]`` at least ``min_target_distance`` from ``start``."""
        while True:  # terminates: __post_init__ ensures min_target_distance <= target_range
            point = self.np_random.uniform(low, high)
            if np.linalg.norm(point - start) >= self.config.min_target_distance:
                return point

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self._d0:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (4,) or not math.isfinite(a.sum()):  # a sum of 4 floats is finite iff all are
            raise ValueError(f"action must be 4 finite numbers in [-1, 1], got {action!r}")
        # Python floats: for 4 numbers, numpy's per-call dispatch costs more than the arithmetic
        # (the overhead here is a third of the physics substeps' time).
        ax, ay, az, ag = (min(max(v, -1.0), 1.0) for v in a.tolist())
        a = np.array((ax, ay, az, ag))
        cfg, data = self.config, self.data
        scale, ctrl = cfg.action_scale, data.ctrl
        for act, axis, lo, hi, pos in zip(
            self._hand_act_ids,
            (ax, ay, az),
            _HAND_LOW,
            _HAND_HIGH,
            self._grip_xpos.tolist(),
            strict=True,
        ):
            ctrl[act] = min(max(pos + axis * scale, lo), hi)
        fingers = 0.5 * (ag + 1.0) * _FINGER_OPEN
        for act in self._finger_act_ids:
            ctrl[act] = fingers
        mujoco.mj_step(self.model, data, nstep=cfg.frame_skip)
        # mj_step leaves xpos/xquat at the start of its last substep; bring the named frames
        # the observation reads up to the final qpos (contacts stay one substep old).
        mujoco.mj_kinematics(self.model, data)

        dist = self._distances()
        success = self._is_success(dist)
        components = self._reward_components(a, success, dist)
        reward = float(sum(components.values()))
        info: dict[str, Any] = {
            "is_success": success,
            "progress": self._progress(success, dist),
            **components,
        }
        return self._obs(), reward, False, False, info

    def render(self) -> np.ndarray:
        self._require_render_mode()
        cfg = self.config
        if self._renderer is None:
            load_triton_first()
            self._renderer = mujoco.Renderer(self.model, cfg.render_height, cfg.render_width)
            _RENDERERS.add(self._renderer)
            # atexit runs the last registered first: registered again after MuJoCo's EGL
            # registers its eglTerminate (with its first context), the renderers close first.
            atexit.unregister(_close_renderers)
            atexit.register(_close_renderers)
        self._renderer.update_scene(self.data, camera=self._camera_id)
        # Reward cameras feed vision models: shadows and reflections only add nuisance pixels.
        flags = self._renderer.scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = False
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # --- scripted expert -----------------------------------------------------------------------

    def expert_action(self) -> np.ndarray:
        """A closed-loop scripted expert reading the simulator state (no internal memory)."""
        gripper = self._grip_xpos.copy()
        if self._task_name == "reach":
            return self._move_to(gripper, self._target, fingers=1.0)
        block = self._block_body.xpos.copy()
        if self._task_name == "push":
            return self._expert_push(gripper, block)
        return self._expert_pick_place(gripper, block, self._block_held(self._distances()))

    def idle_action(self) -> np.ndarray:
        """Hold the gripper where it is and the fingers at their current set-point."""
        fingers = self.data.ctrl[self._finger_act_ids[0]] / (0.5 * _FINGER_OPEN) - 1.0
        return np.array([0.0, 0.0, 0.0, min(max(fingers, -1.0), 1.0)], dtype=np.float32)

    def _move_to(self, gripper: np.ndarray, goal: np.ndarray, fingers: float) -> np.ndarray:
        delta = np.clip((goal - gripper) / self.config.action_scale, -1.0, 1.0)
        return np.array([*delta, fingers], dtype=np.float32)

    def _expert_push(self, gripper: np.ndarray, block: np.ndarray) -> np.ndarray:
        """Close the fingers, come down behind the block, push it along the block-target line."""
        push_z, travel_z = 0.02, 0.08
        to_target = self._target[:2] - block[:2]
        distance = float(np.linalg.norm(to_target))
        if distance < 0.5 * self.config.distance_threshold:
            # Done: back off upwards, which leaves the block (and the view of it) alone.
            return self._move_to(gripper, gripper + [0.0, 0.0, 0.05], fingers=-1.0)
        direction = to_target / distance
        behind = float(np.dot(block[:2] - gripper[:2], direction))
        offset = gripper[:2] - block[:2]
        lateral = float(direction[0] * offset[1] - direction[1] * offset[0])
        if gripper[2] < push_z + 0.015 and 0.02 < behind < 0.07 and abs(lateral) < 0.015:
            # In contact position: advance along the line through block and target, slowing
            # down near the target so the block does not slide past it.
            advance = min(0.015, 0.1 * distance)
            goal_xy = block[:2] - direction * (0.048 - advance - 0.012)
            return self._move_to(gripper, np.array([*goal_xy, push_z]), fingers=-1.0)
        start_xy = block[:2] - direction * 0.055
        if np.linalg.norm(gripper[:2] - start_xy) < 0.01:
            return self._move_to(gripper, np.array([*start_xy, push_z]), fingers=-1.0)
        if gripper[2] < travel_z - 0.01 and np.linalg.norm(gripper[:2] - block[:2]) < 0.08:
            return self._move_to(gripper, np.array([*gripper[:2], travel_z]), fingers=-1.0)
        return self._move_to(gripper, np.array([*start_xy, travel_z]), fingers=-1.0)

    def _expert_pick_place(self, gripper: np.ndarray, block: np.ndarray, held: bool) -> np.ndarray:
        """Grasp the block from above, carry it over the platform, lower it and let go."""
        target = self._target
        carry_z = target[2] + _CARRY_CLEARANCE
        above_xy = float(np.linalg.norm(block[:2] - target[:2]))
        if above_xy < 0.015 and abs(block[2] - target[2]) < _Z_TOLERANCE:
            # Placed: open the fingers, then rise once they are clear of the block.
            goal = gripper.copy()
            if self._finger_gap() > 2 * _FINGER_OPEN - 0.01:
                goal[2] = carry_z + 0.05
            return self._move_to(gripper, goal, fingers=1.0)
        if held:
            if above_xy > 0.01:
                if gripper[2] < carry_z - 0.01:
                    return self._move_to(gripper, np.array([*gripper[:2], carry_z]), -1.0)
                return self._move_to(gripper, np.array([*target[:2], carry_z]), -1.0)
            return self._move_to(gripper, target + [0.0, 0.0, 0.004], fingers=-1.0)
        hover = np.array([*block[:2], block[2] + 0.08])
        if np.linalg.norm(gripper[:2] - block[:2]) > 0.008:
            if gripper[2] < block[2] + 0.03:
                return self._move_to(gripper, np.array([*gripper[:2], hover[2]]), 1.0)
            return self._move_to(gripper, hover, fingers=1.0)
        if gripper[2] > block[2] + 0.005:
            return self._move_to(gripper, block, fingers=1.0)
        return self._move_to(gripper, block, fingers=-1.0)
