"""A real multi-node Ray cluster on this machine, for tests: ``ray start`` as a user runs it.

``ray_cluster(tmp_path)`` starts a head node (``ray start --head``) and joins more nodes to it
(``ray start --address``), each a separate set of Ray processes with its own temp dir and
working directory, as on separate machines. A driver runs in a subprocess with
``cluster.driver_env()`` (``RAY_ADDRESS`` and the cluster's auth token); Ray is never
started in the pytest worker itself.

Several clusters run side by side (``pytest -n 2``), so nothing here may touch another's
processes: ``ray stop`` stops every Ray on the machine. Each node is started in a session of
its own (``setsid``), and its processes, workers included (they change their process group,
not their session), are found by session id and killed at the end.

``private_folder`` gives the last node its own view of that folder: the node starts inside a
private mount namespace (``unshare``) in which ``private_view`` is bind-mounted over it, so
what its tasks write there lands in ``private_view`` and what the driver writes there is not
visible to them -- an output folder that is not shared with every node.

Facts of Ray 2.60 this relies on (measured on a shared 2-core machine):

- ``ray start`` returns once its raylet is registered with the head: 2.5-3 s per node on an
  idle machine, up to 6 s under load.
- ``--temp-dir`` may differ per node; a node's workers start in the folder its ``ray start``
  ran in (here its temp dir), which is where they resolve relative paths.
- The head turns token authentication on when a token exists (``~/.ray/auth_token``, made by
  the first local ``ray.init()``); a joining node and ``ray.init(address=...)`` with an
  explicit address do not, and fail after 20 s of retries, the ``ray`` CLI at once, unless
  ``RAY_AUTH_MODE=token`` is set. So the cluster runs with ``RAY_AUTH_MODE=token`` and a token
  of its own (``RAY_AUTH_TOKEN``), or with ``RAY_AUTH_MODE=disabled`` (``token=False``), never
  depending on the user's ``~/.ray``.
- Unix socket paths are limited to 107 bytes (``ray start`` fails with a 70-byte temp dir), so
  the temp dirs live in a short folder under the system's temporary folder, not under
  ``tmp_path``. On failure their logs are copied to ``tmp_path / "ray-logs"``.
- Fixed default ports (dashboard 8265, Ray client server 10001, dashboard agent 52365, worker
  ports 10002-19999 shared by every node) would collide between nodes and clusters: each is
  turned off, made free-chosen (0) or picked free.
- SIGTERM leaves the GCS server and the raylets running for over 5 s: they are SIGKILLed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

# Every variable through which Ray picks a cluster or its authentication: a test's driver and
# the nodes get the cluster's own values, never the caller's.
_RAY_ENV = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
_START_TIMEOUT_S = 90.0
_RAY_CLI = "import sys; from ray.scripts.scripts import main; sys.exit(main())"
# Run as ``sh -c SCRIPT sh VIEW FOLDER CMD...`` inside the new mount namespace.
_BIND_AND_EXEC = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
_BIND_AND_CHECK = 'mount --bind "$1" "$2" && test -e "$2/seen"'


@dataclass(frozen=True)
class RayCluster:
    """A running cluster.

    Attributes:
        address: The head's GCS address, ``host:port`` (what ``ray start --address`` and
            ``ray.init(address=...)`` take).
        env: What a driver's environment needs on top of the caller's: ``RAY_ADDRESS``,
            ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN``.
        node_ids: Each node's id (hex, as ``ray.get_runtime_context().get_node_id()`` gives
            it), the head first.
        node_dirs: Each node's temp dir, also the working directory its workers start in.
        private_folder: The folder the last node sees privately, or None.
        private_view: Where the last node's view of ``private_folder`` lives on this machine.
        sessions: The session id of each node's processes, the head first.
    """

    address: str
    env: Mapping[str, str]
    node_ids: tuple[str, ...]
    node_dirs: tuple[Path, ...]
    private_folder: Path | None
    private_view: Path | None
    sessions: tuple[int, ...]

    @property
    def head_node_id(self) -> str:
        return self.node_ids[0]

    @property
    def last_node_id(self) -> str:
        """The node joined last: the one with the private view, where there is one."""
        return self.node_ids[-1]

    def processes(self) -> dict[int, str]:
        """The cluster's live processes, workers included: pid -> command name.

        A worker shows the task it runs (``ray::train_one``), ``ray::IDLE`` between tasks.
        """
        return _sessions(set(self.sessions))

    def driver_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) with this cluster's Ray settings."""
        env = {k: v for k, v in (os.environ if base is None else base).items()}
        for name in _RAY_ENV:
            env.pop(name, None)
        return {**env, **self.env}


