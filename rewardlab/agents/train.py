"""One training run: an SB3 agent on a task with a reward spec, evaluated on the true task."""

from __future__ import annotations

import functools
import importlib.util
import inspect
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
)
from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback
from stable_baselines3.common.logger import configure

from rewardlab import vec
from rewardlab.agents.callbacks import (
    RewardComponentLog,
    RewardCostCheck,
    ShapingDiscountCheck,
    StopAtBudget,
    TrainingEpisodeLog,
)
from rewardlab.agents.factory import ACTION_SPACES, algorithm_class, load_hyperparams, make_agent
from rewardlab.agents.policy_eval import TrueTaskEval
from rewardlab.envs.tasks import MissingTaskFeature, import_task_modules, resolve_env_id
from rewardlab.envs.tasks import make as make_task_env
from rewardlab.reward_models.potentials import check_mismatched_discount
from rewardlab.reward_spec import (
    ProgramModelSpec,
    RewardSpec,
    check_info_keys,
    format_validation_error,
    parse_reward,
)
from rewardlab.wrappers.timing import RewardBudget
from rewardlab.wrappers.vec import reward_diagnostics

__all__ = [
    "EPISODES_FILE",
    "FAILED_FILE",
    "PLOT_FILE",
    "TrainConfig",
    "TrainResult",
    "check_config",
    "train",
]

FAILED_FILE = "failed.json"
"""Written into the run folder by a run that failed while learning: ``{"steps", "error"}``."""

EPISODES_FILE = "training_episodes.json"
"""Written into the run folder: the training episodes' proxy return, success and components
in windows (:meth:`~rewardlab.agents.callbacks.TrainingEpisodeLog.summary`)."""

PLOT_FILE = "training.png"
"""Written into the run folder (``plot=True``): the proxy return against the training
success, and the reward components' window means, over training."""


