"""The online preference loop: it spends exactly its label budget in the rounds it plans, the
reward it pays changes with each refit, its labels and segments reload, its checkpoint pays
rewards; bad input is refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import rewardlab
from rewardlab.learned.online import EnsembleReward, learn_online, planned_rounds

GRID = "rewardlab/GridEmpty-v0"
KW = {"size": 5}
TINY = {"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 2}


def _layout() -> tuple[tuple[str, tuple[int, ...]], ...]:
    with rewardlab.make(GRID, size=5) as env:
        return tuple((v.name, tuple(v.shape)) for v in rewardlab.get_task(env).state_variables)


def test_planned_rounds_count_rollout_ends_reaching_a_new_multiple() -> None:
    assert planned_rounds(1024, 128, 256) == 4  # ends 128..1024: 256, 512, 768, 1024
    assert planned_rounds(1000, 128, 256) == 4  # the last rollout ends at 1024
    assert planned_rounds(1024, 384, 256) == 3  # ends 384, 768, 1152: each passes a multiple
    assert planned_rounds(100, 128, 100) == 1


@pytest.mark.parametrize("query", ["disagreement", "random"])
def test_the_loop_spends_exactly_its_budget_and_its_outputs_reload(
    query: str, tmp_path: Path
) -> None:
    from rewardlab.evaluation.datasets import load_dataset
    from rewardlab.learned.preferences import read_preferences, segment_returns

    out = tmp_path / "online"
    lines: list[str] = []
    report = learn_online(
        GRID,
        out,
        env_kwargs=KW,
        hyperparams=TINY,
        steps=1024,
        budget=10,
        refit_every=256,
        queries_per_round=3,
        query=query,
        segment_length=3,
        ensemble=2,
        epochs=5,
        eval_episodes=2,
        judge=False,
        log=lines.append,
    )
    summary = json.loads((out / "summary.json").read_text())
    # 4 rounds planned (rollouts of 128 steps, one round per 256); 3 + 3 + 3 + 1 labels.
    assert summary["labels_used"] == 10 and summary["refits"] == 4
    assert [r["labels"] for r in summary["rounds"]] == [3, 6, 9, 10]
    assert [r["step"] for r in summary["rounds"]] == [256, 512, 768, 1024]
    assert summary["rounds"][0]["accuracy_before"] is None
    assert all(r["accuracy_before"] is not None for r in summary["rounds"][1:])
    assert summary["query"] == query
    text = report.read_text()
    assert "SYNTHETIC" in text and "not human labels" in text
    assert (out / "refits.png").stat().st_size > 1000 and (out / "agent.zip").is_file()
    # The labels reload with their segments, and are the oracle's (noise 0) on them.
    dataset_path, prefs = read_preferences(out / "preferences.jsonl")
    assert len(prefs) == 10
    ds = load_dataset(dataset_path, env_id=GRID)
    ds.verify()
    progress = np.asarray(ds.progress, dtype=np.float64)
    ra = segment_returns(ds, [p.a for p in prefs], progress)
    rb = segment_returns(ds, [p.b for p in prefs], progress)
    want = np.where(np.abs(ra - rb) <= 1e-9, 0.5, (ra > rb).astype(float))
    np.testing.assert_array_equal([p.label for p in prefs], want)
    assert {e.kind for e in ds.episodes} == {"online"}
    assert all(p.a.length == 3 for p in prefs)
    keys = [frozenset((p.a, p.b)) for p in prefs]
    assert len(set(keys)) == len(keys), "a pair was queried twice"
    # The segments record their env kwargs, so an offline refit takes them.
    assert json.loads((out / "segments" / "metadata.json").read_text())["env_kwargs"] == KW
    if query == "random":
        from rewardlab.learned.learn import learn_from_preferences

        refit = out / "refit"
        learn_from_preferences(
            GRID, refit, preferences=out / "preferences.jsonl", ensemble=1, epochs=1, judge=False
        )
        assert json.loads((refit / "summary.json").read_text())["env_kwargs"] == KW
    # The report does not set training episodes' success against the final evaluation's.
    for line in text.splitlines():
        if "rose" in line or "did not rise" in line:
            assert "training episodes" in line and "evaluation" not in line, line
    assert "deterministic policy" in text and "stochastic policy" in text
    # The checkpoint pays rewards in a vector env.
    spec = {"model": {"kind": "learned", "path": str(out / "checkpoint.pt"), "device": "cpu"}}
    venv = rewardlab.make_vec_env(GRID, 2, spec, env_kwargs=KW)
    venv.reset()
    paid = [venv.step(np.array([2, 2]))[1] for _ in range(4)]
    venv.close()
    assert np.all(np.isfinite(paid)) and np.ptp(paid) > 0


def test_the_paid_reward_is_zero_until_a_fit_and_then_the_ensemble_mean(tmp_path: Path) -> None:
    from rewardlab.learned.reward_net import Normalization, RewardNetConfig, build_reward_net

    config = RewardNetConfig(inputs="state", state_layout=_layout(), hidden=(8,))
    reward = EnsembleReward(config, "progress")
    venv = rewardlab.make_vec_env(GRID, 2, reward, env_kwargs=KW)
    venv.reset()
    assert np.all(venv.step(np.array([2, 2]))[1] == 0.0)
    torch.manual_seed(0)
    nets = [build_reward_net(config) for _ in range(2)]
    reward.update(nets, Normalization(0.5, 2.0))
    _, paid, _, infos = venv.step(np.array([2, 2]))
    state = np.stack(
        [
            np.concatenate(
                [np.asarray(info[f"state/{n}"], np.float32).ravel() for n, _ in config.state_layout]
            )
            for info in infos
        ]
    )
    with torch.inference_mode():
        x = torch.from_numpy(state)
        want = (nets[0](x, None) + nets[1](x, None)).double().numpy() / 2
    np.testing.assert_allclose(paid, (want - 0.5) / 2.0, rtol=1e-5)
    assert np.all(paid != 0.0)
    reward.update(nets[:1], Normalization())  # a refit swaps the reward in place
    _, again, _, infos = venv.step(np.array([0, 0]))
    assert not np.allclose(again, paid)
    venv.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"budget": 0}, "budget must be an int >= 1, got 0"),
        ({"refit_every": 5000}, r"refit_every \(5000\) is more than steps \(1024\)"),
        ({"algo": "sac"}, "sac is off-policy"),
        ({"algo": "dqn"}, "dqn is off-policy"),
        ({"algo": "reinforce"}, "unknown algorithm 'reinforce'"),
        ({"query": "entropy"}, "unknown query selection 'entropy'"),
        ({"query": "disagreement", "ensemble": 1}, "needs an ensemble of >= 2"),
        ({"queries_per_round": 2}, "4 rounds of 2 queries cannot spend a budget of 10"),
        ({"segment_length": 65}, "segment_length 65 is longer than a rollout per env"),
        ({"synthetic": "reward"}, "unknown synthetic signal 'reward'"),
        ({"noise": 0.5}, r"must be in \[0, 0.5\)"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(
    kwargs: dict[str, object], message: str, tmp_path: Path
) -> None:
    out = tmp_path / "online"
    args: dict[str, object] = {
        "env_kwargs": KW,
        "hyperparams": TINY,
        "steps": 1024,
        "budget": 10,
        "refit_every": 256,
        "judge": False,
    }
    with pytest.raises(ValueError, match=message):
        learn_online(GRID, out, **{**args, **kwargs})  # type: ignore[arg-type]
    assert not out.exists()


def test_heron_labels_online_and_the_model_takes_twice_the_flip_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rewardlab.learned.online as online

    noises: list[float] = []
    original = online.fit_preferences

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        noises.append(kwargs["noise"])
        return original(*args, **kwargs)

    monkeypatch.setattr(online, "fit_preferences", spy)
    out = tmp_path / "online"
    report = learn_online(
        GRID,
        out,
        env_kwargs=KW,
        hyperparams=TINY,
        steps=512,
        budget=6,
        refit_every=256,
        query="random",
        synthetic="heron",
        noise=0.1,
        segment_length=3,
        ensemble=1,
        epochs=2,
        eval_episodes=0,
        judge=False,
    )
    assert noises == [pytest.approx(0.2)] * 2
    text = report.read_text()
    assert "HERON's hierarchical comparison" in text and "flipped with probability 0.1" in text
    with pytest.raises(ValueError, match="beta must be > 0"):
        learn_online(GRID, tmp_path / "no", env_kwargs=KW, beta=-1.0, judge=False)
    assert not (tmp_path / "no").exists()
