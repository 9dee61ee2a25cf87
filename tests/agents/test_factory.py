"""Agents from per-env YAML hyperparameters: merging, validation, every algorithm builds."""

from __future__ import annotations

import pytest
import torch

import rewardlab
from rewardlab.agents.factory import ALGOS, algorithm_class, load_hyperparams, make_agent


def test_env_entry_overrides_default_and_overrides_come_last() -> None:
    default = load_hyperparams("ppo", "rewardlab/DoesNotExist-v0")
    grid = load_hyperparams("ppo", "rewardlab/GridKeyDoor-v0")
    assert default["n_steps"] == 128 and grid["n_steps"] == 32  # the env entry wins
    assert grid["policy"] == "MlpPolicy"  # inherited from default
    tuned = load_hyperparams("ppo", "rewardlab/GridKeyDoor-v0", {"n_steps": 32, "n_envs": 2})
    assert (tuned["n_steps"], tuned["n_envs"]) == (32, 2)


def test_unknown_hyperparameter_and_algorithm_name_the_fix() -> None:
    with pytest.raises(ValueError, match=r"unknown PPO hyperparameter 'ent_coeff'.*ent_coef"):
        load_hyperparams("ppo", "rewardlab/GridEmpty-v0", {"ent_coeff": 0.1})
    with pytest.raises(ValueError, match=r"unknown algorithm 'ppo2'.*\['ppo'\]"):
        algorithm_class("ppo2")
    with pytest.raises(ValueError, match="n_envs must be a positive int"):
        load_hyperparams("ppo", "rewardlab/GridEmpty-v0", {"n_envs": 0})


@pytest.mark.parametrize(
    ("algo", "env_id"),
    [
        ("ppo", "rewardlab/GridEmpty-v0"),
        ("a2c", "rewardlab/GridEmpty-v0"),
        ("dqn", "rewardlab/GridEmpty-v0"),
        ("sac", "rewardlab/ManipReach-v0"),
        ("td3", "rewardlab/ManipReach-v0"),
    ],
)
def test_every_algorithm_builds_and_learns(algo: str, env_id: str) -> None:
    overrides = {"n_envs": 1}
    if algo in ("dqn", "sac", "td3"):
        overrides |= {"learning_starts": 16, "batch_size": 16, "buffer_size": 1000}
    if algo == "ppo":
        overrides |= {"n_steps": 32, "batch_size": 32}
    params = load_hyperparams(algo, env_id, overrides)
    venv = rewardlab.make_vec_env(env_id, params["n_envs"])
    agent = make_agent(algo, venv, params, seed=0, device="cpu")
    assert isinstance(agent, ALGOS[algo])
    if "activation_fn" in params.get("policy_kwargs", {}):
        assert agent.policy_kwargs["activation_fn"] is torch.nn.Tanh
    agent.learn(64)
    assert agent.num_timesteps >= 64
    venv.close()
