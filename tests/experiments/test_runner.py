"""Comparisons end to end through the CLI: report, resume, interrupted runs, Ray, bad specs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from rewardlab.cli import main
from rewardlab.experiments.comparison_spec import load_spec
from rewardlab.experiments.runner import DONE_MARKER
from rewardlab.wrappers.timing import RewardBudget

TINY: dict[str, Any] = {
    "name": "tiny",
    "envs": [{"id": "rewardlab/GridEmpty-v0", "kwargs": {"size": 5}}],
    "algo": "ppo",
    "hyperparams": {"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 1},
    "budget": 256,
    "seeds": 2,
    "eval": {"freq": 128, "episodes": 3},
    "variants": {"sparse": "sparse", "pbrs": "pbrs"},
    "workers": 2,
    "report": {"reps": 100},
}


def _write(tmp_path: Path, spec: dict[str, Any]) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _markers(out: Path) -> dict[str, float]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob(DONE_MARKER)}


def _layout(out: Path) -> set[str]:
    """Every file under runs/, event-file names (host and time dependent) reduced."""
    names = set()
    for p in (out / "runs").rglob("*"):
        if p.is_file():
            rel = str(p.relative_to(out))
            names.add(rel.split("events.out")[0] + "events" if "events.out" in rel else rel)
    return names


def test_compare_writes_report_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec, out = _write(tmp_path, TINY), tmp_path / "out"
    assert main(["compare", str(spec), "--out", str(out)]) == 0
    markers = _markers(out)
    assert len(markers) == 4
    report = (out / "report.md").read_text()
    for section in ("Final success IQM", "Decisions", "Probability of improvement", ".png"):
        assert section in report
    env = json.loads((out / "summary.json").read_text())["envs"]["rewardlab/GridEmpty-v0"]
    assert set(env["reward_hacking"]) == {"pbrs", "sparse"}
    # 256 steps of 2 sub-envs leave quarters without finished episodes: said as such.
    for check in env["reward_hacking"].values():
        assert check["status"] != "unavailable" or "training_episodes.json" not in check["reason"]
    assert "### Reward hacking check" in report
    assert "(rewardlab_GridEmpty-v0_proxy_vs_success.png)" in report
    assert (out / "rewardlab_GridEmpty-v0_proxy_vs_success.png").is_file()
    printed = capsys.readouterr().out
    assert "4 to run" in printed
    # Long runs show k/N done, running and queued, and an ETA.
    assert "[1/4 done, 1 running, 2 queued, ETA " in printed
    assert "[4/4 done, 0 running, 0 queued] finished " in printed

    # Same command again: nothing is retrained. Runs trained before the training episodes
    # were recorded (here: their files removed) leave the check unavailable, saying so.
    for episodes in (out / "runs").glob("*/sparse/*/training_episodes.json"):
        episodes.unlink()
    assert main(["compare", str(spec), "--out", str(out)]) == 0
    assert "0 to run" in capsys.readouterr().out
    assert _markers(out) == markers
    assert "- sparse: unavailable: 2 of 2 runs" in (out / "report.md").read_text()

    # A run killed mid-way (folder without marker, half-written files) is redone, alone.
    killed = out / "runs" / "rewardlab__GridEmpty-v0" / "pbrs" / "seed_1"
    (killed / DONE_MARKER).unlink()
    (killed / "eval.csv").write_text("step,success_rate\n0,")
    assert main(["compare", str(spec), "--out", str(out)]) == 0
    assert "1 to run" in capsys.readouterr().out
    after = _markers(out)
    redone = str((killed / DONE_MARKER).relative_to(out))
    assert after[redone] != markers.get(redone)
    assert {k: v for k, v in after.items() if k != redone} == {
        k: v for k, v in markers.items() if k != redone
    }
    assert (killed / "eval.csv").read_text().count("\n") == 4  # header + evals at 0, 128, 256

    # A finished run whose config the spec no longer matches is never silently replaced,
    # and a failed attempt touches nothing (not even the spec copy).
    spec_copy = (out / "spec.yaml").read_text()
    (killed / DONE_MARKER).unlink()  # an interrupted run too: it must survive the failure
    changed = _write(tmp_path, {**TINY, "budget": 384})
    assert main(["compare", str(changed), "--out", str(out)]) == 2
    assert "different config" in capsys.readouterr().err
    assert (out / "spec.yaml").read_text() == spec_copy
    assert (killed / "eval.csv").exists()


def test_ray_backend_gives_the_same_layout(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    spec = {**TINY, "seeds": [0], "variants": {"pbrs": "pbrs"}}
    local, ray_out = tmp_path / "local", tmp_path / "ray"
    path = _write(tmp_path, spec)
    assert main(["compare", str(path), "--out", str(local), "--workers", "1"]) == 0
    assert main(["compare", str(path), "--out", str(ray_out), "--backend", "ray"]) == 0
    assert _layout(local) == _layout(ray_out)
    assert (ray_out / "report.md").is_file()
    run = Path("runs/rewardlab__GridEmpty-v0/pbrs/seed_0/eval.csv")
    # Same seeds, same single-threaded training: the same evaluations on both backends.
    assert (local / run).read_text() == (ray_out / run).read_text()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"envs": ["rewardlab/GridEmptyy-v0"]}, r"envs\[0\].*unknown env id.*GridEmpty-v0"),
        ({"variants": {"a": "pbrss"}}, r"variants.*unknown reward 'pbrss'.*\['pbrs'"),
        ({"seeds": None}, r"spec\.seeds"),
        ({"budget": -5}, r"spec\.budget: Input should be greater than 0"),
        ({"backend": "slurm"}, r"spec\.backend: Input should be 'local' or 'ray'"),
        (
            {"envs": ["rewardlab/GridEmpty-v0", {"id": "rewardlab/GridEmpty-v0"}]},
            r"spec\.envs: .*GridEmpty-v0 is listed 2 times",
        ),
        ({"variants": {"a": {"shaping": "progres"}}}, r"variants\.a.*shaping"),
        ({"hyperparams": {"n_step": 8}}, r"unknown PPO hyperparameter 'n_step'.*n_steps"),
        ({"evaluation": {"freq": 3}}, r"spec\.evaluation: Extra inputs are not permitted"),
        ({"algo": "sac", "hyperparams": {}}, r"SAC does not support .*Discrete actions.*'ppo'"),
        ({"variants": {"a": "{shaping: progress, shaping_gamma: 0.99}"}}, "equals the agent's"),
        ({"seeds": [0, -1]}, r"spec\.seeds: seeds must be non-negative ints"),
        ({"name": "../x"}, r"spec\.name"),
        (
            {"report": {"normalize": {"sparse": "sparse", "human": "dense"}}},
            r"report\.normalize\.human: 'dense' is not a variant",
        ),
    ],
)
def test_bad_specs_fail_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture, change: dict[str, Any], match: str
) -> None:
    spec = {**TINY, **change}
    if change.get("seeds", 0) is None:
        del spec["seeds"]
    out = tmp_path / "out"
    assert main(["compare", str(_write(tmp_path, spec)), "--out", str(out)]) == 2
    import re

    assert re.search(match, capsys.readouterr().err, re.S)
    assert not out.exists()


def test_a_spec_sets_the_reward_budget_of_every_run() -> None:
    spec = load_spec({**TINY, "reward_budget": {"on_exceed": "warn", "multiple": 4}})
    budgets = {config.reward_budget for config in spec.run_configs().values()}
    assert budgets == {RewardBudget(on_exceed="warn", multiple=4)}
    # At its default it stays out of the runs' configs: runs finished before it existed match.
    dumped = [c.model_dump() for c in load_spec(TINY).run_configs().values()]
    assert dumped and all("reward_budget" not in d for d in dumped)
    with pytest.raises(ValueError, match="on_exceed"):
        load_spec({**TINY, "reward_budget": {"on_exceed": "ignore"}})


def test_shipped_specs_validate() -> None:
    root = Path(__file__).resolve().parents[2] / "experiments"
    specs = sorted(root.glob("*.yaml"))
    assert len(specs) >= 3
    for path in specs:
        spec = load_spec(path)
        assert (root / f"{path.stem}.md").is_file(), f"{path.name} has no README"
        assert spec.budget > 0


def _finished_job(tmp_path: Path, marker_text: str) -> Any:
    from rewardlab.experiments.runner import RunJob

    run_dir = tmp_path / "runs" / "env" / "sparse" / "seed_0"
    run_dir.mkdir(parents=True)
    (run_dir / "eval.csv").write_text("step,success_rate\n")
    (run_dir / DONE_MARKER).write_text(marker_text)
    config = {"env": "rewardlab/GridEmpty-v0", "steps": 384, "reward": {"shaping": "progress"}}
    return RunJob("rewardlab/GridEmpty-v0", "sparse", 0, run_dir, config)


def test_a_changed_spec_names_the_fields_that_changed(tmp_path: Path) -> None:
    from rewardlab.experiments.runner import _pending

    old = {"env": "rewardlab/GridEmpty-v0", "steps": 256, "reward": {"shaping": None}}
    job = _finished_job(tmp_path, json.dumps({"config": old}))
    with pytest.raises(ValueError, match="different config") as err:
        _pending([job], overwrite=False, log=lambda _msg: None)
    assert 'reward.shaping: null -> "progress"; steps: 256 -> 384' in str(err.value)
    assert (job.run_dir / "eval.csv").exists()  # nothing touched
    assert _pending([job], overwrite=True, log=lambda _msg: None) == [job]
    assert not job.run_dir.exists()


def test_a_run_recorded_before_an_option_existed_is_not_retrained(tmp_path: Path) -> None:
    from rewardlab.agents.train import TrainConfig
    from rewardlab.experiments.runner import RunJob, _pending

    reward = {"model": {"kind": "learned", "path": "r.pt"}}
    config = TrainConfig.model_validate(
        {"env": "rewardlab/GridEmpty-v0", "steps": 384, "reward": reward}
    ).model_dump(mode="json")
    old = json.loads(json.dumps(config))
    del old["reward"]["model"]["scale"], old["reward"]["model"]["shift"]  # added since
    job = _finished_job(tmp_path, json.dumps({"config": old}))
    job = RunJob(job.env, job.variant, job.seed, job.run_dir, config)
    assert _pending([job], overwrite=False, log=lambda _msg: None) == []
    # A real change is still one: the old default is not the new value.
    config["reward"]["model"]["scale"] = 0.5
    with pytest.raises(ValueError, match=r"reward.model.scale: 1.0 -> 0.5"):
        _pending([job], overwrite=False, log=lambda _msg: None)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"steps": 1}', "\udcff"])
def test_a_damaged_marker_is_named_and_only_overwrite_retrains(tmp_path: Path, text: str) -> None:
    from rewardlab.experiments.runner import _pending

    job = _finished_job(tmp_path, "")
    (job.run_dir / DONE_MARKER).write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(ValueError, match=f"{DONE_MARKER} is damaged .*delete it to retrain"):
        _pending([job], overwrite=False, log=lambda _msg: None)
    assert (job.run_dir / "eval.csv").exists()
    assert _pending([job], overwrite=True, log=lambda _msg: None) == [job]
    assert not job.run_dir.exists()


def test_missing_clip_weights_fail_the_spec_check_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # Found before any run trains (not after the other variants' runs), exit 2, one line.
    missing = tmp_path / "missing" / "open_clip_pytorch_model.bin"
    clip = {"model": {"kind": "clip", "model": "ViT-B-32", "pretrained": str(missing)}}
    spec = {**TINY, "variants": {"sparse": "sparse", "clip": clip}}
    out = tmp_path / "out"
    assert main(["compare", str(_write(tmp_path, spec)), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "variants.clip" in err and "does not exist" in err and str(missing) in err
    assert "Traceback" not in err
    assert not out.exists()
    assert main(["train", "--env", "rewardlab/GridEmpty-v0", "--reward", json.dumps(clip),
                 "--steps", "64", "--out", str(tmp_path / "run")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("error:") and "does not exist" in err and "Traceback" not in err
    assert err.count("\n") == 1 and "list_pretrained_tags_by_model('ViT-B-32')" in err
    assert "create_model" not in err  # no download hint for a file path
    assert not (tmp_path / "run").exists()


def test_progress_counts_runs_and_estimates_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    from rewardlab import progress as module

    clock = iter([0.0, 30.0, 60.0, 7200.0, 7300.0])
    monkeypatch.setattr(module.time, "perf_counter", lambda: next(clock))
    progress = module.Progress(4)
    assert progress.tick() == "[1/4, ETA 2 min]"  # 30 s a run, 3 left: 90 s
    assert progress.tick() == "[2/4, ETA 60 s]"
    assert progress.tick() == "[3/4, ETA 40 min]"
    assert progress.tick() == "[4/4]"
