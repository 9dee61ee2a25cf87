"""Comparison report: numbers, decisions, every section and figure, atomic writes, input errors."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rewardlab.evaluation import iqm, normalized_auc
from rewardlab.experiments import files as files_module
from rewardlab.experiments.report import RunResult, summarize, write_report

ENV = "rewardlab/PushCube-v0"
STEPS = np.arange(0, 50_001, 10_000)
BUDGET, THRESHOLD, REPS = 50_000, 0.7, 200
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _runs(variant: str, final: list[float], env: str = ENV) -> list[RunResult]:
    """One run per final success: a linear ramp from 0 to it, true return 100 x success."""
    runs = []
    for seed, f in enumerate(final):
        success = np.linspace(0.0, f, STEPS.size)
        runs.append(RunResult(env, variant, seed, STEPS, success, 100.0 * success))
    return runs


GOOD = [0.9, 0.95, 1.0, 1.0, 0.85]
BAD = [0.1, 0.2, 0.0, 0.3, 0.15]
RESULTS = _runs("good", GOOD) + _runs("bad", BAD)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(
        RESULTS,
        tmp_path_factory.mktemp("report"),
        title="Good vs bad",
        budget=BUDGET,
        threshold=THRESHOLD,
        reps=REPS,
        notes="Synthetic runs.",
    )


def test_summary_numbers() -> None:
    summary = summarize(RESULTS, budget=BUDGET, threshold=THRESHOLD, reps=REPS)
    env = summary["envs"][ENV]
    assert list(env["variants"]) == ["bad", "good"]  # sorted by name
    good, bad = env["variants"]["good"], env["variants"]["bad"]
    assert good["n_runs"] == 5 and good["seeds"] == [0, 1, 2, 3, 4]
    assert good["final_success"]["iqm"]["point"] == pytest.approx(iqm(GOOD))
    assert good["final_success"]["mean"]["point"] == pytest.approx(np.mean(GOOD))
    assert good["final_return"]["iqm"]["point"] == pytest.approx(100 * iqm(GOOD))
    # A linear ramp from 0 to f over the whole budget has normalized area f / 2.
    assert good["auc"]["iqm"]["point"] == pytest.approx(iqm(GOOD) / 2)
    assert normalized_auc(STEPS, np.linspace(0, 0.9, STEPS.size), BUDGET) == pytest.approx(0.45)
    # Ramps to 0.9, 0.95, 1, 1 reach 0.7 at the 5th evaluation (step 40k), 0.85 at the 6th.
    assert good["steps_to_threshold"] == {
        "n_runs": 5,
        "n_reached": 5,
        "n_never": 0,
        "median": 40_000.0,
        "iqm": 40_000.0,
    }
    assert bad["steps_to_threshold"]["n_never"] == 5
    assert bad["steps_to_threshold"]["median"] is None  # NaN is written as null
    for ci in (good["final_success"]["iqm"], bad["auc"]["iqm"]):
        assert ci["low"] <= ci["point"] <= ci["high"]
    assert env["probability_of_improvement"]["good"]["bad"] == {
        "point": 1.0,
        "low": 1.0,
        "high": 1.0,
    }
    assert env["probability_of_improvement"]["bad"]["good"]["point"] == 0.0
    assert env["decision"] == [
        {"pair": ["bad", "good"], "metric": m, "decision": "good better than bad"}
        for m in ("final_success", "auc")
    ]
    json.dumps(summary, allow_nan=False)


def test_summary_is_deterministic_and_per_variant() -> None:
    kwargs: dict[str, Any] = {"budget": BUDGET, "threshold": THRESHOLD, "reps": REPS, "seed": 3}
    summary = summarize(RESULTS, **kwargs)
    assert summarize(RESULTS[::-1], **kwargs) == summary
    assert summarize(RESULTS, **{**kwargs, "seed": 4}) != summary
    # Adding a variant leaves the others' intervals unchanged.
    more = summarize(RESULTS + _runs("other", [0.5, 0.6, 0.4]), **kwargs)
    for v in ("good", "bad"):
        assert more["envs"][ENV]["variants"][v] == summary["envs"][ENV]["variants"][v]


def test_overlapping_intervals_give_no_clear_difference() -> None:
    runs = _runs("a", [0.5, 0.6, 0.7, 0.4, 0.55]) + _runs("b", [0.45, 0.65, 0.6, 0.5, 0.5])
    summary = summarize(runs, budget=BUDGET, threshold=THRESHOLD, reps=REPS)
    assert summary["envs"][ENV]["decision"][0] == {
        "pair": ["a", "b"],
        "metric": "final_success",
        "decision": "no clear difference",
    }


def test_report_has_every_section(written: Path) -> None:
    text = written.read_text()
    assert written.name == "report.md"
    assert text.startswith("# Good vs bad\n\nSynthetic runs.\n")
    assert f"## {ENV}" in text
    header = next(line for line in text.splitlines() if line.startswith("| Variant"))
    for column in (
        "Runs",
        "Final success IQM",
        "Final success mean",
        "Final return IQM",
        "Normalized AUC IQM",
        "Steps to success ≥ 0.7",
    ):
        assert column in header
    good_row = next(line for line in text.splitlines() if line.startswith("| good |"))
    assert f"| 5 | {iqm(GOOD):.2f} [" in good_row
    assert "40,000 (never: 0/5)" in good_row
    bad_row = next(line for line in text.splitlines() if line.startswith("| bad |"))
    assert "– (never: 5/5)" in bad_row
    assert "### Decisions" in text and "- final success: good better than bad" in text
    # The pair is (bad, good): the intervals follow the sentence, the winner's first.
    decided = next(x for x in text.splitlines() if x.startswith("- final success: good better"))
    assert f"({iqm(GOOD):.2f} [" in decided, decided
    assert "- normalized AUC of success: good better than bad" in text
    assert "### Probability of improvement" in text
    assert "| good | 1.00 [1.00, 1.00] | – |" in text
    assert "| bad | – | 0.00 [0.00, 0.00] |" in text


def test_report_figures_and_summary(written: Path) -> None:
    out = written.parent
    links = [
        line[line.index("](") + 2 : -1]
        for line in written.read_text().splitlines()
        if line.startswith("![")
    ]
    slug = "rewardlab_PushCube-v0"
    assert links == [
        f"{slug}_learning_curves.png",
        f"{slug}_final_success.png",
        f"{slug}_performance_profile.png",
        f"{slug}_probability_of_improvement.png",
    ]
    for link in links:
        data = (out / link).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
    summary = json.loads((out / "summary.json").read_text())
    assert summary == summarize(RESULTS, budget=BUDGET, threshold=THRESHOLD, reps=REPS)
    assert sorted(p.name for p in out.iterdir()) == sorted([*links, "report.md", "summary.json"])


def test_report_per_env_and_atomic_rewrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = _runs("good", GOOD[:3]) + _runs("bad", BAD[:3], env="rewardlab/GridEmpty-v0")
    path = write_report(runs, tmp_path, title="Two envs", budget=BUDGET, threshold=0.5, reps=50)
    text = path.read_text()
    assert "## rewardlab/GridEmpty-v0" in text and f"## {ENV}" in text
    assert "only one variant: nothing to compare" in text
    assert (tmp_path / "rewardlab_GridEmpty-v0_learning_curves.png").exists()
    assert (tmp_path / "rewardlab_PushCube-v0_performance_profile.png").exists()

    # A failure while moving report.md into place leaves the old report whole, no temp file.
    real_replace = os.replace

    def failing_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst).name == "report.md":
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(files_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_report(runs[:3], tmp_path, title="Rewritten", budget=BUDGET, threshold=0.5, reps=50)
    assert path.read_text() == text
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def _run(**overrides: object) -> RunResult:
    fields: dict[str, object] = {
        "env": ENV,
        "variant": "v",
        "seed": 7,
        "steps": [0, 10, 20],
        "success": [0.0, 0.5, 1.0],
        "returns": [0.0, 1.0, 2.0],
    }
    return RunResult(**{**fields, **overrides})  # type: ignore[arg-type]


def test_run_result_validation_names_the_run() -> None:
    run = _run()
    assert run.steps.dtype == np.float64 and not run.steps.flags.writeable
    with pytest.raises(ValueError, match=r"seed=7: steps, success and returns must have the same"):
        _run(returns=[0.0, 1.0])
    with pytest.raises(ValueError, match=r"variant='v' seed=7: success\[1\] is nan"):
        _run(success=[0.0, math.nan, 1.0])
    with pytest.raises(ValueError, match=r"seed=7: returns\[2\] is inf"):
        _run(returns=[0.0, 1.0, math.inf])
    with pytest.raises(ValueError, match=r"success\[2\] is 1.5, expected in \[0, 1\]"):
        _run(success=[0.0, 0.5, 1.5])
    with pytest.raises(ValueError, match="strictly increasing"):
        _run(steps=[0, 20, 10])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        _run(steps=[], success=[], returns=[])
    with pytest.raises(ValueError, match="variant must be a non-empty string"):
        _run(variant="")


def test_summarize_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="results is empty"):
        summarize([], budget=BUDGET, threshold=THRESHOLD)
    with pytest.raises(ValueError, match="seed=7 appears twice"):
        summarize([_run(), _run()], budget=BUDGET, threshold=THRESHOLD)
    with pytest.raises(ValueError, match="seed=7: first evaluation at step 10 is not before"):
        summarize([_run(steps=[10, 20, 30])], budget=10, threshold=THRESHOLD)
    with pytest.raises(TypeError, match=r"results\[0\] must be a RunResult"):
        summarize([{"env": ENV}], budget=BUDGET, threshold=THRESHOLD)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="threshold"):
        summarize([_run()], budget=BUDGET, threshold=math.nan)


def test_human_normalized_score_of_the_other_variants(tmp_path: Path) -> None:
    mid = [0.5, 0.55, 0.6, 0.5, 0.45]
    runs = RESULTS + _runs("mid", mid) + _runs("great", [1.0] * 5)
    summary = summarize(
        runs, budget=BUDGET, threshold=THRESHOLD, reps=REPS, normalize=("bad", "good")
    )
    hns = summary["envs"][ENV]["human_normalized_score"]
    assert sorted(hns) == ["great", "mid"]  # not the two it is normalized by
    expected = (iqm(mid) - iqm(BAD)) / (iqm(GOOD) - iqm(BAD))
    assert hns["mid"]["final_success"] == pytest.approx(expected)
    assert hns["mid"]["auc"] == pytest.approx(expected)  # ramps: AUC is half the final
    assert hns["great"]["final_success"] > 1.0 and hns["great"]["final_success_clipped"] <= 3.0
    # An env without both reference variants has no score; equal references: undefined.
    alone = summarize(
        _runs("mid", mid), budget=BUDGET, threshold=THRESHOLD, reps=REPS, normalize=("bad", "good")
    )
    assert "human_normalized_score" not in alone["envs"][ENV]
    same = _runs("s", mid) + _runs("h", mid) + _runs("v", GOOD)
    undefined = summarize(same, budget=BUDGET, threshold=THRESHOLD, reps=REPS, normalize=("s", "h"))
    assert undefined["envs"][ENV]["human_normalized_score"]["v"]["final_success"] is None
    report = write_report(
        runs,
        tmp_path,
        title="t",
        budget=BUDGET,
        threshold=THRESHOLD,
        reps=REPS,
        normalize=("bad", "good"),
    )
    assert "### Human normalized score" in report.read_text()
    assert f"| mid | {expected:.2f}" in report.read_text()


def test_human_normalized_score_function() -> None:
    from rewardlab.evaluation.run_stats import human_normalized_score

    assert human_normalized_score(0.5, 0.0, 1.0) == 0.5
    assert human_normalized_score(0.5, 1.0, 0.0) == -0.5  # |human - sparse|
    assert human_normalized_score(9.0, 0.0, 1.0, clip=(0.0, 3.0)) == 3.0
    assert human_normalized_score(0.5, 0.3, 0.3) is None


def test_a_decision_needs_enough_runs_per_variant() -> None:
    # Three runs each, intervals far apart: still no "better" (issue 14: 3 seeds decided).
    runs = _runs("a", [0.9, 0.95, 1.0]) + _runs("b", [0.0, 0.05, 0.1])
    summary = summarize(runs, budget=BUDGET, threshold=THRESHOLD, reps=REPS)
    for d in summary["envs"][ENV]["decision"]:
        assert d["decision"] == "too few runs to decide (3 and 3; at least 5 each)"


@pytest.mark.parametrize(
    ("finals", "outcome"),
    [([0.0] * 5, "no variant learned"), ([1.0] * 5, "all variants at ceiling"), (GOOD, None)],
)
def test_no_variant_learned_and_ceiling_are_said(
    tmp_path: Path, finals: list[float], outcome: str | None
) -> None:
    runs = _runs("a", finals) + _runs("b", finals)
    summary = summarize(runs, budget=BUDGET, threshold=THRESHOLD, reps=REPS)
    assert summary["envs"][ENV]["outcome"] == outcome
    text = write_report(
        runs, tmp_path, title="t", budget=BUDGET, threshold=THRESHOLD, reps=REPS
    ).read_text()
    assert (f"- **{outcome}**" in text) == (outcome is not None)


def test_decision_intervals_get_the_digits_that_show_their_gap() -> None:
    from rewardlab.experiments.report import _interval_pair

    a = {"point": 0.25, "low": 0.2004, "high": 0.3}
    b = {"point": 0.15, "low": 0.1234, "high": 0.2001}
    # At 2 or 3 decimals b's high and a's low both print as 0.20(0): the gap would vanish.
    assert _interval_pair(a, b) == "0.2500 [0.2004, 0.3000] vs 0.1500 [0.1234, 0.2001]"
    wide = {"point": 0.9, "low": 0.8, "high": 0.95}
    assert _interval_pair(wide, b) == "0.90 [0.80, 0.95] vs 0.15 [0.12, 0.20]"


def test_every_run_that_never_learned_is_named(tmp_path: Path) -> None:
    # BAD's seed 2 ends at 0 with a ramp from 0: no success at any evaluation.
    summary = summarize(RESULTS, budget=BUDGET, threshold=THRESHOLD, reps=REPS)
    variants = summary["envs"][ENV]["variants"]
    assert variants["bad"]["never_succeeded"] == [2]
    assert variants["good"]["never_succeeded"] == []
    text = write_report(
        RESULTS, tmp_path, title="t", budget=BUDGET, threshold=THRESHOLD, reps=REPS
    ).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| bad |"))
    assert row.endswith("| 1/5 (2) |")
    # A run that succeeded once and fell back to 0 did learn something: not listed.
    dip = RunResult(ENV, "dip", 0, STEPS, np.r_[0.0, 0.4, np.zeros(STEPS.size - 2)], STEPS * 0)
    assert (
        summarize([dip], budget=BUDGET, threshold=THRESHOLD, reps=REPS)["envs"][ENV]["variants"][
            "dip"
        ]["never_succeeded"]
        == []
    )


def test_probability_of_improvement_from_too_few_runs_is_marked(tmp_path: Path) -> None:
    runs = _runs("a", [0.9, 0.95, 1.0]) + _runs("b", [0.0, 0.05, 0.1])
    text = write_report(
        runs, tmp_path, title="t", budget=BUDGET, threshold=THRESHOLD, reps=REPS
    ).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| a | – |"))
    assert row.endswith("1.00 [1.00, 1.00] † |")
    assert "†: fewer than 5 runs" in text
    enough = write_report(
        RESULTS, tmp_path / "b", title="t", budget=BUDGET, threshold=THRESHOLD, reps=REPS
    ).read_text()
    assert "†" not in enough
