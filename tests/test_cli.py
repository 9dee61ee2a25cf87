"""The command line: env listing and the expert demo the README's first command runs."""

from __future__ import annotations

import numpy as np
import pytest

from rewardlab import env_ids
from rewardlab.cli import main
from rewardlab.demo import DEFAULT_DEMO_IDS, image_strip


def test_envs_lists_every_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    for env_id in env_ids():
        assert env_id in out


def test_demo_ids_are_registered() -> None:
    assert set(DEFAULT_DEMO_IDS) <= set(env_ids())


def test_demo_rejects_unknown_env(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    assert main(["demo", "--env", "rewardlab/Nope-v0", "--out", str(tmp_path)]) == 2
    assert "rewardlab envs" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_demo_writes_a_strip_of_a_successful_expert(tmp_path) -> None:
    cv2 = pytest.importorskip("cv2")
    env_id = "rewardlab/GridKeyDoor-v0"
    assert main(["demo", "--env", env_id, "--out", str(tmp_path), "--size", "64"]) == 0
    strip = cv2.imread(str(tmp_path / "GridKeyDoor-v0.png"))
    assert strip.shape[0] == 64 and strip.shape[1] > 64 * 2


def test_image_strip_picks_first_and_last() -> None:
    frames = [np.full((2, 3, 3), i, dtype=np.uint8) for i in range(10)]
    strip = image_strip(frames, n_frames=3, gap=1)
    assert strip.shape == (2, 3 * 3 + 2, 3)
    assert strip[0, 0, 0] == 0 and strip[0, -1, 0] == 9
    with pytest.raises(ValueError):
        image_strip([])
