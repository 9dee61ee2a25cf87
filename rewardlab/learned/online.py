"""The online preference loop (Christiano et al. 2017; imitation's preference comparisons;
PEBBLE, Lee et al. 2021): the agent trains on the current learned reward while its own
trajectories are queried, labelled and the reward refit.

:func:`learn_online` runs an on-policy SB3 agent (PPO or A2C, from rewardlab's agent factory)
on :func:`rewardlab.make_vec_env` paying an :class:`EnsembleReward`: the mean of the current
ensemble's rewards, standardized on the states the agent has visited, through rewardlab's
:class:`~rewardlab.wrappers.vec.VecModelReward` (zero until the first fit). A
:class:`PreferenceLoop` callback records the agent's trajectories (state variables and the
true task's signal, from the step infos) and, at the end of the first rollout at or after each
multiple of ``refit_every`` env steps, chooses ``queries_per_round`` pairs of segments among
them (at random, or those the ensemble disagrees on most among ``10 x`` random candidates;
never a pair labelled before, in either order), labels them with a synthetic labeller of the
true task (progress or success summed over each segment, optionally Boltzmann-rational, or
HERON's hierarchical comparison of success then progress; each label flipped with probability
``noise``, which the Bradley-Terry model takes as ``eps = 2 * noise``), refits the ensemble
from its previous weights and swaps the new reward in, until the label ``budget`` is spent.

Trajectories are recorded in fragments cut at rollout ends (segments never straddle a
rollout boundary), so labels can be drawn from the first rollout on.

On-policy only: each rollout is collected under the reward of its time, and PPO/A2C discard
it after one update, so nothing needs relabelling after a refit. An off-policy agent (SAC,
TD3, DQN) would keep transitions paid by old rewards in its replay buffer; PEBBLE relabels
the whole buffer after each refit. This loop does not, and refuses off-policy algorithms.

Outputs (``out_dir``): ``checkpoint.pt`` (ensemble member 0, with its
:class:`~rewardlab.learned.reward_net.Normalization`), ``agent.zip`` (the SB3 agent),
``segments/`` and ``preferences.jsonl`` (below), ``refits.png``, ``summary.json``,
``report.md`` and, with ``judge``, ``eval/`` (``eval-reward`` on other episodes).

``segments/`` is a :mod:`~rewardlab.evaluation.datasets` folder (format
``rewardlab-trajectories`` v1) holding the trajectory fragments the queried segments come from
(episode kind ``"online"``, variant ``"episode"`` for a fragment that ends its episode and
``"fragment"`` for one cut at a rollout end; seed -1: SB3 resets sub-envs itself), with
``obs``, ``actions``, ``progress``, ``success``, ``terminal`` and ``state/<name>`` (no frames, no
env rewards; ``metadata.json``'s ``generator`` is null: it cannot be regenerated; its
``env_kwargs`` are the env's, so a refit from it takes them).
``preferences.jsonl`` is the ordinary label file
(:func:`~rewardlab.learned.preferences.write_preferences`) naming it, in query order, so
``load_dataset`` and ``read_preferences`` reload them and ``learn-reward --preferences``
refits offline from the same labels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from rewardlab.evaluation.datasets import FORMAT, FORMAT_VERSION, Episode
from rewardlab.info_keys import STATE_PREFIX
from rewardlab.learned.judging import (
    HELDOUT_SEED_OFFSET,
    cell,
    eval_reward_lines,
    judge_checkpoint,
)
from rewardlab.learned.learn import (
    CANDIDATES_PER_QUERY,
    QUERIES,
    describe_labeller,
    synthetic_labeller,
)
from rewardlab.learned.preferences import (
    Preference,
    Segment,
    draw_pairs,
    fit_preferences,
    model_noise,
    pair_key,
    preference_accuracy,
    select_by_disagreement,
    state_rewards,
    write_preferences,
)
from rewardlab.learned.reward_net import Normalization, RewardNetConfig
from rewardlab.progress import Progress
from rewardlab.reward_models.base import RewardBatch, RewardModel, RewardOutput

__all__ = [
    "ON_POLICY",
    "EnsembleReward",
    "PreferenceLoop",
    "RolloutPool",
    "learn_online",
    "planned_rounds",
]

ON_POLICY = ("ppo", "a2c")
"""The algorithms :func:`learn_online` trains (their rollouts need no relabelling)."""

SIGNAL_KEYS: dict[str, tuple[str, ...]] = {
    "progress": ("progress",),
    "success": ("is_success",),
    "heron": ("is_success", "progress"),
}
"""The info keys each synthetic labeller reads."""

SIGNAL_TASK = {"progress": ("progress",), "success": ("success",), "heron": ("success", "progress")}
"""What each synthetic labeller needs of the env's task."""


