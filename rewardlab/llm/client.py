"""A small OpenAI-compatible chat-completions client: retries, concurrency, caching, accounting.

It speaks ``POST {base_url}/chat/completions``, which OpenAI, vLLM, llama.cpp's server and
Ollama (``http://localhost:11434/v1``) all serve, using only the standard library.

Several answers to one prompt are **independent concurrent requests**, each with its own
``seed`` (:meth:`ChatClient.sample`); ``n>1`` is never sent, because llama.cpp and Ollama
ignore it and answer once. Answers and failures are cached (:mod:`rewardlab.llm.cache`).

**Timeouts and the server's queue.** :attr:`LLMConfig.timeout_s` runs from when a request is
sent, never while it waits for one of this client's :attr:`LLMConfig.concurrency` slots. It
cannot leave out time the request spends queued *inside the server*, which a client cannot
see: llama.cpp serves ``--parallel`` requests at once, vLLM ``--max-num-seqs``, Ollama
``OLLAMA_NUM_PARALLEL``, and queues the rest, and a queued request is silent until it has been
answered (the client reads whole responses). Set ``concurrency`` at most to the server's
parallel slots, and ``timeout_s`` above the time of one whole answer (``max_tokens`` over the
server's tokens per second, plus the prompt's processing); otherwise requests time out in the
server's queue and are sent again.

**Abandoned work.** A request that timed out, lost its connection after it was sent, or got
HTTP 5xx may still have been worked on (or be worked on yet) by the server, and a retry asks
for all of it again. Such attempts are *abandoned*: each is kept with its answer or failure
(:attr:`Completion.abandoned`, and in the cache record, so a replay counts them as the
recording did) and counted in :class:`Usage` with the prompt tokens sent with them, which the
token budget counts too. Ctrl-C during :meth:`ChatClient.sample` stops the batch at once
(:class:`SampleInterrupted`): no request is sent or retried after it, and the threads waiting
on requests in flight never keep the process alive.

The API key is read from the environment variable named by :attr:`LLMConfig.api_key_env` at
each request. It is not stored in the config, and never written to logs, error messages or
the cache; text a server sends back (an error body that echoes the key, say) has it replaced
by ``***``.
"""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import http.client
import json
import logging
import math
import os
import random
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from rewardlab.llm.cache import (
    CACHE_MODES,
    CacheMode,
    ReplayMiss,
    ResponseCache,
    canonical_json,
    describe_request,
    request_key,
)

logger = logging.getLogger(__name__)

BASE_URL_ENV_VARS = ("REWARDLAB_LLM_BASE_URL", "OPENAI_BASE_URL")
DEFAULT_BASE_URL = "https://api.openai.com/v1"

# Statuses worth asking again: rate limits, timeouts and conflicts reported by the server,
# and every 5xx (overloaded or restarting servers, gateways in between).
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})
# A Retry-After longer than this is probably a daily quota, not a pause: waiting is no help.
_MAX_RETRY_WAIT_S = 60.0
# Characters of a server's answer quoted in an error message.
_SNIPPET = 200
_NOT_FOUND_HINT = "; check the model name and that base_url is the API root (ending in /v1)"
#: Most bytes of one answer read from a server (a completion of ~1M characters, the most
#: ``extract_code`` looks at, fits with room to spare): a broken or hostile server cannot make
#: the client hold gigabytes.
MAX_RESPONSE_BYTES = 16 << 20
# Fields the client sets itself; extra_body may not override them.
_RESERVED_BODY_KEYS = {
    "model": "LLMConfig.model",
    "messages": "the messages argument",
    "temperature": "LLMConfig.temperature",
    "max_tokens": "LLMConfig.max_tokens",
    "seed": "the seed argument of complete() / sample()",
    "n": "ChatClient.sample(messages, k), which sends k independent requests",
    "stream": "nothing: this client reads whole responses",
}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Indirection so tests can observe the waits between retries without sleeping.
_sleep = time.sleep


class LLMError(RuntimeError):
    """A chat request that could not be answered: unreachable server, HTTP error, bad answer."""


class AuthenticationError(LLMError):
    """The server refused the API key (HTTP 401 or 403). Never retried."""


class BudgetExceeded(LLMError):
    """The client's token budget is spent; raised before a request would be sent."""


class SampleInterrupted(KeyboardInterrupt):
    """Ctrl-C (a KeyboardInterrupt) arrived while :meth:`ChatClient.sample` waited for answers.

    Still a KeyboardInterrupt: ``except KeyboardInterrupt`` catches it. The batch was cancelled
    at once: no request that had not started is sent, and none is retried. Requests in flight
    are left to daemon threads, which never keep the process alive; an answer that still
    arrives before the process ends is cached (and counted in :attr:`ChatClient.usage`).

    Attributes:
        completions: One entry per sample, in sample order: the :class:`Completion` of each
            sample that had ended (answered or failed), None for the others.
        in_flight: Requests sent and still unanswered: abandoned, though the server may go on
            computing them.
    """

    def __init__(self, completions: list[Completion | None], in_flight: int) -> None:
        self.completions = completions
        self.in_flight = in_flight
        ended = sum(c is not None for c in completions)
        super().__init__(
            f"interrupted with {ended} of {len(completions)} samples ended and {in_flight} "
            "requests in flight"
        )


