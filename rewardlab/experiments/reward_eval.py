"""Judge rewards against the true task before training on them: ``rewardlab eval-reward``.

One pass: build (or load) a labelled trajectory dataset of the env, score every reward on it
in batches (frames encoded once per CLIP encoder), compute the reward-quality metrics of
:mod:`rewardlab.evaluation.metrics` per reward, and write ``report.md``, ``summary.json`` and
figures. Two reference rows are always added: the env family's hand-designed dense reward (the
"human expert" reward) and a random reward (i.i.d. normal values per state): a reward worth
training on should sit far from the random row and near (or beyond) the dense one.

The ground truth is the true task: ``success(s')`` (the sparse task reward, for EPIC, STARC,
point-biserial, success detection, and the discounted true return of return correlations and
preference accuracy) and the ground-truth progress of ``s'`` (correlations, VOC). See
:data:`METRICS`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import yaml

from rewardlab.envs.gridworld import GridWorldEnv
from rewardlab.evaluation import metrics
from rewardlab.evaluation.datasets import (
    EPISODE_KINDS,
    DatasetConfig,
    TrajectoryDataset,
    generate_dataset,
    load_dataset,
)
from rewardlab.evaluation.scoring import (
    FrameEncoders,
    StateTable,
    TermReward,
    random_reward,
    recorded_reward,
    spec_reward,
)
from rewardlab.experiments.figures import colors, json_safe, md_cell, new_figure, save_png
from rewardlab.experiments.files import atomic_write
from rewardlab.wrappers.spec import ClipModelSpec, RewardSpec, parse_reward

__all__ = [
    "METRICS",
    "RewardScores",
    "TabularSetup",
    "evaluate_rewards",
    "load_sweep",
    "needs_frames",
    "run_eval",
    "sweep_specs",
    "tabular_setup",
]

METRICS: dict[str, tuple[str, str]] = {
    "epic": (
        "EPIC ↓",
        "EPIC distance to the true reward success(s'), canonicalized over the dataset's states "
        "(Gleave et al. 2020; D = sqrt((1 - rho) / 2) in [0, 1]; 0 = equivalent up to shaping "
        "and positive scale, ~0.71 = uncorrelated, 1 = negated). n/a for recorded env rewards, "
        "which exist only on the transitions that happened",
    ),
    "epic_tabular": (
        "EPIC tab. ↓",
        "exact EPIC over every (s, a, s') of the first episode's gridworld layout, uniform "
        "coverage",
    ),
    "starc": (
        "STARC ↓",
        "STARC distance (Skalse et al. 2023) over the full state space: value-adjusted "
        "levelling under a uniform policy, L2 normalization, L2 distance / 2, in [0, 1]",
    ),
    "point_biserial": (
        "r_pb ↑",
        "point-biserial correlation of the per-step reward with the success label of s' "
        "(VLM-RM's goal-label protocol)",
    ),
    "pearson_progress": (
        "Pearson prog. ↑",
        "Pearson correlation of per-step reward with progress(s')",
    ),
    "spearman_progress": (
        "Spearman prog. ↑",
        "Spearman correlation of per-step reward with progress(s')",
    ),
    "pearson_return": (
        "Pearson ret. ↑",
        "Pearson correlation of episode returns with true returns; both discounted with the "
        "agent's gamma from the episode's first state, the true reward being success(s')",
    ),
    "spearman_return": ("Spearman ret. ↑", "Spearman correlation of the same returns"),
    "voc": (
        "VOC ↑",
        "value-order correlation (GVL): Spearman correlation of the reward with the time step "
        "along each expert episode up to its first success, averaged (1 = monotone progress)",
    ),
    "roc_auc": ("ROC AUC ↑", "success detection: area under the ROC curve of the per-step reward"),
    "pr_auc": ("PR AUC ↑", "success detection: average precision (area under precision-recall)"),
    "threshold": ("thr.", "reward threshold with the best balanced accuracy for success"),
    "balanced_accuracy": (
        "bal. acc. ↑",
        "balanced accuracy of success detection at that threshold",
    ),
    "preference": (
        "pref. acc. ↑",
        "pairwise preference accuracy: how often the reward's discounted episode return orders "
        "two episodes as their true discounted return does (pairs whose true returns differ by "
        "more than 0.05; ties count 1/2). A reward an agent can farm by not finishing (raw "
        "progress) scores low here",
    ),
}
"""Report columns: key -> (header, definition)."""

PREFERENCE_MIN_GAP = 0.05


@dataclass
class TabularSetup:
    """Every state of one gridworld layout, with its exact dynamics and recorded rewards.

    Attributes:
        table: Every state of the layout (frames when the dataset has frames).
        transitions: ``(S, A, S)`` transition probabilities.
        env_reward: ``(S, A, S)`` the env's own reward.
        dense_reward: ``(S, A, S)`` the dense reference reward.
        seed: Reset seed that drew the layout.
    """

    table: StateTable
    transitions: np.ndarray
    env_reward: np.ndarray
    dense_reward: np.ndarray
    seed: int

    @property
    def n_actions(self) -> int:
        return int(self.transitions.shape[1])

    def recorded(self, which: str | None) -> np.ndarray | None:
        return {"env": self.env_reward, "dense": self.dense_reward}.get(which or "")


@dataclass
class RewardScores:
    """One report row: a reward's metrics and the arrays its figures draw."""

    name: str
    role: str  # "reward", "reference" or "sweep"
    metrics: dict[str, float]
    per_step: np.ndarray = field(repr=False)
    returns: np.ndarray = field(repr=False)
    roc: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    negative_control: bool = False


