"""One training run: files written, evaluation on the true task, shaping discount tied."""

from __future__ import annotations

import csv
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO

from rewardlab.agents.policy_eval import evaluate_policy_on_task
from rewardlab.agents.train import TrainConfig, check_config, train
from rewardlab.reward_spec import parse_reward
from rewardlab.vec import make_vec_env

SMALL = {"n_envs": 2, "n_steps": 32, "batch_size": 32}


def _rows(path: Path) -> list[dict[str, float]]:
    with path.open() as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def test_evaluation_ignores_a_reward_that_pays_for_failing(tmp_path: Path) -> None:
    # The training reward pays -1 for success: if evaluation read it, returns would be <= 0.
    config = TrainConfig(
        env="rewardlab/GridEmpty-v0",
        env_kwargs={"size": 5},
        reward={"model": {"kind": "info", "key": "is_success", "scale": -1.0}},
        hyperparams=SMALL,
        steps=512,
        eval_freq=256,
        eval_episodes=6,
        eval_deterministic=True,
        checkpoint_freq=256,
    )
    result = train(config, tmp_path)
    for name in ("config.json", "eval.csv", "progress.csv", "model.zip"):
        assert (tmp_path / name).is_file(), name
    assert list(tmp_path.glob("events.out.tfevents.*")), "no TensorBoard log"
    assert list((tmp_path / "checkpoints").glob("*.zip")), "no checkpoint"
    rows = _rows(tmp_path / "eval.csv")
    assert [r["step"] for r in rows] == [0, 256, 512]
    assert rows == result.evals
    # True sparse task reward: return 1 exactly when the episode succeeds.
    for row in rows:
        assert row["mean_return"] == pytest.approx(row["success_rate"])
    # The last evaluation, redone by hand on plain envs with the same seeds.
    agent = PPO.load(tmp_path / "model.zip", device="cpu")
    envs = [gym.make("rewardlab/GridEmpty-v0", size=5) for _ in range(6)]
    again = evaluate_policy_on_task(agent, envs, [1_000_000 + k for k in range(6)])
    assert again.success_rate == rows[-1]["success_rate"]
    assert again.mean_return == pytest.approx(rows[-1]["mean_return"])
    assert result.steps == 512
    # A second run into the same folder would mix two runs' logs: refused.
    with pytest.raises(ValueError, match="already holds files"):
        train(config, tmp_path)


def test_shaping_discount_is_the_agents(tmp_path: Path) -> None:
    venv = make_vec_env("rewardlab/GridEmpty-v0", 1, parse_reward("pbrs"), gamma=0.95)
    assert venv.gamma == 0.95
    venv.close()
    # ShapingDiscountCheck runs at training start: this passes only if the gamma is tied.
    config = TrainConfig(
        env="rewardlab/GridEmpty-v0",
        env_kwargs={"size": 5, "render_width": 32, "render_height": 32},
        reward="pbrs",
        hyperparams={**SMALL, "gamma": 0.95},
        steps=64,
        eval_freq=64,
        eval_episodes=1,
        video=True,
    )
    train(config, tmp_path)
    gifs = sorted(p.name for p in (tmp_path / "videos").glob("*.gif"))
    assert gifs == ["eval_0.gif", "eval_64.gif"]


def test_negative_controls_are_built_as_named() -> None:
    from rewardlab.wrappers.vec import VecMismatchedShaping, VecProgressBonus

    mism = make_vec_env("rewardlab/GridEmpty-v0", reward="pbrs_mismatched", gamma=0.99)
    assert isinstance(mism, VecMismatchedShaping) and mism.gamma == 0.9
    bonus = make_vec_env("rewardlab/GridEmpty-v0", reward="progress_bonus", gamma=0.99)
    assert isinstance(bonus, VecProgressBonus)
    with pytest.raises(ValueError, match="equals the agent's gamma"):
        make_vec_env(
            "rewardlab/GridEmpty-v0",
            reward="{shaping: progress, shaping_gamma: 0.99}",
            gamma=0.99,
        )


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"env": "rewardlab/GridEmpti-v0", "steps": 10}, r"unknown env id.*GridEmpty-v0"),
        ({"env": "rewardlab/GridEmpty-v0", "steps": 10, "algo": "pp0"}, "unknown algorithm"),
        (
            {
                "env": "rewardlab/GridEmpty-v0",
                "steps": 10,
                "reward": "sparse",
                "env_kwargs": {"sise": 5},
            },
            "rejects env_kwargs",
        ),
        ({"env": "rewardlab/GridEmpty-v0", "steps": 10, "reward": "carl"}, "rejects env_kwargs"),
    ],
)
def test_check_config_fails_before_training(data: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_config(TrainConfig.from_dict(data))


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"config\.steps: Input should be greater than 0"):
        TrainConfig.from_dict({"env": "rewardlab/GridEmpty-v0", "steps": -5})
    with pytest.raises(ValueError, match=r"config\.reward: .*unknown reward 'pbrss'.*\['pbrs'"):
        TrainConfig.from_dict({"env": "rewardlab/GridEmpty-v0", "steps": 5, "reward": "pbrss"})
    with pytest.raises(ValueError, match=r"config\.eval_frequency: Extra inputs"):
        TrainConfig.from_dict({"env": "rewardlab/GridEmpty-v0", "steps": 5, "eval_frequency": 3})


