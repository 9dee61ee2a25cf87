"""What learning rewards from preferences costs: the online loop on a PPO run, and fitting
1,000 labelled pairs.

    python benchmarks/online_overhead.py           # writes benchmarks/results/online_overhead.json
    python benchmarks/online_overhead.py --quick   # smoke run (~1 min): fewer steps, 1 repeat

Two parts, timings in the same run (they depend on the machine; ratios much less so). Nothing
here asserts a time.

(a) Online loop overhead: ``PPO`` on ``rewardlab/GridEmpty-v0`` with rewardlab's hyperparameters
    for it (16 envs x 32 steps), ``--steps`` env steps, trained (i) on the env's own reward
    through :func:`rewardlab.make_vec_env` and the agent factory, (i') on a fixed ensemble of
    3 learned state rewards paid as the loop pays them (the reward's own cost, no loop), and
    (ii) by
    :func:`rewardlab.learned.online.learn_online`: the same agent, envs and steps, paid the
    ensemble's mean learned reward (3 members, state inputs), its trajectories recorded, and
    ``--budget`` synthetic labels queried by disagreement and refit every ``--refit-every``
    steps. Reported: the wall time of ``agent.learn`` (ii) / (i) and (ii) / (i'), best of
    ``--repeats``
    interleaved, and the share of (ii) spent refitting. The loop's files (segments, checkpoint,
    report) and the final evaluation are not timed (``judge=False``, no evaluation episodes).

(b) Fitting 1,000 labelled pairs: ``fit_preferences`` on 1,000 synthetic progress preferences
    between 5-transition segments of a GridEmpty dataset, state inputs, an MLP (64, 64), 40
    epochs (``learn-reward``'s default), batches of 64, ensemble of 1 and of 3; best of
    ``--repeats``.

Torch runs on ``--threads`` CPU threads (default 1: the agent's MLP and the reward nets are
small; more threads mostly add overhead).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import rewardlab
from rewardlab.agents.factory import load_hyperparams, make_agent
from rewardlab.evaluation.datasets import DatasetConfig, generate_dataset
from rewardlab.learned.online import SIGNAL_KEYS, EnsembleReward, learn_online
from rewardlab.learned.preferences import (
    SyntheticOracle,
    fit_preferences,
    label_pairs,
    sample_segments,
    task_values,
)
from rewardlab.learned.reward_net import Normalization, RewardNetConfig, build_reward_net

ENV = "rewardlab/GridEmpty-v0"


def plain_ppo(steps: int, seed: int, learned: bool = False) -> float:
    """Seconds of ``agent.learn`` for PPO on the env's own reward, or (``learned``) on a fixed
    ensemble of 3 learned state rewards paid as the online loop pays them, without the loop."""
    params = load_hyperparams("ppo", ENV)
    n_envs = int(params["n_envs"])
    reward = None
    if learned:
        with rewardlab.make(ENV) as env:
            task = rewardlab.get_task(env)
            layout = tuple((v.name, tuple(v.shape)) for v in task.state_variables)
        config = RewardNetConfig(inputs="state", state_layout=layout, hidden=(64, 64))
        reward = EnsembleReward(config, SIGNAL_KEYS["progress"])
        reward.update([build_reward_net(config) for _ in range(3)], Normalization())
    venv = rewardlab.make_vec_env(ENV, n_envs, reward, seed=seed * n_envs)
    try:
        agent = make_agent("ppo", venv, params, seed=seed, device="cpu")
        venv.seed(seed * n_envs)
        start = time.perf_counter()
        agent.learn(steps)
        return time.perf_counter() - start
    finally:
        venv.close()


def online_ppo(steps: int, budget: int, refit_every: int, seed: int) -> dict[str, float]:
    """``agent.learn``'s seconds with the online loop, and the seconds spent refitting."""
    with tempfile.TemporaryDirectory() as tmp:
        learn_online(
            ENV,
            Path(tmp) / "online",
            steps=steps,
            budget=budget,
            refit_every=refit_every,
            query="disagreement",
            ensemble=3,
            eval_episodes=0,
            judge=False,
            seed=seed,
        )
        summary = json.loads((Path(tmp) / "online" / "summary.json").read_text())
    return {
        "train_s": summary["train_wall_s"],
        "fit_s": summary["fit_wall_s"],
        "refits": summary["refits"],
        "labels": summary["labels_used"],
    }


