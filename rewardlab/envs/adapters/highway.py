"""Tasks of highway-env's driving scenarios (Leurent 2018, "An Environment for Autonomous Driving
Decision-Making", https://github.com/Farama-Foundation/HighwayEnv): ``highway-v0``,
``highway-fast-v0``, ``merge-v0``, ``roundabout-v0`` and ``intersection-v0/v1/v2``.

One adapter, :class:`HighwayTask`, serves all five scenarios; it picks the scenario from the
env's class and reads the simulator (``env.vehicle``, ``env.road``, ``env.config``), never the
observation, so success and progress hold under any observation config or wrapper. Success is
how each scenario's own source ends an episode without a collision (the env classes'
``_is_terminated``, ``_is_truncated`` and ``has_arrived``; the roundabout's, which only
truncates, is its exit), and a collision is never success:

=================  ======================================================  ====================
scenario           success (and not ``vehicle.crashed``)                   progress coordinate
=================  ======================================================  ====================
highway(-fast)     the episode's ``duration`` reached (the env truncates)  simulation time
merge              past the merge: ``x > 370`` m (the env terminates)      ``x``
roundabout         left the ring: 5 m (a car length) along the exit lane   arc length of route
intersection       ``env.has_arrived``: 25 m along an exit (it terminates)  arc length of route
=================  ======================================================  ====================

Progress is the coordinate's fraction of the way from the episode's start (0) to the success
threshold (1), clipped, and 0 once crashed (as route completion times infraction factors in
CaRL, Jaeger et al. 2025: a crash voids the route). Route arc lengths are measured along the
planned route's lane 0 (a lane change does not move the car along it); the plan and the start
are fixed at the episode's first reading (:class:`~rewardlab.envs.tasks.TaskInfo` reads it at
reset).

The env's reward, a normalised weighted sum of speed, lane and collision terms times an
on-road factor, is the task's hand-designed reference (``dense_reward_type="env"``).

Rendering: highway-env draws nothing when ``SDL_VIDEODRIVER=dummy`` (its viewer disables itself
there, whatever ``offscreen_rendering`` says), so :meth:`HighwayTask.wrap` re-enables the viewer
of an ``rgb_array`` env (real frames without a display).

Example:
    >>> import rewardlab
    >>> env = rewardlab.make("highway-fast-v0")
    >>> _, info = env.reset(seed=0)
    >>> info["is_success"], info["progress"], rewardlab.get_task(env).name
    (False, 0.0, 'drive_highway')
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from rewardlab.envs.adapters._distance import BELOW_ONE
from rewardlab.envs.core import StateVariable
from rewardlab.envs.tasks import MissingTaskFeature, TaskAdapter

__all__ = ["HighwayTask"]

_MERGE_END = 370.0
"""``MergeEnv._is_terminated``: the episode ends past this ``x`` [m] (the access ramp passed)."""
_ROUNDABOUT_ROUTE = ("ser", "nxr")
"""``RoundaboutEnv``: the ego starts on road ser->ses and plans its route to the north exit."""
_ROUNDABOUT_EXIT = ("nx", "nxs")
"""Progress 1 is reserved for success states (merge's ``x == 370`` is not past the ramp)."""
_EXIT_MARGIN = 5.0
"""How far along the roundabout's exit lane [m] the ego has left the ring: a car length."""
_INTERSECTION_ARRIVED = 25.0
"""``IntersectionEnv.has_arrived``'s default ``exit_distance`` [m] along the exit lane."""
_INTERSECTION_EXITS = ("o1", "o2", "o3")
"""The exits of an ego starting at o0 (left, straight, right)."""


@dataclass(frozen=True)
class _Text:
    name: str
    goal: str
    baseline: str
    negatives: tuple[str, ...]
    description: str


_TEXT = {
    "highway": _Text(
        "drive_highway",
        "a top-down view of a green car driving on a highway without collisions",
        "a top-down view of cars on a highway",
        (
            "a top-down view of two cars crashed on a highway",
            "a top-down view of a car driving into the back of another car",
        ),
        "The agent drives the green ego car on a straight {lanes_count}-lane highway among "
        "{vehicles_count} cars driven by traffic models (IDM, MOBIL). It succeeds by driving "
        "the whole {duration} s episode without a collision (a collision ends it). The env's "
        "reward favours a high forward speed (20 to 30 m/s), the rightmost lanes (the highest "
        "lane_index) and no collision. Actions are meta-actions: LANE_LEFT, IDLE, LANE_RIGHT, "
        "FASTER, SLOWER (target speeds 20, 25, 30 m/s), one per second.",
    ),
    "merge": _Text(
        "pass_merge",
        "a top-down view of a green car driving past a highway on-ramp without collisions",
        "a top-down view of a highway with an on-ramp merging into it",
        (
            "a top-down view of two cars crashed at a highway on-ramp",
            "a top-down view of a car blocking a car merging from an on-ramp",
        ),
        "The agent drives the green ego car on a two-lane highway past an on-ramp where other "
        "cars merge into the right lane. It succeeds by passing the merge zone (position x "
        "beyond 370 m, which ends the episode) without a collision. The env's reward favours "
        "a high speed, the right lane and no collision, and penalises lane changes and "
        "merging cars slowed down by the ego.",
    ),
    "roundabout": _Text(
        "exit_roundabout",
        "a top-down view of a green car leaving a roundabout by its exit without collisions",
        "a top-down view of cars at a roundabout",
        (
            "a top-down view of two cars crashed in a roundabout",
            "a top-down view of a car stopped at the entrance of a roundabout",
        ),
        "The agent drives the green ego car from the south entrance into a two-lane "
        "roundabout, yields to the traffic on the ring, and leaves by the north exit (its "
        "planned route). It succeeds once it is a car length along the exit lane without a "
        "collision; the episode lasts {duration} s. The env's reward favours a high speed and "
        "no collision, and penalises lane changes.",
    ),
    "intersection": _Text(
        "cross_intersection",
        "a top-down view of a green car turning through an intersection without collisions",
        "a top-down view of cars at a four-way intersection",
        (
            "a top-down view of two cars crashed in an intersection",
            "a top-down view of a car stopped before an intersection",
        ),
        "The agent drives the green ego car from the south access road through a four-way "
        "intersection with crossing traffic (the horizontal road has priority) to its "
        "destination exit, controlling only its speed. It succeeds on arriving 25 m along an "
        "exit road without a collision, which ends the episode; the episode lasts at most "
        "{duration} s. The env's reward favours a speed of 7 to 9 m/s and arriving, and "
        "penalises a collision.",
    ),
}


def _scenario(env: gym.Env[Any, Any]) -> str:
    from highway_env.envs import HighwayEnv, IntersectionEnv, MergeEnv, RoundaboutEnv

    for cls, scenario in (
        (HighwayEnv, "highway"),
        (MergeEnv, "merge"),
        (RoundaboutEnv, "roundabout"),
        (IntersectionEnv, "intersection"),
    ):
        if isinstance(env, cls):
            return scenario
    raise TypeError(
        f"HighwayTask describes highway-env's highway, merge, roundabout and intersection "
        f"envs, not {type(env).__name__}"
    )


def _state_variables(observation: Mapping[str, Any]) -> tuple[StateVariable, ...]:
    """The ego's variables; ``privileged`` unless the Kinematics observation has them."""
    kinematics = observation.get("type") == "Kinematics"
    features = set(observation.get("features") or ("presence", "x", "y", "vx", "vy"))
    seen_position = kinematics and {"x", "y"} <= features and bool(observation.get("absolute"))
    seen_speed = kinematics and {"vx", "vy"} <= features
    seen_heading = kinematics and ({"cos_h", "sin_h"} <= features or "heading" in features)
    return (
        StateVariable("speed", (), "m/s", "ego speed along its heading", privileged=not seen_speed),
        StateVariable(
            "crashed", (), "bool", "the ego has collided (ends the episode)", privileged=True
        ),
        StateVariable(
            "on_road", (), "bool", "the ego is on its lane (the reward's factor)", privileged=True
        ),
        StateVariable(
            "lane_index",
            (),
            "-",
            "lane of the ego within its road (highway-env's lane_index[2]); 0 is the leftmost",
            privileged=True,
        ),
        StateVariable(
            "position",
            (2,),
            "m",
            "ego centre (x, y) in the road network's frame; on the highway and the merge x "
            "runs along the road and y grows towards the rightmost lane",
            privileged=not seen_position,
        ),
        StateVariable(
            "heading",
            (),
            "rad",
            "ego heading from the world x-axis, positive turning towards +y",
            privileged=not seen_heading,
        ),
        StateVariable(
            "time", (), "s", "simulation time since the episode's start", privileged=True
        ),
    )


@dataclass(frozen=True)
class _Route:
    """A planned path through the road network, measured along lane 0 of each road."""

    roads: tuple[tuple[str, str], ...]
    starts: tuple[float, ...]  # arc length at each road's start
    lengths: tuple[float, ...]  # lane 0's length of each road

    @classmethod
    def plan(cls, network: Any, origin: str, destination: str) -> _Route:
        path = network.shortest_path(origin, destination)
        roads = tuple(zip(path[:-1], path[1:], strict=True))
        lengths = tuple(float(network.get_lane((a, b, 0)).length) for a, b in roads)
        starts = tuple(float(s) for s in np.cumsum((0.0, *lengths[:-1])))
        return cls(roads, starts, lengths)

    def start_of(self, road: tuple[str, str]) -> float:
        return self.starts[self.roads.index(road)]

    def arc_length(self, network: Any, vehicle: Any) -> float:
        """The vehicle's arc length along the route: on its own lane when that lies on the
        route, else on the route's lane nearest to it."""
        if vehicle.lane_index[:2] in self.roads:
            k, lane = self.roads.index(vehicle.lane_index[:2]), vehicle.lane
        else:
            k, lane = min(
                (
                    (k, lane)
                    for k, road in enumerate(self.roads)
                    for lane in network.graph[road[0]][road[1]]
                ),
                key=lambda kl: kl[1].distance(vehicle.position),
            )
        along = float(np.clip(lane.local_coordinates(vehicle.position)[0], 0.0, lane.length))
        return self.starts[k] + along * self.lengths[k] / float(lane.length)


@dataclass(frozen=True)
class _Plan:
    """What one episode's progress is measured against (fixed at its first reading): the
    coordinate's start and its success threshold along each candidate route (one, but for an
    intersection ego without a destination)."""

    road: Any  # the episode's Road object: a new one at each reset
    origin: float
    goals: tuple[float, ...]
    routes: tuple[_Route, ...] = ()  # none for highway and merge


class HighwayTask(TaskAdapter):
    """The task of highway-env's ``highway``, ``merge``, ``roundabout`` and ``intersection``
    scenarios (module docstring: success and progress per scenario).

    Success: no collision, and for ``highway-v0``/``highway-fast-v0`` the episode's
    ``duration`` (40 s / 30 s) driven (the env truncates then: it has no goal but to keep
    driving); for ``merge-v0`` the access ramp passed, ``x > 370`` m (``MergeEnv``'s own
    termination); for ``roundabout-v0`` the ring left, a car length (5 m) along the planned
    north exit (the env has no termination but a collision: its 11 s episode runs on); for
    ``intersection-v*`` ``env.has_arrived(vehicle)``, 25 m along an exit road, which the env's
    reward and termination use.

    Progress: ``(c - c_0) / (c_goal - c_0)`` clipped to ``[0, 1]``, 0 once crashed and exactly
    1 in success states, where ``c`` is the simulation time (highway), ``x`` (merge) or the arc
    length along the planned route (roundabout: ser -> nxs; intersection: o0 -> the configured
    destination, or the ego's planned one; with none, the farthest along of the three exits),
    ``c_0`` its value at the episode's start and ``c_goal`` the success threshold.

    Expert (``DiscreteMetaAction`` envs only): on the highway and the merge it keeps its lane
    at the lowest target speed (SLOWER, 20 m/s), which the traffic models drive around
    (29 of 30 seeds survive each; the merge 26 of 30 in a process that has made an
    intersection env, whose reset rewrites ``IDMVehicle``'s class attributes); at the
    roundabout and the intersection it looks ahead in a copy of the simulator (privileged:
    the copy holds the traffic's random state) and takes the fastest of FASTER, IDLE whose
    next :attr:`lookahead_steps` steps, braking after the first, end without a collision,
    else SLOWER (no crash in 20 seeds of each; the intersection's 13 s run out before arrival
    in 3 of 20). Continuous-action envs (``intersection-v1``) have no expert: asking raises
    :class:`~rewardlab.envs.tasks.MissingTaskFeature`, and ``features()`` leaves it out.

    Idle action: the meta-action IDLE (keep lane and target speed), highway-env's no-op; zeros
    (no throttle, no steering) for a continuous action space. IDLE keeps driving: it crashes
    on the highway and the merge (most seeds) and still reaches some roundabout and
    intersection exits.
    """

    state_variables = _state_variables({"type": "Kinematics"})
    """highway-v0's; each instance lists its env's (``privileged`` follows its observation)."""
    dense_reward_type = "env"
    lookahead_steps: ClassVar[int] = 4
    """Steps the roundabout and intersection expert simulates ahead of each decision."""

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        self.scenario = _scenario(env)
        inner: Any = env
        config = inner.config
        text = _TEXT[self.scenario]
        self.name, self.goal, self.baseline = text.name, text.goal, text.baseline
        self.negatives = text.negatives
        self.description = text.description.format_map(
            {k: config.get(k, "?") for k in ("lanes_count", "vehicles_count", "duration")}
        )
        self.state_variables = _state_variables(config["observation"])
        self._plan: _Plan | None = None

    @classmethod
    def wrap(cls, env: gym.Env[Any, Any]) -> gym.Env[Any, Any]:
        """Real ``rgb_array`` frames under ``SDL_VIDEODRIVER=dummy`` (module docstring)."""
        return _Frames(env) if env.render_mode == "rgb_array" else env

    # -- success and progress --

    def on_reset(self, obs: Any, info: Mapping[str, Any]) -> None:
        self._current_plan()

    def success(self, obs: Any, info: Mapping[str, Any]) -> bool:
        inner: Any = self.env
        vehicle = inner.vehicle
        if vehicle.crashed:
            return False
        if self.scenario == "highway":
            return bool(inner.time >= inner.config["duration"])
        if self.scenario == "merge":
            return bool(vehicle.position[0] > _MERGE_END)
        if self.scenario == "intersection":
            return bool(inner.has_arrived(vehicle))
        return self._fraction() >= 1.0

    def progress(self) -> float:
        inner: Any = self.env
        if inner.vehicle.crashed:
            return 0.0
        if self.success(None, {}):
            return 1.0
        return min(BELOW_ONE, max(0.0, self._fraction()))

    def _fraction(self) -> float:
        """``(c - c_0) / (c_goal - c_0)``, unclipped; the largest over candidate routes."""
        inner: Any = self.env
        plan = self._current_plan()
        if self.scenario == "highway":
            coordinates = [float(inner.time)]
        elif self.scenario == "merge":
            coordinates = [float(inner.vehicle.position[0])]
        else:
            network = inner.road.network
            coordinates = [r.arc_length(network, inner.vehicle) for r in plan.routes]
        return max(
            (c - plan.origin) / (goal - plan.origin)
            for c, goal in zip(coordinates, plan.goals, strict=True)
        )

    def _current_plan(self) -> _Plan:
        inner: Any = self.env
        if self._plan is None or self._plan.road is not inner.road:
            self._plan = self._make_plan()
        return self._plan

    def _make_plan(self) -> _Plan:
        inner: Any = self.env
        road, vehicle = inner.road, inner.vehicle
        if self.scenario == "highway":
            return _Plan(road, 0.0, (float(inner.config["duration"]),))
        if self.scenario == "merge":
            return _Plan(road, float(vehicle.position[0]), (_MERGE_END,))
        network = road.network
        if self.scenario == "roundabout":
            route = _Route.plan(network, *_ROUNDABOUT_ROUTE)
            goal = route.start_of(_ROUNDABOUT_EXIT) + _EXIT_MARGIN
            return _Plan(road, route.arc_length(network, vehicle), (goal,), (route,))
        # The ego of intersection-v* starts on road o0 -> ir0 (IntersectionEnv._make_vehicles);
        # a continuous-action ego has no planned route, so without a configured destination
        # every exit is a candidate.
        planned = getattr(vehicle, "route", None)
        destination = inner.config["destination"] or (planned[-1][1] if planned else None)
        exits = (destination,) if destination else _INTERSECTION_EXITS
        routes = tuple(_Route.plan(network, "o0", d) for d in exits)
        goals = tuple(r.starts[-1] + _INTERSECTION_ARRIVED for r in routes)
        return _Plan(road, routes[0].arc_length(network, vehicle), goals, routes)

    # -- state --

    def state_dict(self) -> dict[str, np.ndarray]:
        inner: Any = self.env
        vehicle = inner.vehicle
        return {
            "speed": np.asarray(vehicle.speed, dtype=np.float64),
            "crashed": np.asarray(bool(vehicle.crashed)),
            "on_road": np.asarray(bool(vehicle.on_road)),
            "lane_index": np.asarray(vehicle.lane_index[2], dtype=np.int64),
            "position": np.array(vehicle.position, dtype=np.float64),
            "heading": np.asarray(vehicle.heading, dtype=np.float64),
            "time": np.asarray(inner.time, dtype=np.float64),
        }

    # -- actions --

    def features(self) -> frozenset[str]:
        have = super().features()
        inner: Any = self.env
        if getattr(inner.action_type, "actions_indexes", None) is None:
            have -= {"expert"}  # continuous actions: no meta-actions to plan with
        return have

    def _meta_actions(self, needed_for: str) -> dict[str, int]:
        inner: Any = self.env
        indexes = getattr(inner.action_type, "actions_indexes", None)
        if indexes is None:
            raise MissingTaskFeature(self.env_id, "expert", needed_for, type(self))
        return dict(indexes)

    def expert_action(self, obs: Any) -> int:
        actions = self._meta_actions("a dataset of expert episodes (a discrete meta-action env)")
        if self.scenario in ("highway", "merge"):
            return actions["SLOWER"]
        for name in ("FASTER", "IDLE"):
            if self._safe(actions[name], actions["SLOWER"]):
                return actions[name]
        return actions["SLOWER"]

    def _safe(self, action: int, brake: int) -> bool:
        """No collision in a copy of the simulator over :attr:`lookahead_steps` steps: ``action``
        then ``brake``. highway-env's ``__deepcopy__`` leaves the viewer out."""
        sim: Any = copy.deepcopy(self.env)
        sim.render_mode = None
        for step in range(self.lookahead_steps):
            sim.step(action if step == 0 else brake)
            if sim.vehicle.crashed:
                return False
        return True

    def idle_action(self) -> Any:
        inner: Any = self.env
        indexes = getattr(inner.action_type, "actions_indexes", None)
        if indexes is not None:
            return indexes["IDLE"]
        space = self.env.action_space
        assert isinstance(space, gym.spaces.Box), space
        return np.zeros(space.shape, dtype=space.dtype)


class _Frames(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """Frames drawn even under ``SDL_VIDEODRIVER=dummy``, where highway-env's ``EnvViewer``
    sets ``enabled = False`` and returns a black image; the viewer draws off-screen for
    ``rgb_array`` (``offscreen_rendering`` defaults to True there). It records its (no)
    constructor arguments, so ``env.spec.make()`` re-makes the stack."""

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)

    def render(self) -> Any:
        inner: Any = self.env.unwrapped
        if inner.viewer is None:
            from highway_env.envs.common.graphics import EnvViewer

            inner.viewer = EnvViewer(inner)
        inner.viewer.enabled = True
        return self.env.render()

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        inner: Any = self.env.unwrapped
        if inner._record_video_wrapper is None:
            # A render() before a step makes the step draw its intermediate simulation frames,
            # which only a video recorder hooked into the env keeps: don't draw them.
            inner.enable_auto_render = False
        return self.env.step(action)
