"""Per-env and VecEnv reward adapters agree step by step; frames, Monitor and errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

import rewardlab
from rewardlab.reward_models.base import RewardBatch, RewardModel, RewardOutput
from rewardlab.wrappers import (
    CaptureFrames,
    MismatchedShaping,
    ModelReward,
    PotentialShaping,
    ProgressBonus,
    VecMismatchedShaping,
    VecModelReward,
    VecPotentialShaping,
    VecProgressBonus,
    check_shaping_gamma,
)

ENV_ID = "rewardlab/GridEmpty-v0"
MAX_STEPS = 6
SMALL = {"size": 4, "render_width": 32, "render_height": 32}
N_ENVS = 3
N_STEPS = 60


class TransitionReward(RewardModel):
    """Depends on s, a, s', terminated and info, row by row; counts its calls."""

    needs_info = ("progress",)

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, batch: RewardBatch) -> RewardOutput:
        self.calls += 1
        a = np.asarray(batch.action, dtype=np.float64).reshape(len(batch), -1)[:, 0]
        state = batch.obs[:, 0] - 2.0 * batch.next_obs[:, 1] + 0.1 * a
        done = 3.0 * batch.terminated
        progress = np.asarray(batch.info["progress"], dtype=np.float64)
        return RewardOutput(state + done + progress, {"state": state, "done": done + progress})


def _frame_score(frames: np.ndarray) -> np.ndarray:
    """A position-sensitive fingerprint of each frame in ``(B, H, W, 3)``."""
    flat = frames.reshape(len(frames), -1).astype(np.float64)
    return flat @ (np.arange(flat.shape[1]) % 7 + 1.0)


class FrameMean(RewardModel):
    """A fingerprint of the frame of s'."""

    needs_frames = True

    def __call__(self, batch: RewardBatch) -> RewardOutput:
        assert batch.frames is not None
        return RewardOutput(_frame_score(batch.frames))


def _obs_potential(obs: np.ndarray) -> np.ndarray:
    return np.asarray(obs[:, 0] + 0.5 * obs[:, 1], dtype=np.float64)


def _make(frames: bool = False) -> gym.Env[Any, Any]:
    env: gym.Env[Any, Any] = Monitor(
        gym.make(
            ENV_ID,
            max_episode_steps=MAX_STEPS,
            render_mode="rgb_array" if frames else None,
            **SMALL,
        )
    )
    return CaptureFrames(env) if frames else env


def _actions(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 3, size=(N_STEPS, N_ENVS))


def _per_env(wrap: Callable[[gym.Env[Any, Any]], gym.Env[Any, Any]], frames: bool = False):
    """Rewards, dones and infos of N_ENVS per-env wrapped envs, reset by hand like SB3."""
    envs = [wrap(_make(frames)) for _ in range(N_ENVS)]
    for i, env in enumerate(envs):
        env.reset(seed=10 + i)
    rewards, dones, infos = [], [], []
    for acts in _actions():
        row_r, row_d, row_i = [], [], []
        for env, a in zip(envs, acts, strict=True):
            _, r, term, trunc, info = env.step(int(a))
            row_r.append(r)
            row_d.append(term or trunc)
            row_i.append(info)
            if term or trunc:
                env.reset()
        rewards.append(row_r)
        dones.append(row_d)
        infos.append(row_i)
    return np.array(rewards, dtype=np.float64), np.array(dones), infos


def _vec(vec_cls: type, wrap: Callable[[Any], Any], frames: bool = False):
    fns = [lambda: _make(frames) for _ in range(N_ENVS)]
    kwargs = {"start_method": "fork"} if vec_cls is SubprocVecEnv else {}
    venv = wrap(vec_cls(fns, **kwargs))
    venv.seed(10)
    venv.reset()
    rewards, dones, infos = [], [], []
    try:
        for acts in _actions():
            _, r, d, info = venv.step(acts)
            rewards.append(r)
            dones.append(d)
            infos.append(info)
    finally:
        venv.close()
    return np.array(rewards), np.array(dones), infos


VEC_CLASSES = [DummyVecEnv, SubprocVecEnv]


