"""An env with no task at all (neither rewardlab's nor registered): a CLIP reward with the
user's own prompts works; without prompts it says how to give them. (What other paths do on
such an env: tests/envs/test_tasks.py.)"""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import open_clip
import pytest

from rewardlab.wrappers.clip import CLIPReward
from tests.envs.line_walk import IDS

PLAIN = IDS[0]

TINY = "rewardlab-tiny-clip"
open_clip.add_model_config(Path(__file__).resolve().parent / "reward_models" / f"{TINY}.json")


def _plain() -> gym.Env:
    return gym.make(PLAIN, render_mode="rgb_array")


def test_a_clip_reward_on_another_env_takes_the_users_prompts() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # random weights warn
        env = CLIPReward(_plain(), TINY, None, device="cpu", goal="a white square at the right end",
                         head="cosine")  # fmt: skip
        env.reset(seed=0)
        reward = env.step(env.action_space.sample())[1]
        assert np.isfinite(reward)
        env.close()
        # The default head needs a baseline caption; no task supplies one here.
        with pytest.raises(ValueError, match="pass baseline=, or head='cosine'"):
            CLIPReward(_plain(), TINY, None, device="cpu", goal="a white square at the right end")
        with pytest.raises(TypeError, match=r"has no registered task.*pass the prompts: goal="):
            CLIPReward(_plain(), TINY, None, device="cpu")