def dataset_table(ds: TrajectoryDataset) -> StateTable:
    """The dataset's state rows as a :class:`StateTable` (frames stay memory-mapped)."""
    return StateTable(
        key=str(ds.path),
        obs=ds.obs,
        progress=np.asarray(ds.progress),
        success=np.asarray(ds.success),
        terminal=np.asarray(ds.terminal),
        frames=ds.frames if ds.has_frames else None,
    )


def tabular_setup(ds: TrajectoryDataset) -> TabularSetup | None:
    """The exact MDP of the first episode's layout, for gridworld datasets (else None)."""
    cfg = ds.config
    render: dict[str, Any] = {"render_mode": "rgb_array"} if ds.has_frames else {}
    env = gym.make(ds.env_id, **render, **dict(cfg.env_kwargs))
    inner = env.unwrapped
    if not isinstance(inner, GridWorldEnv):
        env.close()
        return None
    seed = ds.episodes[0].seed
    env.reset(seed=seed)
    mdp = inner.tabular()
    n = len(mdp.terminal)
    obs, frames, progress = [], [], np.empty(n)
    for i in range(n):
        obs.append(inner.set_state_index(i))
        progress[i] = inner.progress()
        if ds.has_frames:
            frames.append(inner.render())
    env.close()
    dense_env = gym.make(
        ds.env_id, **{**dict(cfg.env_kwargs), "reward_type": inner.dense_reward_type}
    )
    dense_env.reset(seed=seed)
    dense_inner = dense_env.unwrapped
    assert isinstance(dense_inner, GridWorldEnv)
    dense = dense_inner.tabular().R
    dense_env.close()
    table = StateTable(
        key=f"{ds.path}#layout-seed{seed}",
        obs=np.stack(obs),
        progress=progress,
        success=mdp.terminal & (progress == 1.0),
        terminal=mdp.terminal.copy(),
        frames=np.stack(frames) if frames else None,
    )
    return TabularSetup(table, mdp.P, mdp.R, dense, seed)


RewardFactory = Callable[[StateTable], list[TermReward]]
"""Builds every reward to judge on a state table (values are per table)."""


def discounted_returns(per_step: np.ndarray, ds: TrajectoryDataset, gamma: float) -> np.ndarray:
    """``(E,)`` discounted return ``sum_t gamma^t r_t`` of each episode from its first state."""
    episode = ds.transition_episode()
    t = np.arange(len(per_step)) - ds.transition_starts[episode]
    weighted = per_step * np.power(gamma, t)
    return np.bincount(episode, weights=weighted, minlength=len(ds.episodes))


