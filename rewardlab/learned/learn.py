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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.learned.judging import judge as judge_reward
from rewardlab.learned.judging import learned_spec, verdicts
from rewardlab.progress import Progress

__all__ = ["learn_from_preferences"]

QUERIES = ("random", "disagreement")
"""How :func:`learn_from_preferences` chooses the synthetic pairs it labels."""

CANDIDATES_PER_QUERY = 10
"""Disagreement-based selection picks each query among this many random candidate pairs."""


def learn_from_preferences(
    env_id: str,
    out_dir: str | Path,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    preferences: str | Path | None = None,
    synthetic: str = "progress",
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
        out_dir: Output folder (must not hold a checkpoint already).
        env_kwargs: ``gym.make`` keywords.
        preferences: A label file (:func:`~rewardlab.learned.preferences.read_preferences`);
            None labels pairs synthetically.
        synthetic: The true-task signal synthetic labels compare: ``"progress"`` or
            ``"success"`` (summed over each segment).
        pairs: Synthetic pairs to label (training and held-out together).
        segment_length: Transitions per segment.
        noise: The synthetic labeller's error rate (labels flipped), also the model's.
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
        query_rounds: Rounds of disagreement-based selection, the random first one included.
        seed: Seed of everything (the judging dataset uses ``seed + 10000``).
        judge: Run ``eval-reward`` on the learned reward.

    Raises:
        ValueError: Bad input, said before anything is written.
    """
    from rewardlab.envs import get_task, make
    from rewardlab.evaluation.datasets import (
        EPISODE_KINDS,
        DatasetConfig,
        generate_dataset,
        load_dataset,
    )
    from rewardlab.learned.preferences import (
        Segment,
        SyntheticOracle,
        fit_preferences,
        label_pairs,
        read_preferences,
        sample_segments,
        select_by_disagreement,
        state_rewards,
        task_values,
    )
    from rewardlab.learned.reward_net import (
        Normalization,
        RewardNetConfig,
        TrainedOn,
        build_reward_net,
        save_checkpoint,
    )

    out = Path(out_dir)
    kwargs = dict(env_kwargs or {})
    if (out / "checkpoint.pt").exists():
        raise ValueError(f"{out} already holds a checkpoint; give another --out")
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    for name, value, low in (("pairs", pairs, 2), ("segment_length", segment_length, 1)):
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    if not 0.0 <= noise < 0.5:
        raise ValueError(f"noise (the labeller's error rate) must be in [0, 0.5), got {noise}")
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
    with make(env_id, **kwargs) as env:
        task = get_task(env)
        if inputs != "frames":
            task.require("state", "a reward network over state variables")
            layout = tuple((v.name, tuple(v.shape)) for v in task.state_variables)
        else:
            layout = ()
        space = repr(env.observation_space)
    net_config = RewardNetConfig(
        inputs=inputs,
        state_layout=layout,
        encoder=encoder if inputs != "state" else None,
        freeze_encoder=freeze_encoder,
        hidden=hidden,
    )
    frames = inputs != "state"
    if frames:
        build_reward_net(net_config)  # an unknown encoder or missing weights: said now
    rng = np.random.default_rng(seed)
    if preferences is not None:
        dataset_path, prefs = read_preferences(preferences)
        ds = load_dataset(dataset_path, env_id=env_id)
        if inputs != "state" and not ds.has_frames:
            raise ValueError(
                f"inputs={inputs!r} reads frames, and the dataset {dataset_path} of "
                f"{preferences} has none; label a dataset generated with frames"
            )
        source = f"labels from {preferences}"
        rng.shuffle(prefs)
    else:
        if synthetic not in ("progress", "success"):
            raise ValueError(f"unknown synthetic signal {synthetic!r}; 'progress' or 'success'")
        config = DatasetConfig(
            env_id, dict.fromkeys(EPISODE_KINDS, episodes), seed, kwargs, frames=frames
        )
        log(f"generating the training dataset ({episodes} episodes per kind) ...")
        ds = generate_dataset(config, out / "dataset")
        oracle = SyntheticOracle(error_rate=noise, tie_margin=1e-9)
        truth = task_values(ds, synthetic)

        def draw(n: int) -> list[tuple[Segment, Segment]]:
            segments = sample_segments(ds, 2 * n, segment_length, rng)
            return list(zip(segments[::2], segments[1::2], strict=True))

        n_random = pairs if query == "random" else max(1, round(pairs * heldout_fraction))
        prefs = label_pairs(ds, draw(n_random), truth, oracle, rng)
        source = (
            f"SYNTHETIC labels: the true task's {synthetic} summed over each segment, "
            f"error rate {noise:g}"
        )
    n_heldout = max(1, round((pairs if query != "random" else len(prefs)) * heldout_fraction))
    train, heldout = prefs[n_heldout:], prefs[:n_heldout]
    n_train = pairs - n_heldout if query != "random" else len(train)
    if n_train < 1:
        raise ValueError(f"{len(prefs)} preference(s) leave none to train on")
    rounds = _round_sizes(n_train, query_rounds if query == "disagreement" else 1)
    progress = Progress(ensemble * len(rounds))
    fit = None
    for number, size in enumerate(rounds):
        if fit is None and query == "disagreement":  # the first round: random pairs
            train += label_pairs(ds, draw(size), truth, oracle, rng)
        elif fit is not None:
            candidates = draw(CANDIDATES_PER_QUERY * size)
            chosen = select_by_disagreement(ds, fit.nets, net_config, candidates, size)
            train += label_pairs(ds, [candidates[i] for i in chosen], truth, oracle, rng)
            log(f"round {number + 1}/{len(rounds)}: {size} pairs the ensemble disagrees on most")
        fit = fit_preferences(
            ds,
            train,
            net_config,
            ensemble=ensemble,
            epochs=epochs,
            noise=noise,
            heldout=heldout,
            seed=seed + number,
            log=lambda msg: log(f"{progress.tick()} {msg}"),
        )
    assert fit is not None  # rounds is never empty
    metrics = {f"heldout_accuracy_{i}": a for i, a in enumerate(fit.heldout_accuracy) if a}
    trained = TrainedOn(env_id, kwargs, space, "bradley_terry", source, seed, metrics)
    normalization = Normalization.of(state_rewards(ds, fit.nets[0], net_config))
    checkpoint = save_checkpoint(out / "checkpoint.pt", fit.nets[0], trained, normalization)
    _plot_losses(fit.history, out / "loss.png")
    summary: dict[str, Any] = {
        "env_id": env_id,
        "env_kwargs": kwargs,
        "labels": source,
        "dataset": str(ds.path),
        "n_train_pairs": len(train),
        "n_heldout_pairs": len(heldout),
        "n_ties": sum(p.label == 0.5 for p in prefs),
        "segment_length": segment_length,
        "query": query,
        "query_rounds": len(rounds),
        "inputs": inputs,
        "encoder": net_config.encoder,
        "freeze_encoder": freeze_encoder if inputs != "state" else None,
        "ensemble": ensemble,
        "epochs": epochs,
        "final_loss": fit.train_loss,
        "heldout_accuracy": fit.heldout_accuracy,
        "checkpoint": str(checkpoint),
    }
    if judge:
        judged = judge_reward(
            env_id,
            [learned_spec("learned", checkpoint)],
            out / "eval",
            env_kwargs=kwargs,
            episodes=episodes,
            frames=frames,
            seed=seed,
            train_seeds=(e.seed for e in ds.episodes),
            log=log,
        )
        summary["judging_seed"] = judged["judging_seed"]
        summary["eval_reward"] = verdicts(judged, ("preference", "spearman_return"))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "report.md").write_text(_report(summary))
    return out / "report.md"


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
    accuracy = ", ".join("n/a" if a is None else f"{a:.3f}" for a in s["heldout_accuracy"])
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
        f"- Held-out preference accuracy per member (non-tie pairs): {accuracy}.",
        f"- Checkpoint (member 0): `{s['checkpoint']}`; use it as "
        "`{model: {kind: learned, path: ...}}`.",
    ]
    if "eval_reward" in s:
        lines += [
            "",
            "## eval-reward on other episodes (`eval/report.md`)",
            "",
            "| reward | verdict | pref. acc. | Spearman ret. |",
            "|---|---|---:|---:|",
        ]
        for name, row in s["eval_reward"].items():
            cells = [
                "n/a" if row[k] is None else f"{row[k]:.3f}"
                for k in ("preference", "spearman_return")
            ]
            lines.append(f"| {name} | {row['verdict']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"
