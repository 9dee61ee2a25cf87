"""The client against servers as they behave under load: requests that time out in the
server's queue or are dropped are counted as abandoned work (and replayed as recorded), the
timeout never counts the client's own queue, and Ctrl-C stops a batch at once. A real HTTP
server on loopback (tests/llm/fake_server.py); Ctrl-C is a real SIGINT to a fresh
interpreter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from rewardlab.llm import (
    Abandoned,
    BudgetExceeded,
    ChatClient,
    LLMConfig,
    ResponseCache,
    request_key,
)
from rewardlab.llm import client as client_module
from tests.llm.fake_server import FakeLLMServer, Reply, unused_port
from tests.llm.test_client import MESSAGES, request_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries without their backoff waits; no key, no proxy."""
    monkeypatch.setattr(client_module, "_sleep", lambda seconds: None)
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def config(base_url: str, **overrides: Any) -> LLMConfig:
    settings: dict[str, Any] = {"model": "test-model", "base_url": base_url, "max_retries": 2}
    return LLMConfig(**{**settings, "timeout_s": 5.0, **overrides})


def test_the_timeout_runs_from_sending_not_while_queued_behind_the_clients_own_requests() -> None:
    # One slot, three samples of 0.3 s each: the last waits 0.6 s for its slot, longer than
    # the timeout, and must not time out for it.
    with FakeLLMServer(delay_s=0.3) as srv:
        client = ChatClient(config(srv.base_url, concurrency=1, timeout_s=0.5, max_retries=0))
        start = time.perf_counter()
        samples = client.sample(MESSAGES, 3)
        took = time.perf_counter() - start
        assert srv.max_in_flight == 1 and srv.request_count == 3
    assert all(s.ok for s in samples) and took >= 0.9
    assert client.usage.abandoned == 0


def test_a_timed_out_attempt_is_abandoned_work_counted_and_replayed(tmp_path: Path) -> None:
    with FakeLLMServer() as srv:
        srv.inject(Reply(content="too late", delay_s=2.0), Reply(content="ok", usage=(100, 7)))
        client = ChatClient(config(srv.base_url, timeout_s=0.3), cache_dir=tmp_path)
        answer = client.complete(MESSAGES, seed=1)
        assert srv.request_count == 2  # the server was asked twice for the same work
    assert answer.text == "ok"
    (lost,) = answer.abandoned
    assert lost.reason == "timed out" and 0.3 <= lost.seconds < 2.0
    used = client.usage
    assert (used.requests, used.prompt_tokens, used.completion_tokens) == (1, 100, 7)
    assert (used.abandoned, used.abandoned_prompt_tokens, used.abandoned_unmeasured) == (1, 100, 0)
    assert used.abandoned_s == pytest.approx(lost.seconds)
    assert used.spent_tokens == 207  # what the budget sees
    # The cache record keeps it, and a replay (no server) counts exactly the same.
    record = json.loads(ResponseCache(tmp_path).path(request_key(request_for(1))).read_text())
    assert record["abandoned"] == [{"reason": "timed out", "seconds": lost.seconds}]
    replay = ChatClient(
        config(f"http://127.0.0.1:{unused_port()}/v1"), cache_dir=tmp_path, cache_mode="replay"
    )
    again = replay.complete(MESSAGES, seed=1)
    assert again.abandoned == answer.abandoned and again.cached
    assert (replay.usage.abandoned, replay.usage.spent_tokens) == (1, 207)


def test_dropped_connections_and_5xx_are_abandoned_but_not_429_or_refused_connections() -> None:
    with FakeLLMServer() as srv:
        srv.inject(Reply(drop=True))
        srv.fail(times=1, status=503)
        srv.fail(times=1, status=429, retry_after="0")
        srv.inject(Reply(content="ok", usage=(40, 2)))
        client = ChatClient(config(srv.base_url, max_retries=3))
        answer = client.complete(MESSAGES)
        assert srv.request_count == 4
    assert [a.reason for a in answer.abandoned] == ["connection lost", "HTTP 503"]
    assert (client.usage.abandoned, client.usage.abandoned_prompt_tokens) == (2, 80)

    # Nothing listens: the server never had the request, so nothing was abandoned.
    down = ChatClient(config(f"http://127.0.0.1:{unused_port()}/v1", max_retries=2))
    (failed,) = down.sample(MESSAGES, 1)
    assert "connection refused" in (failed.error or "") and failed.abandoned == ()
    assert down.usage.abandoned == 0


