"""CLIPRewardModel on a tiny, randomly initialized open_clip architecture (no downloads).

Every head is checked against a direct computation from the encoder's own embeddings.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from PIL import Image  # noqa: E402

from rewardlab.reward_models import RewardBatch  # noqa: E402
from rewardlab.reward_models.clip import (  # noqa: E402
    HEADS,
    CLIPOptions,
    CLIPRewardModel,
    PretrainedWeightsNotFoundError,
)
from rewardlab.reward_models.preprocess import preprocess_frames  # noqa: E402

TINY = "rewardlab-tiny-clip"
open_clip.add_model_config(Path(__file__).with_name(f"{TINY}.json"))

GOAL = "a red block on the green target"
BASELINE = "a red block and a green target"
NEGATIVES = ("a red block far from the target", "an empty table")


def make(head: str = "cosine", **kwargs: object) -> CLIPRewardModel:
    torch.manual_seed(0)
    kwargs.setdefault("goal", GOAL)
    kwargs.setdefault("baseline", BASELINE)
    kwargs.setdefault("negatives", NEGATIVES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return CLIPRewardModel(TINY, None, head=head, device="cpu", **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def model() -> CLIPRewardModel:
    return make()


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)


def ref_pixels(frames: np.ndarray, model: CLIPRewardModel) -> torch.Tensor:
    """Per-frame reference: scale and normalize, frames already at the input size."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).double() / 255.0
    mean = torch.tensor(model.mean, dtype=torch.float64).reshape(1, 3, 1, 1)
    std = torch.tensor(model.std, dtype=torch.float64).reshape(1, 3, 1, 1)
    return ((x - mean) / std).float()


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def ref_image_emb(model: CLIPRewardModel, frames: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return unit(model.clip_model.encode_image(ref_pixels(frames, model)).double().numpy())


def ref_text_emb(model: CLIPRewardModel, prompts: list[str]) -> np.ndarray:
    with torch.no_grad():
        rows = model.clip_model.encode_text(model.tokenizer(prompts)).double().numpy()
    return unit(unit(rows).mean(axis=0))


def test_random_weights_warn() -> None:
    with pytest.warns(UserWarning, match="RANDOM weights"):
        CLIPRewardModel(TINY, None, goal=GOAL, baseline=BASELINE, device="cpu")


def test_text_embeddings_match_encoder(model: CLIPRewardModel) -> None:
    np.testing.assert_allclose(model.goal_embedding, ref_text_emb(model, [GOAL]), atol=1e-6)
    np.testing.assert_allclose(
        model.negative_embeddings[1], ref_text_emb(model, [NEGATIVES[1]]), atol=1e-6
    )


def test_prompt_set_is_renormalized_average() -> None:
    prompts = [GOAL, "the block is on the target", "success"]
    m = make(goal=prompts)
    assert np.linalg.norm(m.goal_embedding) == pytest.approx(1.0, abs=1e-12)
    rows = np.stack([ref_text_emb(m, [p]) for p in prompts])
    # The plain mean of unit vectors is shorter than 1; the stored one is its direction.
    assert np.linalg.norm(rows.mean(axis=0)) < 1.0 - 1e-6
    np.testing.assert_allclose(m.goal_embedding, unit(rows.mean(axis=0)), atol=1e-6)
    single = make(goal=GOAL).goal_embedding
    assert np.abs(m.goal_embedding - single).max() > 1e-4


def test_encode_frames_matches_reference(model: CLIPRewardModel, frames: np.ndarray) -> None:
    emb = model.encode_frames(frames)
    assert emb.shape == (6, 32) and emb.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(emb, ref_image_emb(model, frames), atol=1e-5)


@pytest.mark.parametrize(
    ("head", "options"),
    [
        ("cosine", {}),
        ("goal_baseline", {"alpha": 0.0}),
        ("goal_baseline", {"alpha": 0.3}),
        ("goal_baseline", {"alpha": 1.0}),
        ("contrast", {"c": 0.03}),
        ("contrast", {"c": 2.0}),
        ("softmax", {"temperature": 0.01}),
        ("softmax", {"temperature": 1.0}),
        ("success", {"temperature": 0.01, "threshold": 0.3}),
    ],
)
def test_heads_match_reference(
    model: CLIPRewardModel, frames: np.ndarray, head: str, options: dict[str, float]
) -> None:
    e = ref_image_emb(model, frames)
    g = ref_text_emb(model, [GOAL])
    b = ref_text_emb(model, [BASELINE])
    ns = np.stack([ref_text_emb(model, [n]) for n in NEGATIVES])
    if head == "cosine":
        expected = e @ g
    elif head == "goal_baseline":
        alpha = options["alpha"]
        d = g - b
        P = alpha * np.outer(d, d) / (d @ d) + (1 - alpha) * np.eye(len(d))
        expected = 1 - 0.5 * np.sum(((e - g) @ P) ** 2, axis=1)
    elif head == "contrast":
        c = options["c"]
        n = ref_text_emb(model, list(NEGATIVES))
        expected = 1 - np.clip(e @ n - e @ g, 0, c) / c
    else:
        logits = np.concatenate([(e @ g)[:, None], e @ ns.T], axis=1) / options["temperature"]
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        expected = p[:, 0] / p.sum(axis=1)
        if head == "success":
            expected = (expected >= options["threshold"]).astype(float)
    out = model.with_head(head, **options)(
        RewardBatch(
            obs=np.zeros((6, 1)),
            action=np.zeros((6, 1)),
            next_obs=np.zeros((6, 1)),
            terminated=np.zeros(6, bool),
            frames=frames,
        )
    )
    assert out.reward.dtype == np.float64 and out.reward.shape == (6,)
    np.testing.assert_allclose(out.reward, expected, atol=1e-5)
    np.testing.assert_array_equal(out.components["clip"], out.reward)


def test_with_head_equals_fresh_model(frames: np.ndarray) -> None:
    fresh = make("goal_baseline", alpha=0.7)
    shared = make().with_head("goal_baseline", alpha=0.7)
    emb = fresh.encode_frames(frames)
    np.testing.assert_allclose(shared.score(emb), fresh.score(emb), atol=1e-12)


def test_goal_baseline_alpha_limits(model: CLIPRewardModel) -> None:
    rng = np.random.default_rng(1)
    e = unit(rng.normal(size=(20, 32)))
    cos = model.score(e)
    # alpha=0: 1 - 0.5 |e - g|^2 = e.g for unit vectors (affine with slope 1, offset 0).
    r0 = model.with_head("goal_baseline", alpha=0.0).score(e)
    slope, offset = np.polyfit(cos, r0, 1)
    assert slope == pytest.approx(1.0, abs=1e-9) and offset == pytest.approx(0.0, abs=1e-9)
    # alpha=1: moving e orthogonally to g - b changes nothing.
    one = model.with_head("goal_baseline", alpha=1.0)
    d = model.goal_embedding - model.baseline_embedding  # type: ignore[operator]
    v = rng.normal(size=(20, 32))
    v -= np.outer(v @ d, d) / (d @ d)
    np.testing.assert_allclose(one.score(e + v), one.score(e), atol=1e-12)
    assert np.abs(one.score(e + 0.1 * d) - one.score(e)).max() > 1e-6


def test_cache_hits_skip_encoder(frames: np.ndarray) -> None:
    m = make(cache_size=4)
    calls: list[int] = []
    encode = m.clip_model.encode_image

    def counting(x: torch.Tensor, **kw: object) -> torch.Tensor:
        calls.append(len(x))
        return encode(x, **kw)

    m.clip_model.encode_image = counting  # type: ignore[method-assign]
    batch = frames[[0, 1, 0, 2]]
    first = m.encode_frames(batch)
    assert calls == [3]  # the repeated frame is encoded once
    np.testing.assert_array_equal(first[0], first[2])
    again = m.encode_frames(batch)
    assert calls == [3]
    np.testing.assert_array_equal(again, first)
    # Recency after `again`: 1, 0, 2; two new frames evict the least recently used, frame 1.
    m.encode_frames(frames[[3, 4]])
    assert calls == [3, 2] and len(m._cache) == 4
    m.encode_frames(frames[[0]])
    assert calls == [3, 2]
    m.encode_frames(frames[[1]])
    assert calls == [3, 2, 1]
    np.testing.assert_allclose(first, make().encode_frames(batch), atol=1e-6)


def test_square_frames_at_input_size_match_open_clip_transform(
    model: CLIPRewardModel, frames: np.ndarray
) -> None:
    _, _, transform = open_clip.create_model_and_transforms(TINY, None)
    ref = torch.stack([transform(Image.fromarray(f)) for f in frames])
    got = preprocess_frames(torch.from_numpy(frames), model.input_size, model.mean, model.std)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def test_square_resize_close_to_pil(model: CLIPRewardModel) -> None:
    # Smooth image: antialiased torch bicubic and PIL bicubic agree up to small rounding.
    yy, xx = np.mgrid[0:96, 0:96]
    img = np.stack([xx * 2.5, yy * 2.5, (xx + yy) * 1.2], axis=-1).astype(np.uint8)[None]
    _, _, transform = open_clip.create_model_and_transforms(TINY, None)
    ref = transform(Image.fromarray(img[0]))[None]
    got = preprocess_frames(torch.from_numpy(img), model.input_size, model.mean, model.std)
    assert got.shape == (1, 3, 32, 32)
    assert (got - ref).abs().mean() < 0.02


def halves(h: int, w: int) -> np.ndarray:
    frame = np.zeros((1, h, w, 3), np.uint8)
    frame[:, :, : w // 2, 0] = 255  # left red
    frame[:, :, w // 2 :, 2] = 255  # right blue
    return frame


def to_pixels(x: torch.Tensor, model: CLIPRewardModel) -> np.ndarray:
    mean = torch.tensor(model.mean).reshape(1, 3, 1, 1)
    std = torch.tensor(model.std).reshape(1, 3, 1, 1)
    return ((x * std + mean) * 255).round().numpy()[0]


def test_letterbox_pads_short_side_with_fill(model: CLIPRewardModel) -> None:
    x = preprocess_frames(
        torch.from_numpy(halves(16, 32)), (32, 32), model.mean, model.std, resize="letterbox"
    )
    px = to_pixels(x, model)  # (3, 32, 32); the padded frame is already 32x32, no resize
    np.testing.assert_array_equal(px[:, :8], 0)  # top bars: fill color 0
    np.testing.assert_array_equal(px[:, 24:], 0)  # bottom bars
    np.testing.assert_array_equal(px[0, 8:24, :16], 255)
    np.testing.assert_array_equal(px[2, 8:24, 16:], 255)
    np.testing.assert_array_equal(px[2, 8:24, :16], 0)
    gray = preprocess_frames(
        torch.from_numpy(halves(16, 32)), (32, 32), model.mean, model.std, fill=128
    )
    np.testing.assert_array_equal(to_pixels(gray, model)[:, :8], 128)


def test_letterbox_then_resize_keeps_aspect(model: CLIPRewardModel) -> None:
    x = preprocess_frames(torch.from_numpy(halves(32, 64)), (32, 32), model.mean, model.std)
    px = to_pixels(x, model)
    assert np.all(px[:, :7] == 0) and np.all(px[:, 25:] == 0)
    assert np.all(px[0, 9:23, :14] == 255) and np.all(px[2, 9:23, 18:] == 255)


def test_letterbox_resizes_the_frame_alone_so_no_fill_bleeds_in(model: CLIPRewardModel) -> None:
    frame = np.zeros((2, 48, 64, 3), np.uint8)
    frame[..., 0] = 255  # all red, 4:3
    px = to_pixels(
        preprocess_frames(torch.from_numpy(frame), (32, 32), model.mean, model.std), model
    )
    # 48x64 -> 24x32, centered: rows 4..27 are the frame, every pixel still pure red.
    np.testing.assert_array_equal(px[0, 4:28], 255)
    np.testing.assert_array_equal(px[1:, 4:28], 0)
    np.testing.assert_array_equal(px[:, :4], 0)
    np.testing.assert_array_equal(px[:, 28:], 0)


def test_center_crop_keeps_both_halves_symmetric(model: CLIPRewardModel) -> None:
    x = preprocess_frames(
        torch.from_numpy(halves(16, 32)), (32, 32), model.mean, model.std, resize="center_crop"
    )
    px = to_pixels(x, model)
    # Mirror symmetry: red on the left equals blue on the right; no padding anywhere.
    np.testing.assert_allclose(px[0], px[2][:, ::-1], atol=1)
    assert np.all(px[0, :, :12] == 255) and np.all(px[2, :, 20:] == 255)
    assert np.all(px[1] == 0)


def test_crop_box_is_applied_first(model: CLIPRewardModel, frames: np.ndarray) -> None:
    big = np.zeros((2, 48, 64, 3), np.uint8)
    big[:, 5:37, 10:42] = frames[:2]
    m = make(crop=(5, 10, 32, 32))
    np.testing.assert_allclose(m.encode_frames(big), model.encode_frames(frames[:2]), atol=1e-6)
    with pytest.raises(ValueError, match="does not fit"):
        make(crop=(40, 0, 32, 32)).encode_frames(big)


def test_unknown_head() -> None:
    with pytest.raises(ValueError, match="unknown head 'cosin'.*goal_baseline"):
        make("cosin")
    assert set(HEADS) == {"cosine", "goal_baseline", "contrast", "softmax", "success"}


@pytest.mark.parametrize(
    ("head", "options", "match"),
    [
        ("goal_baseline", {"alpha": 1.5}, r"alpha must be in \[0, 1\], got 1.5"),
        ("goal_baseline", {"alpha": -0.1}, r"alpha must be in \[0, 1\], got -0.1"),
        ("softmax", {"temperature": 0.0}, "temperature must be > 0, got 0.0"),
        ("contrast", {"c": -1.0}, "c must be > 0, got -1.0"),
        ("success", {"threshold": 1.0}, r"threshold must be in \(0, 1\), got 1.0"),
    ],
)
def test_bad_option_values(head: str, options: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make(head, **options)


def test_with_head_checks_prompts() -> None:
    m = make(baseline=None, negatives=())
    with pytest.raises(ValueError, match="needs a baseline"):
        m.with_head("goal_baseline", alpha=0.5)
    with pytest.raises(ValueError, match="needs at least one negative"):
        m.with_head("contrast")
    with pytest.raises(ValueError, match="coincide"):
        make("goal_baseline", baseline=GOAL)


def test_options_of_another_head() -> None:
    with pytest.raises(TypeError, match=r"'cosine'.*\['alpha'\]"):
        make("cosine", alpha=0.5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"goal": []}, "goal must be a non-empty"),
        ({"goal": ""}, "goal prompts must be non-empty strings"),
        ({"goal": ["ok", "  "]}, "goal prompts must be non-empty strings"),
        ({"head": "softmax", "negatives": ()}, "needs at least one negative"),
        ({"head": "goal_baseline", "baseline": None}, "needs a baseline"),
        ({"negatives": [[]]}, "negatives must be a non-empty"),
        ({"resize": "squash"}, "resize must be one of"),
    ],
)
def test_bad_prompts(kwargs: dict[str, object], match: str) -> None:
    head = kwargs.pop("head", "cosine")
    with pytest.raises(ValueError, match=match):
        make(str(head), **kwargs)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 32, 32, 3), np.float32),
        np.zeros((32, 32, 3), np.uint8),
        np.zeros((2, 32, 32, 4), np.uint8),
    ],
)
def test_bad_frames(model: CLIPRewardModel, bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\) uint8"):
        model.encode_frames(bad)


