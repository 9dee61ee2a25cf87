"""Rewards learned from preferences between trajectory segments (Christiano et al. 2017).

A segment is ``length`` consecutive transitions of one episode of a
:class:`~rewardlab.evaluation.datasets.TrajectoryDataset`; its return under a reward ``r(s')``
is the sum over the states it enters. Bradley-Terry models a preference as

    P(a > b) = eps / 2 + (1 - eps) * sigmoid(R(a) - R(b)),

(``eps``: imitation's ``PreferenceModel`` ``noise_prob``: with probability ``eps`` the label is
a fair coin, so a labeller who FLIPS labels with probability ``e`` is modelled by ``eps = 2 e``:
:func:`model_noise`) and a reward network is fit by cross-entropy on the labels (ties are
1/2). An ensemble of networks, each on its own bootstrap resample of the pairs, gives
disagreement for choosing queries.

Labels come from a file (:func:`read_preferences`: JSONL, one pair per line, so human labels
can be used) or from a synthetic oracle of the true task: :class:`SyntheticOracle` (a return,
optionally Boltzmann-rational and with a flip rate) or :class:`HeronOracle` (HERON's
hierarchical comparison over reward factors ranked by importance, :func:`heron_label`). Say so
wherever a result rests on synthetic labels.

Pairs are compared unordered: ``(a, b)`` and ``(b, a)`` are one pair (:func:`pair_key`).
:func:`draw_pairs` never repeats a pair it is told to exclude (the ones labelled or held out
already), so held-out accuracy is never measured on a pair that is also trained on.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rewardlab.learned.encoders import ENCODE_BATCH
from rewardlab.learned.reward_net import RewardNetConfig, build_reward_net

if TYPE_CHECKING:
    import torch

    from rewardlab.evaluation.datasets import TrajectoryDataset

__all__ = [
    "PREFERENCES_FORMAT",
    "Preference",
    "Segment",
    "SyntheticOracle",
    "bradley_terry_loss",
    "bradley_terry_probability",
    "disagreement",
    "FitResult",
    "HERON_FACTORS",
    "HERON_MARGINS",
    "HeronOracle",
    "draw_pairs",
    "ensemble_accuracy",
    "fit_preferences",
    "heron_label",
    "label_pairs",
    "load_preferences",
    "model_noise",
    "pair_key",
    "preference_accuracy",
    "read_preferences",
    "sample_segments",
    "select_by_disagreement",
    "segment_returns",
    "state_rewards",
    "task_values",
    "write_preferences",
]

PREFERENCES_FORMAT = "rewardlab.preferences/1"


@dataclass(frozen=True)
class Segment:
    """Transitions ``start .. start + length - 1`` of episode ``episode`` of a dataset."""

    episode: int
    start: int
    length: int


@dataclass(frozen=True)
class Preference:
    """A labelled pair: ``label`` is the probability that ``a`` is preferred (1, 0, or 1/2 for
    a tie; any value in ``[0, 1]``)."""

    a: Segment
    b: Segment
    label: float


def model_noise(flip_rate: float) -> float:
    """The Bradley-Terry ``eps`` (imitation's ``noise_prob``) of a labeller who flips labels
    with probability ``flip_rate``: ``eps`` replaces the label by a fair coin, which flips it
    half the time, so ``eps = 2 * flip_rate``; a decisive pair's probability then tops out at
    ``1 - flip_rate``, the share of such labels the labeller gets right."""
    return 2.0 * flip_rate


def bradley_terry_probability(
    return_a: np.ndarray, return_b: np.ndarray, noise: float = 0.0
) -> np.ndarray:
    """``P(a > b) = noise / 2 + (1 - noise) * sigmoid(R(a) - R(b))`` (numpy, elementwise)."""
    diff = np.asarray(return_a, dtype=np.float64) - np.asarray(return_b, dtype=np.float64)
    p = 0.5 * (1.0 + np.tanh(0.5 * diff))  # sigmoid, stable for large |diff|
    return noise / 2.0 + (1.0 - noise) * p


def bradley_terry_loss(
    return_a: torch.Tensor, return_b: torch.Tensor, label: torch.Tensor, noise: float = 0.0
) -> torch.Tensor:
    """Mean cross-entropy of the labels under :func:`bradley_terry_probability` (torch)."""
    import torch

    logits = return_a - return_b
    if noise == 0.0:
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, label)
    p = noise / 2.0 + (1.0 - noise) * torch.sigmoid(logits)
    return torch.nn.functional.binary_cross_entropy(p, label)


# --- segments --------------------------------------------------------------------------------


def _entered_states(ds: TrajectoryDataset, seg: Segment) -> np.ndarray:
    """State rows a segment's transitions enter (``s'``)."""
    if not 0 <= seg.episode < len(ds.episodes):
        raise ValueError(
            f"segment {seg}: {ds.path} has episodes 0..{len(ds.episodes) - 1}, not {seg.episode}"
        )
    ep = ds.episodes[seg.episode]
    if seg.length < 1 or seg.start < 0 or seg.start + seg.length > ep.n_steps:
        raise ValueError(
            f"segment {seg} does not fit episode {seg.episode}, which has {ep.n_steps} transitions"
        )
    first = ep.state_start + seg.start + 1
    return np.arange(first, first + seg.length)


def segment_returns(
    ds: TrajectoryDataset, segments: Sequence[Segment], state_reward: np.ndarray
) -> np.ndarray:
    """Each segment's return under a reward given per dataset state row (``r(s')``)."""
    values = np.asarray(state_reward, dtype=np.float64)
    return np.array([values[_entered_states(ds, s)].sum() for s in segments])


def sample_segments(
    ds: TrajectoryDataset, n: int, length: int, rng: np.random.Generator
) -> list[Segment]:
    """``n`` segments of ``length`` transitions, uniform over the episodes long enough."""
    steps = np.array([e.n_steps for e in ds.episodes])
    eligible = np.flatnonzero(steps >= length)
    if len(eligible) == 0:
        raise ValueError(
            f"no episode of {ds.path} has {length} transitions (the longest has "
            f"{int(steps.max())}); use a shorter segment length"
        )
    out = []
    for episode in rng.choice(eligible, size=n):
        start = int(rng.integers(0, steps[episode] - length + 1))
        out.append(Segment(int(episode), start, length))
    return out


def pair_key(a: Segment, b: Segment) -> frozenset[Segment]:
    """A pair's identity, whichever segment comes first."""
    return frozenset((a, b))


