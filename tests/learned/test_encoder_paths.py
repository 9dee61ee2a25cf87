"""The fast frame path of learned rewards against plain references: channels-last encoders,
batched tensor preprocessing and the frame cache's keys change speed, never the rewards."""

from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np
import pytest
import torch

from rewardlab.learned.encoders import ImageEncoder, load_encoder
from rewardlab.learned.reward_net import LearnedReward, RewardNetConfig, TrainedOn, build_reward_net
from rewardlab.reward_models.base import RewardBatch
from rewardlab.reward_models.frame_cache import FrameEmbeddingCache

CPU = torch.device("cpu")


def _reference_module(encoder: ImageEncoder) -> Any:
    """The same weights in PyTorch's default (contiguous, NCHW) layout."""
    return copy.deepcopy(encoder.module).to(memory_format=torch.contiguous_format)


def _reference_input(encoder: ImageEncoder, frames: np.ndarray) -> torch.Tensor:
    """``(x / 255 - mean) / std`` in NCHW: the input of a frame already at the encoder's size."""
    assert frames.shape[1:3] == encoder.input_size
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).double() / 255.0
    mean = torch.tensor(encoder.mean, dtype=torch.float64).reshape(1, 3, 1, 1)
    std = torch.tensor(encoder.std, dtype=torch.float64).reshape(1, 3, 1, 1)
    return ((x - mean) / std).float().contiguous()


