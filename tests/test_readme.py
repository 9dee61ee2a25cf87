"""The README's commands and example stay true."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
# Text each block prints, in README order; a new block needs an entry here.
EXPECTED_OUTPUT = [
    "True 1.0 (224, 224, 3)",
    "False 0.0 ['idle_action', 'progress', 'state', 'success']",
    "['env_reward', 'reward_model/clip']\n['model', 'shaping']\n2 16",
    "('block_pos', 'target_pos') [0.736 0.736] ['push']",
]


def test_every_readme_python_block_is_checked() -> None:
    assert len(PYTHON_BLOCKS) == len(EXPECTED_OUTPUT)


@pytest.mark.parametrize("index", range(len(EXPECTED_OUTPUT)))
def test_readme_python_example_runs(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    with warnings.catch_warnings():
        # The learned-reward example builds random CLIP weights on purpose (offline).
        warnings.filterwarnings("ignore", "CLIPRewardModel: pretrained=None", UserWarning)
        exec(compile(PYTHON_BLOCKS[index], "README.md", "exec"), {})
    assert EXPECTED_OUTPUT[index] in capsys.readouterr().out


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    assert len(commands) >= 2, "README opens with the install and the test command"
    test_command = commands[1].strip()
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert test_command.removeprefix(".venv/bin/python ") in ci
    assert "pytest" in test_command


def test_readme_counts_the_hostile_corpus() -> None:
    hostile = Path(__file__).resolve().parent / "sandbox" / "hostile"
    count = len([p for p in hostile.glob("*.py") if p.name != "conftest.py"])
    assert re.findall(r"(\d+) hostile programs", README) == [str(count)]


def test_readme_lists_every_env_id() -> None:
    from rewardlab import env_ids

    missing = [i for i in env_ids() if f"`{i}`" not in README]
    assert not missing, f"README's env table misses {missing}"


def test_console_script_help() -> None:
    script = Path(sys.executable).with_name("rewardlab")  # installed beside this Python
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "demo" in out.stdout


def test_your_own_env_section_runs_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rewardlab.cli import main

    section = README.split("## Your own env", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    tasks = tmp_path / "my_tasks.py"
    tasks.write_text(block)
    monkeypatch.chdir(tmp_path)
    command = re.findall(r"```bash\n(rewardlab train .*?)\n```", section)[0].split()
    assert command[command.index("--tasks") + 1] == tasks.name
    args = [*command[1:], "--eval-episodes", "2", "--no-progress", "--out", "run"]
    args += ["--set", "n_envs=2", "--set", "n_steps=64", "--set", "batch_size=64"]
    args[args.index("--steps") + 1] = "256"
    assert main(args) == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "eval.csv").is_file()
    # The error the section quotes is the one eval-reward gives.
    quoted = re.findall(r"```\n(error: .*?)\n```", section, re.S)[0]
    assert main(["eval-reward", "--env", "Acrobot-v1", "--tasks", str(tasks)]) == 2
    assert capsys.readouterr().err.strip() == quoted


def test_readme_lists_every_preset_and_every_shipped_adapter() -> None:
    from rewardlab.envs.tasks import SHIPPED
    from rewardlab.presets import table

    assert table() in README, "README's presets table is stale: paste rewardlab.presets.table()"
    section = README.split("### Envs rewardlab ships tasks for", 1)[1].split("\n### ", 1)[0]
    modules = {e.adapter.rpartition(":")[0] for e in SHIPPED if isinstance(e.adapter, str)}
    assert len(modules) == 6  # classic, mujoco, minigrid, highway, robotics, metaworld
    for entry in SHIPPED:
        assert f"`{entry.extra}`" in section, entry
