"""Experiments: comparing training runs across reward variants, and the reports of them.

- :mod:`rewardlab.experiments.spec`: the YAML comparison spec (envs x variants x seeds),
  validated, every run checked before any training.
- :mod:`rewardlab.experiments.runner`: runs it, resumably, on a process pool or Ray.
- :mod:`rewardlab.experiments.report`: per-run evaluation curves to run statistics (IQM,
  stratified bootstrap intervals, probability of improvement), figures and a Markdown report.
"""