def test_unknown_model_name() -> None:
    with pytest.raises(ValueError, match=r"unknown open_clip model 'ViT-Z-99'.*list_models"):
        CLIPRewardModel("ViT-Z-99", None, goal=GOAL, baseline=BASELINE, device="cpu")


def test_unknown_pretrained_tag() -> None:
    with pytest.raises(ValueError, match="unknown pretrained tag 'laion9b'.*laion2b_s34b_b79k"):
        CLIPRewardModel("ViT-B-32", "laion9b", goal=GOAL, baseline=BASELINE, device="cpu")


def test_missing_weights_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # conftest sets HF_HUB_OFFLINE=1; an empty cache_dir makes sure nothing is cached.
    with pytest.raises(PretrainedWeightsNotFoundError) as err:
        CLIPRewardModel(
            "ViT-B-32",
            "laion2b_s34b_b79k",
            goal=GOAL,
            baseline=BASELINE,
            device="cpu",
            cache_dir=str(tmp_path),
        )
    msg = str(err.value)
    assert "'ViT-B-32'" in msg and "'laion2b_s34b_b79k'" in msg
    assert "pretrained='/path/to/open_clip_pytorch_model.bin'" in msg and "HF_HUB_OFFLINE" in msg
    assert isinstance(err.value, FileNotFoundError)


