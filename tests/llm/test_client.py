"""ChatClient against a real HTTP server on loopback (tests/llm/fake_server.py)."""

from __future__ import annotations

import email.utils
import json
import re
import threading
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from rewardlab.llm import (
    AuthenticationError,
    BudgetExceeded,
    ChatClient,
    LLMConfig,
    LLMError,
    ReplayMiss,
    ResponseCache,
    request_key,
)
from rewardlab.llm import cache as cache_module
from rewardlab.llm import client as client_module
from tests.llm.fake_server import FakeLLMServer, Reply, unused_port

MESSAGES = [
    {"role": "system", "content": "You write reward functions."},
    {"role": "user", "content": "Write a reward for PushCube."},
]
KEY = "sk-test-9f8e7d6c5b4a"


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Loopback requests must not go through a proxy, and no real key or server may leak in.
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("OPENAI_API_KEY", "REWARDLAB_LLM_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The client's waits between retries, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(client_module, "_sleep", recorded.append)
    return recorded


def config(base_url: str, **overrides: Any) -> LLMConfig:
    settings: dict[str, Any] = {
        "model": "test-model",
        "base_url": base_url,
        "timeout_s": 5.0,
        "max_retries": 2,
        "backoff_s": 0.01,
    }
    return LLMConfig(**{**settings, **overrides})


def cache_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


# -- sampling --


def test_sample_sends_k_concurrent_independent_requests_returned_in_order() -> None:
    def answer(body: dict[str, Any]) -> Reply:
        # The first sample answers last, so arrival order differs from sample order.
        return Reply(content=f"reward for seed {body['seed']}", delay_s=0.45 - 0.05 * body["seed"])

    with FakeLLMServer(answer) as srv:
        client = ChatClient(config(srv.base_url, concurrency=4))
        completions = client.sample(MESSAGES, 4, seed=0)
        assert [c.text for c in completions] == [f"reward for seed {i}" for i in range(4)]
        assert srv.request_count == 4
        assert sorted(srv.seeds) == [0, 1, 2, 3]
        assert all("n" not in body for body in srv.requests)
        assert all(body["messages"] == MESSAGES for body in srv.requests)
        # Real concurrency, counted by the server rather than timed: all four overlapped.
        assert srv.max_in_flight == 4
    assert len({c.request_hash for c in completions}) == 4
    assert all(c.ok and not c.cached and c.finish_reason == "stop" for c in completions)
    assert client.usage.requests == 4


def test_sample_seeds_start_at_seed() -> None:
    with FakeLLMServer() as srv:
        completions = ChatClient(config(srv.base_url)).sample(MESSAGES, 3, seed=100)
        assert sorted(srv.seeds) == [100, 101, 102]
    assert [c.text for c in completions] == [
        f"echo (seed={s}): Write a reward for PushCube." for s in (100, 101, 102)
    ]


def test_concurrency_bounds_requests_in_flight_across_threads() -> None:
    with FakeLLMServer(delay_s=0.1) as srv:
        client = ChatClient(config(srv.base_url, concurrency=2))
        threads = [
            threading.Thread(target=client.sample, args=(MESSAGES, 3), kwargs={"seed": 10 * t})
            for t in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert srv.request_count == 6
        assert srv.max_in_flight == 2


def test_sample_returns_failed_samples_as_errors_without_losing_the_batch() -> None:
    def answer(body: dict[str, Any]) -> Reply | str:
        if body["seed"] == 2:
            return Reply(status=400, body={"error": {"message": "prompt too long"}})
        return f"ok {body['seed']}"

    with FakeLLMServer(answer) as srv:
        client = ChatClient(config(srv.base_url))
        completions = client.sample(MESSAGES, 4)
    assert [c.text for c in completions] == ["ok 0", "ok 1", "", "ok 3"]
    assert [c.error is None for c in completions] == [True, True, False, True]
    error = completions[2].error
    assert error is not None and "HTTP 400" in error and "prompt too long" in error
    assert completions[2].request_hash == request_key(
        {
            "model": "test-model",
            "messages": MESSAGES,
            "temperature": 1.0,
            "max_tokens": None,
            "seed": 2,
            "extra_body": {},
        }
    )
    assert client.usage.requests == 3


def test_complete_sends_seed_max_tokens_and_extra_body_only_when_set() -> None:
    with FakeLLMServer() as srv:
        ChatClient(config(srv.base_url)).complete(MESSAGES)
        extra = {"options": {"num_ctx": 16384}, "top_k": 20}
        client = ChatClient(config(srv.base_url, max_tokens=64, temperature=0.2, extra_body=extra))
        client.complete(MESSAGES, seed=7)
        first, second = srv.requests
    assert set(first) == {"model", "messages", "temperature"}
    assert second == {
        "model": "test-model",
        "messages": MESSAGES,
        "temperature": 0.2,
        "max_tokens": 64,
        "seed": 7,
        "options": {"num_ctx": 16384},
        "top_k": 20,
    }


def test_completion_reports_finish_reason_and_server_model() -> None:
    with FakeLLMServer([Reply(content="cut", finish_reason="length")], model="served") as srv:
        completion = ChatClient(config(srv.base_url)).complete(MESSAGES)
    assert (completion.text, completion.finish_reason, completion.model) == (
        "cut",
        "length",
        "served",
    )


# -- retries --


def test_retries_on_500_with_exponential_seeded_backoff(waits: list[float]) -> None:
    with FakeLLMServer() as srv:
        srv.fail(3, status=500)
        client = ChatClient(config(srv.base_url, max_retries=3, backoff_s=0.1))
        assert client.complete(MESSAGES, seed=1).ok
        assert srv.request_count == 4
        first_waits = list(waits)
        waits.clear()
        srv.fail(3, status=502)
        ChatClient(config(srv.base_url, max_retries=3, backoff_s=0.1)).complete(MESSAGES, seed=1)
    assert len(first_waits) == 3
    for i, wait in enumerate(first_waits):
        assert 0.5 * 0.1 * 2**i <= wait <= 0.1 * 2**i
    assert waits == first_waits  # jitter seeded by the request: a rerun waits the same
    assert client.usage.requests == 1


def test_429_honors_retry_after(waits: list[float]) -> None:
    with FakeLLMServer() as srv:
        srv.fail(1, status=429, retry_after="0.25")
        srv.fail(1, status=429, retry_after="86400")  # a quota reset, not a pause: capped
        completion = ChatClient(config(srv.base_url)).complete(MESSAGES)
        assert srv.request_count == 3
    assert completion.ok
    assert waits == [0.25, 60.0]


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        ("2", 2.0, 2.0),
        ("0.5", 0.5, 0.5),
        ("-3", 0.0, 0.0),
        ("NOW+30s", 25, 30),  # an HTTP date 30 s ahead, made when the test runs
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0, 0.0),  # in the past: retry at once
    ],
    ids=["seconds", "fraction", "negative", "date-ahead", "date-past"],
)
def test_retry_after_accepts_seconds_and_http_dates(header: str, low: float, high: float) -> None:
    if header == "NOW+30s":
        header = email.utils.format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30))
    wait = client_module._retry_after_s(header)
    assert wait is not None and low <= wait <= high


