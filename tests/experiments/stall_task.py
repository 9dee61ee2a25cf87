"""A task module for the cancellation tests (imported by workers through ``task_modules``):
a line walk whose steps can be slowed down, and whose training fails on one seed.

Keywords: ``delay_s`` (sleep per step; with ``slow_seed``, only in an env first reset with
that seed) and ``fail_seed`` (an env first reset with this seed raises ``RuntimeError`` on its
20th step).
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np

import rewardlab

ID = "rewardlab_tests/StallWalk-v0"


class StallWalkEnv(gym.Env[np.ndarray, int]):
    def __init__(
        self, delay_s: float = 0.0, slow_seed: int | None = None, fail_seed: int = -1
    ) -> None:
        self.delay_s, self.slow_seed, self.fail_seed, self.length = delay_s, slow_seed, fail_seed, 5
        self.slow = slow_seed is None
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(3)
        self.pos, self.steps, self.failing = 0, 0, False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self.failing = seed == self.fail_seed
            self.slow = self.slow_seed is None or seed == self.slow_seed
        self.pos = 0
        return np.array([0.0], dtype=np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.steps += 1
        if self.failing and self.steps >= 20:
            raise RuntimeError("the stall walk fails on purpose")
        if self.slow:
            time.sleep(self.delay_s)
        self.pos = int(np.clip(self.pos + int(action) - 1, 0, self.length - 1))
        at_goal = self.pos == self.length - 1
        obs = np.array([self.pos / (self.length - 1)], dtype=np.float32)
        return obs, float(at_goal), at_goal, False, {"at_goal": at_goal}


if ID not in gym.registry:
    gym.register(ID, entry_point=StallWalkEnv, max_episode_steps=20)
rewardlab.register_task(
    ID,
    goal="the right end of the line",
    success="at_goal",
    progress=lambda env: env.pos / (env.length - 1),
    replace=True,
)
