"""Bad input to every command that trains or judges: exit 2 with one ``error:`` line, found
before anything trains or is written; and a failed run's folder takes a retry."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rewardlab.cli import main

GRID = ["--env", "rewardlab/GridEmpty-v0", "--env-kwarg", "size=5"]
TINY = ["--set", "n_envs=1", "--set", "n_steps=32", "--set", "batch_size=32"]
TRAIN = ["train", *GRID, "--steps", "64", *TINY, "--eval-episodes", "1", "--no-progress"]
EVAL = ["eval-reward", *GRID, "--episodes", "1", "--max-steps", "10"]
CHECK = ["llm-reward", "check"]
SEARCH = ["llm-reward", "search", *GRID, "--model", "m", "--samples", "1", "--iterations", "1"]

SPEC: dict[str, Any] = {
    "name": "bad",
    "envs": [{"id": "rewardlab/GridEmpty-v0", "kwargs": {"size": 5}}],
    "hyperparams": {"n_envs": 1, "n_steps": 32, "batch_size": 32, "n_epochs": 1},
    "budget": 64,
    "seeds": [0],
    "eval": {"freq": 64, "episodes": 1},
    "variants": {"sparse": "sparse"},
    "workers": 1,
}
HP = SPEC["hyperparams"]


class Paths:
    """Inputs of the cases, made under ``tmp_path/in`` before the command runs; ``out`` is
    the output folder the command is given (it must not exist afterwards)."""

    def __init__(self, root: Path, listening: str, closed: str) -> None:
        self.root, self.inputs, self.out = root, root / "in", root / "out"
        self.listening, self.closed = listening, closed
        self.inputs.mkdir()
        self.file = self.write("afile.txt", "x")
        self.folder = self.inputs / "afolder"
        self.folder.mkdir()
        self.syntax = self.write("syntax.py", "def compute_reward(agent_pos:\n    return 1\n")
        self.program = self.write(
            "good.py", "def compute_reward(agent_pos):\n    return agent_pos[:, 0] * 0.0, {}\n"
        )

    def write(self, name: str, text: str) -> Path:
        path = self.inputs / name
        path.write_text(text)
        return path

    def spec_text(self, **changes: Any) -> str:
        """:data:`SPEC` with ``changes`` (None removes a field), as YAML."""
        data = {k: v for k, v in {**SPEC, **changes}.items() if v is not None}
        return yaml.safe_dump(data, sort_keys=False)

    def spec(self, **changes: Any) -> str:
        """A comparison spec file of :meth:`spec_text`."""
        return str(self.write("spec.yaml", self.spec_text(**changes)))

    def program_reward(self, path: Path | str) -> str:
        return f"{{model: {{kind: program, path: {path}}}}}"


Case = Callable[[Paths], list[str]]

# (id, the command line (before --out), text the error line must hold)
CASES: list[tuple[str, Case, str]] = [
    # --- train
    ("train-unknown-env", lambda p: ["train", "--env", "rewardlab/Nope-v0"], "unknown env id"),
    ("train-misspelt-reward", lambda p: [*TRAIN, "--reward", "pbrss"], "'pbrss' (did you mean"),
    (
        "train-reward-yaml",
        lambda p: [*TRAIN, "--reward", "{shaping: progress"],
        "not valid YAML: expected ',' or '}'",
    ),
    (
        "train-reward-key-twice",
        lambda p: [*TRAIN, "--reward", "{shaping: progress, shaping: progress}"],
        "the key 'shaping' is given twice",
    ),
    ("train-reward-field", lambda p: [*TRAIN, "--reward", "{shapin: progress}"], "--reward.shapin"),
    (
        "train-shaping-gamma-range",
        lambda p: [*TRAIN, "--reward", "{shaping: progress, shaping_gamma: 1.5}"],
        "--reward.shaping_gamma: Input should be less than or equal to 1",
    ),
    (
        "train-shaping-gamma-is-agent-gamma",
        lambda p: [*TRAIN, "--reward", "{shaping: progress, shaping_gamma: 0.99}"],
        "mismatched shaping needs gamma != agent_gamma",
    ),
    (
        "train-info-key",
        lambda p: [*TRAIN, "--reward", "{model: {kind: info, key: progres}}"],
        "info key 'progres', which the info reward model reads, is not in rewardlab/Grid",
    ),
    ("train-gamma", lambda p: [*TRAIN, "--set", "gamma=1.5"], "gamma must be a number in [0, 1]"),
    ("train-gamma-type", lambda p: [*TRAIN, "--set", "gamma=abc"], "got 'abc'"),
    ("train-hyperparam", lambda p: [*TRAIN, "--set", "lerning_rate=0.1"], "'lerning_rate'"),
    ("train-hyperparam-type", lambda p: [*TRAIN, "--set", "learning_rate=abc"], "PPO rejects"),
    ("train-n-envs", lambda p: [*TRAIN, "--set", "n_envs=0"], "n_envs must be a positive int"),
    ("train-set-yaml", lambda p: [*TRAIN, "--set", "net_arch=[64"], "--set net_arch: not valid"),
    ("train-set-no-value", lambda p: [*TRAIN, "--set", "gamma"], "--set takes KEY=VALUE"),
    (
        "train-env-kwarg-no-value",
        lambda p: ["train", "--env", "rewardlab/GridEmpty-v0", "--env-kwarg", "size"],
        "--env-kwarg takes KEY=VALUE",
    ),
    (
        "train-env-kwarg-unknown",
        lambda p: ["train", "--env", "rewardlab/GridEmpty-v0", "--env-kwarg", "sise=5"],
        "unexpected keyword argument(s) ['sise']",
    ),
    ("train-algo", lambda p: [*TRAIN, "--algo", "ppoo"], "unknown algorithm 'ppoo'"),
    ("train-algo-actions", lambda p: [*TRAIN, "--algo", "sac"], "SAC does not support"),
    ("train-steps", lambda p: [*TRAIN, "--steps", "-5"], "--steps -5: Input should be greater"),
    ("train-seed", lambda p: [*TRAIN, "--seed", "-1"], "--seed -1: Input should be greater"),
    ("train-eval-episodes", lambda p: [*TRAIN, "--eval-episodes", "0"], "--eval-episodes 0:"),
    ("train-eval-freq", lambda p: [*TRAIN, "--eval-freq", "0"], "--eval-freq 0:"),
    ("train-reward-budget", lambda p: [*TRAIN, "--reward-budget", "nan"], "--reward-budget nan:"),
    ("train-device", lambda p: [*TRAIN, "--device", "banana"], "unknown torch device 'banana'"),
    (
        "train-program-missing",
        lambda p: [*TRAIN, "--reward", p.program_reward(p.inputs / "nope.py")],
        "cannot read the reward program",
    ),
    (
        "train-program-folder",
        lambda p: [*TRAIN, "--reward", p.program_reward(p.folder)],
        "cannot read the reward program",
    ),
    (
        "train-program-syntax",
        lambda p: [*TRAIN, "--reward", p.program_reward(p.syntax)],
        "rejected (syntax)",
    ),
    ("train-out-is-a-file", lambda p: [*TRAIN, "--out", str(p.file)], "is a file, not a folder"),
    (
        "train-out-under-a-file",
        lambda p: [*TRAIN, "--out", str(p.file / "run")],
        "is a file, so no folder can be made there",
    ),
    (
        "train-out-holds-other-files",
        lambda p: [*TRAIN, "--out", str(p.inputs)],
        "already holds files; train into a new folder",
    ),
    # --- compare
    ("compare-spec-missing", lambda p: ["compare", str(p.inputs / "no.yaml")], "no spec file at"),
    ("compare-spec-folder", lambda p: ["compare", str(p.folder)], "is a folder; give the file"),
    (
        "compare-spec-yaml",
        lambda p: ["compare", str(p.write("s.yaml", "name: x\nenvs: [a\n"))],
        "not valid YAML",
    ),
    (
        "compare-spec-not-mapping",
        lambda p: ["compare", str(p.write("s.yaml", "- a\n"))],
        "a spec is a mapping of fields, got list",
    ),
    (
        "compare-variant-twice",
        lambda p: [
            "compare",
            str(p.write("s.yaml", p.spec_text().replace("  sparse: sparse", "  a: a\n  a: b"))),
        ],
        "the key 'a' is given twice",
    ),
    ("compare-unknown-field", lambda p: ["compare", p.spec(bugdet=5)], "spec.bugdet: Extra"),
    ("compare-budget", lambda p: ["compare", p.spec(budget=-5)], "spec.budget: Input should be"),
    ("compare-budget-type", lambda p: ["compare", p.spec(budget="abc")], "spec.budget: Input"),
    ("compare-seeds-0", lambda p: ["compare", p.spec(seeds=0)], "a seed count must be >= 1"),
    ("compare-seeds-negative", lambda p: ["compare", p.spec(seeds=[-1])], "non-negative ints"),
    ("compare-seeds-repeat", lambda p: ["compare", p.spec(seeds=[0, 0])], "seeds repeat"),
    ("compare-no-variants", lambda p: ["compare", p.spec(variants={})], "spec.variants:"),
    (
        "compare-eval-episodes",
        lambda p: ["compare", p.spec(eval={"freq": 64, "episodes": 0})],
        "spec.eval.episodes: Input should be greater than 0",
    ),
    ("compare-no-eval", lambda p: ["compare", p.spec(eval=None)], "spec.eval: Field required"),
    ("compare-threshold", lambda p: ["compare", p.spec(threshold=1.5)], "spec.threshold:"),
    ("compare-algo", lambda p: ["compare", p.spec(algo="ppoo")], "unknown algorithm 'ppoo'"),
    (
        "compare-hyperparam",
        lambda p: ["compare", p.spec(hyperparams={**HP, "lerning_rate": 0.1})],
        "variants.sparse: unknown PPO hyperparameter 'lerning_rate'",
    ),
    (
        "compare-hyperparam-type",
        lambda p: ["compare", p.spec(hyperparams={**HP, "learning_rate": "abc"})],
        "PPO rejects the hyperparameters",
    ),
    (
        "compare-gamma",
        lambda p: ["compare", p.spec(hyperparams={**HP, "gamma": 1.5})],
        "gamma must be a number in [0, 1], got 1.5",
    ),
    (
        "compare-shaping-gamma",
        lambda p: [
            "compare",
            p.spec(variants={"m": {"shaping": "progress", "shaping_gamma": 1.5}}),
        ],
        "spec.variants.m.shaping_gamma: Input should be less than or equal to 1",
    ),
    (
        "compare-reward",
        lambda p: ["compare", p.spec(variants={"m": "pbrss"})],
        "spec.variants.m: unknown reward 'pbrss'",
    ),
    (
        "compare-variant-field",
        lambda p: ["compare", p.spec(variants={"m": {"reward": "pbrs", "hyperparmas": {}}})],
        "spec.variants.m.hyperparmas: Extra",
    ),
    ("compare-env", lambda p: ["compare", p.spec(envs=["rewardlab/Nope-v0"])], "unknown env id"),
    ("compare-device", lambda p: ["compare", p.spec(device="banana")], "unknown torch device"),
    ("compare-workers-in-spec", lambda p: ["compare", p.spec(workers=0)], "spec.workers:"),
    ("compare-workers-0", lambda p: ["compare", p.spec(), "--workers", "0"], "pass --workers 1 or"),
    ("compare-workers-neg", lambda p: ["compare", p.spec(), "--workers", "-1"], "got --workers -1"),
    (
        "compare-info-key",
        lambda p: ["compare", p.spec(variants={"m": {"model": {"kind": "info", "key": "x"}}})],
        "variants.m: info key 'x', which the info reward model reads",
    ),
    (
        "compare-program-missing",
        lambda p: ["compare", p.spec(variants={"m": p.program_reward(p.inputs / "no.py")})],
        "variants.m.reward.model: cannot read the reward program",
    ),
    (
        "compare-program-syntax",
        lambda p: ["compare", p.spec(variants={"m": p.program_reward(p.syntax)})],
        "variants.m: reward program",
    ),
    (
        "compare-out-is-a-file",
        lambda p: ["compare", p.spec(), "--out", str(p.file)],
        "is a file, not a folder",
    ),
    # --- eval-reward
    ("eval-unknown-env", lambda p: ["eval-reward", "--env", "rewardlab/Nope-v0"], "unknown env"),
    ("eval-misspelt-reward", lambda p: [*EVAL, "--reward", "pbrss"], "unknown reward 'pbrss'"),
    ("eval-reward-yaml", lambda p: [*EVAL, "--reward", "{shaping: progress"], "not valid YAML"),
    (
        "eval-info-key",
        lambda p: [*EVAL, "--reward", "{model: {kind: info, key: nope}}"],
        "info key 'nope' is not stored per state",
    ),
    ("eval-sweep-missing", lambda p: [*EVAL, "--sweep", str(p.inputs / "no.yaml")], "no --sweep"),
    ("eval-sweep-folder", lambda p: [*EVAL, "--sweep", str(p.folder)], "is a folder"),
    (
        "eval-sweep-yaml",
        lambda p: [*EVAL, "--sweep", str(p.write("s.yaml", "heads: [\n"))],
        "not valid YAML",
    ),
    (
        "eval-sweep-not-mapping",
        lambda p: [*EVAL, "--sweep", str(p.write("s.yaml", "- 1\n"))],
        "must hold a mapping, got list",
    ),
    (
        "eval-sweep-key",
        lambda p: [*EVAL, "--sweep", str(p.write("s.yaml", "hedas: {}\n"))],
        "unknown key(s) ['hedas']",
    ),
    (
        "eval-dataset-missing",
        lambda p: [*EVAL, "--dataset", str(p.inputs / "ds")],
        "no trajectory dataset at",
    ),
    ("eval-episodes-0", lambda p: [*EVAL, "--episodes", "0"], "pass --episodes 1 or"),
    ("eval-episodes-neg", lambda p: [*EVAL, "--episodes", "-1"], "got --episodes -1"),
    ("eval-max-steps", lambda p: [*EVAL, "--max-steps", "0"], "pass --max-steps 1 or more"),
    ("eval-bootstrap", lambda p: [*EVAL, "--bootstrap", "-1"], "pass --bootstrap 0 or more"),
    ("eval-min-successes", lambda p: [*EVAL, "--min-successes", "-1"], "--min-successes 0 or"),
    ("eval-seed", lambda p: [*EVAL, "--seed", "-1"], "got --seed -1; pass --seed 0 or more"),
    ("eval-gamma", lambda p: [*EVAL, "--gamma", "1.0"], "gamma must be in [0, 1)"),
    (
        "eval-program-syntax",
        lambda p: [*EVAL, "--reward", p.program_reward(p.syntax)],
        "rejected (syntax)",
    ),
    ("eval-out-is-a-file", lambda p: [*EVAL, "--out", str(p.file)], "is a file, not a folder"),
    # --- llm-reward check (writes nothing anywhere)
    ("check-missing", lambda p: [*CHECK, str(p.inputs / "no.py"), *GRID], "no program file at"),
    ("check-folder", lambda p: [*CHECK, str(p.folder), *GRID], "is a folder; give the file"),
    ("check-env", lambda p: [*CHECK, str(p.program), "--env", "rewardlab/Nope-v0"], "unknown env"),
    ("check-n-envs", lambda p: [*CHECK, str(p.program), *GRID, "--n-envs", "0"], "--n-envs 1 or"),
    ("check-seed", lambda p: [*CHECK, str(p.program), *GRID, "--seed", "-1"], "--seed 0 or"),
    ("check-algo", lambda p: [*CHECK, str(p.program), *GRID, "--algo", "ppoo"], "unknown algo"),
    # --- llm-reward search (a server that listens, or a port where nothing does)
    ("search-no-env", lambda p: ["llm-reward", "search", "--model", "m"], "--env is required"),
    ("search-no-model", lambda p: ["llm-reward", "search", *GRID], "--model is required"),
    (
        "search-unknown-env",
        lambda p: ["llm-reward", "search", "--env", "rewardlab/Nope-v0", "--model", "m"],
        "unknown env id 'rewardlab/Nope-v0'",
    ),
    ("search-config-missing", lambda p: [*SEARCH, "--config", "no.yaml"], "no --config file at"),
    ("search-config-folder", lambda p: [*SEARCH, "--config", str(p.folder)], "is a folder"),
    (
        "search-config-yaml",
        lambda p: [*SEARCH, "--config", str(p.write("c.yaml", "llm: {model: x\n"))],
        "not valid YAML",
    ),
    (
        "search-config-not-mapping",
        lambda p: [*SEARCH, "--config", str(p.write("c.yaml", "- 1\n"))],
        "must hold a mapping, got list",
    ),
    (
        "search-config-field",
        lambda p: [*SEARCH, "--config", str(p.write("c.yaml", "sampels: 3\n"))],
        "search.sampels: Extra inputs",
    ),
    (
        "search-config-section",
        lambda p: [*SEARCH, "--config", str(p.write("c.yaml", "train: 5\n"))],
        "train in the --config file must be a mapping",
    ),
    (
        "search-config-algo",
        lambda p: [
            *SEARCH,
            *("--base-url", p.listening),
            *("--config", str(p.write("c.yaml", "train: {algo: nope}\n"))),
        ],
        "unknown algorithm 'nope'",
    ),
    ("search-samples", lambda p: [*SEARCH, "--samples", "0"], "search.samples: Input should be"),
    ("search-steps", lambda p: [*SEARCH, "--steps", "0"], "search.train.steps: Input should be"),
    ("search-seeds", lambda p: [*SEARCH, "--seeds", "-1"], "search.train.seeds.0: Input should"),
    ("search-temperature", lambda p: [*SEARCH, "--temperature", "5"], "search.llm.temperature"),
    ("search-max-tokens", lambda p: [*SEARCH, "--max-tokens", "0"], "search.llm.max_tokens"),
    ("search-timeout", lambda p: [*SEARCH, "--timeout", "0"], "search.llm.timeout_s"),
    ("search-concurrency", lambda p: [*SEARCH, "--concurrency", "0"], "search.llm.concurrency"),
    ("search-replay", lambda p: [*SEARCH, "--replay"], "--replay needs the recording"),
    (
        "search-base-url-not-url",
        lambda p: [*SEARCH, "--base-url", "localhost:8000"],
        "base_url must be an http(s) URL",
    ),
    (
        "search-api-key-in-api-key-env",
        lambda p: [*SEARCH, "--base-url", p.listening, "--api-key-env", "sk-0123456789abcdef"],
        "api_key_env is the NAME of the environment variable",
    ),
    (
        "search-nothing-listening",
        lambda p: [*SEARCH, "--base-url", p.closed],
        "cannot reach the LLM server at http://127.0.0.1:",
    ),
    (
        "search-feedback-missing",
        lambda p: [*SEARCH, "--base-url", p.listening, "--feedback-file", "no.txt"],
        "feedback file no.txt does not exist",
    ),
    (
        "search-out-is-a-file",
        lambda p: [*SEARCH, "--base-url", p.listening, "--out", str(p.file)],
        "is a file, not a folder",
    ),
    (
        "search-cache-dir-is-a-file",
        lambda p: [*SEARCH, "--base-url", p.listening, "--cache-dir", str(p.file)],
        "--cache-dir",
    ),
]


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def server() -> Iterator[tuple[str, str]]:
    """A base URL where a socket listens (accepting nothing) and one where nothing does."""
    with socket.socket() as listening, socket.socket() as closed:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        yield (
            f"http://127.0.0.1:{listening.getsockname()[1]}/v1",
            f"http://127.0.0.1:{closed.getsockname()[1]}/v1",
        )


@pytest.mark.parametrize(
    ("make_args", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_exits_2_with_one_line_before_any_work(
    make_args: Case,
    expected: str,
    tmp_path: Path,
    server: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paths = Paths(tmp_path, *server)
    args = make_args(paths)
    if "--out" not in args and args[:2] != ["llm-reward", "check"]:
        args += ["--out", str(paths.out)]
    monkeypatch.chdir(tmp_path)  # a default output folder would land here
    before = _files(tmp_path)
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expected in err
    assert _files(tmp_path) == before


@pytest.mark.parametrize(
    "args",
    [
        ["train", *GRID, "--steps", "abc"],
        ["train", *GRID, "--stpes", "5"],
        ["train", *GRID, "--slow-reward", "never"],
        ["compare", "spec.yaml", "--workers", "two"],
        ["eval-reward", *GRID, "--gamma", "high"],
        ["llm-reward", "check", "p.py", *GRID, "--n-envs", "many"],
    ],
    ids=["int", "misspelt-option", "choice", "workers", "float", "n-envs"],
)
def test_malformed_options_are_usage_errors(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "compare", "eval-reward", "search"])
def test_an_output_folder_without_write_permission_is_bad_input(
    command: str,
    tmp_path: Path,
    server: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As the unprivileged user sees it (the suite may run as root, who may write anywhere)."""
    paths = Paths(tmp_path, *server)
    locked = tmp_path / "locked"
    locked.mkdir()
    access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: Path(path) != locked and access(path, mode)
    )
    args = {
        "train": TRAIN,
        "compare": ["compare", paths.spec()],
        "eval-reward": EVAL,
        "search": [*SEARCH, "--base-url", paths.listening],
    }[command]
    assert main([*args, "--out", str(locked / "out")]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"error: --out {locked / 'out'}: no permission to write in {locked}; give a "
        "folder you can write to\n"
    )
    assert not any(locked.iterdir())


