"""Reward models built by wrapping other reward models: compose by wrapping, not by flags.

Every composite takes its children's rewards for the same batch and combines them; its
``needs_frames`` and ``needs_info`` are the union of its children's, so an adapter gives it
everything any child reads.

Components follow the :class:`~rewardlab.reward_models.base.RewardOutput` contract: when
present they **sum** to the reward. A composite only reports components that do:

- :class:`WeightedSum` reports each child's weighted reward ``w_i r_i`` under the child's
  name. Children's own components are not forwarded (call the child to inspect them).
- :class:`Affine` forwards its child's components scaled by ``scale``, plus a ``"shift"``
  component, so they still sum.
- :class:`Product` and :class:`PenaltyFactors` multiply, so they report no components; their
  factors come from :meth:`Product.evaluate` / :meth:`PenaltyFactors.evaluate`.
- :class:`Clamp` and :class:`RunningNorm` are not linear and report no components.

Multiplicative synthesis follows VLM-RL (``r_total = r_speed * f_center * f_angle *
f_stability``, hard penalties override) and CaRL (Jaeger et al. 2025: route completion times
infraction penalty factors, episode end on severe infractions).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from rewardlab.reward_models.base import RewardBatch, RewardModel, RewardOutput

__all__ = [
    "Affine",
    "Clamp",
    "FunctionReward",
    "InfoReward",
    "PenaltyFactors",
    "Product",
    "RunningNorm",
    "WeightedSum",
]


def _check_model(model: object, what: str) -> RewardModel:
    if not isinstance(model, RewardModel):
        raise TypeError(f"{what} must be a RewardModel, got {type(model).__name__}")
    return model


def _check_children(children: Mapping[str, RewardModel], what: str) -> dict[str, RewardModel]:
    if not children:
        raise ValueError(f"{what} needs at least one child model, got none")
    for name, model in children.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{what} child names must be non-empty strings, got {name!r}")
        _check_model(model, f"{what} child {name!r}")
    return dict(children)


def _check_finite(value: float, what: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value}")
    return value


def _union_needs(models: Iterable[RewardModel]) -> tuple[bool, tuple[str, ...]]:
    models = list(models)
    keys = dict.fromkeys(key for model in models for key in model.needs_info)
    return any(model.needs_frames for model in models), tuple(keys)


class _Composite(RewardModel):
    """A model built from other models: reports their diagnostics and closes them."""

    def _parts(self) -> Mapping[str, RewardModel]:
        """The child models by name."""
        return {"model": self.model} if hasattr(self, "model") else {}

    def diagnostics(self) -> dict[str, Any]:
        """The children's diagnostics by child name (those that report any)."""
        return {name: d for name, m in self._parts().items() if (d := m.diagnostics())}

    def close(self) -> None:
        """Close the children that hold resources (a reward program's sandbox worker)."""
        for model in self._parts().values():
            model.close()


def _reward_of(model: RewardModel, batch: RewardBatch, name: str) -> np.ndarray:
    """The child's ``(B,)`` float64 reward, or a ValueError naming the child."""
    reward = np.asarray(model(batch).reward, dtype=np.float64)
    if reward.shape != (len(batch),):
        raise ValueError(
            f"child {name!r} returned rewards of shape {reward.shape}, expected ({len(batch)},)"
        )
    return reward


