"""A tiny env rewardlab has never seen (no task of its own), for the task-registry tests.

The agent walks a line of ``length`` cells from cell 0; the goal is the last cell. Actions:
0 left, 1 stay, 2 right. The env's own reward is -0.01 per step; reaching the goal terminates.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

IDS = (
    "rewardlab_tests/LineWalk-v0",  # never given a task (a test may, and then removes it)
    "rewardlab_tests/LineWalkTasks-v0",  # its task: tests/envs/line_walk_task.py
    "rewardlab_tests/LineWalkPattern-v0",  # for tasks registered by pattern
)


class LineWalkEnv(gym.Env[np.ndarray, int]):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, length: int = 6, render_mode: str | None = None) -> None:
        self.length = length
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(3)
        self.pos = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.pos / (self.length - 1)], dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.pos = int(self.np_random.integers(0, 2))
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.pos = int(np.clip(self.pos + int(action) - 1, 0, self.length - 1))
        at_goal = self.pos == self.length - 1
        return self._obs(), -0.01, at_goal, False, {"at_goal": at_goal}

    def render(self) -> np.ndarray:
        frame = np.zeros((8, 8 * self.length, 3), dtype=np.uint8)
        frame[:, 8 * self.pos : 8 * self.pos + 8] = 255
        return frame


for _id in IDS:
    if _id not in gym.registry:
        gym.register(_id, entry_point=LineWalkEnv, max_episode_steps=30)