@pytest.mark.parametrize("vec_cls", VEC_CLASSES)
def test_model_reward_per_env_and_vec_agree(vec_cls: type) -> None:
    r1, d1, _ = _per_env(lambda e: ModelReward(e, TransitionReward()))
    r2, d2, i2 = _vec(vec_cls, lambda v: VecModelReward(v, TransitionReward()))
    np.testing.assert_array_equal(d1, d2)
    truncs = sum(i.get("TimeLimit.truncated", False) for row in i2 for i in row)
    assert truncs > 0 and d2.sum() > truncs, "need both truncations and terminations"
    np.testing.assert_array_equal(r1, r2)


@pytest.mark.parametrize("mode", ["add"])
def test_model_reward_add_mode_agrees(mode: str) -> None:
    r1, _, i1 = _per_env(lambda e: ModelReward(e, TransitionReward(), mode=mode))  # type: ignore[arg-type]
    r2, _, i2 = _vec(DummyVecEnv, lambda v: VecModelReward(v, TransitionReward(), mode=mode))  # type: ignore[arg-type]
    orig1 = np.array([[i["original_reward"] for i in row] for row in i1])
    model1 = r1 - orig1
    # DummyVecEnv passes the env reward as float32: add the same model reward to it.
    np.testing.assert_array_equal(r2, orig1.astype(np.float32).astype(np.float64) + model1)
    comp1 = np.array([[i["reward_model/state"] for i in row] for row in i1])
    comp2 = np.array([[i["reward_model/state"] for i in row] for row in i2])
    np.testing.assert_array_equal(comp1, comp2)


@pytest.mark.parametrize("vec_cls", VEC_CLASSES)
@pytest.mark.parametrize("potential", ["progress", _obs_potential])
def test_shaping_per_env_and_vec_agree(vec_cls: type, potential: Any) -> None:
    _, d1, i1 = _per_env(lambda e: PotentialShaping(e, potential, gamma=0.9))
    r2, d2, i2 = _vec(vec_cls, lambda v: VecPotentialShaping(v, potential, gamma=0.9))
    np.testing.assert_array_equal(d1, d2)
    for key in ("shaping", "potential"):
        np.testing.assert_array_equal(
            [[i[key] for i in row] for row in i1], [[i[key] for i in row] for row in i2]
        )
    orig = np.array([[i["original_reward"] for i in row] for row in i1], dtype=np.float32)
    shaping = np.array([[i["shaping"] for i in row] for row in i1])
    np.testing.assert_array_equal(r2, orig.astype(np.float64) + shaping)


@pytest.mark.parametrize("vec_cls", VEC_CLASSES)
@pytest.mark.parametrize(
    ("per_env", "vec"),
    [
        (
            lambda e: ProgressBonus(e, "progress", scale=0.5),
            lambda v: VecProgressBonus(v, "progress", scale=0.5),
        ),
        (
            lambda e: MismatchedShaping(e, _obs_potential, gamma=0.99, agent_gamma=0.9),
            lambda v: VecMismatchedShaping(v, _obs_potential, gamma=0.99, agent_gamma=0.9),
        ),
    ],
    ids=["progress_bonus", "mismatched"],
)
def test_negative_controls_per_env_and_vec_agree(vec_cls: type, per_env: Any, vec: Any) -> None:
    r1, d1, i1 = _per_env(per_env)
    r2, d2, i2 = _vec(vec_cls, vec)
    np.testing.assert_array_equal(d1, d2)
    assert d1.sum() > 0
    for key in ("shaping", "potential"):
        np.testing.assert_array_equal(
            [[i[key] for i in row] for row in i1], [[i[key] for i in row] for row in i2]
        )
    orig = np.array([[i["original_reward"] for i in row] for row in i1], dtype=np.float32)
    np.testing.assert_allclose(
        r1, orig.astype(np.float64) + [[i["shaping"] for i in row] for row in i1]
    )
    np.testing.assert_array_equal(
        r2, orig.astype(np.float64) + [[i["shaping"] for i in row] for row in i1]
    )


def test_vec_mismatched_shaping_is_skipped_by_the_gamma_check() -> None:
    venv = VecMismatchedShaping(DummyVecEnv([_make]), "progress", gamma=0.99, agent_gamma=0.9)
    check_shaping_gamma(venv, 0.9)  # a negative control: no error
    with pytest.raises(ValueError, match="gamma != agent_gamma"):
        VecMismatchedShaping(DummyVecEnv([_make]), "progress", gamma=0.9, agent_gamma=0.9)
    venv.close()


