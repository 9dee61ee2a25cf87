"""CaptureState: state variables in the info, through make_vec, before any auto-reset."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import SubprocVecEnv

import rewardlab
from rewardlab.reward_models.compose import FunctionReward
from rewardlab.wrappers.state import CaptureState

ENV_ID = "rewardlab/GridEmpty-v0"


def distance_reward() -> FunctionReward:
    def fn(batch):  # noqa: ANN001, ANN202
        gap = batch.info["state/goal_pos"] - batch.info["state/agent_pos"]
        return -np.abs(gap).sum(axis=1).astype(np.float64)

    return FunctionReward(fn, needs_info=("state/agent_pos", "state/goal_pos"))


def test_unknown_variable_names_the_declared_ones() -> None:
    with pytest.raises(ValueError, match="agent_pos"):
        CaptureState(gym.make(ENV_ID), names=("agent_position",))


@pytest.mark.parametrize("vec_env_cls", [None, SubprocVecEnv])
def test_make_vec_adds_it_when_a_model_reads_state(vec_env_cls) -> None:  # noqa: ANN001
    kwargs = {} if vec_env_cls is None else {"vec_env_cls": vec_env_cls}
    venv = rewardlab.make_vec_env(ENV_ID, n_envs=2, reward=distance_reward(), seed=3, **kwargs)
    ref = gym.make(ENV_ID)
    act = rewardlab.expert_policy(ref)
    obs = venv.reset()
    ref_obs, _ = ref.reset(seed=3)
    done = False
    while not done:  # sub-env 0 follows the expert of a twin env with the same seed
        a = act(ref_obs)
        ref_obs, _, terminated, truncated, _ = ref.step(a)
        obs, rewards, dones, infos = venv.step(np.array([a, 0]))
        state = rewardlab.get_task(ref).state()
        expected = -np.abs(state["goal_pos"] - state["agent_pos"]).sum()
        assert rewards[0] == expected
        # On the terminal step the info holds the goal state, not the next episode's start.
        assert np.array_equal(infos[0]["state/agent_pos"], state["agent_pos"])
        done = bool(dones[0])
    assert rewards[0] == 0.0  # the last state is the goal
    venv.close()
