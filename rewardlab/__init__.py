"""rewardlab: Gymnasium environments and learned rewards for embodied RL research.

``import rewardlab`` registers every ``rewardlab/...`` env id with Gymnasium; it imports
neither MuJoCo nor torch; ``rewardlab.make_vec_env`` imports stable_baselines3 on first use.
"""

from typing import TYPE_CHECKING, Any

from rewardlab import _renamed
from rewardlab.envs import (
    MissingTaskFeature,
    StateVariable,
    Task,
    TaskAdapter,
    env_ids,
    expert_policy,
    get_task,
    make,
    register_task,
)

if TYPE_CHECKING:
    from rewardlab.vec import make_vec, make_vec_env

__version__ = "0.1.0"

_renamed.install()  # the old paths of renamed modules, deprecated

__all__ = [
    "MissingTaskFeature",
    "StateVariable",
    "Task",
    "TaskAdapter",
    "__version__",
    "env_ids",
    "expert_policy",
    "get_task",
    "make",
    "make_vec",
    "make_vec_env",
    "register_task",
]


def __getattr__(name: str) -> Any:
    # The builders need stable_baselines3 (and torch): import them only when asked for.
    if name in ("make_vec", "make_vec_env"):
        from rewardlab import vec

        return getattr(vec, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
