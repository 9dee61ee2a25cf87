"""The Ray backend of :func:`~rewardlab.experiments.runner.run_comparison`: runs as Ray
tasks on this machine or a cluster, scheduled as on the local pool
(:func:`~rewardlab.experiments.runner._schedule`).

Before any run is submitted, :func:`check_cluster` checks what a cluster must have (a node
with the resources a run asks for, the output folder visible from every node, the pinned
files and the driver's package versions on every node); a cluster address is checked before
Ray is asked to connect (Ray retries an address where nothing listens for minutes). What Ray
prints from its own threads on the driver goes to ``OUT/ray.log``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import secrets
import shutil
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rewardlab.experiments.files import atomic_write
from rewardlab.experiments.runner import (
    ERRORS_FILE,
    RunFailed,
    RunJob,
    _first_line,
    _schedule,
    clean_message,
    execute_run,
)
from rewardlab.provenance import file_sha256, package_versions

__all__ = ["RAY_LOG", "check_cluster", "probe_node", "run_ray"]


class _RayCluster:
    """Runs as Ray tasks, one CPU (and ``gpus_per_run`` GPUs) each; Ray retries a task whose
    worker or node died."""

    def __init__(self, ray: Any, gpus_per_run: float) -> None:
        self._ray = ray
        # Without num_gpus Ray hides every GPU from the task (CUDA_VISIBLE_DEVICES="").
        self._remote = ray.remote(num_cpus=1, num_gpus=gpus_per_run)(execute_run)

    def submit(self, job: RunJob) -> Any:
        return self._remote.remote(job.config, str(job.run_dir.absolute()))

    def wait(self, handles: list[Any]) -> list[Any]:
        return list(self._ray.wait(handles, num_returns=1)[0])

    def result(self, handle: Any, job: RunJob) -> dict[str, Any]:
        from ray.exceptions import RayError, RayTaskError

        try:
            return self._ray.get(handle)
        except RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, Exception) else None
            if cause is None:
                raise RunFailed(_first_line(exc)) from exc
            raise cause from exc  # as a local run raises it; the remote traceback chained
        except RayError as exc:  # the task's worker or node died (after Ray's retries)
            raise RunFailed(_first_line(exc)) from exc

    def cancel(self, handles: list[Any]) -> None:
        for handle in handles:
            with contextlib.suppress(Exception):  # one that finished meanwhile
                self._ray.cancel(handle, force=True)
        # Return once they are stopped: a cancelled task's result is its cancellation.
        with contextlib.suppress(Exception):
            self._ray.wait(handles, num_returns=len(handles), timeout=30)


def run_ray(
    jobs: list[RunJob],
    address: str | None,
    workers: int,
    gpus_per_run: float,
    log: Callable[[str], None],
    out: Path,
) -> None:
    try:
        import ray
    except ImportError:
        raise ImportError(
            "backend: ray needs Ray: pip install 'rewardlab[ray]' (or use backend: local)"
        ) from None
    started = not ray.is_initialized()
    with _background_output_to(out / RAY_LOG):
        if started:
            _init_ray(ray, address, workers)
        try:
            check_cluster(ray, jobs, out, gpus_per_run, log)
            _schedule(jobs, workers, _RayCluster(ray, gpus_per_run), log, out / ERRORS_FILE)
        finally:
            if started:
                ray.shutdown()


RAY_LOG = "ray.log"
"""Where a comparison keeps what Ray prints on the driver (its worker and node reports)."""


def _init_ray(ray: Any, address: str | None, workers: int) -> None:
    """Start Ray here (``workers`` CPUs) or connect to the cluster at ``address``, quietly:
    Ray's own log lines stay in its session logs.

    As in Ray, ``RAY_ADDRESS`` (set in a Ray job) stands for no address and for ``auto``;
    ``local`` and, without ``RAY_ADDRESS``, no address start Ray here (not on a cluster that
    ``ray start`` runs on this machine: that is ``auto``).

    Raises:
        ValueError: One line, where the address is malformed or the cluster cannot be
            reached (an address where nothing accepts a connection fails within
            :data:`CONNECT_TIMEOUT_S`, where Ray would retry it for minutes).
    """
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address in (None, "auto") and os.environ.get("RAY_ADDRESS"):
        address = os.environ["RAY_ADDRESS"]
    if address in (None, "local"):
        ray.init(address="local", num_cpus=workers, include_dashboard=False, **quiet)
        return
    assert address is not None
    fix = (
        "check the address and `ray status` on the head; a head with token authentication "
        "needs its token here (RAY_AUTH_TOKEN, or the same ~/.ray/auth_token)"
    )
    problem = _address_problem(address)
    if problem:
        raise ValueError(f"cannot connect to the Ray cluster at {address}: {problem}")
    try:
        with _token_auth():
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ValueError(
            f"cannot connect to the Ray cluster at {address} ({_first_line(exc)}); {fix}"
        ) from None


CONNECT_TIMEOUT_S = 5.0
"""How long a cluster address may take to accept a connection before the run fails."""

RAY_CLIENT_PORT = 10001
"""The port of a ``ray://HOST`` address that names none (Ray's)."""

