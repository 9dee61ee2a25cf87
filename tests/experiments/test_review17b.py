"""Second review of issue 17's review fixes (313e44b): defects found by probing the change.

Each test was written failing (marked ``xfail(strict=True)``) and its mark removed with the fix.
None starts Ray: the Ray ones hand ``_init_ray`` a stand-in for the ``ray`` module that does
what Ray 2.60's ``ray.init`` does with the address it is given (measured by hand: it retries
an address where no GCS answers for minutes), or drive the CLI in a subprocess where Ray
fails before it starts anything.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from rewardlab.experiments.comparison_spec import load_spec
from rewardlab.experiments.ray_backend import _background_output_to, _init_ray
from rewardlab.experiments.runner import (
    DONE_MARKER,
    _pending,
    plan_runs,
)

ROOT = Path(__file__).resolve().parents[2]
SPEC: dict[str, Any] = {
    "name": "review",
    "envs": [{"id": "rewardlab/GridEmpty-v0", "kwargs": {"size": 5}}],
    "algo": "ppo",
    "hyperparams": {"n_envs": 1, "n_steps": 32, "batch_size": 32, "n_epochs": 1},
    "budget": 64,
    "seeds": [0],
    "eval": {"freq": 64, "episodes": 2},
    "variants": {"sparse": "sparse"},
    "report": {"reps": 50},
}
PROGRAM = (
    "def compute_reward(agent_pos, goal_pos):\n"
    "    return -np.abs(goal_pos - agent_pos).sum(axis=-1).astype(np.float64), {}\n"
)


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), 1.0):
            return True
    except OSError:
        return False


class _LikeRay:
    """A stand-in for ``ray`` whose ``init`` resolves its address as Ray 2.60's does
    (``RAY_ADDRESS`` replaces None and ``auto``; ``local`` starts Ray here; ``ray://``
    without a port is the client port 10001) and, where nothing accepts a connection at
    the result, records that Ray would have retried it for minutes (``hung``) instead of
    sleeping."""

    def __init__(self, canonical: Any = None) -> None:
        self.started_here = 0
        self.hung: list[str] = []
        self._canonical = canonical

    def init(self, address: str | None = None, num_cpus: int | None = None, **_: Any) -> None:
        env = os.environ.get("RAY_ADDRESS")
        if env and address in (None, "auto"):
            address = env
        if address in (None, "local"):
            self.started_here += 1
            return
        assert address is not None
        if num_cpus is not None:  # Ray's own check
            raise ValueError(
                "When connecting to an existing cluster, num_cpus and num_gpus must not be "
                "provided."
            )
        target = address.removeprefix("ray://")
        if self._canonical is not None and not address.startswith("ray://"):
            target = self._canonical(target)
        host, _, port = target.rpartition(":")
        if not host:
            host, port = target, "10001"
        try:
            reachable = _accepts(host.strip("[]"), int(port))
        except (ValueError, OverflowError):
            reachable = False
        if not reachable:
            self.hung.append(address)
            raise ConnectionError("Failed to get cluster ID from GCS server")


@pytest.fixture
def _no_ray_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("_no_ray_env")
def test_address_local_starts_ray_here_even_where_ray_address_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{_dead_port()}")
    ray = _LikeRay()
    _init_ray(ray, "local", 1)
    assert ray.started_here == 1


@pytest.mark.usefixtures("_no_ray_env")
def test_address_auto_with_an_unreachable_ray_address_fails_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = _dead_port()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    ray = _LikeRay()
    with pytest.raises(ValueError):
        _init_ray(ray, "auto", 1)
    assert ray.hung == []


@pytest.mark.usefixtures("_no_ray_env")
def test_an_address_with_a_garbage_port_fails_at_once() -> None:
    ray = _LikeRay()
    with pytest.raises(ValueError, match="127.0.0.1:-1"):
        _init_ray(ray, "127.0.0.1:-1", 1)
    assert ray.hung == []


@pytest.mark.usefixtures("_no_ray_env")
def test_a_ray_client_address_without_a_port_is_checked_like_one_with_it() -> None:
    if _accepts("127.0.0.1", 10001):
        pytest.skip("something listens on the Ray client port here")
    ray = _LikeRay()
    with pytest.raises(ValueError, match="ray://127.0.0.1"):
        _init_ray(ray, "ray://127.0.0.1", 1)
    assert ray.hung == []


@pytest.mark.usefixtures("_no_ray_env")
def test_a_loopback_address_is_checked_where_ray_will_connect() -> None:
    services = pytest.importorskip("ray._private.services")
    canonical = services.canonicalize_bootstrap_address
    with socket.socket() as server:  # an ssh -L tunnel: listens on loopback only
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        if canonical(address).startswith("127."):
            pytest.skip("Ray keeps loopback addresses on this machine")
        ray = _LikeRay(canonical)
        with pytest.raises(ValueError):
            _init_ray(ray, address, 1)
    assert ray.hung == []


def test_an_address_without_a_port_says_what_to_give(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({**SPEC, "backend": "ray"}))
    empty = tmp_path / "no-ray-here"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_TMPDIR=str(empty), PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "rewardlab.cli", "compare", "spec.yaml", "--out", "out"]
        + ["--address", "localhost"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Ray cluster" in result.stderr and "6379" in result.stderr, result.stderr


def test_the_wrapped_stdout_keeps_the_streams_encoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Terminal:
        encoding, errors = "utf-8", "strict"

        def write(self, text: str) -> int:
            return len(text)

        def flush(self) -> None:
            pass

    monkeypatch.setattr(sys, "stdout", Terminal())
    with _background_output_to(tmp_path / "ray.log"):
        assert (sys.stdout.encoding, sys.stdout.errors) == ("utf-8", "strict")


def test_overlapping_comparisons_in_two_threads_give_stdout_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Stream:
        def __init__(self) -> None:
            self.text: list[str] = []

        def write(self, text: str) -> int:
            self.text.append(text)
            return len(text)

        def flush(self) -> None:
            pass

    shown = Stream()
    monkeypatch.setattr(sys, "stdout", shown)
    monkeypatch.setattr(sys, "stderr", shown)
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def a() -> None:
        with _background_output_to(tmp_path / "a.log"):
            a_in.set()
            b_in.wait(10)
        a_out.set()

    def b() -> None:
        a_in.wait(10)
        with _background_output_to(tmp_path / "b.log"):
            b_in.set()
            a_out.wait(10)

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = shown, shown  # so that pytest's own output is not lost
    print("after both", file=stdout)
    assert stdout is shown and stderr is shown
    assert "after both\n" in "".join(shown.text)


def _old_program_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """A finished run as rewardlab before pinning recorded it (the program's relative path,
    no source or sha256, read from the working directory), planned from a spec naming the
    same file."""
    variants = {"prog": {"model": {"kind": "program", "path": "prog.py"}}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({**SPEC, "variants": variants}))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prog.py").write_text(PROGRAM)
    jobs = plan_runs(load_spec("spec.yaml"), tmp_path / "out")
    for job in jobs:
        old = copy.deepcopy(job.config)
        old["reward"]["model"] = {"kind": "program", "path": "prog.py"}
        job.run_dir.mkdir(parents=True)
        marker = {"config": old, "finished_at": "2026-01-01T00:00:00+0000"}
        (job.run_dir / DONE_MARKER).write_text(json.dumps(marker))
        past = time.mktime((2026, 1, 1, 0, 0, 0, 0, 0, 0))
        os.utime(job.run_dir / DONE_MARKER, (past, past))
    return jobs


def test_an_old_record_with_a_pathological_reward_string_is_refused_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = _old_program_run(tmp_path, monkeypatch)
    for job in jobs:
        marker = json.loads((job.run_dir / DONE_MARKER).read_text())
        marker["config"]["reward"] = "[" * 5000
        (job.run_dir / DONE_MARKER).write_text(json.dumps(marker))
    with pytest.raises(ValueError, match="ran with a different config"):
        _pending(jobs, False, lambda _line: None)
    assert all((job.run_dir / DONE_MARKER).is_file() for job in jobs)
