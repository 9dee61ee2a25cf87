"""The ``rewardlab`` command line."""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rewardlab.reward_spec import RewardSpec
    from rewardlab.sandbox import ProgramContained


def _error(message: object, status: int = 2) -> int:
    """Print ``error: <message>`` on stderr; return ``status``.

    Bad input (status 2) is reported on one line: the lines of a longer message are joined
    (after a line ending in ``:`` by a space, else by ``; ``).
    """
    text = str(message)
    if status == 2:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        text = lines[0] if lines else ""
        for line in lines[1:]:
            text += (" " if text.endswith(":") else "; ") + line
    print(f"error: {text}", file=sys.stderr)
    return status


def _check_out(out: Path, flag: str = "--out") -> None:
    """Raise unless ``out`` is (or can be made) a folder this process can write in, so that a
    bad output path fails before any work, and nothing is created to find out.

    Raises:
        ValueError: Naming the path and what to do.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag} {out} is a file, not a folder; give a folder path")
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(
            f"{flag} {out}: {existing} is a file, so no folder can be made there; give another path"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"{flag} {out}: no permission to write in {existing}; give a folder you can write to"
        )


def _check_env_id(env_id: str) -> None:
    """Raise unless ``env_id`` is registered (importing a shipped adapter's package), naming
    the closest ids or the extra that installs the package."""
    from rewardlab.envs.tasks import resolve_env_id

    resolve_env_id(env_id)


def _at_least(value: int | None, flag: str, low: int) -> None:
    """Raise unless the option ``flag`` is None or at least ``low``."""
    if value is not None and value < low:
        raise ValueError(f"got {flag} {value}; pass {flag} {low} or more")


def _cmd_envs(args: argparse.Namespace) -> int:
    from rewardlab.envs.registration import NAMESPACE, all_specs
    from rewardlab.envs.tasks import SHIPPED

    for name, _, _kwargs, max_steps, description in all_specs():
        print(f"{NAMESPACE}/{name:<28} {description} (T={max_steps})")
    print("\nOther envs with a shipped task (ids or patterns; pip install 'rewardlab[EXTRA]'):")
    for entry in SHIPPED:
        print(f"{entry.key!s:<38} [{entry.extra}]")
    print('\nAny other env: register its task (rewardlab.register_task, README "Your own env")')
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from rewardlab.demo import DEFAULT_DEMO_IDS, run_demo
    from rewardlab.envs.registration import env_ids as rewardlab_ids

    env_ids = args.env or list(DEFAULT_DEMO_IDS)
    unknown = [e for e in env_ids if e not in rewardlab_ids()]
    if unknown:
        return _error(
            f"unknown env id(s) {unknown}; the demo runs rewardlab's own envs, which "
            "`rewardlab envs` lists"
        )
    failed = 0
    for env_id in env_ids:
        result = run_demo(env_id, Path(args.out), seed=args.seed, width=args.size, height=args.size)
        failed += not result.success
        verdict = "success" if result.success else "FAILED"
        print(
            f"{env_id:<32} {verdict:<8} steps={result.steps:<4} "
            f"return={result.episode_return:8.3f}  -> {result.strip_path}"
        )
    return 1 if failed else 0


def _parse_set(items: Sequence[str] | None, flag: str = "--set") -> dict[str, object]:
    """``KEY=VALUE`` pairs of the option ``flag``, values read as YAML (``0.01``,
    ``[64, 64]``, ``true``)."""
    from rewardlab.reward_spec import load_yaml

    out: dict[str, object] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} takes KEY=VALUE, got {item!r}")
        out[key] = load_yaml(value, f"{flag} {key}")
    return out


def _program_failed(
    exc: ProgramContained,
    kept: str,
    rewards: Iterable[RewardSpec],
    envs: Sequence[tuple[str, Sequence[str]]],
    warn_hint: str = "",
) -> int:
    """Report a reward program that failed at run time on stderr, without a traceback; return 1.

    ``exc`` may be as Ray re-raises it (the worker's exception in ``cause``); ``envs`` are
    ``(env id, keywords as KEY=VALUE)``.
    """
    from rewardlab.reward_spec import ProgramModelSpec
    from rewardlab.sandbox import ProgramContained

    cause = getattr(exc, "cause", None)
    failure = cause if isinstance(cause, ProgramContained) else exc
    paths = {
        part.path
        for spec in rewards
        for part in (spec.model, spec.shaping)
        if isinstance(part, ProgramModelSpec) and part.path not in (None, "reference")
    }
    program = paths.pop() if len(paths) == 1 else "PROGRAM.py"
    env, env_kwargs = envs[0] if len(envs) == 1 else ("ID", [])
    check = ["rewardlab", "llm-reward", "check", program, "--env", env]
    for kw in env_kwargs:
        check += ["--env-kwarg", kw]
    from rewardlab.wrappers.timing import RewardTooSlow

    text = failure.message
    if isinstance(failure, RewardTooSlow):
        # The check's default batch size may not be the one that was slow; the user gets the
        # measured cost (the LLM's message has none).
        check += ["--n-envs", str(failure.cost.n_envs)]
        text = failure.report + (f", or {warn_hint} to only warn" if warn_hint else "")
    message = text.replace("\n", "\n  ")
    return _error(
        f"reward program failed ({failure.reason}): {message}\n"
        f"{kept}. Find the fault with `{shlex.join(check)}`",
        status=1,
    )


_TRAIN_FLAGS = {
    "eval_freq": "--eval-freq",
    "eval_episodes": "--eval-episodes",
    "eval_seed": "--eval-seed",
    "checkpoint_freq": "--checkpoint-freq",
    "hyperparams": "--set",
    "env_kwargs": "--env-kwarg",
    "multiple": "--reward-budget",
    "on_exceed": "--slow-reward",
}
"""The option of a TrainConfig field whose name is not ``--<field>``."""


def _train_config(args: argparse.Namespace) -> Any:
    """The :class:`~rewardlab.agents.train.TrainConfig` of ``train``'s options.

    Raises:
        ValueError: Naming the option (``--steps -5: Input should be greater than 0``).
    """
    from pydantic import ValidationError

    from rewardlab.agents.train import TrainConfig
    from rewardlab.experiments.comparison_spec import check_device
    from rewardlab.reward_spec import parse_reward

    # The options TrainConfig takes as they are.
    options: tuple[str, ...] = ("env", "algo", "steps", "seed", "eval_episodes")
    options += ("eval_seed", "eval_deterministic", "device", "checkpoint_freq", "video")
    data = {
        **{name: getattr(args, name) for name in options},
        "reward": parse_reward(args.reward, where="--reward"),
        "eval_freq": max(args.steps // 20, 1) if args.eval_freq is None else args.eval_freq,
        "hyperparams": _parse_set(args.set),
        "env_kwargs": _parse_set(args.env_kwarg, "--env-kwarg"),
        "task_modules": args.tasks or [],
        "reward_budget": {
            key: value
            for key, value in (("multiple", args.reward_budget), ("on_exceed", args.slow_reward))
            if value is not None
        },
    }
    try:
        config = TrainConfig.model_validate(data)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            field = str(e["loc"][-1] if e["loc"][0] == "reward_budget" else e["loc"][0])
            flag = _TRAIN_FLAGS.get(field, "--" + field.replace("_", "-"))
            problems.append(f"{flag} {e['input']!r}: {e['msg'].removeprefix('Value error, ')}")
        raise ValueError("; ".join(problems)) from None
    check_device(config.device)
    return config


def _cmd_train(args: argparse.Namespace) -> int:
    from rewardlab.agents.train import train
    from rewardlab.presets import preset_warnings
    from rewardlab.reward_models.clip import PretrainedWeightsNotFoundError
    from rewardlab.reward_models.program_reward import corrections
    from rewardlab.reward_spec import check_info_keys
    from rewardlab.sandbox import ProgramContained

    try:
        config = _train_config(args)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", args.reward).strip("_") or "reward"
        run = f"{config.env.replace('/', '__')}-{name}-{config.algo}-seed{config.seed}"
        out = Path(args.out) if args.out else Path("runs") / run
        _check_out(out)
        check_info_keys(config.reward, config.env, config.env_kwargs, evaluation=True)
        for warning in preset_warnings(config.env, config.reward):
            print(f"warning: {warning}", file=sys.stderr)
        result = train(config, out, progress_bar=not args.no_progress)
    except (ValueError, PretrainedWeightsNotFoundError) as exc:
        return _error(exc)
    except ProgramContained as exc:
        kept = (
            f"The run folder {out} keeps what the run wrote until then; train again into "
            "the same --out (a failed run's folder is cleared) or a new one"
            if out.is_dir() and any(out.iterdir())
            else "Nothing was written"
        )
        envs = [(config.env, args.env_kwarg or [])]
        return _program_failed(exc, kept, [config.reward], envs, "pass --slow-reward warn")
    final = result.evals[-1]
    print(
        f"{config.env} {config.algo} reward={args.reward} seed={config.seed}: "
        f"success={final['success_rate']:.2f} return={final['mean_return']:.3f} "
        f"in {result.wall_s:.0f} s -> {out}"
    )
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    texts = {
        "nonfinite": "replaced {} NaN or infinite rewards",
        "clipped": "clipped {} rewards",
        "failed_calls": "absorbed {} failed calls",
    }
    for layer, report in result.diagnostics.items():
        corrected = ", ".join(texts[name].format(n) for name, n in corrections(report).items())
        if corrected:
            print(
                f"warning: the {layer} program's sandbox {corrected} during training (see "
                f"{out / 'reward_diagnostics.json'}; `rewardlab llm-reward check` finds why)",
                file=sys.stderr,
            )
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    import json

    from rewardlab.experiments.comparison_spec import load_spec
    from rewardlab.experiments.runner import RunFailed, RunNotVisible, run_comparison
    from rewardlab.presets import preset_warnings
    from rewardlab.sandbox import ProgramContained

    try:
        _at_least(args.workers, "--workers", 1)
        spec = load_spec(args.spec)
        if args.tasks:
            modules = [*spec.task_modules, *args.tasks]
            spec = spec.model_copy(update={"task_modules": modules})
        if args.address:
            if args.backend == "local":
                raise ValueError("--address is a Ray cluster's: drop --backend local")
            spec = spec.model_copy(update={"address": args.address, "backend": "ray"})
        out = Path(args.out) if args.out else Path("results") / spec.name
        _check_out(out)
        if (args.backend or spec.backend) == "ray" and importlib.util.find_spec("ray") is None:
            raise ValueError(
                "backend ray needs Ray: pip install 'rewardlab[ray]' (or --backend local)"
            )
    except ValueError as exc:
        return _error(exc)
    for env in spec.envs:
        for name, variant in spec.variants.items():
            for warning in preset_warnings(env.id, variant.reward):
                print(f"warning: {env.id} x variants.{name}: {warning}", file=sys.stderr)
    try:
        report = run_comparison(
            spec,
            out,
            backend=args.backend,
            workers=args.workers,
            overwrite=args.overwrite,
            log=functools.partial(print, flush=True),
        )
    except ValueError as exc:
        return _error(exc)
    except KeyboardInterrupt:
        print(
            f"stopped by Ctrl-C; finished runs are kept in {out}: run the same command again "
            "to resume",
            file=sys.stderr,
        )
        return 130
    except (RunFailed, RunNotVisible) as exc:
        return _error(f"{exc}; finished runs are kept in {out}", status=1)
    except ProgramContained as exc:
        kept = (
            f"Finished runs are kept in {out}; run the same command again to resume (only "
            "unfinished runs train)"
        )
        envs = [(e.id, [f"{k}={json.dumps(v)}" for k, v in e.kwargs.items()]) for e in spec.envs]
        rewards = [v.reward for v in spec.variants.values()]
        hint = "set reward_budget: {on_exceed: warn} in the spec"
        return _program_failed(exc, kept, rewards, envs, hint)
    print(f"report: {report}")
    return 0


def _mapping(path: str, what: str) -> dict[str, Any]:
    """The mapping a YAML file holds (``what`` names the file in errors).

    Raises:
        ValueError: On one line: the file is missing, unreadable, not YAML or not a mapping.
    """
    from rewardlab.reward_spec import read_yaml_file

    data = read_yaml_file(path, what)
    if not isinstance(data, dict):
        raise ValueError(f"the {what} {path} must hold a mapping, got {type(data).__name__}")
    return data


def _cmd_eval_reward(args: argparse.Namespace) -> int:
    from rewardlab.evaluation.datasets import EPISODE_KINDS, DatasetConfig
    from rewardlab.experiments.reward_eval import (
        load_sweep,
        named_rewards,
        needs_frames,
        run_eval,
    )
    from rewardlab.sandbox import ProgramContained

    out = Path(args.out) if args.out else Path("eval") / args.env.replace("/", "__")
    rewards = args.reward or ["pbrs", "progress"]
    try:
        _at_least(args.seed, "--seed", 0)
        _at_least(args.episodes, "--episodes", 1)
        _at_least(args.max_steps, "--max-steps", 1)
        _at_least(args.bootstrap, "--bootstrap", 0)
        _at_least(args.min_successes, "--min-successes", 0)
        _at_least(args.probe_steps, "--probe-steps", 0)
        _check_out(out)
        sweep = load_sweep(args.sweep, "--sweep file") if args.sweep else []
        specs = [spec for _, spec in named_rewards(rewards)]
        config = None
        if args.dataset is None:
            frames = args.frames
            if frames is None:  # auto: only CLIP rewards read frames, and they take space
                frames = needs_frames([*specs, *(s for _, s in sweep)])
            config = DatasetConfig(
                args.env,
                episodes=dict.fromkeys(
                    EPISODE_KINDS, 4 if args.episodes is None else args.episodes
                ),
                seed=args.seed,
                env_kwargs=_parse_set(args.env_kwarg, "--env-kwarg"),
                frames=frames,
                max_steps=args.max_steps,
            )
        report = run_eval(
            args.env,
            rewards,
            out,
            dataset=args.dataset,
            dataset_config=config,
            overwrite_dataset=args.overwrite_dataset,
            overwrite=args.overwrite,
            sweep=sweep,
            gamma=args.gamma,
            seed=args.seed,
            bootstrap=args.bootstrap,
            min_successes=args.min_successes,
            grow_dataset=args.episodes is None,
            probe_steps=args.probe_steps,
            log=functools.partial(print, flush=True),
        )
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, KeyError) as exc:
        return _error(exc)
    except ProgramContained as exc:
        dataset = out / "dataset"
        kept = "No report was written" + (
            f"; the dataset {dataset} is kept and reused when you run again"
            if args.dataset is None and dataset.is_dir()
            else ""
        )
        return _program_failed(exc, kept, specs, [(args.env, args.env_kwarg or [])])
    print(f"report: {report}")
    return 0


_LEARN_FUNCTIONS = {
    "preferences": ("rewardlab.learned.learn", "learn_from_preferences"),
    "online": ("rewardlab.learned.online", "learn_online"),
    "demos": ("rewardlab.learned.demos", "learn_from_demos"),
    "labels": ("rewardlab.learned.labels", "learn_from_labels"),
}
"""What ``learn-reward --from SOURCE`` runs (``online``: ``--from preferences --online``)."""

_PREFS, _ONLINE, _DEMOS, _LABELS = "preferences", "online", "demos", "labels"
_BT = frozenset({_PREFS, _ONLINE})
_ALL_SOURCES = frozenset(_LEARN_FUNCTIONS)
_INT: dict[str, Any] = {"type": int}
_FLOAT: dict[str, Any] = {"type": float}

_LEARN_OPTIONS: tuple[tuple[str, str, frozenset[str], dict[str, Any], str], ...] = (
    # (flag, keyword of the learn function, sources it applies to, argparse keywords, help)
    (
        "--preferences",
        "preferences",
        frozenset({_PREFS}),
        {"metavar": "FILE"},
        "label file (JSONL naming its dataset); default: synthetic labels",
    ),
    (
        "--synthetic",
        "synthetic",
        _BT,
        {"choices": ["progress", "success", "heron"]},
        "synthetic labeller: the true task's progress or success summed over a segment, or "
        "heron (success first, then progress) (default: progress)",
    ),
    (
        "--beta",
        "beta",
        _BT,
        _FLOAT,
        "Boltzmann-rational labeller: P(a > b) = sigmoid(beta (R(a) - R(b))) (default: the "
        "larger return always)",
    ),
    ("--pairs", "pairs", frozenset({_PREFS}), _INT, "labelled pairs (default: 300)"),
    ("--segment-length", "segment_length", _BT, _INT, "transitions per segment (default: 5)"),
    ("--noise", "noise", _BT, _FLOAT, "labeller's flip rate (model eps: twice it; default 0)"),
    (
        "--query",
        "query",
        _BT,
        {"choices": ["random", "disagreement"]},
        "which pairs to label (default: random; with --online: disagreement)",
    ),
    (
        "--query-rounds",
        "query_rounds",
        frozenset({_PREFS}),
        _INT,
        "rounds of disagreement queries (default: 4)",
    ),
    (
        "--online",
        "",
        frozenset({_ONLINE}),
        {"action": "store_true", "default": None},
        "learn while a PPO agent trains on the current reward (PEBBLE loop)",
    ),
    ("--steps", "steps", frozenset({_ONLINE}), _INT, "agent env steps (default: 50000)"),
    ("--budget", "budget", frozenset({_ONLINE}), _INT, "labels in all (default: 200)"),
    (
        "--refit-every",
        "refit_every",
        frozenset({_ONLINE}),
        _INT,
        "env steps between query rounds (default: 5000)",
    ),
    (
        "--queries-per-round",
        "queries_per_round",
        frozenset({_ONLINE}),
        _INT,
        "labels per round (default: the budget spread over the rounds)",
    ),
    (
        "--algo",
        "algo",
        frozenset({_ONLINE}),
        {"choices": ["ppo", "a2c"]},
        "on-policy agent (default: ppo)",
    ),
    (
        "--set",
        "hyperparams",
        frozenset({_ONLINE}),
        {"action": "append", "metavar": "KEY=VALUE"},
        "agent hyperparameter (repeatable)",
    ),
    (
        "--eval-episodes",
        "eval_episodes",
        frozenset({_ONLINE}),
        _INT,
        "true-task evaluation episodes of the final agent (default: 20)",
    ),
    (
        "--method",
        "method",
        frozenset({_DEMOS}),
        {"choices": ["perceptual", "goal"]},
        "Sermanet perceptual reward or goal-embedding distance (default: perceptual)",
    ),
    (
        "--demos",
        "demos",
        frozenset({_DEMOS}),
        {"metavar": "PATH"},
        "recorded episodes: a dataset folder or a folder of .npy frame arrays (default: the "
        "env's scripted expert)",
    ),
    ("--n-demos", "n_demos", frozenset({_DEMOS}), _INT, "expert demonstrations (default: 5)"),
    (
        "--demo-steps",
        "steps",
        frozenset({_DEMOS}),
        _INT,
        "steps each demonstration is split into (default: 4)",
    ),
    (
        "--features",
        "features",
        frozenset({_DEMOS}),
        _INT,
        "encoder features kept per step (default: 32)",
    ),
    (
        "--no-control",
        "control",
        frozenset({_DEMOS}),
        {"action": "store_false", "default": None},
        "skip the random-encoder control",
    ),
    (
        "--dataset",
        "dataset",
        frozenset({_LABELS}),
        {"metavar": "DIR"},
        "labelled eval-reward dataset (default: generate one)",
    ),
    (
        "--regression",
        "regression",
        frozenset({_LABELS}),
        _FLOAT,
        "weight of progress regression (default: 1)",
    ),
    (
        "--ranking",
        "ranking",
        frozenset({_LABELS}),
        _FLOAT,
        "weight of within-episode ranking (default: 1)",
    ),
    (
        "--success-weight",
        "success",
        frozenset({_LABELS}),
        _FLOAT,
        "weight of success classification (default: 1)",
    ),
    (
        "--inputs",
        "inputs",
        frozenset({_PREFS, _LABELS}),
        {"choices": ["state", "frames", "both"]},
        "what the network reads (default: state)",
    ),
    (
        "--encoder",
        "encoder",
        frozenset({_PREFS, _DEMOS, _LABELS}),
        {},
        "image encoder: efficientnet_lite0, efficientnet_lite0:random, cnn, "
        "open_clip:MODEL:PRETRAINED (default: efficientnet_lite0)",
    ),
    (
        "--fine-tune-encoder",
        "freeze_encoder",
        frozenset({_PREFS}),
        {"action": "store_false", "default": None},
        "train the encoder too",
    ),
    (
        "--heldout-fraction",
        "heldout_fraction",
        frozenset({_PREFS, _LABELS}),
        _FLOAT,
        "share held out (labels: of the layout seeds; default: 0.25)",
    ),
    ("--ensemble", "ensemble", _BT, _INT, "networks (default: 3)"),
    (
        "--epochs",
        "epochs",
        frozenset({_PREFS, _ONLINE, _LABELS}),
        _INT,
        "epochs per fit (default: 40; --online: 20; labels: 100)",
    ),
    (
        "--episodes",
        "episodes",
        _ALL_SOURCES,
        _INT,
        "episodes per kind of the generated datasets (default: 8; demos: 4)",
    ),
    (
        "--device",
        "device",
        frozenset({_ONLINE, _LABELS}),
        {},
        "torch device (default: --online cpu, labels auto)",
    ),
)
"""``learn-reward``'s source-specific options: each is passed only where given, so each learn
function's own default applies, and one given with a source it does not apply to is refused."""


_SYNTHETIC_ONLY = frozenset(
    {"--pairs", "--synthetic", "--beta", "--segment-length", "--query-rounds"}
)
"""Options of synthetic labelling, which a label file (``--preferences``) replaces."""


def _learn_kwargs(args: argparse.Namespace, source: str) -> dict[str, Any]:
    """The learn function's keywords from the options given; raise on an option given with a
    source it does not apply to."""
    kwargs: dict[str, Any] = {}
    for flag, keyword, sources, _, _ in _LEARN_OPTIONS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is None or not keyword:  # not given (flags too default to None)
            continue
        if source not in sources:
            where = " or ".join(
                "--from preferences --online" if s == _ONLINE else f"--from {s}"
                for s in sorted(sources)
            )
            given = "--from preferences --online" if source == _ONLINE else f"--from {source}"
            raise ValueError(f"{flag} applies to {where}, not to {given}: leave it out")
        if args.preferences is not None and flag in _SYNTHETIC_ONLY:
            raise ValueError(
                f"{flag} applies to synthetic labels; --preferences {args.preferences} gives "
                "the pairs and labels: leave it out"
            )
        if isinstance(value, int) and not isinstance(value, bool):
            _at_least(value, flag, 0 if flag == "--eval-episodes" else 1)
        kwargs[keyword] = value
    if "hyperparams" in kwargs:
        kwargs["hyperparams"] = _parse_set(kwargs["hyperparams"])
    return kwargs


def _cmd_learn_reward(args: argparse.Namespace) -> int:
    import importlib

    source = _ONLINE if args.online else args.source
    try:
        if args.online and args.source != _PREFS:
            raise ValueError(f"--online learns from preferences, not from {args.source}")
        kwargs = _learn_kwargs(args, source)
        out = Path(args.out) if args.out else Path("learned") / args.env.replace("/", "__")
        _check_out(out)
        _check_env_id(args.env)
        module, name = _LEARN_FUNCTIONS[source]
        learn = getattr(importlib.import_module(module), name)
        report = learn(
            args.env,
            out,
            env_kwargs=_parse_set(args.env_kwarg, "--env-kwarg") if args.env_kwarg else None,
            seed=args.seed,
            judge=not args.no_judge,
            log=functools.partial(print, flush=True),
            **kwargs,
        )
    except (ValueError, TypeError) as exc:
        return _error(exc)
    print(f"report: {report}")
    return 0


def _cmd_llm_check(args: argparse.Namespace) -> int:
    from rewardlab.agents.factory import load_hyperparams
    from rewardlab.experiments.llm_reward.checks import random_states, smoke_test
    from rewardlab.experiments.llm_reward.context import reward_context
    from rewardlab.reward_spec import read_text_file
    from rewardlab.sandbox import ProgramRejected, extract_code

    try:
        _at_least(args.seed, "--seed", 0)
        _at_least(args.n_envs, "--n-envs", 1)
        env_kwargs = _parse_set(args.env_kwarg, "--env-kwarg")
        context = reward_context(args.env, env_kwargs)
        # The batch training calls the program with: one row per env.
        n_envs = args.n_envs
        if n_envs is None:
            n_envs = int(load_hyperparams(args.algo, args.env)["n_envs"])
        text = read_text_file(args.program, "program file")
        states = random_states(args.env, env_kwargs, seed=args.seed)
    except (ValueError, TypeError) as exc:
        return _error(exc)
    try:
        source = text if args.program.endswith(".py") else extract_code(text)
    except ProgramRejected as exc:
        print(f"REJECTED (extraction: {exc.reason}): {exc.message}", file=sys.stderr)
        return 1
    report = smoke_test(source, context.shapes, states, n_envs=n_envs)
    print(report.summary(), file=sys.stdout if report.passed else sys.stderr)
    if report.cost():
        print(report.cost())
    if report.hardening:
        print(f"sandbox: {', '.join(report.hardening)}")
    for warning in report.warnings:
        print(f"warning: {warning}")
    return 0 if report.passed else 1


def _given(args: argparse.Namespace, *names: str) -> dict[str, object]:
    """The options among ``names`` given on the command line (not None), by name."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _check_server(base_url: str, timeout_s: float = 5.0) -> None:
    """Raise unless a TCP connection to the LLM server ``base_url`` opens (through no proxy:
    behind one, the client is trusted to get there), so that a wrong address fails before
    anything is written, not after every request has been retried.

    Raises:
        ValueError: Naming the address and what to do.
    """
    import socket
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
        raise ValueError(
            f"--base-url {base_url!r} is not an http(s) URL; give one like http://localhost:8000/v1"
        )
    proxies = urllib.request.getproxies()
    if (proxies.get(parts.scheme) or proxies.get("all")) and not urllib.request.proxy_bypass(
        parts.hostname
    ):
        return
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout_s).close()
    except OSError as exc:
        raise ValueError(
            f"cannot reach the LLM server at {base_url} ({exc.strerror or exc}); check "
            "--base-url (or $REWARDLAB_LLM_BASE_URL) and that the server is running, or re-run "
            "a recorded search offline with --replay --cache-dir OLD_OUT/llm_cache"
        ) from None


def _cmd_llm_search(args: argparse.Namespace) -> int:
    from rewardlab.agents.train import TrainConfig, check_config
    from rewardlab.experiments.llm_reward.search import (
        default_base_url,
        load_search_config,
        run_search,
    )
    from rewardlab.llm import LLMConfig
    from rewardlab.reward_spec import PRESET_PREFIX, preset_spec

    data: dict[str, Any] = {}
    try:
        if args.config and args.config.startswith(PRESET_PREFIX):
            data = preset_spec(args.config, "llm_search", "--config")
        elif args.config:
            data = _mapping(args.config, "--config file")
            feedback = data.get("feedback_file")
            if isinstance(feedback, str):  # the config file's folder's, like a spec's paths
                data["feedback_file"] = str(Path(args.config).resolve().parent / feedback)
        for section in ("llm", "train", "cache"):
            if not isinstance(data.get(section) or {}, dict):
                raise ValueError(f"{section} in the --config file must be a mapping of fields")
        llm, train, cache = (dict(data.get(section) or {}) for section in ("llm", "train", "cache"))
        llm.update(
            _given(
                args,
                "model",
                "base_url",
                "api_key_env",
                "temperature",
                "max_tokens",
                "timeout_s",
                "concurrency",
            )
        )
        train.update(_given(args, "steps", "seeds"))
        if args.env_kwarg:
            train["env_kwargs"] = {
                **(train.get("env_kwargs") or {}),
                **_parse_set(args.env_kwarg, "--env-kwarg"),
            }
        if args.cache_dir is not None:
            cache["dir"] = args.cache_dir
        if args.replay:
            cache["mode"] = "replay"
        keys = ("env", "samples", "iterations", "restarts", "mode", "base_reward", "feedback_file")
        data.update(_given(args, *keys), llm=llm, train=train, cache=cache)
        if args.baselines:
            data["baselines"] = True
        if "env" not in data:
            raise ValueError("--env is required (or env in the --config YAML)")
        if "model" not in llm:
            raise ValueError("--model is required (or llm.model in the --config YAML)")
        if cache.get("mode") == "replay" and not cache.get("dir"):
            raise ValueError(
                "--replay needs the recording to replay: --cache-dir OLD_OUT/llm_cache (the "
                "llm_cache folder of the search that recorded it)"
            )
        config = load_search_config(data, where="search")  # --seeds: train.seeds, each >= 0
        out = Path(args.out) if args.out else Path("llm_search") / config.env.replace("/", "__")
        _check_out(out)
        if config.cache.dir is not None:
            _check_out(Path(config.cache.dir), "--cache-dir")
        _check_env_id(config.env)
        # What every fitness run shares, checked before the server is (run_search checks it
        # again, with the rest, before its first request).
        t = config.train
        shared: dict[str, Any] = {"env": config.env, "env_kwargs": t.env_kwargs, "algo": t.algo}
        shared |= {"hyperparams": t.hyperparams, "steps": t.steps}
        check_config(
            TrainConfig.model_validate({**shared, "reward": {"reward_type": config.base_reward}})
        )
        if config.feedback_file is not None and not Path(config.feedback_file).is_file():
            raise ValueError(f"feedback file {config.feedback_file} does not exist")
        base_url = config.llm.base_url or default_base_url()
        LLMConfig(**{**config.llm.model_dump(), "base_url": base_url})  # its checks, now
        if config.cache.mode != "replay":
            _check_server(base_url)
        summary = run_search(config, out, log=functools.partial(print, flush=True))
    except (ValueError, TypeError) as exc:
        return _error(exc)
    best = summary["best"]
    print(
        f"stopped: {summary['stop_reason']}; "
        + (f"best {best['id']} fitness {best['fitness']:.2f}" if best else "no program passed")
        + f" -> {out}"
    )
    print(f"report: {out / 'report.md'}")
    if summary.get("error"):
        # Ctrl-C (the search's, or its baselines'): 130, as a shell reports SIGINT.
        stopped = summary["stop_reason"] == "interrupted" or (
            (summary.get("baselines") or {}).get("interrupted") == "Ctrl-C"
        )
        return _error(summary["error"], status=130 if stopped else 1)
    return 0


_Option = tuple[str, str, dict[str, Any]]
"""An option of a subcommand: its flag (or positional name), help text, other keywords."""


_TASKS_OPTION: _Option = (
    "--tasks",
    "module registering the env's task with rewardlab.register_task: a module name or a path "
    "to a .py file (repeatable); imported first, and by every worker",
    {"action": "append", "metavar": "MODULE"},
)


def _env_options(required: bool = True) -> tuple[_Option, _Option, _Option]:
    return (
        ("--env", "env id, e.g. rewardlab/GridKeyDoor-v0", {"required": required, "metavar": "ID"}),
        (
            "--env-kwarg",
            "gym.make keyword (repeatable)",
            {"action": "append", "metavar": "KEY=VALUE"},
        ),
        _TASKS_OPTION,
    )


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    func: Callable[[argparse.Namespace], int],
    help: str,
    description: str | None,
    *options: _Option,
) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help, description=description)
    for flag, text, kwargs in options:
        parser.add_argument(flag, help=text, **kwargs)
    parser.set_defaults(func=func)
    return parser


_FLAG: dict[str, Any] = {"action": "store_true"}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``rewardlab`` command (documents every subcommand)."""
    parser = argparse.ArgumentParser(
        prog="rewardlab",
        description="Environments and learned rewards for embodied RL research.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _command(sub, "envs", _cmd_envs, "list every registered env id with a description", None)
    _command(
        sub,
        "demo",
        _cmd_demo,
        "roll out the scripted expert on one task per family and save image strips",
        "Roll out each task's scripted expert for one episode, render it headless and write an "
        "image strip (PNG) per env. Exits 1 if an expert fails.",
        (
            "--env",
            "env id to demo (repeatable); default: one task per family",
            {"action": "append", "metavar": "ID"},
        ),
        ("--out", "output folder (default: %(default)s)", {"default": "demo_output"}),
        ("--seed", "reset seed (default: %(default)s)", {"type": int, "default": 0}),
        ("--size", "frame size in px (default: %(default)s)", {"type": int, "default": 224}),
    )
    _command(
        sub,
        "train",
        _cmd_train,
        "train one SB3 agent on a task with a reward spec, evaluated on the true task",
        "Train one agent. The reward is a short name (env, sparse, dense, carl, weighted, "
        "pbrs, progress_bonus, pbrs_mismatched, clip, pbrs_clip) or a YAML mapping such as "
        "'{shaping: progress}'. Evaluation runs on a separate env with the task's own "
        "reward. Writes config.json, eval.csv, progress.csv, TensorBoard events, "
        "model.zip, reward_components.json (the reward and its components at ten points "
        "of training), training_episodes.json and training.png (the trained-on reward's "
        "episode return against the true success over training) and, for a reward "
        "program, reward_diagnostics.json (what its sandbox corrected) to --out; "
        "failed.json when learning fails. Exit 1 when a reward program fails at run time "
        "or costs more than its time budget (--reward-budget), 2 on bad input.",
        *_env_options(),
        ("--reward", "reward spec (default: %(default)s)", {"default": "env"}),
        ("--algo", "ppo, a2c, dqn, sac or td3 (default: %(default)s)", {"default": "ppo"}),
        ("--steps", "env steps (default: %(default)s)", {"type": int, "default": 100_000}),
        ("--seed", "seed (default: %(default)s)", {"type": int, "default": 0}),
        ("--eval-freq", "env steps between evaluations (default: steps/20)", {"type": int}),
        (
            "--eval-episodes",
            "episodes per evaluation (default: %(default)s)",
            {"type": int, "default": 20},
        ),
        (
            "--eval-seed",
            "reset seed of evaluation episode 0; episode k gets seed+k (default: %(default)s)",
            {"type": int, "default": 1_000_000},
        ),
        (
            "--eval-deterministic",
            "evaluate the greedy policy (default: actions sampled from the policy)",
            _FLAG,
        ),
        ("--device", "torch device; auto uses CUDA when present", {"default": "auto"}),
        (
            "--set",
            "hyperparameter override (repeatable), e.g. --set ent_coef=0.01",
            {"action": "append", "metavar": "KEY=VALUE"},
        ),
        ("--checkpoint-freq", "env steps between checkpoints", {"type": int}),
        ("--video", "save a GIF of each evaluation's first episode", _FLAG),
        (
            "--reward-budget",
            "a reward program may cost up to this many times the env step per call, or "
            "50 ms, whichever is more (default: 10)",
            {"type": float, "metavar": "MULTIPLE"},
        ),
        (
            "--slow-reward",
            "a reward program over its budget stops training, or only warns (default: error)",
            {"choices": ["error", "warn"]},
        ),
        ("--out", "run folder (default: runs/<env>-<reward>-<algo>-seed<k>)", {}),
        ("--no-progress", "no progress bar", _FLAG),
    )
    _command(
        sub,
        "compare",
        _cmd_compare,
        "run a comparison spec (envs x reward variants x seeds) and write its report",
        "Run every (env, variant, seed) of a YAML comparison spec (see experiments/), "
        "resuming: finished runs are skipped, interrupted ones redone. Then write "
        "report.md, summary.json and plots (IQM with stratified-bootstrap CIs, "
        "probability of improvement, performance profiles) to the output folder. The first "
        "failing run stops the others; so does Ctrl-C (exit 130). Exit 1 when a run fails "
        "at run time (finished runs are kept; whole tracebacks in OUT/errors.log), 2 on bad "
        "input (a Ray cluster that cannot run the spec included, found before any run).",
        ("spec", "comparison spec (YAML), or preset:NAME (rewardlab.presets)", {}),
        ("--out", "output folder (default: results/<spec name>)", {}),
        ("--backend", "override the spec's backend", {"choices": ["local", "ray"]}),
        (
            "--address",
            "Ray cluster to run on (host:port, or auto); implies --backend ray",
            {"metavar": "ADDRESS"},
        ),
        ("--workers", "most runs at once, on every backend (default: the spec's)", {"type": int}),
        _TASKS_OPTION,
        ("--overwrite", "retrain finished runs whose config changed", _FLAG),
    )
    _command(
        sub,
        "eval-reward",
        _cmd_eval_reward,
        "judge rewards against the true task on a labelled trajectory dataset",
        "Build (or load) a dataset of expert, random, partial, near-miss and counterfactual "
        "episodes of an env, score every --reward on it (CLIP frames encoded once, on the "
        "GPU when present) and write report.md with EPIC (and exact tabular EPIC and STARC "
        "on gridworlds), point-biserial, progress and return correlations, VOC, success "
        "ROC/PR AUC and preference accuracy, plus figures. The env's dense expert reward "
        "and a random reward are always added as reference rows. Exit 1 when a reward "
        "program fails at run time, 2 on bad input.",
        *_env_options(),
        (
            "--reward",
            "reward spec as for train (repeatable; default: pbrs and progress)",
            {"action": "append", "metavar": "SPEC"},
        ),
        ("--sweep", "CLIP sweep file: heads x options x prompt sets", {"metavar": "YAML"}),
        (
            "--dataset",
            "use this existing dataset as it is (default: <out>/dataset, generated if missing)",
            {"metavar": "PATH"},
        ),
        (
            "--episodes",
            "episodes per kind to generate (default: 4, grown until --min-successes "
            "transitions enter success)",
            {"type": int},
        ),
        (
            "--min-successes",
            "transitions entering success the success-based metrics need; fewer are greyed "
            "out (default: %(default)s)",
            {"type": int, "default": 20},
        ),
        (
            "--bootstrap",
            "bootstrap replicates over episodes for the metrics' 95%% intervals, 0 for none "
            "(default: %(default)s)",
            {"type": int, "default": 1000},
        ),
        (
            "--probe-steps",
            "train PPO on each reward for this many steps (one seed) and report its true "
            "success: a cheap, noisy proxy for envs without a tabular model (default: off)",
            {"type": int, "default": 0, "metavar": "N"},
        ),
        (
            "--max-steps",
            "cut generated episodes after this many steps (default: env limit)",
            {"type": int},
        ),
        (
            "--frames",
            "render and store a frame per state (default: only when a CLIP reward is judged)",
            {"action": argparse.BooleanOptionalAction, "default": None},
        ),
        (
            "--seed",
            "dataset and reference seed (default: %(default)s)",
            {"type": int, "default": 0},
        ),
        (
            "--gamma",
            "agent discount for shaping (default: %(default)s)",
            {"type": float, "default": 0.99},
        ),
        ("--out", "report folder (default: eval/<env>)", {}),
        ("--overwrite-dataset", "regenerate the dataset in <out>/dataset", _FLAG),
        ("--overwrite", "replace an existing report in --out", _FLAG),
    )
    _command(
        sub,
        "learn-reward",
        _cmd_learn_reward,
        "learn a reward from preferences, demonstrations or labelled episodes, and judge it",
        "Fit a reward network and save it as checkpoint.pt (use it as "
        "'{model: {kind: learned, path: ...}}' or as a shaping potential), with training "
        "curves, report.md and summary.json; eval-reward judges it on other episodes (eval/). "
        "--from preferences: Bradley-Terry on segment pairs labelled by a JSONL file or "
        "synthetically by the true task (offline, or --online while a PPO agent trains on it); "
        "--from demos: Sermanet et al.'s perceptual reward or a goal-embedding distance from "
        "expert or recorded frames; --from labels: a progress/success head on a labelled "
        "dataset, held out by layout seed. Options name the sources they apply to ([online]: "
        "--from preferences --online). Exit 2 on bad input, before anything is written.",
        *_env_options(),
        (
            "--from",
            "what to learn from (default: %(default)s)",
            {"choices": ["preferences", "demos", "labels"], "default": _PREFS, "dest": "source"},
        ),
        *(
            (flag, f"[{', '.join(sorted(sources))}] {text}", kwargs)
            for flag, _, sources, kwargs, text in _LEARN_OPTIONS
        ),
        ("--seed", "seed (default: %(default)s)", {"type": int, "default": 0}),
        ("--no-judge", "skip eval-reward", _FLAG),
        ("--out", "output folder (default: learned/<env>)", {}),
    )
    llm = sub.add_parser(
        "llm-reward",
        help="rewards written by an LLM: search (Eureka-style) and check a program",
        description=(
            "Reward programs are compute_reward(<state variables>) on batched numpy arrays, "
            "returning (reward, components). Use one in train/compare/eval-reward with "
            "--reward '{model: {kind: program, path: PROGRAM.py}}'."
        ),
    )
    llm_sub = llm.add_subparsers(dest="llm_command", required=True)
    _command(
        llm_sub,
        "check",
        _cmd_llm_check,
        "validate and smoke-test one reward program on random rollouts of a task",
        "Validate PROGRAM (a .py file, or an LLM response holding a ```python block) "
        "against the task's state variables and run it in the sandbox on states of random "
        "and expert rollouts, in batches of 64, 1, 2 and the training batch (--n-envs), "
        "and again in a second worker process: its rewards must be the same state by "
        "state. Prints the cost per call and per row at the training batch and the "
        "sandbox's hardening layers. Exit 0 with a short report when it passes; 1 with "
        "the reason when it is rejected or contained; 2 on bad arguments.",
        ("program", "program file (.py) or LLM response (.md, .txt)", {}),
        *_env_options(),
        ("--seed", "rollout seed (default: %(default)s)", {"type": int, "default": 0}),
        (
            "--n-envs",
            "training batch size to check it at (default: n_envs of --algo on --env)",
            {"type": int, "metavar": "N"},
        ),
        (
            "--algo",
            "algorithm whose default n_envs is the training batch (default: %(default)s)",
            {"default": "ppo"},
        ),
    )
    _command(
        llm_sub,
        "search",
        _cmd_llm_search,
        "search reward programs with an LLM, judged by short training runs",
        "K samples x N iterations x R restarts (independent concurrent requests to any "
        "OpenAI-compatible server); every program is validated, smoke-tested and trained "
        "briefly; the best is fed back with reward reflection and failure analysis. "
        "Options override the YAML --config. Responses are cached under <out>/llm_cache; "
        "to re-run a recorded search offline, into a new --out: --replay --cache-dir "
        "OLD_OUT/llm_cache. Exit 0 when the search ran (whatever it found), 1 when it had "
        "to stop on an error (API key refused, every request of a round failed: the server "
        "died or refuses the prompt, replay off its recording), 130 on Ctrl-C (the answers "
        "received are kept; the message says how to go on), 2 on bad input (checked before "
        "any request: a server address where nothing answers is bad input too).",
        (
            "--config",
            "search config: the options below by field (llm: {model, base_url, ...}, train: "
            "{steps, seeds, hyperparams, env_kwargs, ...}, budgets: {tokens, wall_s, "
            "env_steps}, cache: {dir, mode}, ...; rewardlab.experiments.llm_reward.search."
            "SearchConfig documents every field), or preset:NAME (rewardlab.presets)",
            {"metavar": "YAML"},
        ),
        *_env_options(required=False),
        ("--model", "model name on the server", {}),
        (
            "--base-url",
            "OpenAI-compatible base URL (…/v1); default: $REWARDLAB_LLM_BASE_URL, else "
            "$OPENAI_BASE_URL, else OpenAI's API",
            {},
        ),
        ("--api-key-env", "env var holding the API key", {}),
        ("--temperature", "sampling temperature", {"type": float}),
        (
            "--max-tokens",
            "cap on each answer's length in tokens (default: the server's)",
            {"type": int, "dest": "max_tokens"},
        ),
        (
            "--timeout",
            "seconds to wait for the connection and for each read of an answer, from when the "
            "request is sent; it includes time queued in the server, which no client sees "
            "(default: 120)",
            {"type": float, "dest": "timeout_s", "metavar": "SECONDS"},
        ),
        (
            "--concurrency",
            "requests in flight at once (default: 4); at most the server's parallel slots "
            "(llama.cpp --parallel, vLLM --max-num-seqs, OLLAMA_NUM_PARALLEL), or requests "
            "wait in its queue and time out there",
            {"type": int},
        ),
        ("--samples", "K programs per iteration", {"type": int}),
        ("--iterations", "N iterations per restart", {"type": int}),
        ("--restarts", "R independent restarts", {"type": int}),
        ("--mode", "how it pays", {"choices": ["replace", "add", "potential"]}),
        (
            "--base-reward",
            "env reward_type the program is added to or shapes (default: sparse)",
            {},
        ),
        ("--steps", "env steps of each fitness run", {"type": int}),
        ("--seeds", "training seeds of each fitness run", {"type": int, "nargs": "+"}),
        ("--feedback-file", "human notes to pass on", {}),
        ("--cache-dir", "LLM response cache (default: <out>/llm_cache)", {}),
        ("--replay", "offline: only cached responses", _FLAG),
        ("--baselines", "also train sparse and dense", _FLAG),
        ("--out", "output folder (default: llm_search/<env>)", {}),
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rewardlab`` console script."""
    # Headless by default: MuJoCo must pick its GL backend before it is first imported.
    os.environ.setdefault("MUJOCO_GL", "egl")
    args = build_parser().parse_args(argv)
    if getattr(args, "tasks", None):
        from rewardlab.envs.tasks import import_task_modules

        try:  # before any option naming an env of theirs is checked
            import_task_modules(args.tasks)
        except ValueError as exc:
            return _error(exc)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:  # a command with work to keep says so itself, first
        print("stopped by Ctrl-C", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