def test_abandoned_prompts_are_measured_by_any_answer_to_the_same_messages(
    tmp_path: Path,
) -> None:
    def answer(body: dict[str, Any]) -> Reply:
        if body["seed"] == 0:  # never answered in time
            return Reply(content="late", delay_s=2.0)
        return Reply(content="ok", usage=(55, 3))

    with FakeLLMServer(answer) as srv:
        client = ChatClient(config(srv.base_url, timeout_s=0.2, max_retries=1), cache_dir=tmp_path)
        (failed,) = client.sample(MESSAGES, 1, seed=0)
        assert failed.error is not None and len(failed.abandoned) == 2
        before = client.usage
        assert (before.abandoned, before.abandoned_unmeasured) == (2, 2)
        assert before.abandoned_prompt_tokens == 0  # no answer has counted that prompt yet
        # Another seed of the same messages is answered: the same prompt, now measured.
        client.sample(MESSAGES, 1, seed=1)
        after = client.usage
        assert (after.abandoned, after.abandoned_unmeasured) == (2, 0)
        assert after.abandoned_prompt_tokens == 2 * 55
        # Other messages are another prompt: their count says nothing about these.
        other = [{"role": "user", "content": "something else entirely"}]
        client.sample(other, 1, seed=0)
        assert client.usage.abandoned_prompt_tokens == 2 * 55
    failure = json.loads(
        ResponseCache(tmp_path).failure_path(request_key(request_for(0))).read_text()
    )
    assert [a["reason"] for a in failure["abandoned"]] == ["timed out", "timed out"]


def test_the_token_budget_counts_the_prompts_of_abandoned_attempts() -> None:
    with FakeLLMServer() as srv:
        srv.inject(Reply(content="late", delay_s=2.0))
        client = ChatClient(
            config(srv.base_url, timeout_s=0.2),
            token_budget=150,
            # 110 tokens answered; 100 more sent with the attempt that timed out.
        )
        srv.responses = [Reply(content="ok", usage=(100, 10))]
        client.complete(MESSAGES)
        with pytest.raises(BudgetExceeded, match=r"210 tokens used .*100 prompt tokens of aband"):
            client.complete(MESSAGES, seed=5)
        assert srv.request_count == 2


def test_a_malformed_abandoned_list_in_the_cache_names_the_file(tmp_path: Path) -> None:
    with FakeLLMServer([Reply(content="ok")]) as srv:
        ChatClient(config(srv.base_url), cache_dir=tmp_path).complete(MESSAGES, seed=2)
    path = ResponseCache(tmp_path).path(request_key(request_for(2)))
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "abandoned": [{"reason": "x", "seconds": "soon"}]}))
    replay = ChatClient(
        config(f"http://127.0.0.1:{unused_port()}/v1"), cache_dir=tmp_path, cache_mode="replay"
    )
    with pytest.raises(ValueError, match=f"{path.name} has a malformed 'abandoned' list"):
        replay.complete(MESSAGES, seed=2)


def test_abandoned_is_a_public_name() -> None:
    assert Abandoned("timed out", 1.0).reason == "timed out"


# -- Ctrl-C --

SAMPLER = textwrap.dedent(
    """
    import sys
    from rewardlab.llm import ChatClient, LLMConfig, SampleInterrupted

    config = LLMConfig(model="m", base_url=sys.argv[1], concurrency=2, timeout_s=60, max_retries=3)
    client = ChatClient(config, cache_dir=sys.argv[2])
    print("sampling", flush=True)
    try:
        client.sample([{"role": "user", "content": "hi"}], 5)
    except SampleInterrupted as exc:
        ended = [c is not None and c.ok for c in exc.completions]
        print("interrupted", ended, exc.in_flight, isinstance(exc, KeyboardInterrupt), flush=True)
        sys.exit(3)
    """
)


def test_ctrl_c_stops_a_sample_batch_at_once_and_keeps_what_was_answered(tmp_path: Path) -> None:
    def answer(body: dict[str, Any]) -> Reply:
        return Reply(content="quick") if body["seed"] == 0 else Reply(content="slow", delay_s=60)

    with FakeLLMServer(answer) as srv:
        proc = subprocess.Popen(
            [sys.executable, "-c", SAMPLER, srv.base_url, str(tmp_path / "cache")],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # Two slots: seed 0 is answered, seeds 1 and 2 wait at the server, 3 and 4 queue.
            deadline = time.monotonic() + 60
            while srv.request_count < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert srv.request_count == 3
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
            took = time.monotonic() - sent
        finally:
            proc.kill()
        time.sleep(0.3)
        assert srv.request_count == 3  # nothing queued was sent after Ctrl-C, nothing retried
    assert proc.returncode == 3, err
    # It ended at once: the threads waiting 60 s on the server did not keep it alive.
    assert took < 10
    assert "interrupted [True, False, False, False, False] 2 True" in out
    assert "Traceback" not in err
    # The answer that arrived is in the cache; the unanswered requests left no failure.
    files = sorted(p.name for p in (tmp_path / "cache").rglob("*.json"))
    assert len(files) == 1 and not files[0].endswith(".error.json")