@pytest.mark.parametrize("vec_cls", VEC_CLASSES)
def test_frame_potential_per_env_and_vec_agree(vec_cls: type) -> None:
    # Phi of each new episode's first state comes from venv.reset_infos[i]["frame"].
    _, _, i1 = _per_env(lambda e: PotentialShaping(e, FrameMean(), gamma=0.9), frames=True)
    _, _, i2 = _vec(vec_cls, lambda v: VecPotentialShaping(v, FrameMean(), gamma=0.9), True)
    for key in ("shaping", "potential"):
        np.testing.assert_array_equal(
            [[i[key] for i in row] for row in i1], [[i[key] for i in row] for row in i2]
        )


def test_frame_of_last_step_is_the_final_frame() -> None:
    r2, d2, i2 = _vec(DummyVecEnv, lambda v: VecModelReward(v, FrameMean()), frames=True)
    r1, _, i1 = _per_env(lambda e: ModelReward(e, FrameMean()), frames=True)
    np.testing.assert_array_equal(r1, r2)
    # Render each episode's terminal state directly: replay the actions on a fresh env.
    assert d2.any()
    env = gym.make(ENV_ID, max_episode_steps=MAX_STEPS, render_mode="rgb_array", **SMALL)
    env.reset(seed=10)
    checked = differs = 0
    for t, acts in enumerate(_actions()):
        _, _, term, trunc, _ = env.step(int(acts[0]))
        if term or trunc:
            final = env.render()
            assert r2[t, 0] == _frame_score(final[None])[0]
            np.testing.assert_array_equal(i2[t][0]["frame"], final)
            env.reset()
            differs += not np.array_equal(env.render(), final)
            checked += 1
    # The check has teeth only if some next episode starts from a different picture.
    assert checked > 0 and differs > 0


def test_monitor_innermost_reports_unshaped_return() -> None:
    venv = rewardlab.make_vec_env(
        ENV_ID,
        n_envs=2,
        reward=TransitionReward(),
        shaping="progress",
        gamma=0.9,
        env_kwargs={"max_episode_steps": MAX_STEPS, **SMALL},
    )
    venv.reset()
    rng = np.random.default_rng(0)
    episodes: list[tuple[float, float]] = []
    shaped = np.zeros(2)
    for _ in range(40):
        _, r, d, infos = venv.step(rng.integers(0, 3, size=2))
        shaped += r
        for i in np.flatnonzero(d):
            episodes.append((infos[i]["episode"]["r"], shaped[i]))
            shaped[i] = 0.0
    venv.close()
    assert episodes
    # Monitor sees the env's sparse reward (>= 0), never the model's or the shaping.
    assert all(ep_r >= 0.0 for ep_r, _ in episodes)
    assert any(abs(ep_r - s) > 1e-3 for ep_r, s in episodes)


def test_one_model_call_per_vec_step() -> None:
    model = TransitionReward()
    venv = VecModelReward(DummyVecEnv([_make] * 4), model)
    venv.reset()
    for _ in range(10):
        venv.step(np.zeros(4, dtype=np.int64))
    assert model.calls == 10


def test_errors() -> None:
    with pytest.raises(RuntimeError, match="reset"):
        ModelReward(_make(), TransitionReward()).step(0)
    with pytest.raises(RuntimeError, match="reset"):
        VecModelReward(DummyVecEnv([_make]), TransitionReward()).step(np.zeros(1, dtype=int))
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        ModelReward(_make(), FrameMean())
    with pytest.raises(ValueError, match="CaptureFrames"):
        VecModelReward(DummyVecEnv([_make]), FrameMean())
    with pytest.raises(ValueError, match="render_mode"):
        CaptureFrames(gym.make(ENV_ID))
    with pytest.raises(ValueError, match="mode"):
        ModelReward(_make(), TransitionReward(), mode="multiply")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="RewardModel"):
        VecModelReward(DummyVecEnv([_make]), lambda b: b)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown potential"):
        VecPotentialShaping(DummyVecEnv([_make]), "distance", gamma=0.9)
    with pytest.raises(ValueError, match="gamma"):
        VecPotentialShaping(DummyVecEnv([_make]), "progress", gamma=1.5)
    with pytest.raises(ValueError, match="rewardlab envs"):
        rewardlab.make_vec_env("rewardlab/GridEmpti-v0")
    with pytest.raises(ValueError, match="unknown reward 'pbr'.*did you mean \\['pbrs'"):
        rewardlab.make_vec_env(ENV_ID, reward="pbr")
    with pytest.raises(ValueError, match="shapes already"):
        rewardlab.make_vec_env(ENV_ID, reward="pbrs", shaping="progress")
    with pytest.raises(ValueError, match="n_envs must be a positive int"):
        rewardlab.make_vec_env(ENV_ID, 0)


