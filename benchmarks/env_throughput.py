"""Steps per second of each env family beside its nearest peer, in the same run.

    pip install -e ".[bench]"
    python benchmarks/env_throughput.py            # writes benchmarks/results/env_throughput.json

Each family module (``throughput_<family>.py``) measures our env and its peer with random
actions through ``gym.make`` (resets included), without rendering and with a 224x224
``rgb_array`` frame every step. The table reports the ratio ours / peer per setting; the
targets (issue 2) are gridworld >= 10x Minigrid, driving >= 20x highway-env's
``highway-fast-v0`` at matched vehicle count and frequencies, manipulation >= the MuJoCo peer at
equal physics substeps, and 224x224 MuJoCo frames under 10 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput_driving  # noqa: E402
import throughput_gridworld  # noqa: E402
import throughput_manipulation  # noqa: E402

FAMILIES = {
    "gridworld": throughput_gridworld.measure,
    "manipulation": throughput_manipulation.measure,
    "driving": throughput_driving.measure,
}


def ratio_table(rows: list[dict]) -> str:
    """Markdown table: ours vs its peer at the same matched setting, per rendering mode."""
    lines = [
        "| family | matched | rendering | rewardlab | steps/s | peer | steps/s | ratio |",
        "|---|---|---|---|---:|---|---:|---:|",
    ]
    for ours in (r for r in rows if not r["peer"]):
        key = (ours["family"], ours["match"], ours["render"])
        for peer in (
            r for r in rows if r["peer"] and (r["family"], r["match"], r["render"]) == key
        ):
            lines.append(
                f"| {ours['family']} | {ours['match']} | "
                f"{'224x224' if ours['render'] else 'none'} | {ours['env']} | "
                f"{ours['steps_per_s']:,.0f} | {peer['env']} | {peer['steps_per_s']:,.0f} | "
                f"{ours['steps_per_s'] / peer['steps_per_s']:.1f}x |"
            )
    frames = [r for r in rows if r.get("ms_per_frame") is not None]
    if frames:
        lines.append("")
        lines += [
            f"- {r['env']}: {r['ms_per_frame']:.1f} ms per 224x224 frame ({r['match']})"
            for r in frames
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=sorted(FAMILIES), action="append")
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "env_throughput.json")
    )
    args = parser.parse_args()
    rows: list[dict] = []
    for family in args.family or list(FAMILIES):
        start = time.perf_counter()
        rows += FAMILIES[family]()
        print(f"{family}: measured in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(ratio_table(rows))


if __name__ == "__main__":
    main()
