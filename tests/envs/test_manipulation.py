"""Manipulation-family tests beyond the shared contract in test_all_envs.py."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from rewardlab import expert_policy, get_task

mujoco = pytest.importorskip("mujoco")
manipulation = pytest.importorskip("rewardlab.envs.manipulation")
ManipulationConfig = manipulation.ManipulationConfig

IDS = {
    "reach": "rewardlab/ManipReach-v0",
    "push": "rewardlab/ManipPush-v0",
    "pick_place": "rewardlab/ManipPickPlace-v0",
}
DENSE_KEYS = {
    "reach": {"reward_reach", "reward_success", "reward_action_penalty"},
    "push": {"reward_reach", "reward_push", "reward_success", "reward_action_penalty"},
    "pick_place": {
        "reward_reach",
        "reward_grasp",
        "reward_lift",
        "reward_place",
        "reward_success",
        "reward_action_penalty",
    },
}


def _expert_episode(env: gym.Env, seed: int) -> tuple[list[dict], list[float]]:
    act = expert_policy(env)
    obs, info = env.reset(seed=seed)
    infos, rewards = [info], []
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(act(obs))
        assert not terminated, "no manipulation state is terminal"
        infos.append(info)
        rewards.append(reward)
        done = truncated
    return infos, rewards


def test_registered_ids_pick_the_task() -> None:
    for task, env_id in IDS.items():
        assert gym.spec(env_id).kwargs["task"] == task
        assert gym.spec(env_id).entry_point == "rewardlab.envs.manipulation:ManipulationEnv"


@pytest.mark.parametrize("task", list(IDS))
def test_dense_components_are_named_and_sum_to_the_reward(task: str) -> None:
    env = gym.make(IDS[task], reward_type="dense")
    env.action_space.seed(1)
    act = expert_policy(env)
    obs, _ = env.reset(seed=1)
    for t in range(120):
        action = act(obs) if t % 2 else env.action_space.sample()
        obs, reward, _, truncated, info = env.step(action)
        components = {k: v for k, v in info.items() if k.startswith("reward_")}
        assert set(components) == DENSE_KEYS[task]
        assert reward == pytest.approx(sum(components.values()), abs=1e-12)
        assert info["reward_success"] == float(info["is_success"])
        a = np.clip(action, -1, 1)
        assert info["reward_action_penalty"] == pytest.approx(-0.01 * float(a @ a), rel=1e-6)
        if truncated:
            obs, _ = env.reset()
    env.close()


@pytest.mark.parametrize("task", list(IDS))
def test_sparse_reward_is_the_success_indicator(task: str) -> None:
    env = gym.make(IDS[task])
    infos, rewards = _expert_episode(env, seed=2)
    for info, reward in zip(infos[1:], rewards, strict=True):
        assert set(k for k in info if k.startswith("reward_")) == {"reward_success"}
        assert reward == (1.0 if info["is_success"] else 0.0)
    assert sum(rewards) > 0
    env.close()


@pytest.mark.parametrize("task", list(IDS))
def test_expert_succeeds_in_dense_mode_with_a_monotone_progress(task: str) -> None:
    env = gym.make(IDS[task], reward_type="dense")
    for seed in range(10):
        infos, rewards = _expert_episode(env, seed)
        progress = np.array([i["progress"] for i in infos])
        success = np.array([i["is_success"] for i in infos])
        assert progress[0] == 0.0, "progress is normalized to 0 at reset"
        assert success.any(), f"expert failed on seed {seed}"
        first = int(np.argmax(success))
        assert progress[first] == 1.0
        assert (progress[:first] < 1.0).all(), "progress reaches 1 only on success"
        # A potential, not a noisy score: before success it never drops by more than 0.1,
        # and it rises overall.
        drops = np.maximum.accumulate(progress[: first + 1]) - progress[: first + 1]
        assert drops.max() < 0.1
        assert np.corrcoef(np.arange(first + 1), progress[: first + 1])[0, 1] > 0.8
        # Dense returns reward success: the success bonus appears exactly on success steps.
        assert sum(i["reward_success"] for i in infos[1:]) == success[1:].sum()
    env.close()


def test_pick_place_expert_grasps_and_lifts_the_block() -> None:
    env = gym.make(IDS["pick_place"])
    act = expert_policy(env)
    obs, _ = env.reset(seed=3)
    task = get_task(env)
    grasped, heights = [], []
    for _ in range(100):
        obs, *_ = env.step(act(obs))
        state = task.state()
        grasped.append(bool(state["block_grasped"]))
        heights.append(float(state["block_pos"][2]))
    assert any(grasped), "the expert never closed both fingers on the block"
    assert max(heights) > 0.05 + 0.025, "the block was never carried above the platform"
    assert env.unwrapped.progress() == 1.0
    env.close()


def test_state_is_read_by_name_and_matches_the_observation() -> None:
    env = gym.make(IDS["push"])
    obs, _ = env.reset(seed=4)
    for _ in range(5):
        obs, *_ = env.step(env.action_space.sample())
    inner = env.unwrapped
    model, data = inner.model, inner.data
    for kind, name in [
        ("body", "hand"),
        ("body", "block"),
        ("body", "target"),
        ("site", "grip"),
        ("joint", "hand_x"),
        ("joint", "finger_left"),
        ("geom", "finger_right"),
        ("actuator", "hand_z"),
        ("camera", "front"),
    ]:
        assert getattr(model, kind)(name).name == name
    state = inner.state_dict()
    block = data.body("block").xpos
    np.testing.assert_allclose(state["block_pos"], block)
    np.testing.assert_allclose(obs[7:10], block, rtol=1e-6)
    np.testing.assert_allclose(obs[0:3], data.site("grip").xpos, rtol=1e-6)
    # The hand's slide joints are the grip site's world coordinates.
    grip_joints = [data.joint(n).qpos[0] for n in ("hand_x", "hand_y", "hand_z")]
    np.testing.assert_allclose(state["gripper_pos"], grip_joints, atol=1e-12)
    finger_gap = data.joint("finger_left").qpos[0] + data.joint("finger_right").qpos[0]
    assert state["finger_gap"] == pytest.approx(finger_gap)
    # The target mocap body carries the disc; the goal is the block's resting centre on it.
    target_body = data.body("target").xpos
    np.testing.assert_allclose(state["target_pos"][:2], target_body[:2])
    assert state["target_pos"][2] == pytest.approx(0.025)
    env.close()


@pytest.mark.parametrize("task", ["push", "pick_place"])
def test_targets_are_sampled_in_range_and_far_enough(task: str) -> None:
    env = gym.make(IDS[task], object_range=0.1, target_range=0.14, min_target_distance=0.13)
    for seed in range(30):
        env.reset(seed=seed)
        state = get_task(env).state()
        block, target = state["block_pos"], state["target_pos"]
        assert np.abs(block[:2]).max() <= 0.1 and np.abs(target[:2]).max() <= 0.14
        assert np.linalg.norm(block[:2] - target[:2]) >= 0.13
    env.close()


def test_actions_are_clipped_to_the_unit_box() -> None:
    a, b = gym.make(IDS["push"]), gym.make(IDS["push"])
    a.reset(seed=5)
    b.reset(seed=5)
    obs_a, *_ = a.step(np.array([5.0, -3.0, 2.0, -9.0], dtype=np.float32))
    obs_b, *_ = b.step(np.array([1.0, -1.0, 1.0, -1.0], dtype=np.float32))
    np.testing.assert_array_equal(obs_a, obs_b)
    a.close()
    b.close()


def test_render_defaults_to_224_with_shadows_and_reflections_off() -> None:
    env = gym.make(IDS["push"], render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (224, 224, 3) and frame.dtype == np.uint8
    inner = env.unwrapped
    renderer = inner._renderer
    assert renderer is not None
    flags = renderer.scene.flags
    assert not flags[mujoco.mjtRndFlag.mjRND_SHADOW]
    assert not flags[mujoco.mjtRndFlag.mjRND_REFLECTION]
    assert inner.model.vis.quality.shadowsize == 0
    assert not inner.model.light_castshadow.any()
    env.step(env.action_space.sample())
    env.render()
    assert inner._renderer is renderer, "the renderer is created once and reused"
    env.close()


def test_frames_show_the_red_block_and_the_green_target() -> None:
    env = gym.make(IDS["push"], render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render().astype(int)
    r, g, b = frame[..., 0], frame[..., 1], frame[..., 2]
    assert ((r > 150) & (g < 60) & (b < 60)).sum() > 20, "no red block in view"
    assert ((g > 130) & (r < 80) & (b < 80)).sum() > 20, "no green target in view"
    env.close()


def test_camera_is_configurable_and_validated() -> None:
    frames = {}
    for camera in ("front", "top"):
        env = gym.make(IDS["push"], render_mode="rgb_array", camera=camera)
        env.reset(seed=0)
        frames[camera] = env.render()
        env.close()
    assert not np.array_equal(frames["front"], frames["top"])
    with pytest.raises(ValueError, match="'fisheye'"):
        gym.make(IDS["push"], camera="fisheye")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("task", "stack"),
        ("reward_type", "shaped"),
        ("frame_skip", 0),
        ("frame_skip", 2.5),
        ("action_scale", -0.1),
        ("object_range", 0.5),
        ("target_range", -0.1),
        ("distance_threshold", 0.0),
        ("min_target_distance", 0.01),
        ("min_target_distance", 0.3),
        ("render_width", 0),
        ("render_height", 10_000),
    ],
)
def test_invalid_config_values_name_the_value(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=str(value).replace(".", r"\.")):
        ManipulationConfig(**{field: value})
    with pytest.raises(ValueError):
        gym.make(IDS["push"], **{field: value})


def test_invalid_render_mode_is_rejected() -> None:
    # gym.make would wrap "human" in HumanRendering; the env itself only draws rgb_array.
    with pytest.raises(ValueError, match="human"):
        manipulation.ManipulationEnv(render_mode="human")


def test_close_is_idempotent_and_frees_the_renderer() -> None:
    env = gym.make(IDS["reach"], render_mode="rgb_array")
    env.reset(seed=0)
    env.render()
    env.close()
    assert env.unwrapped._renderer is None
    env.close()


def test_hand_floats_and_its_gravity_bias_matches_its_mass() -> None:
    env = gym.make(IDS["reach"])
    env.reset(seed=0)
    inner = env.unwrapped
    model = inner.model
    bias = model.actuator("hand_z").biasprm[0]
    weight = model.body("hand").subtreemass[0] * -model.opt.gravity[2]
    assert bias == pytest.approx(weight, rel=1e-3), "update biasprm in robot.xml"
    start = inner.task.state()["gripper_pos"]
    for _ in range(40):
        env.step(np.array([0.0, 0.0, 0.0, 1.0], dtype=np.float32))
    np.testing.assert_allclose(inner.task.state()["gripper_pos"], start, atol=1e-3)
    env.close()


def test_frame_skip_sets_dt_and_render_fps() -> None:
    env = gym.make(IDS["reach"], frame_skip=10)
    inner = env.unwrapped
    assert inner.dt == pytest.approx(10 * inner.model.opt.timestep)
    assert inner.metadata["render_fps"] == round(1 / inner.dt)
    env.close()


def test_task_captions_name_the_colours() -> None:
    env = gym.make(IDS["push"])
    task = get_task(env)
    assert "red block" in task.goal and "green" in task.goal
    assert task.goal not in task.negatives
    names = [v.name for v in task.state_variables]
    assert [v.name for v in task.state_variables if v.privileged] == ["block_grasped"]
    assert "block_pos" in names and "target_pos" in names
    env.close()


@pytest.mark.parametrize("action", [[np.nan, 0, 0, 0], [0, 0, 0], [0, 0, 0, 0, 0], [[0, 0, 0, 0]]])
def test_bad_action_is_rejected_before_simulating(action: list) -> None:
    env = gym.make("rewardlab/ManipPush-v0").unwrapped
    env.reset(seed=0)
    before = env.state_dict()
    with pytest.raises(ValueError, match="4 finite numbers"):
        env.step(np.array(action, dtype=np.float64))
    for name, value in env.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_step_before_reset_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="reset"):
        gym.make("rewardlab/ManipPush-v0").unwrapped.step(np.zeros(4))


def test_pick_place_rejects_a_block_start_inside_the_platform() -> None:
    with pytest.raises(ValueError, match="0.05"):
        gym.make("rewardlab/ManipPickPlace-v0", min_target_distance=0.05)
    gym.make("rewardlab/ManipPush-v0", min_target_distance=0.05).close()  # no platform there
