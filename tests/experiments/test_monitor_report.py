"""The reward hacking check and its figures in compare's report, on synthetic runs built to
break the rule: a flat proxy, a proxy rising with success, seeds that disagree, runs without
a monitor file, an env without success."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from rewardlab.experiments.report import RunResult, TrainingMonitor, summarize, write_report
from rewardlab.experiments.runner import DONE_MARKER, RunJob, load_results

ENV = "rewardlab/GridKeyDoor-v0"
BUDGET, W = 40_000, 10
EVAL_STEPS = np.arange(0, BUDGET + 1, 10_000)


def _monitor(
    proxy: tuple[float, float],
    success: tuple[float, float] | None = (0.0, 0.0),
    std: float = 1.0,
    n: int = 40,
) -> TrainingMonitor:
    """Ten windows; proxy mean and success ramp linearly between the given ends."""
    ends = np.linspace(BUDGET / W, BUDGET, W)
    rate = np.full(W, np.nan) if success is None else np.linspace(*success, W)
    return TrainingMonitor(
        starts=ends - BUDGET / W,
        ends=ends,
        proxy_mean=np.linspace(*proxy, W),
        proxy_std=np.full(W, std),
        proxy_n=np.full(W, n),
        success=rate,
        success_n=np.zeros(W) if success is None else np.full(W, n),
        components={"term/shaping": np.linspace(0.0, proxy[1] - proxy[0], W)},
    )


def _run(
    variant: str,
    seed: int,
    monitor: TrainingMonitor | None,
    final: float = 0.0,
    components: dict[str, np.ndarray] | None = None,
) -> RunResult:
    success = np.linspace(0.0, final, EVAL_STEPS.size)
    return RunResult(ENV, variant, seed, EVAL_STEPS, success, success, monitor, components)


def _check(runs: list[RunResult]) -> dict[str, object]:
    summary = summarize(runs, budget=BUDGET, threshold=0.5, reps=20)
    checks: dict[str, dict[str, object]] = summary["envs"][ENV]["reward_hacking"]
    assert len(checks) == 1
    return next(iter(checks.values()))


HACKED = [_run("hack", s, _monitor((1.0, 10.0 + s))) for s in range(3)]


def test_proxy_rising_while_success_stays_flat_is_flagged() -> None:
    check = _check(HACKED)
    assert check["status"] == "flagged"
    # The quarters are windows 0-1 and 8-9 of 10 (midpoints before 1/4, after 3/4).
    rises = [np.linspace(1.0, 10.0 + s, W)[8:].mean() - np.linspace(1.0, 10.0 + s, W)[:2].mean()
             for s in range(3)]  # fmt: skip
    assert check["proxy_change"]["per_run"] == pytest.approx(rises)
    assert check["proxy_change"]["mean"] == pytest.approx(np.mean(rises))
    assert check["proxy_change"]["sd"] == pytest.approx(np.std(rises, ddof=1))
    assert check["success_change"]["mean"] == 0.0 and check["final_success"] == 0.0
    # One run alone can be flagged too: no spread across seeds to compare with.
    assert _check(HACKED[:1])["status"] == "flagged"


@pytest.mark.parametrize(
    ("runs", "reason"),
    [
        # Flat proxy (noise only): no rise.
        ([_run("flat", s, _monitor((5.0, 5.0))) for s in range(3)], "did not clearly rise"),
        # A rise smaller than its noise within the run.
        ([_run("noisy", s, _monitor((5.0, 5.3), std=10.0)) for s in range(3)], "did not clear"),
        # Proxy and success rise together: learning, not hacking.
        (
            [_run("learn", s, _monitor((1.0, 10.0), (0.0, 0.8)), final=0.1) for s in range(3)],
            "training success rose",
        ),
        # Two seeds rise, one falls: the seeds disagree.
        (
            [_run("mixed", s, _monitor((1.0, 10.0))) for s in range(2)]
            + [_run("mixed", 2, _monitor((10.0, 1.0)))],
            "did not clearly rise",
        ),
        # All rise, but one by far more than the others: the rise is not consistent.
        (
            [_run("wild", s, _monitor((1.0, 1.5), std=0.1)) for s in range(2)]
            + [_run("wild", 2, _monitor((1.0, 100.0)))],
            "disagree",
        ),
        # Success flat in training but the evaluations end high.
        ([_run("eval", s, _monitor((1.0, 10.0)), final=0.9) for s in range(3)], "not low"),
    ],
)
def test_the_rule_does_not_flag(runs: list[RunResult], reason: str) -> None:
    check = _check(runs)
    assert check["status"] == "not flagged"
    assert reason in str(check["reason"])


def test_the_check_is_unavailable_without_what_it_needs() -> None:
    old = _check([*HACKED[:2], _run("hack", 2, None)])
    assert old["status"] == "unavailable" and "training_episodes.json" in str(old["reason"])
    assert "proxy_change" not in old
    no_success = _check([_run("cartpole", s, _monitor((1.0, 10.0), None)) for s in range(3)])
    assert no_success["status"] == "unavailable" and "is_success" in str(no_success["reason"])
    empty = _monitor((1.0, 10.0), n=0)
    short = _check([_run("short", 0, empty)])
    assert short["status"] == "unavailable" and "no finished training episode" in str(
        short["reason"]
    )


def test_report_with_and_without_monitor_files(tmp_path: Path) -> None:
    parts = {"reward": np.linspace(0, 1, W), "distance": np.linspace(1, 0, W)}
    runs = [
        *HACKED,
        *(_run("old", s, None, final=0.5) for s in range(3)),
        *(_run("parts", s, _monitor((2.0, 2.0)), components=parts) for s in range(3)),
    ]
    report = write_report(runs, tmp_path, title="Monitor", budget=BUDGET, threshold=0.5, reps=20)
    text = report.read_text()
    assert (
        "### Reward hacking check" in text
        and "flagged for reward hacking when all of these hold" in text
    )
    assert "- hack: **flagged**" in text
    assert "- old: unavailable: 3 of 3 runs" in text
    assert "- parts: not flagged" in text
    slug = "rewardlab_GridKeyDoor-v0"
    for name in ("proxy_vs_success", "reward_components"):
        assert (tmp_path / f"{slug}_{name}.png").read_bytes().startswith(b"\x89PNG")
        assert f"({slug}_{name}.png)" in text
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["reward_hacking_rule"]["z"] == 3.0
    flags = {v: c["status"] for v, c in summary["envs"][ENV]["reward_hacking"].items()}
    assert flags == {"hack": "flagged", "old": "unavailable", "parts": "not flagged"}

    # Runs from before the monitor: the report still works, without its figures.
    only_old = tmp_path / "old"
    write_report(runs[3:6], only_old, title="Old", budget=BUDGET, threshold=0.5, reps=20)
    assert "- old: unavailable" in (only_old / "report.md").read_text()
    assert not list(only_old.glob("*proxy_vs_success.png"))
    assert not list(only_old.glob("*reward_components.png"))


def test_bad_monitor_data_is_refused() -> None:
    with pytest.raises(ValueError, match="one length"):
        TrainingMonitor(
            np.zeros(2), np.ones(3), np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3),
            np.zeros(3), {},
        )  # fmt: skip
    with pytest.raises(ValueError, match="not a training episode summary"):
        TrainingMonitor.from_summary({"windows": [{"start": 0}]})
    with pytest.raises(TypeError, match="monitor must be a TrainingMonitor"):
        _run("x", 0, {"windows": []})  # type: ignore[arg-type]


def _finished_run(run_dir: Path) -> RunJob:
    run_dir.mkdir(parents=True)
    with (run_dir / "eval.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "success_rate", "mean_return", "mean_length", "episodes"])
        writer.writerows([[0, 0.0, 0.0, 10, 2], [100, 0.5, 0.5, 8, 2]])
    (run_dir / DONE_MARKER).write_text("{}")
    return RunJob(ENV, "v", 0, run_dir, {})


def test_load_results_reads_the_monitor_files_when_there(tmp_path: Path) -> None:
    job = _finished_run(tmp_path / "old")
    (old,) = load_results([job])
    assert old.monitor is None and old.components is None
    episodes = {
        "windows": [
            {
                "start": 0,
                "end": 100,
                "proxy_return": {"mean": 2.5, "std": 0.5, "n": 4},
                "success": {"rate": None, "n": 0},
                "components": {"x": {"mean": None, "std": None, "n": 0, "nonfinite": 4}},
            }
        ]
    }
    (job.run_dir / "training_episodes.json").write_text(json.dumps(episodes))
    (job.run_dir / "reward_components.json").write_text(
        json.dumps({"reward": {"values": [0.5, None]}})
    )
    (new,) = load_results([job])
    assert new.monitor is not None and new.monitor.proxy_mean.tolist() == [2.5]
    assert np.isnan(new.monitor.success[0]) and np.isnan(new.monitor.components["x"][0])
    assert new.components is not None
    assert new.components["reward"][0] == 0.5 and np.isnan(new.components["reward"][1])
    (job.run_dir / "training_episodes.json").write_text('{"windows": [')
    with pytest.raises(ValueError, match=r"training_episodes.json is damaged .*delete it"):
        load_results([job])


def test_success_creeping_up_while_the_proxy_soars_is_still_flagged() -> None:
    # Raw progress on key-door: proxy 70 -> 118, training success 0.08 -> 0.13, final 0.11.
    runs = [_run("progress", s, _monitor((70.0, 118.0 + s), (0.08, 0.13)), 0.11) for s in range(5)]
    assert _check(runs)["status"] == "flagged"
    # A real rise in success (more than 0.1) is learning, not hacking.
    runs = [_run("learns", s, _monitor((70.0, 118.0 + s), (0.0, 0.15)), 0.15) for s in range(5)]
    assert _check(runs)["status"] == "not flagged"


def _with_failed(monitor: TrainingMonitor, failed: tuple[float, float]) -> TrainingMonitor:
    """``monitor`` with the failed episodes' proxy ramping between the given ends."""
    return dataclasses.replace(
        monitor,
        failed_mean=np.linspace(*failed, W),
        failed_std=np.full(W, 1.0),
        failed_n=np.full(W, 30.0),
    )


