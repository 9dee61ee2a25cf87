"""What a result was made from: file digests and package versions, recorded beside results
and compared across the machines of a cluster."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

__all__ = ["KEY_PACKAGES", "file_sha256", "package_versions"]

KEY_PACKAGES = (
    "rewardlab",
    "gymnasium",
    "stable_baselines3",
    "torch",
    "numpy",
    "mujoco",
    "open_clip_torch",
)
"""The packages whose versions decide what a run computes (compared across a cluster)."""


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of the file at ``path``, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def package_versions(names: Iterable[str] = KEY_PACKAGES) -> dict[str, str]:
    """The installed version of each of ``names`` that is installed."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out