class _Cancelled(Exception):
    """A request of a batch that was interrupted: never sent, never recorded."""


def default_base_url() -> str:
    """The server to use when none is given.

    Returns:
        ``$REWARDLAB_LLM_BASE_URL`` if set, else ``$OPENAI_BASE_URL``, else OpenAI's API.
    """
    for name in BASE_URL_ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return DEFAULT_BASE_URL


def _finite_at_least(name: str, value: float, low: float, *, strict: bool = False) -> None:
    """Raise ValueError unless ``value`` is a finite number >= ``low`` (> if ``strict``)."""
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > low if strict else value >= low)
    )
    if not ok:
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {relation} {low}, got {value!r}")


def _int_at_least(name: str, value: int, low: int) -> None:
    """Raise ValueError unless ``value`` is an int >= ``low``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class LLMConfig:
    """Which server and model to ask, and how.

    Attributes:
        model: The model name the server knows, e.g. ``"gpt-4o-mini"``, a vLLM model path
            or an Ollama tag such as ``"qwen2.5-coder:7b"``.
        base_url: The API root, up to and including ``/v1``: ``http://localhost:8000/v1``
            (vLLM), ``http://localhost:8080/v1`` (llama.cpp), ``http://localhost:11434/v1``
            (Ollama). Defaults to :func:`default_base_url`.
        api_key_env: The *name* of the environment variable holding the API key, read at
            each request. If it is unset or empty, no ``Authorization`` header is sent
            (local servers need none).
        temperature: Sampling temperature.
        max_tokens: Cap on the completion's length; None leaves it to the server.
        timeout_s: Seconds to wait for the connection and for each read of the answer,
            from when the request is sent (not while it waits for a ``concurrency`` slot).
            The server answers only when the whole completion is ready, so this covers the
            time the request waits in the *server's* queue, which no client can see, plus
            the time to compute the answer: keep ``concurrency`` at most the server's
            parallel slots, and ``timeout_s`` above one whole answer's time (module
            docstring). A request that times out is abandoned (counted in :class:`Usage`)
            and retried.
        max_retries: Extra attempts after a retryable failure (connection refused or reset,
            timeout, HTTP 408/409/425/429 or 5xx). Other failures are not retried.
        backoff_s: Wait before the first retry; it doubles on each further retry, times a
            jitter factor in ``[0.5, 1]`` drawn from an RNG seeded by the request (so a
            rerun waits the same). A server's ``Retry-After`` takes precedence (capped at
            60 s).
        concurrency: At most this many requests of this client in flight at once; more
            than the server's parallel slots only queues them there (see ``timeout_s``).
        price_per_1k_prompt: USD per 1000 prompt tokens, for :attr:`Usage.cost_usd`.
        price_per_1k_completion: USD per 1000 completion tokens.
        extra_body: More request fields, sent as they are, e.g. vLLM's ``top_k`` or Ollama's
            ``{"options": {"num_ctx": 16384}}``. Ollama silently truncates prompts longer than
            its context length (2048 or 4096 tokens by default, depending on the version),
            which Eureka-style prompts with environment source easily exceed: raise
            ``num_ctx`` there. Fields the client sets (``model``, ``messages``,
            ``temperature``, ``max_tokens``, ``seed``, ``n``, ``stream``) are refused.

    Raises:
        ValueError: For a missing model, a malformed ``base_url``, an ``api_key_env`` that
            is not a variable name (a key pasted in by mistake), out-of-range numbers, or a
            reserved ``extra_body`` field.

    Example:
        >>> config = LLMConfig(model="qwen2.5-coder:7b", base_url="http://localhost:11434/v1/")
        >>> config.base_url
        'http://localhost:11434/v1'
        >>> LLMConfig(model="m", concurrency=0)
        Traceback (most recent call last):
        ...
        ValueError: concurrency must be an integer >= 1, got 0
    """

    model: str
    base_url: str = field(default_factory=default_base_url)
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 1.0
    max_tokens: int | None = None
    timeout_s: float = 120.0
    max_retries: int = 4
    backoff_s: float = 1.0
    concurrency: int = 4
    price_per_1k_prompt: float = 0.0
    price_per_1k_completion: float = 0.0
    # A dict makes the config unhashable; leaving it out of the hash keeps configs usable as
    # dict keys while equality still compares it.
    extra_body: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(
                "model must be the model name the server knows, e.g. 'gpt-4o-mini' or "
                f"'qwen2.5-coder:7b', got {self.model!r}"
            )
        object.__setattr__(self, "base_url", _check_base_url(self.base_url))
        if not isinstance(self.api_key_env, str) or not _ENV_NAME.fullmatch(self.api_key_env):
            # Not echoed: a value that is not a variable name may well be the key itself.
            raise ValueError(
                "api_key_env is the NAME of the environment variable holding the API key "
                "(e.g. 'OPENAI_API_KEY'), not the key itself; got a value that is not a "
                "variable name. Put the key in that variable."
            )
        _finite_at_least("temperature", self.temperature, 0.0)
        if self.max_tokens is not None:
            _int_at_least("max_tokens", self.max_tokens, 1)
        _finite_at_least("timeout_s", self.timeout_s, 0.0, strict=True)
        _int_at_least("max_retries", self.max_retries, 0)
        _finite_at_least("backoff_s", self.backoff_s, 0.0)
        _int_at_least("concurrency", self.concurrency, 1)
        _finite_at_least("price_per_1k_prompt", self.price_per_1k_prompt, 0.0)
        _finite_at_least("price_per_1k_completion", self.price_per_1k_completion, 0.0)
        if not isinstance(self.extra_body, Mapping):
            raise ValueError(
                f"extra_body must be a dict of request fields, got {type(self.extra_body).__name__}"
            )
        for name in self.extra_body:
            if name in _RESERVED_BODY_KEYS:
                raise ValueError(
                    f"extra_body may not set {name!r}: the client sets it; use "
                    f"{_RESERVED_BODY_KEYS[name]} instead"
                )
        try:
            # A private copy, round-tripped through JSON: later edits to the caller's dict
            # cannot change requests or cache keys, and unserializable values fail here.
            body = json.loads(canonical_json(dict(self.extra_body)))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"extra_body must be JSON-serializable: {exc}") from exc
        object.__setattr__(self, "extra_body", body)


def _check_base_url(url: str) -> str:
    """Validate and normalize ``base_url`` (no trailing slash); see :class:`LLMConfig`."""
    if not isinstance(url, str):
        raise ValueError(
            f"base_url must be a string such as 'http://localhost:8000/v1', got {url!r}"
        )
    url = url.strip().rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None or parts.password is not None:
        # Not echoed: the URL holds a credential.
        raise ValueError(
            "base_url must not contain credentials (user:password@); put the API key in the "
            "variable named by api_key_env instead"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            "base_url must be an http(s) URL of the API root such as "
            f"'http://localhost:8000/v1', got {url!r}"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"base_url must have no query string or fragment, got {url!r}")
    if parts.path.endswith("/chat/completions"):
        raise ValueError(
            "base_url is the API root, without /chat/completions: use "
            f"{url[: -len('/chat/completions')]!r} instead of {url!r}"
        )
    return url


@dataclass(frozen=True)
class Abandoned:
    """One attempt of a request that the server received but whose answer was never used:
    the server may have computed it (or still be computing it) all the same.

    Attributes:
        reason: ``"timed out"``, ``"connection lost"`` (closed or reset by the server after
            the request was sent) or ``"HTTP <status>"`` (a 5xx).
        seconds: From when the attempt was sent until the client gave up on it.
    """

    reason: str
    seconds: float


@dataclass(frozen=True)
class Completion:
    """One answer, or the reason there is none.

    Attributes:
        text: The answer's ``choices[0].message.content``; ``""`` when ``error`` is set.
        finish_reason: ``"stop"``, or ``"length"`` when ``max_tokens`` cut the answer short;
            None when the server did not say or ``error`` is set.
        prompt_tokens: Prompt tokens, as the server counted them (0 if it did not report).
        completion_tokens: Completion tokens, likewise.
        model: The model the server says answered (falls back to the requested one).
        latency_s: Wall time of this call, retries included (near zero for a cache hit).
        cached: Whether the answer came from the cache; False when ``error`` is set, even
            for a recorded failure that replay mode served (there is no answer).
        error: Why this sample has no answer (only :meth:`ChatClient.sample` returns these;
            :meth:`ChatClient.complete` raises instead); None on success. In replay mode, a
            recorded failure's message, as the recording run had it.
        request_hash: The request's cache key (:func:`~rewardlab.llm.cache.request_key`).
        abandoned: The attempts of this request abandoned before its answer (or its
            failure), in order; for a cached or replayed one, as recorded.
    """

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    model: str
    latency_s: float
    cached: bool
    error: str | None
    request_hash: str
    abandoned: tuple[Abandoned, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether this completion holds an answer."""
        return self.error is None


