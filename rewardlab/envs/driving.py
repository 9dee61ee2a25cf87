"""Multi-lane highway driving along a route, with IDM traffic and three reward conventions.

The ego car is a kinematic bicycle (the model highway-env's ``Vehicle`` integrates); the other
cars keep their lanes and follow their leader with the Intelligent Driver Model (Treiber,
Hennecke & Helbing 2000), updated for all cars at once in numpy. The reward is one of

* ``"sparse"``: 1 on completing the route;
* ``"carl"``: route-completion progress times infraction factors (CaRL, Jaeger et al. 2025);
* ``"weighted"``: highway-env's normalized weighted sum of speed, lane and collision terms.

This module imports OpenCV for rendering; it is imported by ``gym.make``, never by
``import rewardlab``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from gymnasium import spaces

from rewardlab.envs.core import StateVariable, Task, TaskEnv, resolve_config

__all__ = ["REWARD_TYPES", "DrivingConfig", "DrivingEnv"]

REWARD_TYPES = ("sparse", "carl", "weighted")

VEHICLE_LENGTH = 5.0  # [m], as highway-env
VEHICLE_WIDTH = 2.0  # [m]
MAX_SPEED = 40.0  # [m/s], the ego's speed is clipped to [0, MAX_SPEED]

# IDM parameters of highway-env's IDMVehicle (Treiber et al. 2000).
IDM_ACCELERATION = 3.0  # comfortable acceleration a [m/s^2]
IDM_COMFORT_BRAKING = 5.0  # comfortable deceleration b [m/s^2]
IDM_MAX_BRAKING = 8.0  # physical deceleration limit [m/s^2]
IDM_MIN_GAP = 5.0  # jam distance s0, bumper to bumper [m]
IDM_TIME_HEADWAY = 1.5  # T [s]
_IDM_SQRT_AB = 2.0 * math.sqrt(IDM_ACCELERATION * IDM_COMFORT_BRAKING)

# A car in lane l treats the ego as its leader when the ego's centre is this close to the
# lane centre laterally: the two bodies overlap, plus a margin.
LANE_OVERLAP = VEHICLE_WIDTH + 0.5  # [m]

EGO_FEATURES = 8
VEHICLE_FEATURES = 5

# Weight of the lateral (target-lane) term in route completion when the route ends in a lane.
LANE_COMPLETION_WEIGHT = 0.1

# Render colours (RGB). Drawn without anti-aliasing, so every car pixel has its exact colour.
GRASS_RGB = (70, 125, 60)
ROAD_RGB = (100, 100, 100)
MARKING_RGB = (235, 235, 235)
EGO_RGB = (220, 30, 30)
TRAFFIC_RGB = (60, 120, 220)
ROUTE_END_RGB = (250, 210, 0)


@dataclass(frozen=True)
class DrivingConfig:
    """Everything that defines a driving MDP. Lane 0 is the leftmost lane.

    Attributes:
        lanes_count: Number of lanes.
        lane_width: Lane width [m].
        vehicles_count: Number of other cars.
        vehicles_density: Traffic density; the mean extra bumper gap between cars of a lane
            beyond IDM's equilibrium gap is ``40 / vehicles_density`` m.
        route_length: Distance from the start to the route's end [m].
        target_lane: Lane the route ends in (negative counts from the right, ``-1`` is the
            rightmost lane), or None when any lane completes the route.
        simulation_frequency: Simulation steps per second [Hz].
        policy_frequency: Actions per second [Hz]; must divide ``simulation_frequency``.
        speed_limit: Speed limit [m/s] (CaRL's speeding factor).
        target_speed: Desired speed of the scripted expert [m/s].
        traffic_speed_range: Range of the other cars' desired speeds and of the initial speeds
            [m/s].
        max_steering: Steering angle at action ``+-1`` [rad].
        max_acceleration: Acceleration at action ``+-1`` [m/s^2].
        observed_vehicles: Number K of nearest cars in the observation.
        perception_distance: Longitudinal range of the observed cars [m].
        reward_type: ``"sparse"``, ``"carl"`` or ``"weighted"``.
        carl_off_centre_factor: CaRL factor with the ego's centre on a lane boundary
            (linearly 1 at the lane centre).
        carl_too_close_factor: CaRL factor when the time headway is below
            ``carl_min_headway``.
        carl_min_headway: Minimum time headway to the car ahead [s].
        carl_speeding_tolerance: Speed above the limit at which CaRL's speeding factor reaches
            0 [m/s].
        collision_reward: highway-env weight of the collision indicator.
        high_speed_reward: highway-env weight of the scaled forward speed.
        right_lane_reward: highway-env weight of the lane index (1 in the rightmost lane).
        reward_speed_range: Forward speeds mapped to 0 and 1 by the speed term [m/s].
        render_width: Frame width [px].
        render_height: Frame height [px].
        render_view_length: Road length shown across the frame's width [m].
    """

    lanes_count: int = 3
    lane_width: float = 4.0
    vehicles_count: int = 20
    vehicles_density: float = 1.0
    route_length: float = 600.0
    target_lane: int | None = None
    simulation_frequency: int = 10
    policy_frequency: int = 5
    speed_limit: float = 30.0
    target_speed: float = 27.0
    traffic_speed_range: tuple[float, float] = (20.0, 26.0)
    max_steering: float = math.pi / 12
    max_acceleration: float = 5.0
    observed_vehicles: int = 5
    perception_distance: float = 100.0
    reward_type: str = "carl"
    carl_off_centre_factor: float = 0.5
    carl_too_close_factor: float = 0.5
    carl_min_headway: float = 1.0
    carl_speeding_tolerance: float = 5.0
    collision_reward: float = -1.0
    high_speed_reward: float = 0.4
    right_lane_reward: float = 0.1
    reward_speed_range: tuple[float, float] = (20.0, 30.0)
    render_width: int = 224
    render_height: int = 224
    render_view_length: float = 40.0

    def __post_init__(self) -> None:
        for name in ("traffic_speed_range", "reward_speed_range"):
            value = getattr(self, name)
            if not isinstance(value, Sequence) or len(value) != 2:
                raise ValueError(f"{name} must be a pair (low, high), got {value!r}")
            object.__setattr__(self, name, (float(value[0]), float(value[1])))
        positive_ints = (
            "lanes_count",
            "simulation_frequency",
            "policy_frequency",
            "render_width",
            "render_height",
        )
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("vehicles_count", "observed_vehicles"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        positive_floats = (
            "lane_width",
            "vehicles_density",
            "route_length",
            "speed_limit",
            "target_speed",
            "max_steering",
            "max_acceleration",
            "perception_distance",
            "carl_speeding_tolerance",
            "render_view_length",
        )
        for name in positive_floats:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if self.simulation_frequency % self.policy_frequency:
            raise ValueError(
                f"policy_frequency must divide simulation_frequency, got "
                f"{self.policy_frequency} and {self.simulation_frequency}"
            )
        if self.reward_type not in REWARD_TYPES:
            raise ValueError(f"reward_type must be one of {REWARD_TYPES}, got {self.reward_type!r}")
        if self.target_lane is not None:
            if isinstance(self.target_lane, bool) or not isinstance(self.target_lane, int):
                raise ValueError(f"target_lane must be an int or None, got {self.target_lane!r}")
            if not -self.lanes_count <= self.target_lane < self.lanes_count:
                raise ValueError(
                    f"target_lane must be in [-{self.lanes_count}, {self.lanes_count}) for "
                    f"{self.lanes_count} lanes, got {self.target_lane}"
                )
            if self.lanes_count < 2:
                raise ValueError(
                    f"a target_lane needs at least 2 lanes, got lanes_count={self.lanes_count}"
                )
        low, high = self.traffic_speed_range
        if not 0 < low <= high <= MAX_SPEED:
            raise ValueError(
                f"traffic_speed_range must satisfy 0 < low <= high <= {MAX_SPEED}, "
                f"got {self.traffic_speed_range}"
            )
        if self.reward_speed_range[0] >= self.reward_speed_range[1]:
            raise ValueError(
                f"reward_speed_range must be increasing, got {self.reward_speed_range}"
            )
        for name in ("carl_off_centre_factor", "carl_too_close_factor"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if self.carl_min_headway < 0:
            raise ValueError(f"carl_min_headway must be >= 0, got {self.carl_min_headway!r}")
        if self.high_speed_reward + self.right_lane_reward <= self.collision_reward:
            raise ValueError(
                "high_speed_reward + right_lane_reward must exceed collision_reward for the "
                f"normalization, got {self.high_speed_reward} + {self.right_lane_reward} <= "
                f"{self.collision_reward}"
            )


def _rectangle(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """The ``(4, 2)`` corners of an axis-aligned rectangle, in drawing order."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


class DrivingEnv(TaskEnv[DrivingConfig]):
    """Drive along a multi-lane highway to the end of a route without crashing.

    A straight road of ``lanes_count`` lanes (lane 0 leftmost, ``y`` growing to the right)
    carries ``vehicles_count`` cars that keep their lane and follow the car ahead, the ego
    included, with the Intelligent Driver Model. The ego starts at ``x = 0`` in a random lane
    (not the target lane, if the route has one) and must reach ``x = route_length``.

    ## Observation Space

    ``Box(-1, 1, (8 + 5 K,), float32)``, K = ``observed_vehicles``; values are clipped to
    ``[-1, 1]``. With ``w`` the lane width, ``W = lanes_count * w`` the road width, ``D`` the
    perception distance and ``V = 40`` m/s:

    | index | feature |
    |-------|---------|
    | 0 | lateral offset from the nearest lane centre / (w / 2) |
    | 1 | heading error to the road direction / pi |
    | 2 | speed / V |
    | 3 | lateral velocity / V |
    | 4 | position across the road, -1 on the left edge, +1 on the right edge |
    | 5 | route completion (``info["route_completion"]``) |
    | 6 | lateral offset to the target lane centre / W (0 without a target lane) |
    | 7 | distance to the route end / D |
    | 8 + 5k ... | k-th nearest car within D: presence, dx / D, dy / W, dvx / V, dvy / V |

    Absent cars are all zeros. Relative quantities are in the road frame.

    ## Action Space

    ``Box(-1, 1, (2,), float32)``: steering angle (times ``max_steering``, positive turns
    right) and acceleration (times ``max_acceleration``), held for
    ``simulation_frequency / policy_frequency`` simulation steps.

    ## Rewards

    ``c`` is route completion: ``x / route_length`` clipped to ``[0, 1]``; with a target lane,
    ``0.9 x / route_length + 0.1 (1 - max(|y - y_target| - w/2, 0) / W)``, which is 1 only
    at the route end inside the target lane. Every step's info reports the components:

    * ``"sparse"``: ``reward_completion = 1`` on the step the route is completed without a
      collision, else 0.
    * ``"carl"`` (CaRL): ``reward_route = (c' - c) * p_centre * p_speeding * p_headway``
      when ``c' > c``, and the unscaled ``c' - c`` otherwise (a regress is never discounted
      by an infraction). The factors, in info:
      ``penalty_lane_centre = 1 - (1 - carl_off_centre_factor) * min(|lateral offset| / (w/2),
      1)``; ``penalty_speeding = max(0, 1 - max(v - speed_limit, 0) /
      carl_speeding_tolerance)``; ``penalty_headway = carl_too_close_factor`` if the bumper gap
      to the nearest car ahead in the lanes the ego overlaps is below ``carl_min_headway * v``,
      else 1. So the return of any episode is at most ``c_T - c_0 <= 1``.
    * ``"weighted"`` (highway-env): ``r = on_road * (w_c crashed + w_s speed + w_r lane - w_c)
      / (w_s + w_r - w_c)``, with ``speed = clip(lmap(v cos(heading), reward_speed_range,
      [0, 1]), 0, 1)``, ``lane = nearest lane index / max(lanes_count - 1, 1)`` (1 in the
      rightmost lane), ``on_road = 0`` on the off-road step, and the weights
      ``collision_reward``, ``high_speed_reward``, ``right_lane_reward``. Components:
      ``reward_collision``, ``reward_high_speed``, ``reward_right_lane`` (each weighted term
      times ``on_road / (w_s + w_r - w_c)``) and the constant offset ``reward_offset =
      -w_c on_road / (w_s + w_r - w_c)``.

    ## Episode End

    Terminated on a collision with a car (``info["collision"]``), on leaving the road with the
    ego's centre (``info["off_road"]``), or on reaching ``x >= route_length``; the episode is
    a success (``info["is_success"]``) when the route is completed (``c = 1``) without a
    collision. Collisions (a separating-axis test of the ego's rotated box) and the road edge
    are checked every simulation step. Truncated by the registered time limit.

    ## Rendering

    ``rgb_array`` frames of ``(render_height, render_width, 3)`` uint8, drawn with OpenCV
    without anti-aliasing: the road from above, ``render_view_length`` metres across, the ego
    (red, ``EGO_RGB``) at 30% of the width, other cars blue, the route end a yellow band across
    the road or the target lane.

    ## Arguments

    ``gym.make(id, render_mode="rgb_array", config=DrivingConfig(...), **overrides)``; see
    :class:`DrivingConfig` for every option. Unknown options raise ``TypeError``.

    ## Version History

    * v0: initial release (``DriveHighway``, ``DriveHighwaySparse``, ``DriveHighwayWeighted``,
      ``DriveDense``, ``DriveExit``).

    Example:
        >>> import gymnasium as gym
        >>> import rewardlab
        >>> env = gym.make("rewardlab/DriveHighway-v0")
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape, info["progress"]
        ((33,), 0.0)
        >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        >>> sorted(k for k in info if k.startswith("reward_"))
        ['reward_route']
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 5}
    dense_reward_type = "carl"

    def __init__(
        self, config: DrivingConfig | None = None, render_mode: str | None = None, **kwargs: Any
    ) -> None:
        self.config = cfg = resolve_config(DrivingConfig, config, kwargs)
        self._init_render_mode(render_mode)
        n, k = cfg.vehicles_count, cfg.observed_vehicles
        self.observation_space = spaces.Box(
            -1.0, 1.0, (EGO_FEATURES + VEHICLE_FEATURES * k,), np.float32
        )
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

        self._dt = 1.0 / cfg.simulation_frequency
        self._substeps = cfg.simulation_frequency // cfg.policy_frequency
        self._road_width = cfg.lanes_count * cfg.lane_width
        self._road_left = -0.5 * cfg.lane_width
        self._road_right = self._road_left + self._road_width
        self._goal_lane = None if cfg.target_lane is None else cfg.target_lane % cfg.lanes_count

        # Traffic arrays have one extra slot: a phantom leader far ahead for each lane's front
        # car, so the leader lookup is a plain gather.
        self._x = np.zeros(n + 1)
        self._v = np.zeros(n + 1)
        self._x[n] = 1e9
        self._v0: np.ndarray = np.ones(n)
        self._lane: np.ndarray = np.zeros(n, dtype=np.int64)
        self._lane_y: np.ndarray = np.zeros(n)
        self._leader = np.full(n, n, dtype=np.int64)
        self._ex = self._ey = self._eh = self._ev = 0.0
        self._crashed = self._off_road = False
        self._completion = 0.0
        self._expert_lane: int | None = None
        self._expert_origin: int | None = None
        self._background: np.ndarray | None = None

        name = "drive_highway" if cfg.target_lane is None else "drive_exit"
        goal = (
            "a top-down view of a red car driving in the centre of its lane on a highway"
            if cfg.target_lane is None
            else "a top-down view of a red car driving in the lane of the yellow exit marker "
            "on a highway"
        )
        self.task = Task(
            name=name,
            goal=goal,
            baseline="a top-down view of cars on a highway",
            negatives=(
                "a top-down view of two cars crashed on a highway",
                "a top-down view of a car driving off the road onto the grass",
            ),
            state_variables=(
                StateVariable(
                    "ego_position",
                    (2,),
                    "m",
                    "ego centre (x along the route, y to the right of lane 0's centre)",
                ),
                StateVariable("ego_heading", (), "rad", "ego heading relative to the road"),
                StateVariable("ego_speed", (), "m/s", "ego speed"),
                StateVariable(
                    "lane_index", (), "-", "index of the lane nearest the ego, 0 is the leftmost"
                ),
                StateVariable(
                    "lateral_offset",
                    (),
                    "m",
                    "ego's offset from its nearest lane centre, positive to the right",
                ),
                StateVariable(
                    "route_completion", (), "-", "completed fraction of the route, 1 at its end"
                ),
                StateVariable(
                    "distance_to_route_end", (), "m", "longitudinal distance left to the route end"
                ),
                StateVariable(
                    "vehicle_positions",
                    (n, 2),
                    "m",
                    "centres of the other cars in the road frame",
                    privileged=True,
                ),
                StateVariable(
                    "vehicle_speeds",
                    (n,),
                    "m/s",
                    "speeds of the other cars (all drive along the road)",
                    privileged=True,
                ),
                StateVariable("collision", (), "bool", "the ego has hit another car"),
                StateVariable("off_road", (), "bool", "the ego's centre is off the road"),
            ),
            env=self,
        )

    # --- simulation -------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        cfg, rng = self.config, self.np_random
        n, w, lanes = cfg.vehicles_count, cfg.lane_width, cfg.lanes_count
        starts = [lane for lane in range(lanes) if lane != self._goal_lane]
        ego_lane = int(starts[rng.integers(len(starts))])
        low, high = cfg.traffic_speed_range
        self._ex, self._ey, self._eh = 0.0, ego_lane * w, 0.0
        self._ev = float(rng.uniform(low, high))

        lane = rng.integers(lanes, size=n)
        v0 = rng.uniform(low, high, size=n)
        # Bumper gap behind each car: IDM's equilibrium gap plus an exponential extra.
        gaps = IDM_MIN_GAP + IDM_TIME_HEADWAY * v0 + rng.exponential(40.0 / cfg.vehicles_density, n)
        back = rng.uniform(0.0, 80.0, size=lanes)
        x = np.empty(n)
        for lane_id in range(lanes):
            members = np.flatnonzero(lane == lane_id)
            if lane_id == ego_lane:
                first = self._ex  # cars of the ego's lane start ahead of it
            else:
                first = -back[lane_id] - VEHICLE_LENGTH - gaps[members[0]] if members.size else 0
            x[members] = first + np.cumsum(VEHICLE_LENGTH + gaps[members])
        self._place_traffic(x, lane, v0, v0)
        self._crashed = self._off_road = False
        self._completion = self._route_completion()
        self._expert_lane = self._expert_origin = None
        return self._observation(), self._info(success=False)

    def _place_traffic(
        self, x: np.ndarray, lane: np.ndarray, speed: np.ndarray, desired_speed: np.ndarray
    ) -> None:
        """Set the other cars and link each to the next car ahead in its lane.

        Cars never change lanes and IDM never lets a car pass its leader, so the links hold
        for the whole episode.
        """
        n = self.config.vehicles_count
        if not len(x) == len(lane) == len(speed) == len(desired_speed) == n:
            raise ValueError(f"expected {n} cars (vehicles_count), got {len(x)}")
        self._x[:n] = x
        self._v[:n] = speed
        self._v0 = np.asarray(desired_speed, dtype=np.float64).copy()
        self._lane = np.asarray(lane, dtype=np.int64).copy()
        self._lane_y = self._lane * self.config.lane_width
        order = np.lexsort((self._x[:n], self._lane))
        same_lane = self._lane[order[1:]] == self._lane[order[:-1]]
        self._leader[:] = n
        self._leader[order[:-1][same_lane]] = order[1:][same_lane]

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        cfg = self.config
        act = np.asarray(action, dtype=np.float64)
        if act.size != 2 or not np.isfinite(act).all():
            raise ValueError(
                f"action must be 2 finite numbers (steering, acceleration), got {action!r}"
            )
        act = act.reshape(2)
        steering = min(max(float(act[0]), -1.0), 1.0) * cfg.max_steering
        acceleration = min(max(float(act[1]), -1.0), 1.0) * cfg.max_acceleration
        for _ in range(self._substeps):
            self._simulate(steering, acceleration)
            if self._crashed or self._off_road:
                break

        previous = self._completion
        self._completion = completion = self._route_completion()
        end_reached = self._ex >= cfg.route_length
        success = completion >= 1.0 and not self._crashed
        terminated = self._crashed or self._off_road or end_reached

        info = self._info(success)
        if cfg.reward_type == "sparse":
            info["reward_completion"] = reward = 1.0 if success else 0.0
        elif cfg.reward_type == "carl":
            reward = self._carl_reward(completion - previous, info)
        else:
            reward = self._weighted_reward(info)
        return self._observation(), reward, terminated, False, info

    def _simulate(self, steering: float, acceleration: float) -> None:
        """Advance one simulation step: the ego's bicycle model, IDM traffic, collisions."""
        dt = self._dt
        # Kinematic bicycle about the centre of mass (highway-env's Vehicle.step).
        beta = math.atan(0.5 * math.tan(steering))
        ev, eh = self._ev, self._eh
        self._ex += ev * math.cos(eh + beta) * dt
        self._ey += ev * math.sin(eh + beta) * dt
        self._eh = eh + ev * math.sin(beta) / (0.5 * VEHICLE_LENGTH) * dt
        self._ev = min(max(ev + acceleration * dt, 0.0), MAX_SPEED)
        ex, ey, eh = self._ex, self._ey, self._eh
        cos_h, sin_h = math.cos(eh), math.sin(eh)

        n = self._v0.shape[0]
        if n:
            x, v = self._x, self._v
            xs, vs = x[:n], v[:n]
            leader = self._leader
            gap = x[leader] - xs - VEHICLE_LENGTH
            dv = vs - v[leader]
            # The ego is the leader of the cars behind it whose lane its body overlaps.
            ego_half_length = 0.5 * (VEHICLE_LENGTH * abs(cos_h) + VEHICLE_WIDTH * abs(sin_h))
            gap_ego = (ex - ego_half_length - 0.5 * VEHICLE_LENGTH) - xs
            behind_ego = (np.abs(self._lane_y - ey) < LANE_OVERLAP) & (gap_ego > -VEHICLE_LENGTH)
            behind_ego &= gap_ego < gap
            if behind_ego.any():
                gap = np.where(behind_ego, gap_ego, gap)
                dv = np.where(behind_ego, vs - self._ev * cos_h, dv)
            s_star = IDM_MIN_GAP + np.maximum(vs * (IDM_TIME_HEADWAY + dv / _IDM_SQRT_AB), 0.0)
            acc = IDM_ACCELERATION * (
                1.0 - (vs / self._v0) ** 4 - (s_star / np.maximum(gap, 0.1)) ** 2
            )
            np.maximum(acc, -IDM_MAX_BRAKING, out=acc)
            vs += np.minimum(acc, IDM_ACCELERATION) * dt
            np.maximum(vs, 0.0, out=vs)
            xs += vs * dt

            if not self._crashed:
                self._crashed = self._collides(xs - ex, self._lane_y - ey, cos_h, sin_h)
        if not self._road_left <= ey <= self._road_right:
            self._off_road = True

    @staticmethod
    def _collides(dx: np.ndarray, dy: np.ndarray, cos_h: float, sin_h: float) -> bool:
        """Separating-axis test of the ego's rotated box against the axis-aligned cars."""
        half_l, half_w = 0.5 * VEHICLE_LENGTH, 0.5 * VEHICLE_WIDTH
        near = (np.abs(dx) < 2 * half_l + half_w) & (np.abs(dy) < 2 * half_l + half_w)
        if not near.any():
            return False
        dx, dy = dx[near], dy[near]
        ac, as_ = abs(cos_h), abs(sin_h)
        ego_x = half_l * ac + half_w * as_  # ego's half extents on the road axes
        ego_y = half_l * as_ + half_w * ac
        hit = (
            (np.abs(dx) < ego_x + half_l)
            & (np.abs(dy) < ego_y + half_w)
            & (np.abs(dx * cos_h + dy * sin_h) < half_l + ego_x)
            & (np.abs(dy * cos_h - dx * sin_h) < half_w + ego_y)
        )
        return bool(hit.any())

    # --- rewards ----------------------------------------------------------------------------

    def _carl_reward(self, delta: float, info: dict[str, Any]) -> float:
        """CaRL (Jaeger et al. 2025): progress times infraction factors in [0, 1]."""
        cfg = self.config
        offset = abs(self._lateral_offset()) / (0.5 * cfg.lane_width)
        centre = 1.0 - (1.0 - cfg.carl_off_centre_factor) * min(offset, 1.0)
        excess = max(self._ev - cfg.speed_limit, 0.0)
        speeding = max(0.0, 1.0 - excess / cfg.carl_speeding_tolerance)
        gap, _ = self._front(self._ey, LANE_OVERLAP)
        headway = cfg.carl_too_close_factor if gap < cfg.carl_min_headway * self._ev else 1.0
        info.update(penalty_lane_centre=centre, penalty_speeding=speeding, penalty_headway=headway)
        # Factors scale progress only: scaling a regress (c' < c, e.g. drifting out of the
        # target lane) would make an infraction cheaper, and a loop could earn reward.
        factor = centre * speeding * headway
        info["reward_route"] = reward = delta * factor if delta > 0 else delta
        return reward

    def _weighted_reward(self, info: dict[str, Any]) -> float:
        """highway-env's HighwayEnv._reward, split into additive components."""
        cfg = self.config
        low, high = cfg.reward_speed_range
        speed = (self._ev * math.cos(self._eh) - low) / (high - low)
        speed = min(max(speed, 0.0), 1.0)
        right_lane = self._nearest_lane() / max(cfg.lanes_count - 1, 1)
        w_c = cfg.collision_reward
        scale = (0.0 if self._off_road else 1.0) / (
            cfg.high_speed_reward + cfg.right_lane_reward - w_c
        )
        terms = {
            "reward_collision": w_c * float(self._crashed) * scale,
            "reward_high_speed": cfg.high_speed_reward * speed * scale,
            "reward_right_lane": cfg.right_lane_reward * right_lane * scale,
            "reward_offset": -w_c * scale,
        }
        info.update(terms)
        return sum(terms.values())

    # --- state ------------------------------------------------------------------------------

    def _nearest_lane(self) -> int:
        lane = round(self._ey / self.config.lane_width)
        return min(max(lane, 0), self.config.lanes_count - 1)

    def _lateral_offset(self) -> float:
        return self._ey - self._nearest_lane() * self.config.lane_width

    def _route_completion(self) -> float:
        cfg = self.config
        along = min(max(self._ex / cfg.route_length, 0.0), 1.0)
        if self._goal_lane is None:
            return along
        off_lane = max(abs(self._ey - self._goal_lane * cfg.lane_width) - 0.5 * cfg.lane_width, 0)
        lateral = max(1.0 - off_lane / self._road_width, 0.0)
        return (1.0 - LANE_COMPLETION_WEIGHT) * along + LANE_COMPLETION_WEIGHT * lateral

    def progress(self) -> float:
        """Route completion in ``[0, 1]``: 0 at the start, exactly 1 at a completed route."""
        return self._route_completion()

    def _front(self, y: float, width: float) -> tuple[float, float]:
        """Bumper gap to and speed of the nearest car ahead within ``width`` of lateral ``y``."""
        n = self._v0.shape[0]
        gaps = self._x[:n] - self._ex - VEHICLE_LENGTH
        mask = (np.abs(self._lane_y - y) < width) & (gaps > -VEHICLE_LENGTH)
        if not mask.any():
            return math.inf, MAX_SPEED
        i = int(np.flatnonzero(mask)[np.argmin(gaps[mask])])
        return float(gaps[i]), float(self._v[i])

    def _rear(self, lane: int) -> tuple[float, float]:
        """Bumper gap to and speed of the nearest car behind the ego in ``lane``."""
        n = self._v0.shape[0]
        gaps = self._ex - self._x[:n] - VEHICLE_LENGTH
        mask = (self._lane == lane) & (gaps >= -VEHICLE_LENGTH)
        if not mask.any():
            return math.inf, 0.0
        i = int(np.flatnonzero(mask)[np.argmin(gaps[mask])])
        return float(gaps[i]), float(self._v[i])

    def state_dict(self) -> dict[str, np.ndarray]:
        cfg = self.config
        n = cfg.vehicles_count
        return {
            "ego_position": np.array([self._ex, self._ey]),
            "ego_heading": np.array(self._eh),
            "ego_speed": np.array(self._ev),
            "lane_index": np.array(self._nearest_lane()),
            "lateral_offset": np.array(self._lateral_offset()),
            "route_completion": np.array(self._route_completion()),
            "distance_to_route_end": np.array(cfg.route_length - self._ex),
            "vehicle_positions": np.stack([self._x[:n], self._lane_y], axis=1),
            "vehicle_speeds": self._v[:n].copy(),
            "collision": np.array(self._crashed),
            "off_road": np.array(self._off_road),
        }

    def _observation(self) -> np.ndarray:
        cfg = self.config
        k, n = cfg.observed_vehicles, cfg.vehicles_count
        obs = np.zeros(EGO_FEATURES + VEHICLE_FEATURES * k)
        heading = (self._eh + math.pi) % (2 * math.pi) - math.pi
        goal_offset = (
            0.0
            if self._goal_lane is None
            else (self._goal_lane * cfg.lane_width - self._ey) / self._road_width
        )
        obs[:EGO_FEATURES] = (
            self._lateral_offset() / (0.5 * cfg.lane_width),
            heading / math.pi,
            self._ev / MAX_SPEED,
            self._ev * math.sin(self._eh) / MAX_SPEED,
            2.0 * (self._ey - self._road_left) / self._road_width - 1.0,
            self._completion,
            goal_offset,
            (cfg.route_length - self._ex) / cfg.perception_distance,
        )
        if k and n:
            dx = self._x[:n] - self._ex
            dy = self._lane_y - self._ey
            dist = np.hypot(dx, dy)
            dist[np.abs(dx) > cfg.perception_distance] = np.inf
            nearest = np.argsort(dist, kind="stable")[:k]
            nearest = nearest[np.isfinite(dist[nearest])]
            m = nearest.size
            end = EGO_FEATURES + VEHICLE_FEATURES * m
            cars = obs[EGO_FEATURES:end].reshape(m, VEHICLE_FEATURES)
            cars[:, 0] = 1.0
            cars[:, 1] = dx[nearest] / cfg.perception_distance
            cars[:, 2] = dy[nearest] / self._road_width
            cars[:, 3] = (self._v[nearest] - self._ev * math.cos(self._eh)) / MAX_SPEED
            cars[:, 4] = -self._ev * math.sin(self._eh) / MAX_SPEED
        np.clip(obs, -1.0, 1.0, out=obs)
        return obs.astype(np.float32)

    def _info(self, success: bool) -> dict[str, Any]:
        return {
            "is_success": bool(success),
            "progress": float(self._completion),
            "route_completion": float(self._completion),
            "collision": bool(self._crashed),
            "off_road": bool(self._off_road),
        }

    # --- expert -----------------------------------------------------------------------------

    def _idm(self, gap: float, leader_speed: float) -> float:
        """IDM acceleration of the ego behind a leader, towards ``target_speed``."""
        v = self._ev
        s_star = IDM_MIN_GAP + max(
            0.0, v * IDM_TIME_HEADWAY + v * (v - leader_speed) / _IDM_SQRT_AB
        )
        return IDM_ACCELERATION * (
            1.0 - (v / self.config.target_speed) ** 4 - (s_star / max(gap, 0.1)) ** 2
        )

    def _lane_is_safe(self, lane: int) -> bool:
        """Whether ``lane`` has room for the ego: 0.5 s headways and 4 s times to collision."""
        y = lane * self.config.lane_width
        front_gap, front_speed = self._front(y, 0.5)
        rear_gap, rear_speed = self._rear(lane)
        v = self._ev
        return (
            front_gap > max(8.0, 0.5 * v)
            and front_gap > 4.0 * (v - front_speed)
            and rear_gap > max(8.0, 0.5 * rear_speed)
            and rear_gap > 4.0 * (rear_speed - v)
        )

    def _choose_lane(self, lane: int) -> int:
        """The expert's next lane: towards the route's lane, or a faster neighbour if safe."""
        cfg = self.config
        if self._goal_lane is not None:
            if lane == self._goal_lane:
                return lane
            step = 1 if self._goal_lane > lane else -1
            return lane + step if self._lane_is_safe(lane + step) else lane
        here = self._idm(*self._front(lane * cfg.lane_width, 0.5))
        if here > 0.5:
            return lane
        best, best_acc = lane, here + 0.5  # MOBIL-style incentive threshold
        for other in (lane + 1, lane - 1):
            if 0 <= other < cfg.lanes_count and self._lane_is_safe(other):
                acc = self._idm(*self._front(other * cfg.lane_width, 0.5))
                if acc > best_acc:
                    best, best_acc = other, acc
        return best

    def expert_action(self) -> np.ndarray:
        """Lane keeping with a heading-rate steering law, IDM speed control, safe lane changes.

        Reads the simulator's state: the cars around the ego in its lane and the neighbours.
        Between calls it remembers the lane it is heading for (``reset`` clears it), so a lane
        change is finished, or aborted while still in the original lane if it became unsafe.
        """
        cfg = self.config
        w = cfg.lane_width
        lane = self._nearest_lane()
        if self._expert_lane is None or abs(self._ey - self._expert_lane * w) < 0.3 * w:
            self._expert_origin = lane
            self._expert_lane = self._choose_lane(lane)
        elif lane == self._expert_origin and not self._lane_is_safe(self._expert_lane):
            self._expert_lane = self._expert_origin  # abort a lane change that became unsafe
        target = self._expert_lane

        # Speed: IDM behind the nearest car ahead in the lanes the ego occupies or enters.
        acc = min(
            self._idm(*self._front(self._ey, LANE_OVERLAP)),
            self._idm(*self._front(target * w, 0.5)),
        )
        if self._goal_lane is not None and target == lane != self._goal_lane:
            # Blocked from the lane the route needs. A car beside or just ahead there: drop in
            # behind it, braking gently so the car behind keeps its distance. A car close
            # behind there: pull ahead of it if the own lane is free, else let it pass.
            step = 1 if self._goal_lane > lane else -1
            front_gap, front_speed = self._front((lane + step) * w, 0.5)
            beside = self._idm(front_gap, front_speed)
            if front_gap < max(10.0, 0.5 * self._ev) + 5.0 or beside < -3.0:
                acc = min(acc, max(beside, -3.0))
            elif self._front(self._ey, LANE_OVERLAP)[0] > 40.0 and self._ev < cfg.speed_limit - 1:
                acc = max(acc, 1.5)
            else:
                acc = min(acc, -1.5)
        # Steering: aim the heading at a point 1.5 s ahead on the target lane centre, and
        # reach that heading with a 0.5 s time constant through the bicycle model.
        v = max(self._ev, 1.0)
        desired = math.atan2(target * w - self._ey, max(1.5 * v, 10.0))
        desired = min(max(desired, -0.25), 0.25)
        yaw_rate = (desired - self._eh) / 0.5
        sin_beta = min(max(yaw_rate * 0.5 * VEHICLE_LENGTH / v, -0.99), 0.99)
        steering = math.atan(2.0 * math.tan(math.asin(sin_beta)))
        action = np.clip([steering / cfg.max_steering, acc / cfg.max_acceleration], -1.0, 1.0)
        return action.astype(np.float32)

    def idle_action(self) -> np.ndarray:
        """Straight wheels and full braking: the ego comes to a stop and makes no progress."""
        return np.array([0.0, -1.0], dtype=np.float32)

    # --- rendering --------------------------------------------------------------------------

    def render(self) -> np.ndarray | None:
        """Top-down ``rgb_array`` frame centred on the ego, the road running left to right."""
        self._require_render_mode()
        cfg = self.config
        width, height = cfg.render_width, cfg.render_height
        scale = width / cfg.render_view_length  # [px/m]
        left = self._ex - 0.3 * cfg.render_view_length  # the ego sits at 30% of the width
        centre_y = self._road_left + 0.5 * self._road_width
        origin_y = 0.5 * height - centre_y * scale

        if self._background is None:
            frame = np.empty((height, width, 3), dtype=np.uint8)
            frame[:] = GRASS_RGB
            top = round(origin_y + self._road_left * scale)
            bottom = round(origin_y + self._road_right * scale)
            frame[max(top, 0) : max(min(bottom, height), 0)] = ROAD_RGB
            for edge in (top, bottom - 1):
                if 0 <= edge < height:
                    frame[edge] = MARKING_RGB
            self._background = frame
        frame = self._background.copy()

        # Dashed lane markings: 3 m painted every 9 m, scrolling with the road.
        metres = left + (np.arange(width) + 0.5) / scale
        dashes = np.mod(metres, 9.0) < 3.0
        for boundary in range(1, cfg.lanes_count):
            row = round(origin_y + (self._road_left + boundary * cfg.lane_width) * scale)
            if 0 <= row < height:
                frame[row, dashes] = MARKING_RGB

        def to_px(points: np.ndarray) -> np.ndarray:
            # Fixed-point coordinates (shift=4) keep sub-pixel positions in cv2.fillPoly.
            px = np.empty_like(points)
            px[..., 0] = (points[..., 0] - left) * scale
            px[..., 1] = origin_y + points[..., 1] * scale
            return np.round(px * 16).astype(np.int32)

        # Route end: a band 2 m long across the road, or across the target lane.
        if self._goal_lane is None:
            y0, y1 = self._road_left, self._road_right
        else:
            y0 = (self._goal_lane - 0.5) * cfg.lane_width
            y1 = y0 + cfg.lane_width
        end = _rectangle(cfg.route_length, y0, cfg.route_length + 2.0, y1)
        cv2.fillPoly(frame, [to_px(end)], ROUTE_END_RGB, cv2.LINE_8, 4)

        n = cfg.vehicles_count
        half_l, half_w = 0.5 * VEHICLE_LENGTH, 0.5 * VEHICLE_WIDTH
        box = _rectangle(-half_l, -half_w, half_l, half_w)
        visible = np.flatnonzero(
            (self._x[:n] > left - VEHICLE_LENGTH)
            & (self._x[:n] < left + cfg.render_view_length + VEHICLE_LENGTH)
        )
        if visible.size:
            centres = np.stack([self._x[visible], self._lane_y[visible]], axis=1)
            cv2.fillPoly(frame, list(to_px(centres[:, None, :] + box)), TRAFFIC_RGB, cv2.LINE_8, 4)
        cos_h, sin_h = math.cos(self._eh), math.sin(self._eh)
        rotated = box @ np.array([[cos_h, sin_h], [-sin_h, cos_h]]) + (self._ex, self._ey)
        cv2.fillPoly(frame, [to_px(rotated)], EGO_RGB, cv2.LINE_8, 4)
        return frame
