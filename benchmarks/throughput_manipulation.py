"""Manipulation steps per second against MuJoCo peers at equal physics substeps, same run.

Two pairs, each through ``gym.make`` with its default wrappers, random actions, resets
included:

- ``rewardlab/ManipPush-v0`` (5 substeps, its default) against Gymnasium's ``Pusher-v5``
  (``frame_skip=5``, its default);
- ``rewardlab/ManipPush-v0`` with ``frame_skip=20`` against Gymnasium-Robotics'
  ``FetchPush-v4`` (``n_substeps=20``, fixed by its constructor).

With rendering, every step also calls ``render()`` for a 224x224 ``rgb_array`` frame (peers:
``width=224, height=224``); ``ms_per_frame`` is the mean time spent inside ``render()``.
Each measurement is repeated, alternating ours and the peer, and the best run is kept, so
load from other processes on a shared machine penalizes neither side more than the other.

Run ``python benchmarks/throughput_manipulation.py``.
"""

from __future__ import annotations

import os
import time
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402

import rewardlab  # noqa: E402, F401  (registers the rewardlab ids)

OURS = "rewardlab/ManipPush-v0"
# (our kwargs, peer id, peer kwargs, physics substeps per env step on both sides)
PAIRS: list[tuple[dict[str, Any], str, dict[str, Any], int]] = [
    ({"frame_skip": 5}, "Pusher-v5", {"frame_skip": 5}, 5),
    ({"frame_skip": 20}, "FetchPush-v4", {}, 20),  # Fetch's n_substeps is fixed at 20
]


def _run(env: gym.Env[Any, Any], n_steps: int, render: bool) -> tuple[float, float | None]:
    """Steps per second (render calls included) and mean ms per rendered frame."""
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(n_steps)]
    env.reset(seed=0)
    if render:
        env.render()  # create the GL context outside the timed loop
    render_time = 0.0
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if render:
            t = time.perf_counter()
            env.render()
            render_time += time.perf_counter() - t
        if terminated or truncated:
            env.reset()
    rate = n_steps / (time.perf_counter() - start)
    return rate, (1000.0 * render_time / n_steps if render else None)


def measure(
    n_steps: int = 5_000, n_render_steps: int | None = None, repeats: int = 3
) -> list[dict[str, Any]]:
    """Steps per second of each pair, without and with 224x224 rendering.

    Args:
        n_steps: Steps per env and repeat without rendering.
        n_render_steps: Steps per env and repeat with rendering (default ``n_steps // 25``:
            the peers render at tens of frames per second on software OpenGL).
        repeats: Alternating repetitions; each row reports the fastest.
    """
    n_render = n_steps // 25 if n_render_steps is None else n_render_steps
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    rows: list[dict[str, Any]] = []
    for our_kwargs, peer, peer_kwargs, substeps in PAIRS:
        for render in (False, True):
            mode = "rgb_array" if render else None
            sides: list[tuple[str, dict[str, Any], bool]] = [
                (OURS, dict(our_kwargs), False),
                (peer, dict(peer_kwargs), True),
            ]
            best: dict[bool, tuple[float, float | None]] = {}
            for _ in range(repeats):
                for env_id, kwargs, is_peer in sides:
                    if render:
                        kwargs |= (
                            {"width": 224, "height": 224}
                            if is_peer
                            else {"render_width": 224, "render_height": 224}
                        )
                    env = gym.make(env_id, render_mode=mode, **kwargs)
                    rate, ms = _run(env, n_render if render else n_steps, render)
                    env.close()
                    if is_peer not in best or rate > best[is_peer][0]:
                        best[is_peer] = (rate, ms)
            for env_id, _, is_peer in sides:
                rate, ms = best[is_peer]
                rows.append(
                    {
                        "family": "manipulation",
                        "match": f"{substeps} substeps",
                        "env": env_id if is_peer else f"{env_id} (frame_skip={substeps})",
                        "peer": is_peer,
                        "render": render,
                        "steps_per_s": rate,
                        "ms_per_frame": ms,
                        "substeps": substeps,
                    }
                )
    return rows


if __name__ == "__main__":
    results = measure()
    for row in results:
        print(row)
    for i in range(0, len(results), 2):
        ours, peer = results[i], results[i + 1]
        frame = (
            f", {ours['ms_per_frame']:.2f} vs {peer['ms_per_frame']:.2f} ms/frame"
            if ours["render"]
            else ""
        )
        print(
            f"{ours['substeps']:2d} substeps render={ours['render']!s:5s} "
            f"{ours['steps_per_s'] / peer['steps_per_s']:5.2f}x {peer['env']}{frame}"
        )
