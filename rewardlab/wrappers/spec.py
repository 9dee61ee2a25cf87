"""Deprecated alias of :mod:`rewardlab.reward_spec` (reward specs are configuration, not
wrappers); it will be removed in the next release."""

import warnings

from rewardlab.reward_spec import *  # noqa: F403
from rewardlab.reward_spec import __all__  # noqa: F401

warnings.warn(
    "rewardlab.wrappers.spec moved to rewardlab.reward_spec; import from there",
    DeprecationWarning,
    stacklevel=2,
)
