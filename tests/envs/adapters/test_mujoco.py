"""Gymnasium's MuJoCo envs through their shipped tasks: state read by name matches the
documented observation layout, success and progress as the adapters document them (a fall is
never a success), InvertedPendulum's expert balances, and frames come at the task's size."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import rewardlab
from rewardlab import MissingTaskFeature, expert_policy, get_task
from rewardlab.envs.adapters.mujoco import HalfCheetah, Hopper, Humanoid, InvertedPendulum
from rewardlab.envs.tasks import FEATURES
from tests.envs.adapters.helpers import infos_terminated, random_policy, task_info

IDS = ["InvertedPendulum-v5", "Hopper-v5", "HalfCheetah-v5", "Humanoid-v5"]
# Kneeling is unreachable with the registered early termination (see Humanoid's docstring).
KWARGS: dict[str, dict[str, Any]] = {"Humanoid-v5": {"terminate_when_unhealthy": False}}


def _make(env_id: str, **kwargs: Any) -> gym.Env[Any, Any]:
    return rewardlab.make(env_id, **{**KWARGS.get(env_id, {}), **kwargs})


_episode = infos_terminated
_random = random_policy
_task_info = task_info


def _set_qpos(env: gym.Env[Any, Any], **joints: float) -> None:
    """Set named joints' positions (velocities zero) and recompute the kinematics."""
    inner: Any = env.unwrapped
    qpos = inner.data.qpos.copy()
    for name, value in joints.items():
        qpos[inner.model.joint(name).qposadr[0]] = value
    inner.set_state(qpos, np.zeros(inner.model.nv))


@pytest.mark.parametrize("env_id", IDS)
def test_env_checker_and_task_info_on_every_step(env_id: str) -> None:
    env = _make(env_id, max_episode_steps=50)
    gym_check_env(env.unwrapped, skip_render_check=True)
    infos, _ = _episode(env, _random(env), seed=0)
    for info in infos:
        assert type(info["is_success"]) is bool
        assert type(info["progress"]) is float and 0.0 <= info["progress"] <= 1.0
    expected = set(FEATURES) - ({"expert"} if env_id != "InvertedPendulum-v5" else set())
    assert get_task(env).features() == expected


@pytest.mark.parametrize("env_id", IDS)
def test_state_follows_the_documented_observation_layout(env_id: str) -> None:
    env = gym.wrappers.RecordEpisodeStatistics(
        gym.wrappers.TransformObservation(_make(env_id), lambda o: o, None)
    )
    env.reset(seed=3)
    for _ in range(5):
        obs = env.step(env.action_space.sample())[0]
    task = get_task(env)
    state = task.state()
    assert list(state) == [v.name for v in task.state_variables]
    for var in task.state_variables:
        assert state[var.name].shape == var.shape, var.name
    observed = [v.name for v in task.state_variables if not v.privileged]
    if env_id == "Humanoid-v5":  # qpos[2:], then qvel; the rest (cinert, ...) is not listed
        angles = [n for n in observed if n.endswith(("_angle", "_angles"))]
        qpos = ["torso_position", "torso_quat", *angles]
        qvel = ["torso_velocity", "torso_angular_velocity", "joint_velocities"]
        values = np.concatenate([np.atleast_1d(state[n]) for n in [*qpos, *qvel]])[2:]
        np.testing.assert_array_equal(values, obs[:45])
    else:  # every observed variable, in order (Hopper's health flag follows them)
        names = [n for n in observed if n != "is_healthy"]
        np.testing.assert_array_equal([state[n] for n in names], obs)
    assert task.goal and task.baseline and task.negatives and task.description


def test_tasks_without_an_expert_say_so() -> None:
    for env_id in ("Hopper-v5", "HalfCheetah-v5", "Humanoid-v5"):
        with pytest.raises(MissingTaskFeature, match=f"{env_id}'s task has no expert"):
            expert_policy(_make(env_id))


def test_inverted_pendulum_expert_balances_until_the_time_limit() -> None:
    env = _make("InvertedPendulum-v5", max_episode_steps=300)
    act = expert_policy(env)
    for seed in range(2):
        infos, terminated = _episode(env, act, seed)
        assert not terminated and len(infos) == 301
        assert all(i["is_success"] and i["progress"] == 1.0 for i in infos)


@pytest.mark.parametrize("policy", ["random", "idle"])
def test_inverted_pendulum_falls_without_the_expert(policy: str) -> None:
    env = _make("InvertedPendulum-v5")
    act = _random(env) if policy == "random" else (lambda obs: get_task(env).env.idle_action())
    for seed in range(3):
        infos, terminated = _episode(env, act, seed)
        # Hostile: the failure terminal is never a success, whatever came before it.
        assert terminated and not infos[-1]["is_success"] and infos[-1]["progress"] == 0.0
        assert infos[0]["is_success"]  # it starts upright


def test_inverted_pendulum_success_band() -> None:
    env = _make("InvertedPendulum-v5")
    env.reset(seed=0)
    band = InvertedPendulum.upright_fraction * 0.2
    _set_qpos(env, hinge=-band)
    assert _task_info(env) == (True, 1.0)
    _set_qpos(env, hinge=0.15)
    assert _task_info(env) == (False, pytest.approx(0.5))


def test_hopper_success_needs_the_distance_and_health() -> None:
    env = _make("Hopper-v5")
    env.reset(seed=0)
    target = Hopper.target_distance
    _set_qpos(env, rootx=target / 2)
    assert _task_info(env) == (False, pytest.approx(0.5))
    _set_qpos(env, rootx=target + 0.1)
    assert _task_info(env) == (True, 1.0)
    # Hostile: past the distance but fallen (torso too low to be healthy).
    _set_qpos(env, rootx=target + 0.1, rootz=0.5)
    assert _task_info(env)[0] is False
    for policy in (_random(env), lambda obs: get_task(env).env.idle_action()):
        infos, terminated = _episode(env, policy, seed=1)
        assert terminated and not infos[-1]["is_success"]


