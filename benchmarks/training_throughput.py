"""PPO training throughput (env steps/s) with and without reward layers, per env family.

    pip install -e ".[dev]"
    python benchmarks/training_throughput.py          # writes results/training_throughput.json
    python benchmarks/training_throughput.py --quick  # smoke run

For one task per family, ``PPO.learn`` with the per-env default hyperparameters
(``rewardlab/agents/hyperparams/ppo.yml``) through the same builder ``rewardlab train`` uses
(:func:`rewardlab.make_vec_env`), timed after a warm-up ``learn``:

- ``env``: the env's own reward (the bare vector env with ``Monitor``);
- ``pbrs``: plus policy-invariant shaping on the ground-truth progress potential.

The ratio ``pbrs / env`` of env steps/s is what shaping costs a whole training run (target:
close to 1; the overhead per vector step is in ``reward_overhead.py``). With CUDA present, the
agent runs on the GPU too, and a third setting, ``pbrs_clip``, shapes with a CLIP ViT-B-32
potential (random weights: the same cost as pretrained ones) on the GPU from frames rendered at
224x224. Each setting trains in one process with one torch thread on CPU (as the comparison
runner's workers do). Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from rewardlab.agents.factory import load_hyperparams, make_agent
from rewardlab.reward_spec import parse_reward
from rewardlab.vec import make_vec_env

FAMILIES = {
    "gridworld": "rewardlab/GridKeyDoor-v0",
    "manipulation": "rewardlab/ManipPush-v0",
    "driving": "rewardlab/DriveHighway-v0",
}
STEPS = {"gridworld": 50_000, "manipulation": 20_000, "driving": 20_000}
CLIP = {
    "shaping": {
        "kind": "clip",
        "model": "ViT-B-32",
        "pretrained": None,
        "head": "goal_baseline",
        "options": {"alpha": 0.5},
    }
}


def measure(env_id: str, reward: Any, steps: int, device: str) -> dict[str, Any]:
    """Env steps/s of ``PPO.learn(steps)`` after a warm-up of one rollout."""
    params = load_hyperparams("ppo", env_id)
    venv = make_vec_env(
        env_id,
        reward=parse_reward(reward),
        n_envs=params["n_envs"],
        seed=0,
        gamma=params.get("gamma", 0.99),
    )
    try:
        agent = make_agent("ppo", venv, params, seed=0, device=device)
        rollout = params["n_envs"] * params["n_steps"]
        agent.learn(rollout)
        start = time.perf_counter()
        agent.learn(steps, reset_num_timesteps=False)
        elapsed = time.perf_counter() - start
        trained = agent.num_timesteps - rollout
    finally:
        venv.close()
    return {"env_steps": trained, "seconds": elapsed, "env_steps_per_s": trained / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1/10 of the steps")
    parser.add_argument("--no-cuda", action="store_true", help="skip the GPU settings")
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "training_throughput.json")
    )
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    torch.set_num_threads(1)
    torch.distributions.Distribution.set_default_validate_args(False)
    devices = ["cpu"]
    if torch.cuda.is_available() and not args.no_cuda:
        devices.append("cuda")
    rows = []
    for family, env_id in FAMILIES.items():
        steps = STEPS[family] // (10 if args.quick else 1)
        for device in devices:
            settings: dict[str, Any] = {"env": "env", "pbrs": "pbrs"}
            if device == "cuda":
                settings["pbrs_clip"] = {**CLIP, "shaping": {**CLIP["shaping"], "device": "cuda"}}
            base = None
            for name, reward in settings.items():
                row = {"family": family, "env": env_id, "device": device, "setting": name}
                row |= measure(env_id, reward, steps, device)
                base = base or row["env_steps_per_s"]
                row["ratio_vs_env"] = row["env_steps_per_s"] / base
                rows.append(row)
                print(
                    f"{family:<13} {device:<5} {name:<10} {row['env_steps_per_s']:>9,.0f} "
                    f"env steps/s  ({row['ratio_vs_env']:.3f}x env)",
                    flush=True,
                )
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if "cuda" in devices else None,
        },
        "command": "python benchmarks/training_throughput.py" + (" --quick" if args.quick else ""),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
