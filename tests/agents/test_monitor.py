"""TrainingEpisodeLog: the proxy's episode returns, success and components, checked against
the rewards and infos of the same training run summed by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecNormalize
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from rewardlab.agents.callbacks import StopAtBudget, TrainingEpisodeLog
from rewardlab.agents.train import EPISODES_FILE, PLOT_FILE, TrainConfig, train
from rewardlab.info_keys import REWARD_LAYERS
from rewardlab.reward_models.base import RewardBatch, RewardModel, RewardOutput
from rewardlab.vec import make_vec_env

BUDGET = 640
PPO_KWARGS: dict[str, Any] = {"n_steps": 32, "batch_size": 32, "n_epochs": 1, "device": "cpu"}


class Parts(RewardModel):
    """Two components summing to the reward; with ``hostile``, a third that is NaN on the
    step that terminates an episode (so a succeeded episode's sum is NaN) and 1 elsewhere."""

    def __init__(self, hostile: bool = False) -> None:
        self.hostile = hostile

    def __call__(self, batch: RewardBatch) -> RewardOutput:
        x = np.asarray(batch.next_obs[:, 0], dtype=np.float64)
        cost = np.full(len(batch), -0.01)
        parts = {"x": x, "step_cost": cost}
        if self.hostile:
            parts["bad"] = np.where(batch.terminated, math.nan, 1.0)
        return RewardOutput(x + cost, parts)


class Recorder(VecEnvWrapper):
    """Keeps every step's rewards, dones and infos as they leave the layers below."""

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self.steps: list[tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]] = []

    def reset(self) -> VecEnvObs:
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        self.steps.append((np.array(rewards, dtype=np.float64), dones.copy(), infos))
        return obs, rewards, dones, infos


def _by_hand(recorder: Recorder, n_envs: int) -> list[dict[str, Any]]:
    """Every finished episode, summed step by step from what the recorder saw."""
    proxy, parts = np.zeros(n_envs), [dict[str, float]() for _ in range(n_envs)]
    lengths = np.zeros(n_envs, dtype=int)
    episodes = []
    for t, (rewards, dones, infos) in enumerate(recorder.steps):
        proxy += rewards
        lengths += 1
        for i, info in enumerate(infos):
            for key, value in info.items():
                if key.startswith("reward_model/"):
                    name = key.removeprefix("reward_model/")
                    parts[i][name] = parts[i].get(name, 0.0) + value
            for name, _, term, _ in info.get(REWARD_LAYERS, ()):
                parts[i][f"term/{name}"] = parts[i].get(f"term/{name}", 0.0) + term
            if dones[i]:
                episodes.append(
                    {
                        "end": (t + 1) * n_envs,
                        "proxy": proxy[i],
                        "length": lengths[i],
                        "success": info.get("is_success"),
                        "task": info["episode"]["r"],
                        "truncated": info.get("TimeLimit.truncated", False),
                        "parts": parts[i],
                    }
                )
                proxy[i], lengths[i], parts[i] = 0.0, 0, {}
    return episodes


def _train(venv: VecEnv, **log: Any) -> TrainingEpisodeLog:
    callback = TrainingEpisodeLog(BUDGET, **log)
    PPO("MlpPolicy", venv, seed=0, **PPO_KWARGS).learn(
        BUDGET, callback=[callback, StopAtBudget(BUDGET)]
    )
    return callback