class FunctionReward(RewardModel):
    """A leaf model from a plain function ``r = fn(batch)``.

    Args:
        fn: Maps a :class:`RewardBatch` to ``(B,)`` rewards.
        needs_frames: True when ``fn`` reads ``batch.frames``.
        needs_info: Keys of ``batch.info`` that ``fn`` reads.

    Example:
        >>> model = FunctionReward(lambda b: -np.abs(b.next_obs[:, 0]))
        >>> batch = RewardBatch(np.zeros((2, 1)), np.zeros((2, 1)), np.array([[1.0], [-2.0]]),
        ...                     np.zeros(2, dtype=bool))
        >>> model(batch).reward
        array([-1., -2.])
    """

    def __init__(
        self,
        fn: Callable[[RewardBatch], np.ndarray],
        *,
        needs_frames: bool = False,
        needs_info: Iterable[str] = (),
    ) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.needs_frames = bool(needs_frames)
        self.needs_info = tuple(needs_info)

    def __call__(self, batch: RewardBatch) -> RewardOutput:
        """``r = fn(batch)`` as ``(B,)`` float64."""
        reward = np.asarray(self.fn(batch), dtype=np.float64)
        if reward.shape != (len(batch),):
            raise ValueError(
                f"fn returned rewards of shape {reward.shape}, expected ({len(batch)},)"
            )
        return RewardOutput(reward)


class InfoReward(RewardModel):
    """A leaf model reading an env-provided term: ``r = batch.info[key]``.

    Lets env terms such as ``"progress"`` or a ``"reward_<name>"`` component be composed with
    learned or zero-shot rewards.

    Args:
        key: The ``batch.info`` key to return; it becomes :attr:`needs_info`.

    Example:
        >>> batch = RewardBatch(np.zeros((2, 1)), np.zeros((2, 1)), np.zeros((2, 1)),
        ...                     np.zeros(2, dtype=bool), info={"progress": np.array([0.25, 1.0])})
        >>> InfoReward("progress")(batch).reward
        array([0.25, 1.  ])
    """

    def __init__(self, key: str) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be a non-empty string, got {key!r}")
        self.key = key
        self.needs_info = (key,)

    def __call__(self, batch: RewardBatch) -> RewardOutput:
        """``r = batch.info[key]`` as ``(B,)`` float64."""
        info = batch.info
        if self.key not in info:
            raise KeyError(
                f"batch.info has no {self.key!r} (has {sorted(info)}); the env must "
                f"report it in info and the adapter must pass it through"
            )
        reward = np.asarray(info[self.key], dtype=np.float64)
        if reward.shape != (len(batch),):
            raise ValueError(
                f"info[{self.key!r}] has shape {reward.shape}, expected ({len(batch)},)"
            )
        return RewardOutput(reward)


class WeightedSum(_Composite):
    """Weighted sum of child rewards: ``r = sum_i w_i r_i``.

    Components are the summands ``w_i r_i`` under each child's name, so they sum to the
    reward; children's own components are not forwarded.

    Args:
        children: Child models by name (at least one).
        weights: A finite weight per child name, exactly the names of ``children``; None
            weights every child 1.

    Raises:
        ValueError: No children, weight names that differ from the child names, or a
            non-finite weight.
    """

    def __init__(
        self, children: Mapping[str, RewardModel], weights: Mapping[str, float] | None = None
    ) -> None:
        self.children = _check_children(children, "WeightedSum")
        if weights is None:
            weights = dict.fromkeys(self.children, 1.0)
        if set(weights) != set(self.children):
            missing = sorted(set(self.children) - set(weights))
            extra = sorted(set(weights) - set(self.children))
            raise ValueError(
                f"weights must name exactly the children {sorted(self.children)}; "
                f"missing {missing}, unknown {extra}"
            )
        self.weights = {
            name: _check_finite(weights[name], f"weight of {name!r}") for name in self.children
        }
        self.needs_frames, self.needs_info = _union_needs(self.children.values())

    def _parts(self) -> Mapping[str, RewardModel]:
        return self.children

    def __call__(self, batch: RewardBatch) -> RewardOutput:
        """``r = sum_i w_i r_i`` with components ``{name_i: w_i r_i}``."""
        components = {}
        for name, model in self.children.items():
            reward, weight = _reward_of(model, batch, name), self.weights[name]
            # Weights of 1 (the default) skip the multiply: a vector step is a few microseconds.
            components[name] = reward if weight == 1.0 else weight * reward
        # Add in order, as np.sum(..., axis=0) would, without stacking the components.
        summands = iter(components.values())
        reward = next(summands).copy()
        for value in summands:
            reward += value
        return RewardOutput(reward, components)


