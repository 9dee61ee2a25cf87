"""A relative path inside a file (a sweep file's checkpoint, an LLM search config's feedback
file) is that file's folder's, wherever the command runs, as in a comparison spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from rewardlab.cli import main
from rewardlab.experiments.reward_eval import load_sweep


def test_a_sweep_files_checkpoint_path_is_its_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "sweeps"
    folder.mkdir()
    (folder / "sweep.yaml").write_text(
        "model: ViT-B-32\npretrained: weights/open_clip_model.bin\nheads: {cosine: {}}\n"
    )
    monkeypatch.chdir(tmp_path)
    specs = load_sweep("sweeps/sweep.yaml")
    assert [spec.model.pretrained for _, spec in specs] == [  # type: ignore[union-attr]
        str(folder / "weights" / "open_clip_model.bin")
    ]


def test_an_llm_search_configs_feedback_file_is_its_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "notes.txt").write_text("reach the goal faster")
    (folder / "search.yaml").write_text(
        "env: rewardlab/GridEmpty-v0\nllm: {model: m}\nfeedback_file: notes.txt\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    # Port 9 (discard) answers nothing: the checks get as far as the server, past the file.
    argv = ["llm-reward", "search", "--config", str(folder / "search.yaml")]
    assert main([*argv, "--base-url", "http://127.0.0.1:9/v1", "--out", "o"]) == 2
    err = capsys.readouterr().err
    assert "feedback file" not in err and "cannot reach the LLM server" in err, err
