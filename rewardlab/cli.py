"""The ``rewardlab`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def _cmd_envs(args: argparse.Namespace) -> int:
    from rewardlab.envs.registration import NAMESPACE, all_specs

    for name, _, _kwargs, max_steps, description in all_specs():
        print(f"{NAMESPACE}/{name:<28} {description} (T={max_steps})")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from rewardlab.demo import DEFAULT_DEMO_IDS, run_demo

    env_ids = args.env or list(DEFAULT_DEMO_IDS)
    unknown = [e for e in env_ids if e not in gym.registry]
    if unknown:
        print(
            f"error: unknown env id(s) {unknown}; `rewardlab envs` lists the valid ones",
            file=sys.stderr,
        )
        return 2
    failed = 0
    for env_id in env_ids:
        result = run_demo(env_id, Path(args.out), seed=args.seed, width=args.size, height=args.size)
        failed += not result.success
        verdict = "success" if result.success else "FAILED"
        print(
            f"{env_id:<32} {verdict:<8} steps={result.steps:<4} "
            f"return={result.episode_return:8.3f}  -> {result.strip_path}"
        )
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``rewardlab`` command (documents every subcommand)."""
    parser = argparse.ArgumentParser(
        prog="rewardlab",
        description="Environments and learned rewards for embodied RL research.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    envs = sub.add_parser("envs", help="list every registered env id with a description")
    envs.set_defaults(func=_cmd_envs)

    demo = sub.add_parser(
        "demo",
        help="roll out the scripted expert on one task per family and save image strips",
        description=(
            "Roll out each task's scripted expert for one episode, render it headless and "
            "write an image strip (PNG) per env. Exits 1 if an expert fails."
        ),
    )
    demo.add_argument(
        "--env",
        action="append",
        metavar="ID",
        help="env id to demo (repeatable); default: one task per family",
    )
    demo.add_argument("--out", default="demo_output", help="output folder (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="reset seed (default: %(default)s)")
    demo.add_argument(
        "--size", type=int, default=224, help="frame size in px (default: %(default)s)"
    )
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rewardlab`` console script."""
    # Headless by default: MuJoCo must pick its GL backend before it is first imported.
    os.environ.setdefault("MUJOCO_GL", "egl")
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
