"""The info contract (rewardlab.info_keys) on every reward layer, per-env and vector, stacked in
any order: env_reward is the env's own reward, the records rebuild the reward returned."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import rewardlab
from rewardlab.info_keys import (
    ENV_REWARD,
    MODEL_PREFIX,
    ORIGINAL_REWARD,
    POTENTIAL,
    REWARD_LAYERS,
    SHAPING,
    check_reward_info,
)
from rewardlab.reward_models.base import RewardBatch, RewardModel, RewardOutput
from rewardlab.reward_models.compose import InfoReward, WeightedSum
from rewardlab.wrappers import (
    CaptureFrames,
    CaptureState,
    MismatchedShaping,
    ModelReward,
    PotentialShaping,
    ProgressBonus,
)
from rewardlab.wrappers.vec import (
    VecMismatchedShaping,
    VecModelReward,
    VecPotentialShaping,
    VecProgressBonus,
)

ENV_ID = "rewardlab/GridEmpty-v0"
KWARGS = {"size": 5, "render_width": 32, "render_height": 32, "reward_type": "dense"}
TINY = "rewardlab-tiny-clip"


class _EnvReward(gym.Wrapper[Any, Any, Any, Any]):
    """Innermost: remembers the env's own reward of the last step."""

    last: float = float("nan")

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.last = float(reward)
        return obs, reward, terminated, truncated, info


class _Components(RewardModel):
    """A model whose component names an env key (``progress``): it must not overwrite it."""

    needs_info = ("progress",)

    def __call__(self, batch: RewardBatch) -> RewardOutput:
        progress = np.asarray(batch.info["progress"], dtype=np.float64)
        near = -np.abs(batch.next_obs[:, 0]).astype(np.float64)
        return RewardOutput(progress + near, {"progress": progress, "near": near})


def _clip() -> RewardModel:
    torch = pytest.importorskip("torch")
    open_clip = pytest.importorskip("open_clip")
    from rewardlab.reward_models.clip import CLIPRewardModel

    config = Path(__file__).resolve().parents[1] / "reward_models" / f"{TINY}.json"
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    task = rewardlab.get_task(gym.make(ENV_ID, **KWARGS))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return CLIPRewardModel.from_task(task, model=TINY, pretrained=None, device="cpu")


def _program() -> RewardModel:
    from rewardlab.reward_models.program_reward import ProgramReward, reference_program

    shapes = {"agent_pos": (2,), "goal_pos": (2,)}
    return ProgramReward(reference_program("reach_goal"), shapes)


# name -> (per-env wrapper, vector layer), each taking the env and a model factory's model.
Layer = tuple[Callable[[Any], Any], Callable[[Any], Any]]
LAYERS: dict[str, Callable[[], Layer]] = {
    "model": lambda: (
        lambda e: ModelReward(e, _Components()),
        lambda v: VecModelReward(v, _Components()),
    ),
    "model_add": lambda: (
        lambda e: ModelReward(e, InfoReward("progress"), mode="add"),
        lambda v: VecModelReward(v, InfoReward("progress"), mode="add"),
    ),
    "composition": lambda: (
        lambda e: ModelReward(e, _sum()),
        lambda v: VecModelReward(v, _sum()),
    ),
    "shaping": lambda: (
        lambda e: PotentialShaping(e, "progress", 0.99),
        lambda v: VecPotentialShaping(v, "progress", 0.99),
    ),
    "bonus": lambda: (
        lambda e: ProgressBonus(e, "progress", 0.5),
        lambda v: VecProgressBonus(v, "progress", 0.5),
    ),
    "mismatched": lambda: (
        lambda e: MismatchedShaping(e, lambda obs: obs[:, 0], 0.9, 0.99),
        lambda v: VecMismatchedShaping(v, lambda obs: obs[:, 0], 0.9, 0.99),
    ),
}


def _sum() -> WeightedSum:
    return WeightedSum(
        {"progress": InfoReward("progress"), "success": InfoReward("is_success")},
        {"progress": 2.0, "success": 1.0},
    )


def _base(max_steps: int = 9) -> _EnvReward:
    env = gym.make(ENV_ID, max_episode_steps=max_steps, render_mode="rgb_array", **KWARGS)
    return _EnvReward(env)


def _run_per_env(env: gym.Env[Any, Any], inner: _EnvReward, n_layers: int, steps: int) -> None:
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    ended = 0
    for _ in range(steps):
        _, reward, terminated, truncated, info = env.step(int(rng.integers(0, 5)))
        assert info[ENV_REWARD] == info[ORIGINAL_REWARD] == inner.last
        assert len(info[REWARD_LAYERS]) == n_layers
        check_reward_info(info, float(reward))
        if terminated or truncated:
            ended += 1
            env.reset()
    assert ended >= 2  # the identity holds across episode boundaries


ORDERS = [*itertools.permutations(LAYERS, 2), ("model", "shaping", "bonus")]


@pytest.mark.parametrize("order", ORDERS, ids="-".join)
def test_per_env_layers_in_any_order(order: tuple[str, ...]) -> None:
    inner = _base()
    env: Any = inner
    for name in order:
        env = LAYERS[name]()[0](env)
    _run_per_env(env, inner, len(order), 40)
    assert [r[0] for r in _last_records(env)] == [_record_name(n) for n in order]


def _record_name(layer: str) -> str:
    return {
        "model_add": "model",
        "composition": "model",
        "bonus": "progress_bonus",
        "mismatched": "mismatched_shaping",
    }.get(layer, layer)