def require_ray() -> None:
    """Skip the calling test where Ray or the process information it needs is missing."""
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install rewardlab[ray])")
    if not Path("/proc/self/stat").is_file():
        pytest.skip("a local Ray cluster is found and stopped through /proc: Linux only")


@functools.cache
def _private_mount_prefix() -> tuple[str, ...] | str:
    """The ``unshare`` command that gives a private mount namespace, or why there is none.

    As root a mount namespace suffices; a user without privileges needs a user namespace of
    its own as well (where the kernel allows them).
    """
    if shutil.which("unshare") is None:
        return "util-linux's unshare is not installed"
    candidates: list[tuple[str, ...]] = [
        ("unshare", "--user", "--map-root-user", "--mount", "--propagation", "private")
    ]
    if os.geteuid() == 0:
        candidates.insert(0, ("unshare", "--mount", "--propagation", "private"))
    errors = []
    with tempfile.TemporaryDirectory(prefix="rl-mount-probe-") as probe:
        view, folder = Path(probe, "view"), Path(probe, "folder")
        view.mkdir()
        folder.mkdir()
        (view / "seen").write_text("")
        for prefix in candidates:
            result = subprocess.run(
                [*prefix, "--", "sh", "-c", _BIND_AND_CHECK, "sh", str(view), str(folder)],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            name = " ".join(prefix)
            if result.returncode != 0:
                errors.append(f"{name}: {result.stderr.strip() or result.returncode}")
            elif (folder / "seen").exists():  # the mount reached this namespace
                subprocess.run(["umount", str(folder)], capture_output=True, check=False)
                errors.append(f"{name}: the mount was not private")
            else:
                return prefix
    return "no private mount namespace here (" + "; ".join(errors) + ")"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def _sessions(sids: set[int]) -> dict[int, str]:
    """Live processes (not zombies) in the sessions ``sids``: pid -> program.

    The program is the command line's first word: a worker's is the title Ray gives it.
    """
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            argv0 = Path(entry.path, "cmdline").read_bytes().split(b"\0", 1)[0]
        except OSError:  # it exited while we looked
            continue
        # pid (comm) state ppid pgrp session ...; comm may hold spaces and parentheses.
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, _ppid, _pgrp, session = stat[stat.rindex(")") + 2 :].split()[:4]
        if int(session) in sids and state not in "ZX":
            found[int(entry.name)] = argv0.decode(errors="replace") or comm
    return found


def _kill_sessions(sids: set[int]) -> None:
    """SIGKILL every process in the sessions ``sids`` and wait until they are gone.

    Not SIGTERM first: the GCS server and the raylets outlive it by more than 5 s.
    """
    deadline = time.monotonic() + 10.0
    while left := _sessions(sids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"Ray processes survived SIGKILL for 10 s: {left}")
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _raylet_node_id(sid: int) -> str:
    """The node id of the raylet in session ``sid`` (from its command line)."""
    for pid, program in _sessions({sid}).items():
        if Path(program).name != "raylet":
            continue
        with contextlib.suppress(OSError):
            for arg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
                if arg.startswith(b"--node_id="):
                    return arg.split(b"=", 1)[1].decode()
    raise RuntimeError(f"no raylet with a --node_id in session {sid}")


def _start_node(
    args: list[str], *, node_dir: Path, env: Mapping[str, str], prefix: tuple[str, ...]
) -> int:
    """Run ``PREFIX ray start ARGS`` in a new session in ``node_dir``; return the session id."""
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-c", _RAY_CLI, "start", *args],
        cwd=node_dir,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=_START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill_sessions({proc.pid})
        output, _ = proc.communicate()
        raise RuntimeError(
            f"ray start {' '.join(args)} took over {_START_TIMEOUT_S:.0f} s:\n{output}"
        ) from None
    if proc.returncode != 0:
        _kill_sessions({proc.pid})
        raise RuntimeError(f"ray start {' '.join(args)} exited {proc.returncode}:\n{output}")
    return proc.pid


def _save_logs(node_dirs: list[Path], dest: Path) -> None:
    for i, node_dir in enumerate(node_dirs):
        logs = node_dir / "session_latest" / "logs"
        if logs.is_dir():
            shutil.copytree(logs, dest / f"node{i}", dirs_exist_ok=True, symlinks=True)


@contextlib.contextmanager
def ray_cluster(
    tmp_path: Path,
    *,
    nodes: int = 2,
    cpus_per_node: int = 1,
    private_folder: Path | None = None,
    token: bool = True,
) -> Iterator[RayCluster]:
    """Start a head and ``nodes - 1`` more nodes on this machine; stop exactly them on exit.

    Skips the calling test where Ray is not installed, or ``private_folder`` is given and no
    private mount namespace can be made here.

    Args:
        tmp_path: The test's folder: holds ``private_view`` and, on failure, the nodes' logs.
        nodes: How many nodes, the head included (each a separate raylet).
        cpus_per_node: Each node's ``--num-cpus``; no node has a GPU (``--num-gpus 0``).
        private_folder: An absolute folder (created if missing) that the last node sees
            through a private bind mount of ``tmp_path / "private_view"``.
        token: Whether the cluster requires a token (its own, in ``env``); without one it
            runs with ``RAY_AUTH_MODE=disabled``, whatever the user's ``~/.ray`` holds.
    """
    require_ray()
    if nodes < 1:
        raise ValueError(f"nodes must be at least 1, got {nodes}")
    if cpus_per_node < 0:
        raise ValueError(f"cpus_per_node must be at least 0, got {cpus_per_node}")
    private_view = None
    if private_folder is not None:
        if not private_folder.is_absolute():
            raise ValueError(f"private_folder must be absolute, got {private_folder}")
        if nodes < 2:
            raise ValueError("a private_folder needs nodes >= 2: the head sees the real folder")
        if Path(tempfile.gettempdir()).resolve().is_relative_to(private_folder.resolve()):
            raise ValueError(
                f"private_folder {private_folder} must not hold the temporary folder, where the "
                "nodes keep their sockets"
            )
        unshare = _private_mount_prefix()
        if isinstance(unshare, str):
            pytest.skip(f"cannot give a node a private view of a folder: {unshare}")
        private_folder.mkdir(parents=True, exist_ok=True)
        private_view = tmp_path / "private_view"
        private_view.mkdir()

    auth = (
        {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        if token
        else {"RAY_AUTH_MODE": "disabled"}
    )
    node_env = {k: v for k, v in os.environ.items() if k not in _RAY_ENV}
    node_env.update(auth, RAY_USAGE_STATS_ENABLED="0")
    common = [
        f"--num-cpus={cpus_per_node}",
        "--num-gpus=0",
        "--disable-usage-stats",
        # OS-chosen worker ports: the default range 10002-19999 is the same for every node.
        "--min-worker-port=0",
        "--max-worker-port=0",
        "--log-color=false",
    ]
    root = Path(tempfile.mkdtemp(prefix="rl-ray-"))
    sids: list[int] = []
    node_dirs: list[Path] = []
    node_ids: list[str] = []
    try:
        address = ""
        for i in range(nodes):
            node_dir = root / f"node{i}"
            node_dir.mkdir()
            node_dirs.append(node_dir)
            args = [*common, f"--temp-dir={node_dir}"]
            args.append(f"--dashboard-agent-listen-port={_free_port()}")
            prefix: tuple[str, ...] = ()
            if i == 0:
                args += ["--head", "--port=0", "--include-dashboard=false"]
                args.append(f"--ray-client-server-port={_free_port()}")
            else:
                args.append(f"--address={address}")
            if i == nodes - 1 and private_view is not None:
                prefix = (*unshare, "--", "sh", "-c", _BIND_AND_EXEC, "sh")
                prefix += (str(private_view), str(private_folder))
            sids.append(_start_node(args, node_dir=node_dir, env=node_env, prefix=prefix))
            if i == 0:
                address = (node_dir / "ray_current_cluster").read_text().strip()
            node_ids.append(_raylet_node_id(sids[-1]))
        yield RayCluster(
            address=address,
            env={"RAY_ADDRESS": address, **auth},
            node_ids=tuple(node_ids),
            node_dirs=tuple(node_dirs),
            private_folder=private_folder,
            private_view=private_view,
            sessions=tuple(sids),
        )
    except BaseException as exc:
        if not isinstance(exc, pytest.skip.Exception):
            dest = tmp_path / "ray-logs"
            with contextlib.suppress(OSError):
                _save_logs(node_dirs, dest)
            if hasattr(exc, "add_note"):  # Python 3.11+
                exc.add_note(f"the Ray nodes' logs are in {dest}")
        raise
    finally:
        _kill_sessions(set(sids))
        shutil.rmtree(root, ignore_errors=True)
