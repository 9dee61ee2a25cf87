"""The old module paths of rewardlab.evaluation warn and resolve to the renamed modules."""

from __future__ import annotations

import importlib
import sys

import pytest


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("metrics", "reward_metrics"),
        ("stats", "run_stats"),
        ("scoring", "reward_tables"),
        ("quality", "dataset_metrics"),
    ],
)
def test_old_module_warns_and_resolves_to_the_new_one(
    old: str, new: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = importlib.import_module(f"rewardlab.evaluation.{new}")
    # Import the alias afresh: its warning is emitted once, when the module first runs.
    monkeypatch.delitem(sys.modules, f"rewardlab.evaluation.{old}", raising=False)
    with pytest.warns(DeprecationWarning, match=f"evaluation.{old} is renamed .*\\.{new};"):
        alias = importlib.import_module(f"rewardlab.evaluation.{old}")
    assert alias.__all__ == target.__all__
    for name in target.__all__:
        assert getattr(alias, name) is getattr(target, name), name