def _expert_prefixes(ds: TrajectoryDataset) -> tuple[np.ndarray, np.ndarray]:
    """Transition rows of every expert episode up to its first success, and their starts
    within that selection (VOC's episodes)."""
    _, s2 = ds.transition_states()
    success = np.asarray(ds.success)
    rows, starts = [], []
    n = 0
    for i, e in enumerate(ds.episodes):
        if e.kind != "expert":
            continue
        first = int(ds.transition_starts[i])
        ep = np.arange(first, first + e.n_steps)
        hits = np.flatnonzero(success[s2[ep]])
        ep = ep[: hits[0] + 1] if len(hits) else ep
        rows.append(ep)
        starts.append(n)
        n += len(ep)
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(rows), np.array(starts, dtype=np.int64)


def evaluate_rewards(
    ds: TrajectoryDataset,
    make_rewards: RewardFactory,
    *,
    roles: Sequence[str],
    gamma: float,
    coverage: int = 256,
    seed: int = 0,
    tabular: TabularSetup | None = None,
) -> list[RewardScores]:
    """Every metric of :data:`METRICS` for each reward ``make_rewards`` builds.

    Args:
        ds: The dataset.
        make_rewards: Called with the dataset's state table (and the tabular one on
            gridworlds): the rewards, in report order.
        roles: Role of each reward (``"reward"``, ``"reference"``, ``"sweep"``).
        gamma: The agent's discount: of the discounted returns, and of EPIC's and STARC's
            canonicalization (a reward shaped with another discount, the mismatched-discount
            negative control, is then not equivalent to the true reward, as it must not be).
        coverage: Samples ``M`` of EPIC's coverage distribution (states uniform over the
            dataset's state rows, drawn with ``seed``).
        seed: Seed of the coverage samples.
        tabular: The gridworld's exact model, for the tabular EPIC and STARC columns.
    """
    table = dataset_table(ds)
    rewards = make_rewards(table)
    tab_rewards = make_rewards(tabular.table) if tabular is not None else None
    s, s2 = ds.transition_states()
    a = np.arange(len(s))
    success_next = np.asarray(ds.success)[s2].astype(bool)
    progress_next = np.asarray(ds.progress)[s2]
    true_returns = discounted_returns(success_next.astype(np.float64), ds, gamma)
    expert_rows, expert_starts = _expert_prefixes(ds)

    rng = np.random.default_rng(seed)
    cov_states = rng.integers(0, len(table), size=coverage)
    cov_actions = rng.integers(0, len(s), size=coverage)
    truth = TermReward("success", values=table.info("is_success")).index_function(table.terminal)
    assert truth is not None
    if tabular is not None:
        tt = tabular.table
        truth_tensor = TermReward("success", values=tt.info("is_success")).tensor(
            tt.terminal, tabular.n_actions, None
        )

    recorded_arrays = {"env": np.asarray(ds.rewards), "dense": np.asarray(ds.dense_rewards)}
    out: list[RewardScores] = []
    for k, (reward, role) in enumerate(zip(rewards, roles, strict=True)):
        per_step = reward.on_transitions(
            s, s2, table.terminal, recorded_arrays.get(reward.recorded or "")
        )
        returns = discounted_returns(per_step, ds, gamma)
        m: dict[str, float] = {}
        fn = reward.index_function(table.terminal)
        m["epic"] = (
            _safe(metrics.epic_distance, truth, fn, (s, a, s2), cov_states, cov_actions, gamma)
            if fn is not None
            else math.nan
        )
        if tabular is not None and tab_rewards is not None:
            tr = tab_rewards[k]
            tt = tabular.table
            tensor = tr.tensor(tt.terminal, tabular.n_actions, tabular.recorded(tr.recorded))
            m["epic_tabular"] = _safe(metrics.tabular_epic_distance, truth_tensor, tensor, gamma)
            # STARC follows the dynamics: transitions out of a terminal state never happen, and
            # pay 0, as in the env's tabular model.
            live = (~tt.terminal)[:, None, None]
            m["starc"] = _safe(
                metrics.starc_distance,
                truth_tensor * live,
                tensor * live,
                tabular.transitions,
                gamma,
            )
        m["point_biserial"] = metrics.point_biserial(per_step, success_next)
        m["pearson_progress"] = metrics.pearson(per_step, progress_next)
        m["spearman_progress"] = metrics.spearman(per_step, progress_next)
        m["pearson_return"] = metrics.pearson(returns, true_returns)
        m["spearman_return"] = metrics.spearman(returns, true_returns)
        m["voc"] = (
            metrics.value_order_correlation(per_step[expert_rows], expert_starts)[0]
            if len(expert_starts)
            else math.nan
        )
        m["roc_auc"] = metrics.roc_auc(per_step, success_next)
        m["pr_auc"] = metrics.average_precision(per_step, success_next)
        m["threshold"], m["balanced_accuracy"] = metrics.best_threshold(per_step, success_next)
        m["preference"], _ = metrics.preference_accuracy(
            returns, true_returns, min_gap=PREFERENCE_MIN_GAP
        )
        roc = None
        if success_next.any() and not success_next.all():
            fpr, tpr, _ = metrics.roc_curve(per_step, success_next)
            roc = (fpr, tpr)
        out.append(
            RewardScores(
                name=reward.name,
                role=role,
                metrics=m,
                per_step=per_step,
                returns=returns,
                roc=roc,
                negative_control=reward.is_negative_control,
            )
        )
    return out