class EnsembleReward(RewardModel):
    """The mean reward of an ensemble of state-input reward nets, paid as ``(r - shift) /
    scale``; zero before the first :meth:`update`.

    Its ``needs_info`` also names the labeller's signals (``"progress"``, ``"is_success"``:
    ``signal_key``, one or several), so the vector env computes them for
    :class:`PreferenceLoop`; the reward never reads them.
    """

    def __init__(self, config: RewardNetConfig, signal_key: str | Sequence[str]) -> None:
        if config.inputs != "state":
            raise ValueError("the online loop fits state-input networks (inputs='state')")
        self.config = config
        self.needs_info = (
            *(f"{STATE_PREFIX}{name}" for name, _ in config.state_layout),
            *((signal_key,) if isinstance(signal_key, str) else signal_key),
        )
        self.nets: list[Any] = []
        self.normalization = Normalization()
        self.updates = 0

    def update(self, nets: Sequence[Any], normalization: Normalization) -> None:
        """Pay ``nets``' mean reward through ``normalization`` from now on."""
        self.nets = [net.eval() for net in nets]
        self.normalization = normalization
        self.updates += 1

    def raw(self, state: np.ndarray) -> np.ndarray:
        """The ensemble's mean unnormalized reward of flat ``(B, D)`` state inputs."""
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.asarray(state, dtype=np.float32))
            return torch.stack([net(x, None) for net in self.nets]).mean(0).double().numpy()

    def __call__(self, batch: RewardBatch) -> RewardOutput:
        n = len(batch)
        if not self.nets:
            return RewardOutput(np.zeros(n))
        state = self.config.state_vector(lambda name: batch.info[STATE_PREFIX + name], n)
        norm = self.normalization
        return RewardOutput((self.raw(state) - norm.shift) / norm.scale)


