"""Gridworld family: the tabular model equals the simulator; progress and rewards as documented."""

from __future__ import annotations

import warnings
from collections import deque

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import rewardlab
from rewardlab.envs.gridworld import (
    DOOR_OPEN,
    FORWARD,
    GOAL,
    HAS_KEY,
    LAVA,
    PICKUP,
    TOGGLE,
    TURN_LEFT,
    TURN_RIGHT,
    GridWorldConfig,
    GridWorldEnv,
)

GRID_IDS = [i for i in rewardlab.env_ids() if i.startswith("rewardlab/Grid")]
LAYOUT_IDS = {
    "empty": "rewardlab/GridEmpty-v0",
    "four_rooms": "rewardlab/GridFourRooms-v0",
    "key_door": "rewardlab/GridKeyDoor-v0",
    "lava_crossing": "rewardlab/GridLavaCrossing-v0",
}


def _env(layout: str, seed: int = 1, **kwargs: object) -> GridWorldEnv:
    env = GridWorldEnv(layout=layout, **kwargs)
    env.reset(seed=seed)
    return env


def test_every_layout_is_registered() -> None:
    for env_id in LAYOUT_IDS.values():
        assert env_id in GRID_IDS


@pytest.mark.parametrize("reward_type", ["sparse", "dense"])
@pytest.mark.parametrize("layout", list(LAYOUT_IDS))
def test_tabular_model_equals_the_simulator(layout: str, reward_type: str) -> None:
    env = _env(layout, reward_type=reward_type)
    mdp = env.tabular()
    n_states, n_actions, _ = mdp.P.shape
    np.testing.assert_array_equal(mdp.P.sum(axis=2), 1.0)
    assert mdp.initial.sum() == pytest.approx(1.0)
    # Terminal states are absorbing with zero reward.
    term = np.flatnonzero(mdp.terminal)
    assert len(term) > 0
    np.testing.assert_array_equal(mdp.P[term, :, term], 1.0)
    assert not mdp.R[term].any()
    for s in range(n_states):  # every state and action, terminal ones included
        for a in range(n_actions):
            env.set_state_index(int(s))
            assert env.state_index() == s
            _, reward, terminated, truncated, info = env.step(a)
            s2 = env.state_index()
            assert mdp.P[s, a, s2] == 1.0
            assert mdp.next_state[s, a] == s2
            assert reward == mdp.R[s, a, s2]
            assert terminated == mdp.terminal[s2] and not truncated
            x, y = mdp.states[s2, :2]
            assert info["is_success"] == (env.layout.grid()[y, x] == GOAL)


@pytest.mark.parametrize("layout", list(LAYOUT_IDS))
def test_initial_distribution_is_exact(layout: str) -> None:
    # A fixed layout makes every reset draw from the same tabular initial distribution.
    env = GridWorldEnv(layout=layout, randomize_layout=False)
    env.reset(seed=0)
    initial = env.tabular().initial
    counts = np.zeros_like(initial)
    n = 400
    for seed in range(n):
        env.reset(seed=seed)
        counts[env.state_index()] += 1
    np.testing.assert_array_equal(counts > 0, initial > 0)
    support = initial > 0
    np.testing.assert_allclose(counts[support] / n, initial[support], atol=0.08)


def _bfs_shortest_path(env: GridWorldEnv, start: int) -> int:
    """Fewest actions from ``start`` to success, searched through the simulator's step()."""
    seen, queue = {start}, deque([(start, 0)])
    while queue:
        s, depth = queue.popleft()
        for a in range(env.action_space.n):
            env.set_state_index(s)
            _, _, terminated, _, info = env.step(a)
            if info["is_success"]:
                return depth + 1
            s2 = env.state_index()
            if not terminated and s2 not in seen:
                seen.add(s2)
                queue.append((s2, depth + 1))
    raise AssertionError("goal unreachable")


@pytest.mark.parametrize("layout", list(LAYOUT_IDS))
def test_optimal_value_is_gamma_to_the_shortest_path(layout: str) -> None:
    gamma = 0.95
    env = _env(layout, seed=3)
    start = env.state_index()
    v, q = env.tabular().value_iteration(gamma)
    d = _bfs_shortest_path(env, start)
    # The reward 1 arrives on the d-th action, discounted d - 1 times.
    assert v[start] == pytest.approx(gamma ** (d - 1), abs=1e-9)
    # The expert is greedy with respect to Q*: it keeps the optimal value.
    for s in range(len(v)):
        env.set_state_index(s)
        if v[s] > 0:
            assert q[s, env.expert_action()] == pytest.approx(v[s], abs=1e-9)


