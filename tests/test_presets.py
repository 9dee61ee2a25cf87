"""Paper presets: each loads, passes rewardlab's own validator and carries its provenance; the
published values are the papers' (pinned here against the text); preset_warnings flags a CLIP
option an order of magnitude from the published one, and only that."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rewardlab import presets
from rewardlab.presets import KINDS, list_presets, load_preset, preset_warnings, table
from rewardlab.reward_models.clip import CLIPOptions
from rewardlab.reward_spec import ClipModelSpec, RewardSpec, parse_reward

NAMES = list_presets()
# What each kind's validator returns (by name: importing the comparison spec imports torch).
VALIDATED = {"reward": "RewardSpec", "comparison": "ComparisonSpec", "llm_search": "SearchConfig"}
KNEEL = "vlmrm_humanoid_kneeling"
# VLM-RM's humanoid camera (kube/job.yaml at 12d3077; Section 4.3: fixed, slightly angled down).
CAMERA = {
    "trackbodyid": 1,
    "distance": 3.5,
    "lookat": [0.0, 0.0, 1.0],
    "elevation": -10.0,
    "azimuth": 180.0,
}


def by_kind(kind: str) -> list[str]:
    return [n for n in NAMES if load_preset(n).kind == kind]


def test_the_expected_presets_ship() -> None:
    assert set(NAMES) == {
        "vlmrm_cartpole",
        "vlmrm_cartpole_compare",
        "vlmrm_mountaincar",
        "vlmrm_mountaincar_compare",
        KNEEL,
        "vlmrm_humanoid_kneeling_compare",
        "vlmrm_humanoid_scaling_compare",
        "eureka_hopper",
        "eureka_halfcheetah",
        "eureka_humanoid",
        "text2reward_hopper",
    }


# The comparisons make their env and build each run's agent once (SB3 warns that DQN's target
# update interval of 1 is below the 32 envs: VLM-RM's setting, kept).
@pytest.mark.filterwarnings("ignore:The number of environments used is greater")
@pytest.mark.parametrize("name", NAMES)
def test_every_preset_passes_rewardlabs_validator(name: str) -> None:
    preset = load_preset(name)
    assert preset.name == name and preset.kind in KINDS
    assert type(preset.validate()).__name__ == VALIDATED[preset.kind]


@pytest.mark.parametrize("name", NAMES)
def test_provenance_is_complete(name: str) -> None:
    prov = load_preset(name).provenance
    assert prov["paper"] and prov["authors"] and prov["url"].startswith("https://arxiv.org/abs/")
    assert prov["sections"] and all(prov["sections"])
    assert prov["code"]["repo"] and prov["code"]["files"]
    for file in prov["code"]["files"]:
        assert file["path"] and len(file["commit"]) == 40
    assert prov["follows"] in ("paper", "code")
    assert prov["values"] and all(prov["values"].values())
    for d in prov["disagreements"]:
        assert d["followed"] in ("paper", "code") and d["why"]
    # Every preset runs something the paper did not: a newer env, missing textures, a task.
    assert prov["deviations"]


@pytest.mark.parametrize("name", by_kind("reward"))
def test_reward_presets_cite_each_clip_value(name: str) -> None:
    preset = load_preset(name)
    assert {"goal", "baseline", "model", "alpha"} <= set(preset.provenance["values"])
    assert isinstance(preset.validate().model, ClipModelSpec)


# Table 3 of Rocamonde et al. (2023), arXiv 2310.12921v2, verbatim.
TABLE_3 = {
    "vlmrm_cartpole": ("pole vertically upright on top of the cart", "pole and cart"),
    "vlmrm_mountaincar": (
        "a car at the peak of the mountain, next to the yellow flag",
        "a car in the mountain",
    ),
    KNEEL: ("a humanoid robot kneeling", "a humanoid robot"),
}


@pytest.mark.parametrize(
    ("name", "env", "model", "pretrained", "alpha"),
    [
        ("vlmrm_cartpole", "CartPole-v1", "ViT-g-14", "laion2b_s34b_b88k", 0.5),
        ("vlmrm_mountaincar", "MountainCarContinuous-v0", "ViT-g-14", "laion2b_s34b_b88k", 0.5),
        (KNEEL, "Humanoid-v5", "ViT-bigG-14", "laion2b_s39b_b160k", 0.0),
    ],
)
def test_vlmrm_rewards_are_the_published_ones(
    name: str, env: str, model: str, pretrained: str, alpha: float
) -> None:
    preset = load_preset(name)
    clip = preset.validate().model
    assert preset.env == env
    assert (clip.goal, clip.baseline) == TABLE_3[name]
    assert (clip.model, clip.pretrained, clip.head) == (model, pretrained, "goal_baseline")
    assert clip.clip_options().head_options == {"alpha": alpha}


@pytest.mark.parametrize(
    ("comparison", "variant", "reward"),
    [
        ("vlmrm_cartpole_compare", "vlmrm", "vlmrm_cartpole"),
        ("vlmrm_mountaincar_compare", "vlmrm", "vlmrm_mountaincar"),
        ("vlmrm_humanoid_kneeling_compare", "vlmrm", KNEEL),
        ("vlmrm_humanoid_scaling_compare", "ViT-bigG-14", KNEEL),
    ],
)
def test_comparisons_train_the_reward_presets(comparison: str, variant: str, reward: str) -> None:
    spec = load_preset(comparison).spec
    assert parse_reward(spec["variants"][variant]) == parse_reward(load_preset(reward).spec)


def test_kneeling_run_is_appendix_c2() -> None:
    spec = load_preset("vlmrm_humanoid_kneeling_compare").spec
    (env,) = spec["envs"]
    assert env["kwargs"] == {
        "max_episode_steps": 100,
        "terminate_when_unhealthy": False,
        "width": 480,
        "height": 480,
        "camera_id": -1,
        "default_camera_config": CAMERA,
    }
    assert (spec["algo"], spec["budget"], spec["seeds"]) == ("sac", 10_000_000, 4)
    assert spec["eval"] == {"freq": 128_000, "episodes": 100}
    hp = spec["hyperparams"]
    assert (hp["learning_starts"], hp["train_freq"], hp["gradient_steps"]) == (50_000, 100, 100)
    assert (hp["tau"], hp["gamma"], hp["learning_rate"], hp["batch_size"]) == (
        0.005,
        0.95,
        6e-4,
        512,
    )
    # 32 envs x 100 steps is the paper's CLIP batch B = 3200 (Appendix C.2).
    assert hp["n_envs"] * env["kwargs"]["max_episode_steps"] == 3200


def test_scaling_run_is_figure_4c() -> None:
    spec = load_preset("vlmrm_humanoid_scaling_compare").spec
    models = {v["model"]["model"] for v in spec["variants"].values()}
    assert models == {"RN50", "ViT-L-14", "ViT-H-14", "ViT-bigG-14"}
    assert {v["model"]["options"]["alpha"] for v in spec["variants"].values()} == {0.0}
    assert spec["seeds"] == 2
    kneel = load_preset("vlmrm_humanoid_kneeling_compare").spec
    own = ("name", "description", "variants", "seeds")
    assert {k: v for k, v in spec.items() if k not in own} == {
        k: v for k, v in kneel.items() if k not in own
    }


def test_classic_control_runs_are_appendix_c1() -> None:
    cartpole = load_preset("vlmrm_cartpole_compare").spec
    hp = cartpole["hyperparams"]
    assert (cartpole["algo"], cartpole["budget"]) == ("dqn", 3_000_000)
    assert cartpole["envs"] == [{"id": "CartPole-v1", "kwargs": {"max_episode_steps": 200}}]
    assert (hp["learning_starts"], hp["train_freq"], hp["gradient_steps"]) == (75_000, 200, 200)
    assert (hp["learning_rate"], hp["policy_kwargs"]) == (2.3e-3, {"net_arch": [256, 256]})
    car = load_preset("vlmrm_mountaincar_compare").spec
    hp = car["hyperparams"]
    assert (car["algo"], car["budget"]) == ("sac", 3_000_000)
    assert (hp["tau"], hp["gamma"], hp["learning_rate"]) == (0.01, 0.9999, 1e-4)
    assert hp["ent_coef"] == 0.1
    assert hp["policy_kwargs"] == {"net_arch": [64, 64]}


def test_humanoid_kwargs_reach_gymnasiums_renderer() -> None:
    """The camera keywords are the env's, not ignored: a fixed free camera with VLM-RM's view."""
    from rewardlab.envs import make

    kwargs = load_preset("vlmrm_humanoid_kneeling_compare").spec["envs"][0]["kwargs"]
    with make("Humanoid-v5", **kwargs) as env:
        renderer = env.unwrapped.mujoco_renderer  # type: ignore[attr-defined]
        assert (renderer.camera_id, renderer.width, renderer.height) == (-1, 480, 480)
        assert renderer.default_cam_config == CAMERA
        assert env.spec is not None and env.spec.max_episode_steps == 100
        assert env.unwrapped._terminate_when_unhealthy is False  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["eureka_hopper", "eureka_halfcheetah", "eureka_humanoid"])
def test_eureka_searches_are_section_3_2(name: str) -> None:
    config = load_preset(name).validate()
    assert (config.samples, config.iterations, config.restarts) == (16, 5, 5)
    assert (config.llm.model, config.llm.temperature) == ("gpt-4-0314", 1.0)
    assert config.include_source and config.mode == "replace"
    assert (config.train.seeds, config.train.evaluations) == ([0], 10)
    assert (config.repair_rounds, config.failure_episodes) == (0, 0)


def test_text2reward_is_one_zero_shot_sample() -> None:
    config = load_preset("text2reward_hopper").validate()
    assert (config.samples, config.iterations, config.restarts) == (1, 1, 1)
    assert not config.include_source and config.train.algo == "sac"
    assert config.train.seeds == [12345, 23451, 34512, 45123, 51234]


# -- preset_warnings --


def test_default_clip_on_humanoid_warns_with_the_published_value_and_source() -> None:
    (message,) = preset_warnings("Humanoid-v5", "clip")  # CLIPOptions' default alpha 0.5
    assert KNEEL in message and "alpha is 0.5" in message and "uses 0 " in message
    assert "Section 4.3" in message and "kube/job.yaml" in message and "Rocamonde" in message


@pytest.mark.parametrize(
    "spec",
    [
        "{model: {kind: clip, options: {alpha: 0.0}}}",
        "{model: {kind: clip, head: cosine}}",  # the cosine head is alpha = 0 exactly
        "{model: {kind: clip, head: softmax, negatives: [a humanoid robot standing up]}}",
        "pbrs",  # no CLIP model
        "env",
        {"model": {"kind": "info", "key": "progress"}},
    ],
)
def test_no_warning_when_nothing_is_comparable_or_apart(spec: Any) -> None:
    assert preset_warnings("Humanoid-v5", spec) == []


@pytest.mark.parametrize(
    ("alpha", "warns"),
    [
        (0.5, False),
        (1.0, False),  # a factor of 2
        (0.06, False),  # a factor of 8.3
        (0.05, True),  # exactly 10 apart
        (0.01, True),
        (0.0, True),  # 0 against 0.5
    ],
)
def test_cartpole_alpha_order_of_magnitude(alpha: float, warns: bool) -> None:
    spec = {"model": {"kind": "clip", "options": {"alpha": alpha}}}
    messages = preset_warnings("CartPole-v1", spec)
    assert len(messages) == int(warns)
    if warns:
        assert "vlmrm_cartpole" in messages[0] and "uses 0.5" in messages[0]
        assert "configs/cartpole.yaml" in messages[0]


def test_any_nonzero_alpha_warns_against_a_published_zero() -> None:
    (message,) = preset_warnings("Humanoid-v5", "{model: {kind: clip, options: {alpha: 1.0e-6}}}")
    assert "0 against nonzero" in message


def test_a_clip_shaping_potential_is_checked_too() -> None:
    spec = "{shaping: {kind: clip, options: {alpha: 0.5}}}"
    (message,) = preset_warnings("Humanoid-v5", spec)
    assert message.startswith("the shaping potential's CLIP alpha")
    both = "{model: {kind: clip}, mode: add, shaping: {kind: clip, options: {alpha: 0.9}}}"
    assert len(preset_warnings("Humanoid-v5", both)) == 2


def test_a_reward_spec_object_or_mapping_is_accepted() -> None:
    expected = preset_warnings("Humanoid-v5", "clip")
    assert preset_warnings("Humanoid-v5", parse_reward("clip")) == expected
    assert preset_warnings("Humanoid-v5", {"model": {"kind": "clip"}}) == expected


@pytest.mark.parametrize("env_id", ["Hopper-v5", "rewardlab/GridEmpty-v0", "NoSuchEnv-v0", ""])
def test_envs_without_a_vlmrm_preset_get_no_warning(env_id: str) -> None:
    assert preset_warnings(env_id, "clip") == []


@pytest.mark.parametrize(
    "spec",
    [
        "{model: {kind: clip, options: {alpha: -0.5}}}",
        "{model: {kind: clip, options: {alpha: .nan}}}",
        "{model: {kind: clip, options: {c: 0.1}}}",  # an option of another head
        "no_such_reward",
    ],
)
def test_an_invalid_spec_is_a_valueerror(spec: str) -> None:
    with pytest.raises(ValueError):
        preset_warnings("Humanoid-v5", spec)


class ScaledClip(ClipModelSpec):
    """A CLIP model spec with a reward scale, which rewardlab's spec does not have yet."""

    scale: float = 1.0

    def clip_options(self) -> CLIPOptions:
        return ClipModelSpec.model_validate(self.model_dump(exclude={"scale"})).clip_options()