RAY_LOCALHOSTS = ("localhost", "127.0.0.1", "::1")
"""The hosts Ray takes for this machine, connecting to its node IP instead (Ray 2.60's
``resolve_ip_for_localhost``; other 127.x addresses it connects to as they are)."""


_ADDRESS_FORMS = (
    "a Ray address is HOST:PORT (the head's port, 6379 unless `ray start --port` said "
    "otherwise), ray://HOST:10001 or auto"
)


def _address_problem(address: str) -> str:
    """What is wrong with a Ray cluster address, or "": malformed, or nothing accepts a
    connection where Ray will connect (this node's IP for a loopback host, as Ray does).
    ``auto`` is not checked (Ray looks the cluster up itself)."""
    if address == "auto":
        return ""
    if address.startswith(("http://", "https://")):
        return (
            "an http:// address is the dashboard's, for `ray job submit`; give the head's "
            f"address instead: {_ADDRESS_FORMS}"
        )
    client = address.startswith("ray://")
    target = address.removeprefix("ray://")
    host, colon, port = target.rpartition(":")
    if not colon:
        host, port = target, str(RAY_CLIENT_PORT) if client else ""
    host = host.strip("[]")
    if not host or not port:
        return _ADDRESS_FORMS
    if not port.isdigit() or not 0 < int(port) < 65536:
        return f"{port!r} is not a port; {_ADDRESS_FORMS}"
    where = f"{host}:{port}"
    if not client and host in RAY_LOCALHOSTS:
        from ray.util import get_node_ip_address

        host = get_node_ip_address()
        where = f"{host}:{port} (this machine's address, where Ray connects for {where})"
    try:
        with socket.create_connection((host, int(port)), CONNECT_TIMEOUT_S):
            return ""
    except OSError as exc:
        return (
            f"nothing accepts connections at {where}: {exc.strerror or exc}; check the "
            "address, and that the head runs (`ray status` there)"
        )


@contextlib.contextmanager
def _token_auth() -> Iterator[None]:
    """Token authentication turned on while connecting, where a token exists.

    A head started where a token exists (~/.ray/auth_token, which the first local
    ray.init() writes) requires it, and a driver connecting by address does not turn it on
    by itself; token mode also reaches a cluster without it. The setting is put back after,
    so that a Ray started later by this process does not require a token.
    """
    token = os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
    if "RAY_AUTH_MODE" in os.environ or not (
        token or (Path.home() / ".ray" / "auth_token").is_file()
    ):
        yield
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    try:
        yield
    finally:
        os.environ.pop("RAY_AUTH_MODE", None)


