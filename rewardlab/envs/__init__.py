"""rewardlab's environment suite: sparse gridworlds, MuJoCo manipulation and driving.

Importing this package registers every id and imports no simulator; each family's module is
imported by ``gym.make``.
"""

from rewardlab.envs.core import StateVariable, Task, TaskEnv, expert_policy, get_task
from rewardlab.envs.registration import env_ids, register_all

register_all()

__all__ = ["StateVariable", "Task", "TaskEnv", "env_ids", "expert_policy", "get_task"]
