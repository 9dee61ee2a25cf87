"""The old paths of renamed modules warn and resolve to the new modules' public names."""

from __future__ import annotations

import importlib
import sys

import pytest

from rewardlab._renamed import RENAMED


@pytest.mark.parametrize(("old", "new"), sorted(RENAMED.items()))
def test_old_module_warns_and_resolves_to_the_new_one(
    old: str, new: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = importlib.import_module(new)
    # Import the alias afresh: its warning is emitted once, when the module first runs.
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=f"^{old} is renamed {new}; import from there$"):
        alias = importlib.import_module(old)
    assert alias.__all__ == target.__all__
    for name in target.__all__:
        assert getattr(alias, name) is getattr(target, name), name


def test_from_import_of_an_old_path_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "rewardlab.evaluation.stats", raising=False)
    with pytest.warns(DeprecationWarning):
        from rewardlab.evaluation.stats import iqm  # noqa: F401
    from rewardlab.evaluation.run_stats import iqm as new

    assert sys.modules["rewardlab.evaluation.stats"].iqm is new


def test_unknown_paths_still_fail() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("rewardlab.evaluation.no_such_module")
