"""Comparisons on a real multi-node Ray cluster (``ray start --head`` and a joined node, each
with its own temp dir and working directory), driven as a user drives them: ``rewardlab
compare --address`` in a subprocess, from a working directory of its own."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rewardlab.experiments.runner import DONE_MARKER, ERRORS_FILE
from tests.experiments.ray_cluster import RayCluster, ray_cluster

ROOT = Path(__file__).resolve().parents[2]
STALL = str(Path(__file__).with_name("stall_task.py"))
STALL_ID = "rewardlab_tests/StallWalk-v0"
PROGRAM = """def compute_reward(agent_pos, goal_pos):
    distance = np.abs(goal_pos - agent_pos).sum(axis=-1).astype(np.float64)
    return {scale} * distance, {{}}
"""
SPEC: dict[str, Any] = {
    "name": "cluster",
    "envs": [{"id": "rewardlab/GridEmpty-v0", "kwargs": {"size": 5}}],
    "algo": "ppo",
    "hyperparams": {"n_envs": 1, "n_steps": 32, "batch_size": 32, "n_epochs": 1},
    "budget": 64,
    "seeds": [0, 1],
    "eval": {"freq": 64, "episodes": 2},
    "variants": {"program": {"model": {"kind": "program", "path": "reward.py"}}},
    "backend": "ray",
    "workers": 2,
    "report": {"reps": 50},
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    with ray_cluster(tmp_path_factory.mktemp("cluster"), nodes=2, cpus_per_node=1) as running:
        yield running


def _compare(
    cluster: RayCluster, cwd: Path, spec: Path, out: Path, *args: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "rewardlab.cli", "compare", str(spec), "--out", str(out),
         "--address", cluster.address, *args],
        cwd=cwd,
        env=cluster.driver_env({**_base_env(), "PYTHONPATH": str(ROOT)}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )  # fmt: skip


def _base_env() -> dict[str, str]:
    import os

    return dict(os.environ)


def _write_spec(folder: Path, spec: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    return folder / "spec.yaml"


def test_a_relative_program_is_the_spec_folders_on_every_node_and_workers_caps_the_runs(
    cluster: RayCluster, tmp_path: Path
) -> None:
    # Each node's working directory holds a different reward.py: a worker reading the path
    # itself would train on it.
    for node_dir in cluster.node_dirs:
        (node_dir / "reward.py").write_text(PROGRAM.format(scale=7.0))
    spec = _write_spec(tmp_path / "spec", SPEC)
    (spec.parent / "reward.py").write_text(PROGRAM.format(scale=-0.1))
    out = tmp_path / "out"
    result = _compare(cluster, tmp_path / "elsewhere", spec, out, "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout + result.stderr
    assert "Ray cluster: 2 node(s), 2 CPUs, 0 GPUs" in result.stdout
    assert "[1/2 done, 1 running, 0 queued, ETA" not in result.stdout  # --workers 1: 0 running
    assert "[1/2 done, 0 running, 1 queued, ETA" in result.stdout
    spans = []
    for seed in (0, 1):
        run = out / "runs" / "rewardlab__GridEmpty-v0" / "program" / f"seed_{seed}"
        model = json.loads((run / "config.json").read_text())["reward"]["model"]
        assert model["source"] == PROGRAM.format(scale=-0.1)
        assert model["path"] == str(spec.parent / "reward.py")
        spans.append(json.loads((run / DONE_MARKER).read_text())["span"])
    (a0, a1), (b0, b1) = sorted(spans)
    assert a1 <= b0, spans  # one run at a time


def test_a_gpu_request_no_node_can_meet_fails_before_any_run(
    cluster: RayCluster, tmp_path: Path
) -> None:
    spec = _write_spec(tmp_path, {**SPEC, "variants": {"env": "env"}, "gpus_per_run": 1})
    out = tmp_path / "out"
    start = time.monotonic()
    result = _compare(cluster, tmp_path, spec, out, timeout=120)
    assert result.returncode == 2, result.stderr
    assert time.monotonic() - start < 90  # not Ray's wait forever
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "1 CPU and 1 GPU on one node" in result.stderr and "gpus_per_run: 0" in result.stderr
    assert not (out / "runs").exists()


def test_from_the_python_api_a_failing_run_stops_the_others_on_the_cluster(
    cluster: RayCluster, tmp_path: Path
) -> None:
    # Ray started by the caller, as in a notebook: seed 1 fails on its 20th env step, seed 0
    # would train for minutes (4000 steps at 50 ms), seed 2 waits for a free worker.
    stall = {"id": STALL_ID, "kwargs": {"delay_s": 0.05, "fail_seed": 1}}
    spec = {**SPEC, "envs": [stall], "variants": {"env": "env"}, "seeds": [0, 1, 2]}
    spec |= {"budget": 4000, "task_modules": [STALL]}
    out = tmp_path / "out"
    script = textwrap.dedent(
        f"""
        import logging, sys, time
        import ray
        from rewardlab.experiments.comparison_spec import load_spec
        from rewardlab.experiments.runner import RunFailed, run_comparison
        ray.init(log_to_driver=False, logging_level=logging.ERROR)
        spec = load_spec({str(_write_spec(tmp_path, spec))!r})
        start = time.monotonic()
        try:
            run_comparison(spec, {str(out)!r}, log=lambda m: None)
        except RunFailed as exc:
            print("failed", round(time.monotonic() - start), exc)
        print("ray still initialized:", ray.is_initialized())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=cluster.driver_env({**_base_env(), "PYTHONPATH": str(ROOT)}),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "failed" in result.stdout and "seed=1 failed: RuntimeError" in result.stdout
    took = int(result.stdout.split("failed ")[1].split()[0])
    assert took < 120, result.stdout
    assert "ray still initialized: True" in result.stdout  # the caller's Ray is left to it
    runs = out / "runs" / STALL_ID.replace("/", "__") / "env"
    assert not (runs / "seed_0" / DONE_MARKER).exists()
    assert not (runs / "seed_2").exists()
    assert "fails on purpose" in (out / ERRORS_FILE).read_text()
    # Nothing of the comparison is left running on the cluster.
    deadline = time.monotonic() + 30
    while any("execute_run" in name for name in cluster.processes().values()):
        assert time.monotonic() < deadline, cluster.processes()
        time.sleep(0.5)


