"""Comparison specs: envs x reward variants x seeds, one algorithm, a budget (YAML, validated).

Example (``experiments/gridworld-keydoor.yaml`` is a full one)::

    name: keydoor-shaping
    envs: [rewardlab/GridKeyDoor-v0]
    algo: ppo
    budget: 150000            # env steps per run
    seeds: 10                 # or a list: [0, 1, 2]
    eval: {freq: 10000, episodes: 20}
    threshold: 0.8            # success rate for steps-to-threshold
    variants:
      sparse: sparse          # a reward short name or mapping (see rewardlab.reward_spec)
      pbrs: pbrs
      big-batch: {reward: carl, hyperparams: {batch_size: 1024}}
    backend: local            # or ray (with optional address: and gpus_per_run:)
    workers: 2
    report: {normalize: {sparse: sparse, human: big-batch}}   # optional: Eureka's score
    task_modules: [my_tasks.py]   # optional: modules registering other envs' tasks
                                  # (rewardlab.register_task)

A relative file path in a spec file (a reward program's ``path:``, a checkpoint, a ``.py``
task module) is read from the spec file's folder, wherever the command runs.

Every error names the field it is about, e.g. ``variants.pbrs.reward: unknown reward``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from itertools import product
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from rewardlab.agents.train import TrainConfig, check_config
from rewardlab.envs.tasks import import_task_modules
from rewardlab.reward_spec import (
    PRESET_PREFIX,
    RewardSpec,
    check_info_keys,
    format_validation_error,
    parse_reward,
    preset_spec,
    read_yaml_file,
)
from rewardlab.wrappers.timing import RewardBudget

__all__ = ["ComparisonSpec", "EnvEntry", "EvalSettings", "Variant", "check_device", "load_spec"]


def check_device(device: str) -> str:
    """``device`` if torch reads it as a device this machine can have; return it.

    ``auto`` is always valid, and so is a CUDA device on a machine without CUDA (SB3 then
    trains on the CPU); a CUDA index past the machine's devices is not.

    Raises:
        ValueError: Naming the device and the valid forms.
    """
    if device == "auto":
        return device
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"unknown torch device {device!r}; use auto, cpu, cuda or cuda:N"
        ) from None
    if parsed.type == "cuda" and parsed.index is not None and torch.cuda.is_available():
        count = torch.cuda.device_count()
        if parsed.index >= count:
            raise ValueError(
                f"device {device!r}: this machine has {count} CUDA device(s), cuda:0 to "
                f"cuda:{count - 1}"
            )
    return device


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvEntry(_Strict):
    """An env of the comparison: a registered id and ``gym.make`` keywords."""

    id: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


class Variant(_Strict):
    """A reward variant: the reward, and hyperparameter overrides for this variant only."""

    reward: RewardSpec
    hyperparams: dict[str, Any] = Field(default_factory=dict)


class EvalSettings(_Strict):
    """Evaluation on the true task: every ``freq`` env steps, ``episodes`` fixed seeds."""

    freq: int = Field(gt=0)
    episodes: int = Field(default=20, gt=0)
    seed: int = Field(default=1_000_000, ge=0)
    deterministic: bool = False


class Normalize(_Strict):
    """The two variants of Eureka's human normalized score ``(v - sparse) / |human - sparse|``:
    the task's sparse reward and the hand-designed ("human") dense one."""

    sparse: str
    human: str


class ReportSettings(_Strict):
    """Bootstrap settings of the report, and the variants to normalize scores by."""

    reps: int = Field(default=2000, gt=0)
    seed: int = 0
    normalize: Normalize | None = None


