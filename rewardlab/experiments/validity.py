"""Predictive validity: do eval-reward's metrics predict what training on a reward gives?

For reward variants that were both judged by ``rewardlab eval-reward`` (its ``summary.json``,
rewards named as the variants) and trained by ``rewardlab compare`` (its ``summary.json``), each
metric is compared with the trained outcome, final true success (IQM over seeds) and the
area under the success curve (IQM):

- the Spearman rank correlation over the variants, with each metric oriented so that larger
  is better (a "↓" metric negated);
- the decisive pairs it orders correctly: pairs of variants whose final-success intervals do
  not overlap (the outcome tells them apart), counted as ordered by the metric (ties 1/2).

Run it as ``python -m rewardlab.experiments.validity --eval EVAL_SUMMARY --compare
SUMMARY [SUMMARY ...] --out DIR``; a variant trained in several comparisons takes the one with
the most runs. Writes ``report.md``, ``summary.json`` and ``validity.png``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.evaluation import reward_metrics
from rewardlab.evaluation.dataset_metrics import METRICS
from rewardlab.experiments.figures import json_safe, md_cell, new_figure, save_png
from rewardlab.experiments.files import atomic_write

__all__ = ["OUTCOMES", "load_outcomes", "predictive_validity", "write_validity_report"]

OUTCOMES = {"final_success": "final success (IQM)", "auc": "AUC (IQM)"}
"""The trained outcomes each metric is compared with: summary key -> label."""

DECIMALS = 3
"""Metrics are compared at the precision eval-reward's report prints them with."""


PREDICTORS = {**{k: header for k, (header, _) in METRICS.items()}, "rank": "verdict rank ↓"}
"""What is judged: every metric, and the rank of eval-reward's verdict
(:mod:`rewardlab.evaluation.verdict`)."""


def _direction(key: str) -> float:
    header = PREDICTORS[key]
    return -1.0 if header.endswith("↓") else 1.0 if header.endswith("↑") else 0.0


def load_outcomes(paths: Sequence[str | Path], env_id: str) -> dict[str, dict[str, Any]]:
    """Per variant, its outcome intervals and run count from compare summaries of
    ``env_id`` (a variant in several takes the summary with the most runs).

    Raises:
        ValueError: If a summary lacks the env or is not a compare summary.
    """
    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        data = json.loads(Path(path).read_text())
        try:
            variants = data["envs"][env_id]["variants"]
        except (KeyError, TypeError):
            raise ValueError(f"{path} is not a compare summary of {env_id}") from None
        for name, v in variants.items():
            if name not in out or v["n_runs"] > out[name]["n_runs"]:
                out[name] = {
                    "n_runs": v["n_runs"],
                    "source": str(path),
                    **{k: v[k]["iqm"] for k in OUTCOMES},
                }
    return out


def _concordance(metric: np.ndarray, outcome: list[dict[str, float]]) -> tuple[float, int]:
    """Decisive pairs (outcome intervals apart) ordered as the outcome, ties 1/2."""
    correct, pairs = 0.0, 0
    for i, j in itertools.combinations(range(len(outcome)), 2):
        a, b = outcome[i], outcome[j]
        if a["low"] > b["high"] or b["low"] > a["high"]:
            pairs += 1
            sign = np.sign(metric[i] - metric[j]) * np.sign(a["point"] - b["point"])
            correct += 1.0 if sign > 0 else 0.5 if sign == 0 else 0.0
    return correct, pairs