@pytest.mark.parametrize("header", [None, "", "soon", "nan"])
def test_unusable_retry_after_falls_back_to_backoff(header: str | None) -> None:
    assert client_module._retry_after_s(header) is None


def test_retries_exhausted_raise_with_status_and_attempts(waits: list[float]) -> None:
    with FakeLLMServer() as srv:
        srv.fail(10, status=503)
        with pytest.raises(
            LLMError, match=r"answered HTTP 503: .*scripted failure.*\(after 3 attempts\)$"
        ):
            ChatClient(config(srv.base_url, max_retries=2)).complete(MESSAGES)
        assert srv.request_count == 3
    assert len(waits) == 2


def test_client_errors_other_than_auth_are_not_retried(waits: list[float]) -> None:
    with FakeLLMServer() as srv:
        srv.fail(1, status=404, body={"error": {"message": "model 'x' not found"}})
        with pytest.raises(LLMError, match=r"HTTP 404.*model 'x' not found.*check the model name"):
            ChatClient(config(srv.base_url)).complete(MESSAGES)
        assert srv.request_count == 1
    assert waits == []


# -- authentication --


def test_401_fails_fast_naming_the_variable_never_the_key(
    monkeypatch: pytest.MonkeyPatch, waits: list[float]
) -> None:
    monkeypatch.setenv("MY_LLM_KEY", KEY)
    with FakeLLMServer(api_key="sk-the-right-one") as srv:
        client = ChatClient(config(srv.base_url, api_key_env="MY_LLM_KEY", max_retries=3))
        with pytest.raises(AuthenticationError) as info:
            client.complete(MESSAGES)
        assert srv.request_count == 1
        with pytest.raises(AuthenticationError):
            client.sample(MESSAGES, 2)  # every sample would fail alike: raised, not returned
    message = str(info.value)
    assert "authentication failed" in message and "$MY_LLM_KEY" in message
    assert KEY not in message
    assert "Incorrect API key provided: ***" in message  # the server's echo, redacted
    assert waits == []


