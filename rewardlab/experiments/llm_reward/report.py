"""``report.md`` of an LLM reward search: what happened, what each candidate became, how the
best compares with the baselines, and what the numbers do and do not support.

Made from the search's summary alone (the content of ``search.json``) and the best
program's source, so the report and the JSON never disagree.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from rewardlab.evaluation.run_stats import human_normalized_score

__all__ = ["REPORT_FILE", "counted", "search_report", "usage_text"]

REPORT_FILE = "report.md"

_CELL_CHARS = 240
_MODES = {
    "replace": "the program's reward replaces the env's",
    "add": "the program's reward is added to the env's {base} reward",
    "potential": "the program is a potential Phi(s) shaping the env's {base} reward",
}
_LABELS = {
    "method": "best program, retrained",
    "sparse": "sparse task reward",
    "human": "dense expert reward",
}


def search_report(summary: Mapping[str, Any], best_code: str | None = None) -> str:
    """The Markdown report of a search.

    Args:
        summary: What :func:`~rewardlab.experiments.llm_reward.search.run_search` returns
            (and writes to ``search.json``), finished or not.
        best_code: The best program's source, shown whole; None when there is none.
    """
    cfg = summary["config"]
    lines = [f"# LLM reward search on {_cell(summary['env'])}", "", _outcome(summary), ""]
    lines += ["## What worked and what did not", ""]
    lines += [f"- {finding}" for finding in _findings(summary)]
    lines += ["", "## Settings", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {_cell(value)} |" for name, value in _settings(summary)]
    lines += ["", "## Baselines", "", *_baseline_section(summary)]
    lines += ["", "## Candidates", "", *_candidate_section(summary)]
    lines += ["", "## Best program", ""]
    best = summary["best"]
    if best is None:
        lines.append("None: no candidate has a fitness.")
    else:
        lines.append(
            f"`{best['id']}`, fitness {best['fitness']:.2f} on the search seeds "
            f"{cfg['train']['seeds']}: `best_program.py` in this folder (its record, messages "
            f"and training runs: `candidates/{best['id']}/`)."
        )
        if best_code is not None:
            fence = "`" * max(3, 1 + max((len(m) for m in re.findall("`+", best_code)), default=0))
            lines += ["", f"{fence}python", best_code.rstrip("\n"), fence]
    return "\n".join(lines) + "\n"


def _cell(value: Any, limit: int = _CELL_CHARS) -> str:
    """``value`` as one Markdown table cell: one line, no column breaks, no HTML, cut at
    ``limit`` characters (the whole text is in ``search.json`` and the candidates' files)."""
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


def _score(value: float) -> str:
    """A normalized score to two decimals (never ``-0.00``)."""
    return f"{round(value, 2) + 0.0:.2f}"


def _planned(cfg: Mapping[str, Any]) -> int:
    return int(cfg["restarts"] * cfg["iterations"] * cfg["samples"])


def _outcome(summary: Mapping[str, Any]) -> str:
    """The first paragraph: how the search ended and what it found."""
    cfg, stop = summary["config"], summary["stop_reason"]
    n, planned = len(summary["candidates"]), _planned(summary["config"])
    plan = (
        f"{cfg['restarts']} restart(s) x {cfg['iterations']} iteration(s) x "
        f"{cfg['samples']} sample(s)"
    )
    if stop == "done":
        ended = f"The search ran its whole plan ({plan}: {n} candidates)."
    elif stop == "error":
        ended = f"The search stopped with an error after {n} of {planned} candidates: " + (
            f"{summary['error']}."
        )
    elif stop == "interrupted":
        ended = (
            f"The search stopped after {n} of {planned} candidates, {summary['error']}. What "
            "it had found is below."
        )
    else:
        ended = f"The search stopped early, after {n} of {planned} candidates: {stop}."
    best = summary["best"]
    if best is None:
        found = "No candidate has a fitness, so there is no best program."
    else:
        found = (
            f"Best program: `{best['id']}`, fitness {best['fitness']:.2f} (the true-task "
            "success of its final evaluation, mean over the search seeds), in "
            "`best_program.py`."
        )
    return f"{_cell(ended, limit=2000)} {found}"


def _findings(summary: Mapping[str, Any]) -> list[str]:
    """Plain statements the numbers support, with their limits."""
    cfg, rows = summary["config"], summary["candidates"]
    train = cfg["train"]
    seeds, episodes = train["seeds"], train["eval_episodes"]
    checks = Counter(row["check"] for row in rows)
    passed = [row for row in rows if row["check"].startswith("passed")]
    repaired = sum(row["check"] != "passed" for row in passed)
    trained = sum(row["training"] == "trained" for row in rows)
    duplicates = sum(row["training"] == "duplicate" for row in rows)
    failed = [row for row in rows if row["training"] == "failed"]
    fit = [row for row in rows if row["fitness"] is not None]
    out = [
        f"{len(rows)} of {_planned(cfg)} planned candidates were made; {len(passed)} passed "
        f"the checks{f' ({repaired} after repairs)' if repaired else ''}; {trained} distinct "
        "programs were trained"
        + (
            f", and {duplicates} candidates repeated an earlier program (same sha256), "
            "which took its results without training again."
            if duplicates
            else "."
        )
    ]
    if not rows:
        out.append("No candidate was made: the search stopped before any answer was checked.")
    if checks["no answer"]:
        first = next(row["outcome"] for row in rows if row["check"] == "no answer")
        first = first.removeprefix("no answer: ")
        out.append(
            f"{checks['no answer']} requests got no usable answer from the LLM (the first: "
            f"{_cell(first)})."
        )
    rejected = Counter(
        row["check"][len("rejected (") : -1] for row in rows if row["check"].startswith("rejected")
    )
    if rejected:
        reasons = ", ".join(f"{reason} x{count}" for reason, count in rejected.most_common())
        out.append(f"Rejected by the checks (stage: reason): {_cell(reasons)}.")
    if rows and not passed:
        out.append("No candidate passed the checks, so nothing was trained.")
    if checks["not checked"]:
        out.append(
            f"{checks['not checked']} answers were received but not checked: the search "
            "stopped first."
        )
    if failed:
        out.append(
            f"{len(failed)} programs passed the checks but failed in training or in the "
            "reflection on it (the table says why)."
        )
    if fit:
        out += _fitness_findings(summary, fit)
    out += _baseline_findings(summary, fit)
    if fit:
        if len(seeds) == 1:
            out.append(
                f"One training seed per candidate (seed {seeds[0]}), evaluated on {episodes} "
                f"episodes: each fitness is one run's success rate, in steps of "
                f"{1 / episodes:.2g}, so a difference between candidates, or against a "
                "baseline, may be chance. More seeds (`train.seeds`) would tell."
            )
        else:
            out.append(
                f"{len(seeds)} training seeds per candidate ({episodes} evaluation episodes "
                "each); a fitness is their mean, the table lists each seed's."
            )
    distinct = sum(row["training"] != "duplicate" for row in fit)
    if distinct > 1:
        out.append(
            f"The best was chosen as the highest of {distinct} programs' fitnesses on the same "
            "seeds, so its fitness is optimistic"
            + (
                "; its retraining on held-out seeds (Baselines) is the fairer number."
                if summary.get("baselines", {}).get("method") is not None
                else "; retraining it on held-out seeds (`--baselines`) gives a fairer number."
            )
        )
    return out


def _fitness_findings(summary: Mapping[str, Any], fit: Sequence[Mapping[str, Any]]) -> list[str]:
    cfg = summary["config"]
    best = summary["best"]
    values = [row["fitness"] for row in fit]
    steps = cfg["train"]["steps"]
    out = []
    if max(values) == 0:
        out.append(
            f"None of the {len(fit)} candidates with a fitness led to a single success in its "
            f"final evaluation after {steps} training steps (every fitness is 0.00)."
        )
    elif min(values) == 1:
        out.append(
            f"Every one of the {len(fit)} candidates with a fitness reached 1.00: at "
            f"{steps} steps this task does not tell them apart."
        )
    else:
        distinct = [row["fitness"] for row in fit if row["training"] != "duplicate"]
        above = sum(v > 0 for v in distinct)
        out.append(
            f"Best search fitness {best['fitness']:.2f} (`{best['id']}`); {above} of the "
            f"{len(distinct)} distinct programs with a fitness reached a success rate above 0."
        )
    if cfg["iterations"] > 1:
        for restart in sorted({row["restart"] for row in summary["candidates"]}):
            # Each iteration with candidates: its best fitness (None: none had one).
            by_round: dict[int, float | None] = {}
            for row in summary["candidates"]:
                if row["restart"] != restart:
                    continue
                n, new = row["iteration"], row["fitness"]
                old = by_round.get(n)
                by_round[n] = new if old is None else old if new is None else max(old, new)
            shown = " -> ".join("none" if v is None else f"{v:.2f}" for v in by_round.values())
            first = by_round.get(0)
            later = [v for n, v in by_round.items() if n > 0 and v is not None]
            verdict = ""
            if first is not None and later:
                beat = max(later) > first
                verdict = f"; {'a' if beat else 'no'} later round beat the first round's best"
            out.append(f"Restart {restart}, best fitness by iteration: {shown}{verdict}.")
    return out


def _baseline_findings(summary: Mapping[str, Any], fit: Sequence[Mapping[str, Any]]) -> list[str]:
    base = summary.get("baselines")
    if base is None:
        if summary["config"]["baselines"] and summary["best"] is None:
            return ["Baselines were asked for, but with no best program none were trained."]
        if not fit:
            return []
        return [
            "No baselines were trained, so nothing here says whether a program does better "
            "than the sparse or the dense reward: rerun with `--baselines` (`baselines: true`)."
        ]
    out = []
    if "interrupted" in base:
        out.append(f"The baselines were interrupted ({_cell(base['interrupted'])}).")
    method, sparse, human = (base.get(name) for name in ("method", "sparse", "human"))
    for name in ("method", "sparse", "human"):
        if base.get(f"{name}_error"):
            out.append(f"Baseline '{_LABELS[name]}' failed: {_cell(base[name + '_error'])}.")
    if sparse is not None and fit:
        beat = sum(row["fitness"] > sparse for row in fit)
        out.append(
            f"No candidate beat the sparse baseline ({sparse:.2f}) with its search fitness."
            if not beat
            else f"{beat} of {len(fit)} candidates beat the sparse baseline ({sparse:.2f}) "
            "with their search fitness (measured on the search seeds; the baselines on "
            "held-out ones)."
        )
    if method is not None:
        text = (
            f"Retrained on held-out seeds {base['seeds']}, the best program (search fitness "
            f"{base['best_fitness_in_search']:.2f}) reached {method:.2f}"
        )
        others = {n: v for n, v in (("sparse", sparse), ("dense", human)) if v is not None}
        if others:
            beaten = [name for name, value in others.items() if method > value]
            against = " and ".join(f"{value:.2f} for the {n} reward" for n, value in others.items())
            verdict = (
                f"it beat the {' and the '.join(beaten)} reward"
                if beaten
                else "it beat neither"
                if len(others) == 2
                else "it did not beat it"
            )
            text += f", against {against}: {verdict}"
        out.append(text + ".")
    if sparse is not None and human is not None and sparse == human:
        out.append(
            f"The sparse and the dense baselines reached the same success ({sparse:.2f}), so "
            "the normalized score is undefined: these runs do not separate "
            "them."
        )
    score = base.get("human_normalized_score")
    if score is not None:
        out.append(
            f"Human normalized score (program - sparse) / |dense - sparse| on held-out seeds: "
            f"{_score(score)} (0: as good as sparse, 1: as good as dense)."
        )
    return out


def _settings(summary: Mapping[str, Any]) -> list[tuple[str, Any]]:
    cfg = summary["config"]
    llm, train, budgets, cache = cfg["llm"], cfg["train"], cfg["budgets"], cfg["cache"]
    server = summary.get("llm") or {"model": llm["model"], "base_url": llm["base_url"]}
    usage = summary["usage"]
    env_kwargs = train["env_kwargs"]
    spent = [f"{name} {value}" for name, value in budgets.items() if value is not None]
    return [
        ("task", cfg["env"] + (f" {env_kwargs}" if env_kwargs else "")),
        ("reward mode", f"{cfg['mode']}: " + _MODES[cfg["mode"]].format(base=cfg["base_reward"])),
        (
            "LLM",
            f"{server['model']} at {server['base_url']}; temperature {llm['temperature']}, "
            f"max_tokens {llm['max_tokens'] or 'the server default'}",
        ),
        (
            "search",
            f"{cfg['samples']} samples x {cfg['iterations']} iterations x {cfg['restarts']} "
            f"restarts; {cfg['repair_rounds']} repair round(s); env source shown: "
            f"{cfg['include_source']}; failure episodes analysed: {cfg['failure_episodes']}; "
            f"seed {cfg['seed']}; feedback file: {cfg['feedback_file'] or 'none'}",
        ),
        ("LLM cache", f"{cache['mode']} ({cache['dir'] or 'llm_cache/'})"),
        (
            "training",
            f"{train['algo']}, {train['steps']} steps, seeds {train['seeds']}, "
            f"{train['evaluations']} evaluations of {train['eval_episodes']} episodes; "
            f"hyperparameters {train['hyperparams'] or 'the defaults'}",
        ),
        ("budgets", ", ".join(spent) or "none"),
        (
            "used",
            f"{usage_text(usage)}; {summary['env_steps']} env steps; "
            f"{summary['wall_s']:.0f} s of search",
        ),
    ]


def counted(n: int, noun: str) -> str:
    """``n`` and the noun, plural unless ``n == 1``: ``1 request``, ``2 requests``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def usage_text(usage: Mapping[str, Any]) -> str:
    """What the LLM was asked, in one line: answers, tokens, cost, and the abandoned work
    (attempts timed out, dropped or failed with HTTP 5xx, which the server may have computed
    all the same; see :class:`rewardlab.llm.Usage`)."""
    text = (
        f"{counted(usage['requests'], 'request')} answered by the server, {usage['cached']} "
        f"from the cache; {usage['prompt_tokens'] + usage['completion_tokens']} tokens, "
        f"${usage['cost_usd']:.4f}"
    )
    # Searches written before abandoned work was counted have none of these fields.
    abandoned = usage.get("abandoned", 0)
    if not abandoned:
        return text + "; no attempt abandoned"
    unmeasured = usage.get("abandoned_unmeasured", 0)
    unknown = f" (and {unmeasured} whose prompt no answer measured)" if unmeasured else ""
    return text + (
        f"; {counted(abandoned, 'attempt')} abandoned (timed out, connection lost or HTTP 5xx: the "
        f"server may have computed them anyway), {usage.get('abandoned_prompt_tokens', 0)} "
        f"prompt tokens sent with them{unknown}, {usage.get('abandoned_s', 0.0):.1f} s "
        "waited on them"
    )


def _baseline_section(summary: Mapping[str, Any]) -> list[str]:
    base = summary.get("baselines")
    if base is None:
        asked = summary["config"]["baselines"]
        return [
            "None were trained: "
            + (
                "there was no best program to compare."
                if asked
                else "the search ran without `--baselines`."
            )
        ]
    if "seeds" not in base:
        return [f"Interrupted before the first one started ({_cell(base.get('interrupted'))})."]
    lines = [
        f"Each trained with the search's settings on held-out seeds {base['seeds']}, "
        f"evaluated on held-out episodes (eval_seed {base['eval_seed']}); true success of the "
        "final evaluation.",
        "",
        "| baseline | reward | true success | per seed | error |",
        "|---|---|---|---|---|",
    ]
    rewards = {
        "method": f"`{base['best']}`",
        "sparse": "sparse",
        "human": str(base.get("dense_reward", "dense")),
    }
    for name in ("method", "sparse", "human"):
        value = base.get(name)
        runs = base.get("per_seed", {}).get(name, [])
        shown = "—" if value is None else f"{value:.2f}"
        if name not in base and not base.get(f"{name}_error"):
            shown = "not run"
        lines.append(
            f"| {_LABELS[name]} | {_cell(rewards[name])} | {shown} | "
            f"{', '.join(f'{x:.2f}' for x in runs) or '—'} | "
            f"{_cell(base.get(f'{name}_error') or '')} |"
        )
    score = base.get("human_normalized_score")
    clipped = base.get("human_normalized_score_clipped")
    lines += [
        "",
        "Human normalized score of the best program: "
        + (
            f"{_score(score)} (clipped to [0, 3]: {_score(clipped)})."
            if score is not None and clipped is not None
            else "undefined (a baseline is missing, or the sparse and dense ones tie)."
        ),
    ]
    return lines


def _normalizer(summary: Mapping[str, Any]) -> tuple[float, float] | None:
    """``(sparse, human)`` when the baselines define a normalized score."""
    base = summary.get("baselines") or {}
    sparse, human = base.get("sparse"), base.get("human")
    if sparse is None or human is None or sparse == human:
        return None
    return float(sparse), float(human)


def _candidate_section(summary: Mapping[str, Any]) -> list[str]:
    rows, rounds = summary["candidates"], summary["rounds"]
    if not rows and not rounds:
        return ["None."]
    norm = _normalizer(summary)
    best_id = summary["best"]["id"] if summary["best"] else None
    header = "| candidate | program sha256 | check | training | final true success |"
    rule = "|---|---|---|---|---|"
    if norm is not None:
        header += " normalized |"
        rule += "---|"
    header += " error |"
    rule += "---|"
    lines = [
        "Final true success: the fitness, the success rate of the last evaluation (mean over "
        "seeds; each seed's in brackets when there are several)."
        + (
            " Normalized: (fitness - sparse) / |dense - sparse| with the held-out baselines "
            "(indicative: a candidate's fitness comes from the search seeds)."
            if norm is not None
            else ""
        ),
    ]
    keys = [(r["restart"], r["iteration"]) for r in rounds]
    keys += [
        k for k in dict.fromkeys((r["restart"], r["iteration"]) for r in rows) if k not in keys
    ]
    for restart, iteration in keys:
        entry: Mapping[str, Any] = next(
            (r for r in rounds if (r["restart"], r["iteration"]) == (restart, iteration)), {}
        )
        title = f"### Restart {restart}, iteration {iteration}"
        notes = []
        if entry.get("best"):
            notes.append(f"best of the round: `{entry['best']}`")
        if entry.get("stopped"):
            notes.append(f"stopped: {_cell(entry['stopped'])}")
        lines += ["", title, ""]
        if notes:
            text = "; ".join(notes)
            lines += [text[0].upper() + text[1:] + ".", ""]
        lines += [header, rule]
        for row in rows:
            if (row["restart"], row["iteration"]) != (restart, iteration):
                continue
            lines.append(_candidate_row(row, best_id, norm))
    return lines


def _candidate_row(
    row: Mapping[str, Any], best_id: str | None, norm: tuple[float, float] | None
) -> str:
    name = f"`{row['id']}`" + (" (best)" if row["id"] == best_id else "")
    sha = row["sha256"][:12] if row["sha256"] else "—"
    training = (
        f"duplicate of `{row['duplicate_of']}`"
        if row["training"] == "duplicate"
        else row["training"]
    )
    fitness = row["fitness"]
    success = "—" if fitness is None else f"{fitness:.2f}"
    if fitness is not None and len(row["success_per_seed"]) > 1:
        success += " (" + ", ".join(f"{x:.2f}" for x in row["success_per_seed"]) + ")"
    cells = [name, sha, _cell(row["check"]), training, success]
    if norm is not None:
        score = None if fitness is None else human_normalized_score(fitness, *norm)
        cells.append("—" if score is None else _score(score))
    cells.append(_cell(row["outcome"]) if fitness is None else "")
    return "| " + " | ".join(cells) + " |"
