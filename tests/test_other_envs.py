"""Envs that are not rewardlab's: what cannot work says so before any work, in one line;
what can work (a CLIP reward with the user's own prompts) does."""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import open_clip
import pytest

from rewardlab.cli import main
from rewardlab.wrappers.clip import CLIPReward

TINY = "rewardlab-tiny-clip"
open_clip.add_model_config(Path(__file__).resolve().parent / "reward_models" / f"{TINY}.json")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["train", "--env", "CartPole-v1", "--reward", "pbrs", "--steps", "600"],
            "info key 'progress', which the progress potential of pbrs",
        ),
        (
            ["train", "--env", "CartPole-v1", "--reward", "env", "--steps", "600"],
            "info key 'is_success', which the evaluation on the true task",
        ),
        (
            ["eval-reward", "--env", "InvertedPendulum-v5"],
            "InvertedPendulum-v5 is not one",
        ),
    ],
)
def test_what_an_env_lacks_fails_before_any_work(
    args: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # default output folders would land here
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def _pendulum() -> gym.Env:
    return gym.make("InvertedPendulum-v5", render_mode="rgb_array", width=64, height=64)


def test_a_clip_reward_on_another_env_takes_the_users_prompts() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # random weights warn
        env = CLIPReward(_pendulum(), TINY, None, device="cpu", goal="a pole upright",
                         head="cosine")  # fmt: skip
        env.reset(seed=0)
        reward = env.step(env.action_space.sample())[1]
        assert np.isfinite(reward)
        env.close()
        # The default head needs a baseline caption; no task supplies one here.
        with pytest.raises(ValueError, match="pass baseline=, or head='cosine'"):
            CLIPReward(_pendulum(), TINY, None, device="cpu", goal="a pole upright")
        with pytest.raises(TypeError, match="not a rewardlab env.*pass goal="):
            CLIPReward(_pendulum(), TINY, None, device="cpu")
