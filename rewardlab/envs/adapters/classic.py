"""Tasks of Gymnasium's classic-control envs: ``CartPole-v1``, ``MountainCar-v0``,
``MountainCarContinuous-v0`` and ``Pendulum-v1``.

Each adapter reads the unwrapped env's ``state`` (the simulator's own variables, not the
float32 observation), so success, progress and the experts hold under any observation wrapper.
The goal and baseline prompts of CartPole and MountainCar are VLM-RM's (Rocamonde et al. 2023,
"Vision-Language Models are Zero-Shot Reward Models for Reinforcement Learning", Table 3);
Pendulum's are rewardlab's own.

Success, where the env has none of its own, is rewardlab's definition, stated in each class.
rewardlab's evaluation reads ``is_success`` at an episode's last step, so a balancing task's
success there means "balanced until the time limit and upright at the end".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from rewardlab.envs.core import StateVariable
from rewardlab.envs.tasks import TaskAdapter

__all__ = ["CartPole", "MountainCar", "MountainCarContinuous", "Pendulum"]


def _scalars(values: Mapping[str, float]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}


class CartPole(TaskAdapter):
    """Balance the pole of ``CartPole-v1`` (Barto, Sutton & Anderson 1983).

    The episode fails (``terminated``) once the pole leans more than
    ``theta_threshold_radians`` (12 degrees) or the cart leaves the track
    (``|x| > x_threshold = 2.4`` m); it is truncated after 500 steps. The env defines no success
    state: balancing starts at the goal and the task is to stay there.

    Success (rewardlab's definition): the pole leans at most :attr:`upright_fraction` of the
    failure angle (6 degrees) and the cart is on the track. Every failure state is outside it, so
    at an episode's last step success means the pole was balanced until the time limit and is
    upright at the end. Initial states (all variables uniform in +-0.05) are successes.

    Progress: ``clip((theta_max - |theta|) / (theta_max - theta_success), 0, 1)``, a margin that
    is 1 in the success band and falls linearly to 0 at the failure angle (0 off the track).
    It does not start near 0: the initial states are already upright.

    Expert: bang-bang LQR. Gains from a discrete LQR (``Q = diag(1, 1, 10, 1)``, ``R = 1``) on
    the env's dynamics linearised about the upright state; push right when
    ``K . state > 0``. It balances all 500 steps from every initial state tried (100 seeds),
    the cart within 0.7 m of the centre.

    Idle action: CartPole has no no-op (every action pushes with 10 N), so idling brakes the
    cart: push against its velocity. The pole is left to fall (after 20 to 180 steps).

    Reward: the env's +1 per step is the task's reference reward (``dense_reward_type="env"``);
    ``reward_type="sutton_barto"`` selects the env's 0 per step, -1 on failure.
    """

    name = "balance_pole"
    goal = "pole vertically upright on top of the cart"
    baseline = "pole and cart"
    negatives = (
        "pole fallen over on the side of the cart",
        "pole tilted far to one side of the cart",
    )
    description = (
        "A pole is hinged on a cart that moves along a frictionless track. Each step the agent "
        "pushes the cart left or right with a fixed force. The pole starts nearly upright and "
        "must be kept upright: the episode fails when it leans more than 12 degrees or the cart "
        "leaves the track (|cart_position| > 2.4 m), and ends after 500 steps."
    )
    state_variables = (
        StateVariable(
            "cart_position",
            (),
            "m",
            "cart position on the track, 0 at the centre; fails beyond 2.4",
        ),
        StateVariable("cart_velocity", (), "m/s", "cart velocity, positive to the right"),
        StateVariable(
            "pole_angle",
            (),
            "rad",
            "pole angle from vertical, positive leaning right; fails beyond 0.2095 (12 degrees)",
        ),
        StateVariable(
            "pole_angular_velocity",
            (),
            "rad/s",
            "rate of change of pole_angle (positive: rightward)",
        ),
    )
    dense_reward_type = "env"
    reward_types: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "sutton_barto": {"sutton_barto_reward": True}
    }

    upright_fraction: ClassVar[float] = 0.5
    """Success band as a fraction of the env's failure angle (``theta_threshold_radians``)."""
    lqr_gain: ClassVar[tuple[float, float, float, float]] = (0.91, 2.14, 30.86, 7.88)
    """The expert's ``K`` over ``(x, x_dot, theta, theta_dot)`` (see the class docstring)."""

    def _state(self) -> tuple[float, float, float, float]:
        # tolist: Python floats at once (success and progress run every step).
        x, x_dot, theta, theta_dot = self.env.state.tolist()  # type: ignore[attr-defined]
        return x, x_dot, theta, theta_dot

    def success(self, obs: Any, info: Mapping[str, Any]) -> bool:
        inner: Any = self.env
        x, _, theta, _ = inner.state.tolist()
        band = self.upright_fraction * inner.theta_threshold_radians
        return abs(x) <= inner.x_threshold and abs(theta) <= band

    def progress(self) -> float:
        inner: Any = self.env
        x, _, theta, _ = inner.state.tolist()
        if abs(x) > inner.x_threshold:
            return 0.0
        fail = float(inner.theta_threshold_radians)
        band = self.upright_fraction * fail
        return min(1.0, max(0.0, (fail - abs(theta)) / (fail - band)))

    def state_dict(self) -> dict[str, np.ndarray]:
        names = [v.name for v in self.state_variables]
        return _scalars(dict(zip(names, self._state(), strict=True)))

    def expert_action(self, obs: Any) -> int:
        return int(np.dot(self.lqr_gain, self._state()) > 0.0)

    def idle_action(self) -> int:
        return 0 if self._state()[1] > 0.0 else 1


# Both MountainCar envs: velocity += push - GRAVITY * cos(3 x) per step, position += velocity
# (Moore 1990; Gymnasium's step()). The hill is the potential U(x) = GRAVITY / 3 * sin(3 x).
_MOUNTAIN_GRAVITY = 0.0025


class _MountainCarTask(TaskAdapter):
    """What both MountainCar variants share: prompts, success, energy progress, state and the
    expert's rule.

    Success: the env's own goal, which ends the episode (``terminated``):
    ``position >= goal_position and velocity >= goal_velocity`` (Moore 1990; Gymnasium's
    ``step``). At an episode's last step it is the flag reached before the time limit.

    Progress: the car's mechanical energy ``E = v**2 / 2 + 0.0025 / 3 * sin(3 x)`` (the hill is
    the potential of the env's gravity term ``-0.0025 cos(3 x)``), scaled from 0 at rest in the
    valley to 1 at the energy needed on the flag, ``E(goal_position, goal_velocity)``, and
    clipped; exactly 1 in success states. The car is underpowered: it has to swing back and
    forth to gain energy, which a position-based potential would penalise. Initial states (at
    rest, x in [-0.6, -0.4]) have progress 0 to 0.04; a car with the energy to coast to the
    flag may have progress 1 before it gets there.

    Expert: energy pumping, push in the direction of motion (right when at rest), which only
    ever adds energy; it reaches the flag within 125 steps from every initial state tried
    (200 seeds).
    """

    goal = "a car at the peak of the mountain, next to the yellow flag"
    baseline = "a car in the mountain"
    negatives = ("a car at the bottom of the valley",)
    state_variables = (
        StateVariable(
            "position",
            (),
            "m",
            "car position along the x-axis, in [-1.2, 0.6]; the flag is at goal_position",
        ),
        StateVariable(
            "velocity", (), "m/step", "position change per step, in [-0.07, 0.07]; positive right"
        ),
        StateVariable(
            "goal_position", (), "m", "position of the flag on the right hilltop (constant)"
        ),
    )
    dense_reward_type = None

    def _state(self) -> tuple[float, float]:
        inner: Any = self.env
        state = inner.state  # an array after reset, a tuple of floats after a step (v0)
        position, velocity = state.tolist() if isinstance(state, np.ndarray) else state
        return float(position), float(velocity)

    def _energy(self, position: float, velocity: float) -> float:
        return 0.5 * velocity**2 + _MOUNTAIN_GRAVITY / 3.0 * math.sin(3.0 * position)

    def success(self, obs: Any, info: Mapping[str, Any]) -> bool:
        inner: Any = self.env
        position, velocity = self._state()
        return bool(position >= inner.goal_position and velocity >= inner.goal_velocity)

    def progress(self) -> float:
        if self.success(None, {}):
            return 1.0
        inner: Any = self.env
        lowest = -_MOUNTAIN_GRAVITY / 3.0  # at rest in the valley, x = -pi/6
        needed = self._energy(float(inner.goal_position), max(0.0, float(inner.goal_velocity)))
        fraction = (self._energy(*self._state()) - lowest) / (needed - lowest)
        return min(1.0, max(0.0, fraction))

    def state_dict(self) -> dict[str, np.ndarray]:
        position, velocity = self._state()
        inner: Any = self.env
        goal = float(inner.goal_position)
        return _scalars({"position": position, "velocity": velocity, "goal_position": goal})


class MountainCar(_MountainCarTask):
    """Drive the underpowered car of ``MountainCar-v0`` up to the flag.

    Success, progress and expert: :class:`_MountainCarTask`'s.

    Idle action: 1, no push.

    Reward: the env's -1 per step is a time penalty, not a shaped reward, so there is no dense
    reference reward (``dense_reward_type`` None).
    """

    name = "reach_flag"
    description = (
        "An underpowered car sits in a valley between two hills and must reach the flag on the "
        "right hilltop (position >= 0.5). Each step it pushes left (0), not at all (1) or right "
        "(2); the push is weaker than gravity on the slope, so the car has to swing back and "
        "forth to build up momentum. The episode ends at the flag or after 200 steps."
    )

    def expert_action(self, obs: Any) -> int:
        return 2 if self._state()[1] >= 0.0 else 0

    def idle_action(self) -> int:
        return 1


class MountainCarContinuous(_MountainCarTask):
    """Drive the underpowered car of ``MountainCarContinuous-v0`` up to the flag.

    Success, progress and expert: :class:`_MountainCarTask`'s.

    Idle action: ``[0.0]``, no force.

    Reward: the env's +100 at the flag minus ``0.1 * action**2`` per step is sparse with an
    action cost, not a shaped reward (``dense_reward_type`` None).
    """

    name = "reach_flag"
    description = (
        "An underpowered car sits in a valley between two hills and must reach the flag on the "
        "right hilltop (position >= 0.45). Each step it applies a force in [-1, 1] (positive "
        "right), weaker than gravity on the slope, so it has to swing back and forth to build "
        "up momentum. Reaching the flag pays 100 and ends the episode; every step costs "
        "0.1 * force**2; episodes end after 999 steps."
    )

    def expert_action(self, obs: Any) -> np.ndarray:
        return np.array([1.0 if self._state()[1] >= 0.0 else -1.0], dtype=np.float32)

    def idle_action(self) -> np.ndarray:
        return np.zeros(1, dtype=np.float32)


def _wrap_angle(theta: float) -> float:
    """``theta`` in ``[-pi, pi)``, 0 upright (Gymnasium's ``angle_normalize``)."""
    return (theta + math.pi) % (2.0 * math.pi) - math.pi


class Pendulum(TaskAdapter):
    """Swing up and hold the pendulum of ``Pendulum-v1``.

    The pendulum starts at a uniformly random angle with angular velocity in [-1, 1]; the torque
    (at most 2 N m) is too weak to lift it directly from hanging. There is no termination;
    episodes end after 200 steps.

    Success (rewardlab's definition; the env has no success state): upright and nearly still,
    ``|angle| <= upright_angle`` (0.1 rad) and ``|angular_velocity| <= still_speed`` (1 rad/s).
    At an episode's last step it means the pendulum is held up at the end.

    Progress: ``clip((pi - |angle|) / (pi - upright_angle), 0, 1)``, 0 hanging down and 1 in the
    upright band (so exactly 1 in success states). It starts wherever the random initial angle
    puts it, uniform in [0, 1].

    Expert: energy-shaping swing-up, then PD balance. With the env's dynamics
    ``theta_ddot = a sin(theta) + 3 u / (m l**2)``, ``a = 3 g / (2 l)`` (15 by default), the
    energy ``E = theta_dot**2 / 2 + a cos(theta)`` changes as ``3 u theta_dot / (m l**2)``; away
    from the top the expert pushes ``u = (a - E) * theta_dot`` towards the upright energy ``a``
    (full torque from rest); within ``balance_angle`` of the top it balances with
    ``u = -(10 theta + 2 theta_dot)``; both clipped to the torque limit. With the default
    parameters it reaches success within 90 steps and holds it, from every initial state tried
    (200 seeds).

    Idle action: ``[0.0]``, no torque; the frictionless pendulum swings on with its energy.

    Reward: the env's ``-(angle**2 + 0.1 angular_velocity**2 + 0.001 torque**2)`` is its
    hand-designed dense reward (``dense_reward_type="env"``).
    """

    name = "swing_up"
    goal = "a pendulum pointing straight up above its pivot"
    baseline = "a pendulum"
    negatives = ("a pendulum hanging straight down below its pivot",)
    description = (
        "A pendulum rod swings freely about a fixed pivot. Each step the agent applies a torque "
        "in [-2, 2] N m (positive counter-clockwise), too weak to lift the rod directly from "
        "hanging: it has to swing it up by pumping energy, then balance it upright. The angle "
        "is 0 upright. There is no termination; episodes end after 200 steps."
    )
    state_variables = (
        StateVariable(
            "angle",
            (),
            "rad",
            "pendulum angle in [-pi, pi), 0 upright, positive counter-clockwise (the "
            "observation holds its cosine and sine)",
        ),
        StateVariable("angular_velocity", (), "rad/s", "rate of change of angle, in [-8, 8]"),
    )
    dense_reward_type = "env"

    upright_angle: ClassVar[float] = 0.1
    """Success: ``|angle|`` at most this (rad)."""
    still_speed: ClassVar[float] = 1.0
    """Success: ``|angular_velocity|`` at most this (rad/s)."""
    balance_angle: ClassVar[float] = 0.5
    """The expert balances with PD control within this angle of upright (rad)."""

    def _state(self) -> tuple[float, float]:
        inner: Any = self.env
        theta, theta_dot = inner.state.tolist()
        return _wrap_angle(theta), theta_dot

    def success(self, obs: Any, info: Mapping[str, Any]) -> bool:
        theta, theta_dot = self._state()
        return abs(theta) <= self.upright_angle and abs(theta_dot) <= self.still_speed

    def progress(self) -> float:
        theta, _ = self._state()
        return min(1.0, (math.pi - abs(theta)) / (math.pi - self.upright_angle))

    def state_dict(self) -> dict[str, np.ndarray]:
        theta, theta_dot = self._state()
        return _scalars({"angle": theta, "angular_velocity": theta_dot})

    def expert_action(self, obs: Any) -> np.ndarray:
        inner: Any = self.env
        theta, theta_dot = self._state()
        gravity = 3.0 * inner.g / (2.0 * inner.l)  # theta_ddot = gravity sin(theta) + ... u
        if abs(theta) < self.balance_angle:
            torque = -(10.0 * theta + 2.0 * theta_dot)
        else:
            energy = 0.5 * theta_dot**2 + gravity * math.cos(theta)
            torque = (gravity - energy) * theta_dot if theta_dot != 0.0 else inner.max_torque
        limit = float(inner.max_torque)
        return np.array([min(limit, max(-limit, torque))], dtype=np.float32)

    def idle_action(self) -> np.ndarray:
        return np.zeros(1, dtype=np.float32)
