"""SB3 callbacks."""

from __future__ import annotations

from stable_baselines3.common.callbacks import BaseCallback

from rewardlab.wrappers.shaping import check_shaping_gamma

__all__ = ["ShapingDiscountCheck"]


class ShapingDiscountCheck(BaseCallback):
    """Refuses to train when a shaping layer's discount differs from the agent's.

    Potential-based shaping (Ng, Harada & Russell 1999) is policy-invariant only when its
    ``gamma`` is the learner's discount. At training start this calls
    :func:`~rewardlab.wrappers.shaping.check_shaping_gamma` on the training env with
    ``model.gamma``, so a mismatch fails before any step is taken.

    Raises:
        ValueError: From ``learn()``, at training start, on a mismatch.
        TypeError: If the training env hides sub-envs in other processes
            (``SubprocVecEnv``) below the shaping layers; see ``check_shaping_gamma``.

    Example:
        >>> from stable_baselines3 import PPO
        >>> from rewardlab import make_vec
        >>> venv = make_vec("rewardlab/GridEmpty-v0", shaping="progress", gamma=0.9)
        >>> model = PPO("MlpPolicy", venv, gamma=0.99, n_steps=8, batch_size=8)
        >>> model.learn(8, callback=ShapingDiscountCheck())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: VecPotentialShaping shapes with gamma=0.9 but the agent discounts ...
    """

    def _on_training_start(self) -> None:
        gamma = getattr(self.model, "gamma", None)
        if gamma is None:
            raise TypeError(f"{type(self.model).__name__} has no gamma to check shaping against")
        check_shaping_gamma(self.training_env, gamma)

    def _on_step(self) -> bool:
        return True