class TrainConfig(BaseModel):
    """Everything that defines one training run (saved as the run's ``config.json``).

    Attributes:
        env: A registered env id.
        env_kwargs: ``gym.make`` keywords of both the training and the evaluation env.
        reward: The reward trained on (a :class:`~rewardlab.reward_spec.RewardSpec`, a
            short name such as ``"pbrs"`` or a mapping).
        algo: ``ppo``, ``a2c``, ``dqn``, ``sac`` or ``td3``.
        hyperparams: Overrides of the per-env defaults (``rewardlab/agents/hyperparams``).
        steps: Training budget in env steps (summed over sub-envs).
        seed: Seed of the agent; training sub-env ``i`` gets ``seed * n_envs + i``.
        eval_freq: Env steps between evaluations on the true task.
        eval_episodes: Episodes per evaluation, with reset seeds ``eval_seed + k``, the same
            at every evaluation and in every run.
        eval_seed: First evaluation seed, far from training seeds.
        device: Torch device of the agent; ``"auto"`` uses CUDA when present.
        checkpoint_freq: Env steps between model checkpoints; None saves the final model only.
        video: Save the first evaluation episode of every evaluation as a GIF.
        eval_deterministic: Evaluate the greedy policy instead of the policy as trained
            (sampled actions, seeded). Off by default: a greedy policy over discrete actions
            often loops forever in a gridworld although the policy it came from succeeds.
        reward_budget: How much time a reward program may take per vector step
            (:class:`~rewardlab.wrappers.timing.RewardBudget`: by default at most
            ``max(10 x the env step, 50 ms)`` per call, else training stops). Left out of
            the dumped config while it is the default.
        task_modules: Modules (names, or paths to ``.py`` files, made absolute) imported
            before the env is made: those registering the env's task
            (:func:`rewardlab.register_task`), so that a worker process sees it too. Left
            out of the dumped config while empty.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    reward: RewardSpec = Field(default_factory=RewardSpec)
    algo: str = "ppo"
    hyperparams: dict[str, Any] = Field(default_factory=dict)
    steps: int = Field(gt=0)
    seed: int = Field(default=0, ge=0)
    eval_freq: int = Field(default=10_000, gt=0)
    eval_episodes: int = Field(default=20, gt=0)
    eval_seed: int = Field(default=1_000_000, ge=0)
    device: str = "auto"
    checkpoint_freq: int | None = Field(default=None, gt=0)
    video: bool = False
    eval_deterministic: bool = False
    reward_budget: RewardBudget = Field(default_factory=RewardBudget)
    task_modules: list[str] = Field(default_factory=list)

    @field_validator("task_modules")
    @classmethod
    def _absolute_paths(cls, value: list[str]) -> list[str]:
        return [str(Path(m).resolve()) if m.endswith(".py") else m for m in value]

    @field_validator("reward", mode="before")
    @classmethod
    def _parse_reward(cls, value: Any) -> Any:
        return parse_reward(value) if isinstance(value, str) else value

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A default budget is not written: configs recorded before the budget existed (a
        # comparison's done markers) still equal the ones the same spec gives now.
        data: dict[str, Any] = handler(self)
        if self.reward_budget == RewardBudget():
            data.pop("reward_budget", None)
        if not self.task_modules:
            data.pop("task_modules", None)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> TrainConfig:
        """Validate ``data``; errors name each bad field (prefixed by ``where``).

        Raises:
            ValueError: Listing every invalid field.
        """
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            detail = format_validation_error(err, where)
            raise ValueError(f"invalid training config: {detail}") from None


@dataclass(frozen=True)
class TrainResult:
    """What a finished run reports.

    Attributes:
        evals: One dict per evaluation (:data:`~rewardlab.agents.policy_eval.EVAL_COLUMNS`).
        wall_s: Seconds of training, evaluations included.
        steps: Env steps taken: ``config.steps`` rounded up to a whole vector step (training
            stops there; the last evaluation is at that step).
        components: Per reward component (and ``"reward"``, what the agent received): window
            means over training, max, mean, min (:class:`RewardComponentLog`); also written
            to ``reward_components.json``.
        diagnostics: What the reward models reported of themselves by layer (``"reward"``,
            ``"potential"``; see :func:`~rewardlab.wrappers.vec.reward_diagnostics`), e.g.
            a reward program's failed calls, non-finite values and clipped rewards; also
            written to ``reward_diagnostics.json`` when there are any.
        warnings: What the user should know about the run, one line each: a reward program
            over its time budget (with ``reward_budget.on_exceed="warn"``).
        episodes: The training episodes' proxy (trained-on) return, true success and
            components in windows (:class:`TrainingEpisodeLog`); also written to
            ``training_episodes.json``.
    """

    evals: list[dict[str, float]]
    wall_s: float
    steps: int
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    diagnostics: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    episodes: dict[str, Any] = field(default_factory=dict)


def _resolve(config: TrainConfig) -> tuple[dict[str, Any], float]:
    """The run's hyperparameters and agent discount, after the checks that need no agent."""
    import_task_modules(config.task_modules)
    resolve_env_id(config.env)
    params = load_hyperparams(config.algo, config.env, config.hyperparams)
    kwargs = _train_env_kwargs(config)
    try:
        env = make_task_env(config.env, **kwargs)
    except MissingTaskFeature:
        raise
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{config.env} rejects env_kwargs {kwargs}: {exc}") from None
    space = env.action_space
    env.close()
    cls = algorithm_class(config.algo)
    if not isinstance(space, ACTION_SPACES[config.algo.lower()]):
        algos = [name for name, kinds in ACTION_SPACES.items() if isinstance(space, kinds)]
        raise ValueError(
            f"{cls.__name__} does not support {config.env}'s "
            f"{type(space).__name__} actions; use one of {algos}"
        )
    default_gamma = inspect.signature(cls.__init__).parameters["gamma"].default
    gamma = params.get("gamma", default_gamma)
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 <= gamma <= 1:
        raise ValueError(f"hyperparameter gamma must be a number in [0, 1], got {gamma!r}")
    gamma = float(gamma)
    if config.reward.shaping_gamma is not None:
        check_mismatched_discount(config.reward.shaping_gamma, gamma)
    return params, gamma