def _safe(fn: Callable[..., float], *args: Any) -> float:
    """A distance, or nan where it is undefined (a reward constant up to shaping)."""
    try:
        return float(fn(*args))
    except ValueError:
        return math.nan


# --- sweeps ----------------------------------------------------------------------------------


def sweep_specs(sweep: Mapping[str, Any]) -> list[tuple[str, RewardSpec]]:
    """Expand a CLIP sweep (heads x options x prompt sets) into labelled reward specs.

    ``sweep`` holds the :class:`~rewardlab.wrappers.spec.ClipModelSpec` fields shared by
    every point (``model``, ``pretrained``, ``device``, ``resize``), ``heads`` (head name ->
    options, each option a value or a list of values to sweep) and ``prompt_sets`` (name ->
    ``goal`` / ``baseline`` / ``negatives``; an empty mapping uses the task's own prompts)::

        model: ViT-B-32
        pretrained: laion2b_s34b_b79k
        heads:
          goal_baseline: {alpha: [0.0, 0.5, 1.0]}
          softmax: {temperature: [0.01, 0.1]}
        prompt_sets:
          task: {}
          short: {goal: a red block on a green disc, baseline: a red block}

    Every point shares the encoder, so the frames are encoded once for the whole grid.

    Raises:
        ValueError: For unknown keys or fields, naming them.
    """
    allowed = {"model", "pretrained", "device", "resize", "heads", "prompt_sets"}
    unknown = sorted(set(sweep) - allowed)
    if unknown:
        raise ValueError(f"sweep: unknown key(s) {unknown}; valid keys are {sorted(allowed)}")
    heads = sweep.get("heads") or {"goal_baseline": {"alpha": [0.0, 0.5, 1.0]}}
    prompt_sets = sweep.get("prompt_sets") or {"task": {}}
    shared = {k: sweep[k] for k in ("model", "pretrained", "device", "resize") if k in sweep}
    out: list[tuple[str, RewardSpec]] = []
    for head, options in heads.items():
        options = dict(options or {})
        names = list(options)
        grids = [v if isinstance(v, list) else [v] for v in options.values()]
        for values in itertools.product(*grids):
            opts = dict(zip(names, values, strict=True))
            for set_name, prompts in prompt_sets.items():
                data = {
                    "model": {
                        "kind": "clip",
                        **shared,
                        "head": head,
                        "options": opts,
                        **(prompts or {}),
                    }
                }
                label = " ".join([f"clip {head}", *(f"{k}={v}" for k, v in opts.items())])
                label = f"{label} [{set_name}]"
                out.append((label, parse_reward(data, where=f"sweep[{label}]")))
    return out