class Product(_Composite):
    """Product of child rewards (VLM-RL's hierarchical synthesis): ``r = prod_i r_i``.

    The factors multiply, so :meth:`__call__` reports no components; :meth:`evaluate` also
    returns the factors by name.

    Args:
        children: Child models by name (at least one), e.g. a speed reward and ``[0, 1]``
            centering, heading and stability factors.

    Raises:
        ValueError: No children.
    """

    def __init__(self, children: Mapping[str, RewardModel]) -> None:
        self.children = _check_children(children, "Product")
        self.needs_frames, self.needs_info = _union_needs(self.children.values())

    def _parts(self) -> Mapping[str, RewardModel]:
        return self.children

    def evaluate(self, batch: RewardBatch) -> tuple[RewardOutput, dict[str, np.ndarray]]:
        """The reward ``prod_i r_i`` and the factors ``{name_i: r_i}``."""
        factors = {name: _reward_of(model, batch, name) for name, model in self.children.items()}
        return RewardOutput(np.prod(list(factors.values()), axis=0)), factors

    def __call__(self, batch: RewardBatch) -> RewardOutput:
        """``r = prod_i r_i`` (no components: factors do not sum)."""
        return self.evaluate(batch)[0]


class PenaltyFactors(_Composite):
    """A base reward times penalty factors, with terminal overrides (CaRL, Jaeger et al. 2025).

    ``r = base * prod_j f_j``; then, on every row where ``batch.info[k]`` is true for an
    override key ``k``, ``r = terminal_overrides[k]`` (hard penalties override). When several
    keys hold on one row the first key in ``terminal_overrides`` wins: list the most severe
    first. Overrides apply wherever the flag holds, whether or not the row ``terminated``
    (ending the episode is the env's decision).

    The reward is a product, so :meth:`__call__` reports no components; :meth:`evaluate`
    also returns the factors (``"base"`` and each penalty factor) before any override.

    Args:
        base: The one reward term, e.g. route completion.
        factors: Penalty factors by name (typically in ``[0, 1]``): reward models, or plain
            functions ``fn(batch) -> (B,)`` (wrap those in :class:`FunctionReward` to declare
            what they read). May be empty. ``"base"`` is reserved.
        terminal_overrides: ``{info_key: reward}``: the reward that replaces ``r`` where
            ``batch.info[info_key]`` is true. The keys join :attr:`needs_info`.

    Raises:
        ValueError: A factor named ``"base"`` or a non-finite override value.
    """

    def __init__(
        self,
        base: RewardModel,
        factors: Mapping[str, RewardModel | Callable[[RewardBatch], np.ndarray]] | None = None,
        terminal_overrides: Mapping[str, float] | None = None,
    ) -> None:
        self.base = _check_model(base, "base")
        factors = dict(factors or {})
        if "base" in factors:
            raise ValueError("factor name 'base' is reserved for the base reward; rename it")
        self.factors = {
            name: f if isinstance(f, RewardModel) else FunctionReward(f)
            for name, f in factors.items()
        }
        if self.factors:
            _check_children(self.factors, "PenaltyFactors")
        self.terminal_overrides = {
            key: _check_finite(value, f"terminal override for {key!r}")
            for key, value in (terminal_overrides or {}).items()
        }
        frames, keys = _union_needs([self.base, *self.factors.values()])
        self.needs_frames = frames
        self.needs_info = tuple(dict.fromkeys([*keys, *self.terminal_overrides]))

    def _parts(self) -> Mapping[str, RewardModel]:
        return {"base": self.base, **self.factors}

    def evaluate(self, batch: RewardBatch) -> tuple[RewardOutput, dict[str, np.ndarray]]:
        """The overridden reward and the factors ``{"base": base, name_j: f_j}``."""
        factors = {"base": _reward_of(self.base, batch, "base")}
        factors.update(
            {name: _reward_of(model, batch, name) for name, model in self.factors.items()}
        )
        reward = np.prod(list(factors.values()), axis=0)
        # Reverse order so the first listed key is applied last and wins.
        for key, value in reversed(self.terminal_overrides.items()):
            if key not in batch.info:
                raise KeyError(
                    f"batch.info has no terminal-override flag {key!r} (has {sorted(batch.info)})"
                )
            flag = np.asarray(batch.info[key], dtype=bool)
            if flag.shape != (len(batch),):
                raise ValueError(f"info[{key!r}] has shape {flag.shape}, expected ({len(batch)},)")
            reward = np.where(flag, value, reward)
        return RewardOutput(reward), factors

    def __call__(self, batch: RewardBatch) -> RewardOutput:
        """``r = base * prod_j f_j``, replaced by the override value on flagged rows."""
        return self.evaluate(batch)[0]


