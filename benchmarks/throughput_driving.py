"""Steps per second of rewardlab's driving env against highway-env's ``highway-fast-v0``.

Both run random continuous actions (steering, acceleration) with resets included, at the same
vehicle count, lane count, simulation and policy frequency, without rendering and with a
224x224 ``rgb_array`` frame rendered every step. highway-env renders offscreen; its frames
are black under ``SDL_VIDEODRIVER=dummy``, so a blank first frame aborts the measurement.

Run: ``python benchmarks/throughput_driving.py`` (needs ``pip install -e .[bench]``).
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym

import rewardlab  # noqa: F401  (registers the ids)

OURS = "rewardlab/DriveHighway-v0"
PEER = "highway-fast-v0"
SIZE = 224

# (vehicles, lanes, simulation Hz, policy Hz): highway-fast-v0's defaults, then rewardlab's.
SETTINGS = [(20, 3, 5, 1), (20, 3, 10, 5)]


def _make_ours(vehicles: int, lanes: int, sim: int, policy: int, render: bool) -> gym.Env:
    return gym.make(
        OURS,
        render_mode="rgb_array" if render else None,
        vehicles_count=vehicles,
        lanes_count=lanes,
        simulation_frequency=sim,
        policy_frequency=policy,
        render_width=SIZE,
        render_height=SIZE,
    )


def _make_peer(vehicles: int, lanes: int, sim: int, policy: int, render: bool) -> gym.Env:
    import highway_env  # noqa: F401  (registers highway-fast-v0)

    config: dict[str, Any] = {
        "action": {"type": "ContinuousAction"},
        "vehicles_count": vehicles,
        "lanes_count": lanes,
        "simulation_frequency": sim,
        "policy_frequency": policy,
    }
    if render:
        config.update(offscreen_rendering=True, screen_width=SIZE, screen_height=SIZE)
    return gym.make(PEER, config=config, render_mode="rgb_array" if render else None)


def _steps_per_s(env: gym.Env, n_steps: int, render: bool, seed: int = 0) -> float:
    env.action_space.seed(seed)
    env.reset(seed=seed)
    if render and env.render().std() == 0:
        raise RuntimeError(
            f"{env.spec.id if env.spec else env} renders blank frames; unset SDL_VIDEODRIVER"
        )
    start = time.perf_counter()
    for _ in range(n_steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if render:
            env.render()
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return n_steps / elapsed


def measure(n_steps: int = 2_000) -> list[dict[str, Any]]:
    """Rows of steps/s for rewardlab and highway-env at matched settings.

    The peer is about two orders of magnitude slower, so it runs ``n_steps // 10`` steps
    (at least 50, at most 300); rates are per step either way.
    """
    rows = []
    peer_steps = min(max(n_steps // 10, 50), 300)
    for vehicles, lanes, sim, policy in SETTINGS:
        for render in (False, True):
            for peer, make, steps in ((False, _make_ours, n_steps), (True, _make_peer, peer_steps)):
                env = make(vehicles, lanes, sim, policy, render)
                rows.append(
                    {
                        "family": "driving",
                        "match": f"{vehicles} cars, {lanes} lanes, {sim}/{policy} Hz",
                        "env": PEER if peer else OURS,
                        "peer": peer,
                        "render": render,
                        "steps_per_s": _steps_per_s(env, steps, render),
                        "vehicles": vehicles,
                        "lanes": lanes,
                        "simulation_frequency": sim,
                        "policy_frequency": policy,
                        "steps": steps,
                    }
                )
    return rows


def main() -> None:
    rows = measure()
    for row in rows:
        print(row)
    print()
    for vehicles, lanes, sim, policy in SETTINGS:
        for render in (False, True):
            rate = {
                r["peer"]: r["steps_per_s"]
                for r in rows
                if r["render"] == render
                and (r["simulation_frequency"], r["policy_frequency"]) == (sim, policy)
            }
            print(
                f"{vehicles} cars, {lanes} lanes, {sim} Hz sim / {policy} Hz policy, "
                f"render={render}: rewardlab {rate[False]:,.0f} steps/s, "
                f"{PEER} {rate[True]:,.0f} steps/s, ratio {rate[False] / rate[True]:.0f}x"
            )


if __name__ == "__main__":
    main()