class _Diversion:
    """While comparisons run on Ray in this process, ``sys.stdout`` and ``sys.stderr`` pass
    what their threads write and append what other threads write (Ray's reports of dead
    workers and nodes, with its state dumps) to the ``ray.log`` of the comparison entered
    last, without terminal codes. Comparisons may overlap in several threads; the streams
    are put back when the last one leaves (unless something replaced them meanwhile)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside: list[tuple[int, Path]] = []  # (thread, ray.log) of each comparison
        self._saved: tuple[Any, Any] = (None, None)
        self._streams: tuple[Any, Any] = (None, None)

    @contextlib.contextmanager
    def to(self, path: Path) -> Iterator[None]:
        entry = (threading.get_ident(), path)
        with self._lock:
            if not self._inside:
                self._saved = (sys.stdout, sys.stderr)
                self._streams = (_Diverted(sys.stdout, self), _Diverted(sys.stderr, self))
                sys.stdout, sys.stderr = self._streams
            self._inside.append(entry)
        try:
            yield
        finally:
            with self._lock:
                self._inside.remove(entry)
                if not self._inside:
                    if sys.stdout is self._streams[0]:
                        sys.stdout = self._saved[0]
                    if sys.stderr is self._streams[1]:
                        sys.stderr = self._saved[1]

    def elsewhere(self) -> Path | None:
        """Where the calling thread's writes go instead of the stream (None: the stream)."""
        inside = list(self._inside)
        thread = threading.get_ident()
        if not inside or any(owner == thread for owner, _ in inside):
            return None
        return inside[-1][1]


class _Diverted(io.TextIOBase):
    """``stream`` as :class:`_Diversion` routes it. Ray's colorama may keep it as its stdout
    past the comparison and ask it ``isatty()`` at exit, after the caller closed ``stream``:
    that answers False rather than raising."""

    def __init__(self, stream: Any, diversion: _Diversion) -> None:
        self._stream, self._diversion = stream, diversion

    def write(self, text: str) -> int:
        path = self._diversion.elsewhere()
        if path is None:
            self._stream.write(text)  # a user's stream may return None
            return len(text)
        with contextlib.suppress(OSError), path.open("a") as file:
            file.write(clean_message(text))
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(ValueError, AttributeError):  # closed, or no flush
            self._stream.flush()

    def isatty(self) -> bool:
        try:
            return bool(self._stream.isatty())
        except (ValueError, AttributeError):  # closed, or a stream without isatty
            return False

    @property
    def encoding(self) -> Any:  # type: ignore[override]
        return getattr(self._stream, "encoding", None)

    @property
    def errors(self) -> Any:  # type: ignore[override]
        return getattr(self._stream, "errors", None)


_DIVERSION = _Diversion()


def _background_output_to(path: Path) -> contextlib.AbstractContextManager[None]:
    """Send what threads other than this one print, while inside, to the file ``path``."""
    return _DIVERSION.to(path)


PROBE_TIMEOUT_S = 120.0
"""How long :func:`check_cluster` waits for every node's answer."""


