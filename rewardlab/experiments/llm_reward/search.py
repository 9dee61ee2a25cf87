"""Eureka-style reward search: an LLM writes reward programs, short training runs judge them.

For each of ``restarts`` independent searches, ``iterations`` rounds: ask for ``samples``
programs (independent concurrent requests); extract, validate and smoke-test each (failures go
back to the LLM for up to ``repair_rounds`` repairs); train a policy briefly on every program
that passes, on each training seed; its **fitness** is the true-task success rate of the final
evaluation, averaged over seeds. The fittest program of the round is shown to the LLM with its
reward reflection (component statistics over training), an analysis of the failed evaluation
episodes, and the optional human feedback, and the next round asks for an improvement.

Every candidate is stored under ``<out>/candidates/<id>/`` (ids ``r<restart>-i<iteration>-
k<sample>``, stable across runs): the messages sent, the response, the program, its hash, the
validation and smoke verdicts, fitness per seed, the reflection. ``search.json`` records the
choices. With the LLM cache in ``replay`` mode a recorded search re-runs offline and makes the
same choices (training is seeded).

Budgets on tokens, wall time and env steps stop the search between candidates; the reason is
recorded. Nothing here crashes on a bad response: an unreachable server, a malformed answer
or a program without code become a candidate verdict.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rewardlab.experiments.files import atomic_write
from rewardlab.experiments.llm_reward.checks import SmokeReport, random_states, smoke_test
from rewardlab.experiments.llm_reward.context import RewardContext, reward_context
from rewardlab.experiments.llm_reward.feedback import (
    analyze_failures,
    failure_summary,
    reward_reflection,
)
from rewardlab.llm import BudgetExceeded, ChatClient, LLMConfig, LLMError, default_base_url
from rewardlab.reward_models.program import ProgramRejected, extract_code
from rewardlab.reward_models.sandbox import ProgramContained
from rewardlab.wrappers.spec import parse_reward

__all__ = ["SearchConfig", "load_search_config", "run_search", "system_prompt"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LLMSettings(_Spec):
    """Which OpenAI-compatible server and model writes the programs."""

    model: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=120.0, gt=0.0)
    max_retries: int = Field(default=4, ge=0)
    concurrency: int = Field(default=4, ge=1)
    price_per_1k_prompt: float = Field(default=0.0, ge=0.0)
    price_per_1k_completion: float = Field(default=0.0, ge=0.0)


class TrainSettings(_Spec):
    """The short training run that measures a program's fitness."""

    algo: str = "ppo"
    steps: int = Field(default=50_000, gt=0)
    seeds: list[int] = Field(default_factory=lambda: [0])
    eval_episodes: int = Field(default=10, gt=0)
    evaluations: int = Field(default=5, gt=0)
    hyperparams: dict[str, Any] = Field(default_factory=dict)
    env_kwargs: dict[str, Any] = Field(default_factory=dict)


class Budgets(_Spec):
    """Stop the search once one of these is spent (checked between candidates)."""

    tokens: int | None = Field(default=None, gt=0)
    wall_s: float | None = Field(default=None, gt=0.0)
    env_steps: int | None = Field(default=None, gt=0)


class CacheSettings(_Spec):
    """The LLM response cache; ``replay`` re-runs a recorded search offline."""

    dir: str | None = None
    mode: Literal["off", "read_write", "replay", "record"] = "read_write"


class SearchConfig(_Spec):
    """A reward search (YAML or the CLI's options).

    Attributes:
        env: The task.
        llm: The model that writes the programs.
        samples: ``K`` programs per round, as independent requests.
        iterations: ``N`` rounds per restart.
        restarts: ``R`` independent searches.
        mode: How the program pays the agent: ``"replace"`` the env's reward, ``"add"`` to
            it, or ``"potential"``: policy-invariant shaping with the program as ``Phi``.
        repair_rounds: Times a rejected program is sent back with its errors.
        feedback_file: A file of human notes appended to every round's feedback.
        include_source: Show the env's source code too (Eureka) besides the state
            description (Text2Reward).
        failure_episodes: Evaluation episodes analysed for why they failed.
        seed: Seed of the LLM samples and the smoke-test states.
        baselines: Also train the sparse reward and the env's dense expert reward with the
            same settings, for the human normalized score.
    """

    env: str
    llm: LLMSettings
    samples: int = Field(default=4, gt=0)
    iterations: int = Field(default=3, gt=0)
    restarts: int = Field(default=1, gt=0)
    mode: Literal["replace", "add", "potential"] = "replace"
    train: TrainSettings = Field(default_factory=TrainSettings)
    budgets: Budgets = Field(default_factory=Budgets)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    repair_rounds: int = Field(default=1, ge=0)
    feedback_file: str | None = None
    include_source: bool = False
    failure_episodes: int = Field(default=5, ge=0)
    seed: int = 0
    baselines: bool = False


