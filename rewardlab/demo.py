"""Roll out each task's scripted expert and save what it sees as an image strip.

The README's first command runs this (``rewardlab demo``) as a smoke test of a fresh install:
every family builds, steps, renders headless and is solved by its expert.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rewardlab.envs import expert_policy

DEFAULT_DEMO_IDS = (
    "rewardlab/GridKeyDoor-v0",
    "rewardlab/ManipPush-v0",
    "rewardlab/DriveHighway-v0",
)


@dataclass(frozen=True)
class DemoResult:
    """What one expert rollout did, and where its image strip was written."""

    env_id: str
    steps: int
    episode_return: float
    success: bool
    strip_path: Path


def image_strip(frames: list[np.ndarray], n_frames: int = 6, gap: int = 4) -> np.ndarray:
    """Tile ``n_frames`` evenly spaced frames (first and last included) left to right."""
    if not frames:
        raise ValueError("image_strip needs at least one frame")
    picks = np.unique(np.linspace(0, len(frames) - 1, num=min(n_frames, len(frames))).round())
    spacer = np.full((frames[0].shape[0], gap, 3), 255, dtype=np.uint8)
    tiles = [tile for i in picks.astype(int) for tile in (frames[i], spacer)]
    return np.concatenate(tiles[:-1], axis=1)


def _frame(env: gym.Env[Any, Any]) -> np.ndarray:
    frame = env.render()
    assert isinstance(frame, np.ndarray), "rgb_array render mode returns an array"
    return frame


def run_demo(
    env_id: str, out_dir: Path, seed: int = 0, width: int = 224, height: int = 224
) -> DemoResult:
    """Roll out the expert for one episode of ``env_id`` and write ``<out_dir>/<name>.png``."""
    import cv2  # imported here so that `import rewardlab` stays cheap

    env = gym.make(env_id, render_mode="rgb_array", render_width=width, render_height=height)
    act = expert_policy(env)
    obs, info = env.reset(seed=seed)
    frames: list[np.ndarray] = [_frame(env)]
    episode_return, steps, success, done = 0.0, 0, info["is_success"], False
    while not done:
        obs, reward, terminated, truncated, info = env.step(act(obs))
        frames.append(_frame(env))
        episode_return += float(reward)
        steps += 1
        success = success or info["is_success"]
        done = terminated or truncated
    env.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / (env_id.split("/")[-1] + ".png")
    strip = image_strip(frames)
    if not cv2.imwrite(str(path), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return DemoResult(env_id, steps, episode_return, bool(success), path)
