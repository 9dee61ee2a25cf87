"""Reward programs in the reward path: the VecEnv adapter, specs, and every reference program."""

from __future__ import annotations

import hashlib
import inspect
import math
import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import rewardlab
from rewardlab.experiments.llm_reward.checks import random_states, smoke_test
from rewardlab.reward_models.compose import FunctionReward
from rewardlab.reward_models.program_reward import ProgramReward, reference_program
from rewardlab.reward_spec import parse_reward
from rewardlab.sandbox import ProgramRejected
from rewardlab.vec import make_vec_env

TASK_ENVS = {
    "reach_goal": "rewardlab/GridEmpty-v0",
    "four_rooms": "rewardlab/GridFourRooms-v0",
    "key_door": "rewardlab/GridKeyDoor-v0",
    "lava_crossing": "rewardlab/GridLavaCrossing-v0",
    "reach": "rewardlab/ManipReach-v0",
    "push": "rewardlab/ManipPush-v0",
    "pick_place": "rewardlab/ManipPickPlace-v0",
    "drive_highway": "rewardlab/DriveHighway-v0",
    "drive_exit": "rewardlab/DriveExit-v0",
}


def test_every_task_has_a_reference_program() -> None:
    tasks = {rewardlab.get_task(gym.make(e)).name for e in rewardlab.env_ids()}
    assert tasks == set(TASK_ENVS)
    with pytest.raises(FileNotFoundError, match="push"):
        reference_program("pushh")


@pytest.mark.parametrize("task", sorted(TASK_ENVS))
def test_reference_programs_pass_the_smoke_test(task: str) -> None:
    env_id = TASK_ENVS[task]
    shapes = {v.name: v.shape for v in rewardlab.get_task(gym.make(env_id)).state_variables}
    report = smoke_test(reference_program(task), shapes, random_states(env_id, episodes=2))
    assert report.passed, report.message()
    assert len(report.components) >= 2  # Eureka-style components to reflect on


def native(source: str) -> FunctionReward:
    """The same program compiled in this process, as a plain reward model."""
    namespace: dict[str, object] = {"np": np, "math": math}
    exec(compile(source, "<native>", "exec"), namespace)  # trusted: our own reference program
    fn = namespace["compute_reward"]
    params = list(inspect.signature(fn).parameters)  # type: ignore[arg-type]

    def reward(batch):  # noqa: ANN001, ANN202
        return fn(**{p: batch.info[f"state/{p}"] for p in params})[0]  # type: ignore[operator]

    return FunctionReward(reward, needs_info=[f"state/{p}" for p in params])


@pytest.mark.parametrize("env_id", ["rewardlab/GridKeyDoor-v0", "rewardlab/ManipPush-v0"])
def test_program_reward_in_the_vec_env_equals_the_native_function(env_id: str) -> None:
    task = rewardlab.get_task(gym.make(env_id)).name
    sandboxed = make_vec_env(env_id, reward=parse_reward("program"), n_envs=4, seed=1, gamma=0.99)
    plain = rewardlab.make_vec_env(env_id, 4, reward=native(reference_program(task)), seed=1)
    sandboxed.reset(), plain.reset()
    rng = np.random.default_rng(0)
    space = sandboxed.action_space
    for _ in range(60):
        actions = (
            np.stack([space.sample() for _ in range(4)])
            if not isinstance(space, gym.spaces.Discrete)
            else rng.integers(0, space.n, 4)
        )
        _, r1, d1, infos = sandboxed.step(actions)
        _, r2, d2, _ = plain.step(actions)
        assert np.allclose(r1, r2) and np.array_equal(d1, d2)
    assert any(k.startswith("reward_model/") for k in infos[0])  # components passed on
    sandboxed.close(), plain.close()


def test_program_spec_by_path_and_bad_programs(tmp_path: Path) -> None:
    path = tmp_path / "mine.py"
    path.write_text(
        "def compute_reward(agent_pos, goal_pos):\n"
        "    return -np.abs(goal_pos - agent_pos).sum(axis=-1) * 1.0, {}\n"
    )
    venv = make_vec_env(
        "rewardlab/GridEmpty-v0",
        reward=parse_reward(f"{{model: {{kind: program, path: {path}}}}}"),
        n_envs=2,
        seed=0,
        gamma=0.99,
    )
    venv.reset()
    _, rewards, _, _ = venv.step(np.array([2, 2]))
    assert rewards.shape == (2,) and (rewards <= 0).all()
    venv.close()
    path.write_text("def compute_reward(agent_position):\n    return agent_position, {}\n")
    with pytest.raises(ProgramRejected, match="agent_pos"):
        make_vec_env(
            "rewardlab/GridEmpty-v0",
            reward=parse_reward(f"{{model: {{kind: program, path: {path}}}}}"),
            n_envs=1,
            seed=0,
            gamma=0.99,
        )
    with pytest.raises(ValueError, match="exactly one of path and source"):
        parse_reward("{model: {kind: program}}")


