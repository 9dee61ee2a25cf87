"""Experiments: comparisons of training runs across reward variants, judging rewards on
datasets, LLM reward search, and their reports.

- :mod:`rewardlab.experiments.comparison_spec`: the YAML comparison spec (envs x variants x
  seeds), validated, every run checked before any training.
- :mod:`rewardlab.experiments.runner`: runs it, resumably, on a process pool or Ray.
- :mod:`rewardlab.experiments.report`: per-run evaluation curves to run statistics
  (:mod:`rewardlab.evaluation.run_stats`), figures and a Markdown report.
- :mod:`rewardlab.experiments.reward_eval`: ``rewardlab eval-reward``, zero-shot rewards judged
  on a trajectory dataset with the metrics of :mod:`rewardlab.evaluation` (no training).
- :mod:`rewardlab.experiments.llm_reward`: rewards written by an LLM, the Eureka-style search.

Reward specs (what a variant pays) are :mod:`rewardlab.reward_spec`; evaluating one trained
policy on the true task reward is :mod:`rewardlab.agents.policy_eval`.
"""
