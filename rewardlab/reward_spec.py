"""Reward specs: which reward an agent trains on, as data (YAML, JSON or a short name).

A :class:`RewardSpec` names the layers :func:`rewardlab.make_vec_env` puts on a task's SB3 vector
env, innermost first: the env's own reward variant (``reward_type``), a reward model
replacing or added to it (``model``), then policy-invariant shaping (``shaping``, with the
agent's discount) or one of the two NEGATIVE CONTROLS a shaping comparison needs
(``shaping_gamma`` different from the agent's, ``progress_bonus``). Specs are validated
with pydantic, so a misspelt field or a bad value fails with its location before anything
is built.

Short names, for the command line (:func:`parse_reward`):

=====================  ===================================================================
``env``                the env's default reward (for gridworlds: sparse success)
``sparse``, ``dense``  the env's ``reward_type`` (also ``carl``, ``weighted`` for driving)
``pbrs``               ``shaping: progress`` (ground-truth progress potential)
``progress_bonus``     ``progress_bonus: 1.0`` (negative control)
``progress``           ``model: {kind: info, key: progress}`` (progress as the reward; for judging
                       rewards with ``rewardlab eval-reward``, a trap to train on)
``pbrs_mismatched``    ``shaping: progress, shaping_gamma: 0.9`` (negative control)
``clip``               ``model: {kind: clip}`` (zero-shot CLIP reward, task prompts)
``pbrs_clip``          ``shaping: {kind: clip}`` (CLIP score as the potential)
``program``            ``model: {kind: program, path: reference}`` (the task's reference reward
                       program; ``path: my_reward.py`` for another, e.g. an LLM's)
=====================  ===================================================================

Anything else is read as a YAML mapping, e.g. ``"{shaping: progress, reward_type: sparse}"``.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# Configuration only: importing the options imports neither torch nor open_clip.
from rewardlab.reward_models.clip import CLIPOptions, is_file_path

__all__ = [
    "REWARD_SHORTHANDS",
    "ClipModelSpec",
    "InfoModelSpec",
    "LearnedModelSpec",
    "ModelSpec",
    "PRESET_PREFIX",
    "ProgramModelSpec",
    "RewardSpec",
    "build_model",
    "check_digest",
    "check_info_keys",
    "load_yaml",
    "parse_reward",
    "preset_spec",
    "read_text_file",
    "read_yaml_file",
]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _absolute(path: str, folder: Path) -> str:
    """``path`` (``~`` expanded) made absolute against ``folder``."""
    return str((folder / Path(path).expanduser()).absolute())


_RELATIVE = "read from the folder of the spec file that gives it, else the working directory"
"""Where a relative file path in a reward spec is read from (see ``resolved``)."""

_DIGESTS: dict[tuple[str, int, int], str] = {}


def _digest(path: str, what: str, fix: str = "") -> str:
    """The SHA-256 of the file at ``path`` (cached while its size and mtime hold).

    Raises:
        ValueError: Naming ``what`` the file is, where it does not exist (with ``fix``, what
            to do) or cannot be read.
    """
    from rewardlab.provenance import file_sha256

    try:
        stat = os.stat(path)
        key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
        if key not in _DIGESTS:
            _DIGESTS[key] = file_sha256(path)
    except FileNotFoundError:
        raise ValueError(f"{what} {path} does not exist{fix}") from None
    except OSError as exc:
        raise ValueError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    return _DIGESTS[key]


def check_digest(path: str, sha256: str, what: str) -> None:
    """Check the file at ``path`` is the one whose SHA-256 was recorded when the run was
    planned (on a cluster: the same file on this node as on the driver's).

    Raises:
        ValueError: Naming the file, the node, and what to do.
    """
    import socket

    node = socket.gethostname()
    try:
        actual = _digest(path, what)
    except ValueError as exc:
        raise ValueError(
            f"{exc}, on node {node}; put the file at the same path on every node that runs "
            "(a shared folder) or run on the machine that has it"
        ) from None
    if actual != sha256:
        raise ValueError(
            f"{what} {path} on node {node} is not the file the run was planned with (sha256 "
            f"{actual[:12]}... here, {sha256[:12]}... recorded): copy the same file to every "
            "node (or a shared folder), or re-plan the runs with this one"
        )


class ClipModelSpec(_Spec):
    """A zero-shot CLIP reward (:class:`~rewardlab.reward_models.clip.CLIPRewardModel`).

    The fields are :class:`~rewardlab.reward_models.clip.CLIPOptions`'s, with its defaults and
    its checks (``options`` is its ``head_options``), plus the prompts, which default to the
    task's own goal, baseline and negative descriptions. ``pretrained`` is an open_clip tag or
    a local checkpoint path; None builds random weights (plumbing and tests only).
    """

    kind: Literal["clip"]
    goal: str | list[str] | None = None
    baseline: str | list[str] | None = None
    negatives: list[str] | None = None
    model: str = CLIPOptions.model
    pretrained: str | None = CLIPOptions.pretrained
    head: str = CLIPOptions.head
    options: dict[str, float] = Field(default_factory=dict)
    device: str = CLIPOptions.device
    resize: str = CLIPOptions.resize
    crop: tuple[int, int, int, int] | None = CLIPOptions.crop
    precision: str = CLIPOptions.precision
    cache_size: int = CLIPOptions.cache_size
    cache_dir: str | None = CLIPOptions.cache_dir
    pretrained_sha256: str | None = None

    def model_post_init(self, context: Any, /) -> None:
        try:
            self.clip_options()
        except TypeError as exc:  # pydantic reports ValueErrors with the field's location
            raise ValueError(str(exc)) from None

    def clip_options(self) -> CLIPOptions:
        """These options as a :class:`~rewardlab.reward_models.clip.CLIPOptions`."""
        exclude = {"kind", "goal", "baseline", "negatives", "options", "pretrained_sha256"}
        return CLIPOptions(**self.model_dump(exclude=exclude), head_options=self.options)

    @property
    def pretrained_file(self) -> bool:
        """Whether ``pretrained`` names a local checkpoint file (not an open_clip tag)."""
        return self.pretrained is not None and is_file_path(self.pretrained)

    def resolved(self, folder: Path) -> ClipModelSpec:
        """This spec with a relative checkpoint path made absolute against ``folder``."""
        if self.pretrained is None or not self.pretrained_file:
            return self
        return self.model_copy(update={"pretrained": _absolute(self.pretrained, folder)})

    def pinned(self, task_name: Callable[[], str]) -> ClipModelSpec:
        """This spec with its checkpoint file's SHA-256 (a tag names its weights already).

        Raises:
            ValueError: A checkpoint file that does not exist or cannot be read.
        """
        if not self.pretrained_file or self.pretrained_sha256 is not None:
            return self
        assert self.pretrained is not None
        fix = (
            "; give the path of an open_clip checkpoint on this machine (a relative path is "
            f"{_RELATIVE}), or a pretrained tag: "
            f"open_clip.list_pretrained_tags_by_model({self.model!r})"
        )
        digest = _digest(self.pretrained, f"CLIP checkpoint file for {self.model!r}", fix)
        return self.model_copy(update={"pretrained_sha256": digest})


class InfoModelSpec(_Spec):
    """A reward read from the env's step info: ``scale * info[key] + shift``.

    As a shaping potential, ``{key: progress, shift: -1}`` gives ``Phi = progress - 1``:
    0 at the goal, like the terminal state, so finishing costs no potential.
    """

    kind: Literal["info"]
    key: str
    scale: float = 1.0
    shift: float = 0.0


class ProgramModelSpec(_Spec):
    """A reward program (:class:`~rewardlab.reward_models.program_reward.ProgramReward`):
    ``compute_reward(<state variables>)`` run in the sandbox on the state entered.

    Give ``path`` (a ``.py`` file; ``reference`` for the task's shipped reference program) or
    ``source``. ``clip`` bounds the reward, ``timeout_s`` each call, and ``max_exceptions``
    failed calls stop the run with the program's error.
    """

    kind: Literal["program"]
    path: str | None = None
    source: str | None = None
    sha256: str | None = None
    clip: float = Field(default=100.0, gt=0.0)
    timeout_s: float = Field(default=2.0, gt=0.0)
    max_exceptions: int = Field(default=3, ge=1)

    def model_post_init(self, context: Any, /) -> None:
        if self.sha256 is None and (self.path is None) == (self.source is None):
            raise ValueError("a program model needs exactly one of path and source")
        if self.sha256 is not None:  # pinned: the source travels, the path is where it was read
            if self.source is None:
                raise ValueError("sha256 is the digest of the program's source: give source too")
            actual = hashlib.sha256(self.source.encode()).hexdigest()
            if actual != self.sha256:
                raise ValueError(
                    f"the program's source (sha256 {actual[:12]}...) does not match its sha256 "
                    f"({self.sha256[:12]}...): it was changed after it was read; drop sha256 to "
                    "use this source"
                )

    def read_source(self, task_name: str) -> str:
        """The program's source (``path: reference``: the task's reference program)."""
        from rewardlab.reward_models.program_reward import reference_program

        if self.source is not None:
            return self.source
        assert self.path is not None
        if self.path == "reference":
            return reference_program(task_name)
        try:
            return Path(self.path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the reward program {self.path}: {exc}") from None

    def resolved(self, folder: Path) -> ProgramModelSpec:
        """This spec with a relative program path made absolute against ``folder``."""
        if self.source is not None or self.path in (None, "reference"):
            return self
        assert self.path is not None
        return self.model_copy(update={"path": _absolute(self.path, folder)})

    def pinned(self, task_name: Callable[[], str]) -> ProgramModelSpec:
        """This spec with the program's source and its SHA-256 in it (``path`` kept as where
        it was read), so that no other process reads a file of its own.

        Raises:
            ValueError: A program file that cannot be read.
        """
        if self.sha256 is not None:
            return self
        source = self.read_source(task_name() if self.path == "reference" else "")
        digest = hashlib.sha256(source.encode()).hexdigest()
        return self.model_copy(update={"source": source, "sha256": digest})


class LearnedModelSpec(_Spec):
    """A reward network trained on data (:mod:`rewardlab.learned`): ``path`` is its checkpoint,
    which is refused on an env whose state layout or observations differ from the one it was
    trained on. ``device``: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``.

    It pays ``scale * r + shift``, ``r`` its checkpoint's standardized reward (mean 0,
    standard deviation 1 on its training states). As a shaping potential, a smaller ``scale``
    keeps ``Phi`` in the range of the task reward (a ground-truth progress potential spans
    [0, 1]).
    """

    kind: Literal["learned"]
    path: str
    device: str = "auto"
    scale: float = 1.0
    shift: float = 0.0
    sha256: str | None = None

    def resolved(self, folder: Path) -> LearnedModelSpec:
        """This spec with a relative checkpoint path made absolute against ``folder``."""
        return self.model_copy(update={"path": _absolute(self.path, folder)})

    def pinned(self, task_name: Callable[[], str]) -> LearnedModelSpec:
        """This spec with its checkpoint's SHA-256, which every process loading it checks.

        Raises:
            ValueError: A checkpoint that does not exist or cannot be read.
        """
        if self.sha256 is not None:
            return self
        fix = (
            "; give the checkpoint.pt that rewardlab learn-reward wrote (a relative path is "
            f"{_RELATIVE})"
        )
        digest = _digest(self.path, "reward-net checkpoint", fix)
        return self.model_copy(update={"sha256": digest})

    @field_validator("scale", "shift")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not abs(value) < float("inf"):
            raise ValueError(f"must be finite, got {value}")
        return value

    @field_validator("scale")
    @classmethod
    def _nonzero(cls, value: float) -> float:
        if value == 0.0:
            raise ValueError("must be non-zero (it would erase the reward)")
        return value


BuiltModelSpec = ClipModelSpec | InfoModelSpec | ProgramModelSpec | LearnedModelSpec
"""The model specs :func:`build_model` builds (every kind but ``progress``)."""
ModelSpec = Annotated[BuiltModelSpec, Field(discriminator="kind")]


class RewardSpec(_Spec):
    """The reward an agent trains on.

    Attributes:
        reward_type: The env's own reward variant (``"sparse"``, ``"dense"``, ...), passed
            to ``gym.make`` of the training env only; evaluation always uses the env's
            default, the true task reward.
        model: A reward model replacing (``mode="replace"``) or added to the env's reward.
        mode: ``"replace"`` or ``"add"``.
        shaping: Potential of policy-invariant shaping ``F = gamma Phi(s') - Phi(s)``:
            ``"progress"`` (ground-truth progress) or a reward model read as ``Phi``. Its
            discount is the agent's unless ``shaping_gamma`` is set.
        shaping_gamma: NEGATIVE CONTROL: shape with this discount instead of the agent's
            (must differ from it; the run is then not policy-invariant, by design).
        progress_bonus: NEGATIVE CONTROL: add ``progress_bonus * progress(s')`` every step.
    """

    reward_type: str | None = None
    model: ModelSpec | None = None
    mode: Literal["replace", "add"] = "replace"
    shaping: Literal["progress"] | ModelSpec | None = None
    shaping_gamma: float | None = Field(default=None, gt=0.0, le=1.0)
    progress_bonus: float | None = None

    @field_validator("progress_bonus")
    @classmethod
    def _finite_bonus(cls, value: float | None) -> float | None:
        if value is not None and not abs(value) < float("inf"):
            raise ValueError(f"progress_bonus must be finite, got {value}")
        return value

    def model_post_init(self, context: Any, /) -> None:
        if self.shaping_gamma is not None and self.shaping is None:
            raise ValueError("shaping_gamma is set but shaping is not: add shaping: progress")
        if self.progress_bonus is not None and self.shaping is not None:
            raise ValueError("use either shaping or progress_bonus (a negative control), not both")

    @property
    def is_negative_control(self) -> bool:
        """True for the controls that break policy invariance on purpose."""
        return self.progress_bonus is not None or self.shaping_gamma is not None

    def resolved(self, folder: str | os.PathLike[str]) -> RewardSpec:
        """This spec with every relative file path (a program, a reward-net or CLIP
        checkpoint) made absolute against ``folder``."""
        return self._map(lambda part: part.resolved(Path(folder)))

    def pinned(self, env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> RewardSpec:
        """This spec with what its files hold recorded in it: a reward program's source and
        SHA-256 (so it travels with the run), a checkpoint's SHA-256 (checked by every
        process that loads it). Relative paths are the working directory's (see
        :meth:`resolved`); a pinned spec is returned as it is.

        Raises:
            ValueError: Naming the field (``model`` or ``shaping``) and a file that does not
                exist or cannot be read.
        """
        name: list[str] = []

        def task_name() -> str:  # the env is made only for a reference program
            if not name:
                from rewardlab.envs import get_task, make

                with make(env_id, **(env_kwargs or {})) as env:
                    name.append(get_task(env).name)
            return name[0]

        return self._map(lambda part: part.pinned(task_name))

    def _map(self, fn: Callable[[Any], Any]) -> RewardSpec:
        """This spec with ``fn`` applied to its program, learned and CLIP model specs."""
        update = {}
        for field in ("model", "shaping"):
            part = getattr(self, field)
            if isinstance(part, (ClipModelSpec, ProgramModelSpec, LearnedModelSpec)):
                try:
                    update[field] = fn(part)
                except ValueError as exc:
                    raise ValueError(f"{field}: {exc}") from None
        return self.model_copy(update=update) if update else self


REWARD_SHORTHANDS: dict[str, dict[str, Any]] = {
    "env": {},
    "sparse": {"reward_type": "sparse"},
    "dense": {"reward_type": "dense"},
    "carl": {"reward_type": "carl"},
    "weighted": {"reward_type": "weighted"},
    "pbrs": {"shaping": "progress"},
    "progress_bonus": {"progress_bonus": 1.0},
    "progress": {"model": {"kind": "info", "key": "progress"}},
    "pbrs_mismatched": {"shaping": "progress", "shaping_gamma": 0.9},
    "clip": {"model": {"kind": "clip"}},
    "pbrs_clip": {"shaping": {"kind": "clip"}},
    "program": {"model": {"kind": "program", "path": "reference"}},
}
"""The short names :func:`parse_reward` accepts, and the spec each stands for."""


def format_validation_error(err: ValidationError, where: str) -> str:
    """Every invalid field on one line: ``<where>.<field path>: <message>``, joined by ``; ``.

    A message that already starts with its field's name (a nested spec checked by a
    validator, such as a reward inside a variant) is not prefixed with it twice.
    """
    lines = []
    for e in err.errors():
        loc = [str(part) for part in e["loc"]]
        message = e["msg"].removeprefix("Value error, ")
        if loc and message.startswith(loc[-1]) and message[len(loc[-1]) :][:1] in (".", ":", "["):
            lines.append(".".join([where, *loc[:-1], message]))
        else:
            lines.append(f"{'.'.join([where, *loc])}: {message}")
    return "; ".join(lines)


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that rejects a key given twice in one mapping (PyYAML keeps the
    last silently: two variants named alike would become one)."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    repeated = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: construct_mapping reports it
                    continue
                if repeated:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} is given twice", key_node.start_mark
                    )
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, where: str) -> Any:
    """The data of YAML ``text``, read safely, with no key given twice in a mapping.

    Raises:
        ValueError: On one line: ``<where>: not valid YAML: <problem> (line L, column C)``.
    """
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  (a SafeLoader)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ValueError(f"{where}: not valid YAML: {problem}{at}") from None


def read_text_file(path: str | os.PathLike[str], what: str) -> str:
    """The text of the file at ``path``; ``what`` names it in errors (e.g. ``"spec file"``).

    Raises:
        ValueError: On one line, naming the file: missing, a folder, unreadable or not text.
    """
    file = Path(path)
    if not file.exists():
        raise ValueError(f"no {what} at {file}")
    if file.is_dir():
        raise ValueError(f"the {what} {file} is a folder; give the file")
    try:
        return file.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read the {what} {file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"the {what} {file} is not a text (UTF-8) file") from None


def read_yaml_file(path: str | os.PathLike[str], what: str) -> Any:
    """The data of the YAML file at ``path`` (read as :func:`load_yaml` reads text).

    Raises:
        ValueError: On one line, naming the file (``what``): missing, a folder, unreadable,
            not text or not valid YAML.
    """
    return load_yaml(read_text_file(path, what), f"{what} {path}")


PRESET_PREFIX = "preset:"
"""``preset:NAME`` names a published setup of :mod:`rewardlab.presets` wherever a reward, a
comparison spec or a search config is read."""


def preset_spec(value: str, kind: str, where: str) -> dict[str, Any]:
    """The spec of preset ``value`` (``preset:NAME``), which must be of ``kind``.

    Raises:
        ValueError: An unknown preset (naming the close ones) or one of another kind (naming
            the presets of this kind), prefixed by ``where``.
    """
    from rewardlab.presets import list_presets, load_preset

    try:
        preset = load_preset(value.removeprefix(PRESET_PREFIX))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if preset.kind != kind:
        same = [n for n in list_presets() if load_preset(n).kind == kind]
        raise ValueError(
            f"{where}: preset {preset.name} is a {preset.kind} preset, not a {kind}; the "
            f"{kind} presets: {', '.join(same)}"
        )
    return dict(preset.spec)


def parse_reward(value: str | Mapping[str, Any] | RewardSpec, where: str = "reward") -> RewardSpec:
    """A :class:`RewardSpec` from a short name, ``preset:NAME`` (a reward preset of
    :mod:`rewardlab.presets`), a YAML mapping string or a mapping.

    Raises:
        ValueError: Naming the field (``where`` prefixes its path) and what is wrong, or the
            close short names for an unknown one.
    """
    if isinstance(value, RewardSpec):
        return value
    data: Any = value
    if isinstance(value, str) and value.startswith(PRESET_PREFIX):
        data = preset_spec(value, "reward", where)
    elif isinstance(value, str):
        if value in REWARD_SHORTHANDS:
            data = REWARD_SHORTHANDS[value]
        else:
            data = load_yaml(value, f"{where} {value!r}")
            if not isinstance(data, Mapping):
                close = difflib.get_close_matches(value, list(REWARD_SHORTHANDS), n=3)
                hint = f" (did you mean {close}?)" if close else ""
                raise ValueError(
                    f"{where}: unknown reward {value!r}{hint}; use one of "
                    f"{sorted(REWARD_SHORTHANDS)} or a mapping like '{{shaping: progress}}'"
                )
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a name or a mapping, got {type(data).__name__}")
    try:
        return RewardSpec.model_validate(dict(data))
    except ValidationError as err:
        raise ValueError(format_validation_error(err, where)) from None


_NEEDS_WHY = {
    "progress": (
        "the progress potential of pbrs, pbrs_mismatched and progress_bonus",
        "register the env's task with a progress (rewardlab.register_task(env_id, ..., "
        'progress=...), README "Your own env"), or shape with a reward model instead '
        "({shaping: {kind: clip}})",
    ),
    "is_success": (
        "the evaluation on the true task (every run is judged on its success rate)",
        "register the env's task with its success (rewardlab.register_task(env_id, goal=..., "
        'success=...), README "Your own env")',
    ),
}
_FEATURE_OF_KEY = {"progress": "progress", "is_success": "success"}


def check_info_keys(
    spec: RewardSpec,
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    evaluation: bool = False,
) -> None:
    """Raise unless the step info of the env a run trains on (:func:`rewardlab.make` of
    ``env_id`` with ``env_kwargs`` and the spec's ``reward_type``; one reset and one step) has
    every key the run reads: an ``info`` model's key, ``progress`` for progress shaping or a
    progress bonus, and with ``evaluation`` ``is_success``. A missing one fails before
    training, not at its first step (or, for ``is_success``, after the whole run).

    Raises:
        ValueError: Naming the missing key, what reads it, what the env reports and what to
            do; for an env with a registered task that lacks the feature,
            :class:`~rewardlab.envs.tasks.MissingTaskFeature` naming what to register.
    """
    needs = {
        part.key: ("the info reward model", "read one of those")
        for part in (spec.model, spec.shaping)
        if isinstance(part, InfoModelSpec)
    }
    if spec.shaping == "progress" or spec.progress_bonus is not None:
        needs.setdefault("progress", _NEEDS_WHY["progress"])
    if evaluation:
        needs.setdefault("is_success", _NEEDS_WHY["is_success"])
    if not needs:
        return
    from rewardlab.envs.core import get_task
    from rewardlab.envs.tasks import TaskNotFound, make, resolve_env_id

    env_id = resolve_env_id(env_id)
    kwargs = dict(env_kwargs or {})
    if spec.reward_type is not None:
        kwargs["reward_type"] = spec.reward_type
    try:
        env = make(env_id, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{env_id} rejects env_kwargs {kwargs}: {exc}") from None
    with env:
        try:
            task = get_task(env)
        except TaskNotFound:
            pass
        else:
            for key in needs:
                if key in _FEATURE_OF_KEY:
                    task.require(_FEATURE_OF_KEY[key], needs[key][0])
        try:
            env.reset(seed=0)
            env.action_space.seed(0)
            info = env.step(env.action_space.sample())[4]
        except Exception as exc:  # noqa: BLE001 (the env's or a user's task code, any error)
            detail = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            raise ValueError(
                f"{env_id} failed on its first reset and step, before any training: "
                f"{type(exc).__name__}: {detail}"
            ) from None
    for key, (why, what_to_do) in needs.items():
        if key not in info:
            raise ValueError(
                f"info key {key!r}, which {why} reads, is not in {env_id}'s step info, which "
                f"has {sorted(info)}; {what_to_do}"
            )


def build_model(
    spec: BuiltModelSpec,
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
) -> Any:
    """The :class:`~rewardlab.reward_models.base.RewardModel` a model spec describes.

    CLIP prompts default to the task's own (``rewardlab.get_task`` of
    ``rewardlab.make(env_id, **env_kwargs)``: the task text can depend on the keywords). A
    program is validated against the task's state variables.

    Raises:
        ValueError: A program that cannot be read or is rejected (``ProgramRejected``).
    """
    from rewardlab.reward_models.compose import Affine, InfoReward

    if isinstance(spec, InfoModelSpec):
        info = InfoReward(spec.key)
        if spec.scale == 1.0 and spec.shift == 0.0:
            return info
        return Affine(info, scale=spec.scale, shift=spec.shift)
    from rewardlab.envs import get_task, make
    from rewardlab.reward_models.clip import CLIPRewardModel

    with make(env_id, **(env_kwargs or {})) as env:
        task = get_task(env)
        observation_space = repr(env.observation_space)
    if isinstance(spec, LearnedModelSpec):
        from rewardlab.learned import load_learned_reward

        layout = [(v.name, tuple(v.shape)) for v in task.state_variables]
        if spec.sha256 is not None:
            check_digest(spec.path, spec.sha256, "reward-net checkpoint")
        learned = load_learned_reward(spec.path, env_id, layout, observation_space, spec.device)
        if spec.scale == 1.0 and spec.shift == 0.0:
            return learned
        return Affine(learned, scale=spec.scale, shift=spec.shift)
    if isinstance(spec, ProgramModelSpec):
        from rewardlab.reward_models.program_reward import ProgramReward
        from rewardlab.sandbox import ProgramRejected, SandboxLimits

        task.require("state", "a reward program")
        shapes = {v.name: v.shape for v in task.state_variables}
        try:
            return ProgramReward(
                spec.read_source(task.name),
                shapes,
                limits=SandboxLimits(call_timeout_s=spec.timeout_s),
                clip=(-spec.clip, spec.clip),
                max_exceptions=spec.max_exceptions,
            )
        except ProgramRejected as exc:
            where = spec.path if spec.path is not None else "given as source"
            check = (
                f"; `rewardlab llm-reward check {spec.path} --env {env_id}` shows every problem"
                if spec.path not in (None, "reference")
                else ""
            )
            raise ProgramRejected(
                exc.reason,
                f"reward program {where} rejected ({exc.reason}): {exc.message}{check}",
                exc.line,
            ) from None
    if spec.pretrained is not None and spec.pretrained_sha256 is not None:
        check_digest(
            spec.pretrained, spec.pretrained_sha256, f"CLIP checkpoint file for {spec.model!r}"
        )
    prompts = {k: getattr(spec, k) for k in ("goal", "baseline", "negatives")}
    return CLIPRewardModel.from_task(
        task, spec.clip_options(), **{k: v for k, v in prompts.items() if v is not None}
    )
