"""Composite reward models: exact formulas, component sums, overrides, running stats, errors."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from rewardlab.reward_models import (
    Affine,
    Clamp,
    FunctionReward,
    InfoReward,
    PenaltyFactors,
    Product,
    RewardBatch,
    RewardModel,
    RewardOutput,
    RunningNorm,
    WeightedSum,
)


class Feature(RewardModel):
    """Leaf: ``r = next_obs[:, i]`` with components ``{"x": r - 1, "one": 1}`` (they sum)."""

    def __init__(self, i: int, needs_frames: bool = False, needs_info: tuple[str, ...] = ()):
        self.i = i
        self.needs_frames = needs_frames
        self.needs_info = needs_info

    def __call__(self, batch: RewardBatch) -> RewardOutput:
        r = batch.next_obs[:, self.i].astype(np.float64)
        return RewardOutput(r, {"x": r - 1.0, "one": np.ones_like(r)})


class BadShape(RewardModel):
    def __call__(self, batch: RewardBatch) -> RewardOutput:
        return RewardOutput(np.zeros(len(batch) + 1))


def make_batch(rng: np.random.Generator, n: int = 7, **info: np.ndarray) -> RewardBatch:
    return RewardBatch(
        obs=rng.normal(size=(n, 4)),
        action=rng.normal(size=(n, 2)),
        next_obs=rng.normal(size=(n, 4)),
        terminated=rng.random(n) < 0.3,
        info=info,
    )


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_weighted_sum_formula_and_components_sum(rng: np.random.Generator) -> None:
    batch = make_batch(rng)
    model = WeightedSum(
        {"a": Feature(0), "b": Feature(1), "c": Feature(2)}, {"a": 2.0, "b": -0.5, "c": 0.0}
    )
    out = model(batch)
    expected = 2.0 * batch.next_obs[:, 0] - 0.5 * batch.next_obs[:, 1]
    np.testing.assert_allclose(out.reward, expected, rtol=0, atol=1e-12)
    assert set(out.components) == {"a", "b", "c"}
    np.testing.assert_allclose(out.components["b"], -0.5 * batch.next_obs[:, 1], rtol=0, atol=0)
    np.testing.assert_allclose(sum(out.components.values()), out.reward, rtol=0, atol=1e-12)
    default = WeightedSum({"a": Feature(0), "b": Feature(1)})(batch).reward
    np.testing.assert_allclose(default, batch.next_obs[:, 0] + batch.next_obs[:, 1], atol=1e-12)


def test_product_formula_and_factors(rng: np.random.Generator) -> None:
    batch = make_batch(rng)
    model = Product({"a": Feature(0), "b": Feature(1), "c": Feature(3)})
    expected = batch.next_obs[:, 0] * batch.next_obs[:, 1] * batch.next_obs[:, 3]
    out = model(batch)
    np.testing.assert_allclose(out.reward, expected, rtol=1e-12, atol=0)
    assert out.components == {}
    out2, factors = model.evaluate(batch)
    np.testing.assert_array_equal(out2.reward, out.reward)
    assert list(factors) == ["a", "b", "c"]
    np.testing.assert_array_equal(factors["b"], batch.next_obs[:, 1])


def test_penalty_factors_and_terminal_overrides(rng: np.random.Generator) -> None:
    n = 9
    collision = np.array([1, 0, 0, 1, 0, 0, 0, 0, 1], dtype=bool)
    off_road = np.array([0, 1, 0, 1, 0, 0, 1, 0, 0], dtype=bool)
    batch = make_batch(rng, n, collision=collision, off_road=off_road, progress=rng.random(n))
    model = PenaltyFactors(
        InfoReward("progress"),
        factors={"center": Feature(0), "speed": lambda b: np.abs(b.next_obs[:, 1])},
        terminal_overrides={"collision": -10.0, "off_road": -3.0},
    )
    assert model.needs_info == ("progress", "collision", "off_road")
    product = batch.info["progress"] * batch.next_obs[:, 0] * np.abs(batch.next_obs[:, 1])
    out, factors = model.evaluate(batch)
    # Row 3 has both flags: the first listed key (collision) wins.
    expected = np.where(collision, -10.0, np.where(off_road, -3.0, product))
    np.testing.assert_allclose(out.reward, expected, rtol=1e-12, atol=0)
    untouched = ~(collision | off_road)
    np.testing.assert_array_equal(out.reward[untouched], product[untouched])
    assert out.components == {}
    assert list(factors) == ["base", "center", "speed"]
    np.testing.assert_array_equal(factors["base"], batch.info["progress"])
    np.testing.assert_array_equal(model(batch).reward, out.reward)


def test_penalty_factors_without_factors_is_base(rng: np.random.Generator) -> None:
    batch = make_batch(rng)
    np.testing.assert_array_equal(PenaltyFactors(Feature(2))(batch).reward, batch.next_obs[:, 2])


def test_clamp_and_affine(rng: np.random.Generator) -> None:
    batch = make_batch(rng, 50)
    x = batch.next_obs[:, 0]
    np.testing.assert_array_equal(
        Clamp(Feature(0), -0.5, 0.25)(batch).reward, np.clip(x, -0.5, 0.25)
    )
    assert Clamp(Feature(0), -0.5, 0.25)(batch).components == {}
    out = Affine(Feature(0), scale=-3.0, shift=0.5)(batch)
    np.testing.assert_allclose(out.reward, -3.0 * x + 0.5, rtol=0, atol=1e-12)
    assert set(out.components) == {"x", "one", "shift"}
    np.testing.assert_allclose(sum(out.components.values()), out.reward, rtol=0, atol=1e-12)
    no_components = Affine(InfoReward("p"), 2.0, 1.0)(make_batch(rng, 3, p=np.arange(3.0)))
    np.testing.assert_array_equal(no_components.reward, [1.0, 3.0, 5.0])
    assert no_components.components == {}


def test_info_reward(rng: np.random.Generator) -> None:
    batch = make_batch(rng, 4, reward_reach=np.array([1, 2, 3, 4], dtype=np.float32))
    out = InfoReward("reward_reach")(batch)
    assert out.reward.dtype == np.float64
    np.testing.assert_array_equal(out.reward, [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(KeyError, match="progress"):
        InfoReward("progress")(batch)


def test_running_norm_matches_numpy_over_unequal_batches(rng: np.random.Generator) -> None:
    model = RunningNorm(Feature(0), epsilon=1e-8)
    seen: list[np.ndarray] = []
    for n in (1, 5, 2, 17, 3):
        batch = make_batch(rng, n)
        batch.next_obs[:, 0] = batch.next_obs[:, 0] * 3.0 + 7.0
        out = model(batch)
        seen.append(batch.next_obs[:, 0])
        all_r = np.concatenate(seen)
        assert model.count == all_r.size
        assert model.mean == pytest.approx(all_r.mean(), rel=1e-12)
        assert model.var == pytest.approx(all_r.var(), rel=1e-10, abs=1e-15)
        expected = (batch.next_obs[:, 0] - all_r.mean()) / np.sqrt(all_r.var() + 1e-8)
        np.testing.assert_allclose(out.reward, expected, rtol=1e-9, atol=1e-9)

    state = model.state_dict()
    model.update = False
    frozen = make_batch(rng, 11)
    out = model(frozen)
    assert model.state_dict() == state
    expected = (frozen.next_obs[:, 0] - state["mean"]) / math.sqrt(state["var"] + 1e-8)
    np.testing.assert_allclose(out.reward, expected, rtol=1e-12)

    restored = RunningNorm(Feature(0), update=False)
    restored.load_state_dict(state)
    np.testing.assert_array_equal(restored(frozen).reward, out.reward)


def test_running_norm_clip_and_initial_state(rng: np.random.Generator) -> None:
    batch = make_batch(rng, 6)
    fresh = RunningNorm(Feature(0), update=False)
    # Before any update: mean 0, var 1.
    np.testing.assert_allclose(fresh(batch).reward, batch.next_obs[:, 0] / math.sqrt(1 + 1e-8))
    clipped = RunningNorm(Feature(0), clip=0.5)(batch).reward
    assert np.all(np.abs(clipped) <= 0.5)
    assert np.any(np.abs(clipped) == 0.5)


def test_needs_propagate() -> None:
    a = Feature(0, needs_frames=True, needs_info=("x", "y"))
    b = Feature(1, needs_info=("y", "z"))
    c = InfoReward("w")
    for model in (WeightedSum({"a": a, "b": b, "c": c}), Product({"a": a, "b": b, "c": c})):
        assert model.needs_frames is True
        assert model.needs_info == ("x", "y", "z", "w")
    plain = WeightedSum({"b": b, "c": c})
    assert plain.needs_frames is False
    for wrapper in (Clamp(a, 0, 1), Affine(a, 2.0), RunningNorm(a)):
        assert wrapper.needs_frames is True
        assert wrapper.needs_info == ("x", "y")
    penalty = PenaltyFactors(b, {"a": a}, terminal_overrides={"collision": -1.0})
    assert penalty.needs_frames is True
    assert penalty.needs_info == ("y", "z", "x", "collision")
    nested = Affine(WeightedSum({"p": Product({"a": a}), "c": c}), 0.5)
    assert nested.needs_frames is True
    assert nested.needs_info == ("x", "y", "w")
    fn = FunctionReward(lambda batch: batch.info["k"], needs_frames=True, needs_info=["k"])
    assert fn.needs_frames is True
    assert fn.needs_info == ("k",)


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: WeightedSum({}), ValueError, "at least one child"),
        (lambda: Product({}), ValueError, "at least one child"),
        (lambda: WeightedSum({"a": Feature(0)}, {"b": 1.0}), ValueError, r"missing \['a'\]"),
        (lambda: WeightedSum({"a": Feature(0)}, {"a": math.nan}), ValueError, "nan"),
        (lambda: WeightedSum({"a": Feature(0)}, {"a": math.inf}), ValueError, "inf"),
        (lambda: WeightedSum({"a": object()}), TypeError, "RewardModel"),  # type: ignore[dict-item]
        (lambda: Clamp(Feature(0), 1.0, -1.0), ValueError, "low=1.0, high=-1.0"),
        (lambda: Clamp(Feature(0), math.nan, 1.0), ValueError, "low <= high"),
        (lambda: Affine(Feature(0), scale=0.0), ValueError, "got 0.0"),
        (lambda: Affine(Feature(0), scale=1.0, shift=math.inf), ValueError, "shift"),
        (lambda: RunningNorm(Feature(0), epsilon=0.0), ValueError, "epsilon"),
        (lambda: RunningNorm(Feature(0), clip=-1.0), ValueError, "clip"),
        (lambda: PenaltyFactors(Feature(0), {"base": Feature(1)}), ValueError, "reserved"),
        (lambda: PenaltyFactors(Feature(0), terminal_overrides={"c": math.nan}), ValueError, "'c'"),
        (lambda: PenaltyFactors(Feature(0), {"f": 3.0}), TypeError, "callable"),  # type: ignore[dict-item]
        (lambda: InfoReward(""), ValueError, "non-empty"),
    ],
)
def test_bad_construction_raises(build, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize(
    "make",
    [
        lambda: WeightedSum({"good": Feature(0), "bad": BadShape()}),
        lambda: Product({"good": Feature(0), "bad": BadShape()}),
        lambda: PenaltyFactors(Feature(0), {"bad": BadShape()}),
    ],
)
def test_child_shape_mismatch_names_the_child(make, rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="child 'bad' returned rewards of shape"):
        make()(make_batch(rng))


def test_shape_errors_in_wrappers_and_overrides(rng: np.random.Generator) -> None:
    batch = make_batch(rng, 5, flag=np.zeros((5, 2), dtype=bool))
    for wrapper in (Clamp(BadShape(), 0, 1), Affine(BadShape(), 2.0), RunningNorm(BadShape())):
        with pytest.raises(ValueError, match="shape"):
            wrapper(batch)
    with pytest.raises(ValueError, match=r"info\['flag'\] has shape"):
        PenaltyFactors(Feature(0), terminal_overrides={"flag": -1.0})(batch)
    with pytest.raises(KeyError, match="collision"):
        PenaltyFactors(Feature(0), terminal_overrides={"collision": -1.0})(batch)
    with pytest.raises(ValueError, match="fn returned rewards of shape"):
        FunctionReward(lambda b: np.zeros(2))(batch)


def test_running_norm_rejects_bad_rewards_and_states(rng: np.random.Generator) -> None:
    batch = make_batch(rng, 3, r=np.array([0.0, np.nan, 1.0]))
    model = RunningNorm(InfoReward("r"))
    with pytest.raises(ValueError, match="non-finite"):
        model(batch)
    assert model.state_dict() == {"count": 0, "mean": 0.0, "var": 1.0}
    with pytest.raises(ValueError, match="keys"):
        model.load_state_dict({"count": 1, "mean": 0.0})
    with pytest.raises(ValueError, match="var"):
        model.load_state_dict({"count": 1, "mean": 0.0, "var": -1.0})
    with pytest.raises(ValueError, match="count"):
        model.load_state_dict({"count": -2, "mean": 0.0, "var": 1.0})


def test_affine_rejects_child_shift_component(rng: np.random.Generator) -> None:
    inner = Affine(Feature(0), 2.0, 1.0)  # reports a "shift" component
    with pytest.raises(ValueError, match="'shift'"):
        Affine(inner, 2.0)(make_batch(rng))


def test_import_stays_cheap() -> None:
    # The composites are pure numpy: exporting them must not pull in torch or SB3.
    code = (
        "import sys, rewardlab.reward_models as m; m.WeightedSum; "
        "assert not {'torch', 'open_clip', 'stable_baselines3'} & set(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class Holding(Feature):
    """A leaf that holds a resource: counts how often it was closed."""

    closed = 0

    def close(self) -> None:
        self.closed += 1


def test_compositions_close_every_child_and_plain_models_close_as_a_no_op() -> None:
    held = [Holding(0), Holding(1)]
    model = Affine(WeightedSum({"a": held[0], "b": Clamp(held[1], -1.0, 1.0), "c": Feature(0)}))
    model.close()
    assert [leaf.closed for leaf in held] == [1, 1]
    assert Feature(0).close() is None  # RewardModel.close: nothing to release by default


def test_clip_is_a_deprecated_alias_of_clamp() -> None:
    from rewardlab import reward_models
    from rewardlab.reward_models import compose

    for module in (reward_models, compose):
        with pytest.warns(DeprecationWarning, match="Clip is renamed Clamp"):
            assert module.Clip is Clamp
    with pytest.raises(AttributeError, match="no attribute 'Clamps'"):
        _ = compose.Clamps
