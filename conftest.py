"""Test-wide environment (tests and doctests): headless rendering, no model-hub retries."""

import os

# Set before anything imports mujoco, pygame or huggingface_hub.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