def test_missing_checkpoint_file(tmp_path: Path) -> None:
    path = str(tmp_path / "missing.bin")
    with pytest.raises(PretrainedWeightsNotFoundError, match="not found: '.*missing.bin'"):
        CLIPRewardModel(TINY, path, goal=GOAL, baseline=BASELINE, device="cpu")


def test_local_checkpoint_loads(tmp_path: Path, model: CLIPRewardModel, frames: np.ndarray) -> None:
    path = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(model.clip_model.state_dict(), path)
    torch.manual_seed(123)  # a different random init, overwritten by the checkpoint
    loaded = CLIPRewardModel(TINY, str(path), goal=GOAL, baseline=BASELINE, device="cpu")
    np.testing.assert_allclose(loaded.goal_embedding, model.goal_embedding, atol=1e-12)
    np.testing.assert_allclose(
        loaded.encode_frames(frames), model.encode_frames(frames), atol=1e-12
    )


def test_with_prompts_shares_the_encoder_and_equals_a_fresh_model(
    model: CLIPRewardModel, frames: np.ndarray
) -> None:
    other_prompts = {
        "goal": ["a blue ball", "a ball that is blue"],
        "baseline": "a ball",
        "negatives": ["a red cube", ["a table", "an empty table"]],
    }
    swapped = model.with_prompts(**other_prompts).with_head("softmax")
    fresh = make("softmax", **other_prompts)
    assert swapped.clip_model is model.clip_model
    emb = model.encode_frames(frames)
    assert np.allclose(swapped.score(emb), fresh.score(emb), atol=1e-9)
    assert np.array_equal(model.goal_embedding, make().goal_embedding)  # original untouched
    with pytest.raises(ValueError, match="needs at least one negative"):
        model.with_head("contrast").with_prompts(goal="a blue ball")


