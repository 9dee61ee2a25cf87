"""Run a comparison: every (env, variant, seed) once, resumable, on a process pool or Ray
(:mod:`rewardlab.experiments.ray_backend`).

Results layout, the same for every backend::

    <out>/spec.yaml                               the spec as validated
    <out>/runs/<env>/<variant>/seed_<k>/          one folder per run (<env> with '/' as '__')
        config.json  eval.csv  progress.csv  events.out.tfevents.*  model.zip
        reward_components.json  training_episodes.json  training.png
        done.json                                 completion marker, written last, atomically
    <out>/report.md  <out>/summary.json  <out>/*.png

Resume: a run folder with ``done.json`` for the same config is skipped; one without it was
interrupted and is redone from scratch; a finished run whose config differs from the spec's
is an error (the spec changed, nothing is touched) unless ``overwrite``. With Ray on a
cluster (``address:``), every node must see the output folder at the same path (a shared
filesystem): runs write their folders where they run. Runs never write outside their folder,
and the marker is the last thing a run writes, so killing the process loses only the runs
in flight.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, NoReturn, Protocol

import numpy as np
import yaml

from rewardlab.experiments.comparison_spec import ComparisonSpec
from rewardlab.experiments.files import atomic_write
from rewardlab.progress import Progress

__all__ = ["DONE_MARKER", "RunJob", "load_results", "plan_runs", "run_comparison"]

DONE_MARKER = "done.json"
ERRORS_FILE = "errors.log"
"""Where a comparison appends the whole traceback of each failed run."""


@dataclass(frozen=True)
class RunJob:
    """One run of a comparison: its key, folder and config (as a JSON-able dict)."""

    env: str
    variant: str
    seed: int
    run_dir: Path
    config: dict[str, Any]


def plan_runs(spec: ComparisonSpec, out: Path) -> list[RunJob]:
    """Every run of ``spec``, with its folder under ``out/runs``."""
    jobs = []
    for (env, variant, seed), config in spec.run_configs().items():
        run_dir = out / "runs" / env.replace("/", "__") / variant / f"seed_{seed}"
        jobs.append(RunJob(env, variant, seed, run_dir, config.model_dump(mode="json")))
    return jobs


def _setup_worker() -> None:
    """One torch thread per worker (N small-network learners in parallel beat one using N),
    and no argument validation of torch distributions (SB3 builds one per policy call; the
    checks cost ~5% of a small-network run and guard nothing SB3 does not already)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    torch.distributions.Distribution.set_default_validate_args(False)


def execute_run(config: dict[str, Any], run_dir: str) -> dict[str, Any]:
    """Train one run into ``run_dir`` and write its completion marker (a worker's job).

    Module-level so that process pools and Ray can ship it to their workers.
    """
    _setup_worker()
    from rewardlab.agents.train import TrainConfig, train

    started = time.time()
    # A retried task (Ray retries one whose worker died) starts from an empty folder.
    if Path(run_dir).exists():
        shutil.rmtree(run_dir)
    # The report plots every run's training together: no figure per run.
    result = train(TrainConfig.model_validate(config), run_dir, plot=False)
    marker = {
        "config": config,
        "wall_s": result.wall_s,
        "steps": result.steps,
        "final": result.evals[-1],
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "node": socket.gethostname(),
        "span": [started, time.time()],  # wall-clock start and end, in seconds since 1970
        "warnings": result.warnings,
    }
    atomic_write(Path(run_dir) / DONE_MARKER, json.dumps(marker, indent=2))
    return marker


def _pending(
    jobs: list[RunJob],
    overwrite: bool,
    log: Callable[[str], None],
    check: Callable[[set[tuple[str, str]]], None] = lambda _runs: None,
) -> list[RunJob]:
    """The jobs still to run; interrupted folders are cleared, finished ones kept.

    Every finished run is checked against the spec, and ``check`` is called with the
    ``(env, variant)`` pairs to train, before anything is deleted: a changed spec or a
    missing resource fails without touching the results.
    """
    todo, changed = [], []
    for job in jobs:
        marker = job.run_dir / DONE_MARKER
        if marker.exists():
            old = _recorded_config(marker, overwrite)
            if old == job.config:
                continue
            wanted = _identity(job.config)
            if _identity(old) == wanted:
                continue
            old = _pinned_now(old)
            if _identity(old) == wanted:
                continue
            changed.append((job, old))
        todo.append(job)
    if changed and not overwrite:
        job, old = changed[0]
        diff = _differences(_identity(old), _identity(job.config))
        raise ValueError(
            f"{len(changed)} finished run(s), e.g. {job.run_dir}, ran with a different config "
            f"than the spec now asks for ({diff}); write to a new --out folder, or pass "
            "--overwrite to retrain them"
        )
    check({(job.env, job.variant) for job in todo})
    retrain = {id(job) for job, _ in changed}
    for job in todo:
        if id(job) in retrain:
            log(f"config changed, retraining {job.run_dir}")
        elif job.run_dir.exists():
            log(f"redoing interrupted run {job.run_dir}")
        if job.run_dir.exists():
            shutil.rmtree(job.run_dir)
    return todo