def load_search_config(data: Mapping[str, Any], where: str = "search") -> SearchConfig:
    """A validated :class:`SearchConfig`; errors name the field."""
    from rewardlab.wrappers.spec import _format_error

    try:
        return SearchConfig.model_validate(dict(data))
    except ValidationError as err:
        raise ValueError(f"invalid search config:\n{_format_error(err, where)}") from None


def system_prompt(context: RewardContext) -> str:
    """The system message: the role and the program contract."""
    return (
        "You are a reward engineer for reinforcement learning. You write reward functions "
        "that make an agent learn a task quickly and reliably, from the task's description "
        "and the state variables the reward may read.\n\n" + context.contract()
    )


def _initial_messages(context: RewardContext) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": system_prompt(context)},
        {
            "role": "user",
            "content": context.render() + "\n\nWrite a reward function for this task.",
        },
    ]


class _Stop(Exception):
    """A budget ran out."""


class _Search:
    def __init__(
        self, config: SearchConfig, out: Path, client: ChatClient, log: Callable[[str], None]
    ) -> None:
        self.config, self.out, self.client, self.log = config, out, client, log
        self.context = reward_context(
            config.env, config.train.env_kwargs, include_source=config.include_source
        )
        self.states = random_states(config.env, config.train.env_kwargs, seed=config.seed)
        self.started = time.perf_counter()
        self.env_steps = 0
        self.records: list[dict[str, Any]] = []
        self.human_feedback = Path(config.feedback_file).read_text() if config.feedback_file else ""

    # -- budgets --

    def _check_budgets(self) -> None:
        b = self.config.budgets
        if b.wall_s is not None and time.perf_counter() - self.started > b.wall_s:
            raise _Stop(f"wall-time budget of {b.wall_s} s spent")
        if b.env_steps is not None and self.env_steps >= b.env_steps:
            raise _Stop(f"env-step budget of {b.env_steps} spent")

    # -- one candidate --

    def _ask(self, messages: list[dict[str, str]], seed: int) -> tuple[str | None, str | None]:
        """One repair request: (text, error)."""
        try:
            completion = self.client.complete(messages, seed=seed)
        except BudgetExceeded:
            raise
        except LLMError as exc:
            return None, str(exc)
        return (completion.text, None) if completion.error is None else (None, completion.error)

    def _program(
        self, text: str | None, error: str | None, messages: list[dict[str, str]], seed: int
    ) -> tuple[str | None, SmokeReport | None, list[dict[str, Any]]]:
        """Extract, validate and smoke-test a response, with repair rounds."""
        attempts: list[dict[str, Any]] = []
        history = list(messages)
        for round_ in range(self.config.repair_rounds + 1):
            if round_ > 0:
                text, error = self._ask(history, seed + 1000 * round_)
            if text is None:
                attempts.append({"response": None, "error": error})
                return None, None, attempts
            code: str | None = None
            try:
                code = extract_code(text)
            except ProgramRejected as exc:
                report = SmokeReport(False, "extraction", exc.reason, [exc.message])
            else:
                report = smoke_test(code, self.context.shapes, self.states)
            attempts.append({"response": text, "code": code, "verdict": _report_json(report)})
            if report.passed:
                return code, report, attempts
            history += [
                {"role": "assistant", "content": text},
                {"role": "user", "content": report.message()},
            ]
        return None, report, attempts

    def _train(self, code: str, cand_dir: Path) -> dict[str, Any]:
        from stable_baselines3.common.base_class import BaseAlgorithm

        from rewardlab.agents.factory import algorithm_class
        from rewardlab.agents.train import train

        cfg = self.config
        model = {"kind": "program", "source": code}
        reward = parse_reward(
            {"shaping": model} if cfg.mode == "potential" else {"model": model, "mode": cfg.mode}
        )
        per_seed = []
        for seed in cfg.train.seeds:
            self._check_budgets()
            run_dir = cand_dir / f"seed_{seed}"
            try:
                result = train(_train_config(cfg, reward, seed), run_dir)
            except ProgramContained as exc:
                # The program passed the smoke test but failed in training (its exception
                # budget ran out): a failed candidate, with the reason, not a failed search.
                return {"fitness": None, "training_error": f"{exc.reason}: {exc.message}"}
            self.env_steps += result.steps
            success = [row["success_rate"] for row in result.evals]
            entry: dict[str, Any] = {
                "seed": seed,
                "success": success[-1] if success else 0.0,
                "success_curve": success,
                "components": result.components,
                "steps": result.steps,
            }
            if cfg.failure_episodes:
                cls: type[BaseAlgorithm] = algorithm_class(cfg.train.algo)
                agent = cls.load(run_dir / "model.zip", device="cpu")
                agent.set_random_seed(seed)

                def act(obs: Any, agent: BaseAlgorithm = agent) -> Any:
                    return agent.predict(obs, deterministic=False)[0]

                ends = analyze_failures(
                    cfg.env,
                    act,
                    [10_000_000 + seed * 1000 + j for j in range(cfg.failure_episodes)],
                    cfg.train.env_kwargs,
                )
                entry["failures"] = failure_summary(ends)
            per_seed.append(entry)
        fitness = sum(e["success"] for e in per_seed) / len(per_seed)
        return {"fitness": fitness, "per_seed": per_seed}

    def candidate(
        self,
        cid: str,
        text: str | None,
        error: str | None,
        messages: list[dict[str, str]],
        seed: int,
    ) -> dict[str, Any]:
        cand_dir = self.out / "candidates" / cid
        cand_dir.mkdir(parents=True, exist_ok=True)
        code, report, attempts = self._program(text, error, messages, seed)
        record: dict[str, Any] = {
            "id": cid,
            "attempts": attempts,
            "code": code,
            "sha256": hashlib.sha256(code.encode()).hexdigest() if code else None,
            "smoke": _report_json(report) if report else None,
            "fitness": None,
        }
        atomic_write(cand_dir / "messages.json", json.dumps(messages, indent=1))
        if code is not None:
            atomic_write(cand_dir / "program.py", code)
            record.update(self._train(code, cand_dir))
            if record["fitness"] is not None:
                first = record["per_seed"][0]
                record["reflection"] = reward_reflection(
                    first["components"], first["success_curve"]
                )
        atomic_write(cand_dir / "candidate.json", json.dumps(record, indent=1))
        fit = record["fitness"]
        self.log(f"{cid}: " + ("rejected" if fit is None else f"fitness {fit:.2f}"))
        return record

    def feedback(self, best: dict[str, Any]) -> str:
        parts = [best["reflection"]]
        failures = [s["failures"] for s in best["per_seed"] if "failures" in s]
        if failures:
            parts += ["", failures[0]]
        if self.human_feedback:
            parts += ["", "Feedback from the researcher:", self.human_feedback.strip()]
        parts += [
            "",
            "Write an improved reward function: keep what works, change what does not. "
            "Answer with the whole program in one ```python block.",
        ]
        return "\n".join(parts)

    def run(self) -> dict[str, Any]:
        cfg = self.config
        stop_reason = "done"
        rounds: list[dict[str, Any]] = []
        try:
            for r in range(cfg.restarts):
                base = _initial_messages(self.context)
                messages = list(base)
                for n in range(cfg.iterations):
                    self._check_budgets()
                    seed = cfg.seed + 1_000_000 * r + 10_000 * n
                    try:
                        completions = self.client.sample(messages, cfg.samples, seed=seed)
                        answers = [
                            (c.text if c.error is None else None, c.error) for c in completions
                        ]
                    except BudgetExceeded:
                        raise
                    except LLMError as exc:
                        answers = [(None, str(exc))] * cfg.samples
                    records = []
                    for k, (text, error) in enumerate(answers):
                        self._check_budgets()
                        cid = f"r{r}-i{n}-k{k}"
                        records.append(self.candidate(cid, text, error, messages, seed + 100 * k))
                    self.records += records
                    fit = [c for c in records if c["fitness"] is not None]
                    best = max(fit, key=lambda c: c["fitness"]) if fit else None  # first on ties
                    rounds.append(
                        {"restart": r, "iteration": n, "best": best["id"] if best else None}
                    )
                    if best is None:
                        errors = "\n".join(
                            "- "
                            + str(
                                c.get("training_error")
                                or c["attempts"][-1].get("error")
                                or c["smoke"]["problems"]
                            )
                            for c in records
                            if c["attempts"]
                        )
                        messages = base + [
                            {
                                "role": "user",
                                "content": "None of the programs passed the check:\n"
                                + errors
                                + "\nWrite a new reward function that avoids these problems.",
                            }
                        ]
                    else:
                        messages = base + [
                            {"role": "assistant", "content": f"```python\n{best['code']}```"},
                            {"role": "user", "content": self.feedback(best)},
                        ]
        except _Stop as stop:
            stop_reason = str(stop)
        except BudgetExceeded as exc:
            stop_reason = f"token budget spent: {exc}"
        fit = [c for c in self.records if c["fitness"] is not None]
        best = max(fit, key=lambda c: c["fitness"]) if fit else None
        usage = self.client.usage
        return {
            "env": cfg.env,
            "config": cfg.model_dump(mode="json"),
            "candidates": [
                {"id": c["id"], "sha256": c["sha256"], "fitness": c["fitness"]}
                for c in self.records
            ],
            "rounds": rounds,
            "best": None if best is None else {"id": best["id"], "fitness": best["fitness"]},
            "stop_reason": stop_reason,
            "usage": {
                "requests": usage.requests,
                "cached": usage.cached,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cost_usd": usage.cost_usd,
            },
            "env_steps": self.env_steps,
            "wall_s": time.perf_counter() - self.started,
        }


