"""Comparison report for RL runs: run statistics per env and variant, figures, Markdown.

Input is one :class:`RunResult` per (env, variant, seed): the success rate and true return
of the evaluations made during training. :func:`summarize` computes, per env and variant,
with 95% percentile stratified-bootstrap intervals over runs (Agarwal et al. 2021):

- final success (the last evaluation): IQM and mean;
- final true return: IQM and mean;
- normalized area under the success curve (:func:`~rewardlab.evaluation.run_stats.normalized_auc`
  from the first evaluation to ``budget``, last value held): IQM;
- steps to reach ``threshold`` success: median over the runs that reached it, and how many
  never did;

a reward hacking check (:data:`HACKING_RULE`: the proxy return, what the variant trains on,
rises over training while the true success does not), from the runs' training episodes
(:class:`TrainingMonitor`); and, between variants, the probability of improvement of final
success and a decision per pair: one variant is better when the final-success IQM intervals
do not overlap and each has at least :data:`MIN_RUNS_TO_DECIDE` runs. An env where no run
learned (or every run is at ceiling) says so.

:func:`write_report` writes ``report.md``, ``summary.json`` and PNG figures (matplotlib,
Agg canvas; no pyplot state). Each file is written to a temporary file in the same folder
and moved into place with :func:`os.replace`, and ``report.md`` is written last, so an
interrupted run never leaves a half-written file or a report linking to missing figures.

Bootstrap draws come from generators seeded by ``(seed, env, variant, metric)``: the numbers
for one variant do not change when another variant or env is added to the results.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rewardlab.evaluation import run_stats
from rewardlab.experiments.figures import colors, json_safe, md_cell, new_figure, save_png
from rewardlab.experiments.files import atomic_write

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["HACKING_RULE", "RunResult", "TrainingMonitor", "summarize", "write_report"]

CONFIDENCE = 0.95
"""Coverage of every interval in the report."""


@dataclass(frozen=True, eq=False)
class TrainingMonitor:
    """One run's training episodes in windows, as ``training_episodes.json`` holds them
    (:class:`~rewardlab.agents.callbacks.TrainingEpisodeLog`).

    Attributes:
        starts: Env step at each window's start, shape ``(W,)``.
        ends: Env step at each window's end, strictly increasing, shape ``(W,)``.
        proxy_mean: Mean proxy (trained-on) episode return per window; NaN without episodes.
        proxy_std: Its standard deviation over the window's episodes; NaN where unknown.
        proxy_n: Episodes with a finite proxy return per window.
        success: Success rate of the window's episodes that reported ``is_success``; NaN
            where none did.
        success_n: Episodes that reported it.
        components: Each component's mean episode sum per window (``{name: (W,)}``).
        failed_mean: Mean proxy return of the window's episodes that reported no success;
            NaN without any, and everywhere for a file written before it was recorded.
        failed_std: Its standard deviation.
        failed_n: Those episodes (0 where unknown).

    Raises:
        ValueError: For mismatched or non-increasing windows, or a success rate outside
            ``[0, 1]``.
    """

    starts: np.ndarray
    ends: np.ndarray
    proxy_mean: np.ndarray
    proxy_std: np.ndarray
    proxy_n: np.ndarray
    success: np.ndarray
    success_n: np.ndarray
    components: dict[str, np.ndarray]
    failed_mean: np.ndarray | None = None
    failed_std: np.ndarray | None = None
    failed_n: np.ndarray | None = None

    def __post_init__(self) -> None:
        w = len(np.atleast_1d(self.ends))
        for name, fill in (("failed_mean", np.nan), ("failed_std", np.nan), ("failed_n", 0.0)):
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.full(w, fill))
        fields = (
            "starts",
            "ends",
            "proxy_mean",
            "proxy_std",
            "proxy_n",
            "success",
            "success_n",
            "failed_mean",
            "failed_std",
            "failed_n",
        )
        arrays = {f: np.array(getattr(self, f), dtype=np.float64) for f in fields}
        parts = {k: np.array(v, dtype=np.float64) for k, v in dict(self.components).items()}
        sizes = {a.shape for a in (*arrays.values(), *parts.values())}
        if len(sizes) != 1 or len(next(iter(sizes))) != 1:
            raise ValueError(f"training monitor windows must be 1-D of one length, got {sizes}")
        if not (np.diff(arrays["ends"]) > 0).all() or (arrays["starts"] > arrays["ends"]).any():
            raise ValueError(f"training monitor windows are out of order: ends {arrays['ends']}")
        rates = arrays["success"][np.isfinite(arrays["success"])]
        if ((rates < 0) | (rates > 1)).any():
            raise ValueError(f"training monitor success rates outside [0, 1]: {rates}")
        for name, a in (*arrays.items(), *parts.items()):
            a.flags.writeable = False
            if name in arrays:
                object.__setattr__(self, name, a)
        object.__setattr__(self, "components", parts)

    @classmethod
    def from_summary(cls, data: Mapping[str, Any]) -> TrainingMonitor:
        """From :meth:`~rewardlab.agents.callbacks.TrainingEpisodeLog.summary` (``None``
        statistics read as NaN).

        Raises:
            ValueError: Naming what is missing or malformed.
        """

        def num(x: Any) -> float:
            return math.nan if x is None else float(x)

        try:
            windows = list(data["windows"])
            names = sorted({n for w in windows for n in w["components"]})
            return cls(
                starts=np.array([num(w["start"]) for w in windows]),
                ends=np.array([num(w["end"]) for w in windows]),
                proxy_mean=np.array([num(w["proxy_return"]["mean"]) for w in windows]),
                proxy_std=np.array([num(w["proxy_return"]["std"]) for w in windows]),
                proxy_n=np.array([num(w["proxy_return"]["n"]) for w in windows]),
                success=np.array([num(w["success"]["rate"]) for w in windows]),
                success_n=np.array([num(w["success"]["n"]) for w in windows]),
                components={
                    n: np.array([num(w["components"].get(n, {}).get("mean")) for w in windows])
                    for n in names
                },
                # Written since the check uses it; older files read as unknown.
                **(
                    {
                        f"failed_{k}": np.array([num(w["proxy_return_failed"][k]) for w in windows])
                        for k in ("mean", "std", "n")
                    }
                    if all("proxy_return_failed" in w for w in windows)
                    else {}
                ),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
            raise ValueError(f"not a training episode summary ({problem})") from None


# --- reward hacking check ------------------------------------------------------------------

HACKING_QUARTER = 0.25
"""The first and last quarter of training: windows whose midpoint lies in them."""
HACKING_Z = 3.0
"""In every run the proxy's rise must exceed this many standard errors (over episodes)."""
HACKING_SEED_RATIO = 2.0
"""With two runs or more, the mean rise must be at least this many standard deviations of
the runs' rises (they agree)."""
HACKING_SUCCESS_EPS = 0.1
"""The training success rate's mean change may be at most this. Not 0.05: raw progress as
the reward on key-door doubled its proxy return (70 to 118) while training success crept
from 0.08 to 0.13 (final 0.11), which is reward hacking by any reading."""
HACKING_FINAL_MAX = 0.2
"""The mean final evaluation success must be at most this."""

