"""A verdict per reward from its eval-reward metrics: a ranking by the metrics that predict
training, and plain reasons.

Which metrics rank is what the predictive-validity study found
(``experiments/results/predictive-validity``, :mod:`rewardlab.experiments.validity`): on
key-door, success after a few exact natural-policy-gradient steps (``npg10_success``) ordered
the trained outcomes best, then the return-based metrics (preference accuracy, return
correlations); each missed what the other caught. NPG-10 misses a potential scaled 10x
(exact at the optimum and for an exact learner, 0% for PPO), which preference accuracy flags;
preference accuracy misses a discount mismatch (0.74, 0% trained), which NPG-10 flags. So a
reward is called *good* only when neither flags it. The optimum's success and the per-step
metrics (correlations with progress, VOC, success detection) predicted worst: per-step
metrics judge where reward is paid, which shaping moves without changing what optimizing it
does. Without a tabular model, the return-based metrics rank.

Every reason is read off a metric and names it, so a reader can check it in the table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["RANKING_SAMPLED", "RANKING_TABULAR", "Verdict", "judge", "ranking_keys"]

RANKING_TABULAR = ("npg10_success", "preference", "opt_success")
"""Ranking keys on an env with an exact model, in order (ties broken by the next), after the
verdict (good, then unclear, then avoid)."""

PREFERENCE_GATE = 0.8
"""Preference accuracy below which a reward's return is called unlike the task's. In the
predictive-validity study every key-door variant that trained to 0.8 final success or more had
0.89 or more, every one that trained to 0.2 or less had 0.76 or less (chosen on that study's
variants: in-sample, so evidence, not proof)."""

RANKING_SAMPLED = ("probe_success", "preference", "spearman_return")
"""Ranking keys without one (the training probe's success where it ran)."""

EQUIVALENT_EPIC = 1e-6
"""EPIC below which a reward counts as the task reward up to shaping and scale: rounding
noise only. Closeness is not equivalence: on key-door a discount mismatch of 0.95 against
0.99 sits at 0.026 of exact EPIC and stalls learning, one of 0.98 at 0.007 (its NPG-10 success
75% against 95%)."""

VERDICTS = ("good", "unclear", "avoid")
"""In ranking order: the ranking keys order rewards within a verdict."""

RANK_DECIMALS = 2
"""Ranking keys are compared at the report's precision: rounding noise does not order."""


@dataclass
class Verdict:
    """One reward's place and reasons.

    Attributes:
        name: The reward.
        rank: 1 = most likely to train well, among the rewards ranked.
        verdict: ``"good"`` (no reason against it, and one that predicts training for it:
            equivalence to the task, NPG-10 success or a probe run's success of 0.5 or
            more), ``"avoid"`` (a reason against it that decides: it predicted failure in
            the study) or ``"unclear"`` (neither, or only a doubt such as detection at
            chance).
        reasons: Plain sentences, each citing the metric it rests on.
        notes: Why some of its metrics disagree, where they do.
    """

    name: str
    rank: int
    verdict: str
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _get(metrics: Mapping[str, float], key: str) -> float:
    value = metrics.get(key, math.nan)
    return math.nan if value is None else float(value)


def _reasons(
    m: Mapping[str, float],
    intervals: Mapping[str, Sequence[float]],
    low_support: set[str],
) -> tuple[list[str], list[str], bool, bool, bool]:
    """``(reasons, notes, red flag, good sign, doubt)`` of one reward's metrics: a doubt is a
    reason against it that does not decide (it keeps a reward from *good*)."""
    reasons, notes = [], []
    red = good = doubt = False
    epic = _get(m, "epic_tabular")
    epic_name = "EPIC tab."
    if math.isnan(epic) and "epic" not in low_support:
        epic, epic_name = _get(m, "epic"), "EPIC"
    equivalent = epic < EQUIVALENT_EPIC
    if equivalent:
        good = True
        reasons.append(f"equivalent to the task reward up to shaping ({epic_name} {epic:.3f})")

    opt, npg = _get(m, "opt_success"), _get(m, "npg10_success")
    if opt < 0.5:
        red = True
        reasons.append(
            f"optimizing it does not solve the task: its optimal policy succeeds {opt:.0%} of "
            "the time (opt. succ.)"
        )
    elif npg < 0.5:
        red = True
        reasons.append(
            f"stalls learning: its optimum solves the task ({opt:.0%}), but after 10 exact "
            f"policy-gradient steps from a uniform policy it succeeds {npg:.0%} (NPG-10 succ.)"
        )
    elif npg >= 0.5:
        good = True
        reasons.append(f"a limited learner succeeds {npg:.0%} on it (NPG-10 succ.)")

    pref = _get(m, "preference")
    pref_high = intervals.get("preference", (math.nan, math.nan))[1]
    if "preference" not in low_support and math.isfinite(pref):
        # Systematic only when the whole interval is below chance (noise sits around 0.5).
        below = pref_high < 0.5 if math.isfinite(pref_high) else pref < 0.4
        if below:
            red = True
            reasons.append(
                f"farmable: its return prefers episodes that do not finish (pref. acc. {pref:.2f})"
            )
        elif pref >= PREFERENCE_GATE:
            # Necessary in the study, not sufficient: no "good" on this alone.
            reasons.append(f"its return orders episodes as the task does (pref. acc. {pref:.2f})")
        else:
            red = True
            reasons.append(
                f"its return orders episodes unlike the task (pref. acc. {pref:.2f}, below "
                f"{PREFERENCE_GATE}): it pays for episodes that do not succeed"
            )
            if equivalent:
                notes.append(
                    "equivalent at the optimum, yet the return of an episode cut by the time "
                    "limit keeps the shaping's last potential: with a large potential, progress "
                    "without success pays almost as much as success"
                )

    probe = _get(m, "probe_success")
    if math.isfinite(probe):
        good = good or probe >= 0.5
        reasons.append(f"one short training run reached {probe:.0%} success (probe succ.)")
    elif not math.isfinite(npg) and not good:
        notes.append(
            "nothing here predicts training on its own (no exact model on this env): "
            "--probe-steps gives a short training run's success"
        )

    # Success detection predicted training poorly in the study: it informs, never decides.
    auc = _get(m, "roc_auc")
    low, high = intervals.get("roc_auc", (auc, auc))
    if "roc_auc" not in low_support and math.isfinite(auc) and not equivalent:
        if low >= 0.4 and high <= 0.6:
            doubt = True
            reasons.append(f"ignores the goal: success detection at chance (ROC AUC {auc:.2f})")
        elif high < 0.4:
            notes.append(
                f"it pays less on entering success than elsewhere (ROC AUC {auc:.2f}); a shaped "
                "reward can by design (its potential ends at 0), so this alone says little"
            )

    per_step = {"VOC": _get(m, "voc"), "Spearman prog.": _get(m, "spearman_progress")}
    low_values = {k: v for k, v in per_step.items() if v < 0.5}  # NaN is not low
    if equivalent and low_values:
        shown = ", ".join(f"{k} {v:.2f}" for k, v in low_values.items())
        notes.append(
            f"its per-step values disagree with progress ({shown}) though it is "
            "equivalent to the task: per-step metrics judge where "
            "reward is paid, and a sparse or shaped reward pays at other steps than progress "
            "does without changing what optimizing it does"
        )
    starc = _get(m, "starc")
    if math.isfinite(epic) and math.isfinite(starc) and abs(starc - epic) > 0.3:
        notes.append(
            f"{epic_name} and STARC disagree ({epic:.2f} vs {starc:.2f}): they remove shaping "
            "differently (EPIC over uniformly covered transitions, STARC along the env's "
            "dynamics under a uniform policy), so they weigh different transitions; neither "
            "predicted training well in the study"
        )
    if low_support & set(m):
        notes.append(
            "too few successes in the dataset to trust its success-based metrics (greyed out)"
        )
    return reasons, notes, red, good, doubt


def ranking_keys(
    metrics: Sequence[Mapping[str, float]],
    low_support: set[str] = frozenset(),  # type: ignore[assignment]
) -> tuple[str, ...]:
    """The ranking keys that some reward has a value for and that do not rest on too few
    positives: :data:`RANKING_TABULAR` where an exact model gave its columns, else
    :data:`RANKING_SAMPLED`. Empty: the rewards are not ranked, only judged."""
    tabular = any(math.isfinite(_get(m, "npg10_success")) for m in metrics)
    keys = RANKING_TABULAR if tabular else RANKING_SAMPLED
    return tuple(
        k for k in keys if k not in low_support and any(math.isfinite(_get(m, k)) for m in metrics)
    )


def judge(
    rows: Sequence[tuple[str, Mapping[str, float], Mapping[str, Sequence[float]]]],
    *,
    low_support: set[str] = frozenset(),  # type: ignore[assignment]
) -> list[Verdict]:
    """The verdicts of ``(name, metrics, intervals)`` rows, best first: by verdict, then by
    the ranking keys (:func:`ranking_keys`) at the report's precision. Rows that tie on both
    share a rank (1, 2, 2, 4); with no ranking key, every row of a verdict shares one.

    Args:
        rows: Each reward's name, metrics (the keys of
            :data:`~rewardlab.evaluation.dataset_metrics.METRICS`; NaN or missing where
            undefined) and bootstrap intervals.
        low_support: Metrics that rest on too few positives here: not used for reasons.
    """
    keys = ranking_keys([m for _, m, _ in rows], low_support)

    def order(row: tuple[str, Mapping[str, float], Mapping[str, Sequence[float]]]) -> tuple:
        values = [_get(row[1], k) for k in keys]
        return tuple(-round(v, RANK_DECIMALS) if math.isfinite(v) else math.inf for v in values)

    judged = []
    for row in rows:
        name, m, intervals = row
        reasons, notes, red, good, doubt = _reasons(m, intervals, low_support)
        verdict = "avoid" if red else "good" if good and not doubt else "unclear"
        key = (VERDICTS.index(verdict), order(row))
        judged.append((key, Verdict(name, 0, verdict, reasons, notes)))
    judged.sort(key=lambda item: item[0])
    for k, (key, v) in enumerate(judged):
        v.rank = judged[k - 1][1].rank if k and key == judged[k - 1][0] else k + 1
    return [v for _, v in judged]
