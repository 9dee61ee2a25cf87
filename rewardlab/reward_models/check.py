"""Check a reward model against the :class:`~rewardlab.reward_models.base.RewardModel`
contract, as Gymnasium's ``check_env`` checks an env: run your own model through
:func:`check_reward_model` on a batch of real transitions before training with it. It raises
:class:`RewardModelCheckError` on a broken rule and warns about what is only suspicious.

- **Types**: a ``RewardModel``; ``needs_frames`` a bool; ``needs_info`` a tuple of str, every
  key of it in ``batch.info``; ``batch.frames`` present when ``needs_frames``.
- **Output** (of every call): a ``RewardOutput`` whose reward and components are finite numpy
  arrays of shape ``(B,)`` of an integer or floating dtype (a reward is a real number: bool,
  complex and object arrays are refused); components, when present, sum to the reward
  (``np.allclose``, numpy's default ``rtol=1e-5, atol=1e-8``) unless ``components_sum=False``.
- **No mutation**: the batch's arrays are unchanged after a call (the caller reuses them).
- **Determinism**: the same batch twice gives the same reward and components.
- **Batch independence**: each row alone (a batch of 1), and the rows in reverse order, get
  the values they get in the batch as given.
- **Diagnostics**: ``diagnostics()`` returns a dict that ``json.dumps(allow_nan=False)`` takes.

The model is not closed: the caller owns it.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from rewardlab.reward_models.base import RewardBatch, RewardModel, RewardOutput

__all__ = [
    "Difference",
    "RewardModelCheckError",
    "check_reward_model",
    "first_difference",
    "take_rows",
]

RTOL, ATOL = 1e-9, 1e-12
"""Default tolerance of the determinism and batch-independence comparisons: equal up to numpy
summing in another order."""


class RewardModelCheckError(ValueError):
    """A reward model broke its contract; the message says what and how to fix it.

    Attributes:
        reason: ``"type"``, ``"exception"`` (the model raised; the exception is the
            ``__cause__``), ``"output"``, ``"components"``, ``"mutation"``, ``"diagnostics"``,
            ``"nondeterministic"`` or ``"batch_dependent"``.
        batch_size: Rows of the call that failed (None where no call failed).
    """

    def __init__(self, reason: str, message: str, batch_size: int | None = None) -> None:
        super().__init__(message)
        self.reason, self.batch_size = reason, batch_size


class Difference(NamedTuple):
    """Where two outputs differ: the output (``"reward"`` or ``"component 'name'"``), the
    position in the output compared, its value there and the expected one."""

    what: str
    row: int
    value: float
    expected: float


def take_rows(batch: RewardBatch, rows: Sequence[int] | np.ndarray) -> RewardBatch:
    """A new batch of ``batch``'s rows ``rows`` (copies, in that order)."""
    rows = np.asarray(rows, dtype=np.intp)
    arrays = (batch.obs, batch.action, batch.next_obs, batch.terminated)
    obs, action, next_obs, terminated = (a[rows] for a in arrays)
    frames = None if batch.frames is None else batch.frames[rows]
    info = {key: np.asarray(value)[rows] for key, value in batch.info.items()}
    return RewardBatch(obs, action, next_obs, terminated, frames, info)


