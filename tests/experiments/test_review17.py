"""Reviews of issue 17 (Ray comparisons): defects found by probing the change, one test each.

Each test was written failing (marked ``xfail(strict=True)``) and its mark removed with the fix.
None starts Ray in the pytest worker: the Ray ones drive the CLI in a subprocess, or hand the
runner a stand-in for the ``ray`` module.
"""

from __future__ import annotations

import copy
import io
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
    _identity,
    _pending,
    plan_runs,
)

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = (
    "def compute_reward(agent_pos, goal_pos):\n"
    "    return -np.abs(goal_pos - agent_pos).sum(axis=-1).astype(np.float64), {}\n"
)
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


class _Tee:
    """A stream as users write them to copy output to a log: ``write`` returns None, and it
    has neither ``isatty`` nor ``fileno``."""

    def __init__(self) -> None:
        self.text = io.StringIO()

    def write(self, text: str) -> None:
        self.text.write(text)

    def flush(self) -> None:
        pass


def test_a_ray_comparisons_output_goes_through_a_stream_whose_write_returns_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tee = _Tee()
    monkeypatch.setattr(sys, "stdout", tee)
    with _background_output_to(tmp_path / "ray.log"):
        print("Ray cluster: 1 node(s)")
        assert sys.stdout.isatty() is False  # a caller asking whether to draw a progress bar
    assert tee.text.getvalue() == "Ray cluster: 1 node(s)\n"


def test_a_comparison_run_from_another_thread_still_prints_its_own_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = io.StringIO()
    monkeypatch.setattr(sys, "stdout", shown)

    def comparison() -> None:  # what run_comparison's log=print does inside run_ray
        with _background_output_to(tmp_path / "ray.log"):
            print("[1/2 done, 1 running, 0 queued] finished ...")

    thread = threading.Thread(target=comparison)
    thread.start()
    thread.join()
    assert shown.getvalue() == "[1/2 done, 1 running, 0 queued] finished ...\n"
    assert not (tmp_path / "ray.log").exists()


def _as_recorded_before_pinning(config: dict[str, Any], **model: Any) -> dict[str, Any]:
    """A run config as the version before issue 17 wrote it: no ``sha256``, and the paths as
    the spec gave them (read from the working directory)."""
    old = copy.deepcopy(config)
    old["reward"]["model"].pop("sha256", None)
    old["reward"]["model"].update(model)
    return old


def _finish(jobs: list[Any], configs: list[dict[str, Any]]) -> None:
    for job, config in zip(jobs, configs, strict=True):
        job.run_dir.mkdir(parents=True)
        (job.run_dir / DONE_MARKER).write_text(json.dumps({"config": config}))


def test_runs_recorded_before_pinning_resume_when_their_files_are_the_ones_now_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "spec" / "ckpt").mkdir(parents=True)
    (tmp_path / "spec" / "ckpt" / "checkpoint.pt").write_bytes(b"weights")
    variants = {
        "learned": {"model": {"kind": "learned", "path": "ckpt/checkpoint.pt", "device": "cpu"}},
        "inline": {"model": {"kind": "program", "source": PROGRAM}},
        "reference": {"model": {"kind": "program", "path": "reference"}},
    }
    (tmp_path / "spec" / "spec.yaml").write_text(yaml.safe_dump({**SPEC, "variants": variants}))
    monkeypatch.chdir(tmp_path)  # where the old version ran, reading paths from here
    jobs = plan_runs(load_spec("spec/spec.yaml"), tmp_path / "out")
    old = [
        _as_recorded_before_pinning(job.config, path="spec/ckpt/checkpoint.pt")
        if job.variant == "learned"
        else _as_recorded_before_pinning(job.config, path="reference", source=None)
        if job.variant == "reference"
        else _as_recorded_before_pinning(job.config)  # an inline source: nothing to read
        for job in jobs
    ]
    _finish(jobs, old)
    assert _pending(jobs, False, lambda _line: None) == []


def test_runs_recorded_before_pinning_with_another_file_are_still_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "spec").mkdir()
    (tmp_path / "spec" / "checkpoint.pt").write_bytes(b"weights")
    (tmp_path / "checkpoint.pt").write_bytes(b"other weights")  # what the old run read
    variants = {"learned": {"model": {"kind": "learned", "path": "checkpoint.pt"}}}
    (tmp_path / "spec" / "spec.yaml").write_text(yaml.safe_dump({**SPEC, "variants": variants}))
    monkeypatch.chdir(tmp_path)
    jobs = plan_runs(load_spec("spec/spec.yaml"), tmp_path / "out")
    _finish(jobs, [_as_recorded_before_pinning(job.config, path="checkpoint.pt") for job in jobs])
    with pytest.raises(ValueError, match="ran with a different config"):
        _pending(jobs, False, lambda _line: None)
    assert all((job.run_dir / DONE_MARKER).is_file() for job in jobs)