def test_401_without_a_key_says_the_variable_is_not_set() -> None:
    with FakeLLMServer(api_key="sk-the-right-one") as srv:
        client = ChatClient(config(srv.base_url))
        with pytest.raises(AuthenticationError, match=r"\$OPENAI_API_KEY is not set"):
            client.complete(MESSAGES)


def test_api_key_is_read_at_request_time_and_sent_as_bearer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FakeLLMServer(api_key=KEY) as srv:
        client = ChatClient(config(srv.base_url))
        monkeypatch.setenv("OPENAI_API_KEY", KEY)  # set after the client was made
        assert client.complete(MESSAGES).ok
        assert srv.headers[0]["Authorization"] == f"Bearer {KEY}"
    assert KEY not in repr(client) and KEY not in repr(client.config)


def test_no_authorization_header_without_a_key() -> None:
    with FakeLLMServer() as srv:
        ChatClient(config(srv.base_url)).complete(MESSAGES)
        assert "Authorization" not in srv.headers[0]


# -- unreachable, malformed, slow --


def test_unreachable_server_gives_a_clear_error_after_retries(waits: list[float]) -> None:
    base_url = f"http://127.0.0.1:{unused_port()}/v1"
    client = ChatClient(config(base_url, max_retries=2))
    with pytest.raises(LLMError) as info:
        client.complete(MESSAGES)
    message = str(info.value)
    assert f"could not reach the LLM server at {base_url}: connection refused" in message
    assert "is it running?" in message and "REWARDLAB_LLM_BASE_URL" in message
    assert "after 3 attempts" in message
    assert len(waits) == 2
    completions = client.sample(MESSAGES, 2)
    assert all(c.error is not None and "connection refused" in c.error for c in completions)


def test_malformed_json_is_an_error_quoting_at_most_200_characters(tmp_path: Path) -> None:
    garbage = "<html>" + "x" * 1000
    with FakeLLMServer([Reply(body=garbage)]) as srv:
        with pytest.raises(LLMError, match=r"invalid JSON .*: <html>xxx") as info:
            ChatClient(config(srv.base_url), cache_dir=tmp_path).complete(MESSAGES)
        assert srv.request_count == 1
    assert "<html>" + "x" * 194 + "…;" in str(info.value)  # the first 200 characters
    assert "x" * 195 not in str(info.value)
    # A failure record (for replay mode), no answer: a later read_write run asks again.
    assert [p.name[64:] for p in cache_files(tmp_path)] == [".error.json"]


def test_lone_surrogates_in_an_answer_are_replaced_and_cached(tmp_path: Path) -> None:
    body = b'{"choices": [{"message": {"content": "caf\\u00e9 \\ud800!"}}]}'
    with FakeLLMServer([body]) as srv:
        first = ChatClient(config(srv.base_url), cache_dir=tmp_path).complete(MESSAGES)
        replayed = ChatClient(config(srv.base_url), cache_dir=tmp_path, cache_mode="replay")
        assert replayed.complete(MESSAGES).text == first.text
        assert srv.request_count == 1
    assert first.text == "caf\u00e9 ?!"
    first.text.encode("utf-8")  # writable anywhere


def test_an_oversized_answer_is_an_error_read_no_further(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "MAX_RESPONSE_BYTES", 1000)
    with FakeLLMServer([Reply(content="x" * 2000), Reply(content="y" * 100)]) as srv:
        client = ChatClient(config(srv.base_url), cache_dir=tmp_path)
        with pytest.raises(LLMError, match=r"an answer of more than .* check base_url"):
            client.complete(MESSAGES)
        assert srv.request_count == 1  # not retried: a server that does this does it again
        assert client.complete([{"role": "user", "content": "again"}]).text == "y" * 100


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({"object": "chat.completion"}, "choices[0]"),
        ({"choices": []}, "choices[0]"),
        ({"choices": [{"message": {"role": "assistant"}}]}, "choices[0].message.content"),
        ({"choices": [{"message": {"content": None}}]}, "choices[0].message.content"),
        ([1, 2], "a JSON object"),
    ],
)
def test_response_without_content_names_what_is_missing(body: Any, missing: str) -> None:
    raw = json.dumps(body).encode()
    with FakeLLMServer([raw]) as srv:
        client = ChatClient(config(srv.base_url))
        with pytest.raises(LLMError) as info:
            client.complete(MESSAGES)
    assert f"answered without {missing}" in str(info.value)
    assert json.dumps(body)[:20] in str(info.value)


