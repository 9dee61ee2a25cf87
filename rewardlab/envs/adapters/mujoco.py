"""Tasks of Gymnasium's MuJoCo envs: ``InvertedPendulum-v5``, ``Hopper-v5``, ``HalfCheetah-v5``
and ``Humanoid-v5`` (kneeling, as in VLM-RM).

Each adapter reads the simulator (``env.data``) by joint and body name, never the observation,
so its success, progress and state hold under any observation wrapper and with either setting of
``exclude_current_positions_from_observation``. Velocities are MuJoCo's own, unclipped (Hopper's
observation clips them to [-10, 10]). Frames are 224 x 224 (:attr:`TaskAdapter.render_kwargs`)
from each env's default camera.

Success, where the env has none of its own, is rewardlab's definition, stated in each class
with its source. rewardlab's evaluation reads ``is_success`` at an episode's last step.

No scripted expert is shipped for Hopper, HalfCheetah and Humanoid: locomotion and whole-body
poses need a trained policy, so their tasks report the expert as a missing feature
(:class:`~rewardlab.envs.tasks.MissingTaskFeature`).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from rewardlab.envs.core import StateVariable
from rewardlab.envs.tasks import TaskAdapter

__all__ = ["HalfCheetah", "Hopper", "Humanoid", "InvertedPendulum"]


class _MujocoTask(TaskAdapter):
    """Named reads of the simulator shared by the MuJoCo adapters."""

    render_kwargs: ClassVar[Mapping[str, Any]] = {"width": 224, "height": 224}

    @property
    def _data(self) -> Any:
        return self.env.data  # type: ignore[attr-defined]

    def _index(self, kind: str, name: str) -> int:
        """The address of a joint's qpos or qvel (``kind``), or a body's id, looked up by name
        once: MuJoCo's named views cost about a microsecond each, every step."""
        key = (kind, name)
        index = self._indices.get(key)
        if index is None:
            model: Any = self.env.model  # type: ignore[attr-defined]
            if kind == "body":
                index = int(model.body(name).id)
            else:
                joint = model.joint(name)
                index = int(joint.qposadr[0] if kind == "qpos" else joint.dofadr[0])
            self._indices[key] = index
        return index

    @functools.cached_property
    def _indices(self) -> dict[tuple[str, str], int]:
        return {}

    def _qpos(self, joint: str) -> float:
        return float(self._data.qpos[self._index("qpos", joint)])

    def _qvel(self, joint: str) -> float:
        return float(self._data.qvel[self._index("qvel", joint)])

    def _up(self, body: str) -> float:
        """z component of ``body``'s z axis in the world: 1 upright, 0 on its side, -1 flipped."""
        return float(self._data.xmat[self._index("body", body), 8])


# The env's step(): terminated when |pole angle| > 0.2 rad (or the state is not finite).
_PENDULUM_FAIL_ANGLE = 0.2


