"""SB3 glue: callbacks (and, later, agent construction and evaluation on the true reward)."""

from rewardlab.agents.callbacks import ShapingDiscountCheck

__all__ = ["ShapingDiscountCheck"]