class RolloutPool:
    """The agent's trajectory fragments as state rows in the layout of a
    :class:`~rewardlab.evaluation.datasets.TrajectoryDataset` (``episodes``, ``state()``,
    ``progress``, ``success``), so :mod:`~rewardlab.learned.preferences`' segment, label and
    fit functions read it as they read a dataset."""

    has_frames = False

    def __init__(self, state_names: Sequence[str]) -> None:
        self.path = Path("<online rollouts>")
        self.episodes: list[Episode] = []
        self.state_names = tuple(state_names)
        self._parts: dict[str, list[np.ndarray]] = {}
        self._joined: dict[str, np.ndarray] = {}
        self.n_states = 0

    def add(self, rows: Mapping[str, np.ndarray], *, ends_episode: bool, terminated: bool) -> None:
        """Append one fragment: ``rows[name]`` per state row (``n_steps + 1`` of them) for
        every array (``state/<name>``, ``progress``, ``success``, ``obs``, ``terminal``) and
        ``actions`` (``n_steps``)."""
        n = len(rows["progress"])
        success = bool(rows["success"][-1])
        self.episodes.append(
            Episode(
                kind="online",
                variant="episode" if ends_episode else "fragment",
                seed=-1,
                state_start=self.n_states,
                n_steps=n - 1,
                success=success,
                terminated=terminated,
                truncated=ends_episode and not terminated,
                episode_return=math.nan,
                dense_return=math.nan,
                switch_step=None,
            )
        )
        for name, values in rows.items():
            self._parts.setdefault(name, []).append(np.asarray(values))
        self._joined.clear()
        self.n_states += n

    def array(self, name: str) -> np.ndarray:
        if name not in self._joined:
            self._joined[name] = np.concatenate(self._parts[name])
        return self._joined[name]

    def state(self, name: str) -> np.ndarray:
        return self.array(f"state/{name}")

    @property
    def progress(self) -> np.ndarray:
        return self.array("progress")

    @property
    def success(self) -> np.ndarray:
        return self.array("success")

    def write(
        self,
        folder: Path,
        episodes: Sequence[int],
        env_id: str,
        env_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        """Save fragments ``episodes`` (in that order) as a dataset folder (see the module
        docstring)."""
        import gymnasium as gym

        folder.mkdir(parents=True)
        records, start = [], 0
        for e in episodes:
            ep = self.episodes[e]
            records.append(dataclasses.replace(ep, state_start=start))
            start += ep.n_steps + 1
        arrays: dict[str, np.ndarray] = {}
        for name in self._parts:
            pick = [self._parts[name][e] for e in episodes]
            arrays[name] = np.concatenate(pick)
        digests = {}
        for name, values in arrays.items():
            file = folder / f"{name}.npy"
            file.parent.mkdir(parents=True, exist_ok=True)
            np.save(file, values)
            digests[f"{name}.npy"] = hashlib.sha256(file.read_bytes()).hexdigest()
        (folder / "episodes.json").write_text(
            json.dumps([dataclasses.asdict(r) for r in records], indent=1)
        )
        spec = gym.spec(env_id)
        metadata = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "env_id": env_id,
            "env_version": spec.version,
            "env_kwargs": dict(env_kwargs or {}),
            "max_episode_steps": spec.max_episode_steps,
            "dense_reward_type": None,
            "generator": None,
            "source": "rewardlab.learned.online: the agent's trajectory fragments",
            "n_episodes": len(records),
            "n_states": start,
            "n_transitions": start - len(records),
            "state_variables": list(self.state_names),
            "sha256": dict(sorted(digests.items())),
        }
        (folder / "metadata.json").write_text(json.dumps(metadata, indent=1))