def needs_frames(specs: Sequence[RewardSpec]) -> bool:
    """True when a spec scores frames (a CLIP model, as reward or as potential)."""
    return any(
        isinstance(part, ClipModelSpec) for spec in specs for part in (spec.model, spec.shaping)
    )


def load_sweep(path: str | Path) -> list[tuple[str, RewardSpec]]:
    """:func:`sweep_specs` of a YAML file."""
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, Mapping):
        raise ValueError(f"sweep file {path} must hold a mapping, got {type(data).__name__}")
    return sweep_specs(data)


# --- the command -----------------------------------------------------------------------------


def _own_reward_type(ds: TrajectoryDataset) -> str:
    env = gym.make(ds.env_id, **dict(ds.config.env_kwargs))
    try:
        return str(env.unwrapped.config.reward_type)  # type: ignore[attr-defined]
    finally:
        env.close()


def open_dataset(
    path: Path, config: DatasetConfig, *, overwrite: bool, log: Callable[[str], None]
) -> TrajectoryDataset:
    """Load the dataset at ``path`` when it exists (it must match ``config``'s env and, when
    it is the command's own default dataset, its settings), else generate it there."""
    if path.exists() and not overwrite:
        ds = load_dataset(path, env_id=config.env_id)
        # A dataset with frames also serves a request without them.
        if ds.config not in (config, dataclasses.replace(config, frames=True)):
            raise ValueError(
                f"the dataset at {path} was generated with other settings ({ds.config}); pass "
                "--dataset PATH to use it as it is, --overwrite-dataset to regenerate it, or "
                "another --out"
            )
        log(f"dataset: {ds}")
        return ds
    log(f"generating the dataset at {path} ...")
    ds = generate_dataset(config, path, overwrite=overwrite)
    log(f"dataset: {ds}")
    return ds


def run_eval(
    env_id: str,
    rewards: Sequence[str | Mapping[str, Any]],
    out_dir: str | Path,
    *,
    dataset: str | Path | None = None,
    dataset_config: DatasetConfig | None = None,
    overwrite_dataset: bool = False,
    sweep: Sequence[tuple[str, RewardSpec]] = (),
    gamma: float = 0.99,
    coverage: int = 256,
    seed: int = 0,
    log: Callable[[str], None] = lambda _msg: None,
) -> Path:
    """Judge ``rewards`` (and a CLIP ``sweep``) on a dataset of ``env_id``; write the report.

    Args:
        env_id: The env.
        rewards: Reward specs (short names, YAML strings or mappings, as for ``train``).
        out_dir: Report folder.
        dataset: An existing dataset folder to use as it is; None uses (or generates)
            ``out_dir/dataset`` with ``dataset_config``.
        dataset_config: How to generate the dataset when there is none.
        overwrite_dataset: Regenerate the dataset even if one exists.
        sweep: Extra labelled CLIP specs (:func:`sweep_specs`).
        gamma: The agent's discount (shaping rewards use it unless they set their own).
        coverage: EPIC coverage samples.
        seed: Seed of the random reference reward and the coverage samples.
        log: Progress messages.

    Returns:
        The path of ``report.md``.

    Raises:
        ValueError: Unknown env or reward spec, a dataset of another env or version, an
            empty dataset, a reward the dataset cannot score; nothing is written then.
    """
    if env_id not in gym.registry:
        raise ValueError(f"unknown env id {env_id!r}; `rewardlab envs` lists the valid ones")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    specs = [
        (r if isinstance(r, str) else json.dumps(dict(r)), parse_reward(r, where=f"reward[{i}]"))
        for i, r in enumerate(rewards)
    ]
    specs += list(sweep)
    if not specs:
        raise ValueError("no rewards to judge: pass at least one --reward (or a --sweep)")
    out = Path(out_dir)
    if dataset is not None:
        ds = load_dataset(dataset, env_id=env_id)
        log(f"dataset: {ds}")
    else:
        cfg = dataset_config or DatasetConfig(env_id)
        if cfg.env_id != env_id:
            raise ValueError(f"dataset_config is for {cfg.env_id}, not {env_id}")
        ds = open_dataset(out / "dataset", cfg, overwrite=overwrite_dataset, log=log)

    own = _own_reward_type(ds)
    dense_type = str(ds.metadata["dense_reward_type"])
    encoders = FrameEncoders(env_id, dict(ds.config.env_kwargs))
    n_user = len(specs) - len(sweep)
    roles = ["reward"] * n_user + ["sweep"] * len(sweep) + ["reference", "reference"]
    dense_name = f"ref: env {dense_type} reward (expert)"

    def make_rewards(table: StateTable) -> list[TermReward]:
        built = [
            spec_reward(
                name,
                spec,
                table,
                gamma=gamma,
                encoders=encoders,
                own_reward_type=own,
                dense_reward_type=dense_type,
            )
            for name, spec in specs
        ]
        return [
            *built,
            recorded_reward(dense_name, "dense"),
            random_reward("ref: random", table, seed),
        ]

    log(f"scoring {len(specs)} reward(s) and 2 references on {ds.n_transitions} transitions ...")
    tabular = tabular_setup(ds)
    scores = evaluate_rewards(
        ds, make_rewards, roles=roles, gamma=gamma, coverage=coverage, seed=seed, tabular=tabular
    )
    log(f"frames encoded: {encoders.frames_encoded}")
    return write_eval_report(out, ds, scores, gamma=gamma, tabular=tabular, env_id=env_id)