class Clamp(_Composite):
    """A child's reward clamped to a range: ``r = clip(r_child, low, high)``.

    Clamping is not linear, so no components are reported.

    Args:
        model: The child model.
        low: Lower bound (may be ``-inf``).
        high: Upper bound (may be ``inf``), at least ``low``.

    Raises:
        ValueError: ``low > high`` or a NaN bound.
    """

    def __init__(self, model: RewardModel, low: float, high: float) -> None:
        self.model = _check_model(model, "model")
        low, high = float(low), float(high)
        if math.isnan(low) or math.isnan(high) or low > high:
            raise ValueError(f"Clamp needs low <= high, got low={low}, high={high}")
        self.low, self.high = low, high
        self.needs_frames, self.needs_info = model.needs_frames, tuple(model.needs_info)

    def __call__(self, batch: RewardBatch) -> RewardOutput:
        """``r = clip(r_child, low, high)``."""
        return RewardOutput(np.clip(_reward_of(self.model, batch, "model"), self.low, self.high))


class Affine(_Composite):
    """A child's reward rescaled: ``r = scale * r_child + shift``.

    When the child reports components, they are forwarded times ``scale`` together with a
    ``"shift"`` component (all rows ``shift``), so they still sum to the reward.

    Args:
        model: The child model.
        scale: Finite, non-zero multiplier.
        shift: Finite offset.

    Raises:
        ValueError: ``scale == 0`` or a non-finite ``scale`` or ``shift``.
    """

    def __init__(self, model: RewardModel, scale: float = 1.0, shift: float = 0.0) -> None:
        self.model = _check_model(model, "model")
        self.scale = _check_finite(scale, "scale")
        if self.scale == 0.0:
            raise ValueError(f"scale must be non-zero (it would erase the reward), got {scale}")
        self.shift = _check_finite(shift, "shift")
        self.needs_frames, self.needs_info = model.needs_frames, tuple(model.needs_info)

    def __call__(self, batch: RewardBatch) -> RewardOutput:
        """``r = scale * r_child + shift``, components ``scale * c_k`` and ``"shift"``."""
        out = self.model(batch)
        reward = np.asarray(out.reward, dtype=np.float64)
        if reward.shape != (len(batch),):
            raise ValueError(
                f"child 'model' returned rewards of shape {reward.shape}, expected ({len(batch)},)"
            )
        components: dict[str, np.ndarray] = {}
        if out.components:
            if "shift" in out.components:
                raise ValueError(
                    "the child reports a component named 'shift', which Affine uses for its "
                    "offset; rename the child's component"
                )
            components = {
                k: self.scale * np.asarray(v, dtype=np.float64) for k, v in out.components.items()
            }
            components["shift"] = np.full(len(batch), self.shift)
        return RewardOutput(self.scale * reward + self.shift, components)