def test_timeout_is_retried(waits: list[float]) -> None:
    with FakeLLMServer() as srv:
        srv.inject(Reply(content="too late", delay_s=1.0))
        completion = ChatClient(config(srv.base_url, timeout_s=0.2)).complete(MESSAGES)
        assert srv.request_count == 2
    assert completion.text.startswith("echo")
    assert len(waits) == 1


def test_timeouts_exhausted_raise() -> None:
    with FakeLLMServer(delay_s=1.0) as srv:
        client = ChatClient(config(srv.base_url, timeout_s=0.1, max_retries=1))
        with pytest.raises(LLMError, match=r"did not answer within timeout_s=0.1 s \(after 2 "):
            client.complete(MESSAGES)
        assert srv.request_count == 2


# -- accounting --


def test_usage_counts_tokens_and_cost_and_cache_hits_are_free(tmp_path: Path) -> None:
    answer = Reply(content="a b c", usage=(100, 50))
    with FakeLLMServer(lambda body: answer) as srv:
        client = ChatClient(
            config(srv.base_url, price_per_1k_prompt=0.5, price_per_1k_completion=2.0),
            cache_dir=tmp_path,
        )
        first = client.complete(MESSAGES, seed=1)
        client.complete(MESSAGES, seed=2)
        assert (first.prompt_tokens, first.completion_tokens) == (100, 50)
        paid = client.usage
        assert (paid.requests, paid.cached, paid.prompt_tokens, paid.completion_tokens) == (
            2,
            0,
            200,
            100,
        )
        assert paid.cost_usd == pytest.approx(2 * (100 * 0.5 + 50 * 2.0) / 1000)
        assert client.complete(MESSAGES, seed=1).cached
        usage = client.usage
    assert (usage.requests, usage.cached, usage.total_tokens) == (2, 1, 450)
    assert usage.cost_usd == paid.cost_usd


def test_token_budget_stops_before_sending() -> None:
    with FakeLLMServer(lambda body: Reply(content="x", usage=(100, 50))) as srv:
        client = ChatClient(config(srv.base_url), token_budget=250)
        client.complete(MESSAGES, seed=1)
        client.complete(MESSAGES, seed=2)  # 150 < 250 used before it: allowed, overshoots
        with pytest.raises(BudgetExceeded, match=r"token budget of 250 spent: 300 tokens"):
            client.complete(MESSAGES, seed=3)
        with pytest.raises(BudgetExceeded):
            client.sample(MESSAGES, 4)
        assert srv.request_count == 2


def test_a_sample_batch_checks_the_budget_once() -> None:
    with FakeLLMServer(lambda body: Reply(content="x", usage=(100, 50))) as srv:
        client = ChatClient(config(srv.base_url), token_budget=200)
        assert all(c.ok for c in client.sample(MESSAGES, 3))
        assert srv.request_count == 3
    assert client.usage.total_tokens == 450


# -- cache --


def test_read_write_cache_hit_does_not_contact_the_server(tmp_path: Path) -> None:
    with FakeLLMServer() as srv:
        client = ChatClient(config(srv.base_url), cache_dir=tmp_path)
        first = client.sample(MESSAGES, 3, seed=5)
        again = client.sample(MESSAGES, 3, seed=5)
        assert srv.request_count == 3
        client.complete(MESSAGES, seed=99)  # a new seed is a new request
        assert srv.request_count == 4
    assert [c.text for c in again] == [c.text for c in first]
    assert [c.request_hash for c in again] == [c.request_hash for c in first]
    assert all(c.cached for c in again) and not any(c.cached for c in first)
    assert len(cache_files(tmp_path)) == 4
    for path in cache_files(tmp_path):
        assert path.parent.name == path.stem[:2] and len(path.stem) == 64