class InvertedPendulum(_MujocoTask):
    """Balance the pole of ``InvertedPendulum-v5``, MuJoCo's cart-pole.

    The episode fails (``terminated``) once the pole leans more than 0.2 rad; it is truncated
    after 1000 steps. The cart runs on a rail limited to +-1 m. Like CartPole's, the env defines
    no success state: the pole starts upright (all of qpos, qvel uniform in +-0.01).

    Success (rewardlab's definition, as for CartPole): the pole leans at most
    :attr:`upright_fraction` of the failure angle, 0.1 rad. Failure states are outside it, so at
    an episode's last step success means balanced until the time limit and upright at the end.

    Progress: ``clip((0.2 - |angle|) / (0.2 - 0.1), 0, 1)``, 1 in the success band, 0 at the
    failure angle. It does not start near 0: the initial states are upright.

    Expert: LQR. Gains from a discrete LQR (``Q = diag(10, 100, 1, 1)``, ``R = 1``) on the env's
    step (two 0.02 s physics steps) linearised about the upright state by finite differences,
    clipped to the action range [-3, 3]. It balances all 1000 steps from every initial state
    tried (30 seeds) with the pole within 0.01 rad.

    Idle action: ``[0.0]``, no force; the pole falls.

    Reward: the env's +1 per step until failure is the task's reference reward
    (``dense_reward_type="env"``).
    """

    name = "balance_pole"
    # VLM-RM's CartPole prompts (Rocamonde et al. 2023, Table 3): the same scene in MuJoCo.
    goal = "pole vertically upright on top of the cart"
    baseline = "pole and cart"
    negatives = ("pole tilted far to one side of the cart",)
    description = (
        "A pole is hinged on a cart that slides along a rail (limited to +-1 m). Each step the "
        "agent pushes the cart with a force in [-3, 3]. The pole starts nearly upright and must "
        "be kept upright: the episode fails when it leans more than 0.2 rad, and ends after "
        "1000 steps."
    )
    state_variables = (
        StateVariable("cart_position", (), "m", "cart position on the rail, in [-1, 1]"),
        StateVariable(
            "pole_angle", (), "rad", "pole angle from vertical (hinge); fails beyond 0.2 rad"
        ),
        StateVariable("cart_velocity", (), "m/s", "cart velocity along the rail"),
        StateVariable("pole_angular_velocity", (), "rad/s", "rate of change of pole_angle"),
    )
    dense_reward_type = "env"

    upright_fraction: ClassVar[float] = 0.5
    """Success band as a fraction of the env's failure angle (0.2 rad)."""
    lqr_gain: ClassVar[tuple[float, float, float, float]] = (1.719, 12.145, 2.015, 1.902)
    """The expert's force ``K . (x, angle, x_dot, angle_dot)`` (see the class docstring)."""

    def _state(self) -> tuple[float, float, float, float]:
        return (
            self._qpos("slider"),
            self._qpos("hinge"),
            self._qvel("slider"),
            self._qvel("hinge"),
        )

    def success(self, obs: Any, info: Mapping[str, Any]) -> bool:
        return abs(self._qpos("hinge")) <= self.upright_fraction * _PENDULUM_FAIL_ANGLE

    def progress(self) -> float:
        band = self.upright_fraction * _PENDULUM_FAIL_ANGLE
        margin = (_PENDULUM_FAIL_ANGLE - abs(self._qpos("hinge"))) / (_PENDULUM_FAIL_ANGLE - band)
        return min(1.0, max(0.0, margin)) if math.isfinite(margin) else 0.0

    def state_dict(self) -> dict[str, np.ndarray]:
        names = [v.name for v in self.state_variables]
        return {
            n: np.asarray(v, dtype=np.float64) for n, v in zip(names, self._state(), strict=True)
        }

    def expert_action(self, obs: Any) -> np.ndarray:
        force = float(np.dot(self.lqr_gain, self._state()))
        space: Any = self.env.action_space
        return np.array([min(space.high[0], max(space.low[0], force))], dtype=np.float32)

    def idle_action(self) -> np.ndarray:
        return np.zeros(1, dtype=np.float32)


class _PlanarRunner(_MujocoTask):
    """Hopper and HalfCheetah: a planar robot that must get ``target_distance`` forward.

    Subclasses list their joints in ``_JOINTS`` as ``(joint, variable name, doc)``: each gives
    ``<name>`` (its position) and ``<name>_velocity``.
    """

    _JOINTS: ClassVar[tuple[tuple[str, str, str], ...]]
    target_distance: ClassVar[float]
    """Success: the torso's x position (``rootx``, 0 at the start) at least this (m)."""
    dense_reward_type = "env"

    @classmethod
    def _variables(cls, joints: tuple[tuple[str, str, str], ...]) -> tuple[StateVariable, ...]:
        positions, velocities = [], []
        for joint, name, doc in joints:
            linear = joint in ("rootx", "rootz")
            units = ("m", "m/s") if linear else ("rad", "rad/s")
            positions.append(StateVariable(name, (), units[0], doc, privileged=joint == "rootx"))
            velocities.append(
                StateVariable(f"{name}_velocity", (), units[1], f"rate of change of {name}")
            )
        return (*positions, *velocities)

    def _x(self) -> float:
        return self._qpos("rootx")

    def progress(self) -> float:
        return min(1.0, max(0.0, self._x() / self.target_distance))

    def state_dict(self) -> dict[str, np.ndarray]:
        out = {}
        for joint, name, _ in self._JOINTS:
            out[name] = np.asarray(self._qpos(joint), dtype=np.float64)
        for joint, name, _ in self._JOINTS:
            out[f"{name}_velocity"] = np.asarray(self._qvel(joint), dtype=np.float64)
        return out

    def idle_action(self) -> np.ndarray:
        return np.zeros(self.env.action_space.shape, dtype=np.float32)  # type: ignore[arg-type]


