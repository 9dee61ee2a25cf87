"""Gridworld steps per second against Minigrid, both through ``gym.make``, in the same run.

Each rewardlab layout is matched with the Minigrid task it is modelled on (same grid size
except FourRooms: Minigrid's is 19x19, ours 13x13). Random actions, resets included, the
default wrappers of ``gym.make`` on both sides. With rendering, every step also calls
``render()`` for an RGB frame of about 224x224: ours at exactly 224x224, Minigrid's at
``tile_size = round(224 / grid side)`` (224 px for the 8x8 grids, 225 for LavaCrossing,
228 for FourRooms), with its default agent-view highlighting.

Run ``python benchmarks/throughput_gridworld.py``.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np

import rewardlab  # noqa: F401  (registers the rewardlab ids)

# (ours, Minigrid peer, peer's grid side)
PAIRS = [
    ("rewardlab/GridEmpty-v0", "MiniGrid-Empty-8x8-v0", 8),
    ("rewardlab/GridFourRooms-v0", "MiniGrid-FourRooms-v0", 19),
    ("rewardlab/GridKeyDoor-v0", "MiniGrid-DoorKey-8x8-v0", 8),
    ("rewardlab/GridLavaCrossing-v0", "MiniGrid-LavaCrossingS9N1-v0", 9),
]


def _steps_per_s(env: gym.Env[Any, Any], n_steps: int, render: bool) -> float:
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(n_steps)]
    env.reset(seed=0)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if render:
            env.render()
        if terminated or truncated:
            env.reset()
    return n_steps / (time.perf_counter() - start)


def measure(n_steps: int = 20_000, n_render_steps: int | None = None) -> list[dict[str, Any]]:
    """Steps per second of every matched pair, without and with 224x224 rendering.

    Args:
        n_steps: Steps per env without rendering.
        n_render_steps: Steps per env with rendering (default ``n_steps // 5``: Minigrid
            renders a few hundred frames per second).
    """
    n_render = n_steps // 5 if n_render_steps is None else n_render_steps
    import minigrid  # noqa: F401  (registers the MiniGrid ids)

    rows: list[dict[str, Any]] = []
    for ours, peer, side in PAIRS:
        for render in (False, True):
            mode = "rgb_array" if render else None
            for env_id, is_peer in ((ours, False), (peer, True)):
                kwargs: dict[str, Any] = {"render_mode": mode}
                if is_peer and render:
                    kwargs["tile_size"] = round(224 / side)
                env = gym.make(env_id, **kwargs)
                rate = _steps_per_s(env, n_render if render else n_steps, render)
                env.close()
                rows.append(
                    {
                        "family": "gridworld",
                        "match": f"task: {peer}",
                        "env": env_id,
                        "peer": is_peer,
                        "render": render,
                        "steps_per_s": rate,
                    }
                )
    return rows


def _ratios(rows: list[dict[str, Any]]) -> list[tuple[str, bool, float]]:
    rate = {(r["env"], r["render"]): r["steps_per_s"] for r in rows}
    return [
        (ours, render, rate[ours, render] / rate[peer, render])
        for ours, peer, _ in PAIRS
        for render in (False, True)
    ]


if __name__ == "__main__":
    results = measure()
    for row in results:
        print(row)
    for ours, render, ratio in _ratios(results):
        print(f"{ours:34s} render={render!s:5s} {ratio:6.1f}x Minigrid")
    all_ratios = np.array([r for *_, r in _ratios(results)])
    geo_mean = np.exp(np.log(all_ratios).mean())
    print(f"min ratio {all_ratios.min():.1f}x, geometric mean {geo_mean:.1f}x")