class RunningNorm(_Composite):
    """A child's reward normalized by running statistics of every reward seen.

    ``r = (r_child - mean) / sqrt(var + epsilon)``, then clipped to ``[-clip, clip]`` when
    ``clip`` is set. ``mean`` and ``var`` (population variance, ``ddof=0``) cover all rewards
    seen so far **including this batch**: each call first merges the batch into the
    statistics (Chan et al.'s parallel variance update) unless :attr:`update` is False.
    Set ``update = False`` to freeze the statistics for evaluation. Before any update,
    ``mean = 0`` and ``var = 1``. Not linear in the child's components, so none are reported.

    Args:
        model: The child model.
        epsilon: Positive constant added to the variance.
        clip: Positive bound on the normalized reward, or None for no clipping.
        update: Whether calls update the statistics.

    Raises:
        ValueError: ``epsilon <= 0`` or ``clip <= 0``.
    """

    def __init__(
        self,
        model: RewardModel,
        epsilon: float = 1e-8,
        clip: float | None = None,
        update: bool = True,
    ) -> None:
        self.model = _check_model(model, "model")
        self.epsilon = _check_finite(epsilon, "epsilon")
        if self.epsilon <= 0.0:
            raise ValueError(f"epsilon must be > 0, got {epsilon}")
        if clip is not None and not float(clip) > 0.0:
            raise ValueError(f"clip must be > 0 or None, got {clip}")
        self.clip = None if clip is None else float(clip)
        self.update = bool(update)
        self.count = 0
        self.mean = 0.0
        self.var = 1.0
        self.needs_frames, self.needs_info = model.needs_frames, tuple(model.needs_info)

    def _merge(self, x: np.ndarray) -> None:
        if not np.all(np.isfinite(x)):
            raise ValueError("RunningNorm got non-finite rewards; they would corrupt its stats")
        n = x.size
        if n == 0:
            return
        b_mean, b_var = float(x.mean()), float(x.var())
        if self.count == 0:
            self.count, self.mean, self.var = n, b_mean, b_var
            return
        total = self.count + n
        delta = b_mean - self.mean
        m2 = self.var * self.count + b_var * n + delta**2 * self.count * n / total
        self.mean += delta * n / total
        self.var = m2 / total
        self.count = total

    def __call__(self, batch: RewardBatch) -> RewardOutput:
        """``r = clip((r_child - mean) / sqrt(var + epsilon))`` after merging the batch."""
        reward = _reward_of(self.model, batch, "model")
        if self.update:
            self._merge(reward)
        normalized = (reward - self.mean) / math.sqrt(self.var + self.epsilon)
        if self.clip is not None:
            normalized = np.clip(normalized, -self.clip, self.clip)
        return RewardOutput(normalized)

    def state_dict(self) -> dict[str, float]:
        """The statistics ``{"count", "mean", "var"}`` for a checkpoint."""
        return {"count": self.count, "mean": self.mean, "var": self.var}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        """Restore statistics saved by :meth:`state_dict`.

        Raises:
            ValueError: Missing or extra keys, a negative or fractional count, a negative
                variance, or non-finite values.
        """
        if set(state) != {"count", "mean", "var"}:
            raise ValueError(f"state must have keys count, mean, var; got {sorted(state)}")
        count = float(state["count"])
        mean = _check_finite(state["mean"], "state mean")
        var = _check_finite(state["var"], "state var")
        if not (count >= 0 and count == int(count)):
            raise ValueError(f"state count must be a non-negative integer, got {state['count']}")
        if var < 0:
            raise ValueError(f"state var must be >= 0, got {var}")
        self.count, self.mean, self.var = int(count), mean, var


def __getattr__(name: str) -> Any:
    if name == "Clip":  # deprecated alias (a clamp, not CLIP); removed in the next release
        warnings.warn("Clip is renamed Clamp; use Clamp", DeprecationWarning, stacklevel=2)
        return Clamp
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
