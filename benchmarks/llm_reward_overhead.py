"""What running a reward program in the sandbox costs per vector step, against the same
function run natively in-process.

    pip install -e ".[bench]"
    python benchmarks/llm_reward_overhead.py   # writes benchmarks/results/llm_reward_overhead.json
    python benchmarks/llm_reward_overhead.py --quick  # smoke run

For one task per family, 8 sub-envs in a ``DummyVecEnv`` (random actions, the same sequence
for both, resets included), the task's reference reward program
(``rewardlab/assets/reward_programs``):

- ``sandboxed``: ``{model: {kind: program, path: reference}}`` through
  :func:`~rewardlab.make_vec_env`: validated, run in a separate worker
  process with resource limits, output guards and statistics;
- ``native``: the same ``compute_reward`` compiled in this process, as a reward model reading
  the same ``info["state/<name>"]`` keys and passing on the same components (so both pay for
  capturing the state and for reporting the components; only the process boundary, the
  guards and the statistics differ).

The two settings are interleaved, best of ``--repeats``. Target: sandboxed / native <= 1.3.
Then the same two settings in a whole PPO run (per-env default hyperparameters, one torch
thread, ``--train-steps`` after a one-rollout warm-up), env steps/s: what the sandbox costs
training. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import rewardlab
from rewardlab.reward_models.base import RewardBatch, RewardModel, RewardOutput
from rewardlab.reward_models.program_reward import reference_program
from rewardlab.reward_spec import parse_reward
from rewardlab.vec import make_vec_env

ENVS = ["rewardlab/GridKeyDoor-v0", "rewardlab/ManipPush-v0", "rewardlab/DriveHighway-v0"]
N_ENVS = 8


class NativeProgram(RewardModel):
    """A trusted reward program run in this process: what ProgramReward does, unsandboxed."""

    def __init__(self, source: str) -> None:
        namespace: dict[str, Any] = {"np": np, "math": math}
        exec(compile(source, "<reference>", "exec"), namespace)  # our own reference program
        self.fn = namespace["compute_reward"]
        self.params = list(inspect.signature(self.fn).parameters)
        self.needs_info = tuple(f"state/{p}" for p in self.params)

    def __call__(self, batch: RewardBatch) -> RewardOutput:
        reward, components = self.fn(**{p: batch.info[f"state/{p}"] for p in self.params})
        return RewardOutput(np.asarray(reward, dtype=np.float64), components)


def native_model(source: str) -> NativeProgram:
    return NativeProgram(source)


def actions(env_id: str, steps: int) -> list[np.ndarray]:
    space = gym.make(env_id).action_space
    space.seed(0)
    return [np.stack([np.asarray(space.sample()) for _ in range(N_ENVS)]) for _ in range(steps)]


def time_run(venv: Any, plan: list[np.ndarray]) -> float:
    venv.reset()
    start = time.perf_counter()
    for a in plan:
        venv.step(a)
    return (time.perf_counter() - start) / len(plan)


def bench(env_id: str, steps: int, repeats: int) -> dict[str, Any]:
    task = rewardlab.get_task(gym.make(env_id)).name
    sandboxed = make_vec_env(
        env_id, reward=parse_reward("program"), n_envs=N_ENVS, seed=0, gamma=0.99
    )
    native = rewardlab.make_vec_env(env_id, N_ENVS, reward=native_model(reference_program(task)))
    bare = rewardlab.make_vec_env(env_id, N_ENVS)
    plan = actions(env_id, steps)
    best = {"sandboxed": math.inf, "native": math.inf, "bare": math.inf}
    for _ in range(repeats):
        for name, venv in (("sandboxed", sandboxed), ("native", native), ("bare", bare)):
            best[name] = min(best[name], time_run(venv, plan))
    for venv in (sandboxed, native, bare):
        venv.close()
    return {
        "env": env_id,
        "task": task,
        "n_envs": N_ENVS,
        **{f"{k}_us_per_step": v * 1e6 for k, v in best.items()},
        "sandboxed_over_native": best["sandboxed"] / best["native"],
        "sandbox_us_per_call": (best["sandboxed"] - best["native"]) * 1e6,
    }


def train_rate(env_id: str, native: bool, steps: int) -> float:
    """Env steps/s of ``PPO.learn(steps)`` with the reference program, native or sandboxed."""
    import torch

    from rewardlab.agents.factory import load_hyperparams, make_agent

    torch.set_num_threads(1)
    params = load_hyperparams("ppo", env_id)
    n_envs = params["n_envs"]
    if native:
        task = rewardlab.get_task(gym.make(env_id)).name
        venv = rewardlab.make_vec_env(env_id, n_envs, reward=native_model(reference_program(task)))
    else:
        venv = make_vec_env(
            env_id, reward=parse_reward("program"), n_envs=n_envs, seed=0, gamma=0.99
        )
    try:
        agent = make_agent("ppo", venv, params, seed=0, device="cpu")
        rollout = n_envs * params["n_steps"]
        agent.learn(rollout)
        start = time.perf_counter()
        agent.learn(steps, reset_num_timesteps=False)
        return (agent.num_timesteps - rollout) / (time.perf_counter() - start)
    finally:
        venv.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--envs", nargs="+", default=ENVS, metavar="ID", help="env ids (default: %(default)s)"
    )
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "llm_reward_overhead.json")
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats, args.train_steps = 100, 1, 1000
    rows = []
    for env_id in args.envs:
        row = bench(env_id, args.steps, args.repeats)
        row["train_native_steps_per_s"] = train_rate(env_id, True, args.train_steps)
        row["train_sandboxed_steps_per_s"] = train_rate(env_id, False, args.train_steps)
        row["train_native_over_sandboxed"] = (
            row["train_native_steps_per_s"] / row["train_sandboxed_steps_per_s"]
        )
        rows.append(row)
        print(
            f"{env_id:<28} bare {row['bare_us_per_step']:8.0f} us  native "
            f"{row['native_us_per_step']:8.0f} us  sandboxed {row['sandboxed_us_per_step']:8.0f} "
            f"us  ratio {row['sandboxed_over_native']:.2f}x; PPO "
            f"{row['train_native_steps_per_s']:,.0f} vs {row['train_sandboxed_steps_per_s']:,.0f} "
            f"steps/s ({row['train_native_over_sandboxed']:.2f}x)"
        )
    if not args.quick:
        result = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "rows": rows,
        }
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
