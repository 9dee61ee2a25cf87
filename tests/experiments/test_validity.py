"""The predictive-validity study: correlations, decisive pairs, report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewardlab.experiments.validity import load_outcomes, main, predictive_validity


def _compare(path: Path, variants: dict[str, tuple[float, float, float, int]]) -> Path:
    """A compare summary: variant -> (final IQM low, point, high, runs)."""
    data = {
        "envs": {
            "env": {
                "variants": {
                    name: {
                        "n_runs": runs,
                        "final_success": {"iqm": {"point": p, "low": lo, "high": hi}},
                        "auc": {"iqm": {"point": p / 2, "low": lo / 2, "high": hi / 2}},
                    }
                    for name, (lo, p, hi, runs) in variants.items()
                }
            }
        }
    }
    path.write_text(json.dumps(data))
    return path


OUTCOME = {
    "good": (0.85, 0.9, 0.95, 10),
    "ok": (0.4, 0.5, 0.6, 10),
    "bad": (0.0, 0.02, 0.05, 10),
    "close_to_ok": (0.45, 0.55, 0.65, 10),  # overlaps "ok": not a decisive pair with it
}
REWARDS = [
    # npg predicts; "epic" (a ↓ metric) predicts too once negated; voc is backwards.
    {"name": "good", "npg10_success": 0.95, "epic": 0.0, "voc": 0.1, "threshold": 3.0, "rank": 1},
    {"name": "ok", "npg10_success": 0.5, "epic": 0.3, "voc": 0.5, "threshold": 1.0, "rank": 3},
    {
        "name": "close_to_ok",
        "npg10_success": 0.4,
        "epic": 0.35,
        "voc": 0.6,
        "threshold": 2.0,
        "rank": 2,
    },
    {"name": "bad", "npg10_success": 0.0, "epic": 0.7, "voc": 1.0, "threshold": 0.0, "rank": 4},
    {"name": "not trained", "npg10_success": 1.0, "epic": 0.0, "voc": 1.0},
]


def test_metrics_are_scored_on_decisive_pairs_and_orientation(tmp_path: Path) -> None:
    outcomes = load_outcomes([_compare(tmp_path / "a.json", OUTCOME)], "env")
    result = predictive_validity(REWARDS, outcomes)
    m = result["metrics"]
    assert [v["name"] for v in result["variants"]] == list(OUTCOME)  # untrained left out
    # 6 pairs, of which good/ok/close_to_ok/bad differ decisively except ok-close_to_ok.
    assert m["npg10_success"]["pairs"] == 5 and m["npg10_success"]["pairs_correct"] == 5
    assert m["epic"]["pairs_correct"] == 5  # lower is better: negated before comparing
    assert m["voc"]["pairs_correct"] == 0 and m["voc"]["spearman_final_success"] == pytest.approx(
        -0.8
    )
    assert "threshold" not in m  # no direction: not a predictor
    assert m["rank"]["pairs_correct"] == 5  # the verdict's rank: lower is better
    assert set(list(m)[:3]) == {"npg10_success", "epic", "rank"}
    assert m["npg10_success"]["spearman_auc"] == pytest.approx(0.8)


def test_the_verdict_classes_are_judged_on_pairs_across_classes(tmp_path: Path) -> None:
    outcomes = load_outcomes([_compare(tmp_path / "a.json", OUTCOME)], "env")
    verdict = {"good": "good", "ok": "unclear", "close_to_ok": "avoid", "bad": "avoid"}
    rows = [{**r, "verdict": verdict.get(r["name"], "good")} for r in REWARDS]
    v = predictive_validity(rows, outcomes)["verdicts"]
    # Across classes: good-ok, good-close, good-bad, ok-bad are decisive (ok-close is not).
    assert (v["pairs"], v["pairs_correct"]) == (4, 4)
    assert v["classes"]["avoid"] == ["bad", "close_to_ok"] or v["classes"]["avoid"] == [
        "close_to_ok",
        "bad",
    ]
    assert predictive_validity(REWARDS, outcomes)["verdicts"] is None  # no verdicts given


def test_rounding_noise_does_not_order_variants(tmp_path: Path) -> None:
    outcomes = load_outcomes([_compare(tmp_path / "a.json", OUTCOME)], "env")
    # good and bad differ only by rounding noise: a tie at the report's precision (1/2).
    rows = [
        {"name": "good", "npg10_success": 1.0},
        {"name": "ok", "npg10_success": 0.5},
        {"name": "close_to_ok", "npg10_success": 0.4},
        {"name": "bad", "npg10_success": 1.0 - 4e-15},
    ]
    m = predictive_validity(rows, outcomes)["metrics"]["npg10_success"]
    assert m["pairs_correct"] == 0.5 + 2  # good-bad tie; good-ok, good-close right; rest wrong


def test_the_summary_with_more_runs_wins_and_too_few_variants_fail(tmp_path: Path) -> None:
    a = _compare(tmp_path / "a.json", {"good": (0.0, 0.1, 0.2, 3), "bad": (0, 0, 0, 20)})
    b = _compare(tmp_path / "b.json", {"good": (0.8, 0.9, 1.0, 20)})
    outcomes = load_outcomes([a, b], "env")
    assert outcomes["good"]["n_runs"] == 20 and outcomes["good"]["source"] == str(b)
    with pytest.raises(ValueError, match="named as the compare variants"):
        predictive_validity(REWARDS, outcomes)
    with pytest.raises(ValueError, match="not a compare summary"):
        load_outcomes([a], "other-env")


def test_command_writes_the_report(tmp_path: Path) -> None:
    compare = _compare(tmp_path / "c.json", OUTCOME)
    ev = tmp_path / "eval.json"
    ev.write_text(json.dumps({"env_id": "env", "rewards": REWARDS}))
    assert main(["--eval", str(ev), "--compare", str(compare), "--out", str(tmp_path / "o")]) == 0
    report = (tmp_path / "o" / "report.md").read_text()
    assert "5 of 5" in report and "0 of 5" in report
    line = next(x for x in report.splitlines() if x.startswith("- all of them:"))
    assert "NPG-10 succ. ↑ (5/5)" in line and "EPIC ↓ (5/5)" in line
    assert "VOC ↑ (0/5)" in next(x for x in report.splitlines() if "chance orders half" in x)
    assert (tmp_path / "o" / "validity.png").stat().st_size > 1000
