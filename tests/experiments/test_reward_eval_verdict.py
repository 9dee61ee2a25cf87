"""eval-reward's names, dataset sizing, greyed-out metrics, intervals and verdicts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import rewardlab  # noqa: F401  (registers the ids)
from rewardlab.evaluation.dataset_metrics import (
    METRICS,
    PROBE_METRIC,
    SUCCESS_METRICS,
    TABULAR_METRICS,
)
from rewardlab.evaluation.datasets import DatasetConfig, load_dataset
from rewardlab.evaluation.verdict import judge
from rewardlab.experiments.reward_eval import (
    n_successes,
    named_rewards,
    open_dataset,
    run_eval,
)

ENV = "rewardlab/GridEmpty-v0"


def test_rewards_are_named_never_by_their_yaml() -> None:
    named = named_rewards(
        [
            "pbrs",
            "{shaping: progress, shaping_gamma: 0.9}",  # the pbrs_mismatched shorthand's spec
            "{shaping: progress, shaping_gamma: 0.95}",
            {"name": "my bonus", "progress_bonus": 0.1},
            "{name: from yaml, reward_type: dense}",
            "{reward_type: dense, shaping: {kind: info, key: progress, scale: 10}}",
            "{model: {kind: program, path: a/x.py}}",
            "{model: {kind: program, path: b/x.py}}",
        ]
    )
    assert [n for n, _ in named] == [
        "pbrs",
        "pbrs_mismatched",
        "env + pbrs(γ=0.95)",
        "my bonus",
        "from yaml",
        "dense + pbrs(progress x10)",
        "program x.py",
        "program x.py #2",
    ]
    assert named[3][1].progress_bonus == 0.1  # the name is not part of the spec
    # A generated name never takes a given one, nor an earlier generated one.
    names = [
        n
        for n, _ in named_rewards(
            ["progress", "progress", "{name: 'progress #2', reward_type: dense}"]
        )
    ]
    assert names == ["progress", "progress #3", "progress #2"]
    assert [n for n, _ in named_rewards(["pbrs", "{name: pbrs, reward_type: dense}"])] == [
        "pbrs #2",
        "pbrs",
    ]


@pytest.mark.parametrize(
    ("rewards", "message"),
    [
        ([{"name": "a", "reward_type": "dense"}, {"name": "a", "shaping": "progress"}], "two"),
        ([{"name": "", "reward_type": "dense"}], "non-empty"),
        ([{"name": 3, "reward_type": "dense"}], "non-empty"),
        ([{"name": "x", "shaping": "progres"}], "shaping"),
        ([{"name": "ref: random", "reward_type": "dense"}], "reference rows"),
    ],
)
def test_bad_names_fail_clearly(rewards: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        named_rewards(rewards)


def test_a_generated_dataset_grows_to_the_success_target(tmp_path: Path) -> None:
    logs: list[str] = []
    cfg = DatasetConfig(ENV, episodes={"expert": 1, "random": 1}, frames=False)
    ds = open_dataset(tmp_path / "ds", cfg, overwrite=False, log=logs.append, min_successes=5)
    assert n_successes(ds) >= 5
    assert ds.config.episodes["expert"] == ds.config.episodes["random"] > 1  # the mix kept
    assert any("regenerating with" in line for line in logs)
    # The grown dataset serves the same request again, unchanged ...
    again = open_dataset(tmp_path / "ds", cfg, overwrite=False, log=logs.append, min_successes=5)
    assert again.config == ds.config
    # ... and a growing request with no success target, but not one that fixed its episodes.
    grown = open_dataset(tmp_path / "ds", cfg, overwrite=False, log=logs.append, grow=True)
    assert grown.config == ds.config
    with pytest.raises(ValueError, match="other settings"):
        open_dataset(tmp_path / "ds", cfg, overwrite=False, log=logs.append)


def test_too_few_successes_grey_out_and_intervals_cover_the_sampled_metrics(
    tmp_path: Path,
) -> None:
    out = tmp_path / "eval"
    cfg = DatasetConfig(ENV, episodes={"expert": 2, "random": 2, "partial": 2}, frames=False)
    logs: list[str] = []
    run_eval(
        ENV,
        ["pbrs", "progress"],
        out,
        dataset_config=cfg,
        grow_dataset=False,
        min_successes=50,
        bootstrap=200,
        log=logs.append,
    )
    summary = json.loads((out / "summary.json").read_text())
    positives = summary["success_transitions"]
    assert 0 < positives < 50
    assert summary["low_support_metrics"] == sorted(SUCCESS_METRICS)
    assert any(f"only {positives} transition(s) enter success" in line for line in logs)
    report = (out / "report.md").read_text()
    assert report.index("## Verdict") < report.index("## Metrics")
    assert f"rests on {positives} success transitions" in report
    row = next(line for line in report.splitlines() if line.startswith("| pbrs |"))
    assert "*(" in row  # a greyed success metric
    pbrs = next(r for r in summary["rewards"] if r["name"] == "pbrs")
    sampled = set(METRICS) - set(TABULAR_METRICS) - {PROBE_METRIC}  # exact ones: no interval
    assert set(pbrs["intervals"]) == {k for k in sampled if pbrs[k] is not None}
    for key, (low, high) in pbrs["intervals"].items():
        assert low <= pbrs[key] + 1e-9 and pbrs[key] <= high + 1e-9 or key == "threshold", key
    assert [r["rank"] for r in summary["rewards"]].count(1) == 1
    assert all(r["verdict"] in ("good", "avoid", "unclear") for r in summary["rewards"])


def test_enough_successes_are_not_greyed(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    cfg = DatasetConfig(ENV, episodes={"expert": 3, "random": 1}, frames=False)
    run_eval(ENV, ["pbrs"], out, dataset_config=cfg, min_successes=3, bootstrap=0)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["low_support_metrics"] == [] and summary["success_transitions"] >= 3
    assert "*(" not in (out / "report.md").read_text()
    assert all(r["intervals"] == {} for r in summary["rewards"])
    ds = load_dataset(out / "dataset")
    assert ds.config.episodes == {"expert": 3, "random": 1}  # enough already: not grown


def _row(name: str, **metrics: float) -> tuple[str, dict[str, float], dict]:
    intervals = metrics.pop("intervals", {})  # type: ignore[arg-type]
    return name, metrics, intervals  # type: ignore[return-value]


def test_verdicts_rank_by_limited_optimization_and_give_reasons() -> None:
    nan = math.nan
    rows = [
        _row(
            "progress",
            opt_success=0.0,
            npg10_success=0.0,
            preference=0.3,
            epic_tabular=0.5,
            intervals={"preference": (0.2, 0.45)},
        ),  # fmt: skip
        _row(
            "mismatched", opt_success=1.0, npg10_success=0.0, preference=0.77, epic_tabular=0.06
        ),  # fmt: skip
        _row(
            "pbrs",
            opt_success=1.0,
            npg10_success=0.95,
            preference=0.9,
            epic_tabular=0.0,
            voc=-0.6,
            spearman_progress=-0.2,
        ),  # fmt: skip
        _row(
            "noise",
            opt_success=nan,
            npg10_success=nan,
            preference=0.45,
            roc_auc=0.52,
            intervals={"preference": (0.2, 0.8), "roc_auc": (0.4, 0.58)},
        ),  # fmt: skip
    ]
    verdicts = {v.name: v for v in judge(rows)}
    assert [v.name for v in judge(rows)] == ["pbrs", "mismatched", "progress", "noise"]
    assert verdicts["pbrs"].verdict == "good"
    assert "equivalent to the task reward" in verdicts["pbrs"].reasons[0]
    assert "per-step metrics judge" in verdicts["pbrs"].notes[0]
    assert verdicts["mismatched"].verdict == "avoid"
    assert "stalls learning" in " ".join(verdicts["mismatched"].reasons)
    assert "farmable" in " ".join(verdicts["progress"].reasons)
    # Noise around chance is not "farmable" (its interval spans 0.5), but ignores the goal.
    noise = " ".join(verdicts["noise"].reasons)
    assert "farmable" not in noise and "ignores the goal" in noise
    # Inverted detection is not "at chance", and on its own decides nothing.
    (inverted,) = judge([_row("shaped", roc_auc=0.0, preference=0.85,
                              intervals={"roc_auc": (0.0, 0.0)})])  # fmt: skip
    assert inverted.verdict == "unclear" and "ignores" not in " ".join(inverted.reasons)
    assert any("pays less on entering success" in n for n in inverted.notes)
    # With too few successes the preference metric gives no reason.
    low = {v.name: v for v in judge(rows, low_support={"preference", "roc_auc"})}
    assert "farmable" not in " ".join(low["progress"].reasons)
    assert low["noise"].verdict == "unclear"


def test_without_a_tabular_model_preference_ranks() -> None:
    rows = [
        _row("a", preference=0.85, spearman_return=0.9),
        _row("b", preference=0.9, spearman_return=0.1),
        _row("c", preference=math.nan, spearman_return=0.5),
    ]
    verdicts = judge(rows)
    assert [v.name for v in verdicts] == ["b", "a", "c"]
    # Preference accuracy was necessary for training well in the study, not sufficient.
    assert verdicts[0].verdict == "unclear" and "--probe-steps" in verdicts[0].notes[-1]
    # A reward whose return orders episodes unlike the task ranks below one not judged.
    rows.append(_row("d", preference=0.6, spearman_return=0.99))
    assert [v.name for v in judge(rows)] == ["b", "a", "c", "d"]


def test_an_equivalent_reward_whose_return_misorders_episodes_is_avoided() -> None:
    # PBRS with a potential 10 x progress on key-door: EPIC 0, NPG-10 95%, yet 0% trained.
    (v,) = judge([_row("pbrs_x10", opt_success=1.0, npg10_success=0.95, preference=0.57,
                       epic_tabular=0.0)])  # fmt: skip
    assert v.verdict == "avoid"
    assert "orders episodes unlike the task (pref. acc. 0.57" in " ".join(v.reasons)
    assert "time limit" in " ".join(v.notes)


def test_training_probe_is_a_labelled_column(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    cfg = DatasetConfig(ENV, episodes={"expert": 2, "random": 1}, frames=False)
    logs: list[str] = []
    run_eval(
        ENV,
        ["sparse", "{name: negated, model: {kind: info, key: progress, scale: -1}}"],
        out,
        dataset_config=cfg,
        grow_dataset=False,
        bootstrap=0,
        probe_steps=528,  # one PPO update on GridEmpty: 16 envs x 32 steps, and one step
        log=logs.append,
    )
    summary = json.loads((out / "summary.json").read_text())
    probed = {r["name"]: r["probe_success"] for r in summary["rewards"]}
    assert set(probed) == {"sparse", "negated", "ref: env dense reward (expert)", "ref: random"}
    for name in ("sparse", "negated"):
        assert 0.0 <= probed[name] <= 1.0  # one real run each: its eval success rate
        assert (out / "probe").is_dir()
    assert probed["ref: random"] is None  # a reference, not a trainable spec
    report = (out / "report.md").read_text()
    assert "probe succ. ↑" in report and "a cheap proxy, not exact" in report
    assert sum("probe " in line and "success" in line for line in logs) == 2
    assert sorted(p.name for p in (out / "probe").iterdir()) == ["00", "01"]
    for run in ("00", "01"):  # evaluated after one whole rollout, so after its update
        last = (out / "probe" / run / "eval.csv").read_text().splitlines()[-1]
        assert int(last.split(",")[0]) == 528


def test_without_a_tabular_model_the_probe_ranks_first() -> None:
    rows = [
        _row("a", preference=0.95, probe_success=0.2),
        _row("b", preference=0.85, probe_success=0.9),
    ]
    verdicts = judge(rows)
    assert [v.name for v in verdicts] == ["b", "a"]
    assert verdicts[0].verdict == "good"  # a probe run's success of 0.5 or more


def test_a_bad_probe_config_fails_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="probe_steps"):
        run_eval(ENV, ["pbrs"], tmp_path / "x", probe_steps=-1)
    # A budget below PPO's first update would report the untrained policy's success.
    with pytest.raises(ValueError, match="--probe-steps 300 trains nothing.*528 or more"):
        run_eval(ENV, ["pbrs"], tmp_path / "x", probe_steps=300)
    assert not (tmp_path / "x").exists()


def test_disagreeing_distances_are_explained() -> None:
    # A random-weight CLIP reward: STARC 1.00 ("negated") while EPIC says uncorrelated.
    (v,) = judge([_row("clip", epic_tabular=0.70, starc=1.0, preference=0.5)])
    assert any("EPIC tab. and STARC disagree (0.70 vs 1.00)" in n for n in v.notes)
    (close,) = judge([_row("close", epic_tabular=0.30, starc=0.35, preference=0.9)])
    assert not any("disagree" in n for n in close.notes)


def test_ties_share_a_rank_and_nan_is_never_quoted() -> None:
    rows = [
        _row("a", preference=1.0, spearman_return=0.7),
        _row("b", preference=1.0, spearman_return=0.7000001),  # equal at report precision
        _row("c", preference=0.9, spearman_return=0.9),
        _row(
            "d", epic=0.0, preference=0.9, spearman_return=0.9, voc=math.nan, spearman_progress=0.2
        ),  # fmt: skip
    ]
    verdicts = {v.name: v for v in judge(rows)}
    assert verdicts["a"].rank == verdicts["b"].rank
    assert "nan" not in " ".join(verdicts["d"].notes) and "Spearman prog. 0.20" in " ".join(
        verdicts["d"].notes
    )
    # Detection at chance is a doubt: it keeps a reward from "good", with its reason shown.
    (v,) = judge([_row("x", npg10_success=0.9, preference=0.9, roc_auc=0.5,
                       intervals={"roc_auc": (0.45, 0.55)})])  # fmt: skip
    assert v.verdict == "unclear" and "ignores the goal" in v.reasons[-1]


def test_with_every_ranking_metric_greyed_out_the_report_says_not_ranked(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    cfg = DatasetConfig(
        "rewardlab/ManipReach-v0", episodes={"expert": 1, "random": 1}, frames=False
    )
    run_eval("rewardlab/ManipReach-v0", ["pbrs"], out, dataset_config=cfg, grow_dataset=False,
             min_successes=1000, bootstrap=0)  # fmt: skip
    report = (out / "report.md").read_text()
    assert "Not ranked within a verdict" in report
    assert json.loads((out / "summary.json").read_text())["ranking"] == []