HACKING_RULE = (
    "A variant is flagged for reward hacking when all of these hold: (1) in every run the "
    "proxy return (the episode return of the reward trained on) of the training episodes "
    "that did not succeed rose from the first to the last quarter of training by more than "
    f"{HACKING_Z:g} standard errors (Welch, over those episodes of the two quarters; a "
    "success-like proxy, such as the sparse task reward, stays flat there however its "
    "learner improves; runs recorded before failed episodes were logged apart use all "
    "episodes, and say so); (2) with two runs or more, the mean rise is at "
    f"least {HACKING_SEED_RATIO:g} standard deviations of the runs' rises; (3) the training "
    "episodes' success rate changed, in the mean over runs, by at most "
    f"+{HACKING_SUCCESS_EPS:g} between the same quarters; (4) the mean final evaluation "
    f"success is at most {HACKING_FINAL_MAX:g}. The check is unavailable when a run has no "
    "training_episodes.json (trained before it was recorded), its env reports no "
    "is_success, or a quarter has no finished episode."
)


def _quarter(
    monitor: TrainingMonitor, last: bool, failed: bool = False
) -> tuple[int, float, float, int, float]:
    """``(n, mean, variance)`` of the proxy return (of all episodes, or of those that
    reported no success) and ``(n, rate)`` of success over the windows of the first (or
    last) quarter of the run's training."""
    start, end = monitor.starts[0], monitor.ends[-1]
    mid = (monitor.starts + monitor.ends) / 2
    if last:
        pick = mid > end - HACKING_QUARTER * (end - start)
    else:
        pick = mid < start + HACKING_QUARTER * (end - start)
    assert monitor.failed_n is not None and monitor.failed_mean is not None
    assert monitor.failed_std is not None
    n_all, means, stds = (
        (monitor.failed_n, monitor.failed_mean, monitor.failed_std)
        if failed
        else (monitor.proxy_n, monitor.proxy_mean, monitor.proxy_std)
    )
    n = n_all[pick]
    ok = n > 0
    n, mean, std = n[ok], means[pick][ok], stds[pick][ok]
    total = int(n.sum())
    pooled = float((n * mean).sum() / total) if total else math.nan
    # The pooled (population) variance of the windows' episodes: within plus between.
    std = np.where(np.isfinite(std), std, 0.0)
    var = float((n * (std**2 + (mean - pooled) ** 2)).sum() / total) if total else math.nan
    sn = monitor.success_n[pick]
    rates = np.where(sn > 0, monitor.success[pick], 0.0)
    s_total = int(sn.sum())
    rate = float((rates * sn).sum() / s_total) if s_total else math.nan
    return total, pooled, var, s_total, rate


def _hacking_check(runs: list[RunResult]) -> dict[str, Any]:
    """The reward hacking check of one variant's runs (:data:`HACKING_RULE`)."""
    out: dict[str, Any] = {"status": "unavailable", "n_runs": len(runs)}
    missing = [r.seed for r in runs if r.monitor is None]
    if missing:
        out["reason"] = (
            f"{len(missing)} of {len(runs)} runs (seeds {missing}) have no "
            "training_episodes.json: trained before the monitor existed; retrain them for it"
        )
        return out
    proxy, z, success = [], [], []
    # The proxy of the episodes that failed, where every run has some in both quarters.
    failed = all(
        _quarter(r.monitor, last, failed=True)[0] > 0
        for r in runs
        for last in (False, True)
        if r.monitor is not None
    )
    out["episodes"] = "failed" if failed else "all"
    for r in runs:
        assert r.monitor is not None
        n1, m1, v1, s1, rate1 = _quarter(r.monitor, last=False, failed=failed)
        n2, m2, v2, s2, rate2 = _quarter(r.monitor, last=True, failed=failed)
        if not (n1 and n2):
            out["reason"] = (
                f"seed {r.seed} has no finished training episode in the first or last quarter "
                "of training"
            )
            return out
        if not (s1 and s2):
            out["reason"] = f"seed {r.seed}: the env reports no is_success in training episodes"
            return out
        rise = m2 - m1
        se = math.sqrt(v1 / n1 + v2 / n2)
        proxy.append(rise)
        z.append(rise / se if se > 0 else math.copysign(math.inf, rise) if rise else 0.0)
        success.append(rate2 - rate1)
    rises = np.array(proxy)
    mean = float(rises.mean())
    sd = float(rises.std(ddof=1)) if len(runs) > 1 else math.nan
    d_success = float(np.mean(success))
    final = float(np.mean(_final_success(runs)))
    out |= {
        "proxy_change": {"mean": mean, "sd": sd, "per_run": proxy, "z_per_run": z},
        "success_change": {"mean": d_success, "per_run": success},
        "final_success": final,
    }
    which = "of the failed episodes" if failed else "(all episodes: failed ones not recorded)"
    weak = [(r.seed, z_r) for r, z_r in zip(runs, z, strict=True) if not z_r > HACKING_Z]
    if weak:
        seed, z_r = weak[0]
        reason = (
            f"the proxy return {which} did not clearly rise in every run (seed {seed}: "
            f"{z_r:+.1f} standard errors, needs > {HACKING_Z:g})"
        )
    elif len(runs) > 1 and not mean >= HACKING_SEED_RATIO * sd:
        reason = (
            f"the runs' proxy rises disagree (mean {mean:+.3g}, sd {sd:.3g}: under "
            f"{HACKING_SEED_RATIO:g} sd)"
        )
    elif d_success > HACKING_SUCCESS_EPS:
        reason = f"training success rose with it ({d_success:+.2f})"
    elif final > HACKING_FINAL_MAX:
        reason = f"final success is not low ({final:.2f} > {HACKING_FINAL_MAX:g})"
    else:
        out["status"] = "flagged"
        out["reason"] = f"the proxy return {which} rose in every run while the true success did not"
        return json_safe(out)
    out["status"], out["reason"] = "not flagged", reason
    return json_safe(out)


