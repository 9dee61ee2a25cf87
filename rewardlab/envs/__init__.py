"""rewardlab's environment suite (sparse gridworlds, MuJoCo manipulation and driving) and the
task registry that describes any other Gymnasium env (:mod:`rewardlab.envs.tasks`).

Importing this package registers every id and imports no simulator; each family's module is
imported by ``gym.make``. On Linux without a display (no ``DISPLAY``/``WAYLAND_DISPLAY``) it
selects headless rendering, ``MUJOCO_GL=egl``, unless ``MUJOCO_GL`` or ``PYOPENGL_PLATFORM``
is set: MuJoCo reads it when first imported, and its default (GLFW) needs a display.
"""

import os
import sys

from rewardlab.envs.core import StateVariable, Task, TaskEnv, expert_policy, get_task
from rewardlab.envs.registration import env_ids, register_all
from rewardlab.envs.tasks import MissingTaskFeature, TaskAdapter, make, register_task

register_all()

_GL_VARIABLES = ("DISPLAY", "WAYLAND_DISPLAY", "MUJOCO_GL", "PYOPENGL_PLATFORM")
if sys.platform.startswith("linux") and not any(os.environ.get(k) for k in _GL_VARIABLES):
    os.environ["MUJOCO_GL"] = "egl"

__all__ = [
    "MissingTaskFeature",
    "StateVariable",
    "Task",
    "TaskAdapter",
    "TaskEnv",
    "env_ids",
    "expert_policy",
    "get_task",
    "make",
    "register_task",
]
