"""The reward metrics on a trajectory dataset: every metric of :data:`METRICS` (functions of
:mod:`~rewardlab.evaluation.reward_metrics`) for each reward, one report row per reward.

The ground truth is the true task: ``success(s')``, the sparse task reward (EPIC, STARC,
point-biserial, success detection, and the discounted true return of the return correlations
and preference accuracy), and the ground-truth progress of ``s'`` (correlations, VOC).
Rewards are :class:`~rewardlab.evaluation.reward_tables.TermReward` built per state table, so
the same reward can be judged on the dataset's states and, on gridworlds, on every state of a
layout (exact tabular EPIC and STARC).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from rewardlab.envs.gridworld import GridWorldEnv
from rewardlab.evaluation import bootstrap, regret, reward_metrics
from rewardlab.evaluation.datasets import TrajectoryDataset
from rewardlab.evaluation.reward_tables import StateTable, TermReward

__all__ = [
    "METRICS",
    "PROBE_METRIC",
    "REGRET_STEPS",
    "SUCCESS_METRICS",
    "TABULAR_METRICS",
    "RewardFactory",
    "RewardScores",
    "TabularSetup",
    "dataset_table",
    "discounted_returns",
    "evaluate_rewards",
    "tabular_setup",
]

REGRET_STEPS = 10
"""Soft policy-iteration steps of the limited-optimization regret columns."""

TABULAR_METRICS = (
    "epic_tabular",
    "starc",
    "opt_success",
    "opt_regret",
    f"npg{REGRET_STEPS}_success",
    f"npg{REGRET_STEPS}_regret",
)
"""The columns that need a gridworld's exact model (n/a elsewhere)."""

SUCCESS_METRICS = (
    "epic",
    "point_biserial",
    "pearson_return",
    "spearman_return",
    "roc_auc",
    "pr_auc",
    "threshold",
    "balanced_accuracy",
    "preference",
)
"""The sampled columns that rest on the dataset's success labels (the true reward is
success(s')): with few transitions entering success they are noise, however exact they look."""

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
        "coverage; n/a for recorded env rewards, known on possible transitions only",
    ),
    "starc": (
        "STARC ↓",
        "STARC distance (Skalse et al. 2023) over the full state space: value-adjusted "
        "levelling under a uniform policy, L2 normalization, L2 distance / 2, in [0, 1]",
    ),
    "opt_success": (
        "opt. succ. ↑",
        "exact, tabular: success probability within the time limit of the reward's optimal "
        "policy (value iteration with the agent's gamma), from the layout's first states",
    ),
    "opt_regret": (
        "opt. regret ↓",
        "exact, tabular: normalized regret of that policy on the true task, (J* - J) / J* with "
        "J the true discounted return (0 = as good as optimizing the task, 1 = never succeeds)",
    ),
    f"npg{REGRET_STEPS}_success": (
        f"NPG-{REGRET_STEPS} succ. ↑",
        f"exact, tabular: success probability after {REGRET_STEPS} soft policy-iteration "
        "(natural policy gradient, step size 1) steps from the uniform policy on the reward: "
        "what a learner with limited experience gets; predicts training where the optimum "
        "does not (a discount mismatch solves the task at the optimum yet stalls learning)",
    ),
    f"npg{REGRET_STEPS}_regret": (
        f"NPG-{REGRET_STEPS} regret ↓",
        f"exact, tabular: normalized regret of that policy after {REGRET_STEPS} steps",
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

PROBE_METRIC = "probe_success"
METRICS[PROBE_METRIC] = (
    "probe succ. ↑",
    "a cheap proxy, not exact and not a dataset metric: the true success rate after one "
    "short PPO run (eval-reward --probe-steps; one seed, evaluated on 20 episodes) on the "
    "reward; noisy, for envs without a tabular model",
)

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
        initial: ``(S,)`` the distribution of an episode's first state on this layout.
        horizon: The env's time limit in steps.
    """

    table: StateTable
    transitions: np.ndarray
    env_reward: np.ndarray
    dense_reward: np.ndarray
    seed: int
    initial: np.ndarray
    horizon: int

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
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Bootstrap interval of each metric sampled from the dataset (none for exact ones)."""


def dataset_table(ds: TrajectoryDataset) -> StateTable:
    """The dataset's state rows as a :class:`StateTable` (frames stay memory-mapped)."""
    return StateTable(
        key=str(ds.path),
        obs=ds.obs,
        progress=np.asarray(ds.progress),
        success=np.asarray(ds.success),
        terminal=np.asarray(ds.terminal),
        frames=ds.frames if ds.has_frames else None,
        states={name: ds.state(name) for name in ds.metadata["state_variables"]},
    )


def tabular_setup(ds: TrajectoryDataset) -> TabularSetup | None:
    """The exact MDP of the first episode's layout, for gridworld datasets (else None)."""
    cfg = ds.config
    render: dict[str, Any] = {"render_mode": "rgb_array"} if ds.has_frames else {}
    if not ds.env_id.startswith("rewardlab/"):
        return None
    env = gym.make(ds.env_id, **render, **dict(cfg.env_kwargs))
    inner = env.unwrapped
    if not isinstance(inner, GridWorldEnv):
        env.close()
        return None
    seed = ds.episodes[0].seed
    env.reset(seed=seed)
    mdp = inner.tabular()
    n = len(mdp.terminal)
    obs, frames, states, progress = [], [], [], np.empty(n)
    for i in range(n):
        obs.append(inner.set_state_index(i))
        progress[i] = inner.progress()
        states.append(inner.state_dict())
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
        states={k: np.stack([st[k] for st in states]) for k in states[0]},
    )
    horizon = env.spec.max_episode_steps if env.spec is not None else None
    if horizon is None:
        raise ValueError(f"{ds.env_id} has no time limit (max_episode_steps) to judge regret in")
    return TabularSetup(table, mdp.P, mdp.R, dense, seed, mdp.initial, horizon)