def _train_env_kwargs(config: TrainConfig) -> dict[str, Any]:
    """``gym.make`` keywords of the training env: the run's, with the reward's type."""
    kwargs = dict(config.env_kwargs)
    if config.reward.reward_type is not None:
        kwargs["reward_type"] = config.reward.reward_type
    return kwargs


def _build_agent(config: TrainConfig, venv: Any, params: dict[str, Any], **kwargs: Any) -> Any:
    """The run's agent on ``venv``; a hyperparameter value SB3 rejects is a ValueError."""
    try:
        return make_agent(config.algo, venv, params, seed=config.seed, **kwargs)
    except (AssertionError, TypeError, ValueError) as exc:
        name = algorithm_class(config.algo).__name__
        raise ValueError(f"{name} rejects the hyperparameters {params}: {exc}") from None


def check_config(config: TrainConfig) -> dict[str, Any]:
    """Check that ``config`` can run, without training; return its resolved hyperparameters.

    Builds the training env with the reward's ``reward_type`` and the agent on it once (no
    reward models: a CLIP model is loaded at training start), so that an unknown env id or
    env keyword, an algorithm that does not support the env's actions, a bad hyperparameter
    value or a shaping discount equal to the agent's fails here, before any training.

    Raises:
        ValueError: Naming what is wrong.
    """
    params, _ = _resolve(config)
    n_envs = int(params.get("n_envs", 1))
    venv = vec.make_vec_env(config.env, n_envs, env_kwargs=_train_env_kwargs(config))
    try:
        _build_agent(config, venv, params, device="cpu")
    finally:
        venv.close()
    return params