def test_with_prompts_can_switch_head_in_one_check(model: CLIPRewardModel) -> None:
    contrast = model.with_head("contrast")
    cosine = contrast.with_prompts(goal="a blue ball", head="cosine")  # no negatives needed
    assert cosine.head == "cosine" and len(cosine.negative_embeddings) == 0
    with pytest.raises(TypeError, match="need head="):
        model.with_prompts(goal="a blue ball", alpha=0.3)


def test_options_replace_and_their_errors() -> None:
    opts = CLIPOptions()
    assert opts.replace(alpha=0.2).head_options == {"alpha": 0.2}
    # A new head starts from its own defaults; one option alone keeps the head's others.
    success = opts.replace(head="success", threshold=0.3)
    assert success.head_options == {"temperature": 0.01, "threshold": 0.3}
    assert success.replace(temperature=0.1).head_options == {"temperature": 0.1, "threshold": 0.3}
    assert success.replace(head="cosine").head_options == {}
    with pytest.raises(TypeError, match=r"unknown CLIP option\(s\) \['devise'\]"):
        opts.replace(devise="cpu")
    with pytest.raises(TypeError, match=r"'goal_baseline' takes options \['alpha'\]"):
        opts.replace(temperature=0.1)
    with pytest.raises(ValueError, match="precision must be one of"):
        CLIPOptions(precision="fp8")
    with pytest.raises(ValueError, match="cache_size must be >= 0, got -1"):
        CLIPOptions(cache_size=-1)
    with pytest.raises(ValueError, match=r"crop must be \(top, left, height, width\)"):
        CLIPOptions(crop=(1, 2, 3))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="set it in the CLIPOptions"):
        CLIPRewardModel(CLIPOptions(TINY), None, goal=GOAL, baseline=BASELINE)


