"""A content-addressed cache of chat-completion responses, for reuse and offline replay.

Each response is one JSON file, ``<dir>/<key[:2]>/<key>.json``, holding the request that
produced it and the server's raw answer. ``key`` is :func:`request_key`: the SHA-256 of the
canonical JSON of what determines the answer.

**What the key covers**: the model name, the messages, ``temperature``, ``max_tokens``, the
per-request ``seed`` and ``extra_body`` (server options such as Ollama's ``num_ctx`` change
the answer). **What it leaves out**:

- *The API key*, which never reaches the cache (neither key nor file).
- *The server's address* (``base_url``). The model name already says which model answered;
  the address only says where it ran, and it changes between machines (``localhost:8000``
  here, a cluster node there). Leaving it out lets a recorded search replay anywhere,
  including with no server at all. The cost: the same model name served by two backends
  (say, a quantized Ollama build and a vLLM one) shares entries. To keep their answers apart,
  give each its own cache folder, or re-ask with mode ``"record"``. The address is still
  stored in each file (credentials removed) as provenance.

Modes (:data:`CACHE_MODES`), chosen per :class:`~rewardlab.llm.ChatClient`:

- ``"off"``: no reads, no writes.
- ``"read_write"`` (default): a hit is served from the cache; a miss goes to the server and
  its answer is stored.
- ``"replay"``: offline and deterministic; a hit is served, a miss raises :class:`ReplayMiss`
  and the server is never contacted.
- ``"record"``: every request goes to the server; its answer replaces any stored one.

Only successful, well-formed answers are stored; errors are never cached, so a later run
asks again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

CacheMode = Literal["off", "read_write", "replay", "record"]
CACHE_MODES: tuple[CacheMode, ...] = ("off", "read_write", "replay", "record")

# Bumped when the key's contents or the file layout change, so old entries miss instead of
# being misread.
CACHE_FORMAT = 1


class ReplayMiss(LookupError):
    """A request that replay mode found no recorded response for.

    Deliberately not an :class:`~rewardlab.llm.LLMError`: nothing went wrong with a server.
    The recording does not cover this run, and code that recovers from server errors (by
    recording a failed sample, say) must not quietly turn a diverging replay into one.

    Attributes:
        key: The cache key that was looked up.
        digest: A short human-readable description of the request.
    """

    def __init__(self, key: str, digest: str, directory: Path) -> None:
        self.key = key
        self.digest = digest
        super().__init__(
            f"replay mode: no recorded response for request {key[:16]}… ({digest}) in "
            f"{directory}; the run differs from the recorded one, or the recording is "
            f"incomplete. Use cache mode 'read_write' to ask the server for missing answers."
        )


def canonical_json(value: Any) -> str:
    """Serialize ``value`` so that equal values always give the same string.

    Args:
        value: JSON-serializable data (dicts, lists, strings, numbers, booleans, None).

    Returns:
        Compact JSON with sorted keys and non-ASCII characters escaped.

    Raises:
        TypeError: If ``value`` holds something JSON cannot represent.
        ValueError: If it holds NaN or infinity, which JSON cannot represent either.

    Example:
        >>> canonical_json({"b": 1, "a": [1.0, "x"]})
        '{"a":[1.0,"x"],"b":1}'
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def request_key(request: Mapping[str, Any]) -> str:
    """The cache key of a request: SHA-256 of its canonical JSON, as 64 hex digits.

    Args:
        request: What determines the answer (see the module docstring): ``model``,
            ``messages``, ``temperature``, ``max_tokens``, ``seed``, ``extra_body``.

    Returns:
        The hex digest.

    Example:
        >>> a = request_key({"model": "m", "messages": [], "seed": 1})
        >>> a == request_key({"seed": 1, "messages": [], "model": "m"})  # key order is irrelevant
        True
        >>> a == request_key({"model": "m", "messages": [], "seed": 2})
        False
    """
    payload = canonical_json({"format": CACHE_FORMAT, "request": dict(request)})
    return hashlib.sha256(payload.encode("ascii")).hexdigest()


def describe_request(request: Mapping[str, Any], width: int = 60) -> str:
    """A one-line digest of a request, for error messages: model, message count, seed, text.

    Args:
        request: A request as passed to :func:`request_key`.
        width: How many characters of the last message to quote.

    Returns:
        For example ``model='m', 2 messages, seed=3, last (user): 'Write a reward…'``.
    """
    messages = request.get("messages") or []
    count = f"{len(messages)} message" + ("" if len(messages) == 1 else "s")
    parts = [f"model={request.get('model')!r}", count]
    if request.get("seed") is not None:
        parts.append(f"seed={request['seed']}")
    if messages and isinstance(messages[-1], Mapping):
        last = messages[-1]
        content = last.get("content")
        text = content if isinstance(content, str) else canonical_json(content)
        text = " ".join(text.split())
        quoted = text[:width] + ("…" if len(text) > width else "")
        parts.append(f"last ({last.get('role')}): {quoted!r}")
    return ", ".join(parts)


class ResponseCache:
    """One folder of cached responses, one JSON file per request.

    Safe to share between threads and processes: a file appears complete or not at all
    (written to a temporary file in the same folder, then renamed with :func:`os.replace`),
    and two writers of the same key both write a whole file.

    Args:
        directory: The cache folder; created on the first write.

    Example:
        >>> import tempfile
        >>> cache = ResponseCache(tempfile.mkdtemp())
        >>> key = request_key({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        >>> cache.get(key) is None
        True
        >>> path = cache.put(key, {"response": {"choices": []}})
        >>> cache.get(key)["response"]
        {'choices': []}
        >>> path.relative_to(cache.directory).parts[0] == key[:2]
        True
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        """Where the response for ``key`` is (or would be) stored."""
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"cache keys are 64 lowercase hex digits (sha256), got {key!r}")
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored record for ``key``, or None if there is none.

        Raises:
            ValueError: If the file exists but is not a record written by :meth:`put` (edited
                by hand, or written by something else); the message names the file.
        """
        path = self.path(key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"cache file {path} is not valid JSON ({exc}); delete it to ask the server again"
            ) from exc
        if not isinstance(record, dict) or record.get("key") != key:
            raise ValueError(
                f"cache file {path} does not hold the record for key {key}; "
                "delete it to ask the server again"
            )
        return record

    def put(self, key: str, record: Mapping[str, Any]) -> Path:
        """Store ``record`` (any JSON object) for ``key``, atomically; returns the file.

        The record is stored with a ``key`` field added, which :meth:`get` checks.
        """
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({**record, "key": key}, indent=1, sort_keys=True, ensure_ascii=False)
        # Same folder as the target: os.replace is only atomic within one filesystem.
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