_HOPPER_JOINTS = (
    ("rootx", "torso_x", "torso x position (forward), 0 at the start; not in the observation"),
    ("rootz", "torso_z", "torso height above the floor; healthy above 0.7 m"),
    ("rooty", "torso_angle", "torso pitch, 0 upright; healthy within (-0.2, 0.2) rad"),
    ("thigh_joint", "thigh_angle", "hip joint angle, in [-2.62, 0]"),
    ("leg_joint", "leg_angle", "knee joint angle, in [-2.62, 0]"),
    ("foot_joint", "foot_angle", "ankle joint angle, in [-0.785, 0.785]"),
)


class Hopper(_PlanarRunner):
    """Hop forward with the one-legged robot of ``Hopper-v5`` without falling.

    The episode fails (``terminated``) when the hopper is unhealthy (torso below 0.7 m, pitched
    beyond 0.2 rad, or a state beyond 100); it is truncated after 1000 steps (8 s).

    Success (rewardlab's definition): the torso is at least :attr:`target_distance` = 22.4 m
    forward of the start and the hopper is healthy (``env.is_healthy``), so an episode that
    ends in a fall is never a success. The distance is the one Gymnasium's "solved" return
    implies: ``Hopper-v5`` is registered with ``reward_threshold=3800``, and over 1000 steps
    with the healthy reward 1 per step and a negligible control cost that return needs
    ``sum(x_velocity) = 2800``, i.e. ``2800 * dt = 22.4`` m (a mean 2.8 m/s). It is calibrated
    for the default time limit; register a subclass with another ``target_distance`` for
    other episode lengths.

    Progress: ``clip(torso_x / target_distance, 0, 1)``.

    Idle action: zero torques (the hopper collapses).

    Reward: the env's forward velocity + healthy bonus - control cost is its hand-designed
    dense reward (``dense_reward_type="env"``).
    """

    name = "hop_forward"
    goal = "a one-legged robot hopping forward upright"
    baseline = "a one-legged robot"
    negatives = ("a one-legged robot fallen on the floor",)
    description = (
        "A planar one-legged robot (torso, thigh, leg and foot; three joint motors with torques "
        "in [-1, 1]) must hop forward, in +x, as far as possible without falling. The episode "
        "ends when it becomes unhealthy (torso below 0.7 m or pitched more than 0.2 rad) or "
        "after 1000 steps of 0.008 s."
    )
    _JOINTS = _HOPPER_JOINTS
    state_variables = (
        *_PlanarRunner._variables(_HOPPER_JOINTS),
        StateVariable(
            "is_healthy", (), "bool", "the env's health check (the episode ends when it fails)"
        ),
    )
    target_distance: ClassVar[float] = 22.4

    def _healthy(self) -> bool:
        inner: Any = self.env
        return bool(inner.is_healthy)

    def success(self, obs: Any, info: Mapping[str, Any]) -> bool:
        return self._x() >= self.target_distance and self._healthy()

    def state_dict(self) -> dict[str, np.ndarray]:
        return {**super().state_dict(), "is_healthy": np.asarray(self._healthy())}


_CHEETAH_JOINTS = (
    ("rootx", "torso_x", "torso x position (forward), 0 at the start; not in the observation"),
    ("rootz", "torso_z", "torso height relative to its initial height (0.7 m above the floor)"),
    ("rooty", "torso_angle", "torso pitch, 0 level; beyond +-pi/2 (mod 2 pi) it is on its back"),
    ("bthigh", "back_thigh_angle", "back hip joint angle, in [-0.52, 1.05]"),
    ("bshin", "back_shin_angle", "back knee joint angle, in [-0.785, 0.785]"),
    ("bfoot", "back_foot_angle", "back ankle joint angle, in [-0.4, 0.785]"),
    ("fthigh", "front_thigh_angle", "front hip joint angle, in [-1, 0.7]"),
    ("fshin", "front_shin_angle", "front knee joint angle, in [-1.2, 0.87]"),
    ("ffoot", "front_foot_angle", "front ankle joint angle, in [-0.5, 0.5]"),
)