RewardFactory = Callable[[StateTable], list[TermReward]]
"""Builds every reward to judge on a state table (values are per table)."""


def discounted_returns(per_step: np.ndarray, ds: TrajectoryDataset, gamma: float) -> np.ndarray:
    """``(E,)`` discounted return ``sum_t gamma^t r_t`` of each episode from its first state."""
    episode = ds.transition_episode()
    t = np.arange(len(per_step)) - ds.transition_starts[episode]
    weighted = per_step * np.power(gamma, t)
    return np.bincount(episode, weights=weighted, minlength=len(ds.episodes))


def _expert_prefixes(ds: TrajectoryDataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Transition rows of every expert episode up to its first success, their starts within
    that selection (VOC's episodes), and those episodes' indices."""
    _, s2 = ds.transition_states()
    success = np.asarray(ds.success)
    rows, experts = [], []
    for k, (first, e) in enumerate(zip(ds.transition_starts, ds.episodes, strict=True)):
        if e.kind == "expert":
            ep = np.arange(first, first + e.n_steps)
            hits = np.flatnonzero(success[s2[ep]])
            rows.append(ep[: hits[0] + 1] if len(hits) else ep)
            experts.append(k)
    starts = np.cumsum([0, *map(len, rows)], dtype=np.int64)[:-1]
    rows_all = np.concatenate([np.zeros(0, dtype=np.int64), *rows])
    return rows_all, starts, np.asarray(experts, dtype=np.int64)


def evaluate_rewards(
    ds: TrajectoryDataset,
    make_rewards: RewardFactory,
    *,
    roles: Sequence[str],
    gamma: float,
    coverage: int = 256,
    seed: int = 0,
    tabular: TabularSetup | None = None,
    bootstrap_reps: int = 0,
    confidence: float = 0.95,
    on_scored: Callable[[str], None] | None = None,
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
        bootstrap_reps: Replicates of the bootstrap over episodes that gives every metric
            sampled from the dataset (all but :data:`TABULAR_METRICS`, which are exact) its
            ``confidence`` interval; 0 for none. Replicates are drawn with ``seed``.
        confidence: Of the bootstrap intervals.
        on_scored: Called with each reward's name once its metrics are computed (progress).
    """
    table = dataset_table(ds)
    rewards = make_rewards(table)
    tab_rewards = make_rewards(tabular.table) if tabular is not None else None
    s, s2 = ds.transition_states()
    a = np.arange(len(s))
    success_next = np.asarray(ds.success)[s2].astype(bool)
    both_classes = success_next.any() and not success_next.all()
    progress_next = np.asarray(ds.progress)[s2]
    true_returns = discounted_returns(success_next.astype(np.float64), ds, gamma)
    expert_rows, expert_starts, experts = _expert_prefixes(ds)

    rng = np.random.default_rng(seed)
    cov_states = rng.integers(0, len(table), size=coverage)
    cov_actions = rng.integers(0, len(s), size=coverage)
    truth = TermReward("success", values=table.info("is_success")).index_function(table.terminal)
    assert truth is not None
    sas = (s, a, s2)
    truth_canonical = reward_metrics.epic_canonical(truth, sas, cov_states, cov_actions, gamma)
    boot = (
        _Replicates(ds, success_next, progress_next, true_returns, experts, bootstrap_reps, seed)
        if bootstrap_reps > 0
        else None
    )
    if tabular is not None:
        tt = tabular.table
        truth_tensor = TermReward("success", values=tt.info("is_success")).tensor(
            tt.terminal, tabular.n_actions, None
        )
        judge = regret.RegretJudge(
            tabular.transitions,
            truth_tensor,
            tabular.initial,
            tt.terminal,
            tt.success,
            tabular.horizon,
            gamma,
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
        canonical = (
            reward_metrics.epic_canonical(fn, sas, cov_states, cov_actions, gamma)
            if fn is not None
            else None
        )
        m["epic"] = (
            _safe(reward_metrics.canonical_distance, truth_canonical, canonical)
            if canonical is not None
            else math.nan
        )
        if tabular is not None and tab_rewards is not None:
            tr = tab_rewards[k]
            tensor = tr.tensor(tt.terminal, tabular.n_actions, tabular.recorded(tr.recorded))
            # A recorded reward is known on possible transitions only; EPIC's uniform coverage
            # is almost all impossible ones (STARC follows the dynamics and needs no more).
            m["epic_tabular"] = (
                math.nan
                if tr.recorded is not None
                else _safe(reward_metrics.tabular_epic_distance, truth_tensor, tensor, gamma)
            )
            # STARC follows the dynamics: transitions out of a terminal state never happen, and
            # pay 0, as in the env's tabular model.
            live = (~tt.terminal)[:, None, None]
            m["starc"] = _safe(
                reward_metrics.starc_distance,
                truth_tensor * live,
                tensor * live,
                tabular.transitions,
                gamma,
            )
            # Policies follow the dynamics: a recorded reward's tensor is exact where they go.
            m.update(_regret_metrics(judge, tensor))
        m["point_biserial"] = reward_metrics.point_biserial(per_step, success_next)
        m["pearson_progress"] = reward_metrics.pearson(per_step, progress_next)
        m["spearman_progress"] = reward_metrics.spearman(per_step, progress_next)
        m["pearson_return"] = reward_metrics.pearson(returns, true_returns)
        m["spearman_return"] = reward_metrics.spearman(returns, true_returns)
        m["voc"], voc_episodes = (
            reward_metrics.value_order_correlation(per_step[expert_rows], expert_starts)
            if len(expert_starts)
            else (math.nan, np.zeros(0))
        )
        m["roc_auc"] = reward_metrics.roc_auc(per_step, success_next)
        m["pr_auc"] = reward_metrics.average_precision(per_step, success_next)
        m["threshold"], m["balanced_accuracy"] = reward_metrics.best_threshold(
            per_step, success_next
        )
        m["preference"], _ = reward_metrics.preference_accuracy(
            returns, true_returns, min_gap=PREFERENCE_MIN_GAP
        )
        roc = reward_metrics.roc_curve(per_step, success_next)[:2] if both_classes else None
        if boot is not None:
            epic = None if canonical is None else (canonical.values, truth_canonical.values)
            boot.add(per_step, returns, voc_episodes, epic)
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
        if on_scored is not None:
            on_scored(reward.name)
    if boot is not None:
        for scores, intervals in zip(out, boot.intervals(confidence), strict=True):
            scores.intervals = {
                k: v for k, v in intervals.items() if math.isfinite(scores.metrics[k])
            }
    return out


class _Replicates:
    """The bootstrap over episodes of every sampled metric (:mod:`.bootstrap`): rewards are
    added one by one, then every block of replicates is drawn once for all of them, with
    what they share (the ground truth's ranks) computed once per block."""

    def __init__(
        self,
        ds: TrajectoryDataset,
        success_next: np.ndarray,
        progress_next: np.ndarray,
        true_returns: np.ndarray,
        experts: np.ndarray,
        reps: int,
        seed: int,
    ) -> None:
        self.episode = ds.transition_episode()
        self.draws = bootstrap.EpisodeBootstrap.draw(self.episode, len(ds.episodes), reps, seed)
        self.labels = success_next.astype(np.float64)
        self.truth = [bootstrap.Ranking(x, self.episode) for x in (self.labels, progress_next)]
        self.true_returns = true_returns
        self.true_return_ranks = bootstrap.Ranking(true_returns)
        self.experts = experts
        self.rewards: list[tuple[Any, ...]] = []
        self.canonical_truth: bootstrap.Ranking | None = None

    def add(
        self,
        per_step: np.ndarray,
        returns: np.ndarray,
        voc_episodes: np.ndarray,
        epic: tuple[np.ndarray, np.ndarray] | None,
    ) -> None:
        """A reward's per-step values, episode returns, per-episode VOC and (where EPIC is
        defined for it) its and the truth's canonicalized rewards."""
        ranks = (
            bootstrap.Ranking(per_step, self.episode, labels=self.labels),
            bootstrap.Ranking(returns),
        )
        if epic is not None:
            if self.canonical_truth is None:
                self.canonical_truth = bootstrap.Ranking(epic[1], self.episode)
            canonical = (bootstrap.Ranking(epic[0], self.episode), self.canonical_truth)
        self.rewards.append((returns, voc_episodes, None if epic is None else canonical, *ranks))

    def intervals(self, confidence: float) -> list[dict[str, tuple[float, float]]]:
        """Per reward added, the interval of every sampled metric."""
        b = bootstrap
        values: list[dict[str, list[np.ndarray]]] = [{} for _ in self.rewards]
        for w_ep in self.draws.blocks():
            labels, progress = (r.on(w_ep) for r in self.truth)
            true_returns = self.true_return_ranks.on(w_ep)
            for out, (_, voc, epic, ranks, return_ranks) in zip(values, self.rewards, strict=True):
                x, ret = ranks.on(w_ep), return_ranks.on(w_ep)
                r: dict[str, np.ndarray] = {
                    "point_biserial": b.w_pearson(x, labels),
                    "pearson_progress": b.w_pearson(x, progress),
                    "spearman_progress": b.w_spearman(x, progress),
                    "pearson_return": b.w_pearson(ret, true_returns),
                    "spearman_return": b.w_spearman(ret, true_returns),
                    "voc": b.w_mean(voc, w_ep[:, self.experts]),
                    "roc_auc": b.w_roc_auc(x),
                    "pr_auc": b.w_average_precision(x),
                }
                r["threshold"], r["balanced_accuracy"] = b.w_best_threshold(x)
                if epic is not None:
                    r["epic"] = b.w_pearson_distance(epic[0].on(w_ep), epic[1].on(w_ep))
                for key, v in r.items():
                    out.setdefault(key, []).append(v)
        # Over episodes only, so all replicates at once: the episode-pair matrices are built
        # once per reward, not once per block.
        for out, (returns, *_) in zip(values, self.rewards, strict=True):
            out["preference"] = [
                b.w_preference(
                    returns, self.true_returns, self.draws.counts, min_gap=PREFERENCE_MIN_GAP
                )
            ]
        return [
            {k: b.percentile_interval(np.concatenate(v), confidence) for k, v in out.items()}
            for out in values
        ]


def _regret_metrics(judge: regret.RegretJudge, tensor: np.ndarray) -> dict[str, float]:
    out = judge(tensor, steps=(REGRET_STEPS,))
    limited = out[f"k={REGRET_STEPS}"]
    return {
        "opt_success": out["optimum"].success,
        "opt_regret": out["optimum"].regret,
        f"npg{REGRET_STEPS}_success": limited.success,
        f"npg{REGRET_STEPS}_regret": limited.regret,
    }


def _safe(fn: Callable[..., float], *args: Any) -> float:
    """A distance, or nan where it is undefined (a reward constant up to shaping)."""
    try:
        return float(fn(*args))
    except reward_metrics.UndefinedDistanceError:
        return math.nan
