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
choices and every candidate in a line (check, training or ``duplicate_of``, fitness, why it
has none); ``report.md``, written last, tabulates them with the settings and the baselines and
says what worked (:mod:`rewardlab.experiments.llm_reward.report`). The log gets each
candidate as it ends, with ``[k/N, ETA ...]`` and the best so far, and each baseline run.
With the LLM cache in ``replay`` mode a recorded search re-runs offline and makes the same
choices (training is seeded).

Budgets on tokens, wall time and env steps stop the search between candidates; the reason is
recorded. Nothing here crashes on a bad response: an unreachable server, a malformed answer
or a program without code become a candidate verdict. A round in which *every* request
failed stops the search with an error: the server is down (or refuses the prompt), and asking
again would only make more candidates without an answer. Work the server was given but whose
answer was never used (a request that timed out or was retried) is kept with each attempt
(``abandoned``), counted in the usage and the token budget, and shown in the report and the
last log line. Ctrl-C stops the search as cleanly as a budget does, but as an error: the
answers already received stay in the LLM cache and the records, and ``stop_reason`` says
how to go on. Nor on a hostile program: whatever
checking, training or reflecting on one candidate raises (a forged answer from its sandbox
worker, an exception nothing expected) is that candidate's failure, recorded with its reason,
and the search goes on. Only what is no candidate's doing stops it: a refused API key, a
replay off its recording, a spent budget.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError

from rewardlab.experiments.files import atomic_write
from rewardlab.experiments.llm_reward.checks import SmokeReport, random_states, smoke_test
from rewardlab.experiments.llm_reward.context import RewardContext, reward_context
from rewardlab.experiments.llm_reward.feedback import (
    analyze_failures,
    failure_summary,
    reward_reflection,
)
from rewardlab.experiments.llm_reward.report import (
    REPORT_FILE,
    counted,
    search_report,
    usage_text,
)
from rewardlab.llm import (
    AuthenticationError,
    BudgetExceeded,
    ChatClient,
    Completion,
    LLMConfig,
    LLMError,
    ReplayMiss,
    SampleInterrupted,
    default_base_url,
)
from rewardlab.progress import Progress
from rewardlab.reward_models.program_reward import corrections
from rewardlab.reward_spec import format_validation_error, parse_reward
from rewardlab.sandbox import ProgramRejected, extract_code
from rewardlab.wrappers.timing import RewardBudget

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
    seeds: list[NonNegativeInt] = Field(default_factory=lambda: [0], min_length=1)
    eval_episodes: int = Field(default=10, gt=0)
    evaluations: int = Field(default=5, gt=0)
    hyperparams: dict[str, Any] = Field(default_factory=dict)
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    reward_budget: RewardBudget = Field(default_factory=RewardBudget)


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
        base_reward: The env's ``reward_type`` the program is added to or shapes
            (``"sparse"``: the task reward; the prompt says which).
        repair_rounds: Times a rejected program is sent back with its errors.
        feedback_file: A file of human notes appended to every round's feedback.
        include_source: Show the env's source code too (Eureka) besides the state
            description (Text2Reward).
        failure_episodes: Evaluation episodes analysed for why they failed.
        seed: Seed of the LLM samples and the smoke-test states.
        baselines: After the search, retrain the best program on held-out seeds (its search
            fitness is the best of every candidate on the same seeds, so optimistic) and train
            the sparse and the env's dense expert reward there with the same settings, for
            the human normalized score.
    """

    env: str
    llm: LLMSettings
    samples: int = Field(default=4, gt=0)
    iterations: int = Field(default=3, gt=0)
    restarts: int = Field(default=1, gt=0)
    mode: Literal["replace", "add", "potential"] = "replace"
    base_reward: str = "sparse"
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
    try:
        return SearchConfig.model_validate(dict(data))
    except ValidationError as err:
        raise ValueError(f"invalid search config: {format_validation_error(err, where)}") from None


class _Answer(NamedTuple):
    """One sampled answer: its text, or why there is none; ``cut``: the server stopped it at
    the token limit (``finish_reason: "length"``); ``abandoned``: the attempts of its request
    abandoned before it (:class:`~rewardlab.llm.Abandoned`, as JSON)."""

    text: str | None
    error: str | None
    cut: bool = False
    abandoned: tuple[dict[str, Any], ...] = ()

    @classmethod
    def of(cls, completion: Completion) -> _Answer:
        return cls(
            completion.text if completion.error is None else None,
            completion.error,
            completion.finish_reason == "length",
            tuple(asdict(a) for a in completion.abandoned),
        )

    def attempt(self, **verdict: Any) -> dict[str, Any]:
        """This answer as a candidate's attempt: the response or the error, the ``verdict``
        fields, and the abandoned attempts of its request if there were any."""
        entry = {"response": self.text, **verdict}
        if self.text is None:
            entry["error"] = self.error
        if self.abandoned:
            entry["abandoned"] = list(self.abandoned)
        return entry


CUT_NOTE = (
    "Your answer was cut off at the token limit before it ended. Write a shorter answer: "
    "only the function, with brief comments."
)
"""Told to the LLM when a rejected answer had been cut at ``max_tokens``."""

# Characters of a rejected response sent back in a repair round (see _echo).
_ECHO_CHARS = 50_000
_MODES = {
    "replace": "The agent receives your reward and nothing else.",
    "add": (
        "The agent receives your reward plus the environment's own {base} reward, which pays "
        "only for completing the task: add the guidance the {base} reward lacks."
    ),
    "potential": (
        "Your function is used as a potential Phi(s), not paid directly: after each step the "
        "agent receives the environment's own {base} reward (paid only for completing the "
        "task) plus gamma * Phi(s') - Phi(s), with gamma the agent's discount and Phi = 0 "
        "once an episode has ended. Return higher values for states closer to success; "
        "what a state is worth by itself cancels out, so it cannot be collected by waiting."
    ),
}


def system_prompt(
    context: RewardContext, mode: str = "replace", base_reward: str = "sparse"
) -> str:
    """The system message: the role, the program contract and how the reward is paid."""
    return (
        "You are a reward engineer for reinforcement learning. You write reward functions "
        "that make an agent learn a task quickly and reliably, from the task's description "
        "and the state variables the reward may read.\n\n"
        + context.contract()
        + "\n"
        + _MODES[mode].format(base=base_reward)
    )


class _Stop(Exception):
    """A budget ran out."""


class _Fatal(Exception):
    """The search cannot go on: the server refused the key, or a replay left its recording."""


class _Search:
    def __init__(
        self, config: SearchConfig, out: Path, client: ChatClient, log: Callable[[str], None]
    ) -> None:
        self.config, self.out, self.client, self.log = config, out, client, log
        self.context = reward_context(
            config.env, config.train.env_kwargs, include_source=config.include_source
        )
        self.states = random_states(config.env, config.train.env_kwargs, seed=config.seed)
        from rewardlab.agents.factory import load_hyperparams

        # The check also calls each program as the fitness runs will: one row per env.
        self.n_envs = int(
            load_hyperparams(config.train.algo, config.env, config.train.hyperparams)["n_envs"]
        )
        self.started = time.perf_counter()
        # [k/N, ETA] of the candidates; N counts every answer asked for, so a search that
        # stops early ends below it.
        self.progress = Progress(config.restarts * config.iterations * config.samples)
        self.best: dict[str, Any] | None = None  # the fittest so far (first on ties)
        self.env_steps = 0
        self._trained: dict[str, dict[str, Any]] = {}  # by program sha256: trained once
        self.records: list[dict[str, Any]] = []
        self.rounds: list[dict[str, Any]] = []
        # Set once the token budget is spent: no more requests, but the answers already paid
        # for are still checked and trained (wall time and env steps permitting).
        self.tokens_spent: str | None = None
        self.in_flight = 0  # requests abandoned in flight by Ctrl-C
        self.human_feedback = Path(config.feedback_file).read_text() if config.feedback_file else ""

    # -- budgets --

    def _check_budgets(self) -> None:
        b = self.config.budgets
        if b.wall_s is not None and time.perf_counter() - self.started > b.wall_s:
            raise _Stop(f"wall-time budget of {b.wall_s} s spent")
        if b.env_steps is not None and self.env_steps >= b.env_steps:
            raise _Stop(f"env-step budget of {b.env_steps} spent")

    # -- one candidate --

    def _ask(self, messages: list[dict[str, str]], seed: int) -> _Answer:
        """One repair request (Ctrl-C while waiting for it is raised on: the candidate
        records it)."""
        try:
            return self._sample(messages, seed, k=1)[0]
        except SampleInterrupted as exc:
            self.in_flight = exc.in_flight
            raise
        except _Stop as stop:
            # This candidate ends without its repair; the round's other answers are still
            # checked, and the search stops before asking for another round.
            self.tokens_spent = str(stop)
            return _Answer(None, self.tokens_spent)

    def _sample(
        self, messages: list[dict[str, str]], seed: int, k: int | None = None
    ) -> list[_Answer]:
        """``k`` answers (the round's ``K`` by default)."""
        k = k or self.config.samples
        if self.tokens_spent is not None:
            raise _Stop(self.tokens_spent)
        try:
            completions = self.client.sample(messages, k, seed=seed)
        except AuthenticationError as exc:
            raise _Fatal(str(exc)) from exc
        except ReplayMiss as exc:
            raise _Fatal(
                f"{exc} From the command line: run the same search as recorded (same options and "
                "config), or without --replay to ask the server for what is missing"
            ) from exc
        except BudgetExceeded as exc:
            raise _Stop(f"token budget spent: {exc}") from exc
        except LLMError as exc:  # the whole batch failed the same way
            return [_Answer(None, str(exc))] * k
        return [_Answer.of(c) for c in completions]

    def _program(
        self,
        answer: _Answer,
        messages: list[dict[str, str]],
        seed: int,
        attempts: list[dict[str, Any]],
    ) -> tuple[str | None, SmokeReport | None]:
        """Extract, validate and smoke-test a response, with repair rounds; each attempt is
        appended to ``attempts`` as it ends. Anything raised but a fatal error or Ctrl-C fails
        this candidate's check, not the search (``attempts`` keeps the attempts that ended
        before)."""
        history = list(messages)
        report: SmokeReport | None = None
        try:
            for round_ in range(self.config.repair_rounds + 1):
                if round_ > 0:
                    answer = self._ask(history, seed + 1000 * round_)
                text, cut = answer.text, answer.cut
                if text is None:
                    attempts.append(answer.attempt())
                    return None, report
                code: str | None = None
                try:
                    code = extract_code(text)
                except ProgramRejected as exc:
                    report = SmokeReport(False, "extraction", exc.reason, [exc.message])
                else:
                    report = smoke_test(code, self.context.shapes, self.states, n_envs=self.n_envs)
                attempts.append(answer.attempt(code=code, verdict=_report_json(report)))
                if report.passed:
                    return code, report
                message = report.message()
                if cut:  # the server stopped it at max_tokens: say so, not only what broke
                    attempts[-1]["cut"] = True
                    message += "\n\n" + CUT_NOTE
                history += [
                    {"role": "assistant", "content": _echo(text)},
                    {"role": "user", "content": message},
                ]
        except _Fatal:
            raise
        except Exception as exc:  # noqa: BLE001  (one candidate's failure, recorded)
            problem = f"the check itself failed on this program: {_describe(exc)}"
            return None, SmokeReport(False, "checks", "check_error", [problem])
        return None, report

    def _train(self, code: str, cand_dir: Path) -> dict[str, Any]:
        """Fitness runs on every training seed (budgets are checked before a candidate, so
        a candidate that starts training finishes all its seeds)."""
        from rewardlab.agents.train import train

        cfg = self.config
        per_seed: list[dict[str, Any]] = []
        for seed in cfg.train.seeds:
            run_dir = cand_dir / f"seed_{seed}"
            try:
                result = train(_train_config(cfg, _program_reward(cfg, code), seed), run_dir)
            except Exception as exc:  # noqa: BLE001  (one candidate's failure, recorded)
                # The program passed the smoke test but failed in training (its exception
                # budget ran out, say, or anything else went wrong with it): a failed
                # candidate with the reason, not a failed search. The steps it took still
                # count against the budget.
                self.env_steps += _steps_taken(run_dir)
                return {"fitness": None, "per_seed": per_seed, "training_error": _describe(exc)}
            self.env_steps += result.steps
            success = [row["success_rate"] for row in result.evals]
            entry: dict[str, Any] = {
                "seed": seed,
                "success": success[-1] if success else 0.0,
                "success_curve": success,
                "components": result.components,
                "diagnostics": result.diagnostics,
                "steps": result.steps,
                "warnings": result.warnings,  # for the researcher, not in the LLM's feedback
            }
            if cfg.failure_episodes:
                try:
                    entry["failures"] = self._failures(run_dir, seed)
                except Exception as exc:  # noqa: BLE001  (feedback only: the fitness stands)
                    entry["failures_error"] = _describe(exc)
            per_seed.append(entry)
        fitness = sum(e["success"] for e in per_seed) / len(per_seed)
        return {"fitness": fitness, "per_seed": per_seed}

    def _failures(self, run_dir: Path, seed: int) -> str:
        """How the trained policy's failed episodes ended (Auto MC-Reward's analysis)."""
        from rewardlab.agents.factory import algorithm_class

        cfg = self.config
        agent = algorithm_class(cfg.train.algo).load(run_dir / "model.zip", device="cpu")
        agent.set_random_seed(seed)
        ends = analyze_failures(
            cfg.env,
            lambda obs: agent.predict(obs, deterministic=False)[0],
            [10_000_000 + seed * 1000 + j for j in range(cfg.failure_episodes)],
            cfg.train.env_kwargs,
        )
        return failure_summary(ends)

    def candidate(
        self, cid: str, answer: _Answer, messages: list[dict[str, str]], seed: int
    ) -> dict[str, Any]:
        """Check, repair and train one sample; its record is written whatever happens."""
        cand_dir = self.out / "candidates" / cid
        cand_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(cand_dir / "messages.json", json.dumps(messages, indent=1))
        record = _new_record(cid)
        try:
            code, report = self._program(answer, messages, seed, record["attempts"])
            record.update(code=code, smoke=_report_json(report))
            if code is not None:
                sha = record["sha256"] = hashlib.sha256(code.encode()).hexdigest()
                atomic_write(cand_dir / "program.py", code)
                same = self._trained.get(sha)
                if same is not None:  # the same program again: its results, not a retrain
                    found = {k: same[k] for k in _TRAINING_KEYS if k in same}
                    record.update(found, duplicate_of=same["id"])
                else:
                    record.update(self._train(code, cand_dir))
                    if record["fitness"] is not None:
                        self._reflect(record)
                    self._trained[sha] = record
        except _Fatal as exc:
            record["error"] = str(exc)
            raise
        except BaseException as exc:  # an interruption: recorded here, raised on
            record["error"] = _interruption(exc)
            raise
        finally:
            self._keep(record)
        fitness = record["fitness"]
        if fitness is not None and (self.best is None or fitness > self.best["fitness"]):
            self.best = record
        best = (
            "no program has a fitness yet"
            if self.best is None
            else f"best so far {self.best['id']} ({self.best['fitness']:.2f})"
        )
        outcome = " ".join(_outcome(record).split())  # one line, whatever the program raised
        self.log(f"{self.progress.tick()} {cid}: {outcome}; {best}")
        return record

    def _reflect(self, record: dict[str, Any]) -> None:
        """Add a trained candidate's ``reflection`` and ``feedback``: what the next round is
        told about it should it be the best so far. Where they cannot be made (its statistics
        break the reflection, say), it is a failed candidate with the reason."""
        try:
            first = record["per_seed"][0]
            reflection = reward_reflection(first["components"], first["success_curve"])
            notes = "\n".join(_guard_notes(first.get("diagnostics", {})))
            failures = [s["failures"] for s in record["per_seed"] if "failures" in s]
        except Exception as exc:  # noqa: BLE001  (one candidate's failure, recorded)
            record.update(fitness=None, reflection_error=_describe(exc))
            return
        sections = (reflection, notes, *failures[:1])
        record.update(reflection=reflection, feedback="\n\n".join(p for p in sections if p))

    def _keep(self, record: dict[str, Any]) -> None:
        """Write a candidate's ``candidate.json`` and add it to :attr:`records`."""
        cand_dir = self.out / "candidates" / record["id"]
        cand_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(cand_dir / "candidate.json", json.dumps(record, indent=1))
        self.records.append(record)

    # -- feedback --

    def _next_messages(
        self,
        base: list[dict[str, str]],
        best: dict[str, Any] | None,
        failed: list[dict[str, Any]],
    ) -> list[dict[str, str]]:
        """The next round's messages: the best program of the restart so far with its
        feedback, if any, and what went wrong with the ``failed`` programs of the last round."""
        if best is None:
            parts = ["None of the programs worked:", _problem_list(failed)]
            ask = "Write a new reward function that avoids these problems."
        else:
            parts = [best["feedback"]]
            if failed:
                parts += ["", "The programs of the last round did not work:", _problem_list(failed)]
            ask = (
                "Write an improved reward function: keep what works, change what does not. "
                "Answer with the whole program in one ```python block."
            )
        if self.human_feedback:
            parts += ["", "Feedback from the researcher:", self.human_feedback.strip()]
        prompt = {"role": "user", "content": "\n".join([*parts, "", ask])}
        if best is None:
            return [*base, prompt]
        return [*base, {"role": "assistant", "content": f"```python\n{best['code']}```"}, prompt]

    # -- the loop --

    def _round(
        self, r: int, n: int, messages: list[dict[str, str]]
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Ask for a round's ``K`` programs; check, repair and train each; returns their
        records and the fittest (first on ties), if any. A stop keeps the round in
        :attr:`rounds` and the answers it did not get to as skipped candidates."""
        seed = self.config.seed + 1_000_000 * r + 10_000 * n
        model, samples = self.client.config.model, self.config.samples
        ids = [f"r{r}-i{n}-k{k}" for k in range(samples)]
        stopped: str | None = None
        self.log(f"r{r}-i{n}: asking {model} for {samples} programs")
        try:
            answers = self._sample(messages, seed)
        except SampleInterrupted as exc:
            # Ctrl-C while the round's requests were out: the answers that had arrived are
            # kept, unchecked; the requests in flight are abandoned.
            self.in_flight = exc.in_flight
            stopped = f"{_interruption(exc)} while asking for this round's programs"
            for cid, completion in zip(ids, exc.completions, strict=True):
                if completion is not None:
                    attempts = [_Answer.of(completion).attempt()]
                    self._keep({**_new_record(cid), "attempts": attempts, "skipped": stopped})
            self.rounds.append({"restart": r, "iteration": n, "best": None, "stopped": stopped})
            raise
        records: list[dict[str, Any]] = []
        try:
            for k, answer in enumerate(answers):
                self._check_budgets()
                records.append(self.candidate(ids[k], answer, messages, seed + 100 * k))
            if all(answer.text is None for answer in answers):
                raise _Fatal(self._server_failed(f"r{r}-i{n}", answers))
        except BaseException as exc:
            stopped = str(exc) if isinstance(exc, (_Stop, _Fatal)) else _interruption(exc)
            written = {c["id"] for c in self.records}
            for cid, answer in zip(ids, answers, strict=True):
                if cid not in written:  # kept unchecked: its answer was paid for
                    attempts = [answer.attempt()]
                    self._keep({**_new_record(cid), "attempts": attempts, "skipped": stopped})
            raise
        finally:
            fit = [c for c in records if c["fitness"] is not None]
            best = max(fit, key=lambda c: c["fitness"]) if fit else None  # first on ties
            entry = {"restart": r, "iteration": n, "best": best["id"] if best else None}
            self.rounds.append(entry if stopped is None else {**entry, "stopped": stopped})
        return records, best

    def _server_failed(self, round_id: str, answers: list[_Answer]) -> str:
        """Why the search stops after a round in which every request failed."""
        usage = self.client.usage
        answered = usage.requests + usage.cached
        first = answers[0].error
        if answered == 0:
            # Not one answer: a wrong base_url or a broken server, not a finished search.
            return f"the LLM server answered none of the requests; the first error: {first}"
        return (
            f"the LLM server failed every request of {round_id} "
            f"({counted(len(answers), 'request')}), after {counted(answered, 'answer')} "
            "before: it has stopped, or is overloaded or refusing this prompt; the first "
            f"error: {first}. Once it answers again, {self.resume_hint()}"
        )

    def resume_hint(self) -> str:
        """How to go on from where this search stopped, reusing the answers it received."""
        cache = self.client.cache
        if cache is None:
            return "run the search again (the LLM cache was off: nothing received is kept)"
        where = cache.directory
        if self.client.cache_mode == "replay":
            return f"replay it again with --cache-dir {where} --replay"
        return (
            f"run the same search with a new --out and --cache-dir {where}: the answers it "
            "recorded are not asked again (add --replay to re-run only what was recorded, "
            "offline)"
        )

    def interrupted(self, exc: BaseException) -> str:
        """The ``error`` of a search stopped by Ctrl-C: where, what was kept, how to go on."""
        n = self.in_flight
        lost = (
            f"; {counted(n, 'request')} in flight {'was' if n == 1 else 'were'} abandoned (the "
            "server may still compute " + ("it)" if n == 1 else "them)")
            if n
            else ""
        )
        return (
            f"{_interruption(exc)}{lost}; the answers received are kept: to go on, "
            f"{self.resume_hint()}"
        )

    def run(self) -> dict[str, Any]:
        """Search until done or stopped; the summary (what ``search.json`` holds)."""
        cfg = self.config
        stop_reason, error = "done", None
        try:
            system = system_prompt(self.context, cfg.mode, cfg.base_reward)
            task = self.context.render() + "\n\nWrite a reward function for this task."
            base = [{"role": "system", "content": system}, {"role": "user", "content": task}]
            for r in range(cfg.restarts):
                messages = list(base)
                restart_best: dict[str, Any] | None = None
                for n in range(cfg.iterations):
                    self._check_budgets()
                    records, best = self._round(r, n, messages)
                    if best is not None and (
                        restart_best is None or best["fitness"] >= restart_best["fitness"]
                    ):
                        restart_best = best
                    failed = records if best is None else []
                    messages = self._next_messages(base, restart_best, failed)
        except _Stop as stop:
            stop_reason = str(stop)
        except _Fatal as exc:
            stop_reason, error = "error", str(exc)
        return self.summary(stop_reason, error)

    def summary(self, stop_reason: str, error: str | None) -> dict[str, Any]:
        """What the search found so far, as ``search.json`` holds it."""
        fit = [c for c in self.records if c["fitness"] is not None]
        best = max(fit, key=lambda c: c["fitness"]) if fit else None
        return {
            "env": self.config.env,
            "config": self.config.model_dump(mode="json"),
            "llm": {"model": self.client.config.model, "base_url": self.client.config.base_url},
            "candidates": [_row(c) for c in self.records],
            "rounds": self.rounds,
            "best": None if best is None else {"id": best["id"], "fitness": best["fitness"]},
            "stop_reason": stop_reason,
            "error": error,
            "usage": asdict(self.client.usage),
            "env_steps": self.env_steps,
            "wall_s": time.perf_counter() - self.started,
        }


def _new_record(cid: str) -> dict[str, Any]:
    """A candidate's record before its check: no code, verdict or fitness yet."""
    return {"id": cid, "attempts": [], **dict.fromkeys(("code", "sha256", "smoke", "fitness"))}


def _echo(response: str) -> str:
    """A response as the repair round shows it back to the LLM: whole, unless it is longer
    than any honest answer (a program is at most 20,000 characters), when only its start is
    sent again rather than paying for it twice."""
    if len(response) <= _ECHO_CHARS:
        return response
    return (
        f"{response[:_ECHO_CHARS]}\n[... {len(response) - _ECHO_CHARS} more characters not shown]"
    )


def _interruption(exc: BaseException) -> str:
    """What stopped the search, after "interrupted": Ctrl-C, or an exception nothing expected."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    return f"interrupted by {_describe(exc)}"


def _describe(exc: BaseException) -> str:
    """An exception as the LLM and the researcher should read it: a contained program's own
    reason and message, or ``<Type>: <message>`` (at most 2000 characters either way)."""
    reason, message = getattr(exc, "reason", None), getattr(exc, "message", None)
    if isinstance(reason, str) and isinstance(message, str):
        text = f"{reason}: {message}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 2000 else text[:1997] + "..."


def _steps_taken(run_dir: Path) -> int:
    """Env steps a failed run got through (``train``'s ``failed.json``; 0 when it failed
    before learning started)."""
    from rewardlab.agents.train import FAILED_FILE

    try:
        return int(json.loads((run_dir / FAILED_FILE).read_text())["steps"])
    except (OSError, KeyError, TypeError, ValueError):
        return 0


def _problems(record: Mapping[str, Any], for_model: bool = False) -> str:
    """Why a candidate has no fitness, in one line.

    A program that was rejected stays rejected when the request for its repair then failed:
    the user is told both, the LLM only why its program was rejected (a transport error is
    nothing it can act on, and ``for_model`` keeps it out)."""
    if record.get("error"):
        return f"the search stopped here: {record['error']}"
    if record.get("training_error"):
        return f"passed the check, then failed in training: {record['training_error']}"
    if record.get("reflection_error"):
        return f"trained, then its statistics broke the reflection: {record['reflection_error']}"
    if record.get("skipped"):
        return f"not checked ({record['skipped']})"
    attempts = record.get("attempts") or []
    failed = attempts[-1].get("error") if attempts else None
    smoke = record.get("smoke")
    if smoke and not smoke.get("passed"):
        text = f"rejected ({smoke['stage']}: {smoke['reason']}): " + "; ".join(smoke["problems"])
        if any(a.get("cut") for a in attempts):
            text += (
                " (the answer was cut off at the token limit)"
                if for_model
                else " (the answer was cut at the server's token limit: raise --max-tokens, "
                "llm.max_tokens in a config)"
            )
        if failed and not for_model:
            text += f" (then the request for its repair failed: {failed})"
        return text
    if failed:
        return (
            "no answer: the request to the server failed" if for_model else f"no answer: {failed}"
        )
    return "no program"


_TRAINING_KEYS = (
    "fitness",
    "per_seed",
    "training_error",
    "reflection_error",
    "reflection",
    "feedback",
)
"""What a candidate's training adds to its record (a duplicate program copies them)."""


def _outcome(record: Mapping[str, Any]) -> str:
    """A candidate in one line: its fitness (and repairs), or why it has none."""
    if record["fitness"] is None:
        return _problems(record)
    repairs = len(record["attempts"]) - 1
    same = f" (the program of {record['duplicate_of']})" if record.get("duplicate_of") else ""
    return f"fitness {record['fitness']:.2f}{same}" + (
        f" (after {repairs} repair{'s' * (repairs > 1)})" if repairs else ""
    )


def _check_status(record: Mapping[str, Any]) -> str:
    """How a candidate's check ended: ``passed`` (with its repairs), ``rejected (stage:
    reason)``, ``no answer``, ``not checked`` (the search stopped before it) or ``stopped``
    (the search stopped during it: an error or an interruption, in ``error``)."""
    if record.get("skipped"):
        return "not checked"
    smoke = record.get("smoke")
    if smoke is None:
        return "stopped" if record.get("error") else "no answer"
    if not smoke["passed"]:
        return f"rejected ({smoke['stage']}: {smoke['reason']})"
    repairs = len(record["attempts"]) - 1
    return f"passed after {repairs} repair{'s' * (repairs > 1)}" if repairs > 0 else "passed"


def _training_status(record: Mapping[str, Any]) -> str:
    """Whether a candidate was trained: ``trained``, ``duplicate`` (took the results of the
    same program, see ``duplicate_of``), ``failed`` (training or the reflection on it
    raised), ``stopped`` (the search stopped during its training) or ``not trained``."""
    if record.get("duplicate_of"):
        return "duplicate"
    if record.get("training_error") or record.get("reflection_error"):
        return "failed"
    if record["fitness"] is None and record.get("error") and record.get("smoke"):
        return "stopped"
    return "trained" if record.get("per_seed") else "not trained"


def _row(record: Mapping[str, Any]) -> dict[str, Any]:
    """A candidate as ``search.json`` lists it (and ``report.md`` tabulates it)."""
    restart, iteration, _ = (int(part[1:]) for part in record["id"].split("-"))
    return {
        "id": record["id"],
        "restart": restart,
        "iteration": iteration,
        "sha256": record["sha256"],
        "check": _check_status(record),
        "training": _training_status(record),
        "duplicate_of": record.get("duplicate_of"),
        "fitness": record["fitness"],
        "success_per_seed": [entry["success"] for entry in record.get("per_seed") or ()],
        "outcome": _outcome(record),
    }


def _problem_list(records: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"- program {i + 1}: {_problems(c, for_model=True)}" for i, c in enumerate(records)
    )


def _guard_notes(diagnostics: Mapping[str, Any]) -> list[str]:
    """What the sandbox had to correct during training, for the LLM."""
    texts = {
        "nonfinite": "- compute_reward returned {} NaN or infinite rewards during training; "
        "they were replaced by 0.",
        "clipped": "- {} rewards were outside the allowed range and were clipped: keep the "
        "reward's scale moderate.",
        "failed_calls": "- {} calls of compute_reward failed and paid 0 (the last: {}).",
    }
    notes = [
        texts[name].format(n, report.get("last_error"))
        for report in diagnostics.values()
        for name, n in corrections(report).items()
    ]
    return ["Problems the sandbox corrected during training:", *notes] if notes else []


def _program_reward(config: SearchConfig, code: str) -> Any:
    """The reward spec a program trains with: replacing, added to or shaping the base reward."""
    model = {"kind": "program", "source": code}
    if config.mode == "potential":
        return parse_reward({"reward_type": config.base_reward, "shaping": model})
    return parse_reward({"reward_type": config.base_reward, "model": model, "mode": config.mode})


def _train_config(config: SearchConfig, reward: Any, seed: int, **overrides: Any) -> Any:
    """The short fitness run of the search (a ``TrainConfig``; ``overrides`` of its fields)."""
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
        reward_budget=t.reward_budget,
        **overrides,
    )


def _report_json(report: SmokeReport | None) -> dict[str, Any] | None:
    """A check's verdict as a candidate records it (the cost per row, not per call)."""
    skip = ("train_ms_per_call", "hardening")
    return None if report is None else {k: v for k, v in asdict(report).items() if k not in skip}


def run_search(
    config: SearchConfig,
    out_dir: str | Path,
    *,
    client: ChatClient | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Run the search; write ``search.json``, ``best_program.py`` and, last, ``report.md``;
    return the summary.

    ``log`` hears each round's request, each candidate's outcome with ``[k/N, ETA ...]`` and
    the best so far, and each baseline run as it finishes, and last the LLM usage with the
    abandoned work. A search that cannot go on (the server refused the API key or failed
    every request of a round; in replay mode, a request the recording does not hold) stops
    with ``stop_reason == "error"`` and the message in ``"error"``; everything found until
    then is kept and written.

    Ctrl-C (KeyboardInterrupt) during the requests, the checks, the training or the
    baselines ends the search there and is *returned*, not raised: ``stop_reason ==
    "interrupted"`` (for the baselines: their ``interrupted`` entry), and ``"error"`` says
    what was kept and how to go on; a caller looping over searches should check it. The
    answers received are in the LLM cache and the records, and the files are written. Any
    other exception nothing expected is recorded likewise, the files are written, and it is
    raised on.

    Raises:
        ValueError: For an unknown env, a training setting the run would reject (checked
            before any request), or an output folder holding another search's files.
    """
    from rewardlab.agents.train import check_config

    out = Path(out_dir)
    if (out / "search.json").exists() or any((out / "candidates").glob("*")):
        raise ValueError(
            f"{out} already holds a search (search.json or candidates/); choose another "
            "--out. To re-run a recorded search offline, point --cache-dir at its "
            "llm_cache folder and add --replay"
        )
    # Everything a fitness run needs but the program (env, algorithm, hyperparameters, base
    # reward), checked before any request is paid for.
    check_config(_train_config(config, parse_reward({"reward_type": config.base_reward}), 0))
    if config.feedback_file is not None and not Path(config.feedback_file).is_file():
        raise ValueError(f"feedback file {config.feedback_file} does not exist")
    out.mkdir(parents=True, exist_ok=True)
    if client is None:
        base_url = config.llm.base_url or default_base_url()
        client = ChatClient(
            LLMConfig(**{**config.llm.model_dump(), "base_url": base_url}),
            cache_dir=config.cache.dir or str(out / "llm_cache"),
            cache_mode=config.cache.mode,
            token_budget=config.budgets.tokens,
        )
    search = _Search(config, out, client, log)
    try:
        summary = search.run()
    except KeyboardInterrupt as exc:
        summary = search.summary("interrupted", search.interrupted(exc))
    except BaseException as exc:
        summary = search.summary("interrupted", _interruption(exc))
        _write_results(out, summary, search.records)
        raise
    best = _write_results(out, summary, search.records, report=False)
    if config.baselines and best is not None and summary["stop_reason"] != "interrupted":
        summary["baselines"] = {}
        try:
            _baselines(config, out / "baselines", best, summary["baselines"], log)
        except KeyboardInterrupt as exc:
            summary["baselines"]["interrupted"] = "Ctrl-C"
            summary["error"] = (
                f"the baselines were {_interruption(exc)}; the search had finished and is "
                f"kept (best {best['id']})"
            )
        except BaseException as exc:
            summary["baselines"]["interrupted"] = _describe(exc)
            _write_results(out, summary, search.records)
            raise
    _write_results(out, summary, search.records)
    log(f"LLM: {usage_text(summary['usage'])}")
    return summary


def _write_results(
    out: Path,
    summary: dict[str, Any],
    records: list[dict[str, Any]],
    report: bool = True,
) -> dict[str, Any] | None:
    """Write ``best_program.py``, ``search.json`` and (``report``) ``report.md``, in that
    order, each atomically; returns the best candidate's record, if any."""
    best = None
    if summary["best"] is not None:
        best = next(c for c in records if c["id"] == summary["best"]["id"])
        atomic_write(out / "best_program.py", best["code"])
    atomic_write(out / "search.json", json.dumps(summary, indent=1))
    if report:
        code = None if best is None else best["code"]
        atomic_write(out / REPORT_FILE, search_report(summary, code))
    return best


HELD_OUT_SEED_OFFSET = 1000
"""Baselines and the best program's retraining train on seeds above the search's by this
much, and evaluate on their own episodes (``eval_seed`` moved by
:data:`HELD_OUT_EVAL_OFFSET`): neither seeds nor episodes the search selected on."""
HELD_OUT_EVAL_OFFSET = 1_000_000


def _baselines(
    config: SearchConfig,
    out: Path,
    best: dict[str, Any],
    report: dict[str, Any] | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """The best program retrained on held-out seeds and episodes, and the sparse and
    dense-expert rewards trained there too; Eureka's human normalized score from the three.
    A run that fails is recorded (``<name>_error``), and the others still run.

    Results go into ``report`` as they finish (so an interruption keeps them) and each run's
    true success is logged with ``[k/N, ETA ...]``; returns ``report``."""
    from rewardlab.agents.train import TrainConfig, train
    from rewardlab.evaluation.run_stats import human_normalized_score
    from rewardlab.experiments.reward_eval import env_reward_types

    _, dense = env_reward_types(config.env, config.train.env_kwargs, generate=False)
    method = _program_reward(config, best["code"])
    first = max(config.train.seeds) + HELD_OUT_SEED_OFFSET
    seeds = [first + i for i in range(len(config.train.seeds))]
    eval_seed = TrainConfig.model_fields["eval_seed"].default + HELD_OUT_EVAL_OFFSET
    report = {} if report is None else report
    report.update(
        seeds=seeds,
        eval_seed=eval_seed,
        best=best["id"],
        best_fitness_in_search=best["fitness"],
        dense_reward=dense,
        per_seed={},
    )
    log(
        f"baselines on held-out seeds {seeds}: {best['id']} retrained, the sparse reward and "
        f"the dense reward ({dense})"
    )
    progress = Progress(3 * len(seeds))
    labels = {"method": f"{best['id']} retrained", "sparse": "sparse", "human": f"dense ({dense})"}
    for name, reward in (("method", method), ("sparse", "sparse"), ("human", dense)):
        label = labels[name]
        runs: list[float] = report["per_seed"].setdefault(name, [])
        if reward is None:  # a task without a hand-designed dense reward
            report[name], report[f"{name}_error"] = None, "the task has no dense reward"
            log(f"baseline {label}: skipped, {report[name + '_error']}")
            continue
        try:
            for seed in seeds:
                tc = _train_config(config, parse_reward(reward), seed, eval_seed=eval_seed)
                result = train(tc, out / name / f"seed_{seed}")
                runs.append(result.evals[-1]["success_rate"] if result.evals else 0.0)
                log(f"{progress.tick()} baseline {label}, seed {seed}: success {runs[-1]:.2f}")
        except Exception as exc:  # noqa: BLE001  (recorded; the other baselines still run)
            report[name], report[f"{name}_error"] = None, _describe(exc)
            log(f"baseline {label} failed: {report[name + '_error']}")
            continue
        report[name] = sum(runs) / len(runs)
        seeds_text = f"mean of {len(runs)} seeds" if len(runs) > 1 else "1 seed"
        log(f"baseline {label}: true success {report[name]:.2f} ({seeds_text})")
    scores = [report[name] for name in ("method", "sparse", "human")]
    defined = all(x is not None for x in scores)
    report["human_normalized_score"] = human_normalized_score(*scores) if defined else None
    report["human_normalized_score_clipped"] = (
        human_normalized_score(*scores, clip=(0.0, 3.0)) if defined else None
    )
    score = report["human_normalized_score"]
    failed = [labels[n] for n in ("method", "sparse", "human") if report[n] is None]
    log(
        f"human normalized score of {best['id']}: "
        + (
            f"{round(score, 2) + 0.0:.2f}"
            if score is not None
            else f"undefined ({', '.join(failed)} failed)"
            if failed
            else f"undefined (the sparse and dense baselines tie at {report['sparse']:.2f})"
        )
    )
    return report