class HalfCheetah(_PlanarRunner):
    """Run forward with the planar cheetah of ``HalfCheetah-v5``, on its feet.

    There is no termination; episodes end after 1000 steps (50 s).

    Success (rewardlab's definition): the torso is at least :attr:`target_distance` = 240 m
    forward of the start and not flipped over (the torso's up axis points up, so a cheetah
    that runs on its back, a known exploit of the env's reward, is not a success). The distance
    is the one Gymnasium's "solved" return implies: ``HalfCheetah-v5`` is registered with
    ``reward_threshold=4800``, and its reward is ``x_velocity`` minus a control cost, so over
    1000 steps of 0.05 s the return needs ``4800 * 0.05 = 240`` m at least (a mean 4.8 m/s).
    It is calibrated for the default time limit; register a subclass with another
    ``target_distance`` for other episode lengths.

    Progress: ``clip(torso_x / target_distance, 0, 1)``.

    Idle action: zero torques.

    Reward: the env's forward velocity - control cost is its hand-designed dense reward
    (``dense_reward_type="env"``).
    """

    name = "run_forward"
    goal = "a cheetah robot running forward on its legs"
    baseline = "a cheetah robot"
    negatives = ("a cheetah robot flipped onto its back",)
    description = (
        "A planar two-legged cheetah robot (torso, back and front thigh, shin and foot; six "
        "joint motors with torques in [-1, 1]) must run forward, in +x, as fast as possible. "
        "There is no termination; episodes last 1000 steps of 0.05 s."
    )
    _JOINTS = _CHEETAH_JOINTS
    state_variables = _PlanarRunner._variables(_CHEETAH_JOINTS)
    target_distance: ClassVar[float] = 240.0

    def success(self, obs: Any, info: Mapping[str, Any]) -> bool:
        return self._x() >= self.target_distance and self._up("torso") > 0.0


# Humanoid joint groups, in qpos order, as (variable name, joints, doc).
_HUMANOID_GROUPS = (
    ("abdomen_angles", ("abdomen_z", "abdomen_y", "abdomen_x"), "abdomen joint angles (z, y, x)"),
    ("right_hip_angles", ("right_hip_x", "right_hip_z", "right_hip_y"), "right hip (x, z, y)"),
    ("right_knee_angle", ("right_knee",), "right knee, in [-2.79, -0.035]; more negative is bent"),
    ("left_hip_angles", ("left_hip_x", "left_hip_z", "left_hip_y"), "left hip (x, z, y)"),
    ("left_knee_angle", ("left_knee",), "left knee, in [-2.79, -0.035]; more negative is bent"),
    ("right_shoulder_angles", ("right_shoulder1", "right_shoulder2"), "right shoulder (1, 2)"),
    ("right_elbow_angle", ("right_elbow",), "right elbow"),
    ("left_shoulder_angles", ("left_shoulder1", "left_shoulder2"), "left shoulder (1, 2)"),
    ("left_elbow_angle", ("left_elbow",), "left elbow"),
)


def _humanoid_variables() -> tuple[StateVariable, ...]:
    joints = [
        StateVariable(n, (len(j),) if len(j) > 1 else (), "rad", d) for n, j, d in _HUMANOID_GROUPS
    ]
    order = ", ".join(j for _, js, _ in _HUMANOID_GROUPS for j in js)
    return (
        StateVariable(
            "torso_position",
            (3,),
            "m",
            "torso centre (x, y, z), world; x and y are not observed",
            privileged=True,
        ),
        StateVariable("torso_quat", (4,), "-", "torso orientation quaternion (w, x, y, z), world"),
        StateVariable("torso_velocity", (3,), "m/s", "torso linear velocity, world"),
        StateVariable(
            "torso_angular_velocity", (3,), "rad/s", "torso angular velocity, body frame"
        ),
        *joints,
        StateVariable("joint_velocities", (17,), "rad/s", f"joint angular velocities: {order}"),
        StateVariable(
            "torso_up", (), "-", "z component of the torso's up axis: 1 upright, 0 lying"
        ),
        StateVariable(
            "knee_heights", (2,), "m", "height of the (right, left) knee above the floor"
        ),
    )


