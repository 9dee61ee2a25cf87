"""Headless rendering by default: ``import rewardlab`` picks MuJoCo's EGL backend when there is
no display and the user chose none, and rendering leaves no EGL noise at interpreter exit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("mujoco")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="EGL is Linux's")

GL_VARIABLES = ("DISPLAY", "WAYLAND_DISPLAY", "MUJOCO_GL", "PYOPENGL_PLATFORM")


def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter with no display and no GL choice, but ``env``."""
    base = {k: v for k, v in os.environ.items() if k not in GL_VARIABLES}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("ending", ["env.close()", "del env", "pass"])
def test_renders_without_a_display_and_exits_quietly(ending: str) -> None:
    # `del env` leaves the env to the garbage collector at shutdown, after MuJoCo's EGL
    # display is terminated: the renderer freed then printed an EGLError.
    out = run(
        "import os, gymnasium as gym, rewardlab\n"
        "env = gym.make('rewardlab/ManipReach-v0', render_mode='rgb_array')\n"
        "env.reset(seed=0)\n"
        "assert env.render().std() > 0\n"
        "print(os.environ['MUJOCO_GL'])\n" + ending
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "egl\n"
    for noise in ("EGLError", "Traceback", "Exception ignored"):
        assert noise not in out.stderr, out.stderr


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MUJOCO_GL": "osmesa"}, "osmesa"),
        ({"PYOPENGL_PLATFORM": "osmesa"}, None),
        ({"DISPLAY": ":0"}, None),
        ({"WAYLAND_DISPLAY": "wayland-0"}, None),
    ],
)
def test_a_users_choice_or_a_display_is_left_alone(
    env: dict[str, str], expected: str | None
) -> None:
    out = run("import os, rewardlab; print(os.environ.get('MUJOCO_GL'))", **env)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{expected}\n"


def test_an_optimizer_built_after_a_rendered_frame_does_not_crash() -> None:
    # torch imports triton when it builds its first optimizer; after Mesa's EGL had loaded
    # its LLVM, that import was a segmentation fault (eval-reward's probe after frames).
    code = (
        "import gymnasium as gym, rewardlab, torch\n"
        "env = gym.make('rewardlab/ManipPush-v0', render_mode='rgb_array')\n"
        "env.reset(seed=0)\n"
        "env.render()\n"
        "torch.optim.Adam([torch.zeros(2, requires_grad=True)])\n"
        "print('ok')\n"
    )
    result = run(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")
