"""highway-env's scenarios through their shipped task: success and progress as the adapter
documents them, experts that succeed, idle and random play that does not, crashes that never
count, and frames that are drawn without a display."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import rewardlab
from rewardlab import expert_policy, get_task
from rewardlab.envs.adapters.highway import HighwayTask
from rewardlab.envs.tasks import FEATURES, MissingTaskFeature
from tests.envs.adapters.helpers import checked_state, episode

pytest.importorskip("highway_env")

# highway-v0 and intersection-v2 share highway-fast-v0's and intersection-v0's env classes (at
# 3x the cost; with connected-lane neighbours): stepped, not checked, below.
IDS = ["highway-fast-v0", "merge-v0", "roundabout-v0", "intersection-v0", "intersection-v1"]


def _episode(
    env: gym.Env[Any, Any], act: Callable[[Any], Any], seed: int, limit: int = 1000
) -> list[dict[str, Any]]:
    """Infos of one episode (at most ``limit`` steps), reset's first."""
    return episode(env, act, seed, limit=limit).infos


def _random(env: gym.Env[Any, Any], seed: int) -> Callable[[Any], Any]:
    # Not env.action_space.sample(): highway-env makes a new action space at every reset.
    rng = np.random.default_rng(seed)
    space = env.action_space
    assert isinstance(space, gym.spaces.Discrete)
    return lambda obs: int(rng.integers(space.n))


def _inner(env: gym.Env[Any, Any]) -> Any:
    return env.unwrapped


@pytest.mark.parametrize("env_id", IDS)
def test_env_checker_and_task_info_on_every_step(env_id: str) -> None:
    env = rewardlab.make(env_id)
    gym_check_env(env.unwrapped, skip_render_check=True)
    infos = _episode(env, lambda obs: env.action_space.sample(), seed=0, limit=5)
    assert len(infos) >= 2
    for info in infos:
        assert type(info["is_success"]) is bool
        assert type(info["progress"]) is float and 0.0 <= info["progress"] <= 1.0
    assert infos[0]["progress"] == 0.0  # measured from the episode's start
    assert isinstance(get_task(env).env, HighwayTask)
    continuous = env_id == "intersection-v1"  # no meta-actions: no expert
    assert get_task(env).features() == frozenset(FEATURES) - ({"expert"} if continuous else set())


def test_the_other_ids_step_with_task_info() -> None:
    env = rewardlab.make("highway-v0")
    infos = _episode(env, lambda obs: 1, seed=0, limit=2)
    assert [i["progress"] for i in infos] == [0.0, 1 / 40, 2 / 40]  # of its 40 s duration
    assert not any(i["is_success"] for i in infos)
    assert get_task(env).name == "drive_highway"
    env = rewardlab.make("intersection-v2")
    infos = _episode(env, lambda obs: 1, seed=0, limit=3)
    assert infos[0]["progress"] == 0.0 < infos[1]["progress"] < infos[2]["progress"] < 1.0
    assert get_task(env).name == "cross_intersection"


@pytest.mark.parametrize("env_id", ["highway-fast-v0", "merge-v0", "intersection-v0"])
def test_state_matches_its_variables_through_stacked_wrappers(env_id: str) -> None:
    wrapped = gym.wrappers.RecordEpisodeStatistics(
        gym.wrappers.TransformObservation(rewardlab.make(env_id), lambda o: o, None)
    )
    wrapped.reset(seed=3)
    wrapped.step(wrapped.action_space.sample())
    state = checked_state(wrapped, float64=False)
    task = get_task(wrapped)
    vehicle = _inner(wrapped).vehicle
    assert state["speed"] == vehicle.speed
    assert np.array_equal(state["position"], vehicle.position)
    assert state["heading"] == vehicle.heading
    assert state["lane_index"] == vehicle.lane_index[2]
    assert state["crashed"] == vehicle.crashed
    assert state["time"] == _inner(wrapped).time == 1.0
    assert task.goal and task.baseline and task.negatives and task.description
    assert "{" not in task.description  # the config's values are filled in


def test_privileged_follows_the_observation_config() -> None:
    # highway: relative Kinematics (presence, x, y, vx, vy); intersection: absolute, with heading
    hidden = {
        env_id: {v.name for v in get_task(rewardlab.make(env_id)).state_variables if v.privileged}
        for env_id in ("highway-fast-v0", "intersection-v0")
    }
    assert hidden["highway-fast-v0"] == {
        "crashed",
        "on_road",
        "lane_index",
        "position",
        "heading",
        "time",
    }
    assert hidden["intersection-v0"] == {"crashed", "on_road", "lane_index", "time"}


@pytest.mark.parametrize(
    ("env_id", "seed"),
    [("highway-fast-v0", 1), ("merge-v0", 1), ("roundabout-v0", 0), ("intersection-v0", 0)],
)
def test_expert_succeeds_and_progress_rises_to_exactly_one(env_id: str, seed: int) -> None:
    env = rewardlab.make(env_id)
    infos = _episode(env, expert_policy(env), seed)
    progress = [i["progress"] for i in infos]
    assert infos[-1]["is_success"] and not _inner(env).vehicle.crashed
    assert progress[0] == 0.0
    assert all(b >= a for a, b in zip(progress, progress[1:], strict=False))
    assert all((p == 1.0) == i["is_success"] for p, i in zip(progress, infos, strict=True))
    first = next(k for k, i in enumerate(infos) if i["is_success"])
    assert all(i["is_success"] for i in infos[first:])  # held until the episode ends
    if env_id == "highway-fast-v0":  # survival: the whole 30 s, progress = time / duration
        assert first == len(infos) - 1 == 30
        assert progress[15] == 0.5


