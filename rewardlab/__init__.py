"""rewardlab: Gymnasium environments and learned rewards for embodied RL research.

``import rewardlab`` registers every ``rewardlab/...`` env id with Gymnasium; it imports
neither MuJoCo nor torch.
"""

from rewardlab.envs import StateVariable, Task, env_ids, expert_policy, get_task

__version__ = "0.1.0"

__all__ = ["StateVariable", "Task", "__version__", "env_ids", "expert_policy", "get_task"]
