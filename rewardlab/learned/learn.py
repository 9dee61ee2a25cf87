"""``rewardlab learn-reward``: fit a reward network to data, save it, and judge it.

From preferences (this module's :func:`learn_from_preferences`): a dataset of the env's
episodes (generated, or the one a label file names), pairs of segments labelled by a file or by
a synthetic oracle of the true task, an ensemble fit by Bradley-Terry, and then:

- ``checkpoint.pt``: the first member, usable as ``{model: {kind: learned, path: ...}}``, its
  reward standardized by its mean and standard deviation on the training dataset's states;
- ``loss.png``: each member's training loss by epoch;
- ``report.md`` / ``summary.json``: the data, the labels (synthetic ones say so), each
  member's held-out preference accuracy, and ``eval-reward``'s verdict on a dataset of other
  episodes (``eval/``).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.learned.judging import cell, eval_reward_lines, judge_checkpoint
from rewardlab.progress import Progress

__all__ = ["SYNTHETIC", "describe_labeller", "learn_from_preferences", "synthetic_labeller"]

QUERIES = ("random", "disagreement")
"""How :func:`learn_from_preferences` chooses the synthetic pairs it labels."""

CANDIDATES_PER_QUERY = 10
"""Disagreement-based selection picks each query among this many random candidate pairs."""


SYNTHETIC = ("progress", "success", "heron")
"""The synthetic labellers: the true task's progress or success summed over each segment
(:class:`~rewardlab.learned.preferences.SyntheticOracle`), or HERON's hierarchical comparison
of (success, progress) (:class:`~rewardlab.learned.preferences.HeronOracle`)."""


def synthetic_labeller(
    synthetic: str, noise: float, beta: float | None
) -> Callable[[Any, Sequence[tuple[Any, Any]], np.random.Generator], list[Any]]:
    """``label(ds, pairs, rng) -> preferences`` of a synthetic labeller (:data:`SYNTHETIC`)
    that flips labels with probability ``noise``; ``beta``: Boltzmann-rational
    (``sigmoid(beta * (R(a) - R(b)))``) instead of always preferring the larger return.

    Raises:
        ValueError: An unknown labeller, ``beta`` with HERON, or a bad ``beta``.
    """
    from rewardlab.learned.preferences import (
        HeronOracle,
        SyntheticOracle,
        label_pairs,
        task_values,
    )

    if synthetic not in SYNTHETIC:
        raise ValueError(f"unknown synthetic signal {synthetic!r}; one of {list(SYNTHETIC)}")
    if synthetic == "heron":
        if beta is not None:
            raise ValueError("beta (a Boltzmann-rational labeller) does not apply to heron")
        heron = HeronOracle(error_rate=noise)
        return lambda ds, pairs, rng: heron.label_pairs(ds, pairs, rng)
    if beta is not None and not (math.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be > 0, got {beta}")
    oracle = SyntheticOracle(beta=beta, error_rate=noise, tie_margin=1e-9)
    return lambda ds, pairs, rng: label_pairs(ds, pairs, task_values(ds, synthetic), oracle, rng)


def describe_labeller(synthetic: str, noise: float, beta: float | None) -> str:
    """The synthetic labeller in words (for reports)."""
    from rewardlab.learned.preferences import HERON_FACTORS, HERON_MARGINS

    if synthetic == "heron":
        factors = ", ".join(
            f"{f} (margin {m:g})" for f, m in zip(HERON_FACTORS, HERON_MARGINS, strict=True)
        )
        how = (
            "HERON's hierarchical comparison of the true task's factors summed over each "
            f"segment, most important first: {factors}"
        )
    else:
        how = f"the true task's {synthetic} summed over each segment, " + (
            "the larger preferred"
            if beta is None
            else f"Boltzmann-rational (P(a > b) = sigmoid({beta:g} (R(a) - R(b))))"
        )
    return f"{how}; labels flipped with probability {noise:g}"


def learn_from_preferences(
    env_id: str,
    out_dir: str | Path,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    preferences: str | Path | None = None,
    synthetic: str = "progress",
    beta: float | None = None,
    pairs: int = 300,
    segment_length: int = 5,
    noise: float = 0.0,
    heldout_fraction: float = 0.25,
    ensemble: int = 3,
    epochs: int = 40,
    episodes: int = 8,
    hidden: tuple[int, ...] = (64, 64),
    inputs: str = "state",
    encoder: str = "efficientnet_lite0",
    freeze_encoder: bool = True,
    query: str = "random",
    query_rounds: int = 4,
    seed: int = 0,
    judge: bool = True,
    log: Callable[[str], None] = lambda _msg: None,
) -> Path:
    """Fit a reward network to preferences on ``env_id``; return ``report.md``.

    Args:
        env_id: The env (rewardlab's, or one with a registered task providing state).
        out_dir: Output folder (must not hold a checkpoint, nor, for synthetic labels, a
            ``dataset`` folder already).
        env_kwargs: ``gym.make`` keywords. With ``preferences``: None takes the file's
            dataset's, and given ones (``{}`` included) must equal them.
        preferences: A label file (:func:`~rewardlab.learned.preferences.read_preferences`);
            None labels pairs synthetically. Identical pairs (either order) of a file go to
            the same side of the held-out split.
        synthetic: The synthetic labeller (:data:`SYNTHETIC`): ``"progress"`` or
            ``"success"`` summed over each segment, or ``"heron"`` (HERON's hierarchical
            comparison of success, then progress;
            :class:`~rewardlab.learned.preferences.HeronOracle`).
        beta: None: the labeller prefers the larger return; a number: Boltzmann-rational,
            preferring ``a`` with probability ``sigmoid(beta * (R(a) - R(b)))``.
        pairs: Synthetic pairs to label (training and held-out together), all distinct.
        segment_length: Transitions per synthetic segment.
        noise: The synthetic labeller's flip rate: each label is flipped with this
            probability (with a label file: the flip rate assumed of its labellers). The
            Bradley-Terry model's ``eps`` is ``2 * noise``
            (:func:`~rewardlab.learned.preferences.model_noise`): ``eps`` is the share of
            labels that are a fair coin, half of which come out flipped.
        heldout_fraction: Share of the pairs held out for accuracy.
        ensemble, epochs, hidden: The fit.
        episodes: Episodes per kind of the generated datasets.
        inputs: What the network reads: ``"state"``, ``"frames"`` or ``"both"`` (frame
            inputs generate datasets with frames; a label file's dataset must have them).
        encoder: The image encoder for frame inputs
            (:func:`~rewardlab.learned.encoders.load_encoder`).
        freeze_encoder: Keep the encoder's weights (features computed once) or fine-tune it.
        query: How synthetic pairs are chosen: ``"random"``, or ``"disagreement"``: label
            a random first share, fit, then in each of ``query_rounds - 1`` further rounds
            label the candidates (10 per query, drawn at random) the ensemble disagrees on
            most, and refit; the same ``pairs`` labels in all. Held-out pairs are random.
            No pair is labelled twice, nor both held out and a candidate.
        query_rounds: Rounds of disagreement-based selection, the random first one included.
        seed: Seed of everything (the judging dataset uses ``seed + 10000``).
        judge: Run ``eval-reward`` on the learned reward.

    Raises:
        ValueError: Bad input, said before anything is written; what only the generated
            dataset shows (too few distinct pairs, episodes shorter than a segment) is said
            after generating it, and what this call wrote is removed.
    """
    from rewardlab.envs import get_task, make
    from rewardlab.evaluation.datasets import EPISODE_KINDS, DatasetConfig, generate_dataset
    from rewardlab.learned.judging import dataset_env_kwargs
    from rewardlab.learned.preferences import (
        Segment,
        draw_pairs,
        ensemble_accuracy,
        fit_preferences,
        load_preferences,
        model_noise,
        pair_key,
        select_by_disagreement,
        state_rewards,
    )
    from rewardlab.learned.reward_net import (
        Normalization,
        RewardNetConfig,
        TrainedOn,
        build_reward_net,
        save_checkpoint,
    )

    out = Path(out_dir)
    if (out / "checkpoint.pt").exists():
        raise ValueError(f"{out} already holds a checkpoint; give another --out")
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    for name, value, low in (
        ("pairs", pairs, 2),
        ("segment_length", segment_length, 1),
        ("ensemble", ensemble, 1),
        ("epochs", epochs, 1),
        ("episodes", episodes, 1),
    ):
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    if not 0.0 <= noise < 0.5:
        raise ValueError(f"noise (the labeller's flip rate) must be in [0, 0.5), got {noise}")
    if query not in QUERIES:
        raise ValueError(f"unknown query selection {query!r}; one of {list(QUERIES)}")
    if query == "disagreement":
        if preferences is not None:
            raise ValueError(
                "query='disagreement' chooses which synthetic pairs to label; a label file's "
                "pairs are chosen already: drop --preferences or use query='random'"
            )
        if ensemble < 2:
            raise ValueError("query='disagreement' needs an ensemble of >= 2 members")
        if query_rounds < 2:
            raise ValueError(f"query='disagreement' needs query_rounds >= 2, got {query_rounds}")
    if inputs not in ("state", "frames", "both"):
        raise ValueError(f"inputs must be 'state', 'frames' or 'both', got {inputs!r}")
    label = synthetic_labeller(synthetic, noise, beta)  # checks synthetic and beta
    frames = inputs != "state"
    rng = np.random.default_rng(seed)
    if preferences is not None:
        ds, prefs = load_preferences(preferences, env_id)
        kwargs = dataset_env_kwargs(ds, env_kwargs, f"dataset (of {preferences})")
        if frames and not ds.has_frames:
            raise ValueError(
                f"inputs={inputs!r} reads frames, and the dataset {ds.path} of "
                f"{preferences} has none; label a dataset generated with frames"
            )
        train, heldout = _split_label_file(prefs, heldout_fraction, rng)
        if not train:
            raise ValueError(
                f"{len(prefs)} preference(s) of {preferences} leave none to train on "
                f"(identical pairs stay on one side of the held-out split)"
            )
    else:
        kwargs = dict(env_kwargs or {})
        if (out / "dataset").exists():
            raise ValueError(
                f"{out / 'dataset'} exists (an earlier run's?): label it into a preference "
                "file and pass that, or give another --out"
            )
        n_heldout = max(1, round(pairs * heldout_fraction))
        if pairs - n_heldout < 1:
            raise ValueError(
                f"{pairs} pairs with heldout_fraction {heldout_fraction} hold out {n_heldout} "
                "and leave none to train on; label more pairs or hold out fewer"
            )
    with make(env_id, **kwargs) as env:
        task = get_task(env)
        if inputs != "frames":
            task.require("state", "a reward network over state variables")
            layout = tuple((v.name, tuple(v.shape)) for v in task.state_variables)
        else:
            layout = ()
        space = repr(env.observation_space)
        max_steps = getattr(env.spec, "max_episode_steps", None)
    if preferences is None and max_steps is not None and segment_length > max_steps:
        raise ValueError(
            f"segment_length {segment_length} is longer than an episode of {env_id} "
            f"(at most {max_steps} steps); shorten it"
        )
    net_config = RewardNetConfig(
        inputs=inputs,
        state_layout=layout,
        encoder=encoder if frames else None,
        freeze_encoder=freeze_encoder,
        hidden=hidden,
    )
    if frames:
        build_reward_net(net_config)  # an unknown encoder or missing weights: said now
    created_out, generated = not out.exists(), False
    try:
        if preferences is None:
            seen: set[frozenset[Segment]] = set()

            def draw(n: int) -> list[tuple[Segment, Segment]]:
                got = draw_pairs(ds, n, segment_length, rng, seen)
                if len(got) < n:
                    raise ValueError(
                        f"the dataset {ds.path} has only {len(seen)} distinct pairs of "
                        f"{segment_length}-transition segments, fewer than the {pairs} asked "
                        "for; label fewer pairs, or raise episodes or segment_length"
                    )
                return got

            config = DatasetConfig(
                env_id, dict.fromkeys(EPISODE_KINDS, episodes), seed, kwargs, frames=frames
            )
            log(f"generating the training dataset ({episodes} episodes per kind) ...")
            generated = True  # from here on, a failure removes what this call wrote
            ds = generate_dataset(config, out / "dataset")
            heldout = label(ds, draw(n_heldout), rng)
            train, n_train = [], pairs - n_heldout
            source = f"SYNTHETIC labels: {describe_labeller(synthetic, noise, beta)}"
        else:
            n_train = len(train)
            source = f"labels from {preferences}"
        rounds = _round_sizes(n_train, query_rounds if query == "disagreement" else 1)
        progress = Progress(ensemble * len(rounds))
        fit = None
        for number, size in enumerate(rounds):
            if preferences is None and fit is None:  # the first round: random pairs
                train += label(ds, draw(size), rng)
            elif fit is not None:
                candidates = draw_pairs(
                    ds, CANDIDATES_PER_QUERY * size, segment_length, rng, set(seen)
                )
                if len(candidates) < size:
                    draw(size)  # raises: the dataset has no more distinct pairs
                chosen = select_by_disagreement(ds, fit.nets, net_config, candidates, size)
                picked = [candidates[i] for i in chosen]
                seen.update(pair_key(a, b) for a, b in picked)
                train += label(ds, picked, rng)
                log(
                    f"round {number + 1}/{len(rounds)}: {size} pairs the ensemble disagrees on most"
                )
            fit = fit_preferences(
                ds,
                train,
                net_config,
                ensemble=ensemble,
                epochs=epochs,
                noise=model_noise(noise),
                heldout=heldout,
                seed=seed + number,
                log=lambda msg: log(f"{progress.tick()} {msg}"),
            )
        assert fit is not None  # rounds is never empty
        member0 = fit.heldout_accuracy[0]
        together = ensemble_accuracy(ds, fit.nets, net_config, heldout)
        metrics = {
            key: value
            for key, value in (
                ("heldout_accuracy", member0),
                ("heldout_accuracy_ensemble", together),
            )
            if value is not None
        }
        trained = TrainedOn(env_id, kwargs, space, "bradley_terry", source, seed, metrics)
        normalization = Normalization.of(state_rewards(ds, fit.nets[0], net_config))
        checkpoint = save_checkpoint(out / "checkpoint.pt", fit.nets[0], trained, normalization)
    except BaseException:
        if generated:
            shutil.rmtree(out if created_out else out / "dataset", ignore_errors=True)
        raise
    _plot_losses(fit.history, out / "loss.png")
    labelled = [*train, *heldout]
    lengths = sorted({seg.length for p in labelled for seg in (p.a, p.b)})
    summary: dict[str, Any] = {
        "env_id": env_id,
        "env_kwargs": kwargs,
        "labels": source,
        "dataset": str(ds.path),
        "n_train_pairs": len(train),
        "n_heldout_pairs": len(heldout),
        "n_ties": sum(p.label == 0.5 for p in labelled),
        "segment_length": lengths[0] if len(lengths) == 1 else lengths,
        "noise": noise,
        "model_noise": model_noise(noise),
        "query": query,
        "query_rounds": len(rounds),
        "inputs": inputs,
        "encoder": net_config.encoder,
        "freeze_encoder": freeze_encoder if inputs != "state" else None,
        "ensemble": ensemble,
        "epochs": epochs,
        "final_loss": fit.train_loss,
        "heldout_accuracy": fit.heldout_accuracy,
        "heldout_accuracy_ensemble": together,
        "checkpoint": str(checkpoint),
    }
    if judge:
        judge_checkpoint(
            summary,
            env_id,
            checkpoint,
            out / "eval",
            env_kwargs=kwargs,
            episodes=episodes,
            frames=frames,
            seed=seed,
            train_seeds=(e.seed for e in ds.episodes),
            log=log,
        )
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "report.md").write_text(_report(summary))
    return out / "report.md"


def _split_label_file(
    prefs: Sequence[Any], heldout_fraction: float, rng: np.random.Generator
) -> tuple[list[Any], list[Any]]:
    """``(train, heldout)``: about ``heldout_fraction`` of a label file's preferences held
    out, identical pairs (either order) on one side."""
    from rewardlab.learned.preferences import pair_key

    groups: dict[frozenset[Any], list[Any]] = {}
    for p in prefs:
        groups.setdefault(pair_key(p.a, p.b), []).append(p)
    want = max(1, round(len(prefs) * heldout_fraction))
    train: list[Any] = []
    heldout: list[Any] = []
    shuffled = list(groups.values())
    for k in rng.permutation(len(shuffled)):
        (heldout if len(heldout) < want else train).extend(shuffled[k])
    return train, heldout


def _round_sizes(total: int, rounds: int) -> list[int]:
    """``total`` labels split into at most ``rounds`` rounds as evenly as possible (earlier
    rounds get the remainder); no empty round."""
    rounds = max(1, min(rounds, total))
    return [total // rounds + (i < total % rounds) for i in range(rounds)]


def _plot_losses(history: list[list[float]], path: Path) -> None:
    from rewardlab.experiments.figures import new_figure, save_png

    fig, axes = new_figure()
    ax = axes[0]
    for member, losses in enumerate(history):
        ax.plot(range(1, len(losses) + 1), losses, label=f"member {member}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("Bradley-Terry loss (training pairs)")
    ax.legend()
    save_png(fig, path)


def _report(s: Mapping[str, Any]) -> str:
    accuracy = ", ".join(cell(a) for a in s["heldout_accuracy"])
    lines = [
        f"# Reward learned from preferences: {s['env_id']}",
        "",
        f"- Labels: {s['labels']}.",
        f"- Pairs: {s['n_train_pairs']} to train, {s['n_heldout_pairs']} held out "
        f"({s['n_ties']} ties in all), segments of {s['segment_length']} transitions, "
        f"from the dataset `{s['dataset']}`.",
        f"- Query selection: {s['query']}"
        + (
            f" (a random first round, then the pairs of largest ensemble disagreement among "
            f"{CANDIDATES_PER_QUERY} random candidates per query; {s['query_rounds']} rounds)"
            if s["query"] == "disagreement"
            else ""
        )
        + ".",
        f"- Network inputs: {s['inputs']}"
        + (
            f" (encoder {s['encoder']}, {'frozen' if s['freeze_encoder'] else 'fine-tuned'})"
            if s["encoder"]
            else ""
        )
        + ".",
        f"- Ensemble of {s['ensemble']}, {s['epochs']} epochs; final training loss "
        + ", ".join(f"{x:.4f}" for x in s["final_loss"])
        + " (`loss.png`).",
        f"- Label noise: flip rate {s['noise']:g}, modelled by Bradley-Terry with eps "
        f"{s['model_noise']:g} (P(a > b) = eps/2 + (1 - eps) sigmoid(R(a) - R(b))).",
        f"- Held-out preference accuracy per member (non-tie pairs): {accuracy}; of the "
        "ensemble's mean reward: "
        + (
            "n/a"
            if s["heldout_accuracy_ensemble"] is None
            else f"{s['heldout_accuracy_ensemble']:.3f}"
        )
        + " (no held-out pair is trained on).",
        f"- Checkpoint (member 0; its metrics: member 0's held-out accuracy, and the "
        f"ensemble's as heldout_accuracy_ensemble): `{s['checkpoint']}`; use it as "
        "`{model: {kind: learned, path: ...}}`.",
    ]
    if "eval_reward" in s:
        lines += eval_reward_lines(s["eval_reward"])
    return "\n".join(lines) + "\n"
