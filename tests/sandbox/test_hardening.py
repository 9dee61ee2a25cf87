"""Defence in depth: what a program that escaped validation can still reach.

Each attack is a program that skips validation (a :class:`ValidatedProgram` built directly),
reaches ``os`` and ``ctypes`` through the classic ``().__class__.__base__.__subclasses__()``
walk (only modules the worker has loaded: once root is dropped it may be unable to read the
others) and calls libc, aiming at a target this test sets up: a UNIX socket listener, a SysV
message queue, UDP and TCP listeners on 127.0.0.1, a wildcard TCP port, a secret in the
parent's keyring, the parent itself, a file's mode, a new process or program. Every attack
runs in a worker started by a parent that is root (as in CI) and by one that is an
unprivileged user (uid 65534, the mode most users have), and must leave the target untouched
with a clean verdict (``ProgramContained``). A control runs the same attack with the layers
that stop it switched off (where the kernel lets it through then) and sees it reach the
target: the attack is real, and the test can fail.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import random
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyseccomp
import pytest

from rewardlab.sandbox import (
    ProgramContained,
    ProgramRejected,
    SandboxLimits,
    SandboxWorker,
    ValidatedProgram,
    validate_program,
)
from rewardlab.sandbox import process as sandbox_process
from rewardlab.sandbox import worker as sandbox_worker
from tests.sandbox import unprivileged

PRELUDE = """
def real_import(name):
    for cls in ().__class__.__base__.__subclasses__():
        if cls.__name__ == "_wrap_close":
            return cls.__init__.__globals__["__builtins__"]["__import__"](name)


def compute_reward(x):
    os = real_import("os")
    builtins = real_import("builtins")
    ctypes = real_import("ctypes")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, *[ctypes.c_int] * 3, ctypes.c_long]

    def syscall(*args):
        args = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
        return libc.syscall(*args)

    def checked(result):
        if result < 0:
            err = ctypes.get_errno()
            raise builtins.OSError(err, os.strerror(err))
        return result

    def sockaddr_in(port):  # 127.0.0.1:port
        data = b"\\x02\\x00" + port.to_bytes(2, "big") + builtins.bytes([127, 0, 0, 1]) + b"\\0" * 8
        return ctypes.create_string_buffer(data, 16)

    def sockaddr_un(path):
        return ctypes.create_string_buffer(b"\\x01\\x00" + path.encode(), 110)

"""


def escaped(body: str) -> str:
    """An escaping program's source: ``body`` (ending in ``return``) after the prelude."""
    source = PRELUDE + textwrap.indent(textwrap.dedent(body), "    ")
    with pytest.raises(ProgramRejected):  # validation sees through it...
        validate_program(source, ["x"])
    return source  # ...so the parent builds the ValidatedProgram itself, as if it had not


def number(name: str) -> int:
    found = sandbox_worker._syscall_number(pyseccomp, name)
    assert found is not None and found >= 0, name
    return found


# The parent: starts one worker per case, as the user it runs as, and reports as JSON what
# happened, and what it saw while the worker was alive. It holds a secret in a new session
# keyring of its own (its workers inherit it) and counts the SIGUSR1 it receives.
PARENT = """
import ctypes, json, os, signal, sys
import numpy as np
import pyseccomp
from rewardlab.sandbox import ProgramContained, SandboxLimits, SandboxWorker, ValidatedProgram

received = []
signal.signal(signal.SIGUSR1, lambda *_: received.append(1))
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
keyctl = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "keyctl")
add_key = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "add_key")
L = ctypes.c_long
assert libc.syscall(L(keyctl), L(1), None) > 0  # KEYCTL_JOIN_SESSION_KEYRING, anonymous
secret = b"s3cret"
key = libc.syscall(L(add_key), b"user", b"rewardlab-secret", secret, L(len(secret)), L(-3))
assert key > 0, os.strerror(ctypes.get_errno())


def wildcard_listeners():
    # TCP sockets listening on every address, owned by uid 65534.
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                fields = line.split()
                address, port = fields[1].split(":")
                if fields[3] == "0A" and set(address) == {"0"} and fields[7] == "65534":
                    found.append(int(port, 16))
    return found


def inspect(pid):
    seen = {}
    for name in ("net", "ipc", "user"):
        try:
            own = os.readlink(f"/proc/self/ns/{name}")
            seen[name] = os.readlink(f"/proc/{pid}/ns/{name}") != own
        except OSError:
            seen[name] = None
    with open(f"/proc/{pid}/status") as fh:
        status = dict(line.split(":", 1) for line in fh)
    seen["cap_eff"] = int(status["CapEff"], 16)
    seen["seccomp"] = int(status["Seccomp"])
    return seen


results = []
for case in json.load(sys.stdin):
    out = {"uid": os.getuid()}
    try:
        limits = SandboxLimits(**case["limits"])
        with SandboxWorker(ValidatedProgram(case["source"], ("x",)), limits) as worker:
            out["hardening"] = list(worker.hardening)
            out.update(inspect(worker.pid))
            try:
                out["reward"] = worker.call({"x": np.zeros((case["batch"], 1))}).reward.tolist()
            except ProgramContained as exc:
                out["reason"], out["message"] = exc.reason, exc.message
            out["listeners"] = wildcard_listeners()
    except ProgramContained as exc:
        out["reason"], out["message"] = exc.reason, exc.message
    out["signals"] = len(received)
    results.append(out)
print(json.dumps(results))
"""