def measure_online(steps: int, budget: int, refit_every: int, repeats: int) -> dict[str, Any]:
    plain, fixed, online = [], [], []
    for r in range(repeats):  # interleaved: drifts in machine load hit all three
        plain.append(plain_ppo(steps, seed=r))
        fixed.append(plain_ppo(steps, seed=r, learned=True))
        online.append(online_ppo(steps, budget, refit_every, seed=r))
        print(
            f"online loop, repeat {r + 1}/{repeats}: plain {plain[-1]:.1f} s, fixed learned "
            f"reward {fixed[-1]:.1f} s, online {online[-1]['train_s']:.1f} s (refits "
            f"{online[-1]['fit_s']:.1f} s)",
            file=sys.stderr,
        )
    best = min(online, key=lambda row: row["train_s"])
    return {
        "part": "online_loop",
        "env": ENV,
        "algo": "ppo",
        "steps": steps,
        "budget": budget,
        "refit_every": refit_every,
        "ensemble": 3,
        "query": "disagreement",
        "plain_s": min(plain),
        "online_s": best["train_s"],
        "refit_s": best["fit_s"],
        "refits": best["refits"],
        "labels": best["labels"],
        "fixed_learned_s": min(fixed),
        "ratio": best["train_s"] / min(plain),
        "ratio_to_fixed_learned": best["train_s"] / min(fixed),
        "refit_share": best["fit_s"] / best["train_s"],
        "all_plain_s": plain,
        "all_fixed_learned_s": fixed,
        "all_online_s": [row["train_s"] for row in online],
    }


def measure_fit(pairs: int, repeats: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        config = DatasetConfig(ENV, frames=False)
        ds = generate_dataset(config, Path(tmp) / "ds")
        rng = np.random.default_rng(0)
        segments = sample_segments(ds, 2 * pairs, 5, rng)
        labelled = label_pairs(
            ds,
            list(zip(segments[::2], segments[1::2], strict=True)),
            task_values(ds, "progress"),
            SyntheticOracle(tie_margin=1e-9),
            rng,
        )
        with rewardlab.make(ENV) as env:
            task = rewardlab.get_task(env)
            layout = tuple((v.name, tuple(v.shape)) for v in task.state_variables)
        net = RewardNetConfig(inputs="state", state_layout=layout, hidden=(64, 64))
        rows = []
        for ensemble in (1, 3):
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                fit_preferences(ds, labelled, net, ensemble=ensemble, epochs=40)
                times.append(time.perf_counter() - start)
            rows.append(
                {
                    "part": "fit",
                    "pairs": pairs,
                    "segment_length": 5,
                    "epochs": 40,
                    "ensemble": ensemble,
                    "seconds": min(times),
                    "pair_epochs_per_s": pairs * 40 * ensemble / min(times),
                    "all_seconds": times,
                }
            )
            print(f"fit {pairs} pairs, ensemble {ensemble}: {min(times):.2f} s", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("online", "fit"), action="append", help="default: both")
    parser.add_argument("--steps", type=int, default=50_000, help="PPO env steps per run")
    parser.add_argument("--budget", type=int, default=200, help="labels of the online loop")
    parser.add_argument("--refit-every", type=int, default=5_000, help="env steps per round")
    parser.add_argument("--pairs", type=int, default=1_000, help="labelled pairs to fit")
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting, best kept")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 16k steps, refit every 4k, 1 repeat"
    )
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "online_overhead.json")
    )
    args = parser.parse_args()
    parts = args.part or ["online", "fit"]
    steps, refit_every, repeats = args.steps, args.refit_every, args.repeats
    if args.quick:
        steps, refit_every, repeats = min(steps, 16_384), min(refit_every, 4_096), 1

    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "torch_threads": torch.get_num_threads(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "rows": [],
    }
    lines = []
    if "online" in parts:
        row = measure_online(steps, args.budget, refit_every, repeats)
        result["rows"].append(row)
        lines += [
            f"### Online preference loop on a PPO run (agent.learn wall time, best of {repeats})",
            "",
            "| env | steps | labels | refits | plain PPO s | fixed learned reward s "
            "| with the loop s | ratio to plain | ratio to fixed | refit share |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {ENV} | {row['steps']} | {row['labels']} | {row['refits']} | "
            f"{row['plain_s']:.1f} | {row['fixed_learned_s']:.1f} | {row['online_s']:.1f} | "
            f"{row['ratio']:.2f}x | {row['ratio_to_fixed_learned']:.2f}x | "
            f"{row['refit_share']:.0%} |",
        ]
    if "fit" in parts:
        fit_rows = measure_fit(args.pairs, repeats)
        result["rows"] += fit_rows
        lines += [
            "",
            f"### Fitting {args.pairs} labelled pairs (state inputs, MLP 64x64, 40 epochs)",
            "",
            "| ensemble | seconds | pair-epochs/s |",
            "|---:|---:|---:|",
        ]
        lines += [
            f"| {r['ensemble']} | {r['seconds']:.2f} | {r['pair_epochs_per_s']:,.0f} |"
            for r in fit_rows
        ]
    result["total_s"] = time.perf_counter() - t0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(lines))
    print(f"\ntotal {result['total_s']:.0f} s; wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