# --- report ----------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:60] or "reward"


def _plot_progress(path: Path, ds: TrajectoryDataset, scores: list[RewardScores]) -> None:
    experts = [i for i, e in enumerate(ds.episodes) if e.kind == "expert"][:3]
    ncols = min(4, len(scores))
    nrows = math.ceil(len(scores) / ncols)
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=3.6, height=2.8)
    s, s2 = ds.transition_states()
    progress = np.asarray(ds.progress)
    for ax, sc in zip(axes, scores, strict=False):
        lo, hi = float(np.min(sc.per_step)), float(np.max(sc.per_step))
        span = hi - lo if hi > lo else 1.0
        for j, i in enumerate(experts):
            rows = slice(ds.transition_starts[i], ds.transition_starts[i] + ds.n_steps[i])
            t = np.arange(1, ds.n_steps[i] + 1)
            ax.plot(t, (sc.per_step[rows] - lo) / span, color=f"C{j}", lw=1.2)
            ax.plot(t, progress[s2[rows]], color=f"C{j}", ls="--", lw=0.8)
        ax.set_title(sc.name[:48], fontsize=8)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("step", fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in axes[len(scores) :]:
        ax.set_axis_off()
    fig.suptitle(
        "Expert episodes: reward (solid, min-max scaled over the dataset) vs progress (dashed)",
        fontsize=9,
    )
    save_png(fig, path)


def _plot_histograms(path: Path, ds: TrajectoryDataset, scores: list[RewardScores]) -> None:
    _, s2 = ds.transition_states()
    success = np.asarray(ds.success)[s2].astype(bool)
    ncols = min(4, len(scores))
    nrows = math.ceil(len(scores) / ncols)
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=3.6, height=2.6)
    for ax, sc in zip(axes, scores, strict=False):
        bins = np.histogram_bin_edges(sc.per_step, bins=30)
        if success.any():
            ax.hist(
                sc.per_step[success],
                bins=bins,
                density=True,
                alpha=0.6,
                color="C2",
                label="success",
            )
        ax.hist(
            sc.per_step[~success],
            bins=bins,
            density=True,
            alpha=0.6,
            color="C3",
            label="no success",
        )
        ax.set_title(sc.name[:48], fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    for ax in axes[len(scores) :]:
        ax.set_axis_off()
    fig.suptitle("Per-step reward of success vs non-success frames (density)", fontsize=9)
    save_png(fig, path)


def _plot_roc(path: Path, scores: list[RewardScores]) -> None:
    fig, (ax,) = new_figure(width=5.5, height=5.0)
    palette = colors([s.name for s in scores])
    for sc in scores:
        if sc.roc is None:
            continue
        fpr, tpr = sc.roc
        ax.plot(
            fpr,
            tpr,
            color=palette[sc.name],
            lw=1.2,
            label=f"{sc.name[:40]} ({_fmt(sc.metrics['roc_auc'])})",
        )
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("Success detection from the per-step reward")
    ax.legend(fontsize=6, loc="lower right")
    save_png(fig, path)


def write_eval_report(
    out_dir: Path,
    ds: TrajectoryDataset,
    scores: list[RewardScores],
    *,
    gamma: float,
    tabular: TabularSetup | None,
    env_id: str,
) -> Path:
    """Write the figures, ``summary.json`` and (last) ``report.md``; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {
        "progress": "reward_vs_progress.png",
        "histograms": "success_histograms.png",
        "roc": "roc.png",
    }
    _plot_progress(out_dir / figures["progress"], ds, scores)
    _plot_histograms(out_dir / figures["histograms"], ds, scores)
    _plot_roc(out_dir / figures["roc"], scores)
    columns = [k for k in METRICS if tabular is not None or k not in ("epic_tabular", "starc")]
    summary = {
        "env_id": env_id,
        "dataset": str(ds.path),
        "dataset_config": ds.config.to_dict(),
        "gamma": gamma,
        "tabular_layout_seed": None if tabular is None else tabular.seed,
        "rewards": [
            {"name": s.name, "role": s.role, "negative_control": s.negative_control, **s.metrics}
            for s in scores
        ],
    }
    atomic_write(out_dir / "summary.json", json.dumps(json_safe(summary), indent=1))

    kinds = {k: sum(e.kind == k for e in ds.episodes) for k in EPISODE_KINDS}
    success_rate = float(np.mean(np.asarray(ds.success)[ds.transition_states()[1]]))
    lines = [
        f"# Reward evaluation: {env_id}",
        "",
        f"Dataset `{ds.path}`: {len(ds.episodes)} episodes "
        f"({', '.join(f'{n} {k}' for k, n in kinds.items() if n)}), {ds.n_transitions} "
        f"transitions, {success_rate:.1%} of them entering a success state"
        f"{'' if ds.has_frames else ', no frames'}. Agent discount gamma = {gamma}.",
        "",
        "Ground truth: the true task. EPIC, STARC, point-biserial and success detection "
        "compare with success(s') (the sparse task reward); correlations and VOC with the "
        "ground-truth progress of s'; returns are discounted with the agent's gamma, the true "
        "return being that of success(s').",
        "",
        "## Metrics",
        "",
        "| reward | " + " | ".join(METRICS[k][0] for k in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for sc in scores:
        name = md_cell(sc.name) + (" (negative control)" if sc.negative_control else "")
        name = f"*{name}*" if sc.role == "reference" else name
        lines.append(f"| {name} | " + " | ".join(_fmt(sc.metrics[k]) for k in columns) + " |")
    lines += ["", "Columns:", ""]
    lines += [f"- **{METRICS[k][0]}**: {METRICS[k][1]}." for k in columns]
    if tabular is not None:
        lines += [
            "",
            f"Tabular columns use the layout drawn by reset seed {tabular.seed} "
            f"({len(tabular.table)} states).",
        ]
    lines += [
        "",
        "n/a: undefined for that reward (a constant reward has no correlation; a recorded env "
        "reward cannot be evaluated on the synthetic transitions EPIC needs).",
        "",
        "## Figures",
        "",
        f"![reward vs progress]({figures['progress']})",
        "",
        f"![success histograms]({figures['histograms']})",
        "",
        f"![ROC]({figures['roc']})",
        "",
    ]
    report = out_dir / "report.md"
    atomic_write(report, "\n".join(lines))
    return report
