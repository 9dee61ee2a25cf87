"""The task registry: any Gymnasium env gets what rewardlab's own envs provide, and whatever
its task lacks fails before any work, saying what to register."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import RecordEpisodeStatistics
from stable_baselines3.common.monitor import Monitor

import rewardlab
from rewardlab.cli import main
from rewardlab.envs import tasks
from rewardlab.envs.core import StateVariable, expert_policy, get_task
from rewardlab.envs.tasks import MissingTaskFeature, TaskAdapter, TaskNotFound, make
from tests.envs.line_walk import LineWalkEnv

ROOT = Path(__file__).resolve().parents[2]
PLAIN = "rewardlab_tests/LineWalk-v0"  # never registered with a task
TASK_MODULE = "tests.envs.line_walk_task"


@pytest.fixture
def registered() -> Any:
    """Register LineWalk-v0's task for one test (the registry is process-wide)."""
    added: list[Any] = []

    def register(env_id: Any = PLAIN, **fields: Any) -> type[TaskAdapter]:
        fields.setdefault("goal", "a white square at the right end")
        fields.setdefault("success", "at_goal")
        cls = rewardlab.register_task(env_id, replace=True, **fields)
        added.append(env_id)
        return cls

    yield register
    tasks._registered[:] = [e for e in tasks._registered if e.key not in added]


FULL: dict[str, Any] = dict(
    name="walk",
    baseline="a white square on a line",
    negatives=["a white square at the left end"],
    progress=lambda env: env.pos / (env.length - 1),
    state_variables=[StateVariable("pos", (), "cell", "the agent's cell")],
    state=lambda env: {"pos": env.pos},
    expert=lambda env, obs: 2,
    idle_action=lambda env: 1,
)


def _rollout(env: gym.Env, act: Any, seed: int = 0) -> list[tuple[float, dict[str, Any]]]:
    obs, info = env.reset(seed=seed)
    out = [(0.0, dict(info))]
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(act(obs))
        out.append((float(reward), dict(info)))
        done = terminated or truncated
    return out


def test_an_env_without_a_task_says_how_to_register_one() -> None:
    env = gym.make(PLAIN)
    with pytest.raises(TypeError, match=r"no registered task; register one with "
                       r"rewardlab.register_task\('rewardlab_tests/LineWalk-v0'"):  # fmt: skip
        get_task(env)
    with pytest.raises(TaskNotFound):
        expert_policy(env)
    # make() of such an env is gym.make: nothing added, nothing claimed.
    plain = make(PLAIN)
    assert "is_success" not in plain.reset(seed=0)[1]


def test_a_registered_task_reports_success_and_progress_like_rewardlab_envs(
    registered: Any,
) -> None:
    registered(**FULL)
    env = make(PLAIN)
    steps = _rollout(env, expert_policy(env))
    infos = [info for _, info in steps]
    assert all(isinstance(i["is_success"], bool) for i in infos)
    assert [i["is_success"] for i in infos[:-1]] == [False] * (len(infos) - 1)
    assert infos[-1]["is_success"] and infos[-1]["progress"] == 1.0
    progress = [i["progress"] for i in infos]
    assert progress == sorted(progress) and progress[0] < 0.5
    task = get_task(env)
    assert task.features() == frozenset(tasks.FEATURES)
    assert task.state() == {"pos": np.array(env.unwrapped.pos)}
    assert task.state()["pos"].shape == ()
    # Through any wrappers, the same task (one adapter per env instance).
    wrapped = RecordEpisodeStatistics(Monitor(env))
    assert get_task(wrapped) is task
    # An env made by plain gym.make finds the task too (by its spec id).
    assert get_task(gym.make(PLAIN)).goal == task.goal


def test_sparse_is_success_of_the_new_state_and_unknown_reward_types_are_refused(
    registered: Any,
) -> None:
    registered(**FULL)
    steps = _rollout(make(PLAIN, reward_type="sparse"), lambda obs: 2)
    rewards = [r for r, _ in steps[1:]]
    assert rewards == [0.0] * (len(rewards) - 1) + [1.0]
    own = _rollout(make(PLAIN, reward_type="env"), lambda obs: 2)
    assert {r for r, _ in own[1:]} == {-0.01}
    with pytest.raises(ValueError, match=r"no reward_type 'dense'; its reward types: "
                       r"\['env', 'sparse'\]"):  # fmt: skip
        make(PLAIN, reward_type="dense")


def test_a_failure_terminal_is_not_success(registered: Any) -> None:
    # The success callable sees the new state: leaving the line's end again is not success.
    registered(success=lambda env, obs, info: env.pos == env.length - 1)
    env = make(PLAIN)
    env.reset(seed=0)
    for _ in range(10):
        info = env.step(0)[4]  # walk left into the wall: never at the goal
        assert info["is_success"] is False
    assert "progress" not in info  # not registered, so not claimed