def test_program_reward_pickles_without_its_worker() -> None:
    model = ProgramReward(reference_program("reach_goal"), {"agent_pos": (2,), "goal_pos": (2,)})
    copy = pickle.loads(pickle.dumps(model))
    states = {"agent_pos": np.array([[1, 1], [3, 3]]), "goal_pos": np.array([[3, 3], [3, 3]])}
    assert np.array_equal(copy.values(states), model.values(states))
    model.close(), copy.close()


def test_closing_the_vec_env_stops_the_sandbox_workers() -> None:
    for spec in ("program", "{shaping: {kind: program, path: reference}}"):
        venv = make_vec_env(
            "rewardlab/GridEmpty-v0", reward=parse_reward(spec), n_envs=2, seed=0, gamma=0.99
        )
        venv.reset()
        venv.step(np.array([2, 2]))
        layer = venv
        while not hasattr(layer, "model") and not hasattr(layer, "potential"):
            layer = layer.venv
        model = getattr(layer, "model", None) or layer.potential
        worker = model.guarded.worker
        assert worker is not None and worker.alive
        venv.close()
        assert not worker.alive


def test_program_potentials_report_components_and_diagnostics_even_mismatched() -> None:
    from rewardlab.wrappers.vec import reward_diagnostics

    # shaping_gamma set: the mismatched-discount control is layered on by make_vec_env,
    # which must still capture the state the program reads.
    for spec in (
        "{shaping: {kind: program, path: reference}}",
        "{shaping: {kind: program, path: reference}, shaping_gamma: 0.9}",
    ):
        venv = make_vec_env(
            "rewardlab/GridEmpty-v0", reward=parse_reward(spec), n_envs=2, seed=0, gamma=0.99
        )
        venv.reset()
        _, _, _, infos = venv.step(np.array([2, 2]))
        components = [k for k in infos[0] if k.startswith("potential_model/")]
        assert components and "potential" in infos[0]
        report = reward_diagnostics(venv)["potential"]
        assert not any(k.startswith("reward_model/") for k in infos[0])
        assert report["calls"] == 2 and report["failures"] == {}
        assert (
            report["sha256"] == hashlib.sha256(reference_program("reach_goal").encode()).hexdigest()
        )
        venv.close()


def test_values_raise_instead_of_scoring_a_failed_chunk() -> None:
    from rewardlab.sandbox import ProgramContained

    source = (
        "def compute_reward(agent_pos):\n"
        "    if (agent_pos > 5).any():\n"
        "        raise ValueError('far out')\n"
        "    return agent_pos.sum(axis=-1) * 1.0, {}\n"
    )
    model = ProgramReward(source, {"agent_pos": (2,)})
    states = {"agent_pos": np.array([[1, 1], [2, 2], [9, 9]])}
    assert np.array_equal(model.values({"agent_pos": states["agent_pos"][:2]}), [2.0, 4.0])
    with pytest.raises(ProgramContained, match=r"states 2\.\.2.*far out"):
        model.values(states, batch_size=2)
    assert model.diagnostics()["failures"]
    model.close()


def test_reward_and_potential_components_are_kept_apart() -> None:
    spec = "{model: {kind: program, path: reference}, shaping: {kind: program, path: reference}}"
    venv = make_vec_env(
        "rewardlab/GridEmpty-v0", reward=parse_reward(spec), n_envs=2, seed=0, gamma=0.99
    )
    venv.reset()
    _, _, _, infos = venv.step(np.array([2, 2]))
    names = {k.split("/", 1)[1] for k in infos[0] if k.startswith("reward_model/")}
    assert names and {f"potential_model/{n}" for n in names} <= set(infos[0])
    from rewardlab.wrappers.vec import reward_diagnostics

    assert set(reward_diagnostics(venv)) == {"reward", "potential"}
    venv.close()


def test_compositions_report_and_close_their_programs() -> None:
    from rewardlab.reward_models.compose import Affine, InfoReward, WeightedSum

    program = ProgramReward(reference_program("reach_goal"), {"agent_pos": (2,), "goal_pos": (2,)})
    model = Affine(WeightedSum({"program": program, "progress": InfoReward("progress")}), 2.0)
    venv = rewardlab.make_vec_env("rewardlab/GridEmpty-v0", 2, reward=model)
    venv.reset()
    venv.step(np.array([2, 2]))
    from rewardlab.wrappers.vec import reward_diagnostics

    report = reward_diagnostics(venv)["reward"]["model"]["program"]
    assert report["calls"] == 1 and report["sha256"] == program.program.sha256
    worker = program.guarded.worker
    assert worker is not None and worker.alive
    venv.close()  # closes the composition, which closes the program's worker
    assert not worker.alive
