"""Rollouts the adapter tests share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np


class Episode(NamedTuple):
    infos: list[dict[str, Any]]  # reset's first
    terminated: bool
    truncated: bool


def episode(
    env: gym.Env[Any, Any],
    act: Callable[[Any], Any],
    seed: int,
    limit: int | None = None,
    until_success: bool = False,
) -> Episode:
    """One episode from ``reset(seed)``: at most ``limit`` steps, or up to the first success."""
    obs, info = env.reset(seed=seed)
    infos = [info]
    terminated = truncated = False
    while limit is None or len(infos) <= limit:
        obs, _, terminated, truncated, info = env.step(act(obs))
        infos.append(info)
        if terminated or truncated or (until_success and info["is_success"]):
            break
    return Episode(infos, bool(terminated), bool(truncated))


def random_policy(env: gym.Env[Any, Any]) -> Callable[[Any], Any]:
    """The action space's samples, seeded."""
    env.action_space.seed(0)
    return lambda obs: env.action_space.sample()


def checked_state(env: gym.Env[Any, Any], float64: bool = True) -> dict[str, Any]:
    """The task's state through ``env``'s wrappers, checked against its state variables
    (names in order, shapes, and float64 values unless ``float64`` is False)."""
    from rewardlab import get_task

    task = get_task(env)
    state = task.state()
    assert list(state) == [v.name for v in task.state_variables]
    for var in task.state_variables:
        assert state[var.name].shape == var.shape, var.name
        assert not float64 or state[var.name].dtype == np.float64, var.name
    return state


def infos_terminated(
    env: gym.Env[Any, Any], act: Callable[[Any], Any], seed: int
) -> tuple[list[dict[str, Any]], bool]:
    """Infos of one episode, reset's first, and whether it ended ``terminated``."""
    ep = episode(env, act, seed)
    return ep.infos, ep.terminated


def task_info(env: gym.Env[Any, Any]) -> tuple[bool, float]:
    """``(success, progress)`` the task reads from ``env``'s current state."""
    from rewardlab import get_task

    adapter = get_task(env).env
    return adapter.success(None, {}), adapter.progress()
