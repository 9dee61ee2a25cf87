"""SB3 glue: agents from per-env hyperparameters, one training run, policy evaluation on the
true task reward.

- :func:`make_agent`, :func:`load_hyperparams`: an SB3 algorithm (``ALGOS``) with the per-env
  defaults of ``rewardlab/agents/hyperparams/<algo>.yml``.
- :func:`train`, :class:`TrainConfig`: one run, with its logs, checkpoints and evaluations.
- :class:`TrueTaskEval`, :func:`evaluate_policy_on_task` (:mod:`~rewardlab.agents.policy_eval`):
  success and true return on a separate env without reward layers, on fixed seeds.
- :class:`ShapingDiscountCheck`: refuses to train when shaping's discount is not the agent's.
- :class:`TrainingEpisodeLog`: the trained-on (proxy) reward's episode return beside the true
  success, per training episode, in windows (``training_episodes.json``).

Judging a reward itself (reward-quality metrics, run statistics) is :mod:`rewardlab.evaluation`;
the ``eval-reward`` experiment is :mod:`rewardlab.experiments.reward_eval`.
"""

from rewardlab.agents.callbacks import ShapingDiscountCheck, TrainingEpisodeLog
from rewardlab.agents.factory import ALGOS, load_hyperparams, make_agent
from rewardlab.agents.policy_eval import EvalResult, TrueTaskEval, evaluate_policy_on_task
from rewardlab.agents.train import TrainConfig, TrainResult, train

__all__ = [
    "ALGOS",
    "EvalResult",
    "ShapingDiscountCheck",
    "TrainConfig",
    "TrainResult",
    "TrainingEpisodeLog",
    "TrueTaskEval",
    "evaluate_policy_on_task",
    "load_hyperparams",
    "make_agent",
    "train",
]