def test_cache_key_covers_the_answer_determinants_not_the_server_or_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeLLMServer() as one:
        ChatClient(config(one.base_url), cache_dir=tmp_path).complete(MESSAGES, seed=1)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeLLMServer() as other:  # another address, another key: still a hit
        hit = ChatClient(config(other.base_url), cache_dir=tmp_path).complete(MESSAGES, seed=1)
        assert hit.cached and other.request_count == 0
        for changed in ({"temperature": 0.5}, {"max_tokens": 10}, {"extra_body": {"top_k": 5}}):
            ChatClient(config(other.base_url, **changed), cache_dir=tmp_path).complete(
                MESSAGES, seed=1
            )
        ChatClient(config(other.base_url, model="other-model"), cache_dir=tmp_path).complete(
            MESSAGES, seed=1
        )
        assert other.request_count == 4


def test_replay_works_offline_and_a_miss_raises(tmp_path: Path) -> None:
    srv = FakeLLMServer().start()
    recorded = ChatClient(config(srv.base_url), cache_dir=tmp_path).sample(MESSAGES, 3, seed=1)
    base_url = srv.base_url
    srv.stop()

    replay = ChatClient(config(base_url), cache_dir=tmp_path, cache_mode="replay")
    replayed = replay.sample(MESSAGES, 3, seed=1)
    assert [c.text for c in replayed] == [c.text for c in recorded]
    assert all(c.cached for c in replayed)
    assert (replay.usage.requests, replay.usage.cached) == (0, 3)

    with pytest.raises(ReplayMiss) as info:
        replay.complete(MESSAGES, seed=4)
    miss = info.value
    assert miss.key == request_key(
        {
            "model": "test-model",
            "messages": MESSAGES,
            "temperature": 1.0,
            "max_tokens": None,
            "seed": 4,
            "extra_body": {},
        }
    )
    assert miss.key[:16] in str(miss) and "seed=4" in str(miss)
    assert "'Write a reward for PushCube.'" in miss.digest
    assert not isinstance(miss, LLMError)  # a diverging replay is not a server error
    with pytest.raises(ReplayMiss):
        replay.sample(MESSAGES, 4, seed=1)  # samples 0-2 recorded, sample 3 not


def test_record_mode_always_asks_and_overwrites(tmp_path: Path) -> None:
    with FakeLLMServer(["first", "second"]) as srv:
        ChatClient(config(srv.base_url), cache_dir=tmp_path).complete(MESSAGES, seed=1)
        recorder = ChatClient(config(srv.base_url), cache_dir=tmp_path, cache_mode="record")
        assert recorder.complete(MESSAGES, seed=1).text == "second"
        assert srv.request_count == 2
        reader = ChatClient(config(srv.base_url), cache_dir=tmp_path)
        assert reader.complete(MESSAGES, seed=1).text == "second"
        assert srv.request_count == 2


def test_cache_mode_off_neither_reads_nor_writes(tmp_path: Path) -> None:
    with FakeLLMServer() as srv:
        client = ChatClient(config(srv.base_url), cache_dir=tmp_path, cache_mode="off")
        client.complete(MESSAGES)
        client.complete(MESSAGES)
        assert srv.request_count == 2
    assert cache_files(tmp_path) == []


def test_cache_files_hold_request_and_response_but_never_the_api_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)

    def leaky(body: dict[str, Any]) -> str:
        return f"your key is {KEY}"  # a server that echoes the key must not get it stored

    with FakeLLMServer(leaky, api_key=KEY) as srv:
        ChatClient(config(srv.base_url), cache_dir=tmp_path).sample(MESSAGES, 2)
    files = cache_files(tmp_path)
    assert len(files) == 2
    for path in files:
        text = path.read_text()
        assert KEY not in text and "Authorization" not in text
        record = json.loads(text)
        assert record["request"]["messages"] == MESSAGES
        assert record["response"]["choices"][0]["message"]["content"] == "your key is ***"
        assert record["base_url"].startswith("http://127.0.0.1:")


