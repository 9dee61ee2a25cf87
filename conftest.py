"""Test-wide environment (tests and doctests): headless rendering, no model-hub retries."""

import os

# Set before anything imports mujoco, pygame or huggingface_hub.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One torch/OpenMP thread per process: the suite runs two xdist workers on two cores, and
# oversubscribed OpenMP threads spin against each other (the search tests ran 3x slower).
os.environ.setdefault("OMP_NUM_THREADS", "1")