def test_model_takes_options_or_keywords_alike(model: CLIPRewardModel, frames: np.ndarray) -> None:
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="RANDOM weights"):
        m = CLIPRewardModel(
            CLIPOptions(TINY, None, head="cosine", device="cpu"),
            goal=GOAL,
            baseline=BASELINE,
            negatives=NEGATIVES,
        )
    assert m.options == model.options and (m.head, m.options.head_options) == ("cosine", {})
    np.testing.assert_array_equal(
        m.score(m.encode_frames(frames)), model.score(model.encode_frames(frames))
    )


def test_default_head_needs_a_baseline() -> None:
    # The default head is goal_baseline; without a baseline the error names both fixes,
    # before any weights are loaded (the model name is not even looked up).
    with pytest.raises(ValueError, match=r"needs a baseline.*pass baseline=, or head='cosine'"):
        CLIPRewardModel("no-such-model", None, goal=GOAL)


def test_reward_spec_options_are_clip_options() -> None:
    from rewardlab.reward_spec import ClipModelSpec, parse_reward

    prompts = {"kind", "goal", "baseline", "negatives"}
    # pretrained_sha256 records the checkpoint file's digest when a run is planned.
    fields = set(ClipModelSpec.model_fields) - prompts - {"pretrained_sha256"}
    assert fields - {"options"} == {f.name for f in dataclasses.fields(CLIPOptions)} - {
        "head_options"
    }
    spec = ClipModelSpec(kind="clip")
    for name in fields - {"options"}:
        assert getattr(spec, name) == getattr(CLIPOptions(), name), name
    assert spec.clip_options() == CLIPOptions()
    custom = parse_reward("{model: {kind: clip, head: softmax, options: {temperature: 0.1}}}")
    assert custom.model is not None
    assert custom.model.clip_options() == CLIPOptions(
        head="softmax", head_options={"temperature": 0.1}
    )
    for bad, match in [
        ("{head: cosin}", "unknown head 'cosin'"),
        ("{head: cosine, options: {alpha: 0.5}}", r"head 'cosine' takes options none"),
        ("{options: {alpha: 2}}", r"alpha must be in \[0, 1\], got 2.0"),
        ("{resize: squash}", "resize must be one of"),
    ]:
        with pytest.raises(ValueError, match=rf"reward\.model\.clip: {match}"):
            parse_reward("{model: {kind: clip, " + bad[1:] + "}")


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_without_hub(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``script`` in a fresh interpreter whose hub endpoint refuses connections and whose
    offline mode is unset (the hub reads both when it is imported)."""
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{closed_port()}"
    config = str(Path(__file__).with_name(f"{TINY}.json"))
    return subprocess.run(
        [sys.executable, "-c", script, config, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_missing_weights_fail_in_seconds_when_the_hub_is_unreachable(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "import open_clip, torch  # imported first: the time is the load's alone\n"
        "from rewardlab.reward_models.clip import CLIPRewardModel as M\n"
        "from rewardlab.reward_models.clip import PretrainedWeightsNotFoundError as E\n"
        "start = time.monotonic()\n"
        "try:\n"
        "    M('ViT-B-32', goal='g', baseline='b', device='cpu', cache_dir=sys.argv[2])\n"
        "except E as e:\n"
        "    print(f'{time.monotonic() - start:.1f}'); print(e)\n"
    )
    out = run_without_hub(script, str(tmp_path))
    assert out.returncode == 0, out.stderr
    seconds, message = out.stdout.split("\n", 1)
    # The hub's own retries took 46 s here before the reachability check; now well under 1 s.
    assert float(seconds) < 5.0, out.stdout
    assert "'ViT-B-32'" in message and "'laion2b_s34b_b79k'" in message
    assert "cannot be reached" in message and "only the local cache was searched" in message
    for fix in (
        "pretrained='/path/to/open_clip_pytorch_model.bin'",
        "cache_dir=",
        "HF_HUB_OFFLINE",
    ):
        assert fix in message


def test_cached_weights_load_when_the_hub_is_unreachable(
    tmp_path: Path, model: CLIPRewardModel
) -> None:
    # A Hugging Face cache holding an hf-hub: model, laid out as the hub writes it.
    snapshot = tmp_path / "models--rewardlab--tiny-clip" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    cfg = json.loads(Path(__file__).with_name(f"{TINY}.json").read_text())
    (snapshot / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    torch.save(model.clip_model.state_dict(), snapshot / "open_clip_pytorch_model.bin")
    np.save(tmp_path / "goal.npy", model.goal_embedding)
    script = (
        "import sys, numpy as np\n"
        "from rewardlab.reward_models.clip import CLIPRewardModel\n"
        f"m = CLIPRewardModel('hf-hub:rewardlab/tiny-clip', goal={GOAL!r}, baseline={BASELINE!r},"
        " device='cpu', cache_dir=sys.argv[2])\n"
        "expected = np.load(sys.argv[2] + '/goal.npy')\n"
        "np.testing.assert_allclose(m.goal_embedding, expected, atol=1e-12)\n"
        "print('loaded')\n"
    )
    out = run_without_hub(script, str(tmp_path))
    assert out.returncode == 0 and out.stdout == "loaded\n", out.stderr
