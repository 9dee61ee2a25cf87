"""Deprecated alias of :mod:`rewardlab.agents.policy_eval`; removed in the next release."""

import warnings

from rewardlab.agents.policy_eval import *  # noqa: F403
from rewardlab.agents.policy_eval import __all__  # noqa: F401

warnings.warn(
    "rewardlab.agents.evaluation is renamed rewardlab.agents.policy_eval; import from there",
    DeprecationWarning,
    stacklevel=2,
)