def test_cache_writes_are_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ResponseCache(tmp_path)
    key = request_key({"model": "m", "messages": MESSAGES})

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(cache_module.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        cache.put(key, {"response": {"text": "x"}})
    assert cache.get(key) is None
    assert cache_files(tmp_path) == []  # no temporary file left behind
    monkeypatch.undo()

    records = [{"response": {"text": str(i) * 10_000}} for i in range(8)]
    threads = [threading.Thread(target=cache.put, args=(key, r)) for r in records]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = cache.get(key)
    assert stored is not None and {"response": stored["response"]} in records
    assert cache_files(tmp_path) == [cache.path(key)]


def test_a_corrupt_cache_file_is_an_error_naming_it(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    key = request_key({"model": "m", "messages": MESSAGES})
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_text('{"key": "trunc')
    with pytest.raises(ValueError, match=rf"cache file .*{key}\.json is not valid JSON.*delete it"):
        cache.get(key)


# -- recorded failures --


def request_for(seed: int) -> dict[str, Any]:
    """The request ``config()`` clients send for MESSAGES with ``seed``, as the cache keys it."""
    return {
        "model": "test-model",
        "messages": MESSAGES,
        "temperature": 1.0,
        "max_tokens": None,
        "seed": seed,
        "extra_body": {},
    }


def test_a_sample_batch_with_a_failure_replays_identically_offline(
    tmp_path: Path, waits: list[float]
) -> None:
    def answer(body: dict[str, Any]) -> Reply | str:
        if body["seed"] == 1:
            return Reply(status=500, body={"error": {"message": "model overloaded"}})
        return f"ok {body['seed']}"

    srv = FakeLLMServer(answer).start()
    base_url = srv.base_url
    recorder = ChatClient(config(base_url, max_retries=0), cache_dir=tmp_path)
    recorded = recorder.sample(MESSAGES, 2, seed=0)
    srv.stop()
    assert [c.text for c in recorded] == ["ok 0", ""]
    error = recorded[1].error
    assert error is not None and "HTTP 500" in error and "model overloaded" in error
    failure = json.loads(
        ResponseCache(tmp_path).failure_path(request_key(request_for(1))).read_text()
    )
    assert (failure["error"], failure["request"]) == (error, request_for(1))
    assert "response" not in failure

    # The server is gone: anything not served from the recording would fail differently.
    replay = ChatClient(config(base_url, max_retries=0), cache_dir=tmp_path, cache_mode="replay")
    replayed = replay.sample(MESSAGES, 2, seed=0)
    assert [c.text for c in replayed] == [c.text for c in recorded]
    assert [c.error for c in replayed] == [None, error]
    assert [c.request_hash for c in replayed] == [c.request_hash for c in recorded]
    assert [c.cached for c in replayed] == [True, False]  # a failure holds no answer
    with pytest.raises(LLMError) as info:
        replay.complete(MESSAGES, seed=1)
    assert type(info.value) is LLMError and str(info.value) == error
    # Failures count nowhere, recorded or replayed: the same answers, the same tokens.
    used, again = recorder.usage, replay.usage
    assert (used.requests, used.cached, again.requests, again.cached) == (1, 0, 0, 1)
    assert again.total_tokens == used.total_tokens > 0
    assert waits == []


@pytest.mark.parametrize(
    ("reply", "overrides", "says"),
    [
        (Reply(body=b"<html>not json"), {}, "invalid JSON"),
        (Reply(body={"choices": []}), {}, "answered without choices[0]"),
        (Reply(status=503, body="busy"), {}, "HTTP 503"),
        (Reply(content="too late", delay_s=1.0), {"timeout_s": 0.1}, "did not answer within"),
    ],
    ids=["invalid-json", "no-choices", "http-503", "timeout"],
)
def test_a_failed_request_is_replayed_as_the_same_failure(
    tmp_path: Path, reply: Reply, overrides: dict[str, Any], says: str
) -> None:
    with FakeLLMServer([reply]) as srv:
        cfg = config(srv.base_url, max_retries=0, **overrides)
        with pytest.raises(LLMError, match=re.escape(says)) as recorded:
            ChatClient(cfg, cache_dir=tmp_path).complete(MESSAGES, seed=3)
        replay = ChatClient(cfg, cache_dir=tmp_path, cache_mode="replay")
        with pytest.raises(LLMError) as replayed:
            replay.complete(MESSAGES, seed=3)
        [sampled] = replay.sample(MESSAGES, 1, seed=3)
        assert srv.request_count == 1
    assert str(replayed.value) == str(recorded.value) == sampled.error


def test_an_unreachable_server_is_recorded_and_replayed(tmp_path: Path) -> None:
    cfg = config(f"http://127.0.0.1:{unused_port()}/v1", max_retries=0)
    [recorded] = ChatClient(cfg, cache_dir=tmp_path).sample(MESSAGES, 1)
    assert recorded.error is not None and "connection refused" in recorded.error
    [replayed] = ChatClient(cfg, cache_dir=tmp_path, cache_mode="replay").sample(MESSAGES, 1)
    assert replayed.error == recorded.error


def test_read_write_asks_again_for_a_recorded_failure_and_keeps_the_answer(
    tmp_path: Path,
) -> None:
    cache = ResponseCache(tmp_path)
    key = request_key(request_for(7))
    with FakeLLMServer() as srv:
        client = ChatClient(config(srv.base_url, max_retries=0), cache_dir=tmp_path)
        srv.fail(1, status=500)
        with pytest.raises(LLMError, match="HTTP 500"):
            client.complete(MESSAGES, seed=7)
        assert cache.get_failure(key) is not None
        answer = client.complete(MESSAGES, seed=7)  # the failure is not served: asked again
        base_url = srv.base_url
        assert srv.request_count == 2 and answer.ok and not answer.cached
        assert cache.get(key) is not None and cache.get_failure(key) is None
        assert cache_files(tmp_path) == [cache.path(key)]
        assert client.complete(MESSAGES, seed=7).cached
        assert srv.request_count == 2
    replayed = ChatClient(config(base_url), cache_dir=tmp_path, cache_mode="replay")
    assert replayed.complete(MESSAGES, seed=7).text == answer.text


def test_a_failure_never_replaces_a_stored_answer(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    with FakeLLMServer(["stored"]) as srv:
        ChatClient(config(srv.base_url), cache_dir=tmp_path).complete(MESSAGES, seed=1)
        srv.fail(1, status=500)
        recorder = ChatClient(
            config(srv.base_url, max_retries=0), cache_dir=tmp_path, cache_mode="record"
        )
        with pytest.raises(LLMError, match="HTTP 500"):
            recorder.complete(MESSAGES, seed=1)
        assert srv.request_count == 2
        base_url = srv.base_url
    assert cache_files(tmp_path) == [cache.path(request_key(request_for(1)))]
    replay = ChatClient(config(base_url), cache_dir=tmp_path, cache_mode="replay")
    assert replay.complete(MESSAGES, seed=1).text == "stored"


def test_a_refused_key_is_not_recorded(tmp_path: Path) -> None:
    with FakeLLMServer(api_key="sk-the-right-one") as srv:
        client = ChatClient(config(srv.base_url), cache_dir=tmp_path)
        with pytest.raises(AuthenticationError):
            client.complete(MESSAGES, seed=1)
        with pytest.raises(AuthenticationError):
            client.sample(MESSAGES, 2, seed=1)
    assert cache_files(tmp_path) == []
    replay = ChatClient(client.config, cache_dir=tmp_path, cache_mode="replay")
    with pytest.raises(ReplayMiss):
        replay.complete(MESSAGES, seed=1)
    with pytest.raises(ReplayMiss):
        replay.sample(MESSAGES, 2, seed=1)


def test_failure_records_never_hold_the_api_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeLLMServer() as srv:
        srv.fail(1, status=500, body={"error": {"message": f"bad request with key {KEY}"}})
        cfg = config(srv.base_url, max_retries=0)
        [recorded] = ChatClient(cfg, cache_dir=tmp_path).sample(MESSAGES, 1)
    assert recorded.error is not None and "bad request with key ***" in recorded.error
    [path] = cache_files(tmp_path)
    assert KEY not in path.read_text() and "Authorization" not in path.read_text()
    replay = ChatClient(cfg, cache_dir=tmp_path, cache_mode="replay")
    with pytest.raises(LLMError) as info:
        replay.complete(MESSAGES, seed=0)  # sample()'s first seed
    assert str(info.value) == recorded.error


def test_failure_records_are_checked(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    key = request_key({"model": "m", "messages": MESSAGES})
    with pytest.raises(ValueError, match="needs a non-empty 'error' message, got None"):
        cache.put_failure(key, {"response": {}})
    cache.failure_path(key).parent.mkdir(parents=True)
    cache.failure_path(key).write_text(json.dumps({"key": key, "error": ""}))
    with pytest.raises(ValueError, match=r"\.error\.json is a failure record without an error"):
        cache.get_failure(key)


# -- configuration --


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"model": ""}, "model must be the model name"),
        ({"base_url": "localhost:8000/v1"}, "must be an http"),
        ({"base_url": "http://localhost:8000/v1/chat/completions"}, "without /chat/completions"),
        ({"base_url": "http://h/v1?key=1"}, "no query string"),
        ({"temperature": -0.1}, "temperature must be a finite number >= 0"),
        ({"max_tokens": 0}, "max_tokens must be an integer >= 1"),
        ({"timeout_s": 0}, "timeout_s must be a finite number > 0"),
        ({"max_retries": -1}, "max_retries must be an integer >= 0"),
        ({"backoff_s": float("nan")}, "backoff_s must be a finite number"),
        ({"concurrency": 0}, "concurrency must be an integer >= 1"),
        ({"price_per_1k_prompt": -1.0}, "price_per_1k_prompt"),
        ({"extra_body": {"n": 4}}, r"may not set 'n'.*sample\(messages, k\)"),
        ({"extra_body": {"seed": 4}}, "may not set 'seed'"),
        ({"extra_body": {"x": object()}}, "JSON-serializable"),
    ],
)
def test_config_rejects_bad_values(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LLMConfig(**{"model": "m", **overrides})


def test_config_never_echoes_a_secret() -> None:
    with pytest.raises(ValueError, match="NAME of the environment variable") as info:
        LLMConfig(model="m", api_key_env=KEY)
    assert KEY not in str(info.value)
    with pytest.raises(ValueError, match="must not contain credentials") as info:
        LLMConfig(model="m", base_url=f"http://user:{KEY}@localhost:8000/v1")
    assert KEY not in str(info.value)


def test_default_base_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert LLMConfig(model="m").base_url == "https://api.openai.com/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://openai-compatible:1/v1")
    assert LLMConfig(model="m").base_url == "http://openai-compatible:1/v1"
    monkeypatch.setenv("REWARDLAB_LLM_BASE_URL", "http://localhost:11434/v1/")
    assert LLMConfig(model="m").base_url == "http://localhost:11434/v1"


