"""One hostile candidate is a failed candidate, never a failed search.

The sandbox worker is replaced by a wrapper around the real one that forges a deeply nested
ERROR frame (which once raised RecursionError in the parent) for programs carrying a marker:
on every call, or only in a training run's worker. Other candidates make the check, the
training run, the failure analysis or the reward reflection raise exceptions nothing expects.
Each is recorded with its reason, and the search goes on to the next candidate and finishes.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from rewardlab.experiments.llm_reward import search as search_module
from rewardlab.experiments.llm_reward.search import run_search
from rewardlab.sandbox import process
from rewardlab.sandbox import protocol as wire
from tests.experiments.test_llm_search import config, three_envs
from tests.llm.fake_server import FakeLLMServer

# The module (rewardlab.agents re-exports its train function under the module's name).
train_module = importlib.import_module("rewardlab.agents.train")
TRAINING_BATCH = 3  # three_envs: the check's workers start on batches of 64, training's on 3

# The real worker, with its answers to calls replaced by a forged frame for marked programs.
FORGING_WORKER = """
import importlib.util, json, os, sys

spec = importlib.util.spec_from_file_location("_sandbox_worker", REAL_WORKER)
worker = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = worker
spec.loader.exec_module(worker)
wire = worker.wire
real_recv, real_send = wire.recv, wire.send
state = {"mode": None, "training": None}


def recv(reader, spin_s=0.0):
    request = real_recv(reader, spin_s)
    if request is not None and request[0] == wire.OP_LOAD:
        source = json.loads(bytes(request[1]))["source"]
        for mode in ("always", "training"):
            if f"# forge: {mode}" in source:
                state["mode"] = mode
    elif request is not None and request[0] == wire.OP_CALL and state["training"] is None:
        state["training"] = wire.REQUEST.unpack_from(request[1])[2] == TRAINING_BATCH
    return request


def send(fd, op, parts):
    if op == wire.OP_RESULT and (
        state["mode"] == "always" or (state["mode"] == "training" and state["training"])
    ):
        os.write(fd, FORGED)
        return
    real_send(fd, op, parts)


