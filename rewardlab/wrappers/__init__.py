"""Adapters from reward models and potentials to Gymnasium wrappers and SB3 vector envs."""

from rewardlab.wrappers.shaping import (
    POTENTIAL_NAMES,
    MismatchedShaping,
    Potential,
    PotentialShaping,
    ProgressBonus,
    check_shaping_gamma,
)

__all__ = [
    "POTENTIAL_NAMES",
    "MismatchedShaping",
    "Potential",
    "PotentialShaping",
    "ProgressBonus",
    "check_shaping_gamma",
]
