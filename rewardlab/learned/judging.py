"""What every ``learn-reward`` source shares: the env settings of the data it learns from, and
judging the learned reward with ``eval-reward`` on episodes it did not learn from.

Judged episodes are generated from a seed above every layout seed of the training data (and at
least ``seed + HELDOUT_SEED_OFFSET``): a dataset's episodes take consecutive seeds from its
base seed, so none of them repeats a layout the reward was fit on, whatever dataset (a user's
included) it was fit on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rewardlab.evaluation.datasets import TrajectoryDataset

__all__ = [
    "HELDOUT_SEED_OFFSET",
    "cell",
    "dataset_env_kwargs",
    "eval_reward_lines",
    "judge",
    "judge_checkpoint",
    "judging_seed",
]

HELDOUT_SEED_OFFSET = 10_000
"""Judged episodes start at least this far above the training seed."""


def judging_seed(seed: int, train_seeds: Iterable[int] = ()) -> int:
    """The first seed of a judging dataset: ``seed + HELDOUT_SEED_OFFSET``, or above every
    training layout seed where those reach that far."""
    return max(seed + HELDOUT_SEED_OFFSET, max(train_seeds, default=-1) + 1)


def dataset_env_kwargs(
    ds: TrajectoryDataset, given: Mapping[str, Any] | None, what: str = "dataset"
) -> dict[str, Any]:
    """The env keywords a dataset was recorded with; ``given`` ones must equal them (None:
    take the dataset's).

    Raises:
        ValueError: Other keywords than the dataset's, naming both.
    """
    generator = ds.metadata.get("generator")
    recorded = dict(
        generator.get("env_kwargs", {}) if isinstance(generator, Mapping) else {},
        **ds.metadata.get("env_kwargs", {}),
    )
    if given is not None and dict(given) != recorded:
        raise ValueError(
            f"the {what} {ds.path} was recorded with env kwargs {recorded}, not {dict(given)}; "
            "leave --env-kwarg out to use the dataset's"
        )
    return recorded


def judge(
    env_id: str,
    rewards: Sequence[str | Mapping[str, Any]],
    out: Path,
    *,
    env_kwargs: Mapping[str, Any],
    episodes: int,
    frames: bool,
    seed: int,
    train_seeds: Iterable[int] = (),
    grow: bool = True,
    log: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Run ``eval-reward`` on ``rewards`` (and the ``progress`` and ``sparse`` references) with
    a new dataset of ``episodes`` per kind from :func:`judging_seed`, into ``out``; return its
    ``summary.json``."""
    from rewardlab.evaluation.datasets import EPISODE_KINDS, DatasetConfig
    from rewardlab.experiments.reward_eval import run_eval

    first = judging_seed(seed, train_seeds)
    config = DatasetConfig(
        env_id, dict.fromkeys(EPISODE_KINDS, episodes), first, dict(env_kwargs), frames=frames
    )
    log(f"judging with eval-reward on other episodes (seeds from {first}) ...")
    report = run_eval(
        env_id,
        [*rewards, "progress", "sparse"],
        out,
        dataset_config=config,
        seed=seed,
        bootstrap=200,
        grow_dataset=grow,
        log=log,
    )
    summary: dict[str, Any] = json.loads((report.parent / "summary.json").read_text())
    summary["judging_seed"] = first
    return summary


def verdicts(summary: Mapping[str, Any], keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per judged reward, its verdict and the metrics ``keys`` of an eval-reward summary."""
    return {r["name"]: {k: r.get(k) for k in ("verdict", *keys)} for r in summary["rewards"]}


def learned_spec(name: str, checkpoint: Path) -> dict[str, Any]:
    """The eval-reward spec paying a checkpoint, under ``name``."""
    return {"name": name, "model": {"kind": "learned", "path": str(Path(checkpoint).resolve())}}


def judge_checkpoint(
    summary: dict[str, Any],
    env_id: str,
    checkpoint: Path,
    out: Path,
    *,
    env_kwargs: Mapping[str, Any],
    episodes: int,
    frames: bool,
    seed: int,
    train_seeds: Iterable[int] = (),
    log: Callable[[str], None] = lambda _msg: None,
) -> None:
    """:func:`judge` one checkpoint (as ``learned``) and put the judging seed and each
    reward's verdict, preference accuracy and Spearman correlation of returns into
    ``summary`` (``judging_seed``, ``eval_reward``)."""
    judged = judge(
        env_id,
        [learned_spec("learned", checkpoint)],
        out,
        env_kwargs=env_kwargs,
        episodes=episodes,
        frames=frames,
        seed=seed,
        train_seeds=train_seeds,
        log=log,
    )
    summary["judging_seed"] = judged["judging_seed"]
    summary["eval_reward"] = verdicts(judged, ("preference", "spearman_return"))


def cell(x: float | None) -> str:
    """A metric in a learn-reward report: three decimals, ``n/a`` where there is none."""
    return "n/a" if x is None else f"{x:.3f}"


def eval_reward_lines(eval_reward: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The report section of :func:`judge_checkpoint`'s ``eval_reward``."""
    lines = [
        "",
        "## eval-reward on other episodes (`eval/report.md`)",
        "",
        "| reward | verdict | pref. acc. | Spearman ret. |",
        "|---|---|---:|---:|",
    ]
    for name, row in eval_reward.items():
        lines.append(
            f"| {name} | {row['verdict']} | {cell(row['preference'])} | "
            f"{cell(row['spearman_return'])} |"
        )
    return lines