def train(
    config: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    progress_bar: bool = False,
    verbose: int = 0,
    plot: bool = True,
) -> TrainResult:
    """Train one agent as ``config`` says and write its results to ``run_dir``.

    Writes ``config.json``, ``eval.csv`` (true-task evaluations, appended as they happen),
    ``progress.csv`` and TensorBoard event files (SB3's logs), ``checkpoints/`` (with
    ``checkpoint_freq``), ``videos/`` (with ``video``), ``model.zip``,
    ``reward_components.json``, ``training_episodes.json`` (the trained-on reward's episode
    return beside the true success, in windows: :class:`TrainingEpisodeLog`; the env's return
    is recorded as the task's unless the reward sets ``reward_type``), with ``plot`` (and
    matplotlib, part of the ``train`` extra) ``training.png`` (both over training) and, when a
    reward model reports any, ``reward_diagnostics.json``; a run that fails while learning
    writes ``failed.json`` (the env steps it took and the error) and its
    ``reward_diagnostics.json`` so far before the error propagates. The shaping discount is
    the agent's ``gamma``, and :class:`ShapingDiscountCheck` verifies it at training start.
    Evaluation runs on a separate env without the reward layers.

    Training sub-env ``i`` is seeded with ``seed * n_envs + i``, so runs with different seeds
    never share an env seed (with ``seed + i`` runs 0 and 1 would share ``n_envs - 1``
    streams and look more alike than independent runs are).

    A reward program is held to ``config.reward_budget`` (measured at the run's batch size,
    ``n_envs``, against the env step of the same run): by default a program that costs more
    stops the run with :class:`~rewardlab.wrappers.timing.RewardTooSlow` (``failed.json``
    records the measurement); with ``on_exceed="warn"`` the run finishes and
    :attr:`TrainResult.warnings` says so.

    Raises:
        ValueError: From the checks of :func:`check_config` (made on the run's own env and
            agent, before anything is written), or if ``run_dir`` already holds files (a run
            never mixes its logs with another's). A folder a failed run left (with
            ``failed.json``) is cleared and trained into again.
        ProgramContained: When a reward program fails (its exception budget spent), or
            :class:`~rewardlab.wrappers.timing.RewardTooSlow`, a subclass, when it is over its
            time budget.
    """
    try:  # config.json records the program's source and each file's SHA-256
        pinned = config.reward.resolved(Path.cwd()).pinned(config.env, config.env_kwargs)
    except ValueError as exc:
        raise ValueError(f"reward.{exc}") from None
    config = config.model_copy(update={"reward": pinned})
    params, gamma = _resolve(config)
    # A misspelt info key fails here, before anything is written (library callers too).
    check_info_keys(config.reward, config.env, config.env_kwargs, evaluation=True)
    out = Path(run_dir)
    if (out / FAILED_FILE).is_file():  # what a failed run left: retried from scratch
        shutil.rmtree(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(
            f"run folder {out} already holds files; train into a new folder or delete it"
        )
    n_envs = int(params.get("n_envs", 1))
    venv = vec.make_vec_env(
        config.env,
        n_envs,
        config.reward,
        seed=config.seed * n_envs,
        gamma=gamma,
        env_kwargs=config.env_kwargs,
    )
    try:
        agent = _build_agent(config, venv, params, device=config.device, verbose=verbose)
    except BaseException:
        venv.close()  # a reward program's sandbox worker, SubprocVecEnv processes
        raise
    # SB3 seeds the env with the agent's seed (sub-env i: seed + i) when it builds the
    # agent; re-seed after, for disjoint env seeds across runs (applied at learn's reset).
    venv.seed(config.seed * n_envs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config.model_dump(mode="json"), indent=2))
    eval_kwargs = dict(config.env_kwargs)
    if config.video:
        eval_kwargs["render_mode"] = "rgb_array"
    evaluator = TrueTaskEval(
        functools.partial(make_task_env, config.env, info_keys=("is_success",), **eval_kwargs),
        config.eval_freq,
        [config.eval_seed + k for k in range(config.eval_episodes)],
        csv_path=out / "eval.csv",
        video_dir=out / "videos" if config.video else None,
        deterministic=config.eval_deterministic,
    )
    logger = configure(str(out), ["csv", "tensorboard"])
    start = time.perf_counter()
    notes: list[str] = []  # what the user should know beyond the reward budget's warnings
    try:
        agent.set_logger(logger)
        components = RewardComponentLog(config.steps)
        # With a reward_type the env's own reward is the variant's, not the task's.
        episodes = TrainingEpisodeLog(config.steps, task_return=config.reward.reward_type is None)
        # A program is named by its path (a file, or ``reference``); by default "given as source".
        parts = {"reward": config.reward.model, "potential": config.reward.shaping}
        programs = {
            role: part.path
            for role, part in parts.items()
            if isinstance(part, ProgramModelSpec) and part.path is not None
        }
        budget = RewardCostCheck(config.reward_budget, programs)
        # StopAtBudget last: the other callbacks see the step at the budget (an evaluation).
        callbacks: list[Any] = [
            ShapingDiscountCheck(),
            evaluator,
            components,
            episodes,
            budget,
            StopAtBudget(config.steps),
        ]
        if config.checkpoint_freq is not None:
            callbacks.append(
                CheckpointCallback(
                    max(config.checkpoint_freq // n_envs, 1), str(out / "checkpoints")
                )
            )
        try:
            agent.learn(config.steps, callback=CallbackList(callbacks), progress_bar=progress_bar)
        except Exception as exc:
            # What a failed run got through, for the logs and for step budgets (SB3 writes
            # progress.csv only after whole rollouts).
            failed = {"steps": int(agent.num_timesteps), "error": f"{type(exc).__name__}: {exc}"}
            (out / FAILED_FILE).write_text(json.dumps(failed, indent=1))
            _write_diagnostics(out, venv)  # what the sandbox saw until then, its layers too
            raise
        agent.save(out / "model.zip")
        # allow_nan=False: the statistics are kept finite, so a NaN here is a bug to see.
        summary = json.dumps(components.summary(), indent=1, allow_nan=False)
        (out / "reward_components.json").write_text(summary)
        (out / EPISODES_FILE).write_text(json.dumps(episodes.summary(), indent=1, allow_nan=False))
        if plot and importlib.util.find_spec("matplotlib") is not None:
            try:
                plot_run(episodes.summary(), components.summary(), out / PLOT_FILE, config.env)
            except (ValueError, OverflowError) as exc:  # the run's results stand without it
                notes.append(f"{PLOT_FILE} not written: {type(exc).__name__}: {exc}")
        diagnostics = _write_diagnostics(out, venv)
    finally:
        evaluator.close()
        logger.close()
        venv.close()
    return TrainResult(
        evals=evaluator.rows,
        wall_s=time.perf_counter() - start,
        steps=agent.num_timesteps,
        components=components.summary(),
        diagnostics=diagnostics,
        warnings=[*budget.warnings, *notes],
        episodes=episodes.summary(),
    )


def _write_diagnostics(out: Path, venv: Any) -> dict[str, Any]:
    """Write the reward layers' diagnostics to ``reward_diagnostics.json`` (when they have
    any: a reward program's sandbox record); return them."""
    diagnostics = reward_diagnostics(venv)
    if diagnostics:
        # allow_nan=False: the statistics are kept finite, so a NaN here is a bug to see.
        report = json.dumps(diagnostics, indent=1, allow_nan=False)
        (out / "reward_diagnostics.json").write_text(report)
    return diagnostics


def plot_run(
    episodes: dict[str, Any], components: dict[str, dict[str, Any]], path: Path, title: str
) -> None:
    """Write one run's training curves as a PNG: the proxy's episode return (left axis)
    against the training episodes' success (right axis), and each reward component's window
    means (``reward_components.json``), over env steps.

    Args:
        episodes: :meth:`TrainingEpisodeLog.summary`.
        components: :meth:`RewardComponentLog.summary`.
        path: The PNG to write.
        title: The figure's title (the env).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11.0, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    windows = episodes["windows"]
    ends = [w["end"] for w in windows]
    proxy = [_or_nan(w["proxy_return"]["mean"]) for w in windows]
    left.plot(ends, proxy, marker="o", color="tab:blue", label="proxy return")
    left.set(xlabel="env steps", ylabel="proxy episode return (trained-on reward)", title=title)
    twin = left.twinx()
    success = [_or_nan(w["success"]["rate"]) for w in windows]
    if any(w["success"]["n"] for w in windows):
        twin.plot(ends, success, marker="s", color="tab:green", label="training success")
    twin.set(ylabel="training episodes' success", ylim=(-0.02, 1.02))
    lines = left.get_lines() + twin.get_lines()
    left.legend(lines, [line.get_label() for line in lines], loc="best", fontsize="small")
    span = episodes["steps"]
    for name, stats in components.items():
        values = [_or_nan(v) for v in stats["values"]]
        if any(v is not None and abs(v) > PLOT_LIMIT for v in stats["values"]):
            name += f" (values beyond {PLOT_LIMIT:g} not drawn)"
        if values:  # window k of n ends at (k + 1) / n of the span
            steps = [span * (k + 1) / len(values) for k in range(len(values))]
            right.plot(steps, values, marker=".", label=name)
    right.set(xlabel="env steps", ylabel="window mean per step", title="reward components")
    if components:
        right.legend(loc="best", fontsize="small")
    fig.savefig(path, format="png", dpi=90)


PLOT_LIMIT = 1e100
"""Values beyond this magnitude are not drawn: axis ranges near the largest float overflow."""


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None or not abs(value) <= PLOT_LIMIT else value