def test_a_success_like_proxy_is_not_hacking_however_slowly_it_learns() -> None:
    # The sparse task reward as the proxy: its return is success, so it rises (here 0.01 ->
    # 0.09 with training success) while the failed episodes' proxy stays at 0.
    runs = [
        _run("sparse", s, _with_failed(_monitor((0.01, 0.09), (0.01, 0.09), std=0.05, n=400),
                                       (0.0, 0.0)), 0.12)
        for s in range(5)
    ]  # fmt: skip
    check = _check(runs)
    assert check["status"] == "not flagged" and check["episodes"] == "failed"
    assert "of the failed episodes did not clearly rise" in check["reason"]


def test_a_proxy_rising_in_failed_episodes_is_flagged() -> None:
    runs = [
        _run("progress", s, _with_failed(_monitor((70.0, 118.0 + s), (0.08, 0.13)),
                                         (60.0, 110.0 + s)), 0.11)
        for s in range(5)
    ]  # fmt: skip
    check = _check(runs)
    assert check["status"] == "flagged" and "of the failed episodes rose" in check["reason"]
    # Old files (no failed episodes recorded) fall back to all episodes, and say so.
    old = [_run("progress", s, _monitor((70.0, 118.0 + s), (0.08, 0.13)), 0.11) for s in range(5)]
    check = _check(old)
    assert check["episodes"] == "all" and "all episodes" in check["reason"]