MODES = ["root", "user"]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Who the parent is: ``root`` (CI) or ``user`` (uid 65534, or the test's own non-root
    user)."""
    if request.param == "root" and not unprivileged.is_root():
        pytest.skip("the tests do not run as root")
    if request.param == "user":
        python, why = unprivileged.python()
        if python is None:
            pytest.skip(why)
    return str(request.param)


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder the test, the unprivileged parent and its workers can all reach."""
    with unprivileged.shared_dir("rewardlab-hardening-") as path:
        yield path


def attack(
    mode: str, shared: Path, *cases: tuple[str, dict[str, Any]], batch: int = 1
) -> list[dict[str, Any]]:
    """Run each (source, SandboxLimits keywords) in a worker of a parent of ``mode``, calling
    it once on ``x`` of shape ``(batch, 1)``."""
    script = shared / "parent.py"
    script.write_text(PARENT)
    script.chmod(0o644)
    specs = [{"source": source, "limits": limits, "batch": batch} for source, limits in cases]
    if mode == "root":
        args = [sys.executable, str(script)]
    else:
        python, _ = unprivileged.python()
        assert python is not None
        args = unprivileged.command([python, str(script)])
    done = subprocess.run(
        args,
        input=json.dumps(specs),
        cwd=shared,
        env=unprivileged.base_env(shared),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results: list[dict[str, Any]] = json.loads(done.stdout.splitlines()[-1])
    for result in results:
        assert result["uid"] == (0 if mode == "root" else os.getuid() or unprivileged.NOBODY)
    return results


def assert_denied(result: dict[str, Any]) -> None:
    """A clean verdict: the program's call failed with EPERM, under the filter."""
    assert "seccomp" in result["hardening"]
    assert result.get("reason") == "exception", result
    assert "PermissionError" in result["message"], result["message"]
    assert "reward" not in result


def test_unix_socket_listener_is_not_reached(mode: str, shared: Path) -> None:
    # Pathname UNIX sockets: no namespace isolates them, and Landlock (to ABI 6) does not
    # govern connect() on them: think docker.sock, X11, D-Bus, ssh-agent.
    path = shared / "listener.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        path.chmod(0o777)  # any user may connect
        listener.listen(4)
        listener.setblocking(False)
        source = escaped(f"""
            fd = checked(libc.socket(1, 1, 0))  # AF_UNIX, SOCK_STREAM
            checked(libc.connect(fd, sockaddr_un({str(path)!r}), 110))
            checked(libc.send(fd, b"escaped", 7, 0))
            return x[:, 0], {{}}
        """)
        denied, control = attack(mode, shared, (source, {}), (source, {"seccomp": False}))
        assert_denied(denied)
        assert control["reward"] == [0.0]  # with every other layer on
        connection, _ = listener.accept()
        with connection:
            assert connection.recv(16) == b"escaped"
        with pytest.raises(BlockingIOError):  # the one from the control, none from the attack
            listener.accept()


def _queues(key: int) -> list[int]:
    """Ids of the SysV message queues with ``key``, in this process's IPC namespace."""
    lines = Path("/proc/sysvipc/msg").read_text().splitlines()[1:]
    return [int(line.split()[1]) for line in lines if int(line.split()[0]) == key]


def test_sysv_message_queue_is_not_created(mode: str, shared: Path) -> None:
    key = random.randrange(1 << 20, 1 << 30)
    source = escaped(f"""
        checked(libc.msgget({key}, 0o1666))  # IPC_CREAT
        return x[:, 0], {{}}
    """)
    denied, ipc_namespace, control = attack(
        mode,
        shared,
        (source, {}),
        (source, {"seccomp": False}),
        (source, {"seccomp": False, "isolate_ipc": False}),
    )
    try:
        assert_denied(denied)
        if "ipcns" in ipc_namespace["hardening"]:
            assert ipc_namespace["reward"] == [0.0]  # created, in the worker's namespace only
        assert control["reward"] == [0.0]
        assert len(_queues(key)) == 1  # the control's, outliving its worker
    finally:
        for queue in _queues(key):
            ctypes.CDLL(None).msgctl(queue, 0, None)  # IPC_RMID
    assert _queues(key) == []


def test_udp_datagram_does_not_arrive(mode: str, shared: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        port = receiver.getsockname()[1]
        source = escaped(f"""
            fd = checked(libc.socket(2, 2, 0))  # AF_INET, SOCK_DGRAM
            checked(libc.sendto(fd, b"escaped", 7, 0, sockaddr_in({port}), 16))
            return x[:, 0], {{}}
        """)
        denied, network_namespace, control = attack(
            mode,
            shared,
            (source, {}),
            (source, {"seccomp": False}),
            (source, {"seccomp": False, "isolate_network": False}),
        )
        assert_denied(denied)
        if "netns" in network_namespace["hardening"]:  # no route out of an empty namespace
            assert network_namespace["reason"] == "exception"
            assert "Network is unreachable" in network_namespace["message"]
        assert control["reward"] == [0.0]
        assert receiver.recv(16) == b"escaped"  # the control's, and only one
        with pytest.raises(BlockingIOError):
            receiver.recv(16)


def test_tcp_connect_does_not_arrive(mode: str, shared: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        source = escaped(f"""
            fd = checked(libc.socket(2, 1, 0))  # AF_INET, SOCK_STREAM
            checked(libc.connect(fd, sockaddr_in({port}), 16))
            checked(libc.send(fd, b"escaped", 7, 0))
            return x[:, 0], {{}}
        """)
        # Landlock governs TCP connect() too (ABI >= 4), and the namespace has no route: the
        # filter alone must stop it as well.
        others_off = {"landlock": False, "isolate_network": False}
        denied, filter_alone, control = attack(
            mode,
            shared,
            (source, {}),
            (source, others_off),
            (source, others_off | {"seccomp": False}),
        )
        assert_denied(denied)
        assert_denied(filter_alone)
        assert control["reward"] == [0.0]
        connection, _ = listener.accept()
        connection.close()
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_tcp_listen_without_bind_opens_no_port(mode: str, shared: Path) -> None:
    # listen() on an unbound socket binds it to a free port on every address, which neither
    # Landlock's TCP rules (bind, connect) nor RLIMITs see.
    source = escaped("""
        fd = checked(libc.socket(2, 1, 0))  # AF_INET, SOCK_STREAM; open until the worker ends
        checked(libc.listen(fd, 1))
        address, size = sockaddr_in(0), ctypes.c_uint32(16)
        checked(libc.getsockname(fd, address, ctypes.byref(size)))
        return x[:, 0] + builtins.int.from_bytes(address.raw[2:4], "big"), {}
    """)
    denied, network_namespace, control = attack(
        mode,
        shared,
        (source, {}),
        (source, {"seccomp": False}),
        (source, {"seccomp": False, "isolate_network": False}),
    )
    assert_denied(denied)
    assert denied["listeners"] == []
    if "netns" in network_namespace["hardening"]:  # a port in the worker's namespace only
        assert network_namespace["reward"][0] > 0 and network_namespace["listeners"] == []
    port = int(control["reward"][0])
    assert port > 0 and port in control["listeners"]


def test_keyring_secret_is_not_read(mode: str, shared: Path) -> None:
    # The parent holds a secret in its session keyring, which the worker inherits, and keeps
    # possessing after root drops to uid 65534: no other layer stops it.
    source = escaped(f"""
        key = checked(syscall({number("keyctl")}, 10, -3, b"user", b"rewardlab-secret", 0))
        buffer = ctypes.create_string_buffer(64)
        size = checked(syscall({number("keyctl")}, 11, key, buffer, 64))  # KEYCTL_READ
        return x[:, 0] + builtins.sum(buffer.raw[:size]), {{}}
    """)
    denied, control = attack(mode, shared, (source, {}), (source, {"seccomp": False}))
    assert_denied(denied)
    assert control["reward"] == [float(sum(b"s3cret"))]


def test_parent_is_not_signalled(mode: str, shared: Path) -> None:
    source = escaped("""
        os.kill(os.getppid(), 10)  # SIGUSR1
        return x[:, 0], {}
    """)
    # Landlock scopes signals (ABI >= 6), and root's worker drops root: the filter alone must
    # stop it as well.
    others_off = {"landlock": False, "uid": None}
    denied, filter_alone, control = attack(
        mode, shared, (source, {}), (source, others_off), (source, others_off | {"seccomp": False})
    )
    assert_denied(denied)
    assert_denied(filter_alone)
    assert control["reward"] == [0.0]
    assert control["signals"] == 1  # the control's signal; the attack's never came


def test_file_modes_are_not_changed(mode: str, shared: Path) -> None:
    # Landlock governs no chmod, chown, xattrs or timestamps: the filter does.
    target = shared / "target"
    target.write_text("data")
    target.chmod(0o600)
    if unprivileged.is_root():
        os.chown(target, unprivileged.NOBODY, unprivileged.NOBODY)  # the worker's own file
    source = escaped(f"""
        os.chmod({str(target)!r}, 0o666)
        return x[:, 0], {{}}
    """)
    denied, control = attack(mode, shared, (source, {}), (source, {"seccomp": False}))
    assert_denied(denied)
    assert control["reward"] == [0.0]  # with Landlock on
    assert target.stat().st_mode & 0o777 == 0o666


def test_fork_and_exec_are_refused(mode: str, shared: Path) -> None:
    marker = shared / "marker"
    fork = escaped("""
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        return x[:, 0] + pid, {}
    """)
    execute = escaped(f"""
        os.execv("/bin/sh", ["sh", "-c", "echo reached > {marker}"])
    """)
    # RLIMIT_NPROC would refuse both too, while uid 65534 runs other processes (execve
    # fails with EAGAIN once the privilege drop found the user over its limit).
    processes = {"processes": 1 << 14}
    denied_fork, denied_exec, control_fork, control_exec = attack(
        mode,
        shared,
        (fork, {}),
        (execute, {}),
        (fork, {"seccomp": False} | processes),
        (execute, {"seccomp": False, "landlock": False} | processes),  # Landlock: no exec
    )
    assert_denied(denied_fork)
    assert_denied(denied_exec)
    assert control_fork["reward"][0] > 0
    assert control_exec["reason"] == "crashed", control_exec["message"]  # the shell replaced it
    assert marker.read_text() == "reached\n"


# int 0x80 from 64-bit code: i386's socket (359) through the 32-bit ABI, where the native rules
# (which know socket as 41) would not see it. rbx is saved: the caller owns it.
I386_SOCKET = bytes.fromhex("53 b8 67 01 00 00 bb 01 00 00 00 b9 01 00 00 00 31 d2 cd 80 5b c3")


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the foreign ABIs tested are x86's")
def test_foreign_abi_syscalls_kill_the_worker(mode: str, shared: Path) -> None:
    i386 = escaped(f"""
        code = {I386_SOCKET!r}
        # PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS
        address = libc.mmap(None, 4096, 7, 0x22, -1, 0)
        ctypes.memmove(address, code, builtins.len(code))
        fd = ctypes.CFUNCTYPE(ctypes.c_int)(address)()
        return x[:, 0] + fd, {{}}
    """)
    x32 = escaped(f"""
        fd = syscall(0x40000000 | {number("socket")}, 1, 1, 0)
        return x[:, 0] + fd, {{}}
    """)
    denied_i386, denied_x32, control = attack(
        mode, shared, (i386, {}), (x32, {}), (i386, {"seccomp": False})
    )
    for denied in (denied_i386, denied_x32):
        assert denied["reason"] == "crashed" and "SIGSYS" in denied["message"], denied
    if control.get("reason") == "crashed" and "SIGSEGV" in control["message"]:
        pytest.skip("this kernel runs no 32-bit syscalls (no IA32 emulation): no control")
    assert control["reward"][0] >= 3  # a socket, through the 32-bit ABI


# Every syscall the filter denies but those that would start a process, with arguments that
# harm nothing where they are not denied: -1 as an fd, a pid or a flag, 1 as an address.
PROBED = [
    name
    for name in sandbox_worker.SECCOMP_DENIED + sandbox_worker.SECCOMP_UNSUPPORTED
    if name not in ("fork", "vfork", "clone")
]


def test_every_denied_syscall_fails_with_eperm(mode: str, shared: Path) -> None:
    calls = ", ".join(str(number(name)) for name in PROBED)
    source = escaped(f"""
        errors = []
        for call in [{calls}]:
            errors.append(ctypes.get_errno() if syscall(call, -1, 1, 1, 0, 0, 0) < 0 else 0)
        return x[:, 0] + np.array(errors), {{}}
    """)
    filtered, control = attack(
        mode, shared, (source, {}), (source, {"seccomp": False}), batch=len(PROBED)
    )
    expected = [errno.ENOSYS if name in ("clone3", "openat2") else errno.EPERM for name in PROBED]
    assert dict(zip(PROBED, filtered["reward"], strict=True)) == dict(
        zip(PROBED, map(float, expected), strict=True)
    )
    # Without the filter most of them fail otherwise (EBADF, EFAULT, EINVAL...), or succeed.
    unfiltered = dict(zip(PROBED, control["reward"], strict=True))
    assert sum(value != errno.EPERM for value in unfiltered.values()) > len(PROBED) // 2
    for name in ("socket", "connect", "msgget", "keyctl", "io_uring_setup", "memfd_create"):
        assert unfiltered[name] != errno.EPERM, name


# The rules on arguments: (what, call, errno under the filter; 0: allowed). High bits set on
# an int argument must not slip past a rule: the kernel reads only the low 32.
HIGH = 1 << 32
ARGUMENT_RULES = [
    ("open for writing", "openat, -100, null, os.O_WRONLY, 0", errno.EPERM),
    ("open for reading and writing", "openat, -100, null, os.O_RDWR, 0", errno.EPERM),
    ("open creating", "openat, -100, readable, os.O_RDONLY | os.O_CREAT, 0o600", errno.EPERM),
    ("open truncating", "openat, -100, readable, os.O_RDONLY | os.O_TRUNC, 0", errno.EPERM),
    ("open for reading", "openat, -100, readable, os.O_RDONLY, 0", 0),
    ("F_SETOWN to the parent", "fcntl, 0, 8, os.getppid()", errno.EPERM),
    ("F_SETOWN, high bits set", f"fcntl, 0, 8 | {HIGH}, os.getppid()", errno.EPERM),
    ("F_GETFD", "fcntl, 0, 1", 0),
    ("TIOCSTI, high bits set", f"ioctl, 0, 0x5412 | {HIGH}, b'x'", errno.EPERM),
    ("FS_IOC_SETFLAGS on a file opened to read", "ioctl, 2, 0x40086602, limits", errno.EPERM),
    ("PR_SET_PDEATHSIG", "prctl, 1, 0", errno.EPERM),
    ("PR_GET_PDEATHSIG", "prctl, 2, limits", 0),
    ("prlimit64 setting", "prlimit64, 0, 7, limits, 0", errno.EPERM),
    ("prlimit64 reading", "prlimit64, 0, 7, 0, limits", 0),
    ("kill the parent", "kill, os.getppid(), 0", errno.EPERM),
    ("kill, high bits set", f"kill, os.getppid() | {HIGH}, 0", errno.EPERM),
    ("kill every process", "kill, -1, 0", errno.EPERM),
    ("kill itself", "kill, os.getpid(), 0", 0),
    ("tgkill the parent", "tgkill, os.getppid(), os.getppid(), 0", errno.EPERM),
    ("tgkill itself", "tgkill, os.getpid(), os.getpid(), 0", 0),
]


def test_argument_rules(mode: str, shared: Path) -> None:
    names = ("openat", "fcntl", "ioctl", "prctl", "prlimit64", "kill", "tgkill")
    numbers = "\n".join(f"{name} = {number(name)}" for name in names)
    calls = ", ".join(f"({call})" for _, call, _ in ARGUMENT_RULES)
    source = escaped(f"""
        {textwrap.indent(numbers, " " * 8).lstrip()}
        null = b"/dev/null"
        readable = real_import("numpy").__file__.encode()
        limits = ctypes.create_string_buffer(16)
        syscall(prlimit64, 0, 7, 0, limits)  # RLIMIT_NOFILE, as it is
        errors = []
        for call in [{calls}]:
            result = syscall(*call)
            errors.append(ctypes.get_errno() if result < 0 else 0)
            if call[0] == openat and result >= 0:
                os.close(result)
        return x[:, 0] + np.array(errors), {{}}
    """)
    filtered, control = attack(
        mode, shared, (source, {}), (source, {"seccomp": False}), batch=len(ARGUMENT_RULES)
    )
    what = [rule[0] for rule in ARGUMENT_RULES]
    assert dict(zip(what, filtered["reward"], strict=True)) == {
        rule[0]: float(rule[2]) for rule in ARGUMENT_RULES
    }
    # Without the filter, these calls go through.
    unfiltered = dict(zip(what, control["reward"], strict=True))
    for rule in ("F_SETOWN to the parent", "PR_SET_PDEATHSIG", "prlimit64 setting"):
        assert unfiltered[rule] == 0.0, rule


def test_namespaces_and_layers_of_each_mode(mode: str, shared: Path) -> None:
    source = "def compute_reward(x):\n    return x[:, 0], {}\n"
    (result,) = attack(mode, shared, (source, {}))
    layers = unprivileged.expected_layers(root=mode == "root")
    assert result["hardening"] == layers
    # The worker is where its record says.
    assert result["net"] is ("netns" in layers) and result["ipc"] is ("ipcns" in layers)
    assert result["user"] is ("userns" in layers)
    assert result["seccomp"] == 2  # SECCOMP_MODE_FILTER
    assert result["cap_eff"] == 0  # no capabilities, not even in its own user namespace


def test_worker_refuses_to_start_without_seccomp(tmp_path: Path, monkeypatch: Any) -> None:
    # The worker as it runs where pyseccomp is not installed.
    wrapper = tmp_path / "worker.py"
    wrapper.write_text(
        "import runpy, sys\n"
        "sys.modules['pyseccomp'] = None  # import pyseccomp raises ImportError\n"
        f"runpy.run_path({sandbox_process._WORKER_PATH!r}, run_name='__main__')\n"
    )
    wrapper.chmod(0o644)
    monkeypatch.setattr(sandbox_process, "_WORKER_PATH", str(wrapper))
    program = ValidatedProgram("def compute_reward(x):\n    return x[:, 0], {}\n", ("x",))
    with pytest.raises(ProgramContained) as contained:
        SandboxWorker(program)
    assert contained.value.reason == "startup"
    assert "SeccompError" in contained.value.message
    assert "pip install pyseccomp" in contained.value.message
    assert "SandboxLimits(seccomp=False)" in contained.value.message
    with SandboxWorker(program, SandboxLimits(seccomp=False)) as worker:
        assert "seccomp" not in worker.hardening
        assert worker.call({"x": np.ones((2, 1))}).reward.tolist() == [1.0, 1.0]


def test_a_refused_filter_stops_the_worker() -> None:
    class Refusing:
        def __init__(self, action: int) -> None:
            pass

        def set_attr(self, attr: int, value: int) -> None:
            pass

        def add_rule(self, *args: Any) -> None:
            pass

        def load(self) -> None:
            raise OSError(errno.EINVAL, "Invalid argument")

    class Binding:
        def __getattr__(self, name: str) -> Any:
            return getattr(pyseccomp, name)

        SyscallFilter = Refusing

    with pytest.raises(sandbox_worker.SeccompError, match=r"refused.*seccomp=False"):
        sandbox_worker._seccomp(Binding(), os.getpid())


def test_every_filtered_syscall_is_known_here() -> None:
    names = [
        *sandbox_worker.SECCOMP_DENIED,
        *sandbox_worker.SECCOMP_UNSUPPORTED,
        *sandbox_worker.SECCOMP_SIGNAL_SELF,
        *(rule[0] for rule in sandbox_worker.SECCOMP_DENIED_WHEN),
        "prlimit64",
    ]
    assert len(set(sandbox_worker.SECCOMP_DENIED)) == len(sandbox_worker.SECCOMP_DENIED)
    # A misspelt name would be skipped silently by the worker; here it fails.
    unknown = [name for name in names if sandbox_worker._syscall_number(pyseccomp, name) is None]
    assert unknown == []


def test_seccomp_is_imported_without_starting_a_process(monkeypatch: Any) -> None:
    import ctypes.util

    def no_subprocess(name: str) -> str | None:
        raise AssertionError(f"find_library({name!r}) would run /sbin/ldconfig")

    monkeypatch.setattr(ctypes.util, "find_library", no_subprocess)
    monkeypatch.delitem(sys.modules, "pyseccomp")
    module = sandbox_worker._import_seccomp()
    assert module.system_arch() == pyseccomp.system_arch()
    assert ctypes.util.find_library is no_subprocess  # restored
