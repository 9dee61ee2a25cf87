"""Comparisons stop cleanly: the first failing run stops the others, Ctrl-C stops the
comparison, and what a run reads travels with it (a program's source, each file's SHA-256),
resolved on the driver against the spec's folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from rewardlab.cli import main
from rewardlab.experiments.runner import DONE_MARKER, ERRORS_FILE

ROOT = Path(__file__).resolve().parents[2]
STALL = str(Path(__file__).with_name("stall_task.py"))
STALL_ID = "rewardlab_tests/StallWalk-v0"
HYPER = {"n_envs": 1, "n_steps": 32, "batch_size": 32, "n_epochs": 1}
PROGRAM = """def compute_reward(agent_pos, goal_pos):
    distance = np.abs(goal_pos - agent_pos).sum(axis=-1).astype(np.float64)
    return {scale} * distance, {{}}
"""


def _spec(envs: list[dict[str, Any]], **over: Any) -> dict[str, Any]:
    return {
        "name": "stop",
        "envs": envs,
        "algo": "ppo",
        "hyperparams": HYPER,
        "budget": 64,
        "seeds": [0],
        "eval": {"freq": 64, "episodes": 2},
        "variants": {"env": "env"},
        "workers": 2,
        "report": {"reps": 50},
        "task_modules": [STALL],
        **over,
    }


def _write(folder: Path, spec: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_the_first_failing_run_stops_the_running_and_the_queued_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # Seed 1 fails on its 20th env step; seed 0 would train for minutes; seed 2 waits.
    stall = {"id": STALL_ID, "kwargs": {"delay_s": 0.05, "fail_seed": 1}}
    spec = _write(tmp_path, _spec([stall], seeds=[0, 1, 2], budget=4000))
    out = tmp_path / "out"
    start = time.monotonic()
    assert main(["compare", str(spec), "--out", str(out)]) == 1
    took = time.monotonic() - start
    err = capsys.readouterr().err
    runs = out / "runs" / STALL_ID.replace("/", "__") / "env"
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "run rewardlab_tests/StallWalk-v0 env seed=1 failed: RuntimeError: the stall walk" in err
    assert str(out / ERRORS_FILE) in err
    traceback = (out / ERRORS_FILE).read_text()
    assert "Traceback" in traceback and "fails on purpose" in traceback and "seed=1" in traceback
    assert not (runs / "seed_0" / DONE_MARKER).exists()  # stopped, not trained to the end
    assert not (runs / "seed_2").exists()  # never started
    assert took < 60, took  # 4000 steps at 50 ms would take 200 s
    # Resume: the stopped run is redone, the failing one fails again.
    assert main(["compare", str(spec), "--out", str(out)]) == 1
    assert "redoing interrupted run" in capsys.readouterr().out


def _children_with(token: str) -> list[int]:
    """Processes whose environment holds ``token`` (this test's subprocess and its kids)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if token.encode() in (proc / "environ").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def test_ctrl_c_stops_the_comparison_keeps_finished_runs_and_leaves_no_process(
    tmp_path: Path,
) -> None:
    # Seed 0 trains in seconds, seed 1 would take minutes.
    stall = {"id": STALL_ID, "kwargs": {"delay_s": 0.05, "slow_seed": 1}}
    spec = _write(tmp_path, _spec([stall], seeds=[0, 1], budget=4000))
    out = tmp_path / "out"
    token = f"REWARDLAB_TEST_{uuid.uuid4().hex}"
    env = {**os.environ, token: "1", "PYTHONPATH": str(ROOT)}
    # A terminal's Ctrl-C signals the whole foreground process group: so does this test.
    proc = subprocess.Popen(
        [sys.executable, "-m", "rewardlab.cli", "compare", str(spec), "--out", str(out)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        done = out / "runs" / STALL_ID.replace("/", "__") / "env" / "seed_0"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if any(done.parent.glob("seed_0/" + DONE_MARKER)):
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert "stopped by Ctrl-C; finished runs are kept in" in stderr
    assert "stopping the 1 runs in flight" in stdout
    marker = json.loads((done / DONE_MARKER).read_text())  # the finished run is intact
    assert marker["final"]["success_rate"] >= 0
    time.sleep(1.0)
    assert _children_with(token) == []  # every worker and sub-env process is gone


def test_a_relative_program_path_is_the_spec_folders_and_its_source_travels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    spec_dir, elsewhere = tmp_path / "spec", tmp_path / "elsewhere"
    spec_dir.mkdir()
    elsewhere.mkdir()
    (spec_dir / "reward.py").write_text(PROGRAM.format(scale=-0.1))
    (elsewhere / "reward.py").write_text(PROGRAM.format(scale=5.0))  # not the one
    variants = {"program": {"model": {"kind": "program", "path": "reward.py"}}}
    grid = {"id": "rewardlab/GridEmpty-v0", "kwargs": {"size": 5}}
    spec = _write(spec_dir, _spec([grid], variants=variants, task_modules=[]))
    monkeypatch.chdir(elsewhere)
    out = tmp_path / "out"
    assert main(["compare", str(spec), "--out", str(out)]) == 0
    run = out / "runs" / "rewardlab__GridEmpty-v0" / "program" / "seed_0"
    model = json.loads((run / "config.json").read_text())["reward"]["model"]
    assert model["path"] == str(spec_dir / "reward.py")
    assert model["source"] == PROGRAM.format(scale=-0.1)
    import hashlib

    assert model["sha256"] == hashlib.sha256(model["source"].encode()).hexdigest()
    assert json.loads((run / DONE_MARKER).read_text())["config"]["reward"]["model"] == model
    capsys.readouterr()

    # The same program read from another folder is the same run; a changed one is not.
    moved = tmp_path / "moved"
    spec_dir.rename(moved)
    assert main(["compare", str(moved / "spec.yaml"), "--out", str(out)]) == 0
    assert "1 already done, 0 to run" in capsys.readouterr().out
    (moved / "reward.py").write_text(PROGRAM.format(scale=-0.2))
    assert main(["compare", str(moved / "spec.yaml"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "ran with a different config" in err and "sha256" in err and "--overwrite" in err


def test_a_missing_program_or_checkpoint_fails_the_spec_check_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    grid = {"id": "rewardlab/GridEmpty-v0", "kwargs": {"size": 5}}
    for model, what in (
        ({"kind": "program", "path": "nowhere.py"}, "cannot read the reward program"),
        ({"kind": "learned", "path": "nowhere.pt"}, "reward-net checkpoint"),
    ):
        variants = {"v": {"shaping": model}}
        spec = _write(tmp_path / model["kind"], _spec([grid], variants=variants, task_modules=[]))
        out = tmp_path / "out"
        assert main(["compare", str(spec), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "variants.v.reward.shaping" in err and what in err, err
        assert str(tmp_path / model["kind"] / model["path"]) in err  # the spec folder's
        assert not out.exists()


def test_a_pinned_program_whose_source_was_edited_is_refused() -> None:
    from pydantic import ValidationError

    from rewardlab.reward_spec import ProgramModelSpec

    pinned = ProgramModelSpec(kind="program", source="x").pinned(lambda: "")
    assert pinned.sha256 is not None and pinned.pinned(lambda: "") is pinned
    with pytest.raises(ValidationError, match="does not match its sha256"):
        ProgramModelSpec.model_validate({**pinned.model_dump(), "source": "y"})
    with pytest.raises(ValidationError, match="exactly one of path and source"):
        ProgramModelSpec.model_validate({"kind": "program", "path": "a.py", "source": "x"})


def test_a_checkpoint_changed_after_planning_is_refused_where_it_is_loaded(tmp_path: Path) -> None:
    from rewardlab.provenance import file_sha256
    from rewardlab.reward_spec import check_digest

    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"planned")
    recorded = file_sha256(path)
    check_digest(str(path), recorded, "reward-net checkpoint")
    path.write_bytes(b"another file")
    with pytest.raises(ValueError, match="not the file the run was planned with"):
        check_digest(str(path), recorded, "reward-net checkpoint")
    path.unlink()
    with pytest.raises(ValueError, match="does not exist.*on node"):
        check_digest(str(path), recorded, "reward-net checkpoint")
