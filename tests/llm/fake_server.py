"""A scripted OpenAI-compatible chat-completions server on loopback, for tests.

A real :class:`http.server.ThreadingHTTPServer` on ``127.0.0.1`` (a free port) in a
background thread, so clients are tested through real sockets: connection handling,
timeouts, concurrency, headers. It serves ``POST /v1/chat/completions`` and
``GET /v1/models``, and records every chat request::

    with FakeLLMServer(responses=["first", "second"]) as srv:
        client = ChatClient(LLMConfig(model="m", base_url=srv.base_url))
        assert client.complete(messages).text == "first"
        assert srv.requests[0]["messages"] == messages

What it answers, in order of precedence:

1. Replies queued with :meth:`FakeLLMServer.inject` or :meth:`FakeLLMServer.fail`, one per
   request, first in first out: failures (500, 429 with ``Retry-After``), malformed bodies,
   slow answers.
2. The ``responses`` script: a list (one entry per request, in arrival order), a callable
   ``request body -> answer``, or a dict whose first key found in the last user message
   picks the answer. None answers ``"echo (seed=<seed>): <last user message>"``.

An answer is a string (the completion's text), a dict (the whole JSON body, sent as is),
bytes (a raw body) or a :class:`Reply` (status, headers, delay, token counts, or a connection
closed without an answer). :meth:`FakeLLMServer.stop` ends every delay at once, so a server
stopped mid-request closes its connections as a killed server would.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer.

    Attributes:
        content: The completion's text (``choices[0].message.content``), used unless
            ``body`` is given.
        status: HTTP status.
        body: Sent instead of a completion: a dict as JSON, a str or bytes as they are.
        headers: Extra response headers, e.g. ``{"Retry-After": "0.1"}``.
        delay_s: Seconds to wait before answering (for timeouts and concurrency).
        finish_reason: The completion's ``finish_reason``.
        usage: ``(prompt_tokens, completion_tokens)``; default: whitespace-separated words
            of the messages and of the text.
        drop: Close the connection without answering (after ``delay_s``), as a server that
            crashed or restarted mid-request does.
    """

    content: str = ""
    status: int = 200
    body: dict[str, Any] | str | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    finish_reason: str = "stop"
    usage: tuple[int, int] | None = None
    drop: bool = False


def unused_port() -> int:
    """A loopback port nothing listens on (bound, then closed), for unreachable-server tests."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def last_user_message(body: Mapping[str, Any]) -> str:
    """The content of the last ``user`` message of a request body, as text."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


