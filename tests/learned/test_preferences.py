"""Rewards from preferences: Bradley-Terry as published, oracles, the label file, and a fit
that recovers the task's ordering of held-out segments."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import rewardlab
from rewardlab.evaluation.datasets import DatasetConfig, generate_dataset
from rewardlab.learned import RewardNetConfig, TrainedOn, save_checkpoint
from rewardlab.learned.preferences import (
    Preference,
    Segment,
    SyntheticOracle,
    bradley_terry_loss,
    bradley_terry_probability,
    disagreement,
    fit_preferences,
    heron_label,
    label_pairs,
    read_preferences,
    sample_segments,
    segment_returns,
    task_values,
    write_preferences,
)

GRID = "rewardlab/GridEmpty-v0"


def test_bradley_terry_is_imitations_closed_form() -> None:
    # imitation's PreferenceModel (discount 1): p = 1 / (1 + exp(R_b - R_a)), then
    # noise_prob * 0.5 + (1 - noise_prob) * p.
    ra, rb, noise = np.array([2.0, -1.0, 0.0]), np.array([0.5, 3.0, 0.0]), 0.1
    expected = noise * 0.5 + (1 - noise) / (1 + np.exp(rb - ra))
    np.testing.assert_allclose(bradley_terry_probability(ra, rb, noise), expected, rtol=1e-12)
    assert bradley_terry_probability(np.array([800.0]), np.array([0.0]))[0] == 1.0  # no overflow
    # The loss is the labels' cross-entropy under that probability, ties as 1/2.
    labels = np.array([1.0, 0.0, 0.5])
    p = expected
    want = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    got = bradley_terry_loss(torch.tensor(ra), torch.tensor(rb), torch.tensor(labels), noise=noise)
    assert math.isclose(float(got), want, rel_tol=1e-9)
    exact = bradley_terry_loss(torch.tensor(ra), torch.tensor(rb), torch.tensor(labels))
    p0 = 1 / (1 + np.exp(rb - ra))
    assert math.isclose(
        float(exact), -np.mean(labels * np.log(p0) + (1 - labels) * np.log(1 - p0)), rel_tol=1e-9
    )


def test_heron_compares_factors_in_order_of_importance() -> None:
    margins = [0.1, 0.1]
    assert heron_label([1.0, 0.0], [0.5, 9.0], margins) == 1.0  # the first factor decides
    assert heron_label([1.0, 0.0], [0.95, 9.0], margins) == 0.0  # within its margin: next
    assert heron_label([1.0, 5.0], [1.05, 5.05], margins) == 0.5  # all within: a tie
    with pytest.raises(ValueError, match="one entry per factor"):
        heron_label([1.0], [1.0, 2.0], margins)


def test_synthetic_oracle_rational_noisy_and_careless() -> None:
    rng = np.random.default_rng(0)
    ra, rb = np.array([1.0, 0.0, 0.5]), np.array([0.0, 1.0, 0.5 + 1e-3])
    np.testing.assert_array_equal(SyntheticOracle().labels(ra, rb, rng), [1.0, 0.0, 0.0])
    tied = SyntheticOracle(tie_margin=0.01).labels(ra, rb, rng)
    np.testing.assert_array_equal(tied, [1.0, 0.0, 0.5])
    np.testing.assert_array_equal(
        SyntheticOracle(error_rate=1.0).labels(ra, rb, rng), [0.0, 1.0, 1.0]
    )
    # Boltzmann-rational: the share preferring a matches sigmoid(beta * (R(a) - R(b))).
    many = SyntheticOracle(beta=2.0).labels(np.full(20000, 0.5), np.zeros(20000), rng)
    assert abs(many.mean() - 1 / (1 + math.exp(-1.0))) < 0.01
    with pytest.raises(ValueError, match="error_rate"):
        SyntheticOracle(error_rate=1.5)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    kinds = {"expert": 6, "random": 6, "partial": 6, "near_miss": 6, "counterfactual": 6}
    config = DatasetConfig(GRID, episodes=kinds, frames=False, env_kwargs={"size": 5})
    return generate_dataset(config, tmp_path_factory.mktemp("prefs") / "ds")


def test_the_label_file_round_trips_and_names_bad_lines(dataset, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prefs = [Preference(Segment(0, 0, 2), Segment(1, 1, 2), 1.0)]
    path = write_preferences(tmp_path / "p.jsonl", dataset.path, prefs)
    assert read_preferences(path) == (str(dataset.path), prefs)
    path.write_text(path.read_text() + '{"a": [0, 0], "b": [1, 1, 2], "label": 1}\n')
    with pytest.raises(ValueError, match=r"p.jsonl:3: 'a' must be 3 integers"):
        read_preferences(path)
    (tmp_path / "q.jsonl").write_text('{"a": [0, 0, 1]}\n')
    with pytest.raises(ValueError, match=r"q.jsonl:1: a preference file starts with"):
        read_preferences(tmp_path / "q.jsonl")
    with pytest.raises(ValueError, match="does not fit episode 0"):
        segment_returns(dataset, [Segment(0, 0, 10_000)], np.zeros(dataset.n_states))


def test_a_fit_on_synthetic_preferences_orders_held_out_segments(dataset, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    truth = task_values(dataset, "progress")
    segments = sample_segments(dataset, 480, 3, rng)
    pairs = list(zip(segments[::2], segments[1::2], strict=True))
    prefs = label_pairs(dataset, pairs, truth, SyntheticOracle(tie_margin=1e-9), rng)
    train, heldout = prefs[:180], prefs[180:]
    with rewardlab.make(GRID, size=5) as env:
        task = rewardlab.get_task(env)
        layout = tuple((v.name, tuple(v.shape)) for v in task.state_variables)
        space = repr(env.observation_space)
    config = RewardNetConfig(inputs="state", state_layout=layout, hidden=(32,))
    fit = fit_preferences(dataset, train, config, ensemble=2, epochs=40, heldout=heldout)
    assert all(a is not None and a >= 0.85 for a in fit.heldout_accuracy), fit.heldout_accuracy
    spread = disagreement(dataset, fit.nets, config, [(p.a, p.b) for p in heldout[:20]])
    assert spread.shape == (20,) and np.all(spread >= 0)
    # The fitted net is a reward model anywhere: as a checkpoint, in a vector env.
    trained = TrainedOn(GRID, {"size": 5}, space, "bradley_terry", "synthetic (progress)", 0)
    path = save_checkpoint(tmp_path / "bt.pt", fit.nets[0], trained)
    spec = {"model": {"kind": "learned", "path": str(path), "device": "cpu"}}
    venv = rewardlab.make_vec_env(GRID, 2, spec, env_kwargs={"size": 5})
    venv.reset()
    assert np.all(np.isfinite(venv.step(np.array([0, 1]))[1]))
    venv.close()


@pytest.fixture(scope="module")
def frames_dataset(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    kinds = {"expert": 5, "random": 3, "partial": 4}
    config = DatasetConfig(GRID, episodes=kinds, env_kwargs={"size": 5}, max_steps=12)
    return generate_dataset(config, tmp_path_factory.mktemp("frames") / "ds")


def _grid_layout() -> tuple[tuple[str, tuple[int, ...]], ...]:
    with rewardlab.make(GRID, size=5) as env:
        return tuple((v.name, tuple(v.shape)) for v in rewardlab.get_task(env).state_variables)


def _labelled(ds, n: int, seed: int = 0) -> list[Preference]:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    segments = sample_segments(ds, 2 * n, 3, rng)
    pairs = list(zip(segments[::2], segments[1::2], strict=True))
    oracle = SyntheticOracle(tie_margin=1e-9)
    return label_pairs(ds, pairs, task_values(ds, "progress"), oracle, rng)


@pytest.mark.parametrize(
    ("inputs", "freeze"), [("frames", True), ("frames", False), ("both", True)]
)
def test_frame_nets_fit_preferences(frames_dataset, inputs: str, freeze: bool) -> None:  # type: ignore[no-untyped-def]
    from rewardlab.learned.preferences import state_rewards
    from rewardlab.reward_models.base import RewardBatch

    ds = frames_dataset
    prefs = _labelled(ds, 160)
    layout = _grid_layout() if inputs == "both" else ()
    config = RewardNetConfig(
        inputs=inputs, state_layout=layout, encoder="cnn", freeze_encoder=freeze, hidden=(32,)
    )
    torch.manual_seed(0)
    before = [
        p.detach().clone() for p in rewardlab.learned.build_reward_net(config).tower.parameters()
    ]
    fit = fit_preferences(ds, prefs[:100], config, ensemble=2, epochs=15, heldout=prefs[100:])
    assert all(a is not None and a >= 0.8 for a in fit.heldout_accuracy), fit.heldout_accuracy
    towers = [list(net.tower.parameters()) for net in fit.nets]
    if freeze:  # untouched, and shared by the members (features computed once)
        for p, q, b in zip(towers[0], towers[1], before, strict=True):
            assert torch.equal(p, q) and torch.equal(p, b)
    else:
        assert any(not torch.equal(p, b) for p, b in zip(towers[0], before, strict=True))
    # Chunked rewards on dataset rows are the net's own forward on those frames, and what the
    # saved checkpoint pays in an env.
    rows = np.arange(0, ds.n_states, 7)
    got = state_rewards(ds, fit.nets[0], config, rows)
    frames = np.asarray(ds.frames[rows])
    with torch.inference_mode():
        features = fit.nets[0].encoder.features(frames, torch.device("cpu"))
        state = None
        if inputs == "both":
            cols = [
                np.asarray(ds.state(n)[rows], np.float32).reshape(len(rows), -1) for n, _ in layout
            ]
            state = torch.from_numpy(np.concatenate(cols, axis=1))
        want = fit.nets[0](state, features).double().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.all(state_rewards(ds, fit.nets[0], config)[rows] == got)
    from rewardlab.learned.reward_net import LearnedReward

    paid = LearnedReward(fit.nets[0], TrainedOn(GRID), device="cpu")
    info = {f"state/{n}": np.asarray(ds.state(n)[rows]) for n, _ in layout}
    obs = np.asarray(ds.obs[rows])
    batch = RewardBatch(obs, np.zeros(len(rows)), obs, np.zeros(len(rows), bool), frames, info)
    np.testing.assert_allclose(paid(batch).reward, got, rtol=1e-5, atol=1e-6)


def test_frame_nets_need_a_dataset_with_frames(dataset) -> None:  # type: ignore[no-untyped-def]
    config = RewardNetConfig(inputs="frames", encoder="cnn")
    with pytest.raises(ValueError, match="needs a dataset with frames"):
        fit_preferences(dataset, _labelled(dataset, 4), config, ensemble=1, epochs=1)


class _Linear(torch.nn.Module):
    """r(s') = w . state: a net whose segment returns are known in closed form."""

    def __init__(self, weights: np.ndarray) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(weights, dtype=torch.float32))
        self.encoder = None

    def forward(self, state: torch.Tensor, features: None) -> torch.Tensor:
        return state @ self.w