def _finite_mean(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def test_episode_returns_are_the_sums_of_the_rewards_trained_on() -> None:
    # Stacked layers (a model with components, added to the env reward, then PBRS), two
    # sub-envs, a 10-step time limit (most episodes truncated) and a VecNormalize on top
    # that scales the rewards the agent sees: the proxy is the reward before it.
    venv = make_vec_env(
        "rewardlab/GridEmpty-v0",
        2,
        Parts(),
        shaping="progress",
        reward_mode="add",
        env_kwargs={"size": 4, "max_episode_steps": 10},
    )
    recorder = Recorder(venv)
    normalized = VecNormalize(recorder, norm_obs=False, norm_reward=True)
    log = _train(normalized)
    assert normalized.ret_rms.var.item() != pytest.approx(1.0)  # the scaling is real
    episodes = _by_hand(recorder, 2)
    truncated = sum(e["truncated"] for e in episodes)
    assert 0 < truncated < len(episodes)  # both ways of ending occur
    windows = log.windows
    assert len(windows) == 10 and windows[0]["start"] == 0 and windows[-1]["end"] == BUDGET
    assert all(a["end"] == b["start"] for a, b in zip(windows, windows[1:], strict=False))
    assert sum(w["episodes"] for w in windows) == len(episodes)
    for w in windows:
        mine = [e for e in episodes if w["start"] < e["end"] <= w["end"]]
        assert w["episodes"] == len(mine) and w["truncated"] == sum(e["truncated"] for e in mine)
        if not mine:
            assert w["proxy_return"] == {"mean": None, "std": None, "n": 0}
            continue
        assert w["proxy_return"]["mean"] == pytest.approx(np.mean([e["proxy"] for e in mine]))
        assert w["proxy_return"]["std"] == pytest.approx(np.std([e["proxy"] for e in mine]))
        assert w["task_return"]["mean"] == pytest.approx(np.mean([e["task"] for e in mine]))
        assert w["length"]["mean"] == pytest.approx(np.mean([e["length"] for e in mine]))
        assert w["success"] == {
            "rate": pytest.approx(np.mean([e["success"] for e in mine])),
            "n": len(mine),
        }
        failed = [e["proxy"] for e in mine if not e["success"]]
        assert w["proxy_return_failed"]["n"] == len(failed)
        if failed:
            assert w["proxy_return_failed"]["mean"] == pytest.approx(np.mean(failed))
        names = {"x", "step_cost", "term/model", "term/shaping"}
        assert set(w["components"]) == names
        for name in names:
            expected = np.mean([e["parts"][name] for e in mine])
            assert w["components"][name]["mean"] == pytest.approx(expected)
        # The layers add up: proxy = env reward + the model's term + the shaping term.
        total = sum(w["components"][n]["mean"] for n in ("term/model", "term/shaping"))
        assert w["proxy_return"]["mean"] == pytest.approx(w["task_return"]["mean"] + total)
    json.dumps(log.summary(), allow_nan=False)
    normalized.close()


def test_a_nonfinite_component_is_left_out_and_counted() -> None:
    venv = make_vec_env(
        "rewardlab/GridEmpty-v0",
        2,
        Parts(hostile=True),
        env_kwargs={"size": 4, "max_episode_steps": 10},
    )
    log = _train(venv)
    summary = json.loads(json.dumps(log.summary(), allow_nan=False))  # strict JSON
    assert summary["episodes"] == sum(w["episodes"] for w in summary["windows"]) > 0
    for w in summary["windows"]:
        bad = w["components"].get("bad", {"n": 0})
        # An episode that terminated has a NaN step in its sum; a truncated one sums 1s.
        assert bad["n"] == w["truncated"]
        assert bad.get("nonfinite", 0) == w["episodes"] - w["truncated"]
        assert w["proxy_return"]["n"] == w["episodes"]  # the reward itself stayed finite
        if bad["n"] and w["truncated"] == w["episodes"]:  # every episode summed 1 per step
            assert bad["mean"] == pytest.approx(w["length"]["mean"])
    nonfinite = [w["components"].get("bad", {}).get("nonfinite", 0) for w in summary["windows"]]
    assert sum(nonfinite) > 0  # some episodes did terminate
    venv.close()


def test_an_env_without_is_success_has_no_success_not_failure() -> None:
    from tests.envs.line_walk import IDS

    venv = make_vec_env(IDS[0], 2)  # an env with no task
    log = _train(venv)
    assert sum(w["episodes"] for w in log.windows) > 10
    assert all(w["success"] == {"rate": None, "n": 0} for w in log.windows)
    # No success reported is not a failure either.
    assert all(w["proxy_return_failed"]["n"] == 0 for w in log.windows)
    assert all(w["task_return"]["n"] == w["episodes"] for w in log.windows)
    venv.close()


def test_train_writes_the_episodes_and_a_plot(tmp_path: Path) -> None:
    config = TrainConfig(
        env="rewardlab/GridEmpty-v0",
        env_kwargs={"size": 5},
        reward={"reward_type": "dense", "shaping": "progress"},
        hyperparams={"n_envs": 2, "n_steps": 32, "batch_size": 32},
        steps=320,
        eval_freq=320,
        eval_episodes=1,
    )
    result = train(config, tmp_path)
    saved = json.loads((tmp_path / EPISODES_FILE).read_text())
    assert saved == json.loads(json.dumps(result.episodes))
    assert saved["steps"] == 320 and saved["n_envs"] == 2 and len(saved["windows"]) == 10
    # With a reward_type the env's return is the variant's reward, not the task's: left out.
    assert saved["task_return"] is False
    assert all(w["task_return"]["n"] == 0 for w in saved["windows"])
    assert "before VecNormalize" in saved["proxy"]
    assert (tmp_path / PLOT_FILE).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    quiet = train(config, tmp_path / "quiet", plot=False)
    assert quiet.episodes["episodes"] == result.episodes["episodes"]  # same seed, same run
    assert not (tmp_path / "quiet" / PLOT_FILE).exists()