def _n_segments(ds: TrajectoryDataset, length: int) -> int:
    return sum(max(0, e.n_steps - length + 1) for e in ds.episodes)


def draw_pairs(
    ds: TrajectoryDataset,
    n: int,
    length: int,
    rng: np.random.Generator,
    exclude: set[frozenset[Segment]] | None = None,
) -> list[tuple[Segment, Segment]]:
    """Up to ``n`` pairs of distinct segments (:func:`sample_segments`), none repeating
    another or a pair in ``exclude`` (either order; :func:`pair_key`); the keys of the pairs
    drawn are added to ``exclude``. Fewer than ``n`` only when the dataset has no more
    distinct pairs of ``length``-transition segments.

    Raises:
        ValueError: No episode has ``length`` transitions.
    """
    seen = exclude if exclude is not None else set()
    total = _n_segments(ds, length)
    out: list[tuple[Segment, Segment]] = []

    def take(a: Segment, b: Segment) -> None:
        key = pair_key(a, b)
        if a != b and key not in seen:
            seen.add(key)
            out.append((a, b))

    for _ in range(20):  # rejection sampling while new pairs are common
        if len(out) >= n:
            break
        segments = sample_segments(ds, 2 * (n - len(out)), length, rng)
        for a, b in zip(segments[::2], segments[1::2], strict=True):
            if len(out) < n:
                take(a, b)
    if len(out) < n and total * (total - 1) // 2 <= 2_000_000:  # nearly exhausted: enumerate
        every = [
            Segment(i, start, length)
            for i, e in enumerate(ds.episodes)
            for start in range(e.n_steps - length + 1)
        ]
        first, second = np.triu_indices(len(every), k=1)
        for k in rng.permutation(len(first)):
            if len(out) >= n:
                break
            take(every[first[k]], every[second[k]])
    return out


