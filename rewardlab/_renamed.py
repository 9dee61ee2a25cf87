"""The old paths of renamed modules, kept as deprecated aliases for one release.

Importing an old path warns and gives a module holding the new module's public names
(``__all__``). One table and one import hook, instead of a shim file per old path.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Sequence
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

RENAMED = {
    "rewardlab.agents.evaluation": "rewardlab.agents.policy_eval",
    "rewardlab.evaluation.metrics": "rewardlab.evaluation.reward_metrics",
    "rewardlab.evaluation.quality": "rewardlab.evaluation.dataset_metrics",
    "rewardlab.evaluation.scoring": "rewardlab.evaluation.reward_tables",
    "rewardlab.evaluation.stats": "rewardlab.evaluation.run_stats",
    "rewardlab.experiments.spec": "rewardlab.experiments.comparison_spec",
    "rewardlab.wrappers.spec": "rewardlab.reward_spec",
}
"""Old module path -> new one."""


class _RenamedModules(MetaPathFinder, Loader):
    """Finds the old paths (after every other finder) and fills them from the new modules."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        return ModuleSpec(fullname, self) if fullname in RENAMED else None

    def exec_module(self, module: ModuleType) -> None:
        new = RENAMED[module.__name__]
        warnings.warn(
            f"{module.__name__} is renamed {new}; import from there", DeprecationWarning, 2
        )
        target = importlib.import_module(new)
        names = list(target.__all__)
        module.__dict__.update({name: getattr(target, name) for name in names}, __all__=names)


def install() -> None:
    """Put the hook at the end of ``sys.meta_path`` (once), behind the real modules."""
    if not any(isinstance(finder, _RenamedModules) for finder in sys.meta_path):
        sys.meta_path.append(_RenamedModules())