def test_an_output_folder_a_node_does_not_share_fails_before_any_run(tmp_path: Path) -> None:
    out = tmp_path / "results" / "out"
    (tmp_path / "c").mkdir()
    with ray_cluster(tmp_path / "c", nodes=2, private_folder=tmp_path / "results") as private:
        spec = _write_spec(tmp_path / "spec", {**SPEC, "variants": {"env": "env"}})
        result = _compare(private, tmp_path, spec, out, timeout=180)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"the output folder {out} is not shared with this node" in result.stderr
    assert not (out / "runs").exists()
    assert not list(out.glob(".probe-*"))  # the check cleans up after itself


def _start_compare(
    cluster: RayCluster, tmp_path: Path, spec: dict[str, Any], out: Path
) -> subprocess.Popen[str]:
    # In a session of its own, so that the test can signal its whole process group, as a
    # terminal's Ctrl-C does.
    return subprocess.Popen(
        [sys.executable, "-m", "rewardlab.cli", "compare", str(_write_spec(tmp_path, spec)),
         "--out", str(out), "--address", cluster.address],
        cwd=tmp_path,
        env=cluster.driver_env({**_base_env(), "PYTHONPATH": str(ROOT)}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip


def _wait_for(condition: Any, proc: subprocess.Popen[str], limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_ctrl_c_stops_a_comparison_on_the_cluster_and_keeps_finished_runs(
    cluster: RayCluster, tmp_path: Path
) -> None:
    import os
    import signal

    stall = {"id": STALL_ID, "kwargs": {"delay_s": 0.05, "slow_seed": 1}}
    spec = {**SPEC, "envs": [stall], "variants": {"env": "env"}, "budget": 4000}
    spec["task_modules"] = [STALL]
    out = tmp_path / "out"
    runs = out / "runs" / STALL_ID.replace("/", "__") / "env"
    proc = _start_compare(cluster, tmp_path, spec, out)
    try:
        _wait_for(lambda: (runs / "seed_0" / DONE_MARKER).exists(), proc)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "stopped by Ctrl-C" in stderr
    assert json.loads((runs / "seed_0" / DONE_MARKER).read_text())["final"]
    assert not (runs / "seed_1" / DONE_MARKER).exists()
    deadline = time.monotonic() + 30
    while any("execute_run" in name for name in cluster.processes().values()):
        assert time.monotonic() < deadline, cluster.processes()
        time.sleep(0.5)


def test_a_killed_worker_is_retried_and_rays_report_goes_to_a_file(
    cluster: RayCluster, tmp_path: Path
) -> None:
    import os
    import signal

    # One run of about 10 s; its worker is killed once it has started.
    stall = {"id": STALL_ID, "kwargs": {"delay_s": 0.02}}
    spec = {**SPEC, "envs": [stall], "variants": {"env": "env"}, "seeds": [0], "budget": 400}
    spec["task_modules"] = [STALL]
    out = tmp_path / "out"
    proc = _start_compare(cluster, tmp_path, spec, out)
    try:
        run = out / "runs" / STALL_ID.replace("/", "__") / "env" / "seed_0"

        def workers() -> list[int]:
            return [p for p, name in cluster.processes().items() if "execute_run" in name]

        _wait_for(lambda: (run / "config.json").exists() and workers(), proc)
        for pid in workers():
            os.kill(pid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr
    assert (run / DONE_MARKER).exists()
    printed = stdout + stderr
    assert "\x1b[" not in printed and "raylet" not in printed.lower(), printed
    assert "worker" in (out / "ray.log").read_text().lower()


def test_a_node_check_reports_missing_checkpoints_and_other_versions(tmp_path: Path) -> None:
    # The check task's own logic, on this machine (the cluster tests run it on real nodes).
    from rewardlab.experiments.ray_backend import _probe_problem, probe_node
    from rewardlab.provenance import file_sha256, package_versions

    checkpoint = tmp_path / "checkpoint.pt"
    checkpoint.write_bytes(b"weights")
    files = [(str(checkpoint), file_sha256(checkpoint), "reward-net checkpoint")]
    folder = tmp_path / "probe"
    folder.mkdir()
    mine = package_versions()
    report = probe_node(str(folder), "node-a", files)
    assert (folder / "node-a").read_text() == "node-a" and report["file_errors"] == []
    assert _probe_problem(report, True, tmp_path, mine) == ""
    other = {**report, "versions": {**mine, "rewardlab": "0.0.1"}}
    assert "rewardlab 0.0.1 there" in _probe_problem(other, True, tmp_path, mine)
    checkpoint.write_bytes(b"other weights")
    report = probe_node(str(folder), "node-b", files)
    assert "not the file the run was planned with" in _probe_problem(report, True, tmp_path, mine)
    report = probe_node(str(tmp_path / "missing"), "node-c", [])
    problem = _probe_problem(report, False, tmp_path, mine)
    assert "is not shared with this node (FileNotFoundError" in problem