# --- labels ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticOracle:
    """Labels pairs by the true return, as a (possibly noisy) labeller would.

    Attributes:
        beta: None: prefer the higher return (ties: 1/2). Else Boltzmann-rational: prefer
            ``a`` with probability ``sigmoid(beta * (R(a) - R(b)))``.
        error_rate: Probability that a label is flipped (a careless labeller); the
            Bradley-Terry model of such labels has ``eps = model_noise(error_rate)``.
        tie_margin: Returns closer than this are ties (rational labeller only).
    """

    beta: float | None = None
    error_rate: float = 0.0
    tie_margin: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate must be in [0, 1], got {self.error_rate}")
        if self.beta is not None and not self.beta > 0:
            raise ValueError(f"beta must be > 0 or None, got {self.beta}")

    def labels(
        self, return_a: np.ndarray, return_b: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        diff = np.asarray(return_a, dtype=np.float64) - np.asarray(return_b, dtype=np.float64)
        if self.beta is None:
            label = np.where(np.abs(diff) <= self.tie_margin, 0.5, (diff > 0).astype(float))
        else:
            p = bradley_terry_probability(self.beta * diff, np.zeros_like(diff))
            label = (rng.random(len(diff)) < p).astype(float)
        flip = rng.random(len(diff)) < self.error_rate
        return np.where(flip, 1.0 - label, label)


def heron_label(
    factors_a: Sequence[float], factors_b: Sequence[float], margins: Sequence[float]
) -> float:
    """HERON's hierarchical comparison (Bukharin et al. 2023): compare the most important
    factor first; fall to the next only when the two are within its margin; all within their
    margins is a tie (1/2). Factors are listed most important first, larger is better."""
    if not len(factors_a) == len(factors_b) == len(margins):
        raise ValueError("factors_a, factors_b and margins must have one entry per factor")
    for a, b, margin in zip(factors_a, factors_b, margins, strict=True):
        if abs(a - b) > margin:
            return 1.0 if a > b else 0.0
    return 0.5


HERON_FACTORS = ("success", "progress")
"""The factors :class:`HeronOracle` compares, most important first: each summed over the
states a segment enters (:func:`task_values`)."""

HERON_MARGINS = (0.5, 1e-9)
"""Their margins: success is counted in states, so a difference of one successful state
decides; progress decides whenever it differs beyond rounding. Within both: a tie."""


@dataclass(frozen=True)
class HeronOracle:
    """HERON's labeller (Bukharin et al. 2023) over the true task's factors: a pair is decided
    by its segments' success (:data:`HERON_FACTORS`), and by their progress only where the
    success is within its margin (:data:`HERON_MARGINS`); then flipped with probability
    ``error_rate``."""

    margins: tuple[float, float] = HERON_MARGINS
    error_rate: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate must be in [0, 1], got {self.error_rate}")
        if len(self.margins) != len(HERON_FACTORS) or min(self.margins) < 0:
            raise ValueError(f"margins must be {len(HERON_FACTORS)} values >= 0")

    def label_pairs(
        self,
        ds: TrajectoryDataset,
        pairs: Sequence[tuple[Segment, Segment]],
        rng: np.random.Generator,
    ) -> list[Preference]:
        sides = [
            [
                segment_returns(ds, [p[side] for p in pairs], task_values(ds, f))
                for f in HERON_FACTORS
            ]
            for side in (0, 1)
        ]
        labels = np.array(
            [
                heron_label([f[k] for f in sides[0]], [f[k] for f in sides[1]], self.margins)
                for k in range(len(pairs))
            ]
        )
        flip = rng.random(len(pairs)) < self.error_rate
        labels = np.where(flip, 1.0 - labels, labels)
        return [Preference(a, b, float(x)) for (a, b), x in zip(pairs, labels, strict=True)]


# --- files -----------------------------------------------------------------------------------


def write_preferences(
    path: str | os.PathLike[str], dataset: str | os.PathLike[str], prefs: Sequence[Preference]
) -> Path:
    """JSONL: a header naming the dataset (absolute), then ``{"a": [episode, start, length],
    "b": [...], "label": p}`` per pair."""
    path = Path(path)
    folder = Path(dataset) if Path(dataset).is_absolute() else Path(dataset).resolve()
    lines = [json.dumps({"format": PREFERENCES_FORMAT, "dataset": str(folder)})]
    for p in prefs:
        a, b = p.a, p.b
        row = {"a": [a.episode, a.start, a.length], "b": [b.episode, b.start, b.length]}
        lines.append(json.dumps({**row, "label": float(p.label)}))
    path.write_text("\n".join(lines) + "\n")
    return path


def read_preferences(path: str | os.PathLike[str]) -> tuple[str, list[Preference]]:
    """``(dataset path, preferences)`` of a file :func:`write_preferences` wrote (or a
    labeller: one JSON object per line). A relative dataset path is resolved against the
    file's folder. Segments are checked against their dataset by :func:`load_preferences`.

    Raises:
        ValueError: Naming ``file:line`` of the first malformed record, or the header's
            dataset folder when it does not exist.
    """
    dataset, prefs, _ = _read_preference_file(Path(path))
    return dataset, prefs


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _read_preference_file(path: Path) -> tuple[str, list[Preference], list[int]]:
    """:func:`read_preferences`, and each preference's line number."""
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read the preference file {path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"cannot read the preference file {path}: not UTF-8 ({exc})") from None
    try:
        header = json.loads(lines[0]) if lines else None
    except json.JSONDecodeError:
        header = None
    dataset = header.get("dataset") if isinstance(header, dict) else None
    if not isinstance(header, dict) or header.get("format") != PREFERENCES_FORMAT:
        raise ValueError(
            f"{path}:1: a preference file starts with "
            f'{{"format": "{PREFERENCES_FORMAT}", "dataset": "<dataset folder>"}}'
        )
    if not isinstance(dataset, str) or not dataset:
        raise ValueError(
            f'{path}:1: the header must name its dataset: "dataset": "<dataset folder>" '
            "(a relative path is read from the file's folder)"
        )
    folder = path.parent / dataset  # an absolute dataset path stays as it is
    if not folder.is_dir():
        raise ValueError(f"{path}:1: the dataset folder {folder} does not exist")
    usage = '{"a": [episode, start, length], "b": [...], "label": 0..1}'
    prefs, numbers = [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: expected {usage} (not JSON: {exc})") from None
        if not isinstance(row, dict) or not {"a", "b", "label"} <= row.keys():
            raise ValueError(f"{where}: expected {usage}")
        sides = []
        for side in ("a", "b"):
            value = row[side]
            if not (isinstance(value, list) and len(value) == 3 and all(map(_is_int, value))):
                raise ValueError(
                    f"{where}: {side!r} must be 3 integers [episode, start, length], got {value!r}"
                )
            episode, begin, length = value
            if episode < 0 or begin < 0 or length < 1:
                raise ValueError(
                    f"{where}: {side!r} {value}: episode and start must be >= 0, length >= 1"
                )
            sides.append(Segment(episode, begin, length))
        label = row["label"]
        if (
            isinstance(label, bool)
            or not isinstance(label, (int, float))
            or not 0.0 <= label <= 1.0
        ):
            raise ValueError(f"{where}: label must be a number in [0, 1], got {label!r}")
        prefs.append(Preference(sides[0], sides[1], float(label)))
        numbers.append(number)
    return str(folder), prefs, numbers


def load_preferences(
    path: str | os.PathLike[str], env_id: str | None = None
) -> tuple[TrajectoryDataset, list[Preference]]:
    """A preference file's dataset (loaded, checked to be ``env_id``'s) and preferences,
    every segment checked to lie inside its episode.

    Raises:
        ValueError: As :func:`read_preferences`; a dataset that does not load; a segment
            outside the dataset, naming ``file:line``.
    """
    from rewardlab.evaluation.datasets import load_dataset

    path = Path(path)
    dataset, prefs, numbers = _read_preference_file(path)
    try:
        ds = load_dataset(dataset, env_id=env_id)
    except FileNotFoundError as exc:
        raise ValueError(f"{path}:1: {exc}") from None
    for pref, number in zip(prefs, numbers, strict=True):
        for side, seg in (("a", pref.a), ("b", pref.b)):
            if seg.episode >= len(ds.episodes):
                raise ValueError(
                    f"{path}:{number}: {side!r} names episode {seg.episode}; the dataset "
                    f"{ds.path} has {len(ds.episodes)} (0..{len(ds.episodes) - 1})"
                )
            steps = ds.episodes[seg.episode].n_steps
            if seg.start + seg.length > steps:
                raise ValueError(
                    f"{path}:{number}: {side!r} [{seg.episode}, {seg.start}, {seg.length}] "
                    f"ends after episode {seg.episode}, which has {steps} transitions"
                )
    return ds, prefs


# --- fitting ---------------------------------------------------------------------------------


def _resolve_device(device: str) -> torch.device:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _state_inputs(
    ds: TrajectoryDataset, config: RewardNetConfig, rows: np.ndarray | None = None
) -> np.ndarray:
    """Dataset state rows (every row by default) as the network's flat state input (float32)."""
    if rows is None:
        return config.state_vector(ds.state, ds.n_states)
    return config.state_vector(lambda name: ds.state(name)[rows], len(rows))


def _check_inputs(ds: TrajectoryDataset, config: RewardNetConfig) -> None:
    if config.inputs != "state" and not ds.has_frames:
        raise ValueError(
            f"a network reading frames (inputs={config.inputs!r}) needs a dataset with frames; "
            f"{ds.path} has none (generate it with frames=True)"
        )


class _RowInputs:
    """The network inputs of a fixed set of dataset rows (sorted), on ``device``: the state
    vectors, and with a frozen encoder the frame features, computed once; a fine-tuned
    encoder's features are computed per call, with gradients."""

    def __init__(
        self,
        ds: TrajectoryDataset,
        config: RewardNetConfig,
        rows: np.ndarray,
        device: torch.device,
        encoder: Any = None,
    ) -> None:
        import torch

        self.ds, self.rows, self.device = ds, rows, device
        self.state = None
        if config.inputs != "frames":
            self.state = torch.from_numpy(_state_inputs(ds, config, rows)).to(device)
        self.features = None
        self.fine_tune = config.inputs != "state" and not config.freeze_encoder
        if config.inputs != "state" and not self.fine_tune:
            features = encoder.encode(ds.frames, device, rows=rows)
            self.features = torch.from_numpy(features).to(device)

    def rewards(self, net: Any, local: np.ndarray) -> torch.Tensor:
        """``net``'s reward of the rows at positions ``local`` of :attr:`rows`."""
        import torch

        pick = torch.from_numpy(local).to(self.device)
        state = None if self.state is None else self.state[pick]
        if self.fine_tune:
            frames = np.asarray(self.ds.frames[self.rows[local]])
            features = net.encoder.features(frames, self.device)
        else:
            features = None if self.features is None else self.features[pick]
        return net(state, features)


def _segment_sums(
    sides: Sequence[np.ndarray], reward_of: Callable[[np.ndarray], torch.Tensor]
) -> torch.Tensor:
    """The return of each segment (given as positions into a row set) under ``reward_of``
    (positions -> rewards), each row's reward computed once."""
    import torch

    flat = np.concatenate(sides)
    owner = torch.from_numpy(np.repeat(np.arange(len(sides)), [len(s) for s in sides]))
    unique, inverse = np.unique(flat, return_inverse=True)
    r = reward_of(unique)
    index = torch.from_numpy(inverse.reshape(-1)).to(r.device)
    out = torch.zeros(len(sides), dtype=r.dtype, device=r.device)
    return out.index_add(0, owner.to(r.device), r[index])


@dataclass
class FitResult:
    """The fitted ensemble and how it did.

    Attributes:
        nets: The networks (eval mode, CPU).
        train_loss: Final mean loss per member.
        heldout_accuracy: Share of held-out non-tie pairs each member orders as labelled
            (None without held-out pairs).
        history: Each member's mean training loss per epoch.
    """

    nets: list[Any]
    train_loss: list[float]
    heldout_accuracy: list[float | None]
    history: list[list[float]]


def fit_preferences(
    ds: TrajectoryDataset,
    prefs: Sequence[Preference],
    config: RewardNetConfig,
    *,
    ensemble: int = 3,
    epochs: int = 50,
    lr: float = 1e-3,
    batch_size: int = 64,
    noise: float = 0.0,
    heldout: Sequence[Preference] = (),
    seed: int = 0,
    warm_start: Sequence[Any] | None = None,
    device: str = "cpu",
    log: Callable[[str], None] = lambda _msg: None,
) -> FitResult:
    """Fit an ensemble of reward networks to preferences by Bradley-Terry.

    Each member trains on its own bootstrap resample of ``prefs`` (member 0 on ``prefs``
    itself when ``ensemble == 1``) from its own seed. Only the dataset rows the pairs' segments
    enter are read. Frame inputs (``inputs="frames"`` or ``"both"``): with a frozen encoder
    each row's features are computed once (batched, without gradients) and the head trains on
    them, every member sharing the first member's encoder; with ``freeze_encoder=False`` the
    encoder runs on each batch's frames with gradients (its batch-norm statistics stay fixed:
    batches of a few segments are too small to estimate them).

    Args:
        noise: The model's ``eps`` (:func:`bradley_terry_probability`): for labels flipped
            with probability ``e``, pass ``model_noise(e)`` (``2 e``).
        warm_start: Networks to continue training (one per member, copied: the originals
            are left as they are), e.g. the previous round's in an online loop; None builds
            fresh ones.
        device: Where to train (``"cpu"``, ``"cuda"``, ``"auto"``); the nets come back on
            the CPU.

    Raises:
        ValueError: No preferences, frame inputs on a dataset without frames, bad sizes.
    """
    import copy
    import functools

    import torch

    if not prefs:
        raise ValueError("no preferences to fit")
    if ensemble < 1 or epochs < 1 or batch_size < 1:
        raise ValueError("ensemble, epochs and batch_size must be >= 1")
    if warm_start is not None and len(warm_start) != ensemble:
        raise ValueError(f"warm_start has {len(warm_start)} nets for an ensemble of {ensemble}")
    _check_inputs(ds, config)
    dev = _resolve_device(device)
    sides = [(_entered_states(ds, p.a), _entered_states(ds, p.b)) for p in prefs]
    rows = np.unique(np.concatenate([np.concatenate(pair) for pair in sides]))
    local_a = [np.searchsorted(rows, a) for a, _ in sides]
    local_b = [np.searchsorted(rows, b) for _, b in sides]
    labels = torch.tensor([p.label for p in prefs], dtype=torch.float32, device=dev)
    rng = np.random.default_rng(seed)
    inputs: _RowInputs | None = None
    first: Any = None
    nets, losses, accuracy, history = [], [], [], []
    for member in range(ensemble):
        torch.manual_seed(seed * 1000 + member)
        if warm_start is not None:
            net = copy.deepcopy(warm_start[member])
        else:
            net = build_reward_net(config)
        net.to(dev)
        if first is None:
            first = net
        elif net.encoder is not None and config.freeze_encoder:
            net.tower.load_state_dict(first.tower.state_dict())
        inputs = inputs or _RowInputs(ds, config, rows, dev, first.encoder)
        opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr)
        net.train()
        if net.encoder is not None:
            net.tower.eval()
        sample = np.arange(len(prefs)) if ensemble == 1 else rng.integers(0, len(prefs), len(prefs))
        last = math.nan
        curve: list[float] = []
        for _ in range(epochs):
            order = rng.permutation(sample)
            total = 0.0
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                segs = [local_a[i] for i in idx] + [local_b[i] for i in idx]
                returns = _segment_sums(segs, functools.partial(inputs.rewards, net))
                ra, rb = returns[: len(idx)], returns[len(idx) :]
                loss = bradley_terry_loss(ra, rb, labels[torch.from_numpy(idx).to(dev)], noise)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            last = total / len(order)
            curve.append(last)
        net.eval()
        history.append(curve)
        nets.append(net)
        losses.append(last)
        accuracy.append(
            preference_accuracy(ds, net, config, heldout, device=device) if heldout else None
        )
        log(f"member {member + 1}/{ensemble}: loss {last:.4f}, held-out accuracy {accuracy[-1]}")
    return FitResult([net.cpu() for net in nets], losses, accuracy, history)


def state_rewards(
    ds: TrajectoryDataset,
    net: Any,
    config: RewardNetConfig,
    rows: np.ndarray | None = None,
    *,
    device: str = "cpu",
) -> np.ndarray:
    """A network's reward on dataset state rows (every row by default; frame features
    computed in chunks of :data:`~rewardlab.learned.encoders.ENCODE_BATCH`)."""
    import torch

    _check_inputs(ds, config)
    dev = _resolve_device(device)
    wanted = np.arange(ds.n_states) if rows is None else np.asarray(rows, dtype=np.int64)
    net.to(dev)
    out = []
    step = len(wanted) if config.inputs == "state" else ENCODE_BATCH
    with torch.inference_mode():
        for start in range(0, len(wanted), max(step, 1)):
            part = wanted[start : start + step]
            state = features = None
            if config.inputs != "frames":
                state = torch.from_numpy(_state_inputs(ds, config, part)).to(dev)
            if config.inputs != "state":
                features = net.encoder.features(np.asarray(ds.frames[part]), dev)
            out.append(net(state, features).double().cpu().numpy())
    net.cpu()
    return np.concatenate(out) if out else np.zeros(0)


def _pair_returns(
    ds: TrajectoryDataset,
    nets: Sequence[Any],
    config: RewardNetConfig,
    pairs: Sequence[tuple[Segment, Segment]],
    device: str = "cpu",
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per net, the returns ``(R(a), R(b))`` of every pair, each row's reward computed once."""
    entered_a = [_entered_states(ds, a) for a, _ in pairs]
    entered_b = [_entered_states(ds, b) for _, b in pairs]
    rows = np.unique(np.concatenate(entered_a + entered_b))
    out = []
    for net in nets:
        r = np.zeros(ds.n_states)
        r[rows] = state_rewards(ds, net, config, rows, device=device)
        out.append(
            (np.array([r[e].sum() for e in entered_a]), np.array([r[e].sum() for e in entered_b]))
        )
    return out


def preference_accuracy(
    ds: TrajectoryDataset,
    net: Any,
    config: RewardNetConfig,
    prefs: Sequence[Preference],
    *,
    device: str = "cpu",
) -> float | None:
    """Share of the non-tie pairs whose order the network's segment returns agree with (ties
    in the network's returns count 1/2); None when every pair is a tie."""
    decided = [p for p in prefs if p.label != 0.5]
    if not decided:
        return None
    [(ra, rb)] = _pair_returns(ds, [net], config, [(p.a, p.b) for p in decided], device)
    want = np.array([p.label > 0.5 for p in decided])
    agree = np.where(ra == rb, 0.5, (ra > rb) == want)
    return float(agree.mean())


def ensemble_accuracy(
    ds: TrajectoryDataset,
    nets: Sequence[Any],
    config: RewardNetConfig,
    prefs: Sequence[Preference],
    *,
    device: str = "cpu",
) -> float | None:
    """:func:`preference_accuracy` of the ensemble's mean reward (the mean of the members'
    segment returns)."""
    decided = [p for p in prefs if p.label != 0.5]
    if not decided or not nets:
        return None
    returns = _pair_returns(ds, nets, config, [(p.a, p.b) for p in decided], device)
    ra = np.mean([r[0] for r in returns], axis=0)
    rb = np.mean([r[1] for r in returns], axis=0)
    want = np.array([p.label > 0.5 for p in decided])
    return float(np.where(ra == rb, 0.5, (ra > rb) == want).mean())


def disagreement(
    ds: TrajectoryDataset,
    nets: Sequence[Any],
    config: RewardNetConfig,
    pairs: Sequence[tuple[Segment, Segment]],
    *,
    device: str = "cpu",
) -> np.ndarray:
    """Per pair, the standard deviation over the ensemble of ``P(a > b)``: query the pairs
    the members disagree on most (disagreement-based selection)."""
    if not pairs:
        return np.zeros(0)
    returns = _pair_returns(ds, nets, config, pairs, device)
    probs = [bradley_terry_probability(ra, rb) for ra, rb in returns]
    return np.std(np.stack(probs), axis=0)


def select_by_disagreement(
    ds: TrajectoryDataset,
    nets: Sequence[Any],
    config: RewardNetConfig,
    candidates: Sequence[tuple[Segment, Segment]],
    k: int,
    *,
    device: str = "cpu",
) -> list[int]:
    """Indices of the ``k`` candidate pairs of largest :func:`disagreement`, largest first
    (equal ones in candidate order).

    Raises:
        ValueError: Fewer than 2 nets (one member cannot disagree), or ``k`` outside
            ``[0, len(candidates)]``.
    """
    if len(nets) < 2:
        raise ValueError(
            f"disagreement-based selection needs an ensemble of >= 2 nets, got {len(nets)}"
        )
    if not 0 <= k <= len(candidates):
        raise ValueError(f"cannot select {k} of {len(candidates)} candidate pairs")
    spread = disagreement(ds, nets, config, candidates, device=device)
    return [int(i) for i in np.argsort(-spread, kind="stable")[:k]]


def label_pairs(
    ds: TrajectoryDataset,
    pairs: Sequence[tuple[Segment, Segment]],
    true_reward: np.ndarray,
    oracle: SyntheticOracle,
    rng: np.random.Generator,
) -> list[Preference]:
    """Synthetic preferences: ``oracle``'s labels of the pairs' true returns (``true_reward``
    per dataset state row, e.g. its success or progress)."""
    ra = segment_returns(ds, [a for a, _ in pairs], true_reward)
    rb = segment_returns(ds, [b for _, b in pairs], true_reward)
    labels = oracle.labels(ra, rb, rng)
    return [Preference(a, b, float(x)) for (a, b), x in zip(pairs, labels, strict=True)]


def task_values(ds: TrajectoryDataset, name: str) -> np.ndarray:
    """A per-state true-task signal of a dataset for synthetic labels: ``"success"`` or
    ``"progress"``."""
    if name == "success":
        return np.asarray(ds.success, dtype=np.float64)
    if name == "progress":
        return np.asarray(ds.progress, dtype=np.float64)
    raise ValueError(f"unknown task signal {name!r}; 'success' or 'progress'")
