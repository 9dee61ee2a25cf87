"""Deprecated alias of :mod:`rewardlab.evaluation.reward_tables`; removed in the next release."""

import warnings

from rewardlab.evaluation.reward_tables import *  # noqa: F403
from rewardlab.evaluation.reward_tables import __all__  # noqa: F401

warnings.warn(
    "rewardlab.evaluation.scoring is renamed rewardlab.evaluation.reward_tables; import from there",
    DeprecationWarning,
    stacklevel=2,
)