@pytest.mark.parametrize(
    ("scale", "warns"), [(1.0, False), (3.0, False), (10.0, True), (-1.0, True)]
)
def test_a_reward_scale_is_compared_where_the_spec_has_one(scale: float, warns: bool) -> None:
    model = ScaledClip(kind="clip", scale=scale, options={"alpha": 0.0})
    spec = RewardSpec.model_construct(model=model, shaping=None)
    messages = preset_warnings("Humanoid-v5", spec)
    assert [("CLIP scale" in m) for m in messages] == ([True] if warns else [])


@pytest.mark.parametrize(
    ("value", "published", "apart"),
    [
        (1.0, 1.0, False),
        (9.99, 1.0, False),
        (10.0, 1.0, True),
        (0.1, 1.0, True),
        (-1.0, 1.0, True),  # a sign flip
        (0.0, 0.0, False),
        (0.0, 1e-9, True),
        (math.nan, 1.0, True),
        (math.inf, math.inf, False),
    ],
)
def test_order_of_magnitude_rule(value: float, published: float, apart: bool) -> None:
    assert presets._apart(value, published) is apart


# -- names, files, table --


@pytest.mark.parametrize("bad", ["vlmrm_cartpol", "no_such_preset", "../reward_spec", "", None])
def test_unknown_names_fail_naming_close_ones(bad: Any) -> None:
    with pytest.raises(ValueError, match="unknown preset") as err:
        load_preset(bad)
    assert "vlmrm_humanoid_kneeling" in str(err.value)  # the list of presets
    if bad == "vlmrm_cartpol":
        assert "did you mean vlmrm_cartpole" in str(err.value)