def test_extra_body_is_copied() -> None:
    extra = {"options": {"num_ctx": 16384}}
    cfg = LLMConfig(model="m", extra_body=extra)
    extra["options"]["num_ctx"] = 1
    assert cfg.extra_body == {"options": {"num_ctx": 16384}}
    assert hash(cfg) == hash(LLMConfig(model="m", extra_body={"options": {"num_ctx": 16384}}))


def test_client_rejects_bad_arguments(tmp_path: Path) -> None:
    cfg = LLMConfig(model="m", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="cache_mode must be one of"):
        ChatClient(cfg, cache_dir=tmp_path, cache_mode="replay-ish")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'replay' needs a cache_dir"):
        ChatClient(cfg, cache_mode="replay")
    with pytest.raises(ValueError, match="token_budget must be an integer >= 1"):
        ChatClient(cfg, token_budget=0)
    client = ChatClient(cfg)
    with pytest.raises(ValueError, match="non-empty list"):
        client.complete([])
    with pytest.raises(ValueError, match=r"messages\[0\] needs a string 'role'"):
        client.complete([{"content": "hi"}])
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        client.sample(MESSAGES, 0)


# -- the fake server itself --


def test_fake_server_dict_script_and_models_route() -> None:
    script = {"PushCube": "push reward", "Reach": Reply(content="reach reward")}
    with FakeLLMServer(script, model="served-model") as srv:
        client = ChatClient(config(srv.base_url))
        assert client.complete(MESSAGES).text == "push reward"
        reach = [{"role": "user", "content": "Write a reward for Reach."}]
        assert client.complete(reach).text == "reach reward"
        with pytest.raises(LLMError, match="no scripted key"):
            client.complete([{"role": "user", "content": "Something else"}])
        with urllib.request.urlopen(f"{srv.base_url}/models", timeout=5) as response:
            models = json.load(response)
    assert models["data"][0]["id"] == "served-model"


def test_a_cache_that_cannot_record_a_failure_leaves_the_server_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def full_disk(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_module.ResponseCache, "put_failure", full_disk)
    with FakeLLMServer() as srv:
        srv.fail(times=1, status=500)
        client = ChatClient(config(srv.base_url, max_retries=0), cache_dir=tmp_path)
        with pytest.raises(LLMError, match="500"):
            client.complete(MESSAGES)
    assert "could not record a failed request" in caplog.text
