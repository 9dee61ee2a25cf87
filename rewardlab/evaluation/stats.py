"""Deprecated alias of :mod:`rewardlab.evaluation.run_stats`; removed in the next release."""

import warnings

from rewardlab.evaluation.run_stats import *  # noqa: F403
from rewardlab.evaluation.run_stats import __all__  # noqa: F401

warnings.warn(
    "rewardlab.evaluation.stats is renamed rewardlab.evaluation.run_stats; import from there",
    DeprecationWarning,
    stacklevel=2,
)
