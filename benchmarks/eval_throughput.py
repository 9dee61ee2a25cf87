"""What judging rewards costs: a CLIP sweep with embedding reuse, and EPIC on 1e5 transitions.

    pip install -e ".[bench]"
    python benchmarks/eval_throughput.py           # writes benchmarks/results/eval_throughput.json
    python benchmarks/eval_throughput.py --quick   # smoke run: fewer frames and transitions

Three parts, each a ratio between paths measured in the same run. Nothing here asserts a time.

(a) A CLIP sweep over ``--points`` (head, options, prompt set) points on ``--frames``
    ``rewardlab/GridKeyDoor-v0`` frames at 224x224, ``ViT-B-32`` with random weights (the same
    cost as pretrained ones):

    - ``ours``: :class:`~rewardlab.evaluation.reward_tables.ModelCache`, as ``rewardlab
      eval-reward --sweep`` runs it: every frame is encoded once, each point scores the shared
      embeddings (a matrix product per point);
    - ``per point``: each point as its own reward model called on every frame
      (``CLIPRewardModel.__call__``), the way a loop over ``rewardlab train``-style reward specs
      would judge them: every point encodes every frame. The models share the loaded weights
      (``with_prompts``), so loading is not counted against this path.

    Reported in frame-scores per second (frames x points / time). Target: the reuse gives
    nearly ``points`` x.

(b) EPIC (sampled, :func:`~rewardlab.evaluation.reward_metrics.epic_distance`) between two rewards
    of a ~1e5-transition ``GridKeyDoor`` dataset of random and expert episodes, with 256
    coverage samples, against the direct canonicalization that evaluates the reward on
    ``(s', A_j, S'_j)`` and ``(s, A_j, S'_j)`` for every transition separately (``2 n M``
    evaluations, as a straightforward implementation of the formula does); plus the exact
    tabular EPIC and STARC on one layout.

(c) ``eval-reward`` on key-door (pbrs and progress, 4 episodes per kind) without the exact
    regret columns (:mod:`rewardlab.evaluation.regret`) and the bootstrap intervals
    (:mod:`rewardlab.evaluation.bootstrap`), with the regret columns, and with both. Target:
    at most 1.5x.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import rewardlab  # noqa: E402,F401
from rewardlab.evaluation import reward_metrics  # noqa: E402
from rewardlab.evaluation.dataset_metrics import dataset_table, tabular_setup  # noqa: E402
from rewardlab.evaluation.datasets import DatasetConfig, generate_dataset  # noqa: E402
from rewardlab.evaluation.reward_tables import ModelCache, StateTable, TermReward  # noqa: E402
from rewardlab.experiments.reward_eval import sweep_specs  # noqa: E402

ENV_ID = "rewardlab/GridKeyDoor-v0"


def _frames(n: int) -> np.ndarray:
    import gymnasium as gym

    env = gym.make(ENV_ID, render_mode="rgb_array")
    env.reset(seed=0)
    env.action_space.seed(0)
    frames = []
    while len(frames) < n:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        frames.append(env.render())
        if terminated or truncated:
            env.reset()
    return np.stack(frames)


def bench_sweep(n_frames: int, n_points: int, threads: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    frames = _frames(n_frames)
    table = StateTable(
        key="bench",
        obs=np.zeros((n_frames, 1)),
        progress=np.zeros(n_frames),
        success=np.zeros(n_frames, dtype=bool),
        terminal=np.zeros(n_frames, dtype=bool),
        frames=frames,
    )
    grid = {
        "model": "ViT-B-32",
        "pretrained": None,
        "device": "cpu",
        "heads": {
            "goal_baseline": {"alpha": [0.0, 0.25, 0.5, 0.75, 1.0]},
            "cosine": {},
            "softmax": {"temperature": 0.01},
            "contrast": {"c": 0.03},
        },
        "prompt_sets": {"task": {}, "plain": {"goal": "a green goal square", "baseline": "a grid"}},
    }
    points = [spec.model for _, spec in sweep_specs(grid)][:n_points]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        encoders = ModelCache(ENV_ID)
        models = [encoders.model(p) for p in points]  # loads the weights once (not timed)
        models[0].encode_frames(frames[:2])  # warm-up

        t = time.perf_counter()
        ours = [encoders.values(p, table) for p in points]
        t_ours = time.perf_counter() - t

        from rewardlab.reward_models.base import RewardBatch

        batch_size = 64
        t = time.perf_counter()
        naive = []
        for model in models:
            parts = []
            for i in range(0, n_frames, batch_size):
                f = frames[i : i + batch_size]
                z = np.zeros((len(f), 1))
                out = model(RewardBatch(z, z, z, np.zeros(len(f), dtype=bool), frames=f))
                parts.append(out.reward)
            naive.append(np.concatenate(parts))
        t_naive = time.perf_counter() - t
    for a, b in zip(ours, naive, strict=True):
        assert np.allclose(a, b, atol=1e-6), "the two paths must give the same rewards"
    scores = n_frames * len(points)
    return {
        "frames": n_frames,
        "points": len(points),
        "model": "ViT-B-32 (random weights)",
        "threads": threads,
        "ours_s": t_ours,
        "per_point_s": t_naive,
        "ours_frame_scores_per_s": scores / t_ours,
        "per_point_frame_scores_per_s": scores / t_naive,
        "speedup": t_naive / t_ours,
    }


def _direct_canonicalize(
    reward: Any,
    s: np.ndarray,
    a: np.ndarray,
    s2: np.ndarray,
    cs: np.ndarray,
    ca: np.ndarray,
    gamma: float,
) -> np.ndarray:
    """EPIC's canonicalization straight from the formula: 2 n M evaluations, chunked."""
    m = len(cs)
    out = reward(s, a, s2).astype(np.float64)
    chunk = max(1, (1 << 20) // m)
    for i in range(0, len(s), chunk):
        rows = slice(i, i + chunk)
        k = len(s[rows])
        nxt = reward(np.repeat(s2[rows], m), np.tile(ca, k), np.tile(cs, k)).reshape(k, m)
        cur = reward(np.repeat(s[rows], m), np.tile(ca, k), np.tile(cs, k)).reshape(k, m)
        out[rows] += gamma * nxt.mean(axis=1) - cur.mean(axis=1)
    both = reward(np.repeat(cs, m), np.tile(ca, m), np.tile(cs, m)).mean()
    return out - gamma * both


def bench_epic(n_random: int, coverage: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        ds = generate_dataset(
            DatasetConfig(ENV_ID, episodes={"expert": 40, "random": n_random}, frames=False),
            Path(tmp) / "ds",
        )
        t_generate = time.perf_counter() - t
        table = dataset_table(ds)
        s, s2 = ds.transition_states()
        a = np.arange(len(s))
        truth = TermReward("success", values=table.info("is_success"))
        shaped = TermReward(
            "pbrs", values=table.info("is_success"), potential=table.info("progress"), gamma=0.99
        )
        f_truth = truth.index_function(table.terminal)
        f_shaped = shaped.index_function(table.terminal)
        assert f_truth is not None and f_shaped is not None
        rng = np.random.default_rng(0)
        cs = rng.integers(0, len(table), coverage)
        ca = rng.integers(0, len(s), coverage)

        t = time.perf_counter()
        d = reward_metrics.epic_distance(f_truth, f_shaped, (s, a, s2), cs, ca, 0.99)
        t_ours = time.perf_counter() - t

        t = time.perf_counter()
        c1 = _direct_canonicalize(f_truth, s, a, s2, cs, ca, 0.99)
        c2 = _direct_canonicalize(f_shaped, s, a, s2, cs, ca, 0.99)
        d_direct = float(np.sqrt((1 - np.corrcoef(c1, c2)[0, 1]) / 2))
        t_direct = time.perf_counter() - t
        assert abs(d - d_direct) < 1e-6, (d, d_direct)

        t = time.perf_counter()
        tab = tabular_setup(ds)
        assert tab is not None
        t_setup = time.perf_counter() - t
        tt = tab.table
        r1 = TermReward("s", values=tt.info("is_success")).tensor(tt.terminal, tab.n_actions, None)
        r2 = TermReward(
            "p", values=tt.info("is_success"), potential=tt.progress, gamma=0.99
        ).tensor(tt.terminal, tab.n_actions, None)
        t = time.perf_counter()
        reward_metrics.tabular_epic_distance(r1, r2, 0.99)
        t_tab = time.perf_counter() - t
        t = time.perf_counter()
        reward_metrics.starc_distance(r1, r2, tab.transitions, 0.99)
        t_starc = time.perf_counter() - t
        return {
            "transitions": ds.n_transitions,
            "states": ds.n_states,
            "coverage": coverage,
            "generate_s": t_generate,
            "epic_distance": d,
            "ours_s": t_ours,
            "direct_s": t_direct,
            "speedup": t_direct / t_ours,
            "tabular_states": len(tt),
            "tabular_setup_s": t_setup,
            "tabular_epic_s": t_tab,
            "starc_s": t_starc,
        }


def bench_regret(episodes: int, repeats: int = 3) -> dict[str, Any]:
    """``rewardlab eval-reward`` on key-door (default rewards) on one dataset, best of
    ``repeats``, three ways: without the exact regret columns and the bootstrap intervals
    (what the report computed before issue 14), with the regret columns, and with both (the
    default: 1000 bootstrap replicates)."""
    from rewardlab.evaluation import dataset_metrics
    from rewardlab.evaluation.datasets import EPISODE_KINDS
    from rewardlab.experiments.reward_eval import run_eval

    with_regret = dataset_metrics._regret_metrics

    def without_regret(*_args: Any) -> dict[str, float]:
        return dict.fromkeys(dataset_metrics.TABULAR_METRICS[2:], math.nan)

    settings = {
        "without": (without_regret, 0),
        "with": (with_regret, 0),
        "all": (with_regret, 1000),
    }
    best = dict.fromkeys(settings, math.inf)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = DatasetConfig(ENV_ID, episodes=dict.fromkeys(EPISODE_KINDS, episodes), frames=False)
        generate_dataset(cfg, Path(tmp) / "ds")
        for _ in range(repeats):
            for path, (fn, reps) in settings.items():
                dataset_metrics._regret_metrics = fn  # type: ignore[assignment]
                start = time.perf_counter()
                run_eval(
                    ENV_ID,
                    ["pbrs", "progress"],
                    Path(tmp) / path,
                    dataset=Path(tmp) / "ds",
                    bootstrap=reps,
                )
                best[path] = min(best[path], time.perf_counter() - start)
                shutil.rmtree(Path(tmp) / path)
        dataset_metrics._regret_metrics = with_regret  # type: ignore[assignment]
    return {
        "env": ENV_ID,
        "episodes_per_kind": episodes,
        "with_regret_s": best["with"],
        "without_regret_s": best["without"],
        "with_regret_and_bootstrap_s": best["all"],
        "ratio": best["with"] / best["without"],
        "ratio_all": best["all"] / best["without"],
        "target_ratio_max": 1.5,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--random-episodes", type=int, default=330)
    parser.add_argument("--coverage", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "eval_throughput.json")
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.points, args.random_episodes = 8, 4, 30
    sweep = bench_sweep(args.frames, args.points, args.threads)
    print(
        f"sweep: {sweep['points']} points x {sweep['frames']} frames: ours "
        f"{sweep['ours_frame_scores_per_s']:.1f} frame-scores/s, per point "
        f"{sweep['per_point_frame_scores_per_s']:.1f}: {sweep['speedup']:.1f}x"
    )
    epic = bench_epic(args.random_episodes, args.coverage)
    print(
        f"EPIC on {epic['transitions']} transitions (M={epic['coverage']}): ours "
        f"{epic['ours_s']:.2f} s, direct {epic['direct_s']:.2f} s: {epic['speedup']:.1f}x; "
        f"tabular EPIC {epic['tabular_epic_s'] * 1e3:.0f} ms, STARC {epic['starc_s'] * 1e3:.0f} ms "
        f"on {epic['tabular_states']} states"
    )
    regret = bench_regret(1 if args.quick else 4)
    print(
        f"eval-reward on {regret['env']} (pbrs, progress, 2 references): "
        f"{regret['with_regret_s']:.2f} s with the regret columns, "
        f"{regret['without_regret_s']:.2f} s without: {regret['ratio']:.2f}x; with the "
        f"bootstrap intervals too {regret['with_regret_and_bootstrap_s']:.2f} s: "
        f"{regret['ratio_all']:.2f}x (target <= 1.5x)"
    )
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
        },
        "sweep": sweep,
        "epic": epic,
        "regret": regret,
    }
    if not args.quick:
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