class Humanoid(_MujocoTask):
    """Kneel with the humanoid of ``Humanoid-v5``: VLM-RM's kneeling task (Rocamonde et al.
    2023, Section 4.3).

    The env's own task is running forward (its reward); VLM-RM trained the humanoid for poses
    from text prompts instead, kneeling being the one it studies most. Its goal and baseline
    prompts are :attr:`goal` and :attr:`baseline`; :attr:`VLM_RM_GOALS` holds its other pose
    prompts (Table 3), all with the same baseline. Success and progress here are kneeling's; give
    another pose its own, e.g. ``rewardlab.register_task("Humanoid-v5",
    goal=Humanoid.VLM_RM_GOALS["lotus_position"], baseline="a humanoid robot", success=...,
    replace=True)``.

    VLM-RM changed the env for its runs: 100-step episodes without early termination, and
    realistic textures with a fixed camera (which raised kneeling success from 36% to 100%).
    The env as registered ends the episode once the torso is below ``healthy_z_range[0]`` = 1 m,
    above any kneel, so ``rewardlab.make("Humanoid-v5")`` makes it with
    ``terminate_when_unhealthy=False`` (:attr:`make_defaults`; add ``max_episode_steps=100``
    for VLM-RM's episodes); the first reset of an env that terminates there (given
    ``terminate_when_unhealthy=True``, or made by ``gym.make``) warns. rewardlab changes neither the
    textures nor the tracking camera.

    Success (rewardlab's definition, from VLM-RM's human-evaluation criterion, Table 2: "kneeling
    with both knees touching the floor; not losing balance nor kneeling in the air"): both knees
    (the top of each shin) at most :attr:`knee_floor` = 0.1 m above the floor, the torso
    upright within :attr:`max_tilt` = 45 degrees, the torso at least :attr:`min_height` =
    0.65 m high, and the torso moving at most :attr:`max_speed` = 0.5 m/s. Kneeling upright puts
    the torso at 0.78 to 0.93 m (sitting back on the heels to thighs vertical); sitting on the
    floor with the legs stretched, the other upright pose with both knees down, puts it at
    0.54 m; on all fours the torso is not upright. The speed bound is "not losing balance": a
    humanoid collapsing without torque passes through kneeling poses at about 3 m/s.

    Progress: ``min(knees, upright, height, still)``, each term 1 where its success condition
    holds and clipped to [0, 1]: ``knees`` falls linearly from 1 at 0.1 m (the higher knee) to 0
    at 0.425 m (standing), ``upright`` from 1 at 45 degrees of tilt to 0 lying flat, ``height``
    from 1 at 0.65 m to 0 at 0.35 m, ``still`` from 1 at 0.5 m/s to 0 at 2 m/s. Standing, the
    start, has progress 0.

    Idle action: zero torques (the humanoid collapses).

    Reward: the env's reward pays running forward and staying up, not kneeling, so there is no
    dense reference reward for this task (``dense_reward_type`` None).
    """

    name = "kneel"
    goal = "a humanoid robot kneeling"
    baseline = "a humanoid robot"
    negatives = ("a humanoid robot standing up", "a humanoid robot lying on the ground")
    description = (
        "A 3D humanoid robot (17 joint motors: abdomen, hips, knees, shoulders, elbows, torques "
        "in [-0.4, 0.4]) starts standing and must kneel: both knees on the floor, the torso "
        "upright and off the floor, and hold still without falling over. Episodes last up to "
        "1000 steps of 0.015 s."
    )
    state_variables = _humanoid_variables()
    make_defaults: ClassVar[Mapping[str, Any]] = {"terminate_when_unhealthy": False}
    dense_reward_type = None

    VLM_RM_GOALS: ClassVar[Mapping[str, str]] = {
        "kneeling": "a humanoid robot kneeling",
        "lotus_position": "a humanoid robot seated down, meditating in the lotus position",
        "standing_up": "a humanoid robot standing up",
        "arms_raised": "a humanoid robot standing up, with both arms raised",
        "doing_splits": "a humanoid robot practicing gymnastics, doing the side splits",
        "hands_on_hips": "a humanoid robot standing up with hands on hips",
        "arms_crossed": "a humanoid robot standing up, with its arms crossed",
        "standing_on_one_leg": "a humanoid robot standing up on one leg",
    }
    """VLM-RM's goal prompts for the humanoid (Table 3); the baseline is "a humanoid robot"."""

    knee_floor: ClassVar[float] = 0.1
    """Success: both knees at most this high (m); a knee on the floor is at 0.05 to 0.08."""
    max_tilt: ClassVar[float] = math.pi / 4
    """Success: the torso tilts from vertical at most this (rad)."""
    min_height: ClassVar[float] = 0.65
    """Success: the torso centre at least this high (m)."""
    max_speed: ClassVar[float] = 0.5
    """Success: the torso moves at most this fast (m/s), "not losing balance"."""
    _STANDING_KNEE = 0.425  # knee height standing on straight legs (m)
    _LOW_TORSO = 0.35  # torso height where the height term reaches 0 (m)
    _FALLING = 2.0  # torso speed where the speed term reaches 0 (m/s)

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        self._checked_termination = False

    def on_reset(self, obs: Any, info: Mapping[str, Any]) -> None:
        if self._checked_termination:
            return
        self._checked_termination = True
        # The env's own settings (v5 keeps its constructor arguments in these attributes).
        terminates = getattr(self.env, "_terminate_when_unhealthy", False)
        lowest = float(getattr(self.env, "_healthy_z_range", (0.0, math.inf))[0])
        if terminates and lowest > self.min_height:
            warnings.warn(
                f"{self.env_id} ends the episode when the torso is below {lowest} m, but a kneel "
                f"puts it at {self.min_height} to 0.95 m, so the kneeling task cannot succeed; "
                f"make the env with terminate_when_unhealthy=False (as VLM-RM did): "
                f'rewardlab.make("{self.env_id}", terminate_when_unhealthy=False)',
                UserWarning,
                stacklevel=2,
            )

    def _knee_heights(self) -> tuple[float, float]:
        xpos = self._data.xpos
        return (
            float(xpos[self._index("body", "right_shin"), 2]),
            float(xpos[self._index("body", "left_shin"), 2]),
        )

    def _speed(self) -> float:
        start = self._index("qvel", "root")
        vx, vy, vz = self._data.qvel[start : start + 3].tolist()
        return math.sqrt(vx * vx + vy * vy + vz * vz)

    def _torso_height(self) -> float:
        return float(self._data.xpos[self._index("body", "torso"), 2])

    def _terms(self) -> tuple[float, float, float, float]:
        knee = max(self._knee_heights())
        height = self._torso_height()
        return (
            (self._STANDING_KNEE - knee) / (self._STANDING_KNEE - self.knee_floor),
            self._up("torso") / math.cos(self.max_tilt),
            (height - self._LOW_TORSO) / (self.min_height - self._LOW_TORSO),
            (self._FALLING - self._speed()) / (self._FALLING - self.max_speed),
        )

    def success(self, obs: Any, info: Mapping[str, Any]) -> bool:
        return (
            max(self._knee_heights()) <= self.knee_floor
            and self._up("torso") >= math.cos(self.max_tilt)
            and self._torso_height() >= self.min_height
            and self._speed() <= self.max_speed
        )

    def progress(self) -> float:
        if self.success(None, {}):
            return 1.0
        return min(1.0, max(0.0, min(self._terms())))

    def state_dict(self) -> dict[str, np.ndarray]:
        root = self._data.joint("root")  # the free joint of the torso
        out: dict[str, np.ndarray] = {
            "torso_position": np.array(root.qpos[0:3], dtype=np.float64),
            "torso_quat": np.array(root.qpos[3:7], dtype=np.float64),
            "torso_velocity": np.array(root.qvel[0:3], dtype=np.float64),
            "torso_angular_velocity": np.array(root.qvel[3:6], dtype=np.float64),
        }
        for name, joints, _ in _HUMANOID_GROUPS:
            values = np.array([self._qpos(j) for j in joints], dtype=np.float64)
            out[name] = values if len(joints) > 1 else values.reshape(())
        order = [j for _, js, _ in _HUMANOID_GROUPS for j in js]
        out["joint_velocities"] = np.array([self._qvel(j) for j in order], dtype=np.float64)
        out["torso_up"] = np.asarray(self._up("torso"), dtype=np.float64)
        out["knee_heights"] = np.array(self._knee_heights(), dtype=np.float64)
        return out

    def idle_action(self) -> np.ndarray:
        return np.zeros(self.env.action_space.shape, dtype=np.float32)  # type: ignore[arg-type]
