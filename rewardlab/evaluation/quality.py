"""Deprecated alias of :mod:`rewardlab.evaluation.dataset_metrics`; removed in the next release."""

import warnings

from rewardlab.evaluation.dataset_metrics import *  # noqa: F403
from rewardlab.evaluation.dataset_metrics import __all__  # noqa: F401

warnings.warn(
    "rewardlab.evaluation.quality is renamed "
    "rewardlab.evaluation.dataset_metrics; import from there",
    DeprecationWarning,
    stacklevel=2,
)