GOOD_FILE = (Path(presets.__file__).parent / f"{KNEEL}.yaml").read_text()


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (lambda t: t.replace("  unverified:\n", "  unlisted:\n"), "unverified"),
        (lambda t: t.replace("12d3077769759bb8c503dbcb545b2f9ec04eaf4b", "12d3077", 1), "40-hex"),
        (lambda t: t.replace("follows: paper", "follows: memory"), "follows"),
        (lambda t: t.replace(f"name: {KNEEL}", "name: other"), "not its file's"),
        (lambda t: t.replace("kind: reward", "kind: reward\nkind: comparison"), "given twice"),
        (lambda t: t.replace("url: https://", "url: http://"), "url"),
    ],
)
def test_a_broken_preset_file_fails_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: Any, error: str
) -> None:
    (tmp_path / f"{KNEEL}.yaml").write_text(edit(GOOD_FILE))
    monkeypatch.setattr(presets.resources, "files", lambda package: tmp_path)
    with pytest.raises(ValueError, match=error):
        load_preset(KNEEL)


def test_a_spec_on_another_env_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "eureka_hopper"
    text = (Path(presets.__file__).parent / f"{name}.yaml").read_text()
    (tmp_path / f"{name}.yaml").write_text(text.replace("  env: Hopper-v5", "  env: Humanoid-v5"))
    monkeypatch.setattr(presets.resources, "files", lambda package: tmp_path)
    with pytest.raises(ValueError, match="is not the spec's"):
        load_preset(name)


