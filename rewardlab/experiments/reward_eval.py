"""Judge rewards against the true task before training on them: ``rewardlab eval-reward``.

One pass: build (or load) a labelled trajectory dataset of the env, score every reward on it
in batches (frames encoded once per CLIP encoder), compute the reward-quality metrics of
:mod:`rewardlab.evaluation.dataset_metrics` per reward, and write ``report.md``,
``summary.json`` and figures. Two reference rows are always added: the env family's
hand-designed dense reward (the "human expert" reward) and a random reward (i.i.d. normal
values per state): a reward worth training on should sit far from the random row and near (or
beyond) the dense one.

The ground truth is the true task: ``success(s')`` (the sparse task reward, for EPIC, STARC,
point-biserial, success detection, and the discounted true return of return correlations and
preference accuracy) and the ground-truth progress of ``s'`` (correlations, VOC). See
:data:`~rewardlab.evaluation.dataset_metrics.METRICS`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import json
import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rewardlab.envs.core import get_task
from rewardlab.envs.tasks import TaskNotFound, make, resolve_env_id, task_reward_types
from rewardlab.evaluation.dataset_metrics import (
    METRICS,
    PROBE_METRIC,
    SUCCESS_METRICS,
    TABULAR_METRICS,
    RewardScores,
    TabularSetup,
    evaluate_rewards,
    tabular_setup,
)
from rewardlab.evaluation.datasets import (
    EPISODE_KINDS,
    DatasetConfig,
    TrajectoryDataset,
    generate_dataset,
    load_dataset,
)
from rewardlab.evaluation.reward_tables import (
    ModelCache,
    StateTable,
    TermReward,
    check_spec,
    random_reward,
    recorded_reward,
    spec_reward,
)
from rewardlab.evaluation.verdict import Verdict, judge, ranking_keys
from rewardlab.experiments.figures import colors, json_safe, md_cell, new_figure, save_png
from rewardlab.experiments.files import atomic_write
from rewardlab.progress import Progress
from rewardlab.reward_spec import (
    REWARD_SHORTHANDS,
    BuiltModelSpec,
    ClipModelSpec,
    InfoModelSpec,
    LearnedModelSpec,
    ProgramModelSpec,
    RewardSpec,
    load_yaml,
    parse_reward,
    read_yaml_file,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "env_reward_types",
    "load_sweep",
    "needs_frames",
    "run_eval",
    "sweep_specs",
    "write_eval_report",
]

# --- sweeps ----------------------------------------------------------------------------------


def sweep_specs(sweep: Mapping[str, Any]) -> list[tuple[str, RewardSpec]]:
    """Expand a CLIP sweep (heads x options x prompt sets) into labelled reward specs.

    ``sweep`` holds the :class:`~rewardlab.reward_spec.ClipModelSpec` fields shared by
    every point (``model``, ``pretrained``, ``device``, ``resize``, ...: all but the head and
    the prompts), ``heads`` (head name ->
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
    per_point = {"kind", "head", "options", "goal", "baseline", "negatives"}
    allowed = set(ClipModelSpec.model_fields) - per_point | {"heads", "prompt_sets"}
    unknown = sorted(set(sweep) - allowed)
    if unknown:
        raise ValueError(f"sweep: unknown key(s) {unknown}; valid keys are {sorted(allowed)}")
    heads = sweep.get("heads") or {"goal_baseline": {"alpha": [0.0, 0.5, 1.0]}}
    prompt_sets = sweep.get("prompt_sets") or {"task": {}}
    shared = {k: v for k, v in sweep.items() if k not in ("heads", "prompt_sets")}
    out: list[tuple[str, RewardSpec]] = []
    for head, options in heads.items():
        options = dict(options or {})
        names = list(options)
        grids = [v if isinstance(v, list) else [v] for v in options.values()]
        for values in itertools.product(*grids):
            opts = dict(zip(names, values, strict=True))
            for set_name, prompts in prompt_sets.items():
                clip = {"kind": "clip", **shared, "head": head, "options": opts, **(prompts or {})}
                label = " ".join([f"clip {head}", *(f"{k}={v}" for k, v in opts.items())])
                label = f"{label} [{set_name}]"
                out.append((label, parse_reward({"model": clip}, where=f"sweep[{label}]")))
    return out


def needs_frames(specs: Sequence[RewardSpec]) -> bool:
    """True when a spec scores frames (a CLIP model, or a learned reward reading frames, as
    reward or as potential)."""
    from rewardlab.learned.reward_net import checkpoint_reads_frames

    return any(
        isinstance(part, ClipModelSpec)
        or (isinstance(part, LearnedModelSpec) and checkpoint_reads_frames(part.path))
        for spec in specs
        for part in (spec.model, spec.shaping)
    )


def load_sweep(path: str | Path, what: str = "sweep file") -> list[tuple[str, RewardSpec]]:
    """:func:`sweep_specs` of a YAML file; ``what`` names the file in errors (the CLI says
    ``--sweep file``). A relative checkpoint path in it (``pretrained:``) is the file's
    folder's.

    Raises:
        ValueError: On one line: the file is missing, unreadable, not YAML, not a mapping, or
            holds unknown keys.
    """
    data = read_yaml_file(path, what)
    if not isinstance(data, Mapping):
        raise ValueError(f"the {what} {path} must hold a mapping, got {type(data).__name__}")
    folder = Path(path).resolve().parent
    return [(label, spec.resolved(folder)) for label, spec in sweep_specs(data)]


# --- names -----------------------------------------------------------------------------------

REFERENCE_PREFIX = "ref:"
"""The reference rows' names start so; rewards may not."""


def _model_label(m: BuiltModelSpec) -> str:
    if isinstance(m, ClipModelSpec):
        return f"clip {m.head}"
    if isinstance(m, LearnedModelSpec):
        return f"learned {Path(m.path).name}"
    if isinstance(m, InfoModelSpec):
        return (
            m.key
            + (f" x{m.scale:g}" if m.scale != 1.0 else "")
            + (f" {m.shift:+g}" if m.shift else "")
        )
    return f"program {Path(m.path).name}" if m.path else "program (inline source)"


@functools.cache
def _shorthand_specs() -> dict[str, RewardSpec]:
    """Every shorthand's spec, parsed once."""
    return {name: parse_reward(data) for name, data in REWARD_SHORTHANDS.items()}


def short_name(spec: RewardSpec) -> str:
    """A short readable name of a reward spec: its shorthand where it is one (``pbrs``), else
    built from its parts (``dense + pbrs(γ=0.95)``, ``program key_door.py``)."""
    for name, shorthand in _shorthand_specs().items():
        if shorthand == spec:
            return name
    base = spec.reward_type or "env"
    if spec.model is not None:
        model = _model_label(spec.model)
        base = model if spec.mode == "replace" else f"{base} + {model}"
    if spec.shaping is not None:
        potential = "" if spec.shaping == "progress" else f"({_model_label(spec.shaping)})"
        gamma = "" if spec.shaping_gamma is None else f"(γ={spec.shaping_gamma:g})"
        base += f" + pbrs{potential}{gamma}"
    if spec.progress_bonus is not None:
        base += f" + progress bonus {spec.progress_bonus:g}"
    return base


def named_rewards(rewards: Sequence[str | Mapping[str, Any]]) -> list[tuple[str, RewardSpec]]:
    """Each reward (short name, YAML string or mapping, as ``--reward`` takes) with its
    report name: its ``name:`` when the mapping has one, else :func:`short_name`.

    Raises:
        ValueError: For a bad spec or name, or two rewards given the same ``name:``.
    """
    out: list[tuple[str | None, RewardSpec]] = []
    given: set[str] = set()
    for i, value in enumerate(rewards):
        data: Any = value
        if isinstance(value, str) and value not in REWARD_SHORTHANDS:
            with contextlib.suppress(ValueError):  # not YAML: parse_reward says why below
                data = load_yaml(value, f"reward[{i}]")
        name = None
        if isinstance(data, Mapping) and "name" in data:
            data = dict(data)
            name = data.pop("name")
            if not isinstance(name, str) or not name.strip() or len(name) > 60:
                raise ValueError(
                    f"reward[{i}]: name must be a non-empty string of at most 60 characters, "
                    f"got {name!r}"
                )
            if name.startswith(REFERENCE_PREFIX):
                raise ValueError(
                    f"reward[{i}]: names starting {REFERENCE_PREFIX!r} are the reference rows'; "
                    f"rename {name!r}"
                )
            if name in given:
                raise ValueError(f"reward[{i}]: two rewards are named {name!r}; rename one")
            given.add(name)
        spec = parse_reward(data if name is not None else value, where=f"reward[{i}]")
        out.append((name, spec))
    # Generated names: the short name, numbered where it collides with a given name or an
    # earlier generated one (two programs of one file name).
    named: list[tuple[str, RewardSpec]] = []
    taken = set(given)
    for name_or_none, spec in out:
        name = name_or_none
        if name is None:
            base = name = short_name(spec)
            k = 1
            while name in taken:
                k += 1
                name = f"{base} #{k}"
            taken.add(name)
        named.append((name, spec))
    return named


# --- the command -----------------------------------------------------------------------------


def env_reward_types(
    env_id: str, env_kwargs: Mapping[str, Any], generate: bool = True
) -> tuple[str, str | None]:
    """The env's own ``reward_type`` with these keywords, and its task's dense one (None if
    it has none). With ``generate``, check that its task can generate a dataset.

    Raises:
        ValueError: The env has no task, or its task lacks what a dataset needs (an expert,
            an idle action, success and progress labels), saying what to register.
    """
    env = make(env_id, **dict(env_kwargs))
    try:
        task = get_task(env)
        for feature in ("success", "progress", "expert", "idle_action") if generate else ():
            task.require(feature, "eval-reward's dataset of expert, partial and idle episodes")
        return task_reward_types(env, env_kwargs)
    except TaskNotFound:
        raise ValueError(
            f"eval-reward judges rewards on an env with a task: {env_id} is not one (its "
            "datasets need an expert, progress and success labels); register its task with "
            'rewardlab.register_task (README "Your own env")'
        ) from None
    finally:
        env.close()


MIN_SUCCESSES = 20
"""Default number of transitions entering success that the metrics resting on success labels
need (:data:`~rewardlab.evaluation.dataset_metrics.SUCCESS_METRICS`): ``eval-reward`` grows a
dataset it generates until it has them, and greys those metrics out below it."""

MAX_GROWN_EPISODES = 2000
"""Most episodes (all kinds) a dataset is grown to for :data:`MIN_SUCCESSES`."""


def n_successes(ds: TrajectoryDataset) -> int:
    """How many of the dataset's transitions enter success: from a state that is not a
    success into one that is. A task whose success persists (a block held at its target)
    labels every later step a success too; those repeat the same event, so they are not
    counted: the metrics rest on how many times success was reached, not on how long."""
    s, s2 = ds.transition_states()
    success = np.asarray(ds.success).astype(bool)
    return int((~success[s] & success[s2]).sum())


def _grown(stored: DatasetConfig, requested: DatasetConfig) -> bool:
    """Whether ``stored`` is ``requested`` grown for more successes (more episodes of each
    kind, nothing else changed; frames stored serve a request without them)."""
    more = set(stored.episodes) == set(requested.episodes) and all(
        stored.episodes[k] >= n for k, n in requested.episodes.items()
    )
    same = dataclasses.replace(stored, episodes=requested.episodes)
    return more and same in (requested, dataclasses.replace(requested, frames=True))


def open_dataset(
    path: Path,
    config: DatasetConfig,
    *,
    overwrite: bool,
    log: Callable[[str], None],
    min_successes: int = 0,
    grow: bool | None = None,
) -> TrajectoryDataset:
    """Load the dataset at ``path`` when it exists (generated with ``config``, or with frames
    where ``config`` has none, or grown from it), else generate it there.

    With ``grow`` (default: when ``min_successes`` is set), a dataset generated here with
    fewer than ``min_successes`` transitions entering success is regenerated with
    proportionally more episodes of every kind (up to :data:`MAX_GROWN_EPISODES` in all), so
    that the metrics resting on success have their positives; an existing one, grown or not,
    is used as it is (the report says how many it has)."""
    grow = bool(min_successes) if grow is None else grow
    if path.exists() and not overwrite:
        ds = load_dataset(path, env_id=config.env_id)
        # A dataset with frames also serves a request without them.
        if ds.config not in (config, dataclasses.replace(config, frames=True)) and not (
            grow and _grown(ds.config, config)
        ):
            old, new = ds.config.to_dict(), config.to_dict()
            changes = ", ".join(f"{k}: {old[k]!r} -> {new[k]!r}" for k in old if old[k] != new[k])
            raise ValueError(
                f"the dataset at {path} was generated with other settings ({changes}); pass "
                "--overwrite-dataset to regenerate it, another --out for a new one, or "
                "--dataset PATH to use it as it is"
            )
        return ds
    log(f"generating the dataset at {path} ...")
    ds = generate_dataset(config, path, overwrite=overwrite)
    total = sum(config.episodes.values())
    for _ in range(3):  # success rates vary by kind and seed: a second try rarely falls short
        found = n_successes(ds)
        if not grow or found >= min_successes or total >= MAX_GROWN_EPISODES:
            break
        factor = min(
            math.ceil(1.25 * min_successes / found) if found else 4,
            MAX_GROWN_EPISODES // total,
        )
        if factor < 2:
            break
        episodes = {k: n * factor for k, n in config.episodes.items()}
        total = sum(episodes.values())
        log(
            f"only {found} transition(s) enter success (the metrics resting on success need "
            f"{min_successes}): regenerating with {factor}x the episodes ({total}) ..."
        )
        config = dataclasses.replace(config, episodes=episodes)
        ds = generate_dataset(config, path, overwrite=True)
    return ds


def run_eval(
    env_id: str,
    rewards: Sequence[str | Mapping[str, Any]],
    out_dir: str | Path,
    *,
    dataset: str | Path | None = None,
    dataset_config: DatasetConfig | None = None,
    overwrite_dataset: bool = False,
    overwrite: bool = False,
    sweep: Sequence[tuple[str, RewardSpec]] = (),
    gamma: float = 0.99,
    coverage: int = 256,
    seed: int = 0,
    bootstrap: int = 1000,
    min_successes: int = MIN_SUCCESSES,
    grow_dataset: bool = True,
    probe_steps: int = 0,
    log: Callable[[str], None] = lambda _msg: None,
) -> Path:
    """Judge ``rewards`` (and a CLIP ``sweep``) on a dataset of ``env_id``; write the report.

    Every reward is checked (spec, reward types the dataset records, info keys, CLIP weights)
    before a dataset is generated or anything is written.

    Args:
        env_id: The env.
        rewards: Reward specs (short names, YAML strings or mappings, as for ``train``).
        out_dir: Report folder.
        dataset: An existing dataset folder to use as it is; None uses (or generates)
            ``out_dir/dataset`` with ``dataset_config``.
        dataset_config: How to generate the dataset when there is none.
        overwrite_dataset: Regenerate ``out_dir/dataset`` even if it exists.
        overwrite: Replace an existing report in ``out_dir``.
        sweep: Extra labelled CLIP specs (:func:`sweep_specs`).
        gamma: The agent's discount, in ``[0, 1)``: of shaping (unless a spec sets its own),
            of the discounted returns and of EPIC's and STARC's canonicalization.
        coverage: EPIC coverage samples.
        seed: Seed of the random reference reward, the coverage samples and the bootstrap.
        bootstrap: Replicates of the bootstrap over episodes that gives every sampled metric
            its 95% interval; 0 for none.
        min_successes: Transitions entering success that the metrics resting on success
            labels need: fewer, and the report greys those metrics out and says so.
        grow_dataset: Regenerate a dataset generated here with more episodes until it has
            ``min_successes`` (:func:`open_dataset`); off when the user fixed the episodes.
        probe_steps: With more than 0, train PPO on each reward for this many steps (one
            run, seed ``seed``) and report its true success: the ``probe succ.`` column, a
            cheap and noisy proxy of training for envs without a tabular model
            (:func:`probe`). Runs are kept in ``out_dir/probe``.
        log: Progress messages.

    Returns:
        The path of ``report.md``.

    Raises:
        ValueError: Unknown env or reward spec, a reward the dataset cannot score, a dataset
            of another env or version, an existing report without ``overwrite``.
        FileNotFoundError: No dataset at ``dataset``.
    """
    env_id = resolve_env_id(env_id)
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma must be in [0, 1) (STARC's values need it), got {gamma}")
    for what, value in (
        ("bootstrap", bootstrap),
        ("min_successes", min_successes),
        ("probe_steps", probe_steps),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{what} must be an int >= 0, got {value!r}")
    specs = named_rewards(rewards) + list(sweep)
    if not specs:
        raise ValueError("no rewards to judge: pass at least one --reward (or a --sweep)")
    out = Path(out_dir)
    if not overwrite and any((out / f).exists() for f in ("report.md", "summary.json")):
        raise ValueError(
            f"{out} already holds a report; pass --overwrite to replace it (the dataset is "
            "reused), or another --out"
        )

    ds = load_dataset(dataset, env_id=env_id) if dataset is not None else None
    cfg = ds.config if ds is not None else (dataset_config or DatasetConfig(env_id))
    if cfg.env_id != env_id:
        raise ValueError(f"dataset_config is for {cfg.env_id}, not {env_id}")
    own, dense_type = env_reward_types(env_id, cfg.env_kwargs, generate=ds is None)
    # How check_spec and spec_reward read the specs.
    reading: dict[str, Any] = dict(gamma=gamma, own_reward_type=own, dense_reward_type=dense_type)
    with contextlib.closing(ModelCache(env_id, dict(cfg.env_kwargs), log=log)) as models:
        for name, spec in specs:
            check_spec(name, spec, **reading)
            for part in (spec.model, spec.shaping):
                # Load weights and validate programs now: a bad one fails before any work.
                if isinstance(part, ClipModelSpec):
                    models.model(part)
                elif isinstance(part, ProgramModelSpec | LearnedModelSpec):
                    models.program(part)
        probes = [
            (name, _probe_config(env_id, cfg.env_kwargs, spec, probe_steps, seed))
            for name, spec in specs
            if probe_steps
        ]
        if ds is None:
            ds = open_dataset(
                out / "dataset",
                cfg,
                overwrite=overwrite_dataset,
                log=log,
                min_successes=min_successes,
                grow=grow_dataset,
            )
        log(f"dataset: {ds}")
        positives = n_successes(ds)
        if positives < min_successes:
            log(
                f"warning: only {positives} transition(s) enter success (fewer than "
                f"{min_successes}): the metrics resting on success are greyed out in the "
                "report; generate more episodes (--episodes) for them"
            )
        if needs_frames([spec for _, spec in specs]) and not ds.has_frames:
            raise ValueError(
                f"CLIP rewards need frames, but the dataset {ds.path} has none; regenerate it "
                "with frames: --frames --overwrite-dataset (or another --out)"
            )

        # The references: the task's hand-designed dense reward (where it has one) and random.
        dense_name = "env reward" if dense_type == "env" else f"env {dense_type} reward"
        n_refs = 1 + (dense_type is not None)
        roles = ["reward"] * len(rewards) + ["sweep"] * len(sweep) + ["reference"] * n_refs

        def make_rewards(table: StateTable) -> list[TermReward]:
            dense = [recorded_reward(f"{REFERENCE_PREFIX} {dense_name} (expert)", "dense")]
            return [
                *(spec_reward(name, spec, table, models=models, **reading) for name, spec in specs),
                *(dense if dense_type is not None else []),
                random_reward(f"{REFERENCE_PREFIX} random", table, seed),
            ]

        log(
            f"scoring {len(specs)} reward(s) and {n_refs} reference(s) on {ds.n_transitions} "
            "transitions ..."
        )
        tabular = tabular_setup(ds)
        progress = Progress(len(specs) + n_refs)
        scores = evaluate_rewards(
            ds,
            make_rewards,
            roles=roles,
            gamma=gamma,
            coverage=coverage,
            seed=seed,
            tabular=tabular,
            bootstrap_reps=bootstrap,
            on_scored=lambda name: log(f"{progress.tick()} scored {name}"),
        )
        log(f"frames encoded: {models.frames_encoded}")
        if probes:
            probed = probe(probes, out / "probe", log=log)
            for sc in scores:
                sc.metrics[PROBE_METRIC] = probed.get(sc.name, math.nan)
        for program, report in models.program_corrections().items():
            log(
                f"warning: reward program {program}: its sandbox replaced {report['nonfinite']} "
                f"NaN or infinite rewards and clipped {report['clipped']}; the scores are of the "
                "corrected rewards (`rewardlab llm-reward check` finds why)"
            )
        return write_eval_report(
            out,
            ds,
            scores,
            gamma=gamma,
            tabular=tabular,
            env_id=env_id,
            min_successes=min_successes,
            bootstrap=bootstrap,
        )


# --- the training probe ----------------------------------------------------------------------

PROBE_EVAL_EPISODES = 20


def _probe_config(
    env_id: str, env_kwargs: Mapping[str, Any], spec: RewardSpec, steps: int, seed: int
) -> Any:
    """The probe's training config, checked now (a bad one fails before any work).

    Raises:
        ValueError: Also for a budget the agent would not learn from: below one rollout
            (``n_steps x n_envs``) or below ``learning_starts``.
    """
    from rewardlab.agents.train import TrainConfig, check_config

    config = TrainConfig(
        env=env_id,
        env_kwargs=dict(env_kwargs),
        reward=spec,
        steps=steps,
        seed=seed,
        eval_freq=steps,
        eval_episodes=PROBE_EVAL_EPISODES,
    )
    params = check_config(config)
    n_envs = int(params.get("n_envs", 1))
    # Training stops at the first vector step at or past the budget (StopAtBudget), before
    # an update due at that step: the first update needs one vector step more.
    first_update = n_envs + (
        int(params["n_steps"]) * n_envs
        if "n_steps" in params
        else int(params.get("learning_starts", 100))
    )
    if steps < first_update:
        raise ValueError(
            f"--probe-steps {steps} trains nothing: {config.algo}'s first update on {env_id} "
            f"needs {first_update} env steps; pass --probe-steps {first_update} or more "
            "(several times that to learn anything)"
        )
    return config


def probe(
    configs: Sequence[tuple[str, Any]], folder: Path, *, log: Callable[[str], None]
) -> dict[str, float]:
    """Train one short run per ``(name, TrainConfig)`` into ``folder/<k>``; return each
    name's final true success rate. A cheap proxy: one seed, a small budget."""
    from rewardlab.agents.train import train

    out: dict[str, float] = {}
    progress = Progress(len(configs))
    for k, (name, config) in enumerate(configs):
        run_dir = folder / f"{k:02d}"
        if run_dir.exists():  # a previous report's probe: retrained, as the report is
            shutil.rmtree(run_dir)
        result = train(config, run_dir, plot=False)
        (run_dir / "reward_name.txt").write_text(name + "\n")
        out[name] = float(result.evals[-1]["success_rate"])
        log(f"{progress.tick()} probe {name}: success {out[name]:.2f} after {result.steps} steps")
    return out


# --- report ----------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"


def _grid(scores: list[RewardScores], height: float) -> tuple[Figure, Any]:
    """A figure with an axis per reward, four per row; the spare axes are hidden."""
    ncols = min(4, len(scores))
    fig, axes = new_figure(
        ncols=ncols, nrows=math.ceil(len(scores) / ncols), width=3.6, height=height
    )
    for ax in axes[len(scores) :]:
        ax.set_axis_off()
    return fig, axes


def _plot_progress(path: Path, ds: TrajectoryDataset, scores: list[RewardScores]) -> None:
    experts = [i for i, e in enumerate(ds.episodes) if e.kind == "expert"][:3]
    fig, axes = _grid(scores, height=2.8)
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
    fig.suptitle(
        "Expert episodes: reward (solid, min-max scaled over the dataset) vs progress (dashed)",
        fontsize=9,
    )
    save_png(fig, path)


def _plot_histograms(path: Path, ds: TrajectoryDataset, scores: list[RewardScores]) -> None:
    _, s2 = ds.transition_states()
    success = np.asarray(ds.success)[s2].astype(bool)
    fig, axes = _grid(scores, height=2.6)
    for ax, sc in zip(axes, scores, strict=False):
        bins = np.histogram_bin_edges(sc.per_step, bins=30)
        for rows, color, label in ((success, "C2", "success"), (~success, "C3", "no success")):
            if rows.any():
                values = sc.per_step[rows]
                ax.hist(values, bins=bins, density=True, alpha=0.6, color=color, label=label)
        ax.set_title(sc.name[:48], fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.suptitle("Per-step reward of success vs non-success frames (density)", fontsize=9)
    save_png(fig, path)


def _plot_roc(path: Path, scores: list[RewardScores]) -> None:
    fig, (ax,) = new_figure(width=5.5, height=5.0)
    palette = colors([s.name for s in scores])
    for sc in scores:
        if sc.roc is None:
            continue
        fpr, tpr = sc.roc
        label = f"{sc.name[:40]} ({_fmt(sc.metrics['roc_auc'])})"
        ax.plot(fpr, tpr, color=palette[sc.name], lw=1.2, label=label)
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title="Success detection from the per-step reward",
    )
    ax.legend(fontsize=6, loc="lower right")
    save_png(fig, path)


def _cell(sc: RewardScores, key: str, grey: bool) -> str:
    """A metric with its bootstrap interval; in parentheses and italics when it rests on too
    few successes."""
    text = _fmt(sc.metrics[key])
    if key in sc.intervals and text != "n/a":
        low, high = sc.intervals[key]
        text += f" [{_fmt(low)}, {_fmt(high)}]"
    return f"*({text})*" if grey and text != "n/a" else text


def _verdict_lines(verdicts: list[Verdict], keys: Sequence[str]) -> list[str]:
    ranked = (
        "Ranked by verdict, then by "
        + ", then ".join(METRICS[k][0].rstrip(" ↑↓") for k in keys)
        + ": the metrics that predicted training in the predictive-validity study "
        "(`experiments/results/predictive-validity`); equal ranks tie."
        if keys
        else "Not ranked within a verdict: no metric that predicted training in the "
        "predictive-validity study is defined here (or each rests on too few successes)."
    )
    lines = [
        "## Verdict",
        "",
        ranked + " *good*: nothing found against it, and "
        "equivalence to the task, NPG-10 or a probe run says it trains; *avoid*: a reason "
        "below says why; *unclear*: neither.",
        "",
        "| rank | reward | verdict | reasons |",
        "|---:|---|---|---|",
    ]
    for v in verdicts:
        reasons = "; ".join(v.reasons + [f"note: {n}" for n in v.notes]) or "-"
        lines.append(f"| {v.rank} | {md_cell(v.name)} | **{v.verdict}** | {md_cell(reasons)} |")
    return lines


def write_eval_report(
    out_dir: Path,
    ds: TrajectoryDataset,
    scores: list[RewardScores],
    *,
    gamma: float,
    tabular: TabularSetup | None,
    env_id: str,
    min_successes: int = MIN_SUCCESSES,
    bootstrap: int = 0,
) -> Path:
    """Write the figures, ``summary.json`` and (last) ``report.md``; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {
        "reward vs progress": "reward_vs_progress.png",
        "success histograms": "success_histograms.png",
        "ROC": "roc.png",
    }
    _plot_progress(out_dir / figures["reward vs progress"], ds, scores)
    _plot_histograms(out_dir / figures["success histograms"], ds, scores)
    _plot_roc(out_dir / figures["ROC"], scores)
    columns = [
        k
        for k in METRICS
        if (tabular is not None or k not in TABULAR_METRICS)
        and (k != PROBE_METRIC or any(PROBE_METRIC in s.metrics for s in scores))
    ]
    positives = n_successes(ds)
    low_support = set(SUCCESS_METRICS) if positives < min_successes else set()
    verdicts = judge([(s.name, s.metrics, s.intervals) for s in scores], low_support=low_support)
    by_name = {v.name: v for v in verdicts}
    keys = ranking_keys([s.metrics for s in scores], low_support)
    summary = {
        "env_id": env_id,
        "dataset": str(ds.path),
        "dataset_config": ds.config.to_dict(),
        "gamma": gamma,
        "tabular_layout_seed": None if tabular is None else tabular.seed,
        "success_transitions": positives,
        "min_successes": min_successes,
        "low_support_metrics": sorted(low_support),
        "bootstrap_reps": bootstrap,
        "ranking": list(keys),
        "rewards": [
            {
                "name": s.name,
                "role": s.role,
                "negative_control": s.negative_control,
                "rank": by_name[s.name].rank,
                "verdict": by_name[s.name].verdict,
                "reasons": by_name[s.name].reasons,
                "notes": by_name[s.name].notes,
                **s.metrics,
                "intervals": {k: list(v) for k, v in s.intervals.items()},
            }
            for s in scores
        ],
    }
    atomic_write(out_dir / "summary.json", json.dumps(json_safe(summary), indent=1))

    kinds = {k: sum(e.kind == k for e in ds.episodes) for k in EPISODE_KINDS}
    support = (
        f"{positives} of them entering a success state (from one that is not)"
        if not low_support
        else f"only {positives} of them entering a success state (from one that is not), "
        "fewer than the "
        f"{min_successes} the success-based metrics need: those are greyed out below "
        "(generate more episodes: --episodes)"
    )
    lines = [
        f"# Reward evaluation: {env_id}",
        "",
        f"Dataset `{ds.path}`: {len(ds.episodes)} episodes "
        f"({', '.join(f'{n} {k}' for k, n in kinds.items() if n)}), {ds.n_transitions} "
        f"transitions, {support}{'' if ds.has_frames else ', no frames'}. Agent discount "
        f"gamma = {gamma}.",
        "",
        "Ground truth: the true task. EPIC, STARC, point-biserial and success detection "
        "compare with success(s') (the sparse task reward); correlations and VOC with the "
        "ground-truth progress of s'; returns are discounted with the agent's gamma, the true "
        "return being that of success(s').",
        "",
        *_verdict_lines(verdicts, keys),
        "",
        "## Metrics",
        "",
        (
            f"Sampled metrics show their 95% bootstrap interval over episodes ({bootstrap} "
            "replicates) in brackets; exact ones (tabular) have none."
            if bootstrap
            else "No bootstrap intervals (--bootstrap 0)."
        )
        + (
            f" *(Parenthesized italics)*: rests on {positives} success transitions, too few "
            "to trust."
            if low_support
            else ""
        ),
        "",
        "| reward | " + " | ".join(METRICS[k][0] for k in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for sc in scores:
        name = md_cell(sc.name) + (" (negative control)" if sc.negative_control else "")
        name = f"*{name}*" if sc.role == "reference" else name
        cells = [_cell(sc, k, k in low_support) for k in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
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
    ]
    for caption, filename in figures.items():
        lines += [f"![{caption}]({filename})", ""]
    report = out_dir / "report.md"
    atomic_write(report, "\n".join(lines))
    return report