FAILING = "def compute_reward(agent_pos):\n    raise ValueError('boom')\n"


def test_a_failed_run_is_retried_into_its_own_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program, out = tmp_path / "prog.py", tmp_path / "run"
    program.write_text(FAILING)
    failing = f"{{model: {{kind: program, path: {program}}}}}"
    assert main([*TRAIN, "--reward", failing, "--out", str(out)]) == 1
    assert "train again into the same --out" in capsys.readouterr().err
    assert (out / "failed.json").is_file() and not (out / "model.zip").exists()

    assert main([*TRAIN, "--reward", "pbrs", "--out", str(out)]) == 0
    assert not (out / "failed.json").exists() and (out / "model.zip").is_file()
    assert json.loads((out / "config.json").read_text())["reward"]["shaping"] == "progress"


def test_a_cuda_device_the_machine_lacks_is_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from rewardlab.experiments.comparison_spec import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [check_device(d) for d in ("auto", "cpu", "cuda", "cuda:1")] == [
        "auto",
        "cpu",
        "cuda",
        "cuda:1",
    ]
    with pytest.raises(ValueError, match=r"'cuda:2': this machine has 2 CUDA device\(s\)"):
        check_device("cuda:2")
    # Without CUDA, SB3 trains a CUDA run on the CPU: not an error.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert check_device("cuda:2") == "cuda:2"