def check_cluster(
    ray: Any, jobs: list[RunJob], out: Path, gpus_per_run: float, log: Callable[[str], None]
) -> None:
    """Check a Ray cluster can run ``jobs`` before any is submitted: some node has the CPU and
    GPUs a run asks for; and on every node, a check task writes a file in ``out`` that the
    driver must then see (the output folder is shared), finds each checkpoint the runs load
    with the SHA-256 the driver recorded, and has the driver's versions of the packages that
    decide what a run computes (:data:`~rewardlab.provenance.KEY_PACKAGES`).

    Raises:
        ValueError: One line: the first problem, and what to do.
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    where = {n["NodeID"]: str(n.get("NodeManagerAddress") or n["NodeID"][:12]) for n in nodes}
    cpus = [float(n.get("Resources", {}).get("CPU", 0)) for n in nodes]
    gpus = [float(n.get("Resources", {}).get("GPU", 0)) for n in nodes]
    if not any(c >= 1 and g >= gpus_per_run for c, g in zip(cpus, gpus, strict=True)):
        have = "; ".join(f"{c:g} CPU, {g:g} GPU" for c, g in zip(cpus, gpus, strict=True))
        need = "1 CPU" + (f" and {gpus_per_run:g} GPU" if gpus_per_run else "")
        raise ValueError(
            f"a run needs {need} on one node, and no node of the Ray cluster has that (its "
            f"nodes: {have or 'none'}): "
            + ("set gpus_per_run: 0, or add a node with GPUs" if gpus_per_run else "add a node")
        )
    log(f"Ray cluster: {len(nodes)} node(s), {sum(cpus):g} CPUs, {sum(gpus):g} GPUs")
    files = sorted(_pinned_files([job.config for job in jobs]))
    folder = out.absolute() / f".probe-{secrets.token_hex(6)}"
    folder.mkdir(parents=True)
    try:
        probe = ray.remote(num_cpus=0, max_retries=0)(probe_node)
        refs = {
            probe.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)
            ).remote(str(folder), node_id, files): node_id
            for node_id in where
        }
        ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=PROBE_TIMEOUT_S)
        for ref in late:
            ray.cancel(ref, force=True)
        if late:
            raise ValueError(
                f"node {where[refs[late[0]]]} of the Ray cluster did not run a check task "
                f"within {PROBE_TIMEOUT_S:.0f} s (see `ray status`); nothing was submitted"
            )
        mine = package_versions()
        for ref in ready:
            node_id = refs[ref]
            try:
                report = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 (rewardlab missing there, or anything)
                raise ValueError(
                    f"the check task failed on node {where[node_id]} ({_first_line(exc)}); "
                    "install the driver's rewardlab there"
                ) from None
            problem = _probe_problem(report, (folder / node_id).is_file(), out, mine)
            if problem:
                raise ValueError(f"node {where[node_id]} of the Ray cluster: {problem}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def probe_node(folder: str, node_id: str, files: list[tuple[str, str, str]]) -> dict[str, Any]:
    """The check task of :func:`check_cluster`: write ``folder/<node_id>``, check ``files``
    (``(path, sha256, what)``), and report this node's package versions and any problem."""
    from rewardlab.reward_spec import check_digest

    report: dict[str, Any] = {"versions": package_versions(), "write_error": None}
    try:
        atomic_write(Path(folder) / node_id, node_id)
    except OSError as exc:
        report["write_error"] = f"{type(exc).__name__}: {exc.strerror or exc}"
    report["file_errors"] = []
    for path, sha256, what in files:
        try:
            check_digest(path, sha256, what)
        except ValueError as exc:
            report["file_errors"].append(str(exc))
    return report


def _probe_problem(report: dict[str, Any], seen: bool, out: Path, mine: dict[str, str]) -> str:
    """The first problem a node's check task found ('' for none)."""
    if not seen:
        detail = report["write_error"] or "it wrote a file there that the driver does not see"
        return (
            f"the output folder {out} is not shared with this node ({detail}); put it on a "
            "filesystem every node mounts at the same path, e.g. NFS"
        )
    if report["file_errors"]:
        return str(report["file_errors"][0])
    theirs = report["versions"]
    differ = [
        f"{name} {theirs.get(name, 'missing')} there, {mine[name]} here"
        for name in mine
        if theirs.get(name) != mine[name]
    ]
    if differ:
        return (
            f"its packages differ from the driver's ({'; '.join(differ)}); install the same "
            "versions on every node"
        )
    return ""


def _pinned_files(configs: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """``(path, sha256, what)`` of every checkpoint file the run configs load, and of every
    task module they import from a ``.py`` file (a worker imports it from its own disk)."""
    found: set[tuple[str, str, str]] = set()
    modules = {m for config in configs for m in config.get("task_modules", ())}
    for module in sorted(m for m in modules if m.endswith(".py")):
        found.add((module, file_sha256(module), "task module"))

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("kind") == "learned" and value.get("sha256"):
                found.add((value["path"], value["sha256"], "reward-net checkpoint"))
            if value.get("kind") == "clip" and value.get("pretrained_sha256"):
                what = f"CLIP checkpoint file for {value.get('model')!r}"
                found.add((value["pretrained"], value["pretrained_sha256"], what))
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for config in configs:
        walk(config)
    return found
