"""The CLI with a reward program, as an unprivileged user: the mode most users have.

CI runs the tests as root, whose sandbox workers drop to uid 65534; a user's workers keep the
user's uid and reach their namespaces through a user namespace. Here ``rewardlab llm-reward
check`` and a short ``rewardlab train`` run as uid 65534 (through ``setpriv`` when the tests
run as root; as the test's own user otherwise), and must pass with every layer this machine
allows a non-root user.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sandbox import unprivileged

PROGRAM = """
def compute_reward(agent_pos, goal_pos):
    distance = np.abs(goal_pos - agent_pos).sum(axis=-1).astype(np.float64)
    return -0.1 * distance, {"distance": distance}
"""
ENV = ["--env", "rewardlab/GridEmpty-v0", "--env-kwarg", "size=5"]
CLI = "import sys; from rewardlab.cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture
def home() -> Iterator[Path]:
    """The unprivileged user's HOME, holding the program; runs write beneath it."""
    python, why = unprivileged.python()
    if python is None:
        pytest.skip(why)
    with unprivileged.shared_dir("rewardlab-unprivileged-") as path:
        program = path / "reward.py"
        program.write_text(PROGRAM)
        program.chmod(0o644)
        yield path


def rewardlab(home: Path, *args: str, timeout: float) -> tuple[int, str]:
    """Run the ``rewardlab`` CLI as the unprivileged user; its exit status and output."""
    python, _ = unprivileged.python()
    assert python is not None
    done = unprivileged.run([python, "-c", CLI, *args], home=home, timeout=timeout)
    return done.returncode, done.stdout + done.stderr


def test_check_passes_with_every_layer_a_user_gets(home: Path) -> None:
    status, output = rewardlab(
        home, "llm-reward", "check", str(home / "reward.py"), *ENV, timeout=120
    )
    assert status == 0, output
    assert "passed" in output
    (line,) = [line for line in output.splitlines() if line.startswith("sandbox: ")]
    layers = line.removeprefix("sandbox: ").split(", ")
    assert layers == unprivileged.expected_layers(root=False)
    assert not any(layer.startswith("uid=") for layer in layers)  # no root to drop


def test_short_training_run(home: Path) -> None:
    out = home / "run"
    reward = f"{{model: {{kind: program, path: {home / 'reward.py'}}}}}"
    settings = ["--set", "n_envs=1", "--set", "n_steps=32", "--set", "batch_size=32"]
    status, output = rewardlab(
        home,
        "train",
        *ENV,
        "--reward",
        reward,
        "--steps",
        "64",
        *settings,
        "--eval-episodes",
        "1",
        "--no-progress",
        "--out",
        str(out),
        timeout=300,
    )
    assert status == 0, output
    # Every call ran in a sandbox worker (which starts only fully hardened), none failed.
    diagnostics = json.loads((out / "reward_diagnostics.json").read_text())["reward"]
    assert diagnostics["calls"] >= 64
    assert diagnostics["failures"] == {} and diagnostics["restarts"] == 0
    assert diagnostics["hardening"] == unprivileged.expected_layers(root=False)
    user = unprivileged.NOBODY if unprivileged.is_root() else os.getuid()
    assert (out / "model.zip").stat().st_uid == user  # written by that user
