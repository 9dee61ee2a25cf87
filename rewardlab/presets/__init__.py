"""Paper presets: published setups as rewardlab reward specs, comparisons and LLM reward searches.

Each preset is one YAML file in this package holding a setting (``spec``: a reward spec, a
comparison spec or an ``llm-reward search`` config, checked by :meth:`Preset.validate` with the
validator rewardlab itself uses) and its provenance: the paper with the sections, tables and
figures read, the code repository with the path and commit of every file read, where each value
comes from (``values``), whether the preset ``follows`` the paper or the code, every place the
two disagree with the side taken and why (``disagreements``), what rewardlab runs differently
and why (``deviations``: a newer Gymnasium env, textures it does not ship, an episode end it
cannot switch off) and what could not be checked (``unverified``). A preset is as faithful as
the paper states its setup and no more, so read its deviations before setting a result beside
the paper's. :func:`preset_warnings` names the published value, and its source, of any CLIP
reward option of a user's spec that is an order of magnitude or more away from it on the same
env; :func:`table` lists every preset with its sources for the README.
"""

from __future__ import annotations

import copy
import difflib
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

if TYPE_CHECKING:
    from rewardlab.reward_spec import ClipModelSpec, RewardSpec

__all__ = ["KINDS", "Preset", "list_presets", "load_preset", "preset_warnings", "table"]

KINDS = ("reward", "comparison", "llm_search")
"""What a preset's ``spec`` is: a reward spec (``--reward``, a comparison variant), a comparison
spec (``rewardlab compare``) or a search config (``rewardlab llm-reward search --config``)."""

_SUFFIX = ".yaml"