def test_empty_room_shortest_path_by_hand() -> None:
    env = GridWorldEnv(layout="empty", size=8)
    env.reset(seed=0)
    mdp = env.tabular()
    v, _ = mdp.value_iteration(0.9)
    # From (1, 1) facing east: 5 forward, turn right, 5 forward = 11 actions to (6, 6).
    east = int(np.flatnonzero((mdp.states == [1, 1, 0, 0]).all(axis=1))[0])
    west = int(np.flatnonzero((mdp.states == [1, 1, 2, 0]).all(axis=1))[0])
    assert v[east] == pytest.approx(0.9**10)
    assert v[west] == pytest.approx(0.9**11)  # one more turn


@pytest.mark.parametrize("layout", list(LAYOUT_IDS))
def test_progress_is_a_markov_potential(layout: str) -> None:
    env = _env(layout, seed=5)
    mdp = env.tabular()
    grid = env.layout.grid()
    progress = []
    for s in range(len(mdp.states)):
        env.set_state_index(s)
        progress.append(env.progress())
        x, y = mdp.states[s, :2]
        if grid[y, x] == GOAL:
            assert env.progress() == 1.0
        else:
            assert env.progress() < 1.0
        if grid[y, x] == LAVA:
            assert env.progress() == 0.0
    assert min(progress) >= 0.0
    # Along the expert's (shortest) path progress rises by the same step every action.
    obs, info = env.reset(seed=5)
    trace = [info["progress"]]
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(env.expert_action())
        trace.append(info["progress"])
        done = terminated or truncated
    assert trace[-1] == 1.0 and info["is_success"]
    step = (1.0 - trace[0]) / (len(trace) - 1)
    assert step > 0
    np.testing.assert_allclose(np.diff(trace), step, rtol=1e-9)


def test_sparse_reward_reports_only_success() -> None:
    env = _env("key_door")
    _, reward, _, _, info = env.step(FORWARD)
    assert {k for k in info if k.startswith("reward_")} == {"reward_success"}
    assert reward == info["reward_success"] == 0.0


def test_dense_key_door_components() -> None:
    env = _env("key_door", seed=7, reward_type="dense")
    layout = env.layout
    obs, _ = env.reset(seed=7)
    assert env.layout == layout
    seen: dict[str, list[float]] = {}
    done, steps = False, 0
    while not done:
        before = env.state_dict()
        action = env.expert_action()
        _, reward, terminated, truncated, info = env.step(action)
        after = env.state_dict()
        steps += 1
        comps = {k[len("reward_") :]: v for k, v in info.items() if k.startswith("reward_")}
        assert set(comps) == {
            "success",
            "key_pickup",
            "door_open",
            "approach",
            "step_penalty",
        }
        assert reward == pytest.approx(sum(comps.values()), abs=0)
        assert comps["step_penalty"] == -0.01
        picked = not before["carrying_key"] and after["carrying_key"]
        opened = not before["door_open"] and after["door_open"]
        assert comps["key_pickup"] == (0.2 if picked else 0.0)
        assert comps["door_open"] == (0.2 if opened else 0.0)
        assert picked == (action == PICKUP) and opened == (action == TOGGLE)
        target = (
            before["key_pos"]
            if not before["carrying_key"]
            else before["door_pos"]
            if not before["door_open"]
            else before["goal_pos"]
        )
        d0 = np.abs(before["agent_pos"] - target).sum()
        d1 = np.abs(after["agent_pos"] - target).sum()
        assert comps["approach"] == pytest.approx(0.05 * (d0 - d1))
        if action in (TURN_LEFT, TURN_RIGHT):
            assert comps["approach"] == 0.0
        for k, v in comps.items():
            seen.setdefault(k, []).append(v)
        done = terminated or truncated
    assert info["is_success"] and comps["success"] == 1.0
    assert sum(seen["success"]) == 1.0
    assert seen["key_pickup"].count(0.2) == 1 and seen["door_open"].count(0.2) == 1
    assert sum(seen["step_penalty"]) == pytest.approx(-0.01 * steps)


