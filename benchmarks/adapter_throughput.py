"""Step cost of third-party envs through rewardlab's task adapters, beside the bare env.

    pip install -e ".[thirdparty]"
    python benchmarks/adapter_throughput.py    # writes benchmarks/results/adapter_throughput.json

For each env with a shipped adapter whose package is installed, ``gym.make(id)`` (bare) and
``rewardlab.make(id)`` (the adapter's wrappers and :class:`~rewardlab.envs.tasks.TaskInfo`,
which computes success and progress every step) are stepped through the same seeded random
actions, resets included, without rendering. Both are built with the same keywords (the
adapter's ``make_defaults`` are given to the bare env too). Rounds alternate between the two so
that machine noise hits both; the ratio is of the medians of per-step time. The target
(issue 15) is a ratio <= 1.05.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import rewardlab  # noqa: E402
from rewardlab.envs.tasks import _lookup, resolve_env_id  # noqa: E402

# (env id, gym.make keywords, package it needs or None)
ENVS: list[tuple[str, dict[str, Any], str | None]] = [
    ("CartPole-v1", {}, None),
    ("MountainCar-v0", {}, None),
    ("Pendulum-v1", {}, None),
    ("InvertedPendulum-v5", {}, "mujoco"),
    ("Hopper-v5", {}, "mujoco"),
    ("Humanoid-v5", {}, "mujoco"),
    ("MiniGrid-DoorKey-8x8-v0", {}, "minigrid"),
    ("highway-fast-v0", {}, "highway_env"),
    ("FetchPush-v4", {}, "gymnasium_robotics"),
    ("Meta-World/MT1", {"env_name": "reach-v3"}, "metaworld"),
]


def _run(env: gym.Env, actions: list[Any], seed: int) -> float:
    """Seconds per step over ``actions``, resets included."""
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return (time.perf_counter() - start) / len(actions)


def measure(
    env_id: str, kwargs: dict[str, Any], steps: int, rounds: int, seed: int = 0
) -> dict[str, Any]:
    env_id = resolve_env_id(env_id)
    entry = _lookup(env_id)
    assert entry is not None, env_id
    defaults = dict(entry.adapter_class().make_defaults)
    bare = gym.make(env_id, **{**defaults, **kwargs})
    ours = rewardlab.make(env_id, **kwargs)
    bare.action_space.seed(seed)
    actions = [bare.action_space.sample() for _ in range(steps)]
    _run(bare, actions[: steps // 10], seed)  # warm up both (imports, caches, JIT of numpy)
    _run(ours, actions[: steps // 10], seed)
    times: dict[str, list[float]] = {"bare": [], "rewardlab": []}
    for r in range(rounds):
        order = [("bare", bare), ("rewardlab", ours)]
        for name, env in order if r % 2 == 0 else order[::-1]:
            times[name].append(_run(env, actions, seed + r))
    bare.close()
    ours.close()
    b, o = statistics.median(times["bare"]), statistics.median(times["rewardlab"])
    return {
        "env": env_id,
        "kwargs": kwargs,
        "bare_us": b * 1e6,
        "rewardlab_us": o * 1e6,
        "ratio": o / b,
        "added_us": (o - b) * 1e6,
        "rounds_us": {k: [round(t * 1e6, 2) for t in v] for k, v in times.items()},
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| env | bare step (us) | through the adapter (us) | added (us) | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = r["env"] + (f" ({r['kwargs']['env_name']})" if "env_name" in r["kwargs"] else "")
        lines.append(
            f"| {name} | {r['bare_us']:.1f} | {r['rewardlab_us']:.1f} | {r['added_us']:+.1f} | "
            f"{r['ratio']:.3f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000, help="steps per round")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--env", action="append", help="only these ids")
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "adapter_throughput.json")
    )
    args = parser.parse_args()
    rows = []
    for env_id, kwargs, package in ENVS:
        if args.env and env_id not in args.env:
            continue
        if package is not None and importlib.util.find_spec(package) is None:
            print(f"{env_id}: skipped ({package} is not installed)", file=sys.stderr)
            continue
        steps = args.steps // 10 if env_id.startswith(("highway", "Humanoid")) else args.steps
        rows.append(measure(env_id, kwargs, steps, args.rounds))
        print(f"{env_id}: {rows[-1]['ratio']:.3f}x", file=sys.stderr)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(table(rows))


if __name__ == "__main__":
    main()
