"""The shaping/composition settings of ``reward_overhead.py`` on whichever checkout is imported.

For before/after comparisons across an API change: run it once per checkout, alternating, on
the same machine, e.g.

    git worktree add /tmp/before <rev>
    PYTHONPATH=/tmp/before python benchmarks/reward_overhead_checkout.py
    PYTHONPATH=. python benchmarks/reward_overhead_checkout.py

It builds the vector envs with ``rewardlab.make_vec_env`` or, on checkouts older than it,
``rewardlab.make_vec``; measures thread CPU time (other processes do not count), settings in
a rotated order, best of ``--repeats``; and prints one JSON line
``{setting: [us per vec step, time / bare]}``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

import rewardlab
from rewardlab.reward_models.compose import InfoReward, WeightedSum

ENV_ID, N_ENVS = "rewardlab/GridKeyDoor-v0", 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4_000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)
    make = getattr(rewardlab, "make_vec_env", None) or rewardlab.make_vec

    def composed() -> WeightedSum:
        terms = {"progress": InfoReward("progress"), "success": InfoReward("is_success")}
        return WeightedSum(terms)

    venvs = {
        "bare": make(ENV_ID, N_ENVS),
        "shaping": make(ENV_ID, N_ENVS, shaping="progress"),
        "compose": make(ENV_ID, N_ENVS, reward=composed()),
        "both": make(ENV_ID, N_ENVS, reward=composed(), shaping="progress"),
    }
    actions = np.random.default_rng(0).integers(0, 4, size=(args.steps, N_ENVS))
    for venv in venvs.values():
        venv.reset()
        for a in actions[:1000]:  # warm-up
            venv.step(a)
    names, best = list(venvs), dict.fromkeys(venvs, float("inf"))
    for r in range(args.repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.thread_time()
            for a in actions:
                venvs[name].step(a)
            best[name] = min(best[name], time.thread_time() - start)
    bare = best["bare"]
    rows = {k: [round(1e6 * v / args.steps, 1), round(v / bare, 3)] for k, v in best.items()}
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