# An order of magnitude: a published option and a user's are flagged when their ratio is at
# least this or at most its inverse (the slack absorbs rounding in 0.05 / 0.5 and the like).
_FACTOR = 10.0
_SLACK = 1e-9


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _CodeFile(_Strict):
    path: str = Field(min_length=1)
    commit: str

    @field_validator("commit")
    @classmethod
    def _full_sha(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{40}", value):
            raise ValueError(f"commit must be a full 40-hex-digit sha, got {value!r}")
        return value


class _Code(_Strict):
    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    files: list[_CodeFile] = Field(min_length=1)


class _Disagreement(_Strict):
    what: str = Field(min_length=1)
    paper: str = Field(min_length=1)
    code: str = Field(min_length=1)
    followed: Literal["paper", "code"]
    why: str = Field(min_length=1)


class _Provenance(_Strict):
    paper: str = Field(min_length=1)
    authors: str = Field(min_length=1)
    year: int = Field(ge=1950)
    url: str = Field(pattern=r"^https://")
    sections: list[str] = Field(min_length=1)
    code: _Code
    follows: Literal["paper", "code"]
    values: dict[str, str] = Field(min_length=1)
    disagreements: list[_Disagreement]
    deviations: list[str]
    unverified: list[str]


class _PresetFile(_Strict):
    name: str
    kind: Literal["reward", "comparison", "llm_search"]
    env: str = Field(min_length=1)
    provenance: _Provenance
    spec: dict[str, Any]


@dataclass(frozen=True)
class Preset:
    """A published setup and where each of its values comes from.

    Attributes:
        name: The preset's name (its file's stem).
        kind: One of :data:`KINDS`.
        env: The Gymnasium env id the setup runs on.
        provenance: ``paper``, ``authors``, ``year``, ``url``, ``sections`` (those read),
            ``code`` (``repo`` and ``files``, each a ``path`` and ``commit``), ``follows``
            (``"paper"`` or ``"code"``), ``values`` (each value's source), ``disagreements``
            (``what``, ``paper``, ``code``, ``followed``, ``why``), ``deviations`` and
            ``unverified`` (lists of sentences).
        spec: The setting, as the mapping rewardlab's loaders take.
    """

    name: str
    kind: str
    env: str
    provenance: dict[str, Any]
    spec: dict[str, Any]

    @property
    def citation(self) -> str:
        """``"<first author's surname> et al. <year>"``."""
        first = self.provenance["authors"].split(",")[0].split()[-1]
        return f"{first} et al. {self.provenance['year']}"

    def validate(self) -> Any:
        """The spec checked by the validator rewardlab applies to it, and returned:

        - ``reward``: :func:`rewardlab.reward_spec.parse_reward`, a ``RewardSpec``;
        - ``comparison``: :func:`rewardlab.experiments.comparison_spec.load_spec`, a
          ``ComparisonSpec`` (it makes the env and builds each run's agent once, as
          ``rewardlab compare`` does before training);
        - ``llm_search``: :func:`rewardlab.experiments.llm_reward.search.load_search_config`,
          a ``SearchConfig``.

        Raises:
            ValueError: From that validator, naming the field.
        """
        where = f"preset {self.name}"
        if self.kind == "reward":
            from rewardlab.reward_spec import parse_reward

            return parse_reward(self.spec, where)
        if self.kind == "comparison":
            from rewardlab.experiments.comparison_spec import load_spec

            return load_spec(self.spec)
        from rewardlab.experiments.llm_reward.search import load_search_config

        return load_search_config(self.spec, where)


def list_presets() -> list[str]:
    """The names of the shipped presets, sorted.

    >>> "vlmrm_humanoid_kneeling" in list_presets()
    True
    """
    folder = resources.files(__name__)
    return sorted(
        entry.name.removesuffix(_SUFFIX)
        for entry in folder.iterdir()
        if entry.name.endswith(_SUFFIX) and entry.is_file()
    )


def load_preset(name: str) -> Preset:
    """The preset called ``name``, its file's structure and provenance checked (its ``spec`` is
    checked by :meth:`Preset.validate`).

    >>> preset = load_preset("vlmrm_humanoid_kneeling")
    >>> preset.kind, preset.env, preset.spec["model"]["options"]
    ('reward', 'Humanoid-v5', {'alpha': 0.0})

    Raises:
        ValueError: An unknown name (naming the close ones and listing all), or a preset file
            that is not valid YAML or lacks a provenance field (naming the field).
    """
    names = list_presets()
    if not isinstance(name, str) or name not in names:
        close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown preset {name!r}{hint}; the presets: {', '.join(names)}")
    file = f"{name}{_SUFFIX}"
    parsed, spec = _parse(resources.files(__name__).joinpath(file).read_text(), file)
    if parsed.name != name:
        raise ValueError(f"preset file {file}: name is {parsed.name!r}, not its file's {name!r}")
    preset = Preset(
        name=parsed.name,
        kind=parsed.kind,
        env=parsed.env,
        provenance=parsed.provenance.model_dump(),
        spec=copy.deepcopy(spec),  # the caller's to change: the cached one stays as read
    )
    _check_env(preset, file)
    return preset


@functools.lru_cache(maxsize=64)
def _parse(text: str, file: str) -> tuple[_PresetFile, dict[str, Any]]:
    """A preset file's text checked, and its spec (cached by text: PyYAML is slow, and
    :func:`preset_warnings` reads every preset)."""
    from rewardlab.reward_spec import format_validation_error, load_yaml

    data = load_yaml(text, f"preset file {file}")
    if not isinstance(data, Mapping):
        raise ValueError(f"preset file {file}: expected a mapping, got {type(data).__name__}")
    try:
        parsed = _PresetFile.model_validate(dict(data))
    except ValidationError as err:
        raise ValueError(format_validation_error(err, f"preset file {file}")) from None
    return parsed, dict(data["spec"])


def _check_env(preset: Preset, file: str) -> None:
    """The spec runs on the preset's ``env``."""
    if preset.kind == "comparison":
        ids = [e["id"] if isinstance(e, Mapping) else e for e in preset.spec.get("envs") or []]
    elif preset.kind == "llm_search":
        ids = [preset.spec.get("env")]
    else:
        return  # a reward spec names no env
    if preset.env not in ids:
        raise ValueError(f"preset file {file}: env {preset.env!r} is not the spec's ({ids})")


def _presets(kind: str, env_id: str) -> list[Preset]:
    found = []
    for name in list_presets():
        preset = load_preset(name)
        if preset.kind == kind and preset.env == env_id:
            found.append(preset)
    return found


def _clip_numbers(part: ClipModelSpec, default_scale: float | None = None) -> dict[str, float]:
    """The numeric CLIP options comparable across specs: ``alpha`` of the goal-baseline head
    (the cosine head is its ``alpha = 0`` exactly), and a reward ``scale`` where the spec has
    one (``default_scale`` where it has none)."""
    numbers: dict[str, float] = {}
    options = part.clip_options()
    if options.head == "goal_baseline":
        numbers["alpha"] = float(options.head_options["alpha"])
    elif options.head == "cosine":
        numbers["alpha"] = 0.0
    scale = getattr(part, "scale", default_scale)
    if scale is not None:
        numbers["scale"] = float(scale)
    return numbers


def _apart(value: float, published: float) -> bool:
    """True if ``value`` and ``published`` are an order of magnitude or more apart: a ratio
    of at least 10 or at most 0.1 (a sign flip included), one of them 0 and the other not, or
    either not finite and the two unequal."""
    if not (math.isfinite(value) and math.isfinite(published)):
        return value != published
    if value == 0.0 or published == 0.0:
        return (value == 0.0) != (published == 0.0)
    ratio = value / published
    return ratio >= _FACTOR * (1.0 - _SLACK) or ratio <= (1.0 + _SLACK) / _FACTOR


def preset_warnings(env_id: str, reward_spec: RewardSpec | Mapping[str, Any] | str) -> list[str]:
    """One message per CLIP option of ``reward_spec`` (its reward model and its shaping
    potential) an order of magnitude or more away from the value of a VLM-RM reward preset on
    ``env_id``, naming the preset, the published value and its source; empty when ``env_id``
    has no such preset or the spec has no CLIP model.

    Compared: ``alpha`` of the goal-baseline head (the cosine head counts as ``alpha = 0``;
    0 against nonzero is flagged) and a reward ``scale`` where the spec has one. The other
    heads have no published counterpart.

    >>> preset_warnings("Humanoid-v5", "{model: {kind: clip, options: {alpha: 0.0}}}")
    []
    >>> len(preset_warnings("Humanoid-v5", "clip"))  # alpha 0.5 by default; VLM-RM used 0
    1

    Raises:
        ValueError: ``reward_spec`` is not a valid reward spec (as :func:`parse_reward` says).
    """
    from rewardlab.reward_spec import ClipModelSpec, parse_reward

    spec = parse_reward(reward_spec)
    parts = [
        (part, role)
        for part, role in ((spec.model, "reward model"), (spec.shaping, "shaping potential"))
        if isinstance(part, ClipModelSpec)
    ]
    if not parts:
        return []
    messages = []
    for preset in _presets("reward", env_id):
        published_model = preset.validate().model
        if not isinstance(published_model, ClipModelSpec):
            continue
        published = _clip_numbers(published_model, default_scale=1.0)
        for part, role in parts:
            for option, value in _clip_numbers(part).items():
                if option in published and _apart(value, published[option]):
                    ref = published[option]
                    apart = (
                        "0 against nonzero"
                        if (value == 0.0) != (ref == 0.0)
                        else "an order of magnitude or more apart"
                    )
                    source = preset.provenance["values"].get(option, "the paper")
                    messages.append(
                        f"the {role}'s CLIP {option} is {value:g} on {env_id}, preset "
                        f"{preset.name} uses {ref:g} ({apart}; {preset.citation}: {source}); "
                        f"to train as published, set {option} to {ref:g}"
                    )
    return messages


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def table() -> str:
    """Markdown table of every preset with its sources, for the README.

    >>> table().splitlines()[0]
    '| Preset | Kind | Env | Paper | Code read | Follows | Deviations |'
    """
    lines = [
        "| Preset | Kind | Env | Paper | Code read | Follows | Deviations |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in list_presets():
        p = load_preset(name)
        prov = p.provenance
        commits = sorted({f["commit"][:7] for f in prov["code"]["files"]})
        paper = f"[{p.citation}]({prov['url']}), {', '.join(prov['sections'])}"
        code = f"{prov['code']['repo']} @ {', '.join(commits)}"
        cells = [
            f"`{name}`",
            p.kind,
            f"`{p.env}`",
            paper,
            code,
            prov["follows"],
            str(len(prov["deviations"])),
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)