def _recorded_config(marker: Path, overwrite: bool) -> Any:
    """The config a finished run recorded in its marker (None for a damaged marker, which
    ``overwrite`` retrains; without it, a ValueError naming the file)."""
    try:
        return json.loads(marker.read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        if overwrite:
            return None
        raise ValueError(
            f"{marker} is damaged ({type(exc).__name__}: {exc}); delete it to retrain that "
            "run, or pass --overwrite"
        ) from None


def _current_form(config: Any) -> Any:
    """A recorded run config as this version writes it: fields added since, with defaults
    that keep the old behaviour, filled in (so adding an option does not invalidate finished
    runs); a config this version cannot read is returned as it is (and so differs)."""
    from pydantic import ValidationError

    from rewardlab.agents.train import TrainConfig

    try:
        return TrainConfig.model_validate(config).model_dump(mode="json")
    except (ValidationError, ValueError, TypeError, RecursionError):
        return config


def _identity(config: Any) -> Any:
    """What makes two run configs the same run: the current form (:func:`_current_form`),
    without the paths of the reward's files whose SHA-256 it records (a program or
    checkpoint read from another folder, or the comparison moved, is the same run; one whose
    content changed is not)."""
    current = _current_form(config)
    if not isinstance(current, dict) or not isinstance(current.get("reward"), dict):
        return current
    reward = dict(current["reward"])
    for field in ("model", "shaping"):
        part = reward.get(field)
        if isinstance(part, dict) and part.get("kind") in ("program", "learned", "clip"):
            hashed = {"path"} if part.get("sha256") else set()
            hashed |= {"pretrained"} if part.get("pretrained_sha256") else set()
            reward[field] = {k: v for k, v in part.items() if k not in hashed}
    return {**current, "reward": reward}


def _pinned_now(config: Any) -> Any:
    """A run config recorded before runs pinned their reward's files (no SHA-256 in it),
    pinned now as that version read them: relative paths from the working directory, a
    ``reference`` program as the task ships it today. Anything that cannot be read or
    pinned is returned as it is (and so differs from the spec)."""
    from rewardlab.agents.train import TrainConfig

    try:
        old = TrainConfig.model_validate(config)
        reward = old.reward.resolved(Path.cwd()).pinned(old.env, old.env_kwargs)
        return old.model_copy(update={"reward": reward}).model_dump(mode="json")
    except Exception:  # noqa: BLE001 - whatever fails (an env gone, a file unreadable) differs
        return config


def _differences(old: Any, new: Any, limit: int = 3) -> str:
    """The first ``limit`` fields where two configs differ, as ``field: old -> new``."""
    found: list[str] = []

    def show(value: Any) -> str:
        text = json.dumps(value)
        return text if len(text) <= 60 else text[:57] + "..."

    def walk(a: Any, b: Any, where: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                walk(a.get(key), b.get(key), f"{where}.{key}" if where else str(key))
        elif a != b and len(found) < limit:
            found.append(f"{where or 'config'}: {show(a)} -> {show(b)}")

    walk(old, new, "")
    return "; ".join(found)


class _Backend(Protocol):
    """Where runs execute: :func:`_schedule` submits at most ``workers`` at a time."""

    def submit(self, job: RunJob) -> Any: ...

    def wait(self, handles: list[Any]) -> list[Any]:
        """Block until at least one of ``handles`` is finished; return the finished ones."""
        ...

    def result(self, handle: Any, job: RunJob) -> dict[str, Any]:
        """The run's marker, or its error raised (as the run raised it)."""
        ...

    def cancel(self, handles: list[Any]) -> None:
        """Stop these runs, running or not; return once they are stopped."""
        ...


def _schedule(
    jobs: list[RunJob],
    workers: int,
    backend: _Backend,
    log: Callable[[str], None],
    errors: Path,
) -> None:
    """Run ``jobs`` on ``backend``, at most ``workers`` at once, logging each as it finishes
    with the runs done, running and queued, and an ETA.

    The first failing run stops the others (running and queued) and its error is raised, its
    traceback appended to ``errors``; so does Ctrl-C. Finished runs are kept either way.
    """
    queue, running = list(reversed(jobs)), dict[Any, RunJob]()
    progress = Progress(len(jobs))
    try:
        while queue or running:
            while queue and len(running) < workers:
                job = queue.pop()
                running[backend.submit(job)] = job
            for handle in backend.wait(list(running)):
                job = running.pop(handle)
                try:
                    marker = backend.result(handle, job)
                    _check_written(job, marker)
                except Exception as exc:
                    _record_error(errors, job, exc)
                    _raise_run_error(job, exc, errors)
                _finished(job, marker, log, progress.tick(running=len(running)))
    except BaseException as exc:
        if running:
            what = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else "a run failed"
            log(f"{what}: stopping the {len(running)} runs in flight; finished runs are kept")
            backend.cancel(list(running))
        raise


def _raise_run_error(job: RunJob, exc: Exception, errors: Path) -> NoReturn:
    """Raise a failed run's error for the caller: a reward program's failure as it is (the
    CLI reports it with its own advice), bad input as a ValueError naming the run, anything
    else as :class:`RunFailed` on one line, its traceback in ``errors``."""
    from rewardlab.sandbox import ProgramContained

    run = f"run {job.env} {job.variant} seed={job.seed}"
    if isinstance(exc, (ProgramContained, RunNotVisible)):
        raise exc
    if isinstance(exc, ValueError):
        raise ValueError(f"{run}: {clean_message(str(exc))}") from exc
    detail = exc.args[0] if isinstance(exc, RunFailed) else _first_line(exc)
    raise RunFailed(f"{run} failed: {detail} (the whole traceback is in {errors})") from exc


def _check_written(job: RunJob, marker: dict[str, Any]) -> None:
    """Raise unless the run's completion marker is where the driver reads results: a run on
    a node that sees another output folder finishes there, invisibly."""
    if not (job.run_dir / DONE_MARKER).is_file():
        node = marker.get("node", "its node")
        raise RunNotVisible(
            f"run {job.run_dir} finished on {node}, but its folder is not there as the driver "
            "sees it: every node must see the output folder at the same path (a shared "
            "filesystem)"
        )


class RunNotVisible(OSError):
    """A run finished on a node whose view of the output folder is not the driver's."""


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def clean_message(text: str) -> str:
    """``text`` without terminal colour and cursor codes."""
    return _ANSI.sub("", text)


def _record_error(errors: Path, job: RunJob, exc: BaseException) -> None:
    """Append a failed run's whole traceback (remote ones as the worker printed them) to
    ``errors``."""
    import traceback

    text = clean_message("".join(traceback.format_exception(exc)))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        with errors.open("a") as fh:
            fh.write(f"--- {stamp} run {job.env} {job.variant} seed={job.seed} failed\n{text}\n")
    except OSError:
        pass  # the error itself is raised either way


def _setup_pool_worker() -> None:
    """A pool worker leads its own process group: Ctrl-C in the terminal reaches the driver
    only (which stops the workers), and stopping a worker stops its sub-envs with it."""
    if hasattr(os, "setpgrp"):
        os.setpgrp()


class _LocalPool:
    """Runs in spawned worker processes (they start clean: no inherited torch thread pools;
    started once each, then reused; the caller's process keeps its own torch settings)."""

    def __init__(self, workers: int) -> None:
        self._pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=get_context("spawn"), initializer=_setup_pool_worker
        )

    def submit(self, job: RunJob) -> Future[dict[str, Any]]:
        return self._pool.submit(execute_run, job.config, str(job.run_dir))

    def wait(self, handles: list[Any]) -> list[Any]:
        return list(wait(handles, return_when=FIRST_COMPLETED).done)

    def result(self, handle: Any, job: RunJob) -> dict[str, Any]:
        return handle.result()

    def cancel(self, handles: list[Any]) -> None:
        for handle in handles:
            handle.cancel()
        _stop_processes(_pool_processes(self._pool))
        self._pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _pool_processes(pool: ProcessPoolExecutor) -> list[Any]:
    """The worker processes of ``pool`` (CPython keeps them in ``_processes``; Python 3.14's
    ``terminate_workers`` is the public form)."""
    return list((getattr(pool, "_processes", None) or {}).values())


def _stop_processes(processes: list[Any], grace_s: float = 5.0) -> None:
    """SIGTERM each process's group (a worker and its sub-env processes), SIGKILL what is
    left after ``grace_s``."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in processes:
            if proc.is_alive():
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, sig)
        deadline = time.monotonic() + grace_s
        for proc in processes:
            proc.join(max(0.0, deadline - time.monotonic()))
        processes = [p for p in processes if p.is_alive()]
        if not processes:
            return


def _run_local(jobs: list[RunJob], workers: int, log: Callable[[str], None], errors: Path) -> None:
    pool = _LocalPool(workers)
    try:
        _schedule(jobs, workers, pool, log, errors)
    finally:
        pool.close()


class RunFailed(RuntimeError):
    """A run failed with an error that is not bad input (its traceback is in the
    comparison's ``errors.log``)."""


def _first_line(exc: BaseException) -> str:
    lines = [line for line in clean_message(str(exc)).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0].strip() if lines else ''}"


def _finished(
    job: RunJob,
    marker: dict[str, Any],
    log: Callable[[str], None],
    count: str = "",
) -> None:
    final = marker["final"]
    log(
        f"{count + ' ' if count else ''}finished {job.env} {job.variant} seed={job.seed}: "
        f"success={final['success_rate']:.2f} return={final['mean_return']:.3f} "
        f"({marker['wall_s']:.0f} s)"
    )
    for warning in marker.get("warnings", ()):  # markers written before warnings had none
        log(f"warning: {job.env} {job.variant} seed={job.seed}: {warning}")


def load_results(jobs: list[RunJob]) -> list[Any]:
    """The finished runs' evaluation curves as report records, with their training episodes
    (``training_episodes.json``) and reward components (``reward_components.json``) where
    the run wrote them (runs trained before the episodes were recorded have none).

    Raises:
        FileNotFoundError: If a run has no completion marker.
        ValueError: Naming a damaged episodes or components file, and how to go on.
    """
    from rewardlab.experiments.report import RunResult

    results = []
    for job in jobs:
        if not (job.run_dir / DONE_MARKER).exists():
            raise FileNotFoundError(f"run {job.run_dir} has not finished")
        with (job.run_dir / "eval.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        steps, success, returns = (
            np.array([float(r[column]) for r in rows])
            for column in ("step", "success_rate", "mean_return")
        )
        monitor, components = _training_records(job.run_dir)
        results.append(
            RunResult(job.env, job.variant, job.seed, steps, success, returns, monitor, components)
        )
    return results


EPISODES_FILE = "training_episodes.json"
"""A run's training episodes (``rewardlab.agents.train.EPISODES_FILE``)."""
COMPONENTS_FILE = "reward_components.json"
"""A run's reward components over training (``rewardlab.agents.train``)."""


def _training_records(run_dir: Path) -> tuple[Any, dict[str, np.ndarray] | None]:
    """A run's :class:`~rewardlab.experiments.report.TrainingMonitor` and component window
    means, each None where the run did not write its file."""
    from rewardlab.experiments.report import TrainingMonitor

    monitor, components = None, None
    path = run_dir / EPISODES_FILE
    try:
        if path.exists():
            monitor = TrainingMonitor.from_summary(json.loads(path.read_text()))
        path = run_dir / COMPONENTS_FILE
        if path.exists():
            data = json.loads(path.read_text())
            components = {
                str(name): np.array(
                    [np.nan if v is None else float(v) for v in entry["values"]], dtype=float
                )
                for name, entry in data.items()
            }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"{path} is damaged ({type(exc).__name__}: {exc}); delete it (the report then "
            "goes without it for that run) or delete the run folder to retrain it"
        ) from None
    return monitor, components