def _frames(n: int, size: tuple[int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *size, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", ["cnn", "efficientnet_lite0"])
def test_channels_last_encoders_give_the_default_layouts_features(name: str) -> None:
    encoder = load_encoder(name)
    first_conv = next(m for m in encoder.module.modules() if isinstance(m, torch.nn.Conv2d))
    # The fast layout is the one under test (else both sides below would be the same path).
    assert first_conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not first_conv.weight.is_contiguous()
    reference = _reference_module(encoder)
    at_size = _frames(4, encoder.input_size, seed=0)
    with torch.inference_mode():
        ready = _reference_input(encoder, at_size)
        torch.testing.assert_close(encoder.preprocess(at_size, CPU), ready, rtol=0, atol=1e-5)
        fast = encoder.features(at_size, CPU)
        torch.testing.assert_close(fast, reference(ready), rtol=1e-4, atol=1e-4)
        # A frame of another shape: the letterbox preprocessing, then both layouts.
        odd = _frames(3, (90, 150), seed=1)
        x = encoder.preprocess(odd, CPU)
        torch.testing.assert_close(encoder.features(odd, CPU), reference(x), rtol=1e-4, atol=1e-4)
    assert fast.shape == (4, encoder.dim) and fast.dtype == torch.float32


def test_a_checkpoint_of_the_default_layout_loads_into_a_channels_last_encoder() -> None:
    # Checkpoints written before the encoders went channels-last hold NCHW weights.
    old = _reference_module(load_encoder("cnn"))
    state = {k: v.contiguous() for k, v in old.state_dict().items()}
    new = load_encoder("cnn", weights=False)
    new.module.load_state_dict(state)
    assert new.module[0].weight.is_contiguous(memory_format=torch.channels_last)
    frames = _frames(5, (64, 64), seed=2)
    with torch.inference_mode():
        ready = _reference_input(new, frames)
        torch.testing.assert_close(new.features(frames, CPU), old(ready), rtol=1e-5, atol=1e-6)


def test_a_channels_last_encoder_fine_tunes_with_the_default_layouts_gradients() -> None:
    encoder = load_encoder("cnn")
    reference = _reference_module(encoder)
    frames = _frames(6, (64, 64), seed=3)
    target = torch.linspace(-1, 1, 6)
    encoder.features(frames, CPU).sum(dim=1).sub(target).square().mean().backward()
    reference(_reference_input(encoder, frames)).sum(dim=1).sub(target).square().mean().backward()
    pairs = list(zip(encoder.module.parameters(), reference.parameters(), strict=True))
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p, _ in pairs)
    assert any(p.grad.abs().max() > 0 for p, _ in pairs if p.grad is not None)
    for fast, slow in pairs:
        torch.testing.assert_close(fast.grad, slow.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_learned_reward_is_the_bare_forward_on_reference_inputs(seed: int) -> None:
    torch.manual_seed(seed)
    net = build_reward_net(RewardNetConfig(inputs="frames", encoder="cnn", hidden=(16,)))
    model = LearnedReward(net, TrainedOn("rewardlab/ManipPush-v0"), device="cpu", cache_size=64)
    uncached = LearnedReward(net, TrainedOn("rewardlab/ManipPush-v0"), device="cpu", cache_size=0)
    reference = _reference_module(net.encoder)
    frames = _frames(8, (64, 64), seed)

    def pay(m: LearnedReward, x: np.ndarray) -> np.ndarray:
        zeros = np.zeros((len(x), 1))
        return m(RewardBatch(zeros, zeros, zeros, np.zeros(len(x), bool), x)).reward

    with torch.inference_mode():
        want = net.head(reference(_reference_input(net.encoder, frames))).double().numpy()
    missed = pay(model, frames)
    np.testing.assert_allclose(missed, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(pay(uncached, frames), missed)
    # Hits, a repeated frame, a strided (non-contiguous) view and a Fortran-ordered copy of
    # cached frames all pay what the first call paid; one new frame is encoded, nothing else.
    mixed = frames[[3, 3, 0, 7]]
    np.testing.assert_array_equal(pay(model, mixed), missed[[3, 3, 0, 7]])
    np.testing.assert_array_equal(pay(model, frames[::2]), missed[::2])
    np.testing.assert_array_equal(pay(model, np.asfortranarray(frames)), missed)
    assert len(model._cache) == 8
    changed = frames[:1].copy()
    changed[0, 63, 63, 2] ^= 1  # one bit of one pixel: a new frame, encoded afresh
    np.testing.assert_array_equal(pay(model, changed), pay(uncached, changed))
    assert len(model._cache) == 9


def test_frame_cache_keys_tell_apart_shapes_with_the_same_bytes() -> None:
    calls: list[int] = []

    def encode(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return x.reshape(len(x), -1)[:, :2].astype(np.float32) + x.shape[1]

    cache = FrameEmbeddingCache(16)
    a = np.arange(2 * 4 * 6 * 3, dtype=np.uint8).reshape(2, 4, 6, 3)
    b = a.reshape(2, 6, 4, 3)  # the same bytes per frame, another shape
    first, second = cache.embed(a, encode), cache.embed(b, encode)
    assert calls == [2, 2] and len(cache) == 4
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(cache.embed(b[::-1], encode), second[::-1])
    assert calls == [2, 2]


def test_frame_keys_on_threads_equal_the_serial_keys() -> None:
    from rewardlab.reward_models.frame_cache import PARALLEL_BYTES, _key, frame_keys

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (6, 240, 320, 3), dtype=np.uint8)
    assert frames.nbytes >= PARALLEL_BYTES  # the threaded path
    strided = frames[:, ::2, ::2]  # not contiguous
    for batch in (frames, strided, frames[:1]):
        assert frame_keys(batch) == [_key(np.ascontiguousarray(f)) for f in batch]
    assert len(set(frame_keys(frames))) == 6


FORKED_CHILD = """
import os, sys
import numpy as np
from rewardlab.reward_models.frame_cache import frame_keys

frames = np.random.default_rng(1).integers(0, 256, (8, 240, 320, 3), dtype=np.uint8)
want = frame_keys(frames)  # the parent's hashing pool now exists
pid = os.fork()
if pid == 0:  # a child forked after it: its own pool, not the parent's dead threads
    os._exit(0 if frame_keys(frames) == want else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_hashes_large_batches_too() -> None:
    # In a fresh interpreter: forking this test process (torch's threads, pytest's) could
    # deadlock on locks that have nothing to do with the cache.
    import subprocess
    import sys

    parent = subprocess.Popen([sys.executable, "-c", FORKED_CHILD], start_new_session=True)
    try:
        assert parent.wait(timeout=60) == 0
    finally:  # a hung child is killed with its parent, not left behind
        if parent.poll() is None:
            os.killpg(parent.pid, 9)
            parent.wait()