def test_registry_rules(registered: Any) -> None:
    with pytest.raises(ValueError, match="rewardlab env: it describes its own task"):
        rewardlab.register_task("rewardlab/GridEmpty-v0", goal="g", success="s")
    registered()
    with pytest.raises(ValueError, match="already registered.*replace=True"):
        rewardlab.register_task(PLAIN, goal="again", success="at_goal")
    with pytest.raises(ValueError, match="needs success="):
        rewardlab.register_task("Other-v0", goal="g")
    with pytest.raises(ValueError, match="state= needs state_variables="):
        rewardlab.register_task("Other-v0", goal="g", success="s", state=lambda env: {})
    with pytest.raises(ValueError, match="name must be an identifier"):
        rewardlab.register_task("Other-v0", goal="g", success="s", name="two words")
    # Exact ids beat patterns; among patterns the latest wins; user tasks beat shipped ones.
    registered("rewardlab_tests/LineWalk-*", goal="pattern one")
    registered("rewardlab_tests/Line*", goal="pattern two")
    assert get_task(gym.make(PLAIN)).goal == "a white square at the right end"
    assert get_task(gym.make("rewardlab_tests/LineWalkPattern-v0")).goal == "pattern two"
    # An env class matches an instance made without any id.
    registered(LineWalkEnv, goal="by class")
    assert get_task(LineWalkEnv()).goal == "by class"


def test_missing_features_name_what_to_register(registered: Any) -> None:
    registered()  # success only
    env = make(PLAIN)
    expected = "has no expert, which an expert policy needs; register one: add expert=... to "
    with pytest.raises(MissingTaskFeature, match=re.escape(expected)):
        expert_policy(env)
    with pytest.raises(ValueError, match="has no progress, which progress shaping needs"):
        rewardlab.make_vec_env(PLAIN, reward="pbrs")
    with pytest.raises(ValueError, match="has no progress, which a progress bonus needs"):
        rewardlab.make_vec_env(PLAIN, reward="progress_bonus")


