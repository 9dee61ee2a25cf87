"""Judging rewards before training on them, and comparing RL runs after; one module each:

- :mod:`~rewardlab.evaluation.reward_metrics`: reward-quality metrics on arrays (EPIC, STARC,
  correlations, VOC, success detection, preference accuracy);
- :mod:`~rewardlab.evaluation.datasets`: labelled trajectory datasets to compute them on;
- :mod:`~rewardlab.evaluation.reward_tables`: reward specs as arrays over a dataset's states;
- :mod:`~rewardlab.evaluation.dataset_metrics`: every reward metric of each reward on a dataset;
- :mod:`~rewardlab.evaluation.regret`: exact regret of a reward on a tabular MDP, at the optimum
  and after a few soft policy-iteration steps;
- :mod:`~rewardlab.evaluation.run_stats`: statistics of RL runs (IQM, stratified bootstrap
  intervals, probability of improvement, performance profiles, learning-curve AUC,
  steps-to-threshold).

Evaluating a trained policy on the true task reward is :mod:`rewardlab.agents.policy_eval`;
the zero-shot reward evaluation experiment (datasets in, report out) is
:mod:`rewardlab.experiments.reward_eval`. The names of ``reward_metrics``, ``datasets``,
``regret`` and ``run_stats`` are exported here lazily, so importing this package imports neither
scipy nor an env.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "datasets": (
        "DatasetConfig",
        "Episode",
        "TrajectoryDataset",
        "generate_dataset",
        "load_dataset",
    ),
    "reward_metrics": (
        "average_precision",
        "best_threshold",
        "epic_canonicalize",
        "epic_distance",
        "pearson",
        "point_biserial",
        "preference_accuracy",
        "roc_auc",
        "roc_curve",
        "spearman",
        "starc_distance",
        "tabular_epic_distance",
        "value_order_correlation",
    ),
    "regret": (
        "RegretJudge",
        "TaskOutcome",
        "optimal_policy",
        "policy_values",
        "reward_regret",
        "soft_policy_iteration",
        "task_outcome",
    ),
    "run_stats": (
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
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    # Import a submodule (and scipy) only when one of its names is asked for.
    if name in _MODULE_OF:
        return getattr(import_module(f"rewardlab.evaluation.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