def test_evaluation_runs_episodes_in_lockstep_with_their_seeds() -> None:
    class Policy:
        """Turns left on odd x, else forward; batched like an SB3 model; counts its calls."""

        def __init__(self) -> None:
            self.calls: list[int] = []

        def predict(self, obs: np.ndarray, deterministic: bool = True):
            self.calls.append(len(obs))
            return np.where(np.round(obs[:, 0] * 10) % 2 == 1, 0, 2), None

    seeds = [0, 1, 2, 3]
    envs = [gym.make("rewardlab/GridEmpty-v0", size=5) for _ in seeds]
    policy = Policy()
    result = evaluate_policy_on_task(policy, envs, seeds)  # type: ignore[arg-type]
    assert policy.calls[0] == len(seeds) and len(policy.calls) == max(result.lengths)
    # The same episodes one at a time.
    for k, seed in enumerate(seeds):
        env = gym.make("rewardlab/GridEmpty-v0", size=5)
        obs, _ = env.reset(seed=seed)
        total, steps, done = 0.0, 0, False
        while not done:
            action = int(policy.predict(obs[None])[0][0])
            obs, r, term, trunc, info = env.step(action)
            total, steps, done = total + float(r), steps + 1, term or trunc
        assert (result.returns[k], result.lengths[k], result.successes[k]) == (
            total,
            steps,
            info["is_success"],
        )
    with pytest.raises(ValueError, match="one env per seed"):
        evaluate_policy_on_task(policy, envs, [0, 1])  # type: ignore[arg-type]


@pytest.mark.slow
def test_pbrs_agent_learns_the_empty_room(tmp_path: Path) -> None:
    config = TrainConfig(
        env="rewardlab/GridEmpty-v0",
        env_kwargs={"size": 6},
        reward="pbrs",
        steps=30_000,
        eval_freq=10_000,
        eval_episodes=20,
    )
    result = train(config, tmp_path)
    assert result.evals[0]["success_rate"] < 0.5
    assert result.evals[-1]["success_rate"] >= 0.9


def test_runs_with_different_seeds_share_no_training_env_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rewardlab.vec as vec_module

    built = []
    original = vec_module.make_vec_env

    def recording(*args, **kwargs):
        venv = original(*args, **kwargs)
        built.append(venv)
        return venv

    monkeypatch.setattr(vec_module, "make_vec_env", recording)
    for seed in (0, 1):
        config = TrainConfig(
            env="rewardlab/GridEmpty-v0",
            hyperparams={**SMALL, "n_envs": 3},
            steps=32,
            seed=seed,
            eval_freq=32,
            eval_episodes=1,
        )
        train(config, tmp_path / str(seed))
    # SB3 seeds sub-env i with seed + i when it builds the agent: runs 0 and 1 would share
    # two of three envs. train re-seeds them with seed * n_envs + i.
    seeds = [[env.unwrapped.np_random_seed for env in v.unwrapped.envs] for v in built]
    assert seeds == [[0, 1, 2], [3, 4, 5]]


def test_reward_components_are_logged_at_ten_points(tmp_path: Path) -> None:
    """Eureka's reward reflection: each component's window means, max, mean and min."""
    config = TrainConfig(
        env="rewardlab/GridEmpty-v0",
        env_kwargs={"size": 5},
        reward={"model": {"kind": "info", "key": "progress"}, "mode": "add"},
        hyperparams=SMALL,
        steps=640,
        eval_freq=640,
        eval_episodes=2,
    )
    result = train(config, tmp_path)
    reward = result.components["reward"]
    assert len(reward["values"]) == 10
    values = reward["values"]
    assert reward["min"] <= min(values) <= reward["mean"] <= max(values) <= reward["max"]
    assert reward["min"] >= 0.0  # progress plus a 0/1 success reward
    saved = (tmp_path / "reward_components.json").read_text()
    assert '"reward"' in saved
    # A budget below one rollout stops at the budget: still ten points, not one per step.
    short = train(config.model_copy(update={"steps": 50, "eval_freq": 50}), tmp_path / "short")
    assert short.steps == 50 and len(short.components["reward"]["values"]) == 10


@pytest.mark.parametrize(("steps", "n_envs", "expected"), [(200, 2, 200), (201, 2, 202)])
def test_training_stops_at_the_budget_and_the_last_evaluation_is_there(
    tmp_path: Path, steps: int, n_envs: int, expected: int
) -> None:
    # 64-step rollouts: PPO alone would train 256 steps for both budgets.
    config = TrainConfig(
        env="rewardlab/GridEmpty-v0",
        env_kwargs={"size": 5},
        hyperparams={**SMALL, "n_envs": n_envs},
        steps=steps,
        eval_freq=100,
        eval_episodes=1,
    )
    result = train(config, tmp_path)
    assert result.steps == expected  # the budget, rounded up to a whole vector step
    extra = [202] if expected > 200 else []
    assert [row["step"] for row in result.evals] == [0, 100, 200, *extra]
    assert _rows(tmp_path / "eval.csv")[-1]["step"] == expected


@pytest.mark.parametrize("gamma", [1.5, -0.1, "0.9", True])
def test_an_out_of_range_agent_gamma_fails_before_anything_is_written(
    tmp_path: Path, gamma: object
) -> None:
    config = TrainConfig(
        env="rewardlab/GridEmpty-v0", hyperparams={**SMALL, "gamma": gamma}, steps=64
    )
    with pytest.raises(ValueError, match="hyperparameter gamma must be a number in \\[0, 1\\]"):
        check_config(config)
    with pytest.raises(ValueError, match="hyperparameter gamma"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_failed_runs_folder_can_be_retried(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "failed.json").write_text('{"steps": 64, "error": "RuntimeError: boom"}')
    (run / "progress.csv").write_text("partial")
    config = TrainConfig(
        env="rewardlab/GridEmpty-v0",
        env_kwargs={"size": 5},
        hyperparams=SMALL,
        steps=64,
        eval_freq=64,
        eval_episodes=1,
    )
    result = train(config, run)
    assert result.steps >= 64
    assert not (run / "failed.json").exists()
    assert (run / "model.zip").is_file()
    assert (run / "progress.csv").read_text() != "partial"