def test_make_vec_is_a_deprecated_alias() -> None:
    with pytest.warns(DeprecationWarning, match="make_vec_env"):
        venv = rewardlab.make_vec(ENV_ID, 2, shaping="progress", gamma=0.9, seed=3)
    assert isinstance(venv, VecPotentialShaping) and venv.gamma == 0.9 and venv.num_envs == 2
    venv.close()
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="CaptureFrames"):
        rewardlab.make_vec(ENV_ID, reward=FrameMean(), capture_frames=False)


def test_make_vec_env_closes_built_models_when_it_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[str] = []

    class Held(TransitionReward):
        def close(self) -> None:
            closed.append("held")

    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        rewardlab.make_vec_env(
            ENV_ID, reward=Held(), shaping=FrameMean(), env_kwargs={"render_mode": "human"}
        )
    assert closed == ["held"]
    # Failing once the vector env is built (a bad mode): its sub-envs are closed as well.
    built: list[DummyVecEnv] = []

    class Recording(DummyVecEnv):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            built.append(self)

        def close(self) -> None:
            closed.append("venv")
            super().close()

    with pytest.raises(ValueError, match="mode must be one of"):
        rewardlab.make_vec_env(ENV_ID, reward=Held(), reward_mode="multiply", vec_env_cls=Recording)  # type: ignore[arg-type]
    assert len(built) == 1 and closed == ["held", "venv", "held"]


def test_make_vec_frames_and_seeds() -> None:
    venv = rewardlab.make_vec_env(ENV_ID, n_envs=2, reward=FrameMean(), seed=3)
    assert all(venv.env_is_wrapped(CaptureFrames))
    obs = venv.reset()
    _, r, _, infos = venv.step(np.zeros(2, dtype=np.int64))
    assert r.shape == (2,) and "frame" in infos[0]
    venv.close()
    ref = gym.make(ENV_ID)
    np.testing.assert_array_equal(obs[1], ref.reset(seed=4)[0])


def test_check_shaping_gamma_sees_vec_shaping() -> None:
    venv = VecPotentialShaping(DummyVecEnv([_make]), "progress", gamma=0.9)
    check_shaping_gamma(venv, 0.9)
    with pytest.raises(ValueError, match="gamma=0.9"):
        check_shaping_gamma(venv, 0.99)


def test_shaping_discount_check_callback_with_ppo() -> None:
    from stable_baselines3 import PPO

    from rewardlab.agents import ShapingDiscountCheck

    venv = rewardlab.make_vec_env(ENV_ID, n_envs=1, shaping="progress", gamma=0.9)
    model = PPO("MlpPolicy", venv, gamma=0.99, n_steps=8, batch_size=8, n_epochs=1, device="cpu")
    with pytest.raises(ValueError, match="agent discounts"):
        model.learn(8, callback=ShapingDiscountCheck())
    ok = PPO("MlpPolicy", venv, gamma=0.9, n_steps=8, batch_size=8, n_epochs=1, device="cpu")
    ok.learn(8, callback=ShapingDiscountCheck())


def test_check_shaping_gamma_reaches_into_subprocesses() -> None:
    def shaped() -> gym.Env:
        return PotentialShaping(_make(), "progress", gamma=0.9)

    venv = SubprocVecEnv([shaped, _make], start_method="fork")
    try:
        check_shaping_gamma(venv, 0.9)
        with pytest.raises(ValueError, match="gamma=0.9.*gamma=0.99"):
            check_shaping_gamma(venv, 0.99)
        outer = VecPotentialShaping(SubprocVecEnv([_make], start_method="fork"), "progress", 0.99)
        check_shaping_gamma(outer, 0.99)  # nothing shaped inside: only the outer layer counts
        outer.close()
    finally:
        venv.close()


def test_wrappers_record_models_by_reference() -> None:
    # Gymnasium deep-copies recorded constructor args by default: that would clone a model
    # (a CLIP encoder is hundreds of MB) for every wrapper.
    model = TransitionReward()
    env = ModelReward(_make(), model)
    assert env._saved_kwargs["model"] is model
    shaped = PotentialShaping(_make(), model, gamma=0.9)
    assert shaped._saved_kwargs["potential"] is model