def test_disagreement_selection_picks_the_pairs_the_members_disagree_on(dataset) -> None:  # type: ignore[no-untyped-def]
    from rewardlab.learned.preferences import select_by_disagreement

    layout = (("agent_pos", (2,)),)
    config = RewardNetConfig(inputs="state", state_layout=layout)
    # Member 1 rewards the x coordinate, member 2 its negative: they agree (P = 1/2 both) on
    # pairs whose segments sum the same x, and disagree the more the sums differ.
    nets = [_Linear(np.array([1.0, 0.0])), _Linear(np.array([-1.0, 0.0]))]
    rng = np.random.default_rng(3)
    segments = sample_segments(dataset, 80, 3, rng)
    pairs = list(zip(segments[::2], segments[1::2], strict=True))
    pairs.append((segments[0], segments[0]))  # no disagreement at all
    x = np.asarray(dataset.state("agent_pos"), dtype=np.float64)[:, 0]
    gap = np.abs(
        segment_returns(dataset, [a for a, _ in pairs], x)
        - segment_returns(dataset, [b for _, b in pairs], x)
    )
    spread = disagreement(dataset, nets, config, pairs)
    # std of (sigmoid(g), sigmoid(-g)) = |sigmoid(g) - 1/2|
    np.testing.assert_allclose(spread, np.abs(1 / (1 + np.exp(-gap)) - 0.5), atol=1e-6)
    picked = select_by_disagreement(dataset, nets, config, pairs, 8)
    assert len(set(picked)) == 8 and len(pairs) - 1 not in picked
    assert sorted(gap[picked]) == sorted(np.sort(gap)[-8:])
    assert min(gap[picked]) > np.median(gap)
    with pytest.raises(ValueError, match=">= 2 nets"):
        select_by_disagreement(dataset, nets[:1], config, pairs, 2)
    with pytest.raises(ValueError, match="cannot select 99"):
        select_by_disagreement(dataset, nets, config, pairs[:5], 99)


