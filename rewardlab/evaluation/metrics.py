"""Deprecated alias of :mod:`rewardlab.evaluation.reward_metrics`; removed in the next release."""

import warnings

from rewardlab.evaluation.reward_metrics import *  # noqa: F403
from rewardlab.evaluation.reward_metrics import __all__  # noqa: F401

warnings.warn(
    "rewardlab.evaluation.metrics is renamed "
    "rewardlab.evaluation.reward_metrics; import from there",
    DeprecationWarning,
    stacklevel=2,
)
