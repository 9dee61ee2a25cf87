"""SB3 agents with per-env default hyperparameters (YAML, rl-baselines3-zoo style)."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from importlib import resources
from typing import Any

import yaml
from gymnasium import spaces
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

__all__ = ["ACTION_SPACES", "ALGOS", "algorithm_class", "load_hyperparams", "make_agent"]

ALGOS: dict[str, type[BaseAlgorithm]] = {"a2c": A2C, "dqn": DQN, "ppo": PPO, "sac": SAC, "td3": TD3}
"""The algorithms by name (lower case)."""

ACTION_SPACES: dict[str, tuple[type[spaces.Space[Any]], ...]] = {
    "a2c": (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary),
    "dqn": (spaces.Discrete,),
    "ppo": (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary),
    "sac": (spaces.Box,),
    "td3": (spaces.Box,),
}
"""The action spaces each algorithm supports (as SB3 asserts when the agent is built)."""

_RUN_KEYS = ("n_envs", "policy")
"""Hyperparameter keys that are not algorithm keywords."""

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}


def algorithm_class(name: str) -> type[BaseAlgorithm]:
    """The SB3 class of an algorithm name (``"ppo"``, ``"sac"``, ...).

    Raises:
        ValueError: For an unknown name, listing the known ones.
    """
    try:
        return ALGOS[name.lower()]
    except KeyError:
        close = difflib.get_close_matches(name.lower(), list(ALGOS), n=2)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(f"unknown algorithm {name!r}.{hint} Known: {sorted(ALGOS)}") from None


def load_hyperparams(
    algo: str, env_id: str, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The hyperparameters of ``algo`` on ``env_id``: ``default``, then the env's entry of
    ``rewardlab/agents/hyperparams/<algo>.yml``, then ``overrides``, key by key.

    Raises:
        ValueError: For an unknown algorithm or a key that is neither ``n_envs``, ``policy``
            nor a keyword of the algorithm (naming the close ones).
    """
    cls = algorithm_class(algo)
    text = resources.files("rewardlab.agents").joinpath(f"hyperparams/{algo.lower()}.yml")
    table = yaml.safe_load(text.read_text()) or {}
    params: dict[str, Any] = {**table.get("default", {}), **table.get(env_id, {})}
    params.update(overrides or {})
    allowed = set(inspect.signature(cls.__init__).parameters) - {"self", "env"} | set(_RUN_KEYS)
    for key in params:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=3)
            hint = f" Did you mean {close}?" if close else ""
            raise ValueError(
                f"unknown {cls.__name__} hyperparameter {key!r}.{hint} Valid: n_envs, policy "
                f"and the keywords of stable_baselines3.{cls.__name__}"
            )
    n_envs = params.get("n_envs", 1)
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"hyperparameter n_envs must be a positive int, got {n_envs!r}")
    return params


def make_agent(
    algo: str,
    venv: VecEnv,
    hyperparams: Mapping[str, Any],
    *,
    seed: int,
    device: str = "auto",
    tensorboard_log: str | None = None,
    verbose: int = 0,
) -> BaseAlgorithm:
    """An SB3 agent on ``venv`` with ``hyperparams`` (from :func:`load_hyperparams`).

    ``device="auto"`` uses CUDA when present. ``MlpPolicy`` on a ``Dict`` observation space
    (Fetch's goal-conditioned observations) is SB3's ``MultiInputPolicy``, its MLP for dicts.
    """
    cls = algorithm_class(algo)
    policy = hyperparams.get("policy", "MlpPolicy")
    if policy == "MlpPolicy" and isinstance(venv.observation_space, spaces.Dict):
        policy = "MultiInputPolicy"
    kwargs = {k: v for k, v in hyperparams.items() if k not in _RUN_KEYS}
    # YAML names an activation by a string (``activation_fn: relu``); SB3 takes the class.
    policy_kwargs = dict(kwargs.pop("policy_kwargs", None) or {})
    act = policy_kwargs.get("activation_fn")
    if isinstance(act, str):
        if act not in _ACTIVATIONS:
            raise ValueError(
                f"policy_kwargs.activation_fn must be one of {sorted(_ACTIVATIONS)}, got {act!r}"
            )
        policy_kwargs["activation_fn"] = _ACTIVATIONS[act]
    return cls(
        policy,
        venv,
        seed=seed,
        device=device,
        tensorboard_log=tensorboard_log,
        verbose=verbose,
        policy_kwargs=policy_kwargs,
        **kwargs,
    )