@pytest.mark.parametrize(
    ("env_id", "policy"),
    [
        ("highway-fast-v0", "idle"),
        ("highway-fast-v0", "random"),
        ("merge-v0", "idle"),
        ("merge-v0", "random"),
        ("roundabout-v0", "idle"),
        ("roundabout-v0", "random"),
        ("intersection-v0", "random"),
    ],
)
def test_idle_and_random_play_do_not_succeed(env_id: str, policy: str) -> None:
    """Seeds 3 and 4. Random play is not hopeless: over seeds 0 to 19 it succeeded in 1, 4, 4
    and 5 of 20 episodes on highway-fast, merge, roundabout and intersection."""
    env = rewardlab.make(env_id)
    adapter = get_task(env).env
    for seed in (3, 4):
        act = (lambda obs: adapter.idle_action()) if policy == "idle" else _random(env, seed)
        infos = _episode(env, act, seed)
        assert not any(i["is_success"] for i in infos)
        if _inner(env).vehicle.crashed:
            assert infos[-1]["progress"] == 0.0


def test_idle_is_the_meta_action_idle_and_braking_stalls_the_intersection() -> None:
    env = rewardlab.make("intersection-v0")
    actions = _inner(env).action_type.actions
    assert actions[get_task(env).env.idle_action()] == "IDLE"
    slower = _inner(env).action_type.actions_indexes["SLOWER"]
    infos = _episode(env, lambda obs: slower, seed=0)
    assert not infos[-1]["is_success"] and infos[-1]["progress"] < 0.2
    assert _inner(env).vehicle.speed < 0.01  # stopped before the intersection


def test_a_crash_at_the_time_limit_is_no_success() -> None:
    env = rewardlab.make("highway-fast-v0")
    act = expert_policy(env)
    obs, info = env.reset(seed=1)
    for _ in range(29):
        obs, *_, info = env.step(act(obs))
    assert info["progress"] == pytest.approx(29 / 30)
    _inner(env).vehicle.crashed = True  # hit on the last step
    obs, _, terminated, truncated, info = env.step(act(obs))
    assert terminated and truncated
    assert info["is_success"] is False and info["progress"] == 0.0


def test_merge_success_is_the_ramp_passed_without_a_crash() -> None:
    env = rewardlab.make("merge-v0")
    env.reset(seed=0)
    task, vehicle = get_task(env), _inner(env).vehicle
    vehicle.position = np.array([370.0, 4.0])  # the threshold itself: not yet past it
    assert task.env.success(None, {}) is False
    assert 0.999 < task.progress() < 1.0  # 1 only in success states
    vehicle.position = np.array([380.0, 4.0])
    assert (task.env.success(None, {}), task.progress()) == (True, 1.0)
    vehicle.crashed = True
    assert (task.env.success(None, {}), task.progress()) == (False, 0.0)


def test_roundabout_progress_ignores_the_ring_lane() -> None:
    # The same point of the ring on the inner (radius 20 m) and outer (24 m) lane is the same
    # progress: arc lengths are measured along lane 0.
    env = rewardlab.make("roundabout-v0")
    env.reset(seed=0)
    inner, task = _inner(env), get_task(env)
    vehicle, network = inner.vehicle, inner.road.network
    readings = []
    for lane_id in (0, 1):
        index = ("ex", "ee", lane_id)
        lane = network.get_lane(index)
        vehicle.position = lane.position(0.5 * lane.length, 0.0)
        vehicle.lane_index, vehicle.lane = index, lane
        readings.append(task.progress())
    assert 0.0 < readings[0] < 1.0
    assert readings[0] == pytest.approx(readings[1], abs=1e-12)


def test_no_expert_for_continuous_actions_and_a_zero_idle() -> None:
    env = rewardlab.make("intersection-v1")
    obs, _ = env.reset(seed=0)
    adapter = get_task(env).env
    with pytest.raises(MissingTaskFeature, match="expert"):
        adapter.expert_action(obs)
    with pytest.raises(MissingTaskFeature, match="has no expert, which an expert policy needs"):
        expert_policy(env)
    idle = adapter.idle_action()
    assert env.action_space.contains(idle) and not idle.any()


def test_frames_are_drawn_under_the_dummy_video_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    raw = gym.make("highway-fast-v0", render_mode="rgb_array")
    raw.reset(seed=0)
    assert not np.asarray(raw.render()).any()  # highway-env's own viewer draws nothing
    env: Any = rewardlab.make("highway-fast-v0", render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert first.shape == (150, 600, 3) and first.dtype == np.uint8
    assert first.any() and first.std() > 10
    env.step(1)
    assert not np.array_equal(env.render(), first)
    assert type(env.env).__name__ == "_Frames"
    plain: Any = rewardlab.make("highway-fast-v0")
    assert type(plain.env) is not type(env.env)  # no frames, none
    again: Any = env.spec.make()  # the stack is re-made, frames included
    again.reset(seed=0)
    assert np.array_equal(again.render(), first)
