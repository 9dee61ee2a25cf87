"""A content-addressed cache of chat-completion responses, for reuse and offline replay.

Each response is one JSON file, ``<dir>/<key[:2]>/<key>.json``, holding the request that
produced it and the server's raw answer. ``key`` is :func:`request_key`: the SHA-256 of the
canonical JSON of what determines the answer.

A request that failed after its retries (an HTTP error status, an answer that is not a chat
completion, an unreachable server, a timeout) leaves a *failure record* beside it instead,
``<dir>/<key[:2]>/<key>.error.json``, holding the request and the error message, so that a
run in which some requests failed can be replayed as it happened. A refused API key is not a
property of the request and is never recorded. Failures live in their own file so that a
stored answer is never overwritten by a failure, even by another process writing the same
key, and so that caches written before failures were recorded read the same.

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
- ``"read_write"`` (default): a stored answer is served from the cache; anything else goes
  to the server, a recorded failure included (it may have been a passing outage), and the
  outcome is stored: an answer replaces the failure record.
- ``"replay"``: offline and deterministic; a stored answer is served, a recorded failure
  fails again with the same message, and anything else raises :class:`ReplayMiss`. The server
  is never contacted.
- ``"record"``: every request goes to the server; its answer replaces any stored one. Its
  failure is recorded unless an answer is already stored, which a failure never replaces
  (so replaying such a run serves that answer where the run saw the failure).
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

# Bumped when the key's contents or the file layout change incompatibly, so old entries miss
# instead of being misread. Failure records (``<key>.error.json``) did not need it: older
# code never opens them, and caches written before them read the same.
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
    """Compact JSON of ``value`` with sorted keys and non-ASCII characters escaped, so that
    equal values always give the same string.

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
    """A one-line digest of a request (as passed to :func:`request_key`) for error messages,
    e.g. ``model='m', 2 messages, seed=3, last (user): 'Write a reward…'``, quoting at most
    ``width`` characters of the last message."""
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
    """One folder of cached responses: one JSON file per answered request, and one per failed.

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
        >>> cache.put_failure(key, {"error": "the server answered HTTP 500"}).name[-11:]
        '.error.json'
        >>> cache.get_failure(key)["error"]
        'the server answered HTTP 500'
        >>> path = cache.put(key, {"response": {"choices": []}})
        >>> cache.get(key)["response"]
        {'choices': []}
        >>> cache.get_failure(key) is None  # the answer replaced the failure
        True
        >>> cache.put_failure(key, {"error": "timed out"}) is None  # and is never replaced
        True
        >>> path.relative_to(cache.directory).parts[0] == key[:2]
        True
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        """Where the answer for ``key`` is (or would be) stored."""
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"cache keys are 64 lowercase hex digits (sha256), got {key!r}")
        return self.directory / key[:2] / f"{key}.json"

    def failure_path(self, key: str) -> Path:
        """Where the failure record for ``key`` is (or would be) stored."""
        return self.path(key).with_suffix(".error.json")

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored answer record for ``key``, or None if there is none.

        Raises:
            ValueError: If the file exists but is not a record written by :meth:`put` (edited
                by hand, or written by something else); the message names the file.
        """
        return _read(self.path(key), key)

    def get_failure(self, key: str) -> dict[str, Any] | None:
        """The stored failure record for ``key``, or None if there is none.

        Raises:
            ValueError: If the file exists but is not a record written by :meth:`put_failure`
                (no ``error`` message, say); the message names the file.
        """
        path = self.failure_path(key)
        record = _read(path, key)
        if record is not None and not (isinstance(record.get("error"), str) and record["error"]):
            raise ValueError(
                f"cache file {path} is a failure record without an error message; delete it "
                "to ask the server again"
            )
        return record

    def put(self, key: str, record: Mapping[str, Any]) -> Path:
        """Store the answer ``record`` (any JSON object) for ``key``, atomically.

        The record is stored with a ``key`` field added, which :meth:`get` checks. A failure
        record of the same key is deleted: the answer supersedes it.

        Returns:
            The file written.
        """
        path = self.path(key)
        _write(path, key, record)
        self.failure_path(key).unlink(missing_ok=True)
        return path

    def put_failure(self, key: str, record: Mapping[str, Any]) -> Path | None:
        """Store the failure ``record`` for ``key``, atomically, unless an answer is stored.

        Args:
            key: The request's cache key.
            record: A JSON object with a non-empty ``error`` message (the request and other
                provenance may go with it); stored with a ``key`` field added.

        Returns:
            The file written, or None if an answer for ``key`` is stored (a failure never
            replaces one; should an answer arrive from elsewhere meanwhile, it still wins,
            since :meth:`get` never reads the failure file).

        Raises:
            ValueError: If ``record`` has no error message.
        """
        if not (isinstance(record.get("error"), str) and record["error"]):
            raise ValueError(
                f"a failure record needs a non-empty 'error' message, got {record.get('error')!r}"
            )
        if self.path(key).exists():
            return None
        path = self.failure_path(key)
        _write(path, key, record)
        return path


def _read(path: Path, key: str) -> dict[str, Any] | None:
    """The record in ``path``, checked to be ``key``'s; None if the file does not exist."""
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


def _write(path: Path, key: str, record: Mapping[str, Any]) -> None:
    """Write ``record`` with ``key`` added to ``path``, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # ASCII with escapes: a server's answer may hold a lone surrogate ("\ud800" is valid JSON),
    # which no UTF-8 file can hold; escaped, it reads back as the same string.
    text = json.dumps({**record, "key": key}, indent=1, sort_keys=True, ensure_ascii=True)
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