def test_a_changed_env_keyword_is_a_changed_run_even_beside_a_sha256_key() -> None:
    config = load_spec(SPEC).run_configs()["rewardlab/GridEmpty-v0", "sparse", 0]
    base = config.model_dump(mode="json")
    a = {**base, "env_kwargs": {"size": 5, "layout": {"path": "maps/a.txt", "sha256": "f00d"}}}
    b = {**base, "env_kwargs": {"size": 5, "layout": {"path": "maps/b.txt", "sha256": "f00d"}}}
    assert _identity(a) != _identity(b)


def test_a_mapping_specs_missing_checkpoint_points_at_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    variants = {"learned": {"model": {"kind": "learned", "path": "ckpt/checkpoint.pt"}}}
    with pytest.raises(ValueError, match="does not exist") as caught:
        load_spec({**SPEC, "variants": variants}).run_configs()
    assert "spec file's folder" not in str(caught.value), caught.value
    assert "working directory" in str(caught.value), caught.value


class _SlowRay:
    """A stand-in for ``ray`` whose ``init`` does what Ray 2.60 does at an address where
    nothing answers (20 tries of ~40 s each; still retrying when killed after 590 s),
    shortened."""

    def __init__(self) -> None:
        self.calls = 0

    def init(self, **_kwargs: Any) -> None:
        self.calls += 1
        time.sleep(8.0)
        raise ConnectionError("Failed to get cluster ID from GCS server")


def test_an_address_where_nothing_listens_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    ray = _SlowRay()
    start = time.monotonic()
    with pytest.raises(ValueError, match=f"127.0.0.1:{port}"):
        _init_ray(ray, f"127.0.0.1:{port}", 1)
    assert time.monotonic() - start < 5.0
    assert ray.calls == 0


def _compare_on_ray(
    tmp_path: Path, *args: str, **env_vars: str
) -> subprocess.CompletedProcess[str]:
    """``rewardlab compare`` of a Ray spec in ``tmp_path``, on a machine where no Ray runs
    (``RAY_TMPDIR`` empty: ``auto`` finds no cluster) and no ``RAY_*`` variable but
    ``env_vars`` is set."""
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({**SPEC, "backend": "ray"}))
    empty = tmp_path / "no-ray-here"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_TMPDIR=str(empty), PYTHONPATH=str(ROOT), **env_vars)
    return subprocess.run(
        [sys.executable, "-m", "rewardlab.cli", "compare", "spec.yaml", "--out", "out", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_ray_address_in_the_environment_is_the_cluster_to_use(tmp_path: Path) -> None:
    result = _compare_on_ray(tmp_path, RAY_ADDRESS="auto")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "auto" in result.stderr, result.stderr


_COLORAMA_AT_EXIT = """
import io, sys
from pathlib import Path
from rewardlab.experiments.ray_backend import _background_output_to

shown = io.StringIO()
sys.stdout = shown
with _background_output_to(Path(sys.argv[1])):
    # What the first ray.init() imports: colorama.init() keeps sys.stdout (the wrapper) and
    # asks it isatty() at exit.
    import ray.autoscaler._private.cli_logger  # noqa: F401
sys.stdout = sys.__stdout__
shown.close()  # a notebook's or a test's stream, closed before the interpreter ends
"""


def test_no_traceback_at_exit_after_a_ray_comparison_whose_stream_was_closed(
    tmp_path: Path,
) -> None:
    pytest.importorskip("ray")
    result = subprocess.run(
        [sys.executable, "-c", _COLORAMA_AT_EXIT, str(tmp_path / "ray.log")],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


class _RecordingRay:
    """A stand-in for ``ray`` whose ``init`` records the auth mode it would connect with."""

    def __init__(self) -> None:
        self.modes: list[str | None] = []

    def init(self, **_kwargs: Any) -> None:
        self.modes.append(os.environ.get("RAY_AUTH_MODE"))


def test_token_mode_for_a_connection_is_not_left_for_a_later_local_ray(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CI failed this way: a connection by address left RAY_AUTH_MODE=token in the process,
    # and the next local ray.init() started a head requiring a token its driver did not send.
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("0" * 64)
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    ray = _RecordingRay()
    with socket.socket() as server:  # a head's port: something accepts connections
        server.bind(("0.0.0.0", 0))  # on every address (Ray connects to the node IP)
        server.listen()
        _init_ray(ray, f"127.0.0.1:{server.getsockname()[1]}", 1)
    _init_ray(ray, None, 1)
    assert ray.modes == ["token", None]
    assert "RAY_AUTH_MODE" not in os.environ


# --- second review (313e44b): addresses as Ray reads them, the streams, old records ---


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
    result = _compare_on_ray(tmp_path, "--address", "localhost")
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


@pytest.mark.usefixtures("_no_ray_env")
def test_a_loopback_address_ray_keeps_is_checked_as_it_is() -> None:
    # Ray connects to this machine's node IP only for localhost, 127.0.0.1 and ::1; another
    # 127.x address it connects to as given, so that is where the check must look.
    with socket.socket() as server:
        server.bind(("127.0.0.2", 0))
        server.listen()
        address = f"127.0.0.2:{server.getsockname()[1]}"
        ray = _LikeRay()
        _init_ray(ray, address, 1)
    assert ray.hung == []