def test_a_warm_start_continues_copies_of_the_given_nets(dataset) -> None:  # type: ignore[no-untyped-def]
    layout = _grid_layout()
    config = RewardNetConfig(inputs="state", state_layout=layout, hidden=(16,))
    prefs = _labelled(dataset, 60, seed=4)
    first = fit_preferences(dataset, prefs[:20], config, ensemble=2, epochs=2)
    kept = [{k: v.clone() for k, v in n.state_dict().items()} for n in first.nets]
    again = fit_preferences(dataset, prefs, config, ensemble=2, epochs=30, warm_start=first.nets)
    for net, state in zip(first.nets, kept, strict=True):  # the originals are untouched
        assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())
    assert again.train_loss[0] < first.train_loss[0]
    # With a zero learning rate the fit returns the given nets' weights, in new modules.
    still = fit_preferences(
        dataset, prefs, config, ensemble=2, epochs=1, lr=0.0, warm_start=first.nets
    )
    for net, start in zip(still.nets, first.nets, strict=True):
        assert net is not start
        assert all(torch.equal(v, start.state_dict()[k]) for k, v in net.state_dict().items())
    with pytest.raises(ValueError, match="warm_start has 2 nets for an ensemble of 3"):
        fit_preferences(dataset, prefs, config, ensemble=3, warm_start=first.nets)