class ComparisonSpec(_Strict):
    """A validated comparison (see the module docstring for the YAML form)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    envs: list[EnvEntry] = Field(min_length=1)
    algo: str = "ppo"
    hyperparams: dict[str, Any] = Field(default_factory=dict)
    variants: dict[str, Variant] = Field(min_length=1)
    seeds: list[StrictInt] = Field(min_length=1)
    budget: StrictInt = Field(gt=0)
    eval: EvalSettings
    threshold: float = Field(default=0.8, ge=0.0, le=1.0)
    backend: Literal["local", "ray"] = "local"
    address: str | None = None
    workers: int = Field(default=2, gt=0)
    gpus_per_run: float = Field(default=0.0, ge=0.0)
    device: str = "auto"
    report: ReportSettings = Field(default_factory=ReportSettings)
    reward_budget: RewardBudget = Field(default_factory=RewardBudget)
    task_modules: list[str] = Field(default_factory=list)

    @field_validator("envs", mode="before")
    @classmethod
    def _envs(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"id": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        return check_device(value)

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ValueError(f"a seed count must be >= 1, got {value}")
            return list(range(value))
        if isinstance(value, list):
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
                raise ValueError(f"seeds must be non-negative ints, got {value}")
            if len(set(value)) != len(value):
                raise ValueError(f"seeds repeat: {value}")
        return value

    @field_validator("variants", mode="before")
    @classmethod
    def _variants(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        out = {}
        for name, v in value.items():
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", str(name)):
                raise ValueError(f"variant name {name!r}: use letters, digits, '_', '-', '.'")
            if isinstance(v, Mapping) and "reward" in v:
                out[name] = {**v, "reward": parse_reward(v["reward"], f"variants.{name}.reward")}
            else:
                out[name] = {"reward": parse_reward(v, f"variants.{name}")}
        return out

    @field_validator("envs")
    @classmethod
    def _unique_envs(cls, value: list[EnvEntry]) -> list[EnvEntry]:
        ids = [env.id for env in value]
        for env_id in ids:
            if ids.count(env_id) > 1:
                raise ValueError(
                    f"{env_id} is listed {ids.count(env_id)} times; run folders are named by "
                    "env id: compare other keywords of one env in separate comparisons"
                )
        return value

    @model_validator(mode="after")
    def _normalize_variants(self) -> ComparisonSpec:
        norm = self.report.normalize
        if norm is not None:
            for role, name in (("sparse", norm.sparse), ("human", norm.human)):
                if name not in self.variants:
                    raise ValueError(
                        f"report.normalize.{role}: {name!r} is not a variant; the variants "
                        f"are {sorted(self.variants)}"
                    )
            if norm.sparse == norm.human:
                raise ValueError("report.normalize: sparse and human must be two variants")
        return self

    def resolved(self, folder: str | Path) -> ComparisonSpec:
        """This spec with every relative file path its rewards name (reward programs,
        reward-net and CLIP checkpoints) and its ``.py`` task modules made absolute against
        ``folder``."""
        variants = {
            name: v.model_copy(update={"reward": v.reward.resolved(folder)})
            for name, v in self.variants.items()
        }
        modules = [
            str(Path(folder, m).absolute()) if m.endswith(".py") else m for m in self.task_modules
        ]
        return self.model_copy(update={"variants": variants, "task_modules": modules})

    def pinned_rewards(self) -> dict[tuple[str, str], RewardSpec]:
        """Each (env id, variant)'s reward with what its files hold recorded in it
        (:meth:`RewardSpec.pinned`; paths still relative are the working directory's): a
        program's source travels inside the run config, a checkpoint's SHA-256 is checked
        where it is loaded.

        Raises:
            ValueError: Naming the env, the variant and the file.
        """
        rewards = {}
        for i, env in enumerate(self.envs):
            for name, variant in self.variants.items():
                try:
                    reward = variant.reward.resolved(Path.cwd()).pinned(env.id, env.kwargs)
                except ValueError as exc:
                    raise ValueError(
                        f"envs[{i}] ({env.id}) x variants.{name}.reward.{exc}"
                    ) from None
                rewards[env.id, name] = reward
        return rewards

    def run_configs(self) -> dict[tuple[str, str, int], TrainConfig]:
        """One :class:`TrainConfig` per (env id, variant, seed), in a stable order, each with
        its reward pinned (:meth:`pinned_rewards`)."""
        rewards = self.pinned_rewards()
        return {
            (env.id, name, seed): TrainConfig(
                env=env.id,
                env_kwargs=env.kwargs,
                reward=rewards[env.id, name],
                algo=self.algo,
                hyperparams={**self.hyperparams, **variant.hyperparams},
                steps=self.budget,
                seed=seed,
                eval_freq=self.eval.freq,
                eval_episodes=self.eval.episodes,
                eval_seed=self.eval.seed,
                eval_deterministic=self.eval.deterministic,
                device=self.device,
                reward_budget=self.reward_budget,
                task_modules=self.task_modules,
            )
            for env, (name, variant), seed in product(self.envs, self.variants.items(), self.seeds)
        }

    def check(self) -> None:
        """Check every run can start (env ids, algorithm, hyperparameters, env keywords, the
        info keys an ``info`` reward reads).

        Raises:
            ValueError: Naming the field of the first problem found.
        """
        import_task_modules(self.task_modules)
        configs = self.run_configs()
        for i, env in enumerate(self.envs):
            for name in self.variants:
                config = configs[env.id, name, self.seeds[0]]
                try:
                    check_config(config)
                    check_info_keys(config.reward, env.id, env.kwargs, evaluation=True)
                except ValueError as exc:
                    raise ValueError(f"envs[{i}] ({env.id}) x variants.{name}: {exc}") from None

    def check_models(self, runs: set[tuple[str, str]]) -> None:
        """Build (then close) each CLIP model and reward program the ``(env id, variant)``
        pairs ``runs`` train with, once each: missing weights, a program file that cannot be
        read or a program the sandbox rejects fail before anything trains or is written, not
        after other runs did.

        Raises:
            ValueError: Naming the env and variant, and what to do.
        """
        from rewardlab.reward_spec import ClipModelSpec, ProgramModelSpec, build_model

        built: set[tuple[str, str]] = set()
        rewards = self.pinned_rewards()
        for i, env in enumerate(self.envs):
            for name in self.variants:
                if (env.id, name) not in runs:
                    continue
                reward = rewards[env.id, name]
                for part in (reward.model, reward.shaping):
                    if not isinstance(part, (ClipModelSpec, ProgramModelSpec)):
                        continue
                    key = (env.id + repr(sorted(env.kwargs.items())), part.model_dump_json())
                    if key in built:
                        continue
                    built.add(key)
                    try:
                        build_model(part, env.id, env.kwargs).close()
                    except (ValueError, FileNotFoundError) as exc:  # ProgramRejected too
                        where = f"envs[{i}] ({env.id}) x variants.{name}"
                        raise ValueError(f"{where}: {exc}") from None


def load_spec(source: str | Path | Mapping[str, Any]) -> ComparisonSpec:
    """Read and validate a comparison spec from a YAML file, ``preset:NAME`` (a comparison
    preset of :mod:`rewardlab.presets`) or a mapping, and check it.

    Relative file paths in a spec file (reward programs, checkpoints, ``.py`` task modules)
    are the spec file's folder's; in a mapping or a preset, the working directory's. They are
    made absolute here, on the driver, and every run config carries its program's source and
    each file's SHA-256 (:meth:`ComparisonSpec.pinned_rewards`): no worker reads a path of its
    own.

    Raises:
        ValueError: On one line: a file that is missing, unreadable or not valid YAML (a key
            given twice included), each invalid field, or the first run that cannot start.
    """
    folder = Path.cwd()
    if isinstance(source, Mapping):
        data: Any = dict(source)
        where = "spec"
    elif isinstance(source, str) and source.startswith(PRESET_PREFIX):
        data = preset_spec(source, "comparison", "spec")
        where = source
    else:
        data = read_yaml_file(source, "spec file")
        where = Path(source).name
        folder = Path(source).resolve().parent
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: a spec is a mapping of fields, got {type(data).__name__}")
    try:
        spec = ComparisonSpec.model_validate(dict(data))
    except ValidationError as err:
        raise ValueError(
            f"invalid comparison spec {where}: {format_validation_error(err, 'spec')}"
        ) from None
    spec = spec.resolved(folder)
    spec.check()
    return spec