wire.recv, wire.send = recv, send
worker.main()
"""
_NESTED = "[" * 20_000 + "]" * 20_000
FORGED = wire.FRAME.pack(len(_NESTED) + 10, wire.OP_ERROR) + b'{"kind": ' + _NESTED.encode() + b"}"

PROGRAM = """```python
# {marker}
def compute_reward(agent_pos, goal_pos):
    distance = np.abs(goal_pos - agent_pos).sum(axis=-1).astype(np.float64)
    approach = -{scale} * distance
    bonus = 5.0 * (distance == 0)
    return approach + bonus, {{"approach": approach, "{name}": bonus}}
```"""

# Sample k (its request's seed) -> the answer.
ANSWERS = [
    PROGRAM.format(marker="forge: always", scale=0.05, name="bonus"),
    PROGRAM.format(marker="forge: training", scale=0.05, name="bonus"),
    PROGRAM.format(marker="trip: check", scale=0.05, name="bonus"),
    PROGRAM.format(marker="trip: failure analysis", scale=0.05, name="bonus"),
    PROGRAM.format(marker="trip: reflection", scale=0.05, name="tripwire"),
    PROGRAM.format(marker="trip: train", scale=0.05, name="bonus"),
    PROGRAM.format(marker="plain", scale=0.1, name="bonus"),
]


def install_traps(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The forging worker, and exceptions of types nothing expects at each later stage."""
    script = tmp_path / "forging_worker.py"
    constants = (
        f"REAL_WORKER = {process._WORKER_PATH!r}\nTRAINING_BATCH = {TRAINING_BATCH}\n"
        f"FORGED = {FORGED!r}\n"
    )
    script.write_text(constants + FORGING_WORKER)
    monkeypatch.setattr(process, "_WORKER_PATH", str(script))

    smoke_test = search_module.smoke_test

    def check(source: str, *args: Any, **kwargs: Any) -> Any:
        if "# trip: check" in source:
            raise RecursionError("maximum recursion depth exceeded in the check")
        return smoke_test(source, *args, **kwargs)

    monkeypatch.setattr(search_module, "smoke_test", check)

    train = train_module.train

    def training(cfg: Any, run_dir: Any, **kwargs: Any) -> Any:
        if "# trip: train" in cfg.model_dump_json():
            raise TypeError("unsupported operand type(s) in training")
        return train(cfg, run_dir, **kwargs)

    monkeypatch.setattr(train_module, "train", training)

    analyze_failures = search_module.analyze_failures
    calls = []

    def analysis(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == 1:  # the first candidate trained to the end: sample 3
            raise RecursionError("maximum recursion depth exceeded in the analysis")
        return analyze_failures(*args, **kwargs)

    monkeypatch.setattr(search_module, "analyze_failures", analysis)

    reward_reflection = search_module.reward_reflection

    def reflection(components: Any, success: Any) -> Any:
        if "tripwire" in components:
            raise TypeError("unsupported format string passed to NoneType.__format__")
        return reward_reflection(components, success)

    monkeypatch.setattr(search_module, "reward_reflection", reflection)


def test_hostile_candidates_fail_alone_and_the_search_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    install_traps(monkeypatch, tmp_path)

    def answer(body: dict[str, Any]) -> str:
        return ANSWERS[body.get("seed") or 0]

    logged: list[str] = []
    with FakeLLMServer(responses=answer) as server:
        cfg = config(
            server.base_url, tmp_path / "c", iterations=1, samples=len(ANSWERS), repair_rounds=0
        )
        summary = run_search(three_envs(cfg), tmp_path / "run", log=logged.append)

    def record(k: int) -> dict[str, Any]:
        path = tmp_path / f"run/candidates/r0-i0-k{k}/candidate.json"
        return json.loads(path.read_text())

    assert summary["stop_reason"] == "done" and summary["error"] is None
    assert len(summary["candidates"]) == len(ANSWERS)
    # The round's request, then one line per candidate with its count, then the usage.
    assert logged[0] == f"r0-i0: asking test-model for {len(ANSWERS)} programs"
    assert logged[-1].startswith(f"LLM: {len(ANSWERS)} requests answered by the server")
    counts = [line.split("]")[0].split(",")[0] for line in logged[1:-1]]
    assert counts == [f"[{k}/{len(ANSWERS)}" for k in range(1, len(ANSWERS) + 1)]
    # A forged frame in the check: the check rejects the program (the worker broke the
    # protocol), as it would any runtime failure.
    forged_check = record(0)
    assert forged_check["fitness"] is None
    assert (forged_check["smoke"]["stage"], forged_check["smoke"]["reason"]) == (
        "runtime",
        "protocol",
    )
    assert "nested" in forged_check["smoke"]["problems"][0]
    # A forged frame in training only: the check passed, training used up the exception
    # budget on forged answers.
    forged_training = record(1)
    assert forged_training["smoke"]["passed"] and forged_training["fitness"] is None
    assert forged_training["training_error"].startswith("exception_budget: ")
    assert "(protocol)" in forged_training["training_error"]
    # The check itself raising: a failed check.
    check = record(2)
    assert (check["smoke"]["stage"], check["smoke"]["reason"]) == ("checks", "check_error")
    assert "RecursionError: maximum recursion depth" in check["smoke"]["problems"][0]
    assert check["attempts"] == [] and check["fitness"] is None
    # The failure analysis raising: feedback only, so the fitness stands.
    analysis = record(3)
    assert analysis["fitness"] is not None
    assert "RecursionError" in analysis["per_seed"][0]["failures_error"]
    assert "failures" not in analysis["per_seed"][0] and analysis["feedback"]
    # The reflection raising: no fitness, so it is never shown to the LLM as the best.
    reflection = record(4)
    assert reflection["fitness"] is None and "reflection" not in reflection
    assert reflection["reflection_error"].startswith("TypeError: unsupported format string")
    # Training raising a type nothing expects.
    train = record(5)
    assert train["fitness"] is None
    assert train["training_error"] == "TypeError: unsupported operand type(s) in training"
    assert record(6)["fitness"] is not None
    assert summary["best"]["id"] in ("r0-i0-k3", "r0-i0-k6")
    outcomes = {c["id"]: c["outcome"] for c in summary["candidates"]}
    assert outcomes["r0-i0-k0"].startswith("rejected (runtime: protocol)")
    assert outcomes["r0-i0-k2"].startswith("rejected (checks: check_error)")
    assert outcomes["r0-i0-k4"].startswith("trained, then its statistics broke the reflection")
    assert outcomes["r0-i0-k5"].startswith("passed the check, then failed in training")