class FakeLLMServer:
    """A scripted chat-completions server on ``127.0.0.1``; see the module docstring.

    Args:
        responses: The script: None (echo), a list, a callable or a dict (module docstring).
        model: The model name it reports; None echoes the requested one.
        api_key: If given, requests need ``Authorization: Bearer <api_key>``; others get
            HTTP 401 with an OpenAI-style error that, like some servers, quotes the key
            received (to test that clients keep it out of their messages).
        delay_s: Seconds every chat request waits before answering, on top of a reply's own.

    Attributes:
        requests: Every chat request body (parsed JSON), in arrival order.
        headers: The headers of each of those requests.
        max_in_flight: The most chat requests handled at the same time.
    """

    def __init__(
        self,
        responses: Sequence[Any]
        | Callable[[dict[str, Any]], Any]
        | Mapping[str, Any]
        | None = None,
        *,
        model: str | None = None,
        api_key: str | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.responses = responses
        self.model = model
        self.api_key = api_key
        self.delay_s = delay_s
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._next = 0
        self._queue: deque[Any] = deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle --

    def start(self) -> FakeLLMServer:
        """Start serving in a background thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError("FakeLLMServer is already running")
        self._stopping.clear()
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        # Handler threads may still be sleeping when a test ends (a client that timed out
        # left them); they must not keep the interpreter alive.
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port (later connections are refused); requests waiting
        out a delay have their connections closed unanswered."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port it listens on."""
        if self._httpd is None:
            raise RuntimeError("FakeLLMServer is not running; call start() or use `with`")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The API root to give a client, ``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting --

    def inject(self, *answers: Any) -> None:
        """Queue answers served before the script, one per request, in order."""
        with self._lock:
            self._queue.extend(answers)

    def fail(
        self,
        times: int,
        status: int = 500,
        *,
        retry_after: str | None = None,
        body: dict[str, Any] | str | bytes | None = None,
    ) -> None:
        """Make the next ``times`` chat requests fail with ``status``.

        Args:
            times: How many requests fail.
            status: Their HTTP status.
            retry_after: A ``Retry-After`` header value, e.g. ``"0.1"``.
            body: Their body; default an OpenAI-style error object.
        """
        headers = {} if retry_after is None else {"Retry-After": retry_after}
        if body is None:
            body = {"error": {"message": f"scripted failure (HTTP {status})", "type": "server"}}
        self.inject(*[Reply(status=status, body=body, headers=headers) for _ in range(times)])

    @property
    def request_count(self) -> int:
        """How many chat requests arrived."""
        with self._lock:
            return len(self.requests)

    @property
    def seeds(self) -> list[Any]:
        """The ``seed`` field of each chat request (None where absent)."""
        with self._lock:
            return [r.get("seed") for r in self.requests]

    # -- serving (called from handler threads) --

    def _answer(self, body: dict[str, Any]) -> Reply:
        """The reply to one chat request."""
        with self._lock:
            if self._queue:
                return _as_reply(self._queue.popleft())
            index = self._next
            self._next += 1
        script = self.responses
        if script is None:
            return Reply(content=f"echo (seed={body.get('seed')}): {last_user_message(body)}")
        if callable(script):
            return _as_reply(script(body))
        if isinstance(script, Mapping):
            text = last_user_message(body)
            for needle, answer in script.items():
                if needle in text:
                    return _as_reply(answer)
            return _error(400, f"FakeLLMServer: no scripted key occurs in {text[:80]!r}")
        if index < len(script):
            return _as_reply(script[index])
        return _error(400, f"FakeLLMServer: all {len(script)} scripted responses were used")

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        """A chat.completion object for ``reply``'s text."""
        if reply.usage is None:
            prompt = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
            usage = (prompt, len(reply.content.split()))
        else:
            usage = reply.usage
        return {
            "id": f"chatcmpl-fake-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model or body.get("model", "fake-model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.content},
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": usage[0] + usage[1],
            },
        }


def _as_reply(answer: Any) -> Reply:
    if isinstance(answer, Reply):
        return answer
    if isinstance(answer, str):
        return Reply(content=answer)
    if isinstance(answer, (dict, bytes)):
        return Reply(body=answer)
    raise TypeError(f"a scripted answer must be str, bytes, dict or Reply, got {answer!r}")


def _error(status: int, message: str) -> Reply:
    return Reply(status=status, body={"error": {"message": message, "type": "fake_server"}})


class _Handler(BaseHTTPRequestHandler):
    fake: FakeLLMServer  # set on the subclass FakeLLMServer.start() builds

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests read ``requests`` instead of a log."""

    def _send(
        self,
        status: int,
        body: dict[str, Any] | str | bytes,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        data = data.encode() if isinstance(data, str) else data
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # The client gave up (a timeout test): nobody is left to answer.

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            model = self.fake.model or "fake-model"
            self._send(200, {"object": "list", "data": [{"id": model, "object": "model"}]})
        else:
            self._send(404, {"error": {"message": f"no route GET {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route POST {self.path}"}})
            return
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            self._send(400, {"error": {"message": f"request body is not JSON: {exc}"}})
            return
        fake = self.fake
        with fake._lock:
            fake.requests.append(body)
            fake.headers.append(dict(self.headers.items()))
            fake._in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake._in_flight)
        counted = True

        def done() -> None:
            # Before the answer goes out: once the client has read it, it may send the next
            # request, which must not find this one still counted.
            nonlocal counted
            if counted:
                counted = False
                with fake._lock:
                    fake._in_flight -= 1

        try:
            if fake.api_key is not None:
                given = self.headers.get("Authorization", "")
                if given != f"Bearer {fake.api_key}":
                    received = given.removeprefix("Bearer ")
                    done()
                    self._send(
                        401,
                        {
                            "error": {
                                "message": f"Incorrect API key provided: {received}",
                                "type": "invalid_request_error",
                                "code": "invalid_api_key",
                            }
                        },
                    )
                    return
            reply = fake._answer(body)
            # Interrupted by stop(): the server is gone, and so is the answer.
            if fake._stopping.wait(fake.delay_s + reply.delay_s) or reply.drop:
                done()
                self.close_connection = True
                return
            out = reply.body if reply.body is not None else fake._completion(body, reply)
            done()
            self._send(reply.status, out, reply.headers)
        finally:
            done()
