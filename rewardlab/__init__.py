"""rewardlab: Gymnasium environments and learned rewards for embodied RL research.

``import rewardlab`` registers every ``rewardlab/...`` env id with Gymnasium; it imports
neither MuJoCo nor torch; ``rewardlab.make_vec`` imports stable_baselines3 on first use.
"""

from typing import TYPE_CHECKING, Any

from rewardlab.envs import StateVariable, Task, env_ids, expert_policy, get_task

if TYPE_CHECKING:
    from rewardlab.vec import make_vec

__version__ = "0.1.0"

__all__ = [
    "StateVariable",
    "Task",
    "__version__",
    "env_ids",
    "expert_policy",
    "get_task",
    "make_vec",
]


def __getattr__(name: str) -> Any:
    # make_vec needs stable_baselines3 (and torch): import it only when asked for.
    if name == "make_vec":
        from rewardlab.vec import make_vec

        return make_vec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