def predictive_validity(
    rewards: Sequence[dict[str, Any]], outcomes: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Each metric's rank correlation with each outcome, and its decisive pairs ordered.

    Args:
        rewards: eval-reward summary rows (``name`` and metric keys).
        outcomes: :func:`load_outcomes`.

    Returns:
        ``{"variants": [...], "metrics": {key: {...}}}``, metrics sorted by how many decisive
        pairs they order correctly, then by their correlation with final success.

    Raises:
        ValueError: If fewer than 3 variants are in both.
    """
    rows = {r["name"]: r for r in rewards}
    names = [n for n in outcomes if n in rows]
    if len(names) < 3:
        raise ValueError(
            f"only {len(names)} variant(s) are both judged and trained ({names}); the "
            "eval-reward rewards must be named as the compare variants (a name: per spec)"
        )
    table: dict[str, Any] = {}
    for key in PREDICTORS:
        sign = _direction(key)
        values = np.array([np.nan if rows[n].get(key) is None else rows[n][key] for n in names])
        defined = np.isfinite(values)
        if not sign or defined.sum() < 3:
            continue
        # At the report's precision: rounding noise (1 - 4e-15 against 1.0, 1e-288 against 0)
        # must not order two variants.
        oriented = sign * np.round(values[defined], DECIMALS)
        kept = [n for n, d in zip(names, defined, strict=True) if d]
        entry: dict[str, Any] = {"n_variants": len(kept)}
        for outcome in OUTCOMES:
            points = np.array([outcomes[n][outcome]["point"] for n in kept])
            entry[f"spearman_{outcome}"] = reward_metrics.spearman(oriented, points)
        correct, pairs = _concordance(oriented, [outcomes[n]["final_success"] for n in kept])
        entry.update(pairs_correct=correct, pairs=pairs)
        table[key] = entry

    def rank(item: tuple[str, dict[str, Any]]) -> tuple[float, float]:
        e = item[1]
        share = e["pairs_correct"] / e["pairs"] if e["pairs"] else 0.0
        rho = e["spearman_final_success"]
        return -share, -(rho if math.isfinite(rho) else -2.0)

    return {
        "variants": [{"name": n, **outcomes[n], "metrics": rows[n]} for n in names],
        "metrics": dict(sorted(table.items(), key=rank)),
        "verdicts": _verdict_classes(names, rows, outcomes),
    }


def _verdict_classes(
    names: list[str], rows: dict[str, dict[str, Any]], outcomes: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    """How the verdict's classes (good > unclear > avoid) order the decisive pairs of
    variants in different classes; None for summaries without verdicts."""
    order = {"good": 2, "unclear": 1, "avoid": 0}
    if not all(rows[n].get("verdict") in order for n in names):
        return None
    value = np.array([order[rows[n]["verdict"]] for n in names], dtype=float)
    correct, pairs = 0.0, 0
    for i, j in itertools.combinations(range(len(names)), 2):
        if value[i] != value[j]:
            pair = [outcomes[names[k]]["final_success"] for k in (i, j)]
            c, p = _concordance(value[[i, j]], pair)
            correct, pairs = correct + c, pairs + p
    classes: dict[str, list[str]] = {}
    for n in names:
        classes.setdefault(rows[n]["verdict"], []).append(n)
    finals = {
        v: [outcomes[n]["final_success"]["point"] for n in members]
        for v, members in classes.items()
    }
    return {"pairs": pairs, "pairs_correct": correct, "classes": classes, "final_success": finals}


def write_validity_report(result: dict[str, Any], out_dir: str | Path, *, title: str) -> Path:
    """``summary.json``, ``validity.png`` (each variant's outcome against the two best
    metrics) and ``report.md``, written last."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "summary.json", json.dumps(json_safe(result), indent=1))
    metrics, variants = result["metrics"], result["variants"]
    best = list(metrics)[:2] + [k for k in ("preference", "epic_tabular") if k in metrics][:1]
    fig, axes = new_figure(ncols=len(best), width=3.8, height=3.4)
    for ax, key in zip(axes, best, strict=False):
        for v in variants:
            x, y = v["metrics"].get(key), v["final_success"]
            if x is None or not math.isfinite(x):
                continue
            ax.errorbar(
                x, y["point"], yerr=[[y["point"] - y["low"]], [y["high"] - y["point"]]], fmt="o"
            )
            ax.annotate(v["name"], (x, y["point"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")  # fmt: skip
        ax.set_xlabel(PREDICTORS[key], fontsize=8)
        ax.set_ylabel("final success (IQM, 95% CI)", fontsize=8)
        ax.tick_params(labelsize=7)
    save_png(fig, out / "validity.png")

    lines = [
        f"# Predictive validity of eval-reward's metrics: {title}",
        "",
        f"{len(variants)} reward variants, each judged by `rewardlab eval-reward` and trained "
        "by `rewardlab compare` (PPO). For each metric (oriented so that larger is better): "
        "its Spearman rank correlation over the variants with the trained final success and "
        "AUC (IQM over seeds), and the *decisive pairs* it orders correctly: pairs of variants "
        "whose final-success 95% intervals do not overlap, so training told them apart.",
        "",
        "## Variants",
        "",
        "| variant | runs | final success (IQM, 95% CI) | AUC (IQM) | source |",
        "|---|---:|---|---:|---|",
    ]
    for v in sorted(variants, key=lambda v: -v["final_success"]["point"]):
        f = v["final_success"]
        lines.append(
            f"| {md_cell(v['name'])} | {v['n_runs']} | {f['point']:.3f} [{f['low']:.3f}, "
            f"{f['high']:.3f}] | {v['auc']['point']:.3f} | `{v['source']}` |"
        )
    lines += [
        "",
        "## Metrics, best predictors first",
        "",
        "| metric | variants | decisive pairs ordered | Spearman with final success | "
        "Spearman with AUC |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, e in metrics.items():
        lines.append(
            f"| {PREDICTORS[key]} | {e['n_variants']} | {e['pairs_correct']:g} of {e['pairs']} | "
            f"{e['spearman_final_success']:.2f} | {e['spearman_auc']:.2f} |"
        )

    def share(e: dict[str, Any]) -> float:
        return e["pairs_correct"] / e["pairs"] if e["pairs"] else math.nan

    def listed(low: float, high: float) -> str:
        keys = [k for k, e in metrics.items() if low <= share(e) < high]
        return (
            ", ".join(
                f"{PREDICTORS[k]} ({metrics[k]['pairs_correct']:g}/{metrics[k]['pairs']})"
                for k in keys
            )
            or "none"
        )

    verdicts = result.get("verdicts")
    if verdicts:
        lines += ["", "## The verdict's classes", ""]
        for v in ("good", "unclear", "avoid"):
            if v in verdicts["classes"]:
                finals = verdicts["final_success"][v]
                lines.append(
                    f"- *{v}*: {', '.join(verdicts['classes'][v])}; trained final success "
                    f"{min(finals):.2f} to {max(finals):.2f}"
                )
        lines.append(
            f"- decisive pairs in different classes ordered by the class: "
            f"{verdicts['pairs_correct']:g} of {verdicts['pairs']}; the verdict's thresholds "
            "(rewardlab.evaluation.verdict) were set with key-door's variants in view, so "
            "on key-door this is in-sample: evidence, not proof"
        )
    lines += [
        "",
        "## What predicted the outcome here",
        "",
        "Share of decisive pairs ordered correctly:",
        "",
        f"- all of them: {listed(1.0, 2.0)};",
        f"- at least 3 in 4: {listed(0.75, 1.0)};",
        f"- fewer than 3 in 4: {listed(0.6, 0.75)};",
        f"- under 60% (chance orders half): {listed(-1.0, 0.6)}.",
        f"- {len(variants)} variants on one env: a metric's place here is evidence for this "
        "kind of env and agent, not a law; rerun the study on yours.",
        "",
        "![validity](validity.png)",
        "",
    ]
    report = out / "report.md"
    atomic_write(report, "\n".join(lines))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rewardlab.experiments.validity")
    parser.add_argument("--eval", required=True, help="eval-reward summary.json")
    parser.add_argument("--compare", nargs="+", required=True, help="compare summary.json(s)")
    parser.add_argument("--out", required=True, help="report folder")
    args = parser.parse_args(argv)
    summary = json.loads(Path(args.eval).read_text())
    env_id = summary["env_id"]
    result = predictive_validity(summary["rewards"], load_outcomes(args.compare, env_id))
    result.update(env_id=env_id, eval_summary=args.eval, compare_summaries=args.compare)
    print(write_validity_report(result, args.out, title=env_id))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
