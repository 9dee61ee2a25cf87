"""Step cost of third-party envs through rewardlab's task adapters, beside the bare env.

    pip install -e ".[thirdparty]"
    python benchmarks/adapter_throughput.py    # writes benchmarks/results/adapter_throughput.json

For each env with a shipped adapter whose package is installed, ``gym.make(id)`` (bare) and
``rewardlab.make(id)`` (the adapter's wrappers and :class:`~rewardlab.envs.tasks.TaskInfo`)
are stepped through the same seeded random actions, resets included, without rendering:
``TaskInfo`` computing success only (what a run that does not shape reads, and the true-task
evaluation) and success and progress (``rewardlab.make``'s default; what progress shaping
reads). All are built with the same keywords (the adapter's ``make_defaults`` are given to the
bare env too); where SB3 cannot take the bare env's observations, the bare env gets the wrapper
a user would add (Minigrid: ``ImgObsWrapper``). Rounds rotate the order so that machine noise
hits all; ratios are of the medians of per-step time. The target (issue 15) is a ratio
<= 1.05.
"""

from __future__ import annotations

import argparse
import importlib
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

# The wrapper a user needs around the bare env to train it with SB3 at all, where the adapter
# has one too (Minigrid's Dict observation holds the mission as text).
PEER_WRAPPERS = {"MiniGrid-DoorKey-8x8-v0": "minigrid.wrappers:ImgObsWrapper"}

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
    if env_id in PEER_WRAPPERS:
        module, _, name = PEER_WRAPPERS[env_id].partition(":")
        bare = getattr(importlib.import_module(module), name)(bare)
    envs = {
        "bare": bare,
        "success": rewardlab.make(env_id, info_keys=("is_success",), **kwargs),
        "success_progress": rewardlab.make(env_id, **kwargs),
    }
    space = envs["bare"].action_space
    space.seed(seed)
    actions = [space.sample() for _ in range(steps)]
    for env in envs.values():  # warm up (imports, caches)
        _run(env, actions[: steps // 10], seed)
    times: dict[str, list[float]] = {name: [] for name in envs}
    names = list(envs)
    for r in range(rounds):
        for name in names[r % 3 :] + names[: r % 3]:
            times[name].append(_run(envs[name], actions, seed + r))
    for env in envs.values():
        env.close()
    us = {name: statistics.median(t) * 1e6 for name, t in times.items()}
    return {
        "env": env_id,
        "kwargs": kwargs,
        "peer_wrapper": PEER_WRAPPERS.get(env_id),
        "bare_us": us["bare"],
        "success_us": us["success"],
        "success_progress_us": us["success_progress"],
        "ratio_success": us["success"] / us["bare"],
        "ratio_success_progress": us["success_progress"] / us["bare"],
        "rounds_us": {k: [round(t * 1e6, 2) for t in v] for k, v in times.items()},
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| env | bare step (us) | + success (us) | ratio | + success, progress (us) | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = r["env"] + (f" ({r['kwargs']['env_name']})" if "env_name" in r["kwargs"] else "")
        if r["peer_wrapper"]:
            name += f" (bare: {r['peer_wrapper'].rpartition(':')[2]})"
        lines.append(
            f"| {name} | {r['bare_us']:.1f} | {r['success_us']:.1f} | "
            f"{r['ratio_success']:.3f}x | {r['success_progress_us']:.1f} | "
            f"{r['ratio_success_progress']:.3f}x |"
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
        # Fewer steps where one costs a millisecond or more.
        slow = {"highway-fast-v0": 30, "Humanoid-v5": 5, "FetchPush-v4": 3}
        steps = args.steps // slow.get(env_id, 1)
        rows.append(measure(env_id, kwargs, steps, args.rounds))
        row = rows[-1]
        print(
            f"{env_id}: {row['ratio_success']:.3f}x, {row['ratio_success_progress']:.3f}x",
            file=sys.stderr,
        )
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