@pytest.mark.parametrize("reward_type", ["sparse", "dense"])
def test_lava_terminates_without_success(reward_type: str) -> None:
    env = _env("lava_crossing", reward_type=reward_type, randomize_layout=False)
    mdp = env.tabular()
    grid = env.layout.grid()
    step = ((1, 0), (0, 1), (-1, 0), (0, -1))
    facing_lava = next(
        s
        for s, (x, y, d, _) in enumerate(mdp.states)
        if not mdp.terminal[s] and grid[y + step[d][1], x + step[d][0]] == LAVA
    )
    env.set_state_index(facing_lava)
    _, reward, terminated, truncated, info = env.step(FORWARD)
    assert terminated and not truncated and not info["is_success"]
    assert info["progress"] == 0.0
    if reward_type == "sparse":
        assert reward == 0.0
    else:
        assert info["reward_lava"] == -1.0 and info["reward_success"] == 0.0


def test_door_blocks_until_unlocked_and_key_blocks_until_picked() -> None:
    env = _env("key_door", seed=2)
    mdp = env.tabular()
    layout = env.layout
    kx, ky = layout.key
    stages = mdp.states[:, 3]
    # No state stands on the key before pickup, or in the doorway before unlocking.
    on_key = (mdp.states[:, 0] == kx) & (mdp.states[:, 1] == ky)
    assert not (on_key & (stages == 0)).any()
    dx, dy = layout.door
    in_door = (mdp.states[:, 0] == dx) & (mdp.states[:, 1] == dy)
    assert not (in_door & (stages < DOOR_OPEN)).any() and (in_door & (stages == 2)).any()
    # Toggling the door without the key does nothing.
    facing = (mdp.states[:, 0] == dx - 1) & (mdp.states[:, 1] == dy) & (mdp.states[:, 2] == 0)
    s = int(np.flatnonzero(facing & (stages == 0))[0])
    assert mdp.next_state[s, TOGGLE] == s
    s = int(np.flatnonzero(facing & (stages == HAS_KEY))[0])
    assert mdp.states[mdp.next_state[s, TOGGLE], 3] == DOOR_OPEN


@pytest.mark.parametrize("env_id", list(LAYOUT_IDS.values()))
def test_image_observations_pass_the_checkers(env_id: str) -> None:
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    env = gym.make(env_id, obs_type="image", render_mode="rgb_array")
    n = env.unwrapped.config.grid_size
    assert env.observation_space.shape == (8 * n, 8 * n, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env.unwrapped)
        sb3_checker.check_env(env, warn=True)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.uint8 and obs.std() > 0
    env.close()


def test_render_colours_are_distinct() -> None:
    env = GridWorldEnv(layout="key_door", render_mode="rgb_array", randomize_layout=False)
    env.reset(seed=0)
    colours = {tuple(c) for c in env.render().reshape(-1, 3)}
    for rgb in [(0, 80, 255), (255, 205, 0), (150, 40, 220), (0, 190, 60), (64, 64, 64)]:
        assert rgb in colours, rgb  # agent, key, closed door, goal, wall
    mdp = env.tabular()
    closed = env.render()  # at reset: stage 0, door closed
    open_state = int(np.flatnonzero(mdp.states[:, 3] == DOOR_OPEN)[0])
    env.set_state_index(open_state)
    dx, dy = env.layout.door
    tile = 224 // 8
    door_px = (dy * tile + tile // 2, dx * tile + tile // 2)
    assert tuple(closed[door_px]) == (150, 40, 220)
    assert tuple(env.render()[door_px]) != (150, 40, 220)  # open door: floor in a frame


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"layout": "maze"}, "maze"),
        ({"reward_type": "shaped"}, "shaped"),
        ({"obs_type": "rgb"}, "rgb"),
        ({"size": 3}, "3"),
        ({"layout": "four_rooms", "size": 99}, "99"),
        ({"render_width": 0}, "0"),
        ({"obs_tile_size": 64}, "64"),
        ({"randomize_layout": "yes"}, "yes"),
    ],
)
def test_invalid_config_names_the_value(kwargs: dict, bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        GridWorldConfig(**kwargs)
    with pytest.raises(ValueError, match=bad):
        GridWorldEnv(**kwargs)


@pytest.mark.parametrize("layout", ["four_rooms", "key_door", "lava_crossing"])
def test_layouts_are_seeded_and_varied(layout: str) -> None:
    def layout_of(seed: int, **kw: object) -> object:
        env = GridWorldEnv(layout=layout, **kw)
        env.reset(seed=seed)
        return env.layout

    assert layout_of(11) == layout_of(11)
    assert len({layout_of(seed) for seed in range(20)}) >= 5
    assert len({layout_of(seed, randomize_layout=False) for seed in range(5)}) == 1


def test_tabular_needs_reset() -> None:
    with pytest.raises(RuntimeError, match="reset"):
        GridWorldEnv().tabular()
