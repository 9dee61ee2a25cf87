"""check_reward_model: every rule fails on a model built to break it, and the project's own
models pass."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import rewardlab
from rewardlab.experiments.llm_reward.checks import random_states
from rewardlab.reward_models import (
    Affine,
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
from rewardlab.reward_models.check import (
    RewardModelCheckError,
    check_reward_model,
    first_difference,
    take_rows,
)
from rewardlab.reward_models.program_reward import ProgramReward, reference_program

B = 6


def make_batch(n: int = B, frames: bool = False) -> RewardBatch:
    rng = np.random.default_rng(0)
    return RewardBatch(
        obs=rng.normal(size=(n, 3)),
        action=rng.normal(size=(n, 2)),
        # Sorted: a model that sorts its input returns it unchanged on the batch as given.
        next_obs=np.sort(rng.normal(size=(n, 3)), axis=0),
        terminated=np.arange(n) % 4 == 3,
        frames=rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8) if frames else None,
        info={"progress": np.linspace(0.0, 1.0, n), "crash": np.arange(n) % 3 == 2},
    )


def x(batch: RewardBatch) -> np.ndarray:
    return batch.next_obs[:, 0].copy()


class Model(RewardModel):
    """A model returning ``fn(batch)`` as its output (a RewardOutput or anything else)."""

    def __init__(self, fn: Callable[[RewardBatch], Any], diagnostics: Any = None) -> None:
        self.fn, self._diagnostics = fn, diagnostics

    def __call__(self, batch: RewardBatch) -> Any:
        out = self.fn(batch)
        return (
            out
            if isinstance(out, RewardOutput) or not isinstance(out, tuple)
            else RewardOutput(*out)
        )

    def diagnostics(self) -> Any:
        return {} if self._diagnostics is None else self._diagnostics


def fails(
    model: Any, reason: str, match: str, batch: RewardBatch | None = None, **kwargs: Any
) -> RewardModelCheckError:
    with pytest.raises(RewardModelCheckError, match=match) as caught:
        check_reward_model(model, make_batch() if batch is None else batch, **kwargs)
    assert caught.value.reason == reason
    return caught.value


# --- types ------------------------------------------------------------------------------------


def test_not_a_reward_model() -> None:
    fails(lambda batch: x(batch), "type", "expected a RewardModel, got function: subclass")


def test_flags_of_the_wrong_type() -> None:
    model = FunctionReward(x)
    model.needs_frames = 1  # type: ignore[assignment]
    fails(model, "type", "needs_frames must be a bool, got 1")
    model = FunctionReward(x)
    model.needs_info = ["progress"]  # type: ignore[assignment]
    fails(model, "type", r"needs_info must be a tuple of str .* got \['progress'\]")


def test_a_missing_info_key_lists_the_missing_and_the_available_keys() -> None:
    model = WeightedSum({"speed": InfoReward("speed"), "progress": InfoReward("progress")})
    fails(
        model,
        "type",
        r"lacks the keys \['speed'\] of needs_info \(it has \['crash', 'progress'\]\)",
    )


def test_missing_frames() -> None:
    model = FunctionReward(lambda b: b.frames.mean(axis=(1, 2, 3)), needs_frames=True)
    fails(model, "type", "needs frames .* batch.frames is None")
    check_reward_model(model, make_batch(frames=True))


def test_an_empty_batch_fails_and_a_single_row_warns() -> None:
    fails(FunctionReward(x), "type", "no rows", make_batch(0))
    with pytest.warns(UserWarning, match="cannot show batch dependence"):
        check_reward_model(FunctionReward(x), make_batch(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_reward_model(FunctionReward(x), make_batch(1), deterministic=False)


# --- output -----------------------------------------------------------------------------------


def test_an_exception_is_wrapped_with_the_call_that_raised_it() -> None:
    def reward(batch: RewardBatch) -> np.ndarray:
        if len(batch) == 1:
            raise IndexError("no second row")
        return x(batch)

    error = fails(
        Model(lambda b: (reward(b),)),
        "exception",
        r"raised IndexError: no second row \(called on row 0 alone\)",
    )
    assert isinstance(error.__cause__, IndexError) and error.batch_size == 1


@pytest.mark.parametrize(
    ("output", "match"),
    [
        (lambda b: x(b), "returned a ndarray on the batch as given"),
        (lambda b: (list(x(b)),), "the reward on the batch as given is a list, not a numpy array"),
        (lambda b: (x(b)[:, None],), r"has shape \(6, 1\), expected \(6,\)"),
        (
            lambda b: (np.where(np.arange(len(b)) == 2, np.nan, x(b)),),
            "is nan at row 2; rewards must be finite",
        ),
        (lambda b: (x(b).astype(object),), "has dtype object; a reward is a real number"),
        (lambda b: (x(b) > 0,), "has dtype bool"),
        (lambda b: (x(b) + 0j,), "has dtype complex128"),
        (
            lambda b: (x(b), {"a": np.full(len(b), np.inf)}),
            "component 'a' on the batch as given is inf at row 0",
        ),
        (
            lambda b: (x(b), {"a": x(b)[:2]}),
            r"component 'a' on the batch as given has shape \(2,\)",
        ),
    ],
    ids=[
        "not_output",
        "list",
        "shape",
        "nan",
        "object",
        "bool",
        "complex",
        "component_inf",
        "component_shape",
    ],
)
def test_bad_outputs(output: Callable[[RewardBatch], Any], match: str) -> None:
    fails(Model(output), "output", match)


def test_a_reward_squeezed_to_a_scalar_fails_on_a_row_alone() -> None:
    fails(
        Model(lambda b: (x(b)[:, None].squeeze(),)),
        "output",
        r"on row 0 alone has shape \(\), expected \(1,\)",
    )


def test_integer_rewards_are_real_numbers() -> None:
    check_reward_model(Model(lambda b: ((x(b) > 0).astype(np.int64),)), make_batch())


def test_components_must_sum_to_the_reward_unless_told_otherwise() -> None:
    model = Model(lambda b: (x(b) + 1.0, {"x": x(b)}))
    fails(
        model,
        "components",
        r"the components \['x'\] sum to .* at row 0 on the batch as given, the reward is",
    )
    check_reward_model(model, make_batch(), components_sum=False)
    # numpy's default tolerance: a float32 sum passes.
    check_reward_model(
        Model(lambda b: (x(b), {"x": (x(b) / 3).astype(np.float32), "y": 2 * x(b) / 3})),
        make_batch(),
    )


# --- the batch is not changed, diagnostics are JSON ----------------------------------------------


def test_changing_the_batch_in_place_fails() -> None:
    def doubles(batch: RewardBatch) -> tuple[np.ndarray]:
        batch.obs[:] *= 2
        return (batch.obs[:, 0].copy(),)

    fails(
        Model(doubles), "mutation", r"changed batch.obs in place \(called on the batch as given\)"
    )

    def zeroes(batch: RewardBatch) -> tuple[np.ndarray]:
        progress = batch.info["progress"]
        progress[0] = 0.5
        return (progress.copy(),)

    fails(Model(zeroes), "mutation", r"changed batch.info\['progress'\] in place")


@pytest.mark.parametrize(
    ("diagnostics", "match"),
    [
        ({"calls": np.int64(3)}, "not JSON serializable"),
        ({"mean": float("nan")}, "Out of range float values"),
        (["calls", 3], "it returned a list, not a dict"),
    ],
)
def test_diagnostics_must_be_plain_json(diagnostics: Any, match: str) -> None:
    fails(Model(lambda b: (x(b),), diagnostics), "diagnostics", match)


# --- determinism and batch independence ----------------------------------------------------------


def test_a_random_reward_is_nondeterministic() -> None:
    rng = np.random.default_rng(0)
    fails(
        Model(lambda b: (x(b) + rng.normal(size=len(b)),)),
        "nondeterministic",
        "on the same batch again and .* the first time: the model is not deterministic",
    )


def test_a_running_norm_is_checked_once_or_frozen() -> None:
    # The same batch twice leaves its statistics as they were; a row alone moves them.
    fails(
        RunningNorm(InfoReward("progress")),
        "batch_dependent",
        "the reward of row 0 is .* alone .* it depends on the other rows",
    )
    check_reward_model(RunningNorm(InfoReward("progress")), make_batch(), deterministic=False)
    check_reward_model(RunningNorm(InfoReward("progress"), update=False), make_batch())


def test_a_reward_relative_to_the_batch_mean_names_the_first_row() -> None:
    batch = make_batch()
    error = fails(
        Model(lambda b: (x(b) - x(b).mean(),)),
        "batch_dependent",
        "the reward of row 0 is 0 alone .* it depends on the other rows of the batch",
        batch,
    )
    assert f"and {x(batch)[0] - x(batch).mean():.6g} in the batch of 6 as given" in str(error)
    assert "no mean, max, sum or normalization over the batch axis 0" in str(error)


def test_a_component_that_depends_on_the_batch_is_named() -> None:
    fails(
        Model(lambda b: (x(b), {"x": x(b), "rank": np.argsort(np.argsort(x(b))) * 0.0 + len(b)})),
        "batch_dependent",
        "the component 'rank' of row 0",
        components_sum=False,
    )


def test_an_order_dependent_reward_fails_the_reversed_batch() -> None:
    # Sorting the batch: each row alone is itself, the batch as given is sorted already.
    model = Model(lambda b: (np.sort(x(b)),))
    fails(model, "batch_dependent", "in reverse order")


def test_component_names_must_not_depend_on_the_batch() -> None:
    model = Model(lambda b: (x(b), {"x": x(b)} if len(b) > 1 else {"y": x(b)}))
    fails(
        model,
        "components",
        r"the components \['y'\] alone \(a batch of 1\) and \['x'\] on the batch",
    )


def test_rounding_differences_pass_at_a_float32_tolerance() -> None:
    # As a float32 network may round differently at another batch size.
    model = Model(lambda b: (x(b) * (1 + 1e-7 * (len(b) > 1)),))
    fails(model, "batch_dependent", r"differ by rounding only: for a float32 model, pass rtol=1e-5")
    check_reward_model(model, make_batch(), rtol=1e-5)


def test_rows_alone_limits_the_rows_called_alone() -> None:
    calls: list[int] = []
    model = Model(lambda b: (calls.append(len(b)) or x(b),))
    check_reward_model(model, make_batch(), rows_alone=2)
    assert calls == [6, 6, 1, 1, 6]
    calls.clear()
    check_reward_model(model, make_batch())
    assert calls == [6, 6, 1, 1, 1, 1, 1, 1, 6]


def test_take_rows_and_first_difference() -> None:
    batch = make_batch(frames=True)
    part = take_rows(batch, [3, 1])
    assert np.array_equal(part.obs, batch.obs[[3, 1]]) and np.array_equal(
        part.frames, batch.frames[[3, 1]]
    )
    assert np.array_equal(part.info["crash"], batch.info["crash"][[3, 1]])
    full = RewardOutput(np.arange(4.0), {"a": np.ones(4)})
    assert (
        first_difference(RewardOutput(np.array([3.0, 1.0]), {"a": np.ones(2)}), full, [3, 1])
        is None
    )
    found = first_difference(
        RewardOutput(np.array([3.0, 1.0]), {"a": np.array([1.0, 2.0])}), full, [3, 1]
    )
    assert found == ("component 'a'", 1, 2.0, 1.0)


# --- the project's own models pass ---------------------------------------------------------------

PROJECT_MODELS: dict[str, Callable[[], RewardModel]] = {
    "InfoReward": lambda: InfoReward("progress"),
    "FunctionReward": lambda: FunctionReward(lambda b: -np.abs(b.next_obs[:, 0])),
    "WeightedSum": lambda: WeightedSum(
        {"progress": InfoReward("progress"), "x": FunctionReward(x)}, {"progress": 2.0, "x": -0.5}
    ),
    "Affine": lambda: Affine(
        WeightedSum({"progress": InfoReward("progress"), "x": FunctionReward(x)}), 3.0, -1.0
    ),
    "Product": lambda: Product({"progress": InfoReward("progress"), "x": FunctionReward(x)}),
    "PenaltyFactors": lambda: PenaltyFactors(
        InfoReward("progress"), {"x": lambda b: np.exp(-np.abs(x(b)))}, {"crash": -10.0}
    ),
}


@pytest.mark.parametrize("name", sorted(PROJECT_MODELS))
def test_the_projects_models_pass(name: str) -> None:
    model, batch = PROJECT_MODELS[name](), make_batch()
    output = check_reward_model(model, batch)
    np.testing.assert_array_equal(output.reward, model(batch).reward)


def test_a_reference_program_passes_on_real_states() -> None:
    env_id = "rewardlab/GridKeyDoor-v0"
    shapes = {v.name: v.shape for v in rewardlab.get_task(gym.make(env_id)).state_variables}
    states = random_states(env_id, episodes=1, max_steps=16, expert_episodes=1)
    n = len(states["agent_pos"])
    empty = np.zeros((n, 0))
    info = {f"state/{k}": v for k, v in states.items()}
    batch = RewardBatch(empty, empty, empty, np.zeros(n, dtype=bool), info=info)
    model = ProgramReward(reference_program("key_door"), shapes)
    try:
        output = check_reward_model(model, batch)
    finally:
        model.close()
    assert output.reward.shape == (n,) and set(output.components) == {
        "approach",
        "stages",
        "goal_bonus",
    }


def test_a_tiny_clip_model_passes() -> None:
    pytest.importorskip("torch")
    open_clip = pytest.importorskip("open_clip")
    from rewardlab.reward_models.clip import CLIPRewardModel

    open_clip.add_model_config(Path(__file__).with_name("rewardlab-tiny-clip.json"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # random weights
        model = CLIPRewardModel(
            "rewardlab-tiny-clip",
            None,
            goal="a red block on the target",
            baseline="a red block and a green target",
            device="cpu",
        )
    # float32 convolutions may round differently at another batch size.
    output = check_reward_model(model, make_batch(4, frames=True), rtol=1e-5)
    assert set(output.components) == {"clip"}
