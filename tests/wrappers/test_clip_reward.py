"""CLIPReward on a tiny, randomly initialized open_clip architecture (no downloads)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

import rewardlab  # noqa: E402
from rewardlab.info_keys import MODEL_FRESH  # noqa: E402
from rewardlab.reward_models.clip import CLIPOptions, CLIPRewardModel  # noqa: E402
from rewardlab.reward_spec import parse_reward  # noqa: E402
from rewardlab.wrappers import CLIPReward, PotentialShaping  # noqa: E402

TINY = "rewardlab-tiny-clip"
open_clip.add_model_config(Path(__file__).resolve().parents[1] / "reward_models" / f"{TINY}.json")

ENV_ID = "rewardlab/GridEmpty-v0"
# Frames at the tiny encoder's 32x32 input size: no resizing.
SMALL = {"size": 4, "render_width": 32, "render_height": 32}


def make_env(max_episode_steps: int = 100, **kwargs: Any) -> gym.Env[Any, Any]:
    kwargs.setdefault("render_mode", "rgb_array")
    return gym.make(ENV_ID, max_episode_steps=max_episode_steps, **SMALL, **kwargs)


def wrap(env: gym.Env[Any, Any], **kwargs: Any) -> CLIPReward:
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="RANDOM weights"):
        return CLIPReward(env, TINY, None, device="cpu", **kwargs)


@pytest.fixture(scope="module")
def clip() -> CLIPRewardModel:
    torch.manual_seed(0)
    task = rewardlab.get_task(make_env())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return CLIPRewardModel.from_task(task, model=TINY, pretrained=None, device="cpu")


def direct(model: CLIPRewardModel, frame: np.ndarray) -> float:
    return float(model.score(model.encode_frames(np.asarray(frame)[None]))[0])


def count_encodes(model: CLIPRewardModel, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    encode = model.encode_frames

    def counted(frames: np.ndarray) -> np.ndarray:
        calls.append(len(frames))
        return encode(frames)

    monkeypatch.setattr(model, "encode_frames", counted)
    return calls


def test_prompts_default_to_the_task() -> None:
    env = wrap(make_env(), head="goal_baseline")
    task = rewardlab.get_task(env)
    np.testing.assert_allclose(env.clip.goal_embedding, env.clip.embed_prompts([task.goal]))
    assert env.clip.baseline_embedding is not None
    np.testing.assert_allclose(env.clip.baseline_embedding, env.clip.embed_prompts([task.baseline]))
    assert len(env.clip.negative_embeddings) == len(task.negatives)


def test_reward_is_the_model_on_the_frame_after_the_step(clip: CLIPRewardModel) -> None:
    env = CLIPReward(make_env(), clip)
    env.reset(seed=0)
    for action in [0, 1, 2, 2, 1, 2]:
        _, reward, _, _, info = env.step(action)
        expected = direct(clip, env.render())
        assert reward == pytest.approx(expected, abs=1e-9)
        assert info["reward_model/clip"] == pytest.approx(expected, abs=1e-9)
        assert info["original_reward"] == 0.0


def test_every_repeats_values_and_evaluates_the_last_step(
    clip: CLIPRewardModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = CLIPReward(make_env(max_episode_steps=5), clip, every=3)
    calls = count_encodes(clip, monkeypatch)
    env.reset(seed=0)
    rewards, frames = [], []
    truncated = False
    for action in [2, 1, 2, 0, 1]:
        _, reward, terminated, truncated, _ = env.step(action)
        assert not terminated
        rewards.append(reward)
        frames.append(env.render())
    assert truncated
    # Evaluated on steps 1 and 4, and on step 5 because the episode was truncated there.
    assert len(calls) == 3
    assert rewards[1] == rewards[2] == rewards[0] == pytest.approx(direct(clip, frames[0]))
    assert rewards[3] == pytest.approx(direct(clip, frames[3]))
    assert rewards[4] == pytest.approx(direct(clip, frames[4]))

    # A terminated episode: the expert reaches the goal long before step 100.
    env = CLIPReward(make_env(), clip, every=100)
    calls.clear()
    obs, _ = env.reset(seed=1)
    act = rewardlab.expert_policy(env)
    terminated = steps = 0
    while not terminated:
        obs, reward, terminated, _, _ = env.step(act(obs))
        steps += 1
    last_frame = env.render()
    assert steps > 2 and len(calls) == 2  # the first and the last step
    assert reward == pytest.approx(direct(clip, last_frame))
    calls.clear()
    # The next episode starts afresh: its first step is evaluated.
    env.reset(seed=2)
    env.step(0)
    assert len(calls) == 1


def test_errors(clip: CLIPRewardModel) -> None:
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        CLIPReward(make_env(render_mode=None), clip)
    with pytest.raises(ValueError, match="unknown head 'cosin'"):
        CLIPReward(make_env(), clip, head="cosin")
    with pytest.raises(ValueError, match="unknown head 'cosin'"):
        CLIPReward(make_env(), TINY, None, "cosin")
    with pytest.raises(ValueError, match="every must be an int >= 1, got 0"):
        CLIPReward(make_env(), clip, every=0)
    with pytest.raises(ValueError, match="has its own prompts"):
        CLIPReward(make_env(), clip, goal="a robot")
    with pytest.raises(ValueError, match=r"\['device', 'resize'\] given with a built"):
        CLIPReward(make_env(), clip, device="cpu", resize="center_crop")
    with pytest.raises(ValueError, match=r"\['pretrained'\] given with a built"):
        CLIPReward(make_env(), clip, None)
    with pytest.raises(TypeError, match=r"unknown CLIP option\(s\) \['devise'\]"):
        CLIPReward(make_env(), TINY, None, devise="cpu")


def test_another_head_shares_the_encoder(clip: CLIPRewardModel) -> None:
    env = CLIPReward(make_env(), clip, head="softmax", temperature=0.1)
    assert env.clip.clip_model is clip.clip_model and env.clip.head == "softmax"
    assert clip.head == CLIPOptions.head


def test_make_vec_matches_per_env_wrappers(clip: CLIPRewardModel) -> None:
    kwargs = {**SMALL, "max_episode_steps": 4}
    venv = rewardlab.make_vec_env(ENV_ID, n_envs=2, reward=clip, env_kwargs=kwargs, seed=3)
    envs = [CLIPReward(gym.make(ENV_ID, render_mode="rgb_array", **kwargs), clip) for _ in "ab"]
    venv.reset()
    for i, env in enumerate(envs):
        env.reset(seed=3 + i)
    actions = np.random.default_rng(0).integers(0, 3, size=(10, 2))
    for step_actions in actions:
        _, vec_rewards, dones, _ = venv.step(step_actions)
        for i, env in enumerate(envs):
            _, reward, terminated, truncated, _ = env.step(int(step_actions[i]))
            assert vec_rewards[i] == pytest.approx(reward, abs=1e-5)
            assert dones[i] == (terminated or truncated)
            if dones[i]:
                env.reset()
    venv.close()


def test_ppo_smoke_with_shaping(clip: CLIPRewardModel) -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    def make() -> gym.Env[Any, Any]:
        return PotentialShaping(CLIPReward(Monitor(make_env(10)), clip), "progress", gamma=0.99)

    agent = PPO("MlpPolicy", DummyVecEnv([make]), n_steps=8, batch_size=8, n_epochs=1, seed=0)
    agent.learn(20)
    assert agent.num_timesteps >= 20


def test_records_the_users_arguments_and_shares_the_model(clip: CLIPRewardModel) -> None:
    env = CLIPReward(make_env(), clip, every=2)
    assert env._saved_kwargs["model"] is clip
    assert env._saved_kwargs["every"] == 2


def test_model_fresh_marks_the_steps_the_encoder_ran(
    clip: CLIPRewardModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = CLIPReward(make_env(max_episode_steps=7), clip, every=3)
    calls = count_encodes(clip, monkeypatch)
    rng = np.random.default_rng(0)
    seen_last_step = 0
    for episode in range(3):
        env.reset(seed=episode)
        for t in range(1, 8):
            before = len(calls)
            _, reward, terminated, truncated, info = env.step(int(rng.integers(0, 3)))
            ran = len(calls) > before
            assert info[MODEL_FRESH] is ran, (episode, t)
            # Steps 1, 4, 7 of each episode, and its last step whenever it ends.
            assert ran == ((t - 1) % 3 == 0 or terminated or truncated), (episode, t)
            if ran:
                assert reward == pytest.approx(direct(clip, env.render()))
            if terminated or truncated:
                seen_last_step += 1
                assert info[MODEL_FRESH]
                break
    assert seen_last_step == 3
    # every=1: the model runs on every step, and says so.
    env = CLIPReward(make_env(), clip)
    env.reset(seed=0)
    assert all(env.step(a)[4][MODEL_FRESH] is True for a in [0, 1, 2])


def test_one_set_of_options_and_defaults() -> None:
    defaults = CLIPOptions()
    assert (defaults.head, dict(defaults.head_options)) == ("goal_baseline", {"alpha": 0.5})
    # The reward spec's defaults are the dataclass's: `--reward clip` builds the same options.
    spec = parse_reward("clip").model
    assert spec is not None and spec.clip_options() == defaults
    # CLIPReward with a name, with CLIPOptions, and the model built from the same options agree.
    options = CLIPOptions(
        TINY, None, device="cpu", head="softmax", head_options={"temperature": 0.1}
    )
    task = rewardlab.get_task(make_env())
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="RANDOM weights"):
        by_options = CLIPReward(make_env(), options)
    by_name = wrap(make_env(), head="softmax", temperature=0.1)
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="RANDOM weights"):
        by_task = CLIPRewardModel.from_task(task, options)
    assert by_options.clip.options == by_name.clip.options == by_task.options == options
    assert by_name._saved_kwargs["temperature"] == 0.1
    by_options.reset(seed=0)
    frame = np.asarray(by_options.render())
    # Same seed, same weights: the three models score a frame identically.
    scores = [direct(m, frame) for m in (by_options.clip, by_name.clip, by_task)]
    assert scores[0] == scores[1] == scores[2]