def test_a_missing_package_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = tasks._Entry("Nope-*", "x:Y", "rewardlab_no_such_package", "minigrid")
    monkeypatch.setattr(tasks, "SHIPPED", (entry,))
    with pytest.raises(ValueError, match=r"needs the package 'rewardlab_no_such_package'.*"
                       r"pip install 'rewardlab\[minigrid\]'"):  # fmt: skip
        make("Nope-v0")
    with pytest.raises(ValueError, match="unknown env id 'Nope-v0'"):
        monkeypatch.setattr(tasks, "SHIPPED", ())
        make("Nope-v0")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--env", PLAIN, "--reward", "pbrs"], "register the env's task with a progress"),
        (["train", "--env", PLAIN, "--reward", "env"], "register the env's task with its success"),
        (["eval-reward", "--env", PLAIN], "rewardlab_tests/LineWalk-v0 is not one"),
        (["llm-reward", "check", "x.py", "--env", PLAIN], "no registered task; register one"),
    ],
)
def test_the_cli_on_an_env_without_a_task_fails_before_any_work(
    args: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.py").write_text("def reward(pos):\n    return 0.0\n")
    out = [] if args[0] == "llm-reward" else ["--out", str(tmp_path / "out")]
    assert main([*args, *out]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_the_cli_on_a_task_without_progress_says_what_to_register(
    registered: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registered()
    args = ["train", "--env", PLAIN, "--reward", "pbrs", "--out", str(tmp_path / "out")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "has no progress" in err and "add progress=... to the rewardlab.register_task(" in err
    assert err.count("\n") == 1 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("module", [TASK_MODULE, str(ROOT / "tests/envs/line_walk_task.py")])
def test_train_with_pbrs_on_a_registered_env_through_the_cli(
    module: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["train", "--env", "rewardlab_tests/LineWalkTasks-v0", "--reward", "pbrs"]
    args += ["--steps", "256", "--eval-episodes", "2", "--no-progress", "--set", "n_envs=2"]
    args += ["--set", "n_steps=64", "--set", "batch_size=64", "--tasks", module]
    assert main([*args, "--out", str(out)]) == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["task_modules"] == [module]
    assert (out / "eval.csv").read_text().count("\n") >= 2


def test_a_bad_task_module_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad_tasks.py"
    bad.write_text("import rewardlab\nrewardlab.register_task('X-v0', goal='g')\n")
    for module in ("no_such_module_here", str(bad), str(tmp_path / "missing.py")):
        assert main(["train", "--env", PLAIN, "--tasks", module, "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert f"cannot import the task module {module!r}" in err and err.count("\n") == 1


def test_a_comparison_imports_the_task_module_in_its_workers(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: linewalk\nenvs: [rewardlab_tests/LineWalkTasks-v0]\nbudget: 256\nseeds: 1\n"
        "eval: {freq: 256, episodes: 2}\nworkers: 1\n"
        "hyperparams: {n_envs: 2, n_steps: 64, batch_size: 64}\n"
        f"variants: {{sparse: sparse, pbrs: pbrs}}\ntask_modules: [{TASK_MODULE}]\n"
    )
    # A fresh process, as a user runs it: nothing registered but what the spec names.
    done = subprocess.run(
        [sys.executable, "-m", "rewardlab.cli", "compare", str(spec), "--out", str(tmp_path / "o")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "o" / "report.md").is_file()


def test_only_what_a_run_reads_is_computed(registered: Any) -> None:
    calls = {"progress": 0}

    def progress(env: Any) -> float:
        calls["progress"] += 1
        return env.pos / (env.length - 1)

    registered(progress=progress)
    env = make(PLAIN, info_keys=("is_success",))
    env.reset(seed=0)
    info = env.step(2)[4]
    assert "progress" not in info and calls["progress"] == 0 and info["is_success"] is False
    with pytest.raises(ValueError, match=r"TaskInfo writes \['is_success', 'progress'\]"):
        make(PLAIN, info_keys=("succes",))
    plain = rewardlab.make_vec_env(PLAIN, n_envs=2)  # the env's own reward: no progress
    plain.reset()
    assert "progress" not in plain.step(np.array([2, 2]))[3][0]
    assert calls["progress"] == 0
    shaped = rewardlab.make_vec_env(PLAIN, n_envs=2, reward="pbrs")
    shaped.reset()
    infos = shaped.step(np.array([2, 2]))[3]
    assert all("progress" in i and "is_success" in i for i in infos) and calls["progress"] > 0


def test_subprocess_sub_envs_import_the_task_modules() -> None:
    from stable_baselines3.common.vec_env import SubprocVecEnv

    import tests.envs.line_walk_task  # noqa: F401  (registers the task here, not in workers)

    env_id = "rewardlab_tests/LineWalkTasks-v0"
    options = dict(vec_env_cls=SubprocVecEnv, vec_env_kwargs={"start_method": "spawn"})
    venv = rewardlab.make_vec_env(env_id, 2, "pbrs", task_modules=[TASK_MODULE], **options)
    try:
        venv.reset()
        infos = venv.step(np.array([2, 2]))[3]
        assert all("progress" in i and "shaping" in i for i in infos)
    finally:
        venv.close()


def test_made_envs_are_freed_with_their_task(registered: Any) -> None:
    import gc
    import weakref

    registered(**FULL)
    env = make(PLAIN)
    get_task(env)  # binds the adapter, which holds the env
    inner = weakref.ref(env.unwrapped)
    env.close()
    del env
    gc.collect()
    assert inner() is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"progress": lambda env: float("nan")}, "task progress returned nan; it must be a "),
        ({"progress": lambda env: 1.5}, "task progress returned 1.5"),
        ({"progress": lambda env: "half"}, "task progress returned 'half'"),
        (
            {"success": lambda env, obs, info: np.array([True, False])},
            "task success returned array([ True, False]); it must be one bool",
        ),
    ],
)
def test_task_values_outside_the_contract_fail_naming_the_env(
    fields: dict[str, Any], message: str, registered: Any
) -> None:
    registered(**fields)
    env = make(PLAIN)
    with pytest.raises(ValueError, match=re.escape(f"rewardlab_tests/LineWalk-v0's {message}")):
        env.reset(seed=0)


def test_a_task_that_raises_fails_the_cli_before_training(
    registered: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registered(success=lambda env, obs, info: 1 / 0)
    args = ["train", "--env", PLAIN, "--reward", "sparse", "--out", str(tmp_path / "out")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "failed on its first reset and step, before any training: ZeroDivisionError" in err
    assert err.count("\n") == 1 and not (tmp_path / "out").exists()
    registered(success="no_such_key")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "info has no 'no_such_key', the key its task reads success from" in err


def test_a_missing_feature_names_the_adapter_to_extend(registered: Any) -> None:
    registered()  # by keywords: the user's own call is what to extend
    with pytest.raises(MissingTaskFeature, match=re.escape(
        "register one: add expert=... to the rewardlab.register_task("
        "'rewardlab_tests/LineWalk-v0', ...) call")):  # fmt: skip
        expert_policy(make(PLAIN))
    # A shipped task: extend its adapter, which keeps what it has.
    from rewardlab.envs.adapters.mujoco import Hopper

    with pytest.raises(MissingTaskFeature, match=re.escape(
        "rewardlab.register_task('Hopper-v5', rewardlab.envs.adapters.mujoco.Hopper, "
        "expert=..., replace=True)")):  # fmt: skip
        expert_policy(make("Hopper-v5"))
    registered("Hopper-v5", adapter=Hopper, expert=lambda env, obs: np.zeros(3, np.float32))
    task = get_task(make("Hopper-v5"))
    assert task.features() == frozenset(tasks.FEATURES)


def test_an_env_made_without_gym_make_is_named_by_its_class() -> None:
    with pytest.raises(TaskNotFound, match=re.escape(
        "register one with rewardlab.register_task(tests.envs.line_walk.LineWalkEnv, "
        "goal=..., success=...)")):  # fmt: skip
        get_task(LineWalkEnv())


def test_make_vec_env_imports_its_task_modules_in_this_process_too() -> None:
    code = (
        "import numpy as np, rewardlab\n"
        "venv = rewardlab.make_vec_env('rewardlab_tests/LineWalkTasks-v0', 2, 'pbrs', "
        f"task_modules=[{TASK_MODULE!r}])\n"
        "venv.reset(); print('progress' in venv.step(np.array([2, 2]))[3][0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True"