def first_difference(
    output: RewardOutput,
    reference: RewardOutput,
    rows: Sequence[int] | np.ndarray | None = None,
    *,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> Difference | None:
    """The first value where ``output``, of a call on the rows ``rows`` of ``reference``'s
    batch (None: all, in order), differs from ``reference``: the reward first, then the
    components by name (both outputs must have the same names). None when all agree."""
    index = slice(None) if rows is None else np.asarray(rows, dtype=np.intp)
    pairs = [("reward", output.reward, reference.reward)]
    pairs += [
        (f"component {name!r}", output.components[name], reference.components[name])
        for name in sorted(reference.components)
    ]
    for what, got, full in pairs:
        expected = np.asarray(full)[index]
        close = np.isclose(got, expected, rtol=rtol, atol=atol)
        if not close.all():
            row = int(np.flatnonzero(~close)[0])
            return Difference(what, row, float(got[row]), float(expected[row]))
    return None


def _snapshot(batch: RewardBatch) -> dict[str, np.ndarray]:
    arrays = {name: getattr(batch, name) for name in ("obs", "action", "next_obs", "terminated")}
    arrays.update({"frames": batch.frames} if batch.frames is not None else {})
    arrays.update({f"info[{key!r}]": value for key, value in batch.info.items()})
    return {name: np.array(value, copy=True) for name, value in arrays.items()}


def _require(ok: Any, reason: str, message: str, batch_size: int | None = None) -> None:
    if not ok:
        raise RewardModelCheckError(reason, message, batch_size)


def _array_problem(value: Any, n: int) -> str | None:
    """What is wrong with a reward or component array of a batch of ``n`` rows (None: ok)."""
    if not isinstance(value, np.ndarray):
        return f"is a {type(value).__name__}, not a numpy array: return np.asarray(...)"
    if value.dtype.kind not in "iuf":
        return (
            f"has dtype {value.dtype}; a reward is a real number: return an integer or floating "
            "array (e.g. .astype(np.float64))"
        )
    if value.shape != (n,):
        return (
            f"has shape {value.shape}, expected ({n},): one value per row (no squeeze that "
            "drops the batch axis of a batch of 1)"
        )
    bad = np.flatnonzero(~np.isfinite(value))
    if bad.size:
        return (
            f"is {value[bad[0]]} at row {bad[0]}; rewards must be finite (guard against "
            "division by zero, log of 0, overflow in exp)"
        )
    return None


def _call(model: RewardModel, batch: RewardBatch, how: str, components_sum: bool) -> RewardOutput:
    """``model(batch)``, its output checked; ``how`` names the call in messages."""
    n = len(batch)
    try:
        out = model(batch)
    except Exception as exc:
        message = f"the model raised {type(exc).__name__}: {exc} (called {how})"
        raise RewardModelCheckError("exception", message, n) from exc
    what = type(out).__name__
    _require(isinstance(out, RewardOutput), "output", f"the model returned a {what} {how}", n)
    arrays = {f"component {name!r}": value for name, value in out.components.items()}
    for what, value in {"the reward": out.reward, **arrays}.items():
        problem = _array_problem(value, n)
        _require(problem is None, "output", f"{what} {how} {problem}", n)
    if components_sum and out.components:
        total = np.sum(list(out.components.values()), axis=0)
        row = int(np.argmin(np.isclose(total, out.reward)))  # the first row that differs
        _require(
            np.allclose(total, out.reward),
            "components",
            f"the components {sorted(out.components)} sum to {total[row]:.6g} at row {row} "
            f"{how}, the reward is {out.reward[row]:.6g}: add the missing term as a component, "
            "or report none (components must sum to the reward)",
            n,
        )
    return out


_AGAIN = "on the same batch again"
_FIXES = {
    "nondeterministic": "the model is not deterministic: a reward must be a function of the "
    "batch alone (no random numbers, clock or state kept between calls); check a model that "
    "keeps state on purpose (RunningNorm) with deterministic=False",
    "batch_dependent": "it depends on the other rows of the batch: compute each row from its "
    "own transition only, nothing that depends on the batch size or on the other rows (no "
    "mean, max, sum or normalization over the batch axis 0)",
}


def _agree(
    output: RewardOutput, reference: RewardOutput, rows: np.ndarray, how: str, **tol: float
) -> None:
    """Raise where ``output``, of a call ``how`` on ``reference``'s ``rows``, differs from it."""
    names, expected = sorted(output.components), sorted(reference.components)
    message = f"the model returned the components {names} {how} and {expected} on the batch"
    _require(names == expected, "components", message + ": return the same names always")
    found = first_difference(output, reference, rows, **tol)
    if found is None:
        return
    again = how == _AGAIN
    reason = "nondeterministic" if again else "batch_dependent"
    where = "the first time" if again else f"in the batch of {len(reference.reward)} as given"
    fix = _FIXES[reason]
    if np.isclose(found.value, found.expected):  # numpy's float32-sized tolerance
        fix += "; the two differ by rounding only: for a float32 model, pass rtol=1e-5"
    raise RewardModelCheckError(
        reason,
        f"the {found.what} of row {rows[found.row]} is {found.value:.6g} {how} and "
        f"{found.expected:.6g} {where}: {fix}",
        len(rows),
    )


def check_reward_model(
    model: RewardModel,
    batch: RewardBatch,
    *,
    deterministic: bool = True,
    components_sum: bool = True,
    rows_alone: int | None = None,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> RewardOutput:
    """Check ``model`` on ``batch`` against the reward-model contract (see the module
    docstring); the model is called ``B + 3`` times (once with ``deterministic=False``, and
    ``rows_alone + 3`` times with ``rows_alone``).

    Args:
        model: The model to check.
        batch: Real transitions with every key the model reads; two rows at least for the
            batch-independence check to mean anything.
        deterministic: Check determinism and batch independence (False for a model that
            keeps state on purpose, such as a ``RunningNorm`` updating its statistics; or
            freeze it, ``update=False``).
        components_sum: Check that the components sum to the reward (False for a model whose
            components are a breakdown that need not add up, such as a reward program's).
        rows_alone: How many rows (the first) to call alone, where a call is costly (None:
            every row).
        rtol: Relative tolerance of the determinism and batch-independence comparisons; a
            float32 model (a network) may round differently at another batch size: pass 1e-5.
        atol: Their absolute tolerance.

    Returns:
        The model's output on ``batch``.

    Raises:
        RewardModelCheckError: Naming the first broken rule and how to fix it.
    """
    _require(
        isinstance(model, RewardModel),
        "type",
        f"expected a RewardModel, got {type(model).__name__}: subclass "
        "rewardlab.reward_models.RewardModel (or wrap a function in FunctionReward)",
    )
    _require(
        isinstance(batch, RewardBatch),
        "type",
        f"expected a RewardBatch, got {type(batch).__name__}",
    )
    flag, keys = model.needs_frames, model.needs_info
    _require(isinstance(flag, bool), "type", f"needs_frames must be a bool, got {flag!r}")
    _require(
        isinstance(keys, tuple) and all(isinstance(k, str) for k in keys),
        "type",
        f"needs_info must be a tuple of str (the info keys the model reads), got {keys!r}",
    )
    missing = [k for k in keys if k not in batch.info]
    _require(
        not missing,
        "type",
        f"batch.info lacks the keys {missing} of needs_info (it has {sorted(batch.info)}): "
        "pass a batch from an env that reports them, or correct needs_info",
    )
    _require(
        not flag or batch.frames is not None,
        "type",
        "the model needs frames (needs_frames=True) and batch.frames is None: pass the "
        "(B, H, W, 3) uint8 frames of next_obs",
    )
    n = len(batch)
    _require(n > 0, "type", "the batch has no rows: pass two or more")
    if n == 1 and deterministic:
        warnings.warn("a batch of 1 row cannot show batch dependence: pass two", stacklevel=2)
    before = _snapshot(batch)
    calls = []
    for how in ("on the batch as given", _AGAIN)[: 1 + deterministic]:
        calls.append(_call(model, batch, how, components_sum))
        for name, after in _snapshot(batch).items():
            old = before[name]
            _require(
                old.shape == after.shape and np.array_equal(old, after, old.dtype.kind in "fc"),
                "mutation",
                f"the model changed batch.{name} in place (called {how}); the caller reuses "
                "the batch's arrays (the next step's obs, other models' inputs): compute on "
                "copies (x = x.copy(), or out-of-place operations such as x = x * 2)",
            )
    output = calls[0]
    if deterministic:
        _agree(calls[1], output, np.arange(n), _AGAIN, rtol=rtol, atol=atol)
        for i in range(n if rows_alone is None else min(n, rows_alone)):
            alone = _call(model, take_rows(batch, [i]), f"on row {i} alone", components_sum)
            _agree(alone, output, np.array([i]), "alone (a batch of 1)", rtol=rtol, atol=atol)
        back, how = np.arange(n)[::-1], "with the batch's rows in reverse order"
        reverse = _call(model, take_rows(batch, back), how, components_sum)
        _agree(reverse, output, back, how, rtol=rtol, atol=atol)
    diagnostics = model.diagnostics()
    try:
        if not isinstance(diagnostics, dict):
            raise TypeError(f"it returned a {type(diagnostics).__name__}, not a dict")
        json.dumps(diagnostics, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RewardModelCheckError(
            "diagnostics",
            f"diagnostics() must return a dict of plain JSON data (str, int, finite float, "
            f"bool, None, lists, dicts): {exc}; convert numpy values with float(), int() or "
            ".tolist()",
        ) from exc
    return output
