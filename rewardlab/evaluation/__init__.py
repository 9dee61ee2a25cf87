"""Evaluation: statistics for comparing RL runs (IQM, stratified bootstrap intervals,
probability of improvement, performance profiles, learning-curve AUC, steps-to-threshold).

The names of :mod:`rewardlab.evaluation.stats` are exported lazily, so importing this
package does not import scipy.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rewardlab.evaluation.stats import (
        Interval,
        Statistic,
        ThresholdSummary,
        aggregate,
        aggregate_iqm,
        aggregate_mean,
        iqm,
        iqm_curve,
        normalized_auc,
        performance_profile,
        performance_profile_ci,
        probability_of_improvement,
        probability_of_improvement_ci,
        steps_to_threshold,
        steps_to_threshold_summary,
        stratified_bootstrap_ci,
    )

__all__ = [
    "Interval",
    "Statistic",
    "ThresholdSummary",
    "aggregate",
    "aggregate_iqm",
    "aggregate_mean",
    "iqm",
    "iqm_curve",
    "normalized_auc",
    "performance_profile",
    "performance_profile_ci",
    "probability_of_improvement",
    "probability_of_improvement_ci",
    "steps_to_threshold",
    "steps_to_threshold_summary",
    "stratified_bootstrap_ci",
]


def __getattr__(name: str) -> Any:
    # stats needs scipy (the `train` extra): import it only when one of its names is asked for.
    if name in __all__:
        from rewardlab.evaluation import stats

        return getattr(stats, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
