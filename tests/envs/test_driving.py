"""Driving-family tests: reward formulas, terminations, traffic, config checks, rendering."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

import rewardlab  # noqa: F401  (registers the ids)
from rewardlab import expert_policy
from rewardlab.envs.driving import (
    EGO_FEATURES,
    EGO_RGB,
    IDM_ACCELERATION,
    IDM_COMFORT_BRAKING,
    IDM_MAX_BRAKING,
    IDM_MIN_GAP,
    IDM_TIME_HEADWAY,
    MAX_SPEED,
    TRAFFIC_RGB,
    VEHICLE_LENGTH,
    DrivingConfig,
    DrivingEnv,
)

ZERO = np.zeros(2, dtype=np.float32)


def _scenario(
    env: DrivingEnv,
    ego: tuple[float, float, float, float],
    cars: list[tuple[float, int, float]],
) -> None:
    """Put the ego at (x, y, heading, speed) and the cars at (x, lane, speed), after a reset."""
    env.reset(seed=0)
    env._ex, env._ey, env._eh, env._ev = ego
    x, lane, speed = (np.array(c, dtype=float) for c in zip(*cars, strict=True))
    env._place_traffic(x, lane.astype(int), speed, speed)
    env._completion = env._route_completion()


def _far_cars(n: int) -> list[tuple[float, int, float]]:
    """Cars far ahead of everything a test looks at."""
    return [(5000.0 + 50.0 * i, 0, 25.0) for i in range(n)]


@pytest.mark.parametrize("reward_type", ["sparse", "carl", "weighted"])
def test_components_sum_to_reward_and_follow_their_formula(reward_type: str) -> None:
    env = DrivingEnv(reward_type=reward_type)
    cfg = env.config
    act = expert_policy(env)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    for t in range(300):
        action = act(obs) if t % 2 else rng.uniform(-0.3, 0.3, 2).astype(np.float32)
        before = env.progress()
        obs, reward, terminated, truncated, info = env.step(action)
        components = {k: v for k, v in info.items() if k.startswith("reward_")}
        assert sum(components.values()) == pytest.approx(reward, abs=1e-12)
        state = env.state_dict()
        if reward_type == "sparse":
            assert reward == float(info["is_success"])
        elif reward_type == "carl":
            factors = info["penalty_lane_centre"] * info["penalty_speeding"]
            factors *= info["penalty_headway"]
            assert reward == pytest.approx((info["progress"] - before) * factors, abs=1e-12)
        else:
            # highway-env: lmap(sum of weighted terms, [w_c, w_s + w_r], [0, 1]) * on_road
            low, high = cfg.reward_speed_range
            forward = float(state["ego_speed"]) * math.cos(float(state["ego_heading"]))
            speed = np.clip((forward - low) / (high - low), 0, 1)
            lane = float(state["lane_index"]) / (cfg.lanes_count - 1)
            raw = (
                cfg.collision_reward * float(state["collision"])
                + cfg.high_speed_reward * speed
                + cfg.right_lane_reward * lane
            )
            span = cfg.high_speed_reward + cfg.right_lane_reward - cfg.collision_reward
            expected = (raw - cfg.collision_reward) / span * (not state["off_road"])
            assert reward == pytest.approx(expected, abs=1e-12)
        if terminated or truncated:
            obs, _ = env.reset()


def test_carl_multiplies_progress_by_infraction_factors() -> None:
    env = DrivingEnv(reward_type="carl", vehicles_count=1)
    cfg = env.config
    # Ego 1 m right of lane 1's centre, 4 m/s over the limit, 12 m behind a car in its lane.
    speed = cfg.speed_limit + 4.0
    _scenario(env, (100.0, 5.0, 0.0, speed), [(100.0 + VEHICLE_LENGTH + 12.0, 1, speed)])
    before = env.progress()
    _, reward, terminated, _, info = env.step(ZERO)
    assert not terminated
    state = env.state_dict()
    offset = abs(float(state["lateral_offset"]))
    assert 0.9 < offset < 1.1
    assert info["penalty_lane_centre"] == pytest.approx(1 - 0.5 * offset / 2.0)
    excess = float(state["ego_speed"]) - cfg.speed_limit
    assert info["penalty_speeding"] == pytest.approx(1 - excess / cfg.carl_speeding_tolerance)
    assert info["penalty_headway"] == cfg.carl_too_close_factor
    delta = info["progress"] - before
    assert delta > 0
    product = info["penalty_lane_centre"] * info["penalty_speeding"] * 0.5
    assert 0 < product < 0.5
    assert reward == pytest.approx(delta * product)

    # The same motion without infractions earns the full progress.
    _scenario(env, (100.0, 4.0, 0.0, cfg.target_speed), _far_cars(1))
    before = env.progress()
    _, reward, _, _, info = env.step(ZERO)
    assert info["penalty_lane_centre"] == info["penalty_speeding"] == info["penalty_headway"] == 1
    assert reward == pytest.approx(info["progress"] - before)


def test_carl_never_discounts_a_regress() -> None:
    # On the exit route, drifting away from the target lane lowers completion; speeding while
    # doing it must not shrink the penalty (the factors scale progress only).
    env = DrivingEnv(reward_type="carl", lanes_count=4, target_lane=-1, vehicles_count=1)
    cfg = env.config
    target_y = (cfg.lanes_count - 1) * cfg.lane_width
    for speed in (cfg.speed_limit - 1.0, cfg.speed_limit + 2 * cfg.carl_speeding_tolerance):
        _scenario(env, (100.0, target_y, -0.6, speed), _far_cars(1))
        before = env.progress()
        _, reward, _, _, info = env.step(ZERO)
        delta = info["progress"] - before
        assert delta < 0
        assert reward == pytest.approx(delta)
    assert info["penalty_speeding"] == 0.0


@pytest.mark.parametrize("reward_type", ["sparse", "carl", "weighted"])
def test_collision_terminates_and_is_reported(reward_type: str) -> None:
    env = DrivingEnv(reward_type=reward_type, vehicles_count=1)
    _scenario(env, (0.0, 4.0, 0.0, 25.0), [(VEHICLE_LENGTH + 3.0, 1, 5.0)])
    _, reward, terminated, truncated, info = env.step(np.array([0.0, 1.0], np.float32))
    assert terminated and not truncated
    assert info["collision"] and not info["off_road"] and not info["is_success"]
    if reward_type == "weighted":
        assert info["reward_collision"] == pytest.approx(env.config.collision_reward / 1.5)
    if reward_type == "sparse":
        assert reward == 0.0


def test_cars_in_other_lanes_do_not_collide() -> None:
    env = DrivingEnv(vehicles_count=2)
    _scenario(env, (0.0, 4.0, 0.0, 25.0), [(0.0, 0, 25.0), (2.0, 2, 25.0)])
    for _ in range(5):
        _, _, terminated, _, info = env.step(ZERO)
        assert not terminated and not info["collision"]


def test_off_road_terminates() -> None:
    env = DrivingEnv(vehicles_count=1)
    _scenario(env, (0.0, 8.0, 0.0, 25.0), _far_cars(1))  # rightmost lane of 3
    for _ in range(20):
        _, reward, terminated, _, info = env.step(np.array([1.0, 0.0], np.float32))
        if terminated:
            break
    assert terminated and info["off_road"] and not info["collision"]
    assert env.state_dict()["ego_position"][1] > 8.0 + env.config.lane_width / 2


def test_route_completion_and_sparse_reward_exactly_at_the_end() -> None:
    env = DrivingEnv(reward_type="sparse", vehicles_count=1)
    length = env.config.route_length
    _scenario(env, (length - 30.0, 4.0, 0.0, 20.0), _far_cars(1))
    rewards, completions = [], []
    terminated = False
    while not terminated:
        _, reward, terminated, truncated, info = env.step(ZERO)
        rewards.append(reward)
        completions.append(info["route_completion"])
    assert rewards[:-1] == [0.0] * (len(rewards) - 1) and rewards[-1] == 1.0
    assert max(completions[:-1]) < 1.0 and completions[-1] == 1.0
    assert info["is_success"] and info["progress"] == 1.0


def test_exit_route_needs_the_target_lane() -> None:
    env = DrivingEnv(reward_type="sparse", lanes_count=4, target_lane=-1, vehicles_count=1)
    length = env.config.route_length
    for lane, success in ((2, False), (3, True)):
        _scenario(env, (length - 2.0, 4.0 * lane, 0.0, 20.0), _far_cars(1))
        _, reward, terminated, _, info = env.step(ZERO)
        assert terminated and info["is_success"] is success and reward == float(success)
        assert (info["progress"] == 1.0) is success


def _idm_reference(x, v, v0, lane, dt):
    """Per-car IDM, one car at a time: the vectorized update must match it exactly."""
    n = len(x)
    new_v = v.copy()
    for i in range(n):
        ahead = [j for j in range(n) if lane[j] == lane[i] and x[j] > x[i]]
        if ahead:
            j = min(ahead, key=lambda k: x[k])
            gap, dv = x[j] - x[i] - VEHICLE_LENGTH, v[i] - v[j]
        else:
            gap, dv = 1e9, v[i]
        sqrt_ab = math.sqrt(IDM_ACCELERATION * IDM_COMFORT_BRAKING)
        s_star = IDM_MIN_GAP + max(0.0, v[i] * IDM_TIME_HEADWAY + v[i] * dv / (2 * sqrt_ab))
        acc = IDM_ACCELERATION * (1 - (v[i] / v0[i]) ** 4 - (s_star / max(gap, 0.1)) ** 2)
        acc = min(max(acc, -IDM_MAX_BRAKING), IDM_ACCELERATION)
        new_v[i] = max(v[i] + acc * dt, 0.0)
    return x + new_v * dt, new_v


def test_vectorized_idm_matches_per_car_reference() -> None:
    env = gym.make("rewardlab/DriveDense-v0").unwrapped
    env.reset(seed=1)
    env._ex = -1e4  # ego far behind: no car follows it
    n = env.config.vehicles_count
    for _ in range(30):
        x, v = env._x[:n].copy(), env._v[:n].copy()
        expected_x, expected_v = _idm_reference(x, v, env._v0, env._lane, env._dt)
        env._simulate(0.0, 0.0)
        np.testing.assert_allclose(env._v[:n], expected_v, rtol=0, atol=1e-12)
        np.testing.assert_allclose(env._x[:n], expected_x, rtol=0, atol=1e-9)


def test_idm_traffic_never_collides_and_stops_behind_the_ego() -> None:
    env = gym.make("rewardlab/DriveDense-v0").unwrapped
    n = env.config.vehicles_count
    for seed in range(3):
        env.reset(seed=seed)
        braked = False
        for _ in range(300):  # the ego stops; traffic must queue behind it, not through it
            _, _, terminated, _, info = env.step(np.array([0.0, -1.0], np.float32))
            assert not terminated, info
            x, lane, v = env._x[:n], env._lane, env._v[:n]
            for lane_id in np.unique(lane):
                xs = np.sort(x[lane == lane_id])
                assert np.all(np.diff(xs) > VEHICLE_LENGTH), "two cars of a lane overlap"
            braked |= bool(np.any(v < env._v0 - 1.0))
        assert braked, "IDM never slowed a car: no interaction was exercised"
    # A car placed behind the stopped ego in its lane comes to rest behind it.
    env2 = DrivingEnv(vehicles_count=1)
    _scenario(env2, (200.0, 4.0, 0.0, 0.0), [(120.0, 1, 25.0)])
    for _ in range(100):
        _, _, terminated, _, info = env2.step(np.array([0.0, -1.0], np.float32))
        assert not info["collision"]
    assert env2._v[0] < 0.1 and 0 < 200.0 - env2._x[0] - VEHICLE_LENGTH < 10.0


def test_observation_lists_nearest_cars_relative_to_the_ego() -> None:
    env = DrivingEnv(vehicles_count=3)
    _scenario(env, (100.0, 4.0, 0.0, 20.0), [(130.0, 2, 25.0), (90.0, 1, 20.0), (900.0, 0, 20)])
    obs = env._observation()
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)
    cars = obs[EGO_FEATURES:].reshape(-1, 5)
    np.testing.assert_allclose(cars[0], [1, -0.1, 0, 0, 0], atol=1e-6)  # 10 m behind
    np.testing.assert_allclose(cars[1], [1, 0.3, 4 / 12, 5 / MAX_SPEED, 0], atol=1e-6)
    assert not cars[2:].any(), "cars beyond perception_distance and padding are zeros"
    assert obs[2] == pytest.approx(20 / MAX_SPEED)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("lanes_count", 0),
        ("vehicles_count", -3),
        ("reward_type", "dense"),
        ("policy_frequency", 3),
        ("target_lane", 7),
        ("traffic_speed_range", (30.0, 20.0)),
        ("carl_off_centre_factor", 1.5),
        ("route_length", -10.0),
        ("render_width", 0),
    ],
)
def test_invalid_config_values_raise_and_name_the_value(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key) as err:
        DrivingConfig(**{key: value})
    assert str(value) in str(err.value)


def test_unknown_option_raises_type_error() -> None:
    with pytest.raises(TypeError, match="lane_count"):
        DrivingEnv(lane_count=3)


def test_render_shows_the_ego_in_its_colour() -> None:
    env = gym.make("rewardlab/DriveHighway-v0", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (224, 224, 3) and frame.dtype == np.uint8
    ego = np.all(frame == EGO_RGB, axis=-1)
    # A 5 m x 2 m car at 224 / 40 px/m covers about 28 x 11 px.
    assert 200 < ego.sum() < 450
    assert np.all(frame == TRAFFIC_RGB, axis=-1).any()
    rows, cols = np.nonzero(ego)
    assert abs(cols.mean() - 0.3 * 224) < 3  # the ego sits at 30% of the width


@pytest.mark.parametrize("action", [[np.nan, 0.0], [0.0, 0.0, 0.0]])
def test_bad_action_fails_before_touching_the_state(action: list[float]) -> None:
    env = DrivingEnv()
    env.reset(seed=0)
    before = env.state_dict()
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array(action))
    for name, value in env.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
