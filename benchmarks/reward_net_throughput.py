"""What a learned frame reward costs: reward-net inference on uint8 frames, frames/s per batch.

    pip install -e ".[bench,learned]"
    python benchmarks/reward_net_throughput.py           # writes results/reward_net_throughput.json
    python benchmarks/reward_net_throughput.py --quick   # smoke run: 224x224 frames, 3 rounds

A frames-input reward net (``RewardNetConfig(inputs="frames", encoder=..., head="mlp")``, the
``efficientnet_lite0`` encoder with its ImageNet weights by default) scores batches of random
uint8 frames, per batch size, along three paths, all through the same module and head:

- ``ours``: :class:`~rewardlab.learned.reward_net.LearnedReward` called on a
  :class:`~rewardlab.reward_models.base.RewardBatch` of frames, as ``train`` and
  ``eval-reward`` call it: the frames are hashed for the feature cache, letterboxed and
  normalized on tensors in one batch, encoded, and the head's rewards come back as numpy.
  Every call gets frames it has never seen (drawn outside the timed region), so every frame
  misses the cache; ``ours (cache hit)`` repeats the previous call's frames (hashing, a
  lookup and the head only);
- ``bare``: ``net(None, encoder.module(x))`` under ``torch.inference_mode()`` on an already
  preprocessed contiguous ``(B, 3, H, W)`` float tensor on the device: the floor any frame
  path pays. Target: ours >= 0.9x bare;
- ``bare NCHW``: the same on a copy of the encoder in PyTorch's default (NCHW) weight layout,
  not the channels-last one rewardlab's convolutional encoders use: what that choice buys
  (or costs, on a device where it does not pay);
- ``timm``: timm's own eval transform (``timm.data.resolve_data_config`` +
  ``create_transform``: resize the short side to 256, center crop 224, to tensor, normalize)
  on each frame as a PIL image, ``torch.stack``, then the same forward. Target: ours faster at
  every batch size.

Frame sizes (``--frame-sizes``): 224x224 is what ``rewardlab/ManipPush-v0`` (and every
rewardlab env) renders by default, the encoder's input size, so ours does no resize while
timm's transform still resizes to 256 and crops; 480x640 is a camera-sized frame that ours
letterboxes (pad to square, antialiased bicubic resize) and timm resizes and crops.

Timing: in each round every path runs once at a batch size, in an order rotated from round to
round (machine noise hits them alike); the median over ``--rounds`` rounds is reported, after
one warm-up call of each path. CPU runs use ``torch.set_num_threads(--threads)``. With CUDA
(``--device cuda``, or by default when available) the same runs on the GPU, synchronized
before each clock read. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rewardlab.learned.reward_net import (  # noqa: E402
    LearnedReward,
    RewardNetConfig,
    TrainedOn,
    build_reward_net,
)
from rewardlab.reward_models.base import RewardBatch  # noqa: E402

ENV_ID = "rewardlab/ManipPush-v0"
BATCH_SIZES = (8, 16, 32, 64, 128, 256)
FRAME_SIZES = ((224, 224), (480, 640))
BARE_TARGET = 0.9
PATHS = ("ours", "ours (cache hit)", "bare", "bare NCHW", "timm")


def _parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        h, _, w = item.partition("x")
        sizes.append((int(h), int(w)))
    return sizes


class _Frames:
    """Fresh random uint8 frames for every call: no path ever sees a batch twice (but the
    cache-hit path, which is given the last batch on purpose)."""

    def __init__(self, size: tuple[int, int], seed: int) -> None:
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.last: np.ndarray | None = None

    def draw(self, n: int) -> np.ndarray:
        self.last = self.rng.integers(0, 256, (n, *self.size, 3), dtype=np.uint8)
        return self.last


def measure(
    encoder: str,
    device: str,
    frame_size: tuple[int, int],
    batch_sizes: list[int],
    rounds: int,
) -> list[dict[str, Any]]:
    """Median frames/s of every path at every batch size, for one encoder, device, frame size."""
    import copy

    import timm.data
    import torch
    from PIL import Image

    net = build_reward_net(RewardNetConfig(inputs="frames", encoder=encoder))
    ours = LearnedReward(net, TrainedOn(ENV_ID), device=device)
    dev = ours.device
    module, enc = ours.net.encoder.module, ours.net.encoder
    nchw = copy.deepcopy(module).to(memory_format=torch.contiguous_format)
    on_cuda = dev.type == "cuda"
    timm_config = timm.data.resolve_data_config(
        {"input_size": (3, *enc.input_size), "mean": enc.mean, "std": enc.std}, model=module
    )
    timm_tf = timm.data.create_transform(**timm_config)
    frames = _Frames(frame_size, seed=0)
    gen = torch.Generator().manual_seed(0)

    def sync() -> None:
        if on_cuda:
            torch.cuda.synchronize()

    def batch_of(x: np.ndarray) -> RewardBatch:
        n = len(x)
        zeros = np.zeros((n, 1), np.float32)
        return RewardBatch(zeros, zeros, zeros, np.zeros(n, bool), frames=x)

    def run_ours(b: int, hit: bool) -> Callable[[], Callable[[], Any]]:
        def prepare() -> Callable[[], Any]:
            if hit:  # the frames the miss path has just scored, so cached
                assert frames.last is not None and len(frames.last) == b
                x = frames.last
            else:
                x = frames.draw(b)
            batch = batch_of(x)
            return lambda: ours(batch).reward

        return prepare

    def run_bare(b: int, tower: Any) -> Callable[[], Callable[[], Any]]:
        ready = torch.randn(b, 3, *enc.input_size, generator=gen).to(dev)

        def prepare() -> Callable[[], Any]:
            def f() -> Any:
                with torch.inference_mode():
                    out = ours.net(None, tower(ready).float())
                sync()
                return out

            return f

        return prepare

    def run_timm(b: int) -> Callable[[], Callable[[], Any]]:
        def prepare() -> Callable[[], Any]:
            x = frames.draw(b)

            def f() -> Any:
                pixels = torch.stack([timm_tf(Image.fromarray(frame)) for frame in x]).to(dev)
                with torch.inference_mode():
                    out = ours.net(None, module(pixels).float())
                return out.cpu().numpy()

            return f

        return prepare

    def timed(prepare: Callable[[], Callable[[], Any]]) -> float:
        fn = prepare()
        sync()
        start = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - start

    # Same frames, two paths: ours must pay what the bare forward on its preprocessing pays.
    probe = frames.draw(min(batch_sizes))
    with torch.inference_mode():
        x = enc.preprocess(probe, dev)
        reference = ours.net(None, module(x).float()).double().cpu().numpy()
    ours_probe = LearnedReward(net, TrainedOn(ENV_ID), device=device, cache_size=0)
    agreement = float(np.abs(ours_probe(batch_of(probe)).reward - reference).max())

    rows = []
    for b in batch_sizes:
        paths: dict[str, Callable[[], Callable[[], Any]]] = {
            "ours": run_ours(b, hit=False),
            "bare": run_bare(b, module),
            "bare NCHW": run_bare(b, nchw),
            "timm": run_timm(b),
        }
        for prepare in paths.values():  # warm-up
            timed(prepare)
        times: dict[str, list[float]] = {p: [] for p in PATHS}
        names = list(paths)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                times[name].append(timed(paths[name]))
                if name == "ours":  # right after a miss: the same frames again
                    times["ours (cache hit)"].append(timed(run_ours(b, hit=True)))
        for path, ts in times.items():
            median = statistics.median(ts)
            rows.append(
                {
                    "encoder": encoder,
                    "device": dev.type,
                    "frame_size": list(frame_size),
                    "batch": b,
                    "path": path,
                    "rounds": len(ts),
                    "times_s": ts,
                    "median_s": median,
                    "frames_per_s": b / median,
                    "ours_vs_bare_max_abs_reward_diff": agreement,
                    "timm_transform": {k: str(v) for k, v in timm_config.items()},
                }
            )
        fps = {r["path"]: r["frames_per_s"] for r in rows[-len(times) :]}
        print(
            f"  {encoder} {dev.type} {frame_size[0]}x{frame_size[1]} B={b}: "
            + ", ".join(f"{p} {v:,.1f}" for p, v in fps.items())
            + " frames/s",
            file=sys.stderr,
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| encoder | device | frames | batch | ours | ours (cache hit) | bare | bare NCHW | "
        f"timm PIL | ours/bare (>= {BARE_TARGET}) | ours/timm (> 1) | bare/bare NCHW |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    keys: list[tuple[str, str, tuple[int, ...], int]] = []
    for r in rows:
        key = (r["encoder"], r["device"], tuple(r["frame_size"]), r["batch"])
        if key not in keys:
            keys.append(key)
    for key in keys:
        fps = {
            r["path"]: r["frames_per_s"]
            for r in rows
            if (r["encoder"], r["device"], tuple(r["frame_size"]), r["batch"]) == key
        }
        encoder, dev, (h, w), b = key
        vs_bare = fps["ours"] / fps["bare"]
        vs_timm = fps["ours"] / fps["timm"]
        lines.append(
            f"| {encoder} | {dev} | {h}x{w} | {b} | {fps['ours']:,.1f} | "
            f"{fps['ours (cache hit)']:,.0f} | {fps['bare']:,.1f} | {fps['bare NCHW']:,.1f} | "
            f"{fps['timm']:,.1f} | {vs_bare:.2f}x{'' if vs_bare >= BARE_TARGET else ' MISS'} | "
            f"{vs_timm:.2f}x{'' if vs_timm > 1 else ' MISS'} | "
            f"{fps['bare'] / fps['bare NCHW']:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--encoder",
        action="append",
        help="encoder name (repeatable; default efficientnet_lite0; cnn is the small one)",
    )
    parser.add_argument(
        "--device",
        action="append",
        choices=("cpu", "cuda"),
        help="repeatable; default cpu, and cuda when available",
    )
    parser.add_argument(
        "--batch-sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=list(BATCH_SIZES),
        help=f"comma-separated (default {','.join(map(str, BATCH_SIZES))})",
    )
    parser.add_argument(
        "--frame-sizes",
        type=_parse_sizes,
        default=None,
        help="comma-separated HxW (default 224x224,480x640)",
    )
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (median kept)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads on CPU")
    parser.add_argument("--quick", action="store_true", help="224x224 frames only, 3 rounds")
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "reward_net_throughput.json")
    )
    args = parser.parse_args()
    import torch

    encoders = args.encoder or ["efficientnet_lite0"]
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    frame_sizes = args.frame_sizes or list(FRAME_SIZES)
    rounds = args.rounds
    if args.quick:
        frame_sizes = args.frame_sizes or [FRAME_SIZES[0]]
        rounds = min(rounds, 3)

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    import timm

    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "timm": timm.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "torch_threads": torch.get_num_threads(),
        "targets": {"ours_vs_bare_min": BARE_TARGET, "ours_vs_timm_min": 1.0},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "rows": [],
    }
    for encoder in encoders:
        for device in devices:
            for size in frame_sizes:
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # timm's PIL deprecations
                    result["rows"] += measure(encoder, device, size, args.batch_sizes, rounds)
                print(
                    f"{encoder} {device} {size}: measured in {time.perf_counter() - start:.0f} s",
                    file=sys.stderr,
                )
    result["total_s"] = time.perf_counter() - t0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"### Reward-net inference, frames/s (median of {rounds} rounds; CPU torch threads = "
        f"{torch.get_num_threads()})\n"
    )
    print(table(result["rows"]))
    agree = max(r["ours_vs_bare_max_abs_reward_diff"] for r in result["rows"])
    print(f"\nours vs bare on the same frames: max |reward difference| {agree:.2e}")
    print(f"\ntotal {result['total_s']:.0f} s; wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