def test_table_lists_every_preset_with_its_sources() -> None:
    lines = table().splitlines()
    assert len(lines) == 2 + len(NAMES)
    for name, line in zip(NAMES, lines[2:], strict=True):
        prov = load_preset(name).provenance
        assert line.startswith(f"| `{name}` |") and prov["url"] in line
        assert prov["code"]["repo"] in line and prov["code"]["files"][0]["commit"][:7] in line


def test_importing_presets_is_cheap() -> None:
    code = (
        "import sys, rewardlab.presets as p; p.load_preset('vlmrm_cartpole'); "
        "p.preset_warnings('CartPole-v1', 'clip'); "
        "print(sorted(m for m in ('torch', 'open_clip', 'mujoco', 'stable_baselines3') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- preset:NAME wherever a reward, a comparison or a search config is read ------------------


def test_preset_names_are_read_where_specs_are() -> None:
    from rewardlab.experiments.comparison_spec import load_spec
    from rewardlab.reward_spec import parse_reward

    spec = parse_reward("preset:vlmrm_cartpole")
    assert spec.model is not None and spec.model.options == {"alpha": 0.5}
    with pytest.raises(ValueError, match="is a comparison preset, not a reward; the reward "
                       "presets: vlmrm_cartpole"):  # fmt: skip
        parse_reward("preset:vlmrm_cartpole_compare")
    with pytest.raises(ValueError, match="spec: .*is a reward preset, not a comparison"):
        load_spec("preset:vlmrm_cartpole")
    with pytest.raises(ValueError, match="reward: .*vlmrm_cartpol"):
        parse_reward("preset:vlmrm_cartpol")


def test_the_cli_reads_presets_and_warns_off_published_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rewardlab.cli import main

    assert main(["compare", "preset:nope", "--out", str(tmp_path / "o")]) == 2
    assert "spec: unknown preset 'nope'" in capsys.readouterr().err
    assert main(["llm-reward", "search", "--config", "preset:vlmrm_cartpole"]) == 2
    assert "is a reward preset, not a llm_search" in capsys.readouterr().err
    # alpha 0.01 on CartPole, 50x below VLM-RM's 0.5: a warning before training (which then
    # stops on the missing weights file).
    reward = "{model: {kind: clip, pretrained: /nonexistent/w.pt, options: {alpha: 0.01}}}"
    args = ["train", "--env", "CartPole-v1", "--reward", reward, "--steps", "64"]
    args += ["--out", str(tmp_path / "run"), "--no-progress", "--eval-episodes", "1"]
    args += ["--set", "n_envs=1", "--set", "n_steps=64", "--set", "batch_size=64"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "warning:" in err and "vlmrm_cartpole" in err and "0.5" in err
    assert "/nonexistent/w.pt" in err.splitlines()[-1]
