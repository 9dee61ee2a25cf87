"""Pure helpers for potential-based reward shaping (no Gymnasium or SB3 plumbing).

Potential-based shaping (Ng, Harada & Russell 1999) adds ``F = gamma * Phi(s') - Phi(s)`` to
the reward; with ``gamma`` equal to the agent's discount it leaves the optimal policy
unchanged. Dynamic shaping (Devlin & Kudenko 2012) keeps this guarantee for a potential that
changes over time, provided ``Phi(s)`` is the value cached when ``s`` was entered.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

__all__ = ["check_discount", "check_mismatched_discount", "check_scale", "shaping_term"]


def shaping_term(
    phi: np.ndarray, phi_next: np.ndarray, terminated: np.ndarray, gamma: float
) -> np.ndarray:
    """Batched shaping term ``F = gamma * Phi(s') - Phi(s)`` (Ng, Harada & Russell 1999).

    ``Phi(s')`` is taken as 0 where ``terminated`` (a true terminal state has no future);
    a truncated transition keeps ``Phi`` of its true final observation. Pass as ``phi`` the
    potential cached when ``s`` was entered (Devlin & Kudenko 2012) so that the shaped return
    telescopes to ``gamma^T Phi(s_T) - Phi(s_0)`` even if the potential changes.

    Args:
        phi: ``(B,)`` potentials of the states left.
        phi_next: ``(B,)`` potentials of the states entered (ignored where terminated).
        terminated: ``(B,)`` bool, True where the state entered is terminal.
        gamma: The shaping discount; must equal the agent's for policy invariance.

    Returns:
        ``(B,)`` float64 shaping terms.

    Example:
        >>> shaping_term(np.array([0.5, 0.5]), np.array([1.0, 1.0]), np.array([False, True]), 0.9)
        array([ 0.4, -0.5])
    """
    phi = np.asarray(phi, dtype=np.float64)
    phi_next = np.where(np.asarray(terminated, dtype=bool), 0.0, phi_next).astype(np.float64)
    return gamma * phi_next - phi


def check_discount(gamma: float, name: str = "gamma") -> float:
    """``gamma`` as a float, or a ValueError unless it is a number in ``(0, 1]``.

    Example:
        >>> check_discount(0.99)
        0.99
    """
    if isinstance(gamma, bool) or not isinstance(gamma, Real):
        raise ValueError(f"{name} must be a number in (0, 1], got {gamma!r}")
    if not 0.0 < float(gamma) <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {gamma!r}")
    return float(gamma)


def check_mismatched_discount(gamma: float, agent_gamma: float) -> float:
    """Validate the discounts of the mismatched-discount negative control; return
    ``agent_gamma`` as a float.

    Raises:
        ValueError: If a discount is not in ``(0, 1]`` or ``gamma`` equals the agent's.
    """
    agent = check_discount(agent_gamma, "agent_gamma")
    if check_discount(gamma) == agent:
        raise ValueError(
            f"mismatched shaping needs gamma != agent_gamma, got both {gamma!r}: a shaping "
            "discount that equals the agent's gamma is plain policy-invariant shaping; use "
            "PotentialShaping (drop shaping_gamma), or another value for the mismatched-"
            "discount control"
        )
    return agent


def check_scale(scale: float, name: str = "scale") -> float:
    """``scale`` as a float, or a ValueError unless it is a finite number."""
    if isinstance(scale, bool) or not isinstance(scale, Real) or not math.isfinite(scale):
        raise ValueError(f"{name} must be a finite number, got {scale!r}")
    return float(scale)