def test_a_flip_rate_e_is_modelled_by_eps_2e_whose_ceiling_is_1_minus_e() -> None:
    from rewardlab.learned.preferences import model_noise

    e, n = 0.2, 200_000
    rng = np.random.default_rng(0)
    # An oracle of flip rate e labels a decisive pair (R(a) >> R(b)) "a" a share 1 - e.
    labels = SyntheticOracle(error_rate=e).labels(np.full(n, 10.0), np.zeros(n), rng)
    assert abs(labels.mean() - (1 - e)) < 0.005
    # The model's probability of that pair tops out at 1 - e with eps = model_noise(e) = 2e
    # (imitation's noise_prob), and not with eps = e (its ceiling 1 - e/2 overshoots).
    assert model_noise(e) == 2 * e
    assert math.isclose(bradley_terry_probability(1e3, 0.0, model_noise(e)), 1 - e)
    assert math.isclose(bradley_terry_probability(1e3, 0.0, e), 1 - e / 2)
    # So the loss of those labels falls all the way to an unbounded gap under eps = 2e, while
    # eps = e fits a finite gap (P(gap) = 1 - e) and is worse at large gaps.
    target = torch.tensor([1 - e], dtype=torch.float64)  # the labels' expected share
    gaps = torch.tensor([1.0, 3.0, 10.0, 40.0], dtype=torch.float64)

    def loss(gap: torch.Tensor, eps: float) -> float:
        return float(bradley_terry_loss(gap.view(1), torch.zeros(1, dtype=gap.dtype), target, eps))

    assert [loss(g, model_noise(e)) for g in gaps] == sorted(
        (loss(g, model_noise(e)) for g in gaps), reverse=True
    )
    assert loss(gaps[1], e) < loss(gaps[3], e)


def _prefs_file(tmp_path: Path, header: object, *rows: str) -> Path:
    import json

    path = tmp_path / "p.jsonl"
    first = header if isinstance(header, str) else json.dumps(header)
    path.write_text("\n".join([first, *rows]) + "\n")
    return path


GOOD = '{"a": [0, 0, 2], "b": [1, 0, 2], "label": 1}'


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('{"a": [true, 0, 2], "b": [1, 0, 2], "label": 1}', "'a' must be 3 integers"),
        ('{"a": [0.7, 0, 2], "b": [1, 0, 2], "label": 1}', "'a' must be 3 integers"),
        ('{"a": [0, 0, 2], "b": [1, 0, 2.0], "label": 1}', "'b' must be 3 integers"),
        ('{"a": [-1, 0, 2], "b": [1, 0, 2], "label": 1}', "episode and start must be >= 0"),
        ('{"a": [0, -1, 2], "b": [1, 0, 2], "label": 1}', "episode and start must be >= 0"),
        ('{"a": [0, 0, 0], "b": [1, 0, 2], "label": 1}', "length >= 1"),
        ('{"a": [0, 0, 2], "b": [1, 0, 2], "label": true}', "label must be a number in"),
        ('{"a": [0, 0, 2], "b": [1, 0, 2], "label": "1"}', "label must be a number in"),
        ('{"a": [0, 0, 2], "b": [1, 0, 2], "label": 1.5}', "label must be a number in"),
        ('{"a": [0, 0, 2], "b": [1, 0, 2], "label": NaN}', "label must be a number in"),
        ("[1, 2, 3]", "expected"),
        ('{"a": [0, 0, 2], "b": [1, 0, 2]}', "expected"),
    ],
)
def test_malformed_records_name_their_line(dataset, tmp_path: Path, row: str, message: str) -> None:  # type: ignore[no-untyped-def]
    header = {"format": "rewardlab.preferences/1", "dataset": str(dataset.path)}
    path = _prefs_file(tmp_path, header, GOOD, "", row)
    with pytest.raises(ValueError, match=rf"p.jsonl:4: .*{message}"):
        read_preferences(path)