def planned_rounds(steps: int, rollout: int, refit_every: int) -> int:
    """How many rounds :class:`PreferenceLoop` runs in a ``steps``-step run whose rollouts
    are ``rollout`` env steps: one at each rollout end that reaches a multiple of
    ``refit_every`` not reached before."""
    ends = np.arange(1, math.ceil(steps / rollout) + 1) * rollout
    return int(np.count_nonzero(ends // refit_every > (ends - rollout) // refit_every))


class PreferenceLoop(BaseCallback):
    """Records the agent's trajectories and runs the query-label-refit rounds (see the module
    docstring).

    Args:
        reward: The reward the vector env pays (updated after each refit).
        budget: Labels in all.
        refit_every: Env steps between rounds.
        queries_per_round: Labels per round (the last round takes what is left).
        query: ``"random"`` or ``"disagreement"``.
        synthetic: The labeller's signal (:data:`SIGNAL_KEYS`).
        label: The synthetic labeller, ``label(pool, pairs, rng) -> preferences``
            (:func:`~rewardlab.learned.learn.synthetic_labeller`).
        segment_length, ensemble, epochs, seed: As for :func:`learn_online`.
        noise: The labeller's flip rate; the model's ``eps`` is ``model_noise(noise)``.
        log: Progress lines.

    Attributes:
        pool: The recorded trajectory fragments.
        labelled: The labelled pairs, in query order.
        rounds: One record per round: ``step``, ``labels`` (used so far), ``loss`` (mean final
            training loss of the members), ``accuracy_before`` (the previous ensemble's
            accuracy on the round's new labels, None in the first round), ``success``
            (true success rate of the training episodes finished since the previous round:
            the stochastic policy while it learns, not an evaluation).
    """

    def __init__(
        self,
        reward: EnsembleReward,
        *,
        budget: int,
        refit_every: int,
        queries_per_round: int,
        query: str,
        synthetic: str,
        label: Callable[[Any, Sequence[tuple[Segment, Segment]], np.random.Generator], Any],
        segment_length: int,
        ensemble: int,
        epochs: int,
        noise: float,
        seed: int,
        log: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        super().__init__()
        self.reward = reward
        self.config = reward.config
        self.budget, self.refit_every, self.per_round = budget, refit_every, queries_per_round
        self.query, self.synthetic, self.label = query, synthetic, label
        self.segment_length, self.ensemble, self.epochs = segment_length, ensemble, epochs
        self.noise, self.seed, self.log = noise, seed, log
        self.rng = np.random.default_rng(seed)
        self.names = tuple(name for name, _ in self.config.state_layout)
        self.pool = RolloutPool(self.names)
        self.labelled: list[Preference] = []
        self.seen: set[frozenset[Segment]] = set()  # the labelled pairs, either order
        self.rounds: list[dict[str, Any]] = []
        self.fit_s = 0.0
        self._open: list[dict[str, list[Any]]] = []
        self._next = refit_every
        self._episode_success: list[bool] = []
        self._progress = Progress(math.ceil(budget / queries_per_round))

    @property
    def spent(self) -> int:
        return len(self.labelled)

    def _row(self, info: Mapping[str, Any], obs: Any) -> dict[str, Any]:
        row: dict[str, Any] = {
            f"state/{n}": np.asarray(info[f"{STATE_PREFIX}{n}"]) for n in self.names
        }
        row["progress"] = float(info.get("progress", math.nan))
        row["success"] = bool(info.get("is_success", False))
        row["obs"] = np.asarray(obs)
        return row

    def _start(self, i: int, info: Mapping[str, Any], obs: Any) -> None:
        fragment: dict[str, list[Any]] = {key: [v] for key, v in self._row(info, obs).items()}
        fragment["actions"] = []
        if i < len(self._open):
            self._open[i] = fragment
        else:
            self._open.append(fragment)

    def _close(self, i: int, *, ends_episode: bool, terminated: bool) -> None:
        fragment = self._open[i]
        if fragment["actions"]:
            rows = {key: np.asarray(values) for key, values in fragment.items()}
            rows["terminal"] = np.zeros(len(fragment["progress"]), dtype=bool)
            rows["terminal"][-1] = terminated
            self.pool.add(rows, ends_episode=ends_episode, terminated=terminated)

    def _on_training_start(self) -> None:
        env = self.training_env
        obs = self.model._last_obs  # the observations learn() reset to
        for i in range(env.num_envs):
            self._start(i, env.reset_infos[i], obs[i])  # type: ignore[index]

    def _on_step(self) -> bool:
        infos, dones = self.locals["infos"], self.locals["dones"]
        new_obs = self.locals["new_obs"]
        actions = self.locals["clipped_actions"]
        for i, info in enumerate(infos):
            done = bool(dones[i])
            obs = info["terminal_observation"] if done else new_obs[i]
            fragment = self._open[i]
            for key, value in self._row(info, obs).items():
                fragment[key].append(value)
            fragment["actions"].append(np.asarray(actions[i]))
            if done:
                terminated = not info.get("TimeLimit.truncated", False)
                self._close(i, ends_episode=True, terminated=terminated)
                self._episode_success.append(bool(info.get("is_success", False)))
                self._start(i, self.training_env.reset_infos[i], new_obs[i])
        return True

    def _on_rollout_end(self) -> None:
        for i, fragment in enumerate(self._open):  # cut: the next fragment starts here
            self._close(i, ends_episode=False, terminated=False)
            last = {key: values[-1] for key, values in fragment.items() if key != "actions"}
            self._open[i] = {**{k: [v] for k, v in last.items()}, "actions": []}
        now = self.num_timesteps
        if now >= self._next:
            self._next = (now // self.refit_every + 1) * self.refit_every
            if self.spent < self.budget:
                self._round(now)

    def _draw(self, n: int, keep: bool) -> list[tuple[Segment, Segment]]:
        """Up to ``n`` new pairs, none labelled before; ``keep``: mark them labelled."""
        seen = self.seen if keep else set(self.seen)
        return draw_pairs(self.pool, n, self.segment_length, self.rng, seen)  # type: ignore[arg-type]

    def _round(self, step: int) -> None:
        pool: Any = self.pool
        size = min(self.per_round, self.budget - self.spent)
        nets = self.reward.nets
        if self.query == "disagreement" and nets:
            candidates = self._draw(CANDIDATES_PER_QUERY * size, keep=False)
            chosen = select_by_disagreement(
                pool, nets, self.config, candidates, min(size, len(candidates))
            )
            pairs = [candidates[i] for i in chosen]
            self.seen.update(pair_key(a, b) for a, b in pairs)
        else:
            pairs = self._draw(size, keep=True)
        new = self.label(pool, pairs, self.rng)
        before = None
        if nets:
            scores = [preference_accuracy(pool, net, self.config, new) for net in nets]
            known = [s for s in scores if s is not None]
            before = float(np.mean(known)) if known else None
        self.labelled += new
        start = time.perf_counter()
        fit = fit_preferences(
            pool,
            self.labelled,
            self.config,
            ensemble=self.ensemble,
            epochs=self.epochs,
            noise=model_noise(self.noise),
            seed=self.seed + len(self.rounds),
            warm_start=nets or None,
        )
        rows = np.arange(pool.n_states)
        mean = np.mean([state_rewards(pool, net, self.config, rows) for net in fit.nets], axis=0)
        self.reward.update(fit.nets, Normalization.of(mean))
        self.fit_s += time.perf_counter() - start
        success = float(np.mean(self._episode_success)) if self._episode_success else None
        self._episode_success = []
        record = {
            "step": int(step),
            "labels": self.spent,
            "loss": float(np.mean(fit.train_loss)),
            "accuracy_before": before,
            "success": success,
            "pool_states": int(pool.n_states),
        }
        self.rounds.append(record)
        self.logger.record("preferences/labels", self.spent)
        self.logger.record("preferences/loss", record["loss"])
        self.log(
            f"{self._progress.tick()} step {step}: {self.spent}/{self.budget} labels, "
            f"loss {record['loss']:.4f}, accuracy on the new labels before refitting "
            f"{'n/a' if before is None else f'{before:.3f}'}"
        )


def learn_online(
    env_id: str,
    out_dir: str | Path,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    algo: str = "ppo",
    hyperparams: Mapping[str, Any] | None = None,
    steps: int = 50_000,
    budget: int = 200,
    refit_every: int = 5_000,
    queries_per_round: int | None = None,
    query: str = "disagreement",
    synthetic: str = "progress",
    beta: float | None = None,
    noise: float = 0.0,
    segment_length: int = 5,
    ensemble: int = 3,
    epochs: int = 20,
    hidden: tuple[int, ...] = (64, 64),
    eval_episodes: int = 20,
    episodes: int = 8,
    seed: int = 0,
    device: str = "cpu",
    judge: bool = True,
    log: Callable[[str], None] = lambda _msg: None,
) -> Path:
    """Train an agent on a reward learned online from synthetic preferences; return
    ``report.md`` (see the module docstring for the loop and what is written).

    Args:
        env_id: The env (its task must provide state variables and the signal).
        out_dir: Output folder (must not hold a checkpoint already).
        env_kwargs: ``gym.make`` keywords.
        algo: ``"ppo"`` or ``"a2c"`` (on-policy; off-policy agents are refused).
        hyperparams: Overrides of rewardlab's per-env hyperparameters (``n_envs`` too).
        steps: Env steps of training.
        budget: Labels in all; every one is spent, or the call is refused up front.
        refit_every: Env steps between query rounds (at the end of the rollout reaching it).
        queries_per_round: Labels per round; None spreads ``budget`` evenly over the rounds.
        query: ``"disagreement"`` (the first round at random) or ``"random"``.
        synthetic: The synthetic labeller (:data:`~rewardlab.learned.learn.SYNTHETIC`): the
            true task's ``"progress"`` or ``"success"`` summed over a segment, or ``"heron"``
            (HERON's hierarchical comparison of success, then progress).
        beta: None: the labeller prefers the larger return; a number: Boltzmann-rational,
            preferring ``a`` with probability ``sigmoid(beta * (R(a) - R(b)))``.
        noise: The labeller's flip rate (each label flipped with this probability); the
            Bradley-Terry model's ``eps`` is ``2 * noise``
            (:func:`~rewardlab.learned.preferences.model_noise`).
        segment_length: Transitions per segment (at most the agent's rollout length per env).
        ensemble, epochs, hidden: The reward ensemble and its fit per round.
        eval_episodes: True-task evaluation episodes of the final agent.
        episodes: Episodes per kind of the judging dataset (``judge``).
        seed: Seed of the agent, the envs, the queries and the fits.
        device: The agent's torch device.
        judge: Run ``eval-reward`` on the final checkpoint, on other episodes.

    Raises:
        ValueError: Bad input, said before anything is written.
    """
    from rewardlab.agents.factory import ALGOS, load_hyperparams, make_agent
    from rewardlab.envs import get_task, make
    from rewardlab.vec import make_vec_env

    out = Path(out_dir)
    kwargs = dict(env_kwargs or {})
    if (out / "checkpoint.pt").exists():
        raise ValueError(f"{out} already holds a checkpoint; give another --out")
    name = algo.lower()
    if name not in ON_POLICY:
        if name in ALGOS:
            raise ValueError(
                f"{algo} is off-policy: its replay buffer would keep rewards of the reward "
                "models before each refit, and this loop does not relabel it (PEBBLE does); "
                f"use one of {list(ON_POLICY)}"
            )
        raise ValueError(f"unknown algorithm {algo!r}; the online loop trains {list(ON_POLICY)}")
    for label, value, low in (
        ("steps", steps, 1),
        ("budget", budget, 1),
        ("refit_every", refit_every, 1),
        ("segment_length", segment_length, 1),
        ("ensemble", ensemble, 1),
        ("epochs", epochs, 1),
        ("eval_episodes", eval_episodes, 0),
        ("episodes", episodes, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{label} must be an int >= {low}, got {value!r}")
    if refit_every > steps:
        raise ValueError(
            f"refit_every ({refit_every}) is more than steps ({steps}): no round would run; "
            "refit more often or train longer"
        )
    if query not in QUERIES:
        raise ValueError(f"unknown query selection {query!r}; one of {list(QUERIES)}")
    if query == "disagreement" and ensemble < 2:
        raise ValueError("query='disagreement' needs an ensemble of >= 2 members")
    if not 0.0 <= noise < 0.5:
        raise ValueError(f"noise (the labeller's flip rate) must be in [0, 0.5), got {noise}")
    labeller = synthetic_labeller(synthetic, noise, beta)  # checks synthetic and beta
    params = load_hyperparams(name, env_id, hyperparams)
    n_envs = int(params.get("n_envs", 1))
    per_env = int(params.get("n_steps", 2048 if name == "ppo" else 5))
    rollout = n_envs * per_env
    if segment_length > per_env:
        raise ValueError(
            f"segment_length {segment_length} is longer than a rollout per env ({per_env} "
            "steps, n_steps): segments are cut at rollout ends; shorten it or raise n_steps"
        )
    rounds = planned_rounds(steps, rollout, refit_every)
    per_round = queries_per_round if queries_per_round is not None else -(-budget // rounds)
    if per_round < 1:
        raise ValueError(f"queries_per_round must be >= 1, got {per_round}")
    if per_round * rounds < budget:
        raise ValueError(
            f"{rounds} rounds of {per_round} queries cannot spend a budget of {budget} "
            f"(rounds: one per {refit_every} env steps, at rollout ends every {rollout}); raise "
            "queries_per_round, refit more often or train longer"
        )
    with make(env_id, **kwargs) as env:
        task = get_task(env)
        task.require("state", "a reward network over state variables")
        for signal in SIGNAL_TASK[synthetic]:
            task.require(signal, f"synthetic labels ({synthetic}) from the task's {signal}")
        layout = tuple((v.name, tuple(v.shape)) for v in task.state_variables)
        space = repr(env.observation_space)
    config = RewardNetConfig(inputs="state", state_layout=layout, hidden=hidden)
    reward = EnsembleReward(config, SIGNAL_KEYS[synthetic])
    loop = PreferenceLoop(
        reward,
        budget=budget,
        refit_every=refit_every,
        queries_per_round=per_round,
        query=query,
        synthetic=synthetic,
        label=labeller,
        segment_length=segment_length,
        ensemble=ensemble,
        epochs=epochs,
        noise=noise,
        seed=seed,
        log=log,
    )
    venv = make_vec_env(env_id, n_envs, reward, seed=seed * n_envs, env_kwargs=kwargs)
    try:
        try:
            agent = make_agent(name, venv, params, seed=seed, device=device)
        except (AssertionError, TypeError, ValueError) as exc:
            raise ValueError(f"{algo} rejects the hyperparameters {params}: {exc}") from None
        venv.seed(seed * n_envs)
        log(f"training {algo} for {steps} steps; {rounds} rounds of up to {per_round} labels")
        start = time.perf_counter()
        agent.learn(steps, callback=loop)
        wall = time.perf_counter() - start
    finally:
        venv.close()
    return _finish(
        out,
        env_id=env_id,
        kwargs=kwargs,
        space=space,
        loop=loop,
        agent=agent,
        config=config,
        settings={
            "algo": name,
            "hyperparams": {k: v for k, v in params.items() if k != "policy_kwargs"},
            "steps": int(agent.num_timesteps),
            "budget": budget,
            "refit_every": refit_every,
            "queries_per_round": per_round,
            "query": query,
            "synthetic": synthetic,
            "beta": beta,
            "noise": noise,
            "model_noise": model_noise(noise),
            "labeller": describe_labeller(synthetic, noise, beta),
            "segment_length": segment_length,
            "ensemble": ensemble,
            "epochs": epochs,
            "seed": seed,
            "train_wall_s": wall,
            "fit_wall_s": loop.fit_s,
        },
        eval_episodes=eval_episodes,
        episodes=episodes,
        judge=judge,
        log=log,
    )


def _finish(
    out: Path,
    *,
    env_id: str,
    kwargs: dict[str, Any],
    space: str,
    loop: PreferenceLoop,
    agent: Any,
    config: RewardNetConfig,
    settings: dict[str, Any],
    eval_episodes: int,
    episodes: int,
    judge: bool,
    log: Callable[[str], None],
) -> Path:
    from rewardlab.agents.policy_eval import evaluate_policy_on_task
    from rewardlab.envs import make
    from rewardlab.learned.reward_net import TrainedOn, save_checkpoint

    pool: Any = loop.pool
    out.mkdir(parents=True, exist_ok=True)
    # The fragments the labels come from, renumbered in the order they are first queried.
    order: dict[int, int] = {}
    for p in loop.labelled:
        for seg in (p.a, p.b):
            order.setdefault(seg.episode, len(order))
    loop.pool.write(out / "segments", list(order), env_id, kwargs)

    def moved(seg: Segment) -> Segment:
        return dataclasses.replace(seg, episode=order[seg.episode])

    renumbered = [Preference(moved(p.a), moved(p.b), p.label) for p in loop.labelled]
    write_preferences(out / "preferences.jsonl", (out / "segments").resolve(), renumbered)
    net = loop.reward.nets[0]
    source = f"SYNTHETIC labels, queried online: {settings['labeller']}; {loop.spent} labels"
    trained = TrainedOn(env_id, kwargs, space, "bradley_terry_online", source, settings["seed"])
    normalization = Normalization.of(state_rewards(pool, net, config))
    checkpoint = save_checkpoint(out / "checkpoint.pt", net, trained, normalization)
    agent.save(out / "agent.zip")
    final = None
    if eval_episodes:
        envs = [make(env_id, info_keys=("is_success",), **kwargs) for _ in range(eval_episodes)]
        try:
            seeds = [settings["seed"] + HELDOUT_SEED_OFFSET + k for k in range(eval_episodes)]
            final = evaluate_policy_on_task(agent, envs, seeds).success_rate
        finally:
            for env in envs:
                env.close()
    _plot_rounds(loop.rounds, out / "refits.png")
    summary: dict[str, Any] = {
        "env_id": env_id,
        "env_kwargs": kwargs,
        "labels": source,
        **settings,
        "labels_used": loop.spent,
        "n_ties": sum(p.label == 0.5 for p in loop.labelled),
        "refits": len(loop.rounds),
        "rounds": loop.rounds,
        "final_success": final,
        "eval_episodes": eval_episodes,
        "checkpoint": str(checkpoint),
        "segments": str(out / "segments"),
        "preferences": str(out / "preferences.jsonl"),
    }
    if judge:
        judge_checkpoint(
            summary,
            env_id,
            checkpoint,
            out / "eval",
            env_kwargs=kwargs,
            episodes=episodes,
            frames=False,
            seed=settings["seed"],
            log=log,
        )
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "report.md").write_text(_report(summary))
    return out / "report.md"


def _plot_rounds(rounds: Sequence[Mapping[str, Any]], path: Path) -> None:
    from rewardlab.experiments.figures import new_figure, save_png

    fig, axes = new_figure(ncols=3, width=4.0)
    step = [r["step"] for r in rounds]
    axes[0].plot(step, [r["loss"] for r in rounds], marker="o")
    axes[0].set_ylabel("Bradley-Terry loss after the refit")
    axes[1].plot(step, [r["labels"] for r in rounds], marker="o")
    axes[1].set_ylabel("labels used")
    success = [
        (s, r["success"]) for s, r in zip(step, rounds, strict=True) if r["success"] is not None
    ]
    axes[2].plot([s for s, _ in success], [v for _, v in success], marker="o")
    axes[2].set_ylim(-0.05, 1.05)
    axes[2].set_ylabel("true success of training episodes (stochastic)")
    for ax in axes:
        ax.set_xlabel("env steps")
    save_png(fig, path)


def _report(s: Mapping[str, Any]) -> str:
    training = [r["success"] for r in s["rounds"] if r["success"] is not None]
    lines = [
        f"# Reward learned online from preferences: {s['env_id']}",
        "",
        f"- Labels: {s['labels']}. They are not human labels.",
        f"- Agent: {s['algo'].upper()}, {s['steps']} env steps, paid the mean of an ensemble of "
        f"{s['ensemble']} reward nets, standardized on the states it visited (zero before the "
        "first fit).",
        f"- Queries: {s['query']}, {s['refits']} rounds (every {s['refit_every']} env steps, "
        f"up to {s['queries_per_round']} labels each), {s['labels_used']} of a budget of "
        f"{s['budget']} labels spent; segments of {s['segment_length']} transitions, "
        f"{s['n_ties']} ties.",
        f"- Training time {s['train_wall_s']:.1f} s, of which refits {s['fit_wall_s']:.1f} s.",
        "",
        "| step | labels | loss | acc. on new labels before refit | success of training "
        "episodes (stochastic policy) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in s["rounds"]:
        cells = [cell(r["loss"]), cell(r["accuracy_before"]), cell(r["success"])]
        lines.append(f"| {r['step']} | {r['labels']} | {' | '.join(cells)} |")
    lines += [
        "",
        f"- Final agent's true success on {s['eval_episodes']} evaluation episodes "
        f"(deterministic policy, seeds from seed + {HELDOUT_SEED_OFFSET}): "
        f"{cell(s['final_success'])}. The table's success is another measure: the training "
        "episodes finished before each round, under the stochastic policy while it learned.",
        f"- Checkpoint (member 0): `{s['checkpoint']}`; the queried segments and their labels: "
        f"`{s['segments']}` and `{s['preferences']}` (refit offline with "
        "`rewardlab learn-reward --preferences`).",
    ]
    accuracies = [r["accuracy_before"] for r in s["rounds"] if r["accuracy_before"] is not None]
    worked = []
    if accuracies:
        worked.append(
            f"the ensemble ordered the next round's queries with accuracy {cell(accuracies[-1])} "
            f"before fitting them (first: {cell(accuracies[0])})"
        )
    if len(training) >= 2:  # like with like: training episodes at the first and last round
        verb = "rose" if training[-1] > training[0] else "did not rise"
        worked.append(
            f"the true success of the training episodes (stochastic policy) {verb} from "
            f"{cell(training[0])} by the first round to {cell(training[-1])} by the last"
        )
    if worked:
        lines += ["", "What happened: " + "; ".join(worked) + "."]
    if "eval_reward" in s:
        lines += eval_reward_lines(s["eval_reward"])
    return "\n".join(lines) + "\n"