def _train_config(config: SearchConfig, reward: Any, seed: int) -> Any:
    """The short fitness run of the search (a ``TrainConfig``)."""
    from rewardlab.agents.train import TrainConfig

    t = config.train
    return TrainConfig(
        env=config.env,
        env_kwargs=t.env_kwargs,
        reward=reward,
        algo=t.algo,
        steps=t.steps,
        seed=seed,
        hyperparams=t.hyperparams,
        eval_freq=max(t.steps // t.evaluations, 1),
        eval_episodes=t.eval_episodes,
    )


def _report_json(report: SmokeReport | None) -> dict[str, Any] | None:
    if report is None:
        return None
    return {
        "passed": report.passed,
        "stage": report.stage,
        "reason": report.reason,
        "problems": report.problems,
        "warnings": report.warnings,
        "latency_ms": report.latency_ms,
        "reward_stats": report.reward_stats,
        "components": report.components,
    }


def human_normalized_score(method: float, sparse: float, human: float) -> float:
    """Eureka's ``(method - sparse) / |human - sparse|``, clipped to ``[0, 3]``; nan when the
    human (dense expert) reward does no better or worse than the sparse one."""
    gap = abs(human - sparse)
    if gap == 0:
        return math.nan
    return min(max((method - sparse) / gap, 0.0), 3.0)


def run_search(
    config: SearchConfig,
    out_dir: str | Path,
    *,
    client: ChatClient | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Run the search, write ``search.json`` and ``best_program.py``; return the summary.

    Raises:
        ValueError: For an unknown env, or an output folder holding another search.
    """
    out = Path(out_dir)
    if (out / "search.json").exists():
        raise ValueError(f"{out} already holds a search; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    if client is None:
        llm = config.llm
        client = ChatClient(
            LLMConfig(
                model=llm.model,
                base_url=llm.base_url or default_base_url(),
                api_key_env=llm.api_key_env,
                temperature=llm.temperature,
                max_tokens=llm.max_tokens,
                timeout_s=llm.timeout_s,
                max_retries=llm.max_retries,
                concurrency=llm.concurrency,
                price_per_1k_prompt=llm.price_per_1k_prompt,
                price_per_1k_completion=llm.price_per_1k_completion,
            ),
            cache_dir=config.cache.dir or str(out / "llm_cache"),
            cache_mode=config.cache.mode,
            token_budget=config.budgets.tokens,
        )
    search = _Search(config, out, client, log)
    summary = search.run()
    if config.baselines and summary["best"] is not None:
        summary["baselines"] = _baselines(config, out / "baselines", summary["best"]["fitness"])
    atomic_write(out / "search.json", json.dumps(summary, indent=1))
    best = summary["best"]
    if best is not None:
        code = next(c["code"] for c in search.records if c["id"] == best["id"])
        atomic_write(out / "best_program.py", code)
    return summary


def _baselines(config: SearchConfig, out: Path, method: float) -> dict[str, Any]:
    """Sparse and dense-expert rewards trained like the candidates; the normalized score."""
    from rewardlab.agents.train import train
    from rewardlab.experiments.reward_eval import _reward_types

    _, dense = _reward_types(config.env, config.train.env_kwargs)
    scores: dict[str, float] = {}
    for name, reward in (("sparse", "sparse"), ("human", dense)):
        runs = []
        for seed in config.train.seeds:
            tc = _train_config(config, parse_reward(reward), seed)
            result = train(tc, out / name / f"seed_{seed}")
            runs.append(result.evals[-1]["success_rate"] if result.evals else 0.0)
        scores[name] = sum(runs) / len(runs)
    return {
        **scores,
        "method": method,
        "human_normalized_score": human_normalized_score(method, scores["sparse"], scores["human"]),
    }