def run_comparison(
    spec: ComparisonSpec,
    out: str | os.PathLike[str],
    *,
    backend: str | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Run (or resume) every run of ``spec`` into ``out`` and write the report.

    Args:
        spec: A validated, checked spec (:func:`~rewardlab.experiments.comparison_spec.load_spec`).
        out: The comparison's folder.
        backend: ``"local"`` or ``"ray"``; default the spec's.
        workers: Parallel runs; default the spec's.
        overwrite: Retrain finished runs whose config no longer matches the spec.
        log: Progress messages.

    Returns:
        The path of ``report.md``.
    """
    from rewardlab.experiments.report import write_report

    if workers is not None and workers < 1:  # 0 would silently mean "the spec's"
        raise ValueError(f"workers must be >= 1, got {workers}")

    out_dir = Path(out)
    jobs = plan_runs(spec, out_dir)
    todo = _pending(jobs, overwrite, log, spec.check_models)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(
        out_dir / "spec.yaml", yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
    )
    backend = backend or spec.backend
    workers = workers or spec.workers
    log(f"{spec.name}: {len(jobs)} runs, {len(jobs) - len(todo)} already done, {len(todo)} to run")
    start = time.perf_counter()
    if todo:
        if backend == "ray":
            from rewardlab.experiments.ray_backend import run_ray

            run_ray(todo, spec.address, workers, spec.gpus_per_run, log, out_dir)
        elif backend == "local":
            _run_local(todo, min(workers, len(todo)), log, out_dir / ERRORS_FILE)
        else:
            raise ValueError(f"backend must be 'local' or 'ray', got {backend!r}")
    log(f"trained {len(todo)} runs in {time.perf_counter() - start:.0f} s")
    norm = spec.report.normalize
    return write_report(
        load_results(jobs),
        out_dir,
        title=spec.name,
        budget=spec.budget,
        threshold=spec.threshold,
        reps=spec.report.reps,
        seed=spec.report.seed,
        notes=spec.description,
        normalize=None if norm is None else (norm.sparse, norm.human),
    )
