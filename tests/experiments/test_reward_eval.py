"""rewardlab eval-reward: reference rewards score as they must, on every family, and the
full command writes its report with a tiny random-weight open_clip model."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rewardlab  # noqa: F401  (registers the ids)
from rewardlab.cli import main
from rewardlab.evaluation.datasets import (
    EPISODE_KINDS,
    DatasetConfig,
    TrajectoryDataset,
    generate_dataset,
)
from rewardlab.evaluation.reward_tables import ModelCache, random_reward, spec_reward
from rewardlab.experiments.reward_eval import (
    RewardScores,
    evaluate_rewards,
    sweep_specs,
    tabular_setup,
)
from rewardlab.reward_spec import parse_reward

FAMILIES = ["rewardlab/GridKeyDoor-v0", "rewardlab/ManipReach-v0", "rewardlab/DriveHighway-v0"]
REWARDS = {
    "progress": "progress",
    "pbrs_sparse": "{reward_type: sparse, shaping: progress}",
    "negated_success": "{model: {kind: info, key: is_success, scale: -1}}",
    "mismatched": "{reward_type: sparse, shaping: progress, shaping_gamma: 0.9}",
}


def score(ds: TrajectoryDataset, tabular: Any = None) -> dict[str, RewardScores]:
    encoders = ModelCache(ds.env_id)
    own = ds.metadata["generator"]["env_kwargs"].get("reward_type")
    import gymnasium as gym

    own = own or gym.make(ds.env_id).unwrapped.config.reward_type

    def make(table: Any) -> list:
        built = [
            spec_reward(
                name,
                parse_reward(text),
                table,
                gamma=0.99,
                models=encoders,
                own_reward_type=own,
                dense_reward_type=ds.metadata["dense_reward_type"],
            )
            for name, text in REWARDS.items()
        ]
        return [*built, random_reward("random", table, seed=1)]

    names = [*REWARDS, "random"]
    scores = evaluate_rewards(
        ds, make, roles=["reward"] * len(names), gamma=0.99, coverage=256, seed=0, tabular=tabular
    )
    return dict(zip(names, scores, strict=True))


@pytest.fixture(scope="module", params=FAMILIES)
def family(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    cfg = DatasetConfig(request.param, episodes=dict.fromkeys(EPISODE_KINDS, 6), frames=False)
    ds = generate_dataset(cfg, tmp_path_factory.mktemp("ds") / "ds")
    return ds, score(ds)


def test_progress_reward_scores_near_perfectly(family: Any) -> None:
    ds, scores = family
    m = scores["progress"].metrics
    assert m["pearson_progress"] == pytest.approx(1.0)
    assert m["spearman_progress"] == pytest.approx(1.0)
    assert m["roc_auc"] == pytest.approx(1.0)  # progress is 1 exactly on success states
    assert m["pr_auc"] == pytest.approx(1.0)
    assert m["balanced_accuracy"] == pytest.approx(1.0)
    assert m["voc"] >= 0.9, m["voc"]
    assert m["point_biserial"] > 0.05  # positive; small where success frames are rare


def test_shaped_true_reward_is_epic_equivalent_and_orders_episodes(family: Any) -> None:
    ds, scores = family
    m = scores["pbrs_sparse"].metrics
    assert m["epic"] == pytest.approx(0.0, abs=1e-6)
    # Not 1: the shaped return of an episode cut before its end keeps gamma^T Phi(s_T), a
    # stand-in for the success still to come, which the true return does not count.
    assert m["preference"] >= 0.75, m["preference"]
    assert scores["negated_success"].metrics["epic"] == pytest.approx(1.0, abs=1e-6)
    # Shaped with a discount other than the agent's: not equivalent (the negative control).
    assert scores["mismatched"].metrics["epic"] > 0.01


def test_random_reward_is_near_chance(family: Any) -> None:
    """Within 4 standard deviations of each statistic under the null of no association."""
    ds, scores = family
    m = scores["random"].metrics
    _, s2 = ds.transition_states()
    n = len(s2)
    pos = int(np.asarray(ds.success)[s2].sum())
    neg = n - pos
    assert abs(m["pearson_progress"]) < 4 / math.sqrt(n)
    assert abs(m["point_biserial"]) < 4 / math.sqrt(n)
    # Mann-Whitney null: sd of AUC = sqrt((pos + neg + 1) / (12 pos neg)).
    assert abs(m["roc_auc"] - 0.5) < 4 * math.sqrt((n + 1) / (12 * pos * neg))
    expert_steps = sum(e.n_steps for e in ds.episodes if e.kind == "expert")
    assert abs(m["voc"]) < 4 / math.sqrt(expert_steps - 3)
    assert abs(m["epic"] - math.sqrt(0.5)) < 0.1  # uncorrelated: sqrt(1/2)
    # Preferences pit successes against failures: the episode-level AUC null.
    n_s = sum(e.success for e in ds.episodes)
    n_f = len(ds.episodes) - n_s
    assert abs(m["preference"] - 0.5) < 4 * math.sqrt((n_s + n_f + 1) / (12 * n_s * n_f))


def test_tabular_epic_and_starc_on_a_gridworld(tmp_path: Path) -> None:
    cfg = DatasetConfig(
        "rewardlab/GridKeyDoor-v0", episodes=dict.fromkeys(EPISODE_KINDS, 1), frames=False
    )
    ds = generate_dataset(cfg, tmp_path / "ds")
    tab = tabular_setup(ds)
    assert tab is not None and len(tab.table) == tab.transitions.shape[0]
    scores = score(ds, tab)
    pbrs = scores["pbrs_sparse"].metrics
    assert pbrs["epic_tabular"] == pytest.approx(0.0, abs=1e-9)
    assert pbrs["starc"] == pytest.approx(0.0, abs=1e-9)
    neg = scores["negated_success"].metrics
    assert neg["epic_tabular"] == pytest.approx(1.0, abs=1e-9)
    assert neg["starc"] == pytest.approx(1.0, abs=1e-9)
    for name in ("progress", "random", "mismatched"):
        assert 0.01 < scores[name].metrics["starc"] < 1.0
        assert 0.01 < scores[name].metrics["epic_tabular"] < 1.0
    # Exact regret: PBRS is the task at the optimum and learns like it; the mismatched discount
    # solves the task at the optimum yet stalls a learner (what training shows), and raw
    # progress is farmed without ever finishing.
    assert (pbrs["opt_success"], pbrs["opt_regret"]) == pytest.approx((1.0, 0.0), abs=1e-9)
    assert pbrs["npg10_success"] > 0.9
    mismatched = scores["mismatched"].metrics
    assert mismatched["opt_success"] == pytest.approx(1.0)
    assert mismatched["npg10_success"] < 0.01 and mismatched["npg10_regret"] > 0.99
    assert scores["progress"].metrics["opt_success"] < 0.01
    assert neg["opt_success"] < 0.01 and neg["opt_regret"] == pytest.approx(1.0)
    # The env's own sparse reward, as its tabular model records it (on possible transitions
    # only), is the ground truth to STARC, which follows the dynamics.
    from rewardlab.evaluation import reward_metrics as metrics
    from rewardlab.evaluation.reward_tables import TermReward

    tt = tab.table
    truth = TermReward("t", values=tt.info("is_success")).tensor(tt.terminal, tab.n_actions, None)
    live = (~tt.terminal)[:, None, None]
    starc_env = metrics.starc_distance(truth * live, tab.env_reward, tab.transitions, 0.99)
    assert starc_env == pytest.approx(0.0, abs=1e-9)
    assert metrics.starc_distance(truth * live, tab.dense_reward, tab.transitions, 0.99) > 0.01


# --- the command ------------------------------------------------------------------------------

open_clip = pytest.importorskip("open_clip")
TINY = "rewardlab-tiny-clip"
open_clip.add_model_config(Path(__file__).resolve().parents[1] / "reward_models" / f"{TINY}.json")
CLIP = f"{{model: {{kind: clip, model: {TINY}, pretrained: null, device: cpu}}}}"
SMALL = ["--env-kwarg", "render_width=32", "--env-kwarg", "render_height=32"]


def run(*args: str) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # random CLIP weights warn
        return main(["eval-reward", *args])


def test_full_command_writes_every_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        f"model: {TINY}\npretrained: null\ndevice: cpu\n"
        "heads:\n  goal_baseline: {alpha: [0.0, 1.0]}\n  softmax: {temperature: 0.1}\n"
        "prompt_sets:\n  task: {}\n  plain: {goal: a green square, baseline: a grid}\n"
    )
    out = tmp_path / "eval"
    rc = run(
        "--env", "rewardlab/GridEmpty-v0", "--reward", CLIP, "--reward", "pbrs",
        "--sweep", str(sweep), "--episodes", "1", *SMALL, "--out", str(out),
    )  # fmt: skip
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    report = (out / "report.md").read_text()
    sections = (
        *("## Metrics", "EPIC ↓", "EPIC tab.", "STARC", "r_pb", "VOC", "ROC AUC", "PR AUC"),
        *("pref. acc.", "ref: random", "ref: env dense reward (expert)", "## Figures"),
        *("reward_vs_progress.png", "success_histograms.png", "roc.png"),
    )
    for section in sections:
        assert section in report, section
    for png in ("reward_vs_progress.png", "success_histograms.png", "roc.png"):
        assert (out / png).stat().st_size > 1000
    summary = json.loads((out / "summary.json").read_text())
    names = [r["name"] for r in summary["rewards"]]
    assert len(names) == 2 + 2 * 2 + 2 + 2  # 2 rewards, 3 head points x 2 prompt sets, 2 refs
    assert "clip goal_baseline alpha=1.0 [plain]" in names
    # One encoding of every dataset frame and every tabular state's frame, for all 7 CLIP rows.
    n_states = json.loads((out / "dataset" / "metadata.json").read_text())["n_states"]
    encoded = int(printed.out.split("frames encoded: ")[1].split()[0])
    # Encoding shows its progress, ending at every frame of each table encoded.
    ticks = [line for line in printed.out.splitlines() if f"frames encoded by {TINY}" in line]
    assert any(line.startswith(f"[{n_states}/{n_states}]") for line in ticks), ticks
    assert len(ticks) <= 2 * 11  # about ten per table (dataset, tabular layout)
    n_tab = 4 * (8 - 2) ** 2 * 1  # GridEmpty 8x8: 6x6 floor cells x 4 directions, 1 stage
    assert encoded == n_states + n_tab
    # A second run keeps the report unless asked, and reuses the dataset.
    again = ["--env", "rewardlab/GridEmpty-v0", "--reward", "pbrs", "--episodes", "1", *SMALL]
    assert run(*again, "--out", str(out)) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "report.md").read_text() == report
    assert run(*again, "--out", str(out), "--overwrite") == 0
    assert "generating" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "rewardlab/GridEmty-v0"], "unknown env id"),
        (["--env", "rewardlab/GridEmpty-v0", "--reward", "pbrss"], "did you mean"),
        (["--env", "rewardlab/GridEmpty-v0", "--reward", "{shaping: progres}"], "shaping"),
        (["--env", "rewardlab/GridEmpty-v0", "--dataset", "/nonexistent"], "no trajectory"),
        (
            ["--env", "rewardlab/GridEmpty-v0", "--reward", "{model: {kind: info, key: x}}"],
            "not stored per state",
        ),
        (["--env", "rewardlab/GridEmpty-v0", "--reward", "weighted"], "--env-kwarg reward_type"),
        (["--env", "rewardlab/GridEmpty-v0", "--episodes", "0"], "--episodes 1 or more"),
        (["--env", "rewardlab/GridEmpty-v0", "--env-kwarg", "sise=5"], "sise"),
        (["--env", "rewardlab/GridEmpty-v0", "--gamma", "1.0"], "gamma must be in [0, 1)"),
        (
            ["--env", "rewardlab/GridEmpty-v0", "--gamma", "0.9", "--reward", "pbrs_mismatched"],
            "shaping_gamma",
        ),
    ],
)
def test_bad_input_fails_clearly(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = run("--episodes", "1", "--no-frames", "--out", str(tmp_path / "out"), *args)
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # checked before anything is generated


def test_dataset_of_another_env_version_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = generate_dataset(
        DatasetConfig("rewardlab/GridEmpty-v0", episodes={"expert": 1}, frames=False),
        tmp_path / "ds",
    )
    meta = json.loads((ds.path / "metadata.json").read_text())
    meta["env_id"] = "rewardlab/GridEmpty-v1"  # as if generated by a later env version
    (ds.path / "metadata.json").write_text(json.dumps(meta))
    rc = run("--env", "rewardlab/GridEmpty-v0", "--dataset", str(ds.path), "--out", str(tmp_path))
    assert rc == 2
    err = capsys.readouterr().err
    assert "GridEmpty-v1, not rewardlab/GridEmpty-v0" in err and "another version" in err


def test_changed_settings_do_not_touch_the_existing_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert run("--env", "rewardlab/GridEmpty-v0", "--episodes", "1", "--no-frames",
               "--out", str(out)) == 0  # fmt: skip
    before = (out / "dataset" / "metadata.json").read_text()
    assert run("--env", "rewardlab/GridEmpty-v0", "--episodes", "2", "--no-frames",
               "--out", str(out), "--overwrite") == 2  # fmt: skip
    assert "other settings" in capsys.readouterr().err
    assert (out / "dataset" / "metadata.json").read_text() == before


def test_sweep_expands_the_grid_and_rejects_unknown_keys() -> None:
    specs = sweep_specs(
        {
            "model": TINY,
            "heads": {"goal_baseline": {"alpha": [0.0, 0.5, 1.0]}, "cosine": {}},
            "prompt_sets": {"a": {}, "b": {"goal": "x"}},
        }
    )
    assert len(specs) == (3 + 1) * 2
    assert {s.model.head for _, s in specs} == {"goal_baseline", "cosine"}  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="unknown key"):
        sweep_specs({"head": {}})


def test_shipped_sweep_expands() -> None:
    from rewardlab.experiments.reward_eval import load_sweep

    specs = load_sweep(Path(__file__).resolve().parents[2] / "experiments" / "sweeps" / "clip.yaml")
    assert len(specs) == 5 + 2 + 1


TRAINED_SPECS = [
    "pbrs",
    "progress_bonus",
    "pbrs_mismatched",
    "progress",
    "env",
    "{model: {kind: info, key: progress}, mode: add}",
    "{shaping: {kind: info, key: progress, shift: -1}}",
]


@pytest.mark.parametrize("env_id", ["rewardlab/GridKeyDoor-v0", "rewardlab/DriveHighway-v0"])
def test_scores_are_what_training_pays(env_id: str, tmp_path: Path) -> None:
    """Replay every episode through the training reward stack: the same reward per step."""
    from rewardlab.evaluation.dataset_metrics import dataset_table
    from rewardlab.vec import make_vec_env

    ds = generate_dataset(
        DatasetConfig(env_id, episodes=dict.fromkeys(EPISODE_KINDS, 1), frames=False),
        tmp_path / "ds",
    )
    table = dataset_table(ds)
    own = str(ds.metadata["generator"]["env_kwargs"].get("reward_type") or "")
    import gymnasium as gym

    own = own or gym.make(env_id).unwrapped.config.reward_type
    s, s2 = ds.transition_states()
    specs = [*TRAINED_SPECS, "dense" if env_id.startswith("rewardlab/Grid") else "carl"]
    for text in specs:
        spec = parse_reward(text)
        term = spec_reward(
            text,
            spec,
            table,
            gamma=0.99,
            models=ModelCache(env_id),
            own_reward_type=own,
            dense_reward_type=ds.metadata["dense_reward_type"],
        )
        recorded = {"env": ds.rewards, "dense": ds.dense_rewards}.get(term.recorded or "")
        scored = term.on_transitions(s, s2, table.terminal, recorded)
        for e, ep in enumerate(ds.episodes):
            venv = make_vec_env(env_id, reward=spec, n_envs=1, seed=ep.seed, gamma=0.99)
            venv.reset()
            t0 = ds.transition_starts[e]
            paid = [
                float(venv.step(np.asarray(ds.actions[t0 + t])[None])[1][0])
                for t in range(ep.n_steps)
            ]
            venv.close()
            assert np.allclose(paid, scored[t0 : t0 + ep.n_steps], atol=1e-6), (text, ep.kind)
