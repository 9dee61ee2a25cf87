"""Deprecated alias of :mod:`rewardlab.experiments.comparison_spec`; removed in the next release."""

import warnings

from rewardlab.experiments.comparison_spec import *  # noqa: F403
from rewardlab.experiments.comparison_spec import __all__  # noqa: F401

warnings.warn(
    "rewardlab.experiments.spec is renamed "
    "rewardlab.experiments.comparison_spec; import from there",
    DeprecationWarning,
    stacklevel=2,
)