@dataclass(frozen=True)
class Usage:
    """What a :class:`ChatClient` has used so far.

    Answers count in ``requests``, ``cached`` and the tokens: a failed request (at the server,
    or recorded and replayed) counts in neither and uses none. Work the server was given but
    whose answer was never used counts apart, in the ``abandoned`` fields (cached and replayed
    answers bring theirs as recorded).

    Attributes:
        requests: Answers fetched from the server (retries of one request count once).
        cached: Answers served from the cache.
        prompt_tokens: Prompt tokens of every answer, cached ones included, so that a
            replayed run counts (and meets its token budget) exactly as the recorded one.
        completion_tokens: Completion tokens of every answer, likewise.
        cost_usd: Price of the tokens of the answers fetched from the server; cache hits are
            free.
        abandoned: Attempts abandoned (:class:`Abandoned`): timed out, connection lost after
            sending, or HTTP 5xx, whether retried or not.
        abandoned_prompt_tokens: Prompt tokens sent with them, where the server has counted
            that prompt (the same messages answered on any attempt or seed; a request's
            retries resend the same prompt). Their completion tokens are unknown.
        abandoned_unmeasured: Abandoned attempts whose prompt no answer has counted yet, so
            they are not in ``abandoned_prompt_tokens``.
        abandoned_s: Seconds spent waiting on abandoned attempts.
    """

    requests: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    abandoned: int = 0
    abandoned_prompt_tokens: int = 0
    abandoned_unmeasured: int = 0
    abandoned_s: float = 0.0

    @property
    def total_tokens(self) -> int:
        """Prompt and completion tokens of the answers."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def spent_tokens(self) -> int:
        """What the token budget counts: the answers' tokens and the prompt tokens sent with
        abandoned attempts."""
        return self.total_tokens + self.abandoned_prompt_tokens


class ChatClient:
    """Ask an OpenAI-compatible server for chat completions, with a cache and a token budget.

    Thread-safe: one client may serve several threads; :attr:`LLMConfig.concurrency` bounds
    the requests in flight across all of them.

    Errors: :meth:`complete` raises :class:`LLMError`; :meth:`sample` returns a sample that
    failed as a :class:`Completion` with ``error`` set, so one bad answer never loses the
    batch, and raises only what fails every sample alike. A failure (not a refused key) is
    recorded in the cache, and replay mode gives it again, raised or returned alike.

    Args:
        config: Server, model and request settings.
        cache_dir: Folder of the response cache (see :mod:`rewardlab.llm.cache`); None
            disables caching, which modes ``"replay"`` and ``"record"`` need.
        cache_mode: ``"off"``, ``"read_write"``, ``"replay"`` or ``"record"``.
        token_budget: Once this many tokens (:attr:`Usage.spent_tokens`: prompt and
            completion of the answers, cached ones included, and the prompts of abandoned
            attempts) are used, further calls raise :class:`BudgetExceeded` before any
            request is sent. It is checked before each :meth:`complete` and once before each
            :meth:`sample` batch, so a batch may overshoot it; None means no limit.

    Raises:
        ValueError: For an unknown cache mode, ``"replay"``/``"record"`` without a cache
            folder, or a budget that is not a positive integer.

    Example:
        Replay needs no server: a request the cache lacks fails without any network access.

        >>> import tempfile
        >>> from rewardlab.llm.cache import ReplayMiss
        >>> client = ChatClient(
        ...     LLMConfig(model="m", base_url="http://127.0.0.1:9/v1"),
        ...     cache_dir=tempfile.mkdtemp(),
        ...     cache_mode="replay",
        ... )
        >>> try:
        ...     client.complete([{"role": "user", "content": "hi"}])
        ... except ReplayMiss as exc:
        ...     print(exc.digest)
        model='m', 1 message, last (user): 'hi'
        >>> client.usage.requests, client.usage.total_tokens
        (0, 0)
    """

    def __init__(
        self,
        config: LLMConfig,
        cache_dir: str | os.PathLike[str] | None = None,
        cache_mode: CacheMode = "read_write",
        token_budget: int | None = None,
    ) -> None:
        if not isinstance(config, LLMConfig):
            raise TypeError(f"config must be an LLMConfig, got {type(config).__name__}")
        if cache_mode not in CACHE_MODES:
            raise ValueError(f"cache_mode must be one of {CACHE_MODES}, got {cache_mode!r}")
        if cache_dir is None and cache_mode in ("replay", "record"):
            raise ValueError(f"cache_mode {cache_mode!r} needs a cache_dir")
        if token_budget is not None:
            _int_at_least("token_budget", token_budget, 1)
        self.config = config
        self.cache_mode: CacheMode = cache_mode
        self.cache = (
            ResponseCache(cache_dir) if cache_dir is not None and cache_mode != "off" else None
        )
        self.token_budget = token_budget
        self._endpoint = f"{config.base_url}/chat/completions"
        self._slots = threading.BoundedSemaphore(config.concurrency)
        self._lock = threading.Lock()
        self._usage = Usage()
        # By prompt (_prompt_key): its token count once an answer has reported it, and the
        # abandoned attempts still waiting for that count.
        self._prompt_tokens: dict[str, int] = {}
        self._unmeasured: dict[str, int] = {}

    def __repr__(self) -> str:
        return (
            f"ChatClient(model={self.config.model!r}, base_url={self.config.base_url!r}, "
            f"cache_mode={self.cache_mode!r})"
        )

    @property
    def usage(self) -> Usage:
        """A snapshot of the requests, tokens and cost so far."""
        with self._lock:
            return self._usage

    def complete(
        self, messages: Sequence[Mapping[str, Any]], *, seed: int | None = None
    ) -> Completion:
        """Ask for one completion.

        Args:
            messages: Chat messages, ``{"role": ..., "content": ...}`` each.
            seed: Sent as the request's ``seed`` (OpenAI and vLLM honor it) and part of the
                cache key; None sends none.

        Returns:
            The answer (``error`` is always None here).

        Raises:
            LLMError: The server could not be reached, refused the request, or answered
                something that is not a chat completion (after retries where they help); in
                replay mode, the recorded failure of this request, with its message.
            AuthenticationError: The server refused the API key.
            BudgetExceeded: The token budget is already spent.
            ReplayMiss: Cache mode ``"replay"`` and no recorded answer.
            ValueError: For malformed messages.
        """
        request = self._request(messages, seed)
        self._check_budget()
        return self._complete(request)

    def sample(
        self, messages: Sequence[Mapping[str, Any]], k: int, *, seed: int = 0
    ) -> list[Completion]:
        """Ask for ``k`` independent completions of the same messages, concurrently.

        Each sample is its own request with seed ``seed + i`` (``n`` is never sent: llama.cpp
        and Ollama ignore it), run on up to :attr:`LLMConfig.concurrency` threads.

        Args:
            messages: Chat messages, ``{"role": ..., "content": ...}`` each.
            k: How many samples.
            seed: Seed of the first sample.

        Returns:
            ``k`` completions in sample order. One that failed after its retries has
            ``error`` set (and ``text == ""``) instead of raising; in replay mode, so does
            one whose recorded request failed, with the recorded message.

        Raises:
            AuthenticationError: The server refused the API key (every sample would fail).
            BudgetExceeded: The token budget was spent before the batch.
            ReplayMiss: Cache mode ``"replay"`` and a sample has no recorded answer.
            SampleInterrupted: Ctrl-C while waiting: the batch is cancelled at once, and the
                exception holds the samples that had ended.
            ValueError: For malformed messages or ``k < 1``.
        """
        _int_at_least("k", k, 1)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        batch = _Batch([self._request(messages, seed + i) for i in range(k)])
        self._check_budget()
        # Daemon threads, not a ThreadPoolExecutor: the interpreter joins an executor's
        # threads at exit, so Ctrl-C would wait for every request in flight (and every retry
        # and queued sample) before the process could end.
        threads = [
            threading.Thread(
                target=self._work, args=(batch,), name=f"rewardlab-llm-{i}", daemon=True
            )
            for i in range(min(k, self.config.concurrency))
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except BaseException as exc:
            with batch.lock:
                batch.cancel.set()
                ended = [r if isinstance(r, Completion) else None for r in batch.results]
                in_flight = sum(
                    started and result is None
                    for started, result in zip(batch.started, batch.results, strict=True)
                )
            if isinstance(exc, KeyboardInterrupt):
                raise SampleInterrupted(ended, in_flight) from exc
            raise
        # Every sample has ended, so the first fatal error is raised in sample order.
        for result in batch.results:
            if isinstance(result, BaseException):
                raise result
        return [result for result in batch.results if isinstance(result, Completion)]

    # -- internals --

    def _request(self, messages: Sequence[Mapping[str, Any]], seed: int | None) -> dict[str, Any]:
        """What determines the answer (and the cache key), with the messages checked and copied."""
        if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
            raise ValueError(
                "messages must be a non-empty list of {'role': ..., 'content': ...} dicts, "
                f"got {type(messages).__name__}"
            )
        for i, message in enumerate(messages):
            if not isinstance(message, Mapping):
                raise ValueError(f"messages[{i}] must be a dict, got {type(message).__name__}")
            if not isinstance(message.get("role"), str) or "content" not in message:
                raise ValueError(
                    f"messages[{i}] needs a string 'role' and a 'content', got keys "
                    f"{sorted(message)}"
                )
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError(f"seed must be an integer or None, got {seed!r}")
        try:
            copied = json.loads(canonical_json([dict(m) for m in messages]))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"messages must be JSON-serializable: {exc}") from exc
        c = self.config
        return {
            "model": c.model,
            "messages": copied,
            "temperature": c.temperature,
            "max_tokens": c.max_tokens,
            "seed": seed,
            "extra_body": c.extra_body,
        }

    def _work(self, batch: _Batch) -> None:
        """A thread of :meth:`sample`: take the batch's next sample until none is left or the
        batch is cancelled; keep each outcome, an exception included, for the caller."""
        while True:
            with batch.lock:
                if batch.cancel.is_set() or batch.next >= len(batch.requests):
                    return
                index = batch.next
                batch.next += 1
                batch.started[index] = True
            result: Completion | BaseException
            try:
                result = self._sample_one(batch.requests[index], batch.cancel)
            except BaseException as exc:  # noqa: BLE001  (raised in the caller's thread)
                result = exc
            with batch.lock:
                batch.results[index] = result

    def _sample_one(
        self, request: dict[str, Any], cancel: threading.Event | None = None
    ) -> Completion:
        """One sample of :meth:`sample`: a failure becomes an errored Completion unless fatal."""
        start = time.perf_counter()
        abandoned: list[Abandoned] = []
        try:
            return self._complete(request, cancel, abandoned)
        except (AuthenticationError, BudgetExceeded):
            raise
        except LLMError as exc:
            return Completion(
                text="",
                finish_reason=None,
                prompt_tokens=0,
                completion_tokens=0,
                model=self.config.model,
                latency_s=time.perf_counter() - start,
                cached=False,
                error=str(exc),
                request_hash=request_key(request),
                abandoned=tuple(abandoned),
            )

    def _check_budget(self) -> None:
        used = self.usage
        if self.token_budget is not None and used.spent_tokens >= self.token_budget:
            abandoned = (
                f" + {used.abandoned_prompt_tokens} prompt tokens of abandoned attempts"
                if used.abandoned_prompt_tokens
                else ""
            )
            raise BudgetExceeded(
                f"token budget of {self.token_budget} spent: {used.spent_tokens} tokens used "
                f"({used.prompt_tokens} prompt + {used.completion_tokens} completion"
                f"{abandoned}); raise token_budget to continue"
            )

    def _complete(
        self,
        request: dict[str, Any],
        cancel: threading.Event | None = None,
        abandoned: list[Abandoned] | None = None,
    ) -> Completion:
        """One request: from the cache if allowed, else from the server (then cached).

        A failure is cached too, for replay, but not an :class:`AuthenticationError`: a refused
        key says nothing about the request, and replaying it would hide where recording stopped.
        The request's abandoned attempts are appended to ``abandoned`` as they happen (or as
        recorded, for a cached or replayed outcome) and stored with the outcome.
        """
        start = time.perf_counter()
        key, prompt = request_key(request), _prompt_key(request)
        abandoned = [] if abandoned is None else abandoned
        cache = self.cache
        if cache is not None and self.cache_mode in ("read_write", "replay"):
            record = cache.get(key)
            if record is not None:
                source = f"cache file {cache.path(key)}"
                completion = self._parse(record.get("response"), source, key, start)
                self._abandon(prompt, abandoned, _recorded_abandoned(record, source))
                completion = dataclasses.replace(completion, abandoned=tuple(abandoned))
                return self._account(completion, prompt, cached=True)
            if self.cache_mode == "replay":
                failure = cache.get_failure(key)
                if failure is None:
                    raise ReplayMiss(key, describe_request(request), cache.directory)
                source = f"cache file {cache.failure_path(key)}"
                self._abandon(prompt, abandoned, _recorded_abandoned(failure, source))
                raise LLMError(failure["error"])
        # Read once per request: the key sent, and the key kept out of errors and the cache.
        secret = os.environ.get(self.config.api_key_env) or None
        try:
            response, completion = self._fetch(request, key, secret, start, cancel, abandoned)
        except AuthenticationError:
            raise
        except LLMError as exc:
            if cache is not None:
                record = self._record(
                    request,
                    secret,
                    error=str(exc),
                    latency_s=time.perf_counter() - start,
                    **_abandoned_field(abandoned),
                )
                try:
                    cache.put_failure(key, record)
                except OSError as write_error:
                    # The server's failure is what the caller must see; a replay of this
                    # run will miss this request, which the log says.
                    logger.warning(
                        "could not record a failed request in the cache: %s", write_error
                    )
            raise
        completion = dataclasses.replace(completion, abandoned=tuple(abandoned))
        if cache is not None:
            record = self._record(
                request,
                secret,
                response=response,
                latency_s=completion.latency_s,
                **_abandoned_field(abandoned),
            )
            cache.put(key, record)
        return self._account(completion, prompt, cached=False)

    def _fetch(
        self,
        request: dict[str, Any],
        key: str,
        secret: str | None,
        start: float,
        cancel: threading.Event | None,
        abandoned: list[Abandoned],
    ) -> tuple[Any, Completion]:
        """Ask the server; returns its parsed JSON answer and the Completion it holds."""
        # Fields left unset (None) are not sent: the server's default applies.
        sent = ("model", "messages", "temperature", "max_tokens", "seed")
        body = {name: request[name] for name in sent if request[name] is not None}
        body.update(request["extra_body"])
        data = canonical_json(body).encode("ascii")
        raw = self._post(data, key, secret, _prompt_key(request), cancel, abandoned)
        try:
            response = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LLMError(
                f"the LLM server at {self.config.base_url} answered with invalid JSON ({exc}): "
                f"{_snippet(raw, secret)}; is base_url an OpenAI-compatible API root "
                "(ending in /v1)?"
            ) from None
        completion = self._parse(
            response, f"the LLM server at {self.config.base_url}", key, start, raw, secret
        )
        return response, completion

    def _record(
        self, request: dict[str, Any], secret: str | None, **outcome: Any
    ) -> dict[str, Any]:
        """A cache record: the request, provenance and ``outcome``, with the key removed."""
        return _scrub(
            {
                "request": request,
                "base_url": self.config.base_url,
                **outcome,
                "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
            secret,
        )

    def _parse(
        self,
        response: Any,
        source: str,
        key: str,
        start: float,
        raw: bytes | None = None,
        secret: str | None = None,
    ) -> Completion:
        """A Completion from a chat-completion JSON object; LLMError names what is missing."""

        def missing(what: str) -> LLMError:
            shown = raw if raw is not None else json.dumps(response).encode()
            return LLMError(
                f"{source} answered without {what}, which an OpenAI-compatible chat "
                f"completion has: {_snippet(shown, secret)}"
            )

        if not isinstance(response, dict):
            raise missing("a JSON object")
        choices = response.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise missing("choices[0]")
        message = choices[0].get("message")
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise missing("choices[0].message.content (a string)")
        usage = response.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        finish = choices[0].get("finish_reason")
        model = response.get("model")
        text = message["content"]
        if not text.isascii():
            # A lone surrogate (valid in JSON) fails every UTF-8 file and prompt downstream.
            text = text.encode("utf-8", "replace").decode("utf-8")
        return Completion(
            text=text,
            finish_reason=finish if isinstance(finish, str) else None,
            prompt_tokens=_count(usage.get("prompt_tokens")),
            completion_tokens=_count(usage.get("completion_tokens")),
            model=model if isinstance(model, str) and model else self.config.model,
            latency_s=time.perf_counter() - start,
            cached=False,
            error=None,
            request_hash=key,
        )

    def _account(self, completion: Completion, prompt: str, *, cached: bool) -> Completion:
        """Add ``completion`` to the usage (and its prompt's token count to the abandoned
        attempts of that prompt still unmeasured); returns it, marked as cached if it was."""
        c = self.config
        cost = 0.0
        if not cached:
            cost = (
                completion.prompt_tokens * c.price_per_1k_prompt
                + completion.completion_tokens * c.price_per_1k_completion
            ) / 1000.0
        with self._lock:
            u = self._usage
            measured = 0
            if completion.prompt_tokens > 0:
                self._prompt_tokens.setdefault(prompt, completion.prompt_tokens)
                measured = self._unmeasured.pop(prompt, 0)
            self._usage = dataclasses.replace(
                u,
                requests=u.requests + (not cached),
                cached=u.cached + cached,
                prompt_tokens=u.prompt_tokens + completion.prompt_tokens,
                completion_tokens=u.completion_tokens + completion.completion_tokens,
                cost_usd=u.cost_usd + cost,
                abandoned_prompt_tokens=u.abandoned_prompt_tokens
                + measured * self._prompt_tokens.get(prompt, 0),
                abandoned_unmeasured=u.abandoned_unmeasured - measured,
            )
        return dataclasses.replace(completion, cached=True) if cached else completion

    def _abandon(self, prompt: str, into: list[Abandoned], attempts: Sequence[Abandoned]) -> None:
        """Count ``attempts`` (of a request with prompt key ``prompt``) as abandoned work, and
        append them to ``into``. Their prompt tokens count now if an answer has measured the
        prompt, else when one does."""
        if not attempts:
            return
        into.extend(attempts)
        n = len(attempts)
        with self._lock:
            u = self._usage
            tokens = self._prompt_tokens.get(prompt)
            if tokens is None:
                self._unmeasured[prompt] = self._unmeasured.get(prompt, 0) + n
            self._usage = dataclasses.replace(
                u,
                abandoned=u.abandoned + n,
                abandoned_prompt_tokens=u.abandoned_prompt_tokens + n * (tokens or 0),
                abandoned_unmeasured=u.abandoned_unmeasured + n * (tokens is None),
                abandoned_s=u.abandoned_s + sum(a.seconds for a in attempts),
            )

    def _post(
        self,
        body: bytes,
        key: str,
        secret: str | None,
        prompt: str,
        cancel: threading.Event | None,
        abandoned: list[Abandoned],
    ) -> bytes:
        """POST ``body`` with API key ``secret``, retrying where it may help; returns the answer.

        Each attempt the server received but did not answer usefully is counted as abandoned
        (:meth:`_abandon`) as it ends. Once ``cancel`` is set, no further attempt is made."""
        c = self.config
        url = self._endpoint
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        headers["User-Agent"] = "rewardlab"
        if secret is not None:
            headers["Authorization"] = f"Bearer {secret}"
        attempts = c.max_retries + 1
        # Seeded by the request, not shared: the waits are reproducible whatever the order
        # in which threads fail.
        rng = random.Random(key)
        where = f"the LLM server at {c.base_url}"
        kind, detail = "", ""
        for attempt in range(1, attempts + 1):
            retry_after: float | None = None
            lost: str | None = None
            with self._slots:
                if cancel is not None and cancel.is_set():
                    raise _Cancelled()
                # The timeout, and an abandoned attempt's seconds, run from here: waiting for
                # a slot (behind this client's own requests) is no part of them.
                sent = time.perf_counter()
                try:
                    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
                    with urllib.request.urlopen(request, timeout=c.timeout_s) as response:
                        answer = response.read(MAX_RESPONSE_BYTES + 1)
                    if len(answer) > MAX_RESPONSE_BYTES:
                        raise LLMError(
                            f"{where} sent an answer of more than {MAX_RESPONSE_BYTES >> 20} MiB; "
                            "a chat completion is far smaller: check base_url, or lower max_tokens"
                        )
                    return answer
                except urllib.error.HTTPError as exc:
                    status, answer = exc.code, _read_quietly(exc)
                    if status in (401, 403):
                        raise AuthenticationError(
                            f"authentication failed: {where} answered HTTP {status} "
                            f"({_auth_hint(c.api_key_env, secret)}): {_snippet(answer, secret)}"
                        ) from None
                    if status not in _RETRYABLE_4XX and status < 500:
                        hint = _NOT_FOUND_HINT if status == 404 else ""
                        raise LLMError(
                            f"{where} rejected the request with HTTP {status}: "
                            f"{_snippet(answer, secret)}{hint}"
                        ) from None
                    retry_after = _retry_after_s(exc.headers.get("Retry-After"))
                    limited = " (rate limited)" if status == 429 else ""
                    kind = "http"
                    detail = f"answered HTTP {status}{limited}: {_snippet(answer, secret)}"
                    if status >= 500:  # 408, 409, 425 and 429 say the work was not done
                        lost = f"HTTP {status}"
                except urllib.error.URLError as exc:
                    # Raised while connecting or sending: the server never had the request.
                    kind, detail = _connection_failure(exc.reason)
                except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
                    # Raised waiting for or reading the answer: the request had been sent.
                    kind, detail = _connection_failure(exc)
                    lost = "timed out" if kind == "timeout" else "connection lost"
            if lost is not None:
                self._abandon(prompt, abandoned, [Abandoned(lost, time.perf_counter() - sent)])
            if attempt < attempts:
                if retry_after is not None:
                    wait = min(retry_after, _MAX_RETRY_WAIT_S)
                else:
                    wait = c.backoff_s * 2 ** (attempt - 1) * rng.uniform(0.5, 1.0)
                logger.info(
                    "LLM request to %s failed (%s); retrying in %.2f s (attempt %d of %d)",
                    url,
                    detail,
                    wait,
                    attempt + 1,
                    attempts,
                )
                _sleep(wait)
        tried = f"after {attempts} attempt" + ("s" if attempts > 1 else "")
        if kind == "timeout":
            raise LLMError(
                f"{where} did not answer within timeout_s={c.timeout_s:g} s ({tried}); raise "
                "timeout_s, lower max_tokens, or check the server's load"
            )
        if kind == "refused":
            raise LLMError(
                f"could not reach {where}: connection refused ({tried}); is it running? Set "
                f"--base-url / ${BASE_URL_ENV_VARS[0]}"
            )
        if kind == "unreachable":
            raise LLMError(
                f"could not reach {where}: {detail} ({tried}); check the address (--base-url / "
                f"${BASE_URL_ENV_VARS[0]}) and the network"
            )
        raise LLMError(f"{where} {detail} ({tried})")


class _Batch:
    """The shared state of one :meth:`ChatClient.sample` call; ``lock`` guards it."""

    def __init__(self, requests: list[dict[str, Any]]) -> None:
        self.requests = requests
        self.results: list[Completion | BaseException | None] = [None] * len(requests)
        self.started = [False] * len(requests)
        self.next = 0
        self.cancel = threading.Event()
        self.lock = threading.Lock()


def _prompt_key(request: Mapping[str, Any]) -> str:
    """What determines a request's prompt tokens (the model, its messages and server options),
    leaving out what only changes the answer (seed, temperature, max_tokens)."""
    prompt = {name: request[name] for name in ("model", "messages", "extra_body")}
    return hashlib.sha256(canonical_json(prompt).encode("ascii")).hexdigest()


def _abandoned_field(abandoned: Sequence[Abandoned]) -> dict[str, Any]:
    """``{"abandoned": [...]}`` for a cache record, or nothing when there were none."""
    return {"abandoned": [dataclasses.asdict(a) for a in abandoned]} if abandoned else {}


def _recorded_abandoned(record: Mapping[str, Any], source: str) -> list[Abandoned]:
    """The abandoned attempts a cache record holds (none in records written without them).

    Raises:
        ValueError: For a malformed list, naming ``source``.
    """
    entries = record.get("abandoned", [])
    try:
        if not isinstance(entries, list):
            raise TypeError("not a list")
        found = [Abandoned(str(e["reason"]), float(e["seconds"])) for e in entries]
        if not all(math.isfinite(a.seconds) and a.seconds >= 0 for a in found):
            raise ValueError("seconds must be finite and >= 0")
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{source} has a malformed 'abandoned' list ({exc}); delete the file to ask the "
            "server again"
        ) from None
    return found


def _connection_failure(reason: object) -> tuple[str, str]:
    """Classify a failure below HTTP: ``("timeout" | "refused" | "unreachable", detail)``."""
    if isinstance(reason, TimeoutError):
        return "timeout", "timed out"
    if isinstance(reason, ConnectionRefusedError):
        return "refused", "connection refused"
    if isinstance(reason, OSError) and reason.strerror:
        return "unreachable", reason.strerror
    return "unreachable", str(reason) or type(reason).__name__


def _auth_hint(env: str, secret: str | None) -> str:
    """How to fix a refused key, naming the variable and never the key."""
    problem = f"the key in ${env} was refused" if secret else f"no API key sent: ${env} is not set"
    return f"{problem}; set the API key in ${env}"


def _read_quietly(exc: urllib.error.HTTPError) -> bytes:
    """The body of an HTTP error response, or b'' if it cannot be read."""
    try:
        return exc.read(MAX_RESPONSE_BYTES)
    except (OSError, http.client.HTTPException):
        return b""


def _snippet(raw: bytes, secret: str | None) -> str:
    """At most ``_SNIPPET`` characters of a server's answer on one line, with the key removed."""
    text = raw.decode("utf-8", errors="replace")
    if secret:
        text = text.replace(secret, "***")
    text = " ".join(text.split())
    if not text:
        return "(empty body)"
    return text[:_SNIPPET] + ("…" if len(text) > _SNIPPET else "")


def _scrub(value: Any, secret: str | None) -> Any:
    """``value`` with every occurrence of ``secret`` in its strings replaced by ``***``."""
    if not secret:
        return value
    if isinstance(value, str):
        return value.replace(secret, "***")
    if isinstance(value, dict):
        return {_scrub(k, secret): _scrub(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secret) for v in value]
    return value


def _count(value: Any) -> int:
    """A token count from a response's usage; 0 if absent or not a count."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _retry_after_s(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), if usable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None