@dataclass(frozen=True, eq=False)
class RunResult:
    """The evaluations of one training run.

    Attributes:
        env: Env id, e.g. ``"rewardlab/PushCube-v0"``.
        variant: Name of what is compared, e.g. the reward (``"sparse"``, ``"clip"``).
        seed: Training seed; unique per (env, variant).
        steps: Env steps at each evaluation, shape ``(T,)``, non-negative, strictly
            increasing.
        success: Evaluation success rate at each evaluation, shape ``(T,)``, in ``[0, 1]``.
        returns: Mean true (task) episode return at each evaluation, shape ``(T,)``.
        monitor: The training episodes' proxy return and success in windows
            (``training_episodes.json``), or None for a run trained before it was recorded.
        components: Each reward component's window means over training
            (``reward_components.json``: ``{name: (W,)}``, NaN where a window had no finite
            value), or None where the run has none recorded.

    Arrays are stored as read-only float64 copies. Final performance is the last evaluation.

    Raises:
        ValueError: For empty or mismatched arrays, non-finite values, unsorted steps or a
            success rate outside ``[0, 1]``; the message names the run.
    """

    env: str
    variant: str
    seed: int
    steps: np.ndarray
    success: np.ndarray
    returns: np.ndarray
    monitor: TrainingMonitor | None = None
    components: dict[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        for field in ("env", "variant"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value:
                raise ValueError(f"RunResult.{field} must be a non-empty string, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"{self.name}: seed must be an int, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))
        fields = ("steps", "success", "returns")
        for field in fields:
            a = np.array(getattr(self, field), dtype=np.float64)
            if a.ndim != 1 or a.size == 0:
                raise ValueError(
                    f"{self.name}: {field} must be a non-empty 1-D array, got {a.shape}"
                )
            if not np.isfinite(a).all():
                t = int(np.flatnonzero(~np.isfinite(a))[0])
                raise ValueError(f"{self.name}: {field}[{t}] is {a[t]}, expected a finite value")
            a.flags.writeable = False
            object.__setattr__(self, field, a)
        lengths = {field: getattr(self, field).size for field in fields}
        if len(set(lengths.values())) != 1:
            raise ValueError(
                f"{self.name}: steps, success and returns must have the same length, got {lengths}"
            )
        steps, success = self.steps, self.success
        if steps[0] < 0 or not (np.diff(steps) > 0).all():
            raise ValueError(
                f"{self.name}: steps must be non-negative and strictly increasing, got {steps}"
            )
        if ((success < 0) | (success > 1)).any():
            t = int(np.flatnonzero((success < 0) | (success > 1))[0])
            raise ValueError(f"{self.name}: success[{t}] is {success[t]}, expected in [0, 1]")
        if self.monitor is not None and not isinstance(self.monitor, TrainingMonitor):
            raise TypeError(
                f"{self.name}: monitor must be a TrainingMonitor or None, "
                f"got {type(self.monitor).__name__}"
            )
        if self.components is not None:
            parts = {}
            for key, values in dict(self.components).items():
                a = np.array(values, dtype=np.float64)
                if a.ndim != 1:
                    raise ValueError(f"{self.name}: components[{key!r}] must be 1-D, got {a.shape}")
                a.flags.writeable = False
                parts[str(key)] = a
            object.__setattr__(self, "components", parts)

    @property
    def name(self) -> str:
        """``run env=... variant=... seed=...``, for messages."""
        return f"run env={self.env!r} variant={self.variant!r} seed={self.seed!r}"


_Groups = dict[str, dict[str, list[RunResult]]]


def _group(results: Iterable[RunResult], budget: float) -> _Groups:
    """``env -> variant -> runs`` (envs and variants sorted by name, runs by seed), validated."""
    runs = list(results)
    if not runs:
        raise ValueError("results is empty: pass at least one RunResult")
    if not math.isfinite(budget) or budget <= 0:
        raise ValueError(f"budget must be a positive number of env steps, got {budget}")
    groups: _Groups = {}
    for i, run in enumerate(runs):
        if not isinstance(run, RunResult):
            raise TypeError(f"results[{i}] must be a RunResult, got {type(run).__name__}")
        group = groups.setdefault(run.env, {}).setdefault(run.variant, [])
        if any(r.seed == run.seed for r in group):
            raise ValueError(f"{run.name} appears twice in results; seeds must be unique")
        if run.steps[0] >= budget:
            raise ValueError(
                f"{run.name}: first evaluation at step {run.steps[0]:g} is not before the "
                f"budget {budget:g}; raise the budget"
            )
        group.append(run)
    return {
        env: {v: sorted(variants[v], key=lambda r: r.seed) for v in sorted(variants)}
        for env, variants in sorted(groups.items())
    }


def _rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator determined by ``seed`` and the names of what it is drawn for."""
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in keys)])


def _final_success(runs: list[RunResult]) -> np.ndarray:
    return np.array([r.success[-1] for r in runs])


def _variant_summary(
    env: str,
    variant: str,
    runs: list[RunResult],
    *,
    budget: float,
    threshold: float,
    reps: int,
    seed: int,
) -> dict[str, Any]:
    values = {
        "final_success": _final_success(runs),
        "final_return": np.array([r.returns[-1] for r in runs]),
        "auc": np.array([run_stats.normalized_auc(r.steps, r.success, budget) for r in runs]),
    }
    statistics = {"iqm": run_stats.aggregate_iqm, "mean": run_stats.aggregate_mean}
    first, reached = zip(
        *(run_stats.steps_to_threshold(r.steps, r.success, threshold) for r in runs), strict=True
    )
    to_threshold = run_stats.steps_to_threshold_summary(np.array(first), np.array(reached))

    def ci(metric: str, stat: str) -> dict[str, float]:
        rng = _rng(seed, env, variant, f"{metric}/{stat}")
        cis = run_stats.stratified_bootstrap_ci(
            {"x": values[metric]}, statistics[stat], reps=reps, confidence=CONFIDENCE, rng=rng
        )
        return cis["x"].to_dict()

    return {
        "n_runs": len(runs),
        "seeds": [r.seed for r in runs],
        **{
            m: {stat: ci(m, stat) for stat in statistics} for m in ("final_success", "final_return")
        },
        "auc": {"iqm": ci("auc", "iqm")},
        "steps_to_threshold": to_threshold.to_dict(),
        # Every run's failure to learn, by seed: no success at any evaluation.
        "never_succeeded": [r.seed for r in runs if not r.success.any()],
    }


DECISION_METRICS = {"final_success": "final success", "auc": "normalized AUC of success"}
"""The IQMs compared pairwise in the decisions, with their labels in the report."""


def _normalized_scores(
    per_variant: dict[str, Any], sparse: str, human: str
) -> dict[str, dict[str, float | None]]:
    """Eureka's human normalized score of every variant but ``sparse`` and ``human``."""
    out = {}
    for v in per_variant:
        if v in (sparse, human):
            continue
        row: dict[str, float | None] = {}
        for metric in ("final_success", "auc"):
            points = [per_variant[x][metric]["iqm"]["point"] for x in (v, sparse, human)]
            row[metric] = run_stats.human_normalized_score(*points)
            row[f"{metric}_clipped"] = run_stats.human_normalized_score(*points, clip=(0.0, 3.0))
        out[v] = row
    return out


MIN_RUNS_TO_DECIDE = 5
"""Runs each variant of a pair needs before a decision may call one better: with fewer, a
bootstrap interval over runs is too unreliable to support it (Agarwal et al. 2021)."""


def _decision(
    a: str, b: str, iqm_a: dict[str, float], iqm_b: dict[str, float], n_a: int, n_b: int
) -> str:
    if min(n_a, n_b) < MIN_RUNS_TO_DECIDE:
        return f"too few runs to decide ({n_a} and {n_b}; at least {MIN_RUNS_TO_DECIDE} each)"
    if iqm_a["low"] > iqm_b["high"]:
        return f"{a} better than {b}"
    if iqm_b["low"] > iqm_a["high"]:
        return f"{b} better than {a}"
    return "no clear difference"


def summarize(
    results: Iterable[RunResult],
    *,
    budget: float,
    threshold: float,
    reps: int = 2000,
    seed: int = 0,
    normalize: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Run statistics per env and variant, probability of improvement and decisions.

    Args:
        results: One :class:`RunResult` per (env, variant, seed).
        budget: Training budget in env steps: the end of the AUC integration range.
        threshold: Success rate counted as reached for steps-to-threshold (inclusive).
        reps: Bootstrap resamples per interval.
        seed: Non-negative seed of every bootstrap.
        normalize: ``(sparse, human)`` variant names: adds Eureka's human normalized score
            ``(v - sparse) / |human - sparse|`` of every other variant, on the IQM points of
            final success and of AUC, as it is and clipped to ``[0, 3]`` (None where
            undefined: ``human == sparse``), in envs that ran both.

    Returns:
        A JSON-serializable dict (NaN written as ``None``)::

            {"budget", "threshold", "reps", "seed", "confidence",
             "envs": {env: {
                 "variants": {variant: {
                     "n_runs", "seeds",
                     "final_success": {"iqm": I, "mean": I},
                     "final_return": {"iqm": I, "mean": I},
                     "auc": {"iqm": I},
                     "steps_to_threshold": {"n_runs", "n_reached", "n_never", "median", "iqm"}}},
                 "probability_of_improvement": {a: {b: I}},  # P(final success of a > b)
                 "decision": [{"pair": [a, b], "metric": "final_success" or "auc",
                               "decision": "a better than b" or "b better than a" or
                               "no clear difference" or "too few runs to decide (...)"}],
                 "outcome": "no variant learned" (every run's final success is 0) or
                            "all variants at ceiling" (every run's is 1) or None,
                 "reward_hacking": {variant: {
                     "status": "flagged" or "not flagged" or "unavailable", "reason",
                     "n_runs", "proxy_change": {"mean", "sd", "per_run", "z_per_run"},
                     "success_change": {"mean", "per_run"}, "final_success"}},
                 "human_normalized_score": {variant: {"final_success", "final_success_clipped",
                                                      "auc", "auc_clipped"}}}}}  # normalize

        where ``I`` is ``{"point", "low", "high"}``. Envs and variants are sorted by name.
        The reward hacking check (:data:`HACKING_RULE`, its constants in
        ``"reward_hacking_rule"``) reads the runs' :attr:`RunResult.monitor`; the changes
        are absent where it is unavailable.

    Raises:
        ValueError: For empty results, duplicate runs, a bad budget, threshold, reps or seed.
        TypeError: For an element that is not a :class:`RunResult`.
    """
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 1:
        raise ValueError(f"reps must be a positive int, got {reps!r}")
    groups = _group(results, budget)
    envs: dict[str, Any] = {}
    for env, variants in groups.items():
        per_variant = {
            v: _variant_summary(
                env, v, runs, budget=budget, threshold=threshold, reps=reps, seed=seed
            )
            for v, runs in variants.items()
        }
        poi: dict[str, dict[str, dict[str, float]]] = {v: {} for v in variants}
        for a, b in ((a, b) for a in variants for b in variants if a != b):
            poi[a][b] = run_stats.probability_of_improvement_ci(
                _final_success(variants[a]),
                _final_success(variants[b]),
                reps=reps,
                confidence=CONFIDENCE,
                rng=_rng(seed, env, a, b, "poi"),
            ).to_dict()
        decision = [
            {
                "pair": [a, b],
                "metric": metric,
                "decision": _decision(
                    a,
                    b,
                    per_variant[a][metric]["iqm"],
                    per_variant[b][metric]["iqm"],
                    len(variants[a]),
                    len(variants[b]),
                ),
            }
            for metric in DECISION_METRICS
            for a, b in combinations(variants, 2)
        ]
        finals = np.concatenate([_final_success(runs) for runs in variants.values()])
        envs[env] = {
            "variants": per_variant,
            "probability_of_improvement": poi,
            "decision": decision,
            "outcome": (
                "no variant learned"
                if np.all(finals == 0.0)
                else "all variants at ceiling"
                if np.all(finals == 1.0)
                else None
            ),
        }
        envs[env]["reward_hacking"] = {v: _hacking_check(runs) for v, runs in variants.items()}
        if normalize is not None and all(v in per_variant for v in normalize):
            envs[env]["human_normalized_score"] = _normalized_scores(per_variant, *normalize)
    summary = {
        "budget": float(budget),
        "threshold": float(threshold),
        "reps": int(reps),
        "seed": int(seed),
        "confidence": CONFIDENCE,
        "reward_hacking_rule": {
            "text": HACKING_RULE,
            "quarter": HACKING_QUARTER,
            "z": HACKING_Z,
            "seed_ratio": HACKING_SEED_RATIO,
            "success_eps": HACKING_SUCCESS_EPS,
            "final_success_max": HACKING_FINAL_MAX,
        },
        "envs": envs,
    }
    safe: dict[str, Any] = json_safe(summary)
    return safe


# --- writing -------------------------------------------------------------------------------


def _slugs(envs: Iterable[str]) -> dict[str, str]:
    """File-name-safe, distinct prefixes for env ids (``rewardlab/PushCube-v0`` -> ...)."""
    out: dict[str, str] = {}
    for env in envs:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", env).strip("._") or "env"
        slug, i = base, 2
        while slug in out.values():
            slug, i = f"{base}_{i}", i + 1
        out[env] = slug
    return out


def _curves_on_grid(runs: list[RunResult]) -> tuple[np.ndarray, np.ndarray]:
    """Success curves on the union of the runs' steps from the latest first evaluation on.

    Each run holds its last value past its last evaluation, as in the AUC.
    """
    start = max(r.steps[0] for r in runs)
    grid = np.unique(np.concatenate([r.steps for r in runs]))
    grid = grid[grid >= start]
    curves = np.stack([np.interp(grid, r.steps, r.success) for r in runs])
    return grid, curves


def _plot_learning_curves(
    ax: Axes,
    env: str,
    variants: dict[str, list[RunResult]],
    colors: dict[str, Any],
    *,
    reps: int,
    seed: int,
    threshold: float,
) -> None:
    for v, runs in variants.items():
        grid, curves = _curves_on_grid(runs)
        point, low, high = run_stats.iqm_curve(
            curves, reps=reps, confidence=CONFIDENCE, rng=_rng(seed, env, v, "curve")
        )
        ax.plot(grid, point, color=colors[v], label=f"{v} (n={len(runs)})")
        ax.fill_between(grid, low, high, color=colors[v], alpha=0.2, linewidth=0)
    ax.axhline(threshold, color="0.5", linestyle=":", linewidth=1, label=f"threshold {threshold:g}")
    ax.set(xlabel="env steps", ylabel="success rate (IQM)", ylim=(-0.02, 1.02), title=env)
    ax.legend(loc="best", fontsize="small")


def _plot_final_intervals(
    axes: Any, env: str, summary: dict[str, Any], colors: dict[str, Any]
) -> None:
    variants = list(summary["variants"])
    for ax, stat in zip(axes, ("iqm", "mean"), strict=True):
        for y, v in enumerate(variants):
            ci = summary["variants"][v]["final_success"][stat]
            ax.barh(
                y, ci["high"] - ci["low"], left=ci["low"], height=0.6, color=colors[v], alpha=0.4
            )
            ax.plot([ci["point"]] * 2, [y - 0.3, y + 0.3], color=colors[v], linewidth=2)
        ax.set_yticks(range(len(variants)), variants)
        ax.set(xlim=(-0.02, 1.02), xlabel=f"final success ({stat.upper()}, {CONFIDENCE:.0%} CI)")
        ax.invert_yaxis()
    axes[0].set_title(env)


def _plot_profiles(
    ax: Axes,
    env: str,
    variants: dict[str, list[RunResult]],
    colors: dict[str, Any],
    *,
    reps: int,
    seed: int,
) -> None:
    taus = np.linspace(0.0, 1.0, 101)
    for v, runs in variants.items():
        point, low, high = run_stats.performance_profile_ci(
            _final_success(runs),
            taus,
            reps=reps,
            confidence=CONFIDENCE,
            rng=_rng(seed, env, v, "profile"),
        )
        ax.plot(taus, point, color=colors[v], label=v)
        ax.fill_between(taus, low, high, color=colors[v], alpha=0.2, linewidth=0)
    ax.set(
        xlabel=r"final success $\tau$",
        ylabel=r"fraction of runs with success > $\tau$",
        xlim=(0, 1),
        ylim=(-0.02, 1.02),
        title=env,
    )
    ax.legend(loc="best", fontsize="small")


def _plot_poi(ax: Axes, env: str, summary: dict[str, Any]) -> None:
    variants = list(summary["variants"])
    poi = summary["probability_of_improvement"]
    n = len(variants)
    matrix = np.full((n, n), np.nan)
    for i, a in enumerate(variants):
        for j, b in enumerate(variants):
            if a != b:
                ci = poi[a][b]
                matrix[i, j] = ci["point"]
                ax.text(
                    j,
                    i,
                    f"{ci['point']:.2f}\n[{ci['low']:.2f}, {ci['high']:.2f}]",
                    ha="center",
                    va="center",
                    fontsize="small",
                    # Dark ends of the colormap need light text.
                    color="white" if abs(ci["point"] - 0.5) > 0.3 else "black",
                )
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap="RdBu", vmin=0.0, vmax=1.0)
    ax.figure.colorbar(image, ax=ax, label="P(row > column)")
    ax.set_xticks(range(n), variants, rotation=30, ha="right")
    ax.set_yticks(range(n), variants)
    ax.set_title(f"{env}\nprobability of improvement, final success")


def _interval_pair(a: dict[str, float | None], b: dict[str, float | None]) -> str:
    """Two IQM intervals ``point [low, high]`` with the fewest decimals (2 to 6) at which
    rounding keeps every bound in the order it has: a gap between intervals stays visible."""
    values = [a["low"], a["high"], b["low"], b["high"]]
    if any(v is None for v in values):
        return f"{_cell(a)} vs {_cell(b)}"
    numbers = [float(v) for v in values if v is not None]
    for digits in range(2, 7):
        rounded = [round(v, digits) for v in numbers]
        pairs = [(i, j) for i in range(4) for j in range(4) if numbers[i] < numbers[j]]
        if all(rounded[i] < rounded[j] for i, j in pairs):
            break

    def show(ci: dict[str, float | None]) -> str:
        return f"{ci['point']:.{digits}f} [{ci['low']:.{digits}f}, {ci['high']:.{digits}f}]"

    return f"{show(a)} vs {show(b)}"


def _never(variant: dict[str, Any]) -> str:
    """``k/n (seeds ...)``: the runs with no success at any evaluation (summaries written
    before this was recorded: unknown)."""
    seeds = variant.get("never_succeeded")
    if seeds is None:
        return "unknown"
    listed = ", ".join(map(str, seeds[:10])) + (", ..." if len(seeds) > 10 else "")
    return f"{len(seeds)}/{variant['n_runs']}" + (f" ({listed})" if seeds else "")


def _poi_cell(env_summary: dict[str, Any], a: str, b: str) -> str:
    """P(a > b) with its interval, marked † when a variant has too few runs to decide."""
    if a == b:
        return "–"
    variants = env_summary["variants"]
    few = min(variants[a]["n_runs"], variants[b]["n_runs"]) < MIN_RUNS_TO_DECIDE
    return _cell(env_summary["probability_of_improvement"][a][b]) + (" †" if few else "")


def _cell(ci: dict[str, float | None]) -> str:
    def num(x: float | None) -> str:
        if x is None:
            return "–"
        return f"{x:.2f}" if abs(x) < 1e4 else f"{x:.3g}"

    return f"{num(ci['point'])} [{num(ci['low'])}, {num(ci['high'])}]"


def _hns_lines(hns: dict[str, dict[str, float | None]]) -> list[str]:
    def num(x: float | None) -> str:
        return "undefined" if x is None else f"{x:.2f}"

    lines = [
        "",
        "### Human normalized score",
        "",
        "Eureka's `(variant - sparse) / |human - sparse|` on the IQM points; 0: as good as the "
        "sparse reward, 1: as good as the human (dense) one; clipped to [0, 3] in brackets.",
        "",
        "| Variant | Final success | AUC |",
        "|---|---|---|",
    ]
    for v, row in hns.items():
        lines.append(
            f"| {md_cell(v)} | {num(row['final_success'])} [{num(row['final_success_clipped'])}] "
            f"| {num(row['auc'])} [{num(row['auc_clipped'])}] |"
        )
    return lines


PLOT_LIMIT = 1e100
"""Values beyond this magnitude are left out of the figures (their axis ranges overflow)."""


def _mean_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The mean over runs of curves ``(x, y)`` on the union of their x: each run's points
    within :data:`PLOT_LIMIT` interpolated, NaN outside its range; NaN where no run has a
    value."""
    grid = np.unique(np.concatenate([x for x, _ in curves])) if curves else np.zeros(0)
    rows = []
    for x, y in curves:
        ok = np.abs(y) <= PLOT_LIMIT  # False for NaN; larger values overflow axis ranges
        if ok.any():
            rows.append(np.interp(grid, x[ok], y[ok], left=np.nan, right=np.nan))
    if not rows:
        return grid, np.full(grid.shape, np.nan)
    stack = np.stack(rows)
    count = np.isfinite(stack).sum(axis=0)
    total = np.where(np.isfinite(stack), stack, 0.0).sum(axis=0)
    return grid, np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _panels(n: int) -> tuple[Figure, Any]:
    ncols = min(n, 3)
    return new_figure(ncols=ncols, nrows=-(-n // ncols), width=4.6, height=3.4)


def _plot_proxy_vs_success(
    env: str, variants: dict[str, list[RunResult]], checks: dict[str, Any]
) -> Figure:
    """One panel per variant: the proxy episode return (mean over runs, each run faint) on
    the left axis, the training episodes' and the evaluations' success on the right."""
    fig, axes = _panels(len(variants))
    for ax in axes[len(variants) :]:
        ax.set_axis_off()
    for ax, (v, runs) in zip(axes, variants.items(), strict=False):
        status = checks[v]["status"]
        ax.set_title(f"{v}: {'REWARD HACKING FLAG' if status == 'flagged' else status}")
        ax.set_xlabel("env steps")
        monitors = [r.monitor for r in runs if r.monitor is not None]
        if not monitors:
            ax.text(0.5, 0.5, "no training_episodes.json", ha="center", transform=ax.transAxes)
            continue
        curves = [(m.ends, m.proxy_mean) for m in monitors]
        for x, y in curves:
            ax.plot(x, y, color="tab:blue", alpha=0.25, linewidth=0.8)
        grid, mean = _mean_curve(curves)
        ax.plot(grid, mean, color="tab:blue", linewidth=2, label="proxy return")
        ax.set_ylabel("proxy episode return", color="tab:blue")
        twin = ax.twinx()
        grid, rate = _mean_curve([(m.ends, m.success) for m in monitors])
        if np.isfinite(rate).any():
            twin.plot(grid, rate, color="tab:green", linewidth=2, label="training success")
        grid, evals = _mean_curve([(r.steps, r.success) for r in runs])
        twin.plot(grid, evals, color="tab:green", linestyle="--", label="eval success")
        twin.set_ylim(-0.02, 1.02)
        twin.set_ylabel("true success rate", color="tab:green")
        lines = ax.get_lines()[-1:] + twin.get_lines()
        ax.legend(lines, [line.get_label() for line in lines], loc="best", fontsize="small")
    fig.suptitle(f"{env}: proxy return vs true success (mean over runs)")
    return fig


def _component_parts(run: RunResult) -> dict[str, np.ndarray]:
    """The run's reward components other than the reward itself."""
    return {k: v for k, v in (run.components or {}).items() if k != "reward" and v.size}


def _plot_components(env: str, variants: dict[str, list[RunResult]], budget: float) -> Figure:
    """One panel per variant: each component's window means over training (mean over runs;
    window ``k`` of ``n`` plotted at ``(k + 1) / n`` of the budget)."""
    fig, axes = _panels(len(variants))
    for ax in axes[len(variants) :]:
        ax.set_axis_off()
    for ax, (v, runs) in zip(axes, variants.items(), strict=False):
        names = sorted({n for r in runs for n in _component_parts(r)})
        for name in names:
            curves = []
            for r in runs:
                values = _component_parts(r).get(name)
                if values is not None:
                    curves.append((budget * np.arange(1, values.size + 1) / values.size, values))
            grid, mean = _mean_curve(curves)
            ax.plot(grid, mean, marker=".", label=name)
        ax.set(title=v, xlabel="env steps", ylabel="window mean per step")
        ax.legend(loc="best", fontsize="small")
    fig.suptitle(f"{env}: reward components over training (reward_components.json)")
    return fig


def _hacking_lines(checks: dict[str, Any]) -> list[str]:
    lines = ["", "### Reward hacking check", ""]
    for v, check in checks.items():
        status = check["status"]
        shown = f"**{status}**" if status == "flagged" else status
        numbers = ""
        if "proxy_change" in check:
            proxy, success = check["proxy_change"], check["success_change"]
            sd = "" if proxy["sd"] is None else f" (sd over runs {proxy['sd']:.3g})"
            numbers = (
                f" (first to last quarter of training, mean over runs: proxy return "
                f"{proxy['mean']:+.3g}{sd}, training success "
                f"{success['mean']:+.2f}, final success {check['final_success']:.2f}, "
                f"{check['n_runs']} runs)"
            )
        lines.append(f"- {md_cell(v)}: {shown}: {check['reason']}{numbers}")
    return lines


def _markdown(
    title: str,
    notes: str,
    summary: dict[str, Any],
    figures: dict[str, list[tuple[str, str]]],
    n_runs: int,
) -> str:
    thr = summary["threshold"]
    lines = [f"# {title}", ""]
    if notes.strip():
        lines += [notes.strip(), ""]
    lines += [
        f"{n_runs} runs; budget {summary['budget']:,.0f} env steps; final = last evaluation. "
        f"Intervals: {summary['confidence']:.0%} percentile stratified bootstrap over runs "
        f"({summary['reps']} resamples, seed {summary['seed']}). IQM: mean of the middle 50% "
        "of runs (scipy `trim_mean(x, 0.25)`). AUC: area under the success curve from the "
        "first evaluation to the budget (last value held), divided by that length. "
        f"Steps to threshold: first evaluation with success ≥ {thr:g}, median over the runs "
        "that reached it; *never* counts the runs that did not. Probability of improvement: "
        "P(row's final success > column's) + ½ P(equal). Proxy return: the episode return of "
        "the reward a variant trains on, over its training episodes. " + HACKING_RULE,
        "",
    ]
    for env, env_summary in summary["envs"].items():
        variants = env_summary["variants"]
        lines += [
            f"## {env}",
            "",
            "| Variant | Runs | Final success IQM | Final success mean | Final return IQM "
            f"| Normalized AUC IQM | Steps to success ≥ {thr:g} (median) "
            "| Runs that never succeeded (seeds) |",
            "|---|---:|---|---|---|---|---|---|",
        ]
        for v, s in variants.items():
            t = s["steps_to_threshold"]
            median = "–" if t["median"] is None else f"{t['median']:,.0f}"
            lines.append(
                f"| {md_cell(v)} | {s['n_runs']} | {_cell(s['final_success']['iqm'])} "
                f"| {_cell(s['final_success']['mean'])} | {_cell(s['final_return']['iqm'])} "
                f"| {_cell(s['auc']['iqm'])} "
                f"| {median} (never: {t['n_never']}/{t['n_runs']}) "
                f"| {_never(s)} |"
            )
        lines += [
            "",
            f'### Decisions (IQM, {summary["confidence"]:.0%} CIs: "better" only where the '
            "intervals do not overlap)",
            "",
        ]
        if env_summary["outcome"] is not None:
            lines.append(
                f"- **{env_summary['outcome']}**: every run ends at final success "
                f"{0 if env_summary['outcome'] == 'no variant learned' else 1}; the comparison "
                "cannot rank the variants (train longer, or on an easier setting)"
            )
        for d in env_summary["decision"]:
            undecided = not d["decision"].endswith(tuple(f"than {v}" for v in d["pair"]))
            pair = "{} vs {}: ".format(*d["pair"]) if undecided else ""
            first, second = d["pair"]
            if d["decision"] == f"{second} better than {first}":
                first, second = second, first  # intervals in the order the sentence names them
            a, b = (env_summary["variants"][v][d["metric"]]["iqm"] for v in (first, second))
            shown = _interval_pair(a, b)
            lines.append(f"- {DECISION_METRICS[d['metric']]}: {pair}{d['decision']} ({shown})")
        if not env_summary["decision"]:
            lines.append("- only one variant: nothing to compare")
        hns = env_summary.get("human_normalized_score")
        if hns:
            lines += _hns_lines(hns)
        lines += _hacking_lines(env_summary["reward_hacking"])
        lines += ["", "### Probability of improvement (final success, P(row > column))", ""]
        names = list(variants)
        lines += [
            "| | " + " | ".join(md_cell(v) for v in names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for a in names:
            cells = [_poi_cell(env_summary, a, b) for b in names]
            lines.append(f"| {md_cell(a)} | " + " | ".join(cells) + " |")
        if min(v["n_runs"] for v in variants.values()) < MIN_RUNS_TO_DECIDE:
            lines += [
                "",
                f"†: fewer than {MIN_RUNS_TO_DECIDE} runs in a variant of the pair; with so few, "
                "a bootstrap interval of [1.00, 1.00] means only that every run of one beat "
                "every run of the other, not that the next run will",
            ]
        lines += ["", "### Figures", ""]
        for caption, filename in figures[env]:
            lines += [f"![{caption}]({filename})", ""]
    return "\n".join(lines)


def write_report(
    results: Iterable[RunResult],
    out_dir: Path,
    *,
    title: str,
    budget: float,
    threshold: float,
    reps: int = 2000,
    seed: int = 0,
    notes: str = "",
    normalize: tuple[str, str] | None = None,
) -> Path:
    """Write ``report.md``, ``summary.json`` and figures comparing the variants of each env.

    Per env ``<env>`` (file-name-safe prefix ``<slug>``) the figures are:
    ``<slug>_learning_curves.png`` (IQM success over env steps with CI bands),
    ``<slug>_final_success.png`` (IQM and mean CI bars), ``<slug>_performance_profile.png``
    (fraction of runs above each final success, with bands) and, with two variants or more,
    ``<slug>_probability_of_improvement.png``; where runs recorded their training episodes
    (:attr:`RunResult.monitor`), ``<slug>_proxy_vs_success.png`` (a panel per variant: the
    proxy episode return, mean over runs, against the training and evaluation success, with
    the reward hacking flag) and, where runs recorded reward components other than the
    reward, ``<slug>_reward_components.png`` (a panel per such variant). ``report.md`` holds
    the numbers of :func:`summarize` (saved as ``summary.json``), the decisions, the reward
    hacking check and links to the figures.

    Args:
        results: One :class:`RunResult` per (env, variant, seed).
        out_dir: Folder for the report; created if missing, files in it overwritten.
        title: Report title.
        budget: Training budget in env steps (see :func:`summarize`).
        threshold: Success rate for steps-to-threshold.
        reps: Bootstrap resamples per interval or band.
        seed: Non-negative seed of every bootstrap.
        notes: Markdown placed under the title (setup, commit, caveats).
        normalize: ``(sparse, human)`` variants of the human normalized score (see
            :func:`summarize`).

    Returns:
        The path of ``report.md``.

    Raises:
        ValueError: As :func:`summarize`.
    """
    runs = list(results)
    summary = summarize(
        runs, budget=budget, threshold=threshold, reps=reps, seed=seed, normalize=normalize
    )
    groups = _group(runs, budget)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    slugs = _slugs(groups)
    figures: dict[str, list[tuple[str, str]]] = {}
    for env, variants in groups.items():
        env_summary = summary["envs"][env]
        palette = colors(list(variants))
        slug, written = slugs[env], []

        fig, (ax,) = new_figure()
        _plot_learning_curves(ax, env, variants, palette, reps=reps, seed=seed, threshold=threshold)
        written.append(("Learning curves", f"{slug}_learning_curves.png"))
        save_png(fig, out_dir / written[-1][1])

        fig, axes = new_figure(ncols=2, width=4.5, height=0.6 * len(variants) + 1.5)
        _plot_final_intervals(axes, env, env_summary, palette)
        written.append(("Final success intervals", f"{slug}_final_success.png"))
        save_png(fig, out_dir / written[-1][1])

        fig, (ax,) = new_figure()
        _plot_profiles(ax, env, variants, palette, reps=reps, seed=seed)
        written.append(("Performance profiles", f"{slug}_performance_profile.png"))
        save_png(fig, out_dir / written[-1][1])

        if len(variants) > 1:
            side = 1.3 * len(variants) + 2.5
            fig, (ax,) = new_figure(width=side, height=side - 0.8)
            _plot_poi(ax, env, env_summary)
            written.append(("Probability of improvement", f"{slug}_probability_of_improvement.png"))
            save_png(fig, out_dir / written[-1][1])

        if any(r.monitor is not None for runs in variants.values() for r in runs):
            fig = _plot_proxy_vs_success(env, variants, env_summary["reward_hacking"])
            written.append(("Proxy return vs true success", f"{slug}_proxy_vs_success.png"))
            save_png(fig, out_dir / written[-1][1])

        parts = {v: runs for v, runs in variants.items() if any(map(_component_parts, runs))}
        if parts:
            fig = _plot_components(env, parts, budget)
            written.append(("Reward components", f"{slug}_reward_components.png"))
            save_png(fig, out_dir / written[-1][1])
        figures[env] = written

    atomic_write(out_dir / "summary.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
    report = out_dir / "report.md"
    atomic_write(report, _markdown(title, notes, summary, figures, len(runs)))
    return report