def test_half_cheetah_on_its_back_is_no_success() -> None:
    env = _make("HalfCheetah-v5")
    env.reset(seed=0)
    target = HalfCheetah.target_distance
    _set_qpos(env, rootx=target)
    assert _task_info(env) == (True, 1.0)
    _set_qpos(env, rootx=target, rooty=math.pi)  # flipped, the known exploit of its reward
    assert _task_info(env) == (False, 1.0)
    infos, _ = _episode(_make("HalfCheetah-v5", max_episode_steps=100), _random(env), seed=0)
    assert not any(i["is_success"] for i in infos) and infos[-1]["progress"] < 0.01


def _kneel(env: gym.Env[Any, Any], lift: float = 0.0, tilt: float = 0.0) -> None:
    """A kneel (knees bent 120 degrees, thighs vertical) with the knees ``lift`` m off the
    floor, the whole body pitched ``tilt`` rad about the knees' axis."""
    inner: Any = env.unwrapped
    half = tilt / 2
    _set_qpos(env, right_knee=-2.1, left_knee=-2.1)
    qpos = inner.data.qpos.copy()
    qpos[3:7] = (math.cos(half), 0.0, math.sin(half), 0.0)
    inner.set_state(qpos, np.zeros(inner.model.nv))
    knee = min(inner.data.body("right_shin").xpos[2], inner.data.body("left_shin").xpos[2])
    qpos[2] -= knee - 0.05 - lift
    inner.set_state(qpos, np.zeros(inner.model.nv))


def test_humanoid_kneeling_success_and_progress() -> None:
    env = _make("Humanoid-v5")
    env.reset(seed=0)
    assert _task_info(env) == (False, 0.0)  # standing at the start
    _kneel(env)
    assert _task_info(env) == (True, 1.0)
    state = get_task(env).state()
    assert 0.78 <= state["torso_position"][2] <= 0.95
    assert min(state["knee_heights"]) == pytest.approx(0.05) and max(state["knee_heights"]) < 0.06
    # Placed on its knees without torque it stays kneeling a few steps before it topples.
    idle = get_task(env).env.idle_action()
    assert all(env.step(idle)[-1]["is_success"] for _ in range(5))


@pytest.mark.parametrize(
    ("case", "lift", "tilt", "speed"),
    [
        ("kneeling in the air", 0.3, 0.0, 0.0),
        ("losing balance", 0.0, 1.0, 0.0),
        ("falling through the pose", 0.0, 0.0, 3.0),
    ],
)
def test_humanoid_near_kneels_are_no_success(
    case: str, lift: float, tilt: float, speed: float
) -> None:
    env = _make("Humanoid-v5")
    env.reset(seed=0)
    _kneel(env, lift=lift, tilt=tilt)
    inner: Any = env.unwrapped
    inner.set_state(inner.data.qpos.copy(), np.r_[0.0, 0.0, -speed, np.zeros(inner.model.nv - 3)])
    success, progress = _task_info(env)
    assert not success and progress < 1.0, case


def test_humanoid_collapse_is_never_a_kneel() -> None:
    # Without torque the humanoid drops through kneeling poses at about 3 m/s and ends lying.
    env = _make("Humanoid-v5", max_episode_steps=100)
    idle = get_task(env).env.idle_action()
    for seed in range(2):
        infos, _ = _episode(env, lambda obs: idle, seed)
        assert not any(i["is_success"] for i in infos) and infos[-1]["progress"] == 0.0


def test_humanoid_with_early_termination_warns_once() -> None:
    env = rewardlab.make("Humanoid-v5", terminate_when_unhealthy=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env.reset(seed=0)
        env.reset(seed=1)
    assert len(caught) == 1
    assert "terminate_when_unhealthy=False" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _make("Humanoid-v5").reset(seed=0)
        rewardlab.make("Humanoid-v5").reset(seed=0)  # the task's default: no such termination
    infos, terminated = _episode(env, _random(env), seed=0)  # a fall ends it: no success
    assert terminated and not infos[-1]["is_success"]


def test_humanoid_lists_vlm_rm_prompts() -> None:
    assert Humanoid.VLM_RM_GOALS["kneeling"] == Humanoid.goal == "a humanoid robot kneeling"
    assert Humanoid.baseline == "a humanoid robot"
    assert len(Humanoid.VLM_RM_GOALS) == 8


@pytest.mark.parametrize("env_id", ["InvertedPendulum-v5", "Humanoid-v5"])
def test_frames_come_at_the_tasks_size(env_id: str) -> None:
    adapter = {"InvertedPendulum-v5": InvertedPendulum, "Humanoid-v5": Humanoid}[env_id]
    env = _make(env_id, render_mode="rgb_array", **adapter.render_kwargs)
    env.reset(seed=0)
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.shape == (224, 224, 3) and frame.std() > 0
    env.close()


def test_rendering_then_training_in_one_process() -> None:
    # Mesa's EGL, opened by the first frame, and triton, imported by torch's first optimizer,
    # each load an LLVM: in that order the process crashed (see _MujocoTask.wrap).
    code = (
        "import rewardlab, torch\n"
        "env = rewardlab.make('InvertedPendulum-v5', render_mode='rgb_array')\n"
        "env.reset(seed=0)\n"
        "env.render()\n"
        "torch.optim.Adam([torch.zeros(2, requires_grad=True)])\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")