def test_the_header_and_the_segments_are_checked_against_the_dataset(
    dataset, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from rewardlab.learned.preferences import load_preferences

    fmt = {"format": "rewardlab.preferences/1"}
    with pytest.raises(ValueError, match=r"p.jsonl:1: the header must name its dataset"):
        read_preferences(_prefs_file(tmp_path, fmt, GOOD))
    with pytest.raises(ValueError, match=r"p.jsonl:1: the dataset folder .*nope does not exist"):
        read_preferences(_prefs_file(tmp_path, {**fmt, "dataset": "nope"}, GOOD))
    # A relative dataset is read from the file's folder, wherever the caller runs.
    import os

    folder = tmp_path / "labels"
    folder.mkdir()
    relative = os.path.relpath(dataset.path, folder)
    path = _prefs_file(folder, {**fmt, "dataset": str(relative)}, GOOD)
    ds, prefs = load_preferences(path, GRID)
    assert ds.path.resolve() == dataset.path.resolve() and len(prefs) == 1
    n = len(dataset.episodes)
    steps = dataset.episodes[1].n_steps
    header = {**fmt, "dataset": str(dataset.path)}
    for row, message in (
        (f'{{"a": [{n}, 0, 2], "b": [1, 0, 2], "label": 1}}', f"names episode {n}"),
        (f'{{"a": [0, 0, 2], "b": [1, {steps - 1}, 2], "label": 0}}', "ends after episode 1"),
    ):
        with pytest.raises(ValueError, match=rf"p.jsonl:3: .*{message}"):
            load_preferences(_prefs_file(tmp_path, header, GOOD, row), GRID)
    (tmp_path / "latin1.jsonl").write_bytes(
        b'{"format": "rewardlab.preferences/1", "dataset": "\xe9"}\n'
    )
    with pytest.raises(ValueError, match="latin1.jsonl: not UTF-8"):
        read_preferences(tmp_path / "latin1.jsonl")
    # A negative episode does not index from the end.
    with pytest.raises(ValueError, match="has episodes 0"):
        segment_returns(dataset, [Segment(-1, 0, 1)], np.zeros(dataset.n_states))


def test_drawn_pairs_never_repeat_in_either_order(dataset) -> None:  # type: ignore[no-untyped-def]
    from rewardlab.learned.preferences import draw_pairs, pair_key

    rng = np.random.default_rng(0)
    seen: set[frozenset[Segment]] = set()
    first = draw_pairs(dataset, 300, 3, rng, seen)
    keys = [pair_key(a, b) for a, b in first]
    assert len(first) == 300 and len(set(keys)) == 300 and set(keys) == seen
    assert all(a != b for a, b in first)
    again = draw_pairs(dataset, 300, 3, rng, seen)
    assert not {pair_key(a, b) for a, b in again} & set(keys)
    # Near exhaustion: every distinct pair of a small space of segments, then no more.
    length = max(e.n_steps for e in dataset.episodes) - 1
    n = sum(max(0, e.n_steps - length + 1) for e in dataset.episodes)
    pool: set[frozenset[Segment]] = set()
    everything = draw_pairs(dataset, 10_000, length, rng, pool)
    assert len(everything) == n * (n - 1) // 2 == len(pool)
    assert draw_pairs(dataset, 5, length, rng, pool) == []


def test_heron_labels_by_success_then_progress(dataset) -> None:  # type: ignore[no-untyped-def]
    from rewardlab.learned.preferences import HERON_MARGINS, HeronOracle, draw_pairs

    rng = np.random.default_rng(2)
    pairs = draw_pairs(dataset, 200, 3, rng)
    prefs = HeronOracle().label_pairs(dataset, pairs, rng)
    success = [
        segment_returns(dataset, [p[k] for p in pairs], task_values(dataset, "success"))
        for k in (0, 1)
    ]
    progress = [
        segment_returns(dataset, [p[k] for p in pairs], task_values(dataset, "progress"))
        for k in (0, 1)
    ]
    want = [
        heron_label([success[0][k], progress[0][k]], [success[1][k], progress[1][k]], HERON_MARGINS)
        for k in range(len(pairs))
    ]
    assert [p.label for p in prefs] == want
    decided_by_success = success[0] != success[1]
    assert decided_by_success.any() and (~decided_by_success).any()  # both tiers are used
    # Success outranks progress: where they disagree, success wins.
    against = decided_by_success & (
        np.sign(success[0] - success[1]) != np.sign(progress[0] - progress[1])
    )
    for k in np.flatnonzero(against):
        assert prefs[k].label == float(success[0][k] > success[1][k])
    flipped = HeronOracle(error_rate=1.0).label_pairs(dataset, pairs, rng)
    assert [p.label for p in flipped] == [1.0 - x for x in want]