def _last_records(env: gym.Env[Any, Any]) -> list[Any]:
    env.reset(seed=1)
    return env.step(0)[4][REWARD_LAYERS]


def _vec(layers: list[Callable[[Any], Any]], per_env: list[Callable[[Any], Any]] = ()) -> Any:
    def make() -> gym.Env[Any, Any]:
        env: Any = CaptureState(CaptureFrames(Monitor(_base())))
        for wrap in per_env:
            env = wrap(env)
        return env

    venv: Any = DummyVecEnv([make] * 3)
    for layer in layers:
        venv = layer(venv)
    return venv


def _run_vec(venv: Any, n_layers: int, steps: int = 40) -> None:
    inners = [e for e in _innermost(venv)]
    rng = np.random.default_rng(0)
    venv.seed(0)
    venv.reset()
    ended = 0
    for _ in range(steps):
        _, rewards, dones, infos = venv.step(rng.integers(0, 5, size=3))
        for i, info in enumerate(infos):
            # The env's own reward, as SB3's DummyVecEnv stores it (float32) or exactly.
            assert info[ENV_REWARD] in (inners[i].last, float(np.float32(inners[i].last)))
            assert info[ORIGINAL_REWARD] == info[ENV_REWARD]
            assert len(info[REWARD_LAYERS]) == n_layers
            check_reward_info(info, float(rewards[i]))
        ended += int(np.sum(dones))
    assert ended >= 3
    venv.close()


def _innermost(venv: Any) -> list[_EnvReward]:
    while hasattr(venv, "venv"):
        venv = venv.venv
    found = []
    for env in venv.envs:
        while not isinstance(env, _EnvReward):
            env = env.env
        found.append(env)
    return found


@pytest.mark.parametrize("order", ORDERS, ids="-".join)
def test_vector_layers_in_any_order(order: tuple[str, ...]) -> None:
    _run_vec(_vec([LAYERS[name]()[1] for name in order]), len(order))


@pytest.mark.parametrize("order", [("model", "shaping"), ("shaping", "composition")], ids="-".join)
def test_per_env_layers_under_vector_layers(order: tuple[str, str]) -> None:
    # A per-env layer in each sub-env, a vector layer over the DummyVecEnv: the float32 buffer
    # between them is the one rounding the identity allows.
    inside, outside = order
    _run_vec(_vec([LAYERS[outside]()[1]], [LAYERS[inside]()[0]]), 2)


def test_clip_and_program_layers_keep_the_contract() -> None:
    clip, program = _clip(), _program()
    inner = _base()
    env: Any = CaptureState(inner)
    env = PotentialShaping(ModelReward(env, clip), program, 0.99)
    _run_per_env(env, inner, 2, 30)
    env.close()
    venv = _vec(
        [lambda v: VecModelReward(v, _program(), mode="add"), lambda v: VecModelReward(v, clip)]
    )
    _run_vec(venv, 2, 30)


def test_issue_example_keeps_the_env_reward() -> None:
    # Two layers stacked: original_reward used to hold the inner layer's output.
    keydoor = gym.make("rewardlab/GridKeyDoor-v0", reward_type="dense", max_episode_steps=60)
    inner = _EnvReward(keydoor)
    env = PotentialShaping(ModelReward(inner, InfoReward("progress")), "progress", 0.99)
    _run_per_env(env, inner, 2, 200)


def test_components_keep_their_own_prefix() -> None:
    inner = _base()
    env = ModelReward(inner, _Components())
    env.reset(seed=0)
    _, reward, _, _, info = env.step(2)
    assert info[MODEL_PREFIX + "progress"] + info[MODEL_PREFIX + "near"] == reward
    assert info["progress"] == info[MODEL_PREFIX + "progress"]  # the env's key is untouched


class _Reports(gym.Wrapper[Any, Any, Any, Any]):
    def __init__(self, env: gym.Env[Any, Any], key: str) -> None:
        super().__init__(env)
        self.key = key

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info[self.key] = 1.0
        return obs, reward, terminated, truncated, info


@pytest.mark.parametrize("key", [SHAPING, POTENTIAL, ENV_REWARD, "original_reward"])
def test_an_env_reporting_a_reserved_key_is_refused(key: str) -> None:
    for layer in (ModelReward(_Reports(_base(), key), InfoReward("progress")),):
        layer.reset(seed=0)
        with pytest.raises(ValueError, match=f"reports info keys \\['{key}'\\]"):
            layer.step(0)
    venv = _vec([LAYERS["shaping"]()[1]], [lambda e: _Reports(e, key)])
    venv.reset()
    with pytest.raises(ValueError, match="rename them in the env"):
        venv.step(np.zeros(3, dtype=np.int64))


def test_check_reward_info_names_a_broken_record() -> None:
    info = {
        ENV_REWARD: 1.0,
        ORIGINAL_REWARD: 1.0,
        REWARD_LAYERS: [("model", 1.0, 2.0, 2.0), ("shaping", 2.0, 0.5, 2.6)],
    }
    with pytest.raises(ValueError, match="layer 'shaping' returned 2.6"):
        check_reward_info(info, 2.6)
    info[REWARD_LAYERS][1] = ("shaping", 2.0, 0.5, 2.5)
    check_reward_info(info, 2.5)
    with pytest.raises(ValueError, match="the reward returned is 2.4"):
        check_reward_info(info, 2.4)
