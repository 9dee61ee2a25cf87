"""``rewardlab learn-reward``'s wiring: every source-specific option reaches a keyword of the
learn function it applies to, is refused with the others, and each source runs end to end."""

from __future__ import annotations

import importlib
import inspect
import json
import re
from pathlib import Path

import pytest

from rewardlab.cli import _LEARN_FUNCTIONS, _LEARN_OPTIONS, main

GRID = ["--env", "rewardlab/GridEmpty-v0", "--env-kwarg", "size=5"]


def _signature(source: str) -> inspect.Signature:
    module, name = _LEARN_FUNCTIONS[source]
    return inspect.signature(getattr(importlib.import_module(module), name))


def test_every_option_is_a_keyword_of_the_functions_it_applies_to() -> None:
    for flag, keyword, sources, _, text in _LEARN_OPTIONS:
        for source in sources:
            if not keyword:  # --online picks the function itself
                continue
            params = _signature(source).parameters
            assert keyword in params, f"{flag} -> {keyword} is not a keyword of {source}"
        # A plain "(default: V)" in the help is the function's own default.
        plain = re.fullmatch(r".*\(default: ([\w.]+)\)", text)
        if plain and keyword:
            for source in sources:
                default = _signature(source).parameters[keyword].default
                shown = f"{default:g}" if isinstance(default, float) else str(default)
                assert shown == plain.group(1), (flag, source, default)
    # Every function takes the common keywords the command passes.
    for source in _LEARN_FUNCTIONS:
        assert {"env_kwargs", "seed", "judge", "log"} <= set(_signature(source).parameters)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "demos", "--pairs", "10"], "--pairs applies to --from preferences, not"),
        (["--from", "labels", "--method", "goal"], "--method applies to --from demos"),
        (["--budget", "10"], "--budget applies to --from preferences --online, not"),
        (
            ["--online", "--pairs", "10"],
            "--pairs applies to --from preferences, not to --from preferences --online",
        ),
        (["--from", "demos", "--online"], "--online learns from preferences, not from demos"),
        (["--from", "labels", "--fine-tune-encoder"], "--fine-tune-encoder applies to"),
        (["--preferences", "p.jsonl", "--pairs", "9"], "--pairs applies to synthetic labels"),
        (["--preferences", "p.jsonl", "--beta", "2"], "--beta applies to synthetic labels"),
        (["--from", "demos", "--beta", "2"], "--beta applies to --from preferences"),
        (["--online", "--eval-episodes", "-1"], "got --eval-episodes -1; pass --eval-episodes 0"),
    ],
)
def test_an_option_of_another_source_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    assert main(["learn-reward", *GRID, *args, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def _run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    out = tmp_path / "out"
    code = main(["learn-reward", *GRID, *args, "--no-judge", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert (out / "checkpoint.pt").is_file() and (out / "report.md").is_file()
    return dict(json.loads((out / "summary.json").read_text()))


def test_learn_reward_from_demos_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--from", "demos", "--method", "goal", "--encoder", "cnn", "--n-demos", "2"]
    summary = _run(tmp_path, capsys, *args, "--no-control")
    assert summary["method"] == "goal" and "control" not in summary


def test_learn_reward_from_labels_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--from", "labels", "--episodes", "3", "--epochs", "5", "--ranking", "0"]
    summary = _run(tmp_path, capsys, *args)
    assert summary["weights"] == {"regression": 1.0, "ranking": 0.0, "success": 1.0}
    assert summary["epochs"] == 5 and summary["inputs"] == "state"


def test_learn_reward_online_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--online", "--steps", "1024", "--budget", "8", "--refit-every", "512"]
    args += ["--set", "n_envs=2", "--set", "n_steps=128", "--set", "batch_size=64"]
    summary = _run(
        tmp_path, capsys, *args, "--ensemble", "2", "--epochs", "2", "--eval-episodes", "1"
    )
    assert summary["labels_used"] == 8 and summary["refits"] == 2
