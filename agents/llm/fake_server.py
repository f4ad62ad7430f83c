"""A local OpenAI-compatible chat server that plays a script of replies and injects faults.

The tests and ``make bench`` point the real litellm client at it (``model="openai/<name>"``,
``api_base=server.url``), so everything from request building to response parsing, retries and cost
accounting runs for real over HTTP on loopback. Each request takes the next reply from the script:

- ``{"shell": "ls /data"}``: a native call of the shell tool; ``{"end": "message"}``: the end-task tool.
- ``{"tool": "name", "arguments": "<raw JSON text>"}``: any tool call, arguments sent verbatim (malformed JSON,
  unknown tools).
- ``{"calls": [reply, reply, ...]}``: several tool calls in one assistant message.
- ``{"text": "..."}``: a plain assistant message (also how the text-mode fallback is played).
- ``{"status": 429, "retry_after": 0.2}``, ``{"status": 500}``: an error response with an OpenAI error body.
- ``{"delay": 5.0, ...}``: wait before answering (a timeout when longer than the client's).
- ``{"cost": 0.0123}``: added to any reply, reported as ``usage.cost`` (as OpenRouter-style providers do).

``limit=(requests, window_s)`` makes it a provider with a rate limit: a request beyond ``requests`` in the
last ``window_s`` seconds is answered 429 with the ``Retry-After`` until a place frees (a 429 storm when
clients ignore it). ``latency`` delays every answer. ``times`` holds when each request arrived
(``time.monotonic``), rejected ones included: what the provider saw.

When the script runs out the server answers with ``default`` (the end-task tool unless set), so a runaway
agent ends instead of hanging. Every request body is kept in ``requests`` for assertions.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = dict[str, Any]
SHELL_TOOL = "run_shell_command"
END_TOOL = "end_task"


class FakeChatServer:
    """Serve scripted chat completions on ``127.0.0.1`` (a free port) until :meth:`close`."""

    def __init__(self, script: Iterable[Reply] = (), *, default: Reply | None = None,
                 responder: Callable[[dict[str, Any]], Reply] | None = None, latency: float = 0.0,
                 limit: tuple[int, float] | None = None) -> None:  # fmt: skip
        self.latency = latency
        self.limit = limit
        self.times: list[float] = []
        self.rejected = 0
        self._accepted: deque[float] = deque()  # arrival times of the requests served, within the window
        self.script: deque[Reply] = deque(script)
        self.default = default or {"end": "Done."}
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="fake-chat", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """The ``api_base`` to give litellm (OpenAI style, ending in ``/v1``)."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def push(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeChatServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ serving
    def _next(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        with self._lock:
            now = time.monotonic()
            self.times.append(now)
            if self.limit is not None:
                count, window = self.limit
                while self._accepted and self._accepted[0] <= now - window:
                    self._accepted.popleft()
                if len(self._accepted) >= count:
                    self.rejected += 1
                    wait = self._accepted[0] + window - now
                    return {"status": 429, "retry_after": f"{wait:.3f}", "message": "rate limit exceeded"}
                self._accepted.append(now)
            self.requests.append(body)
            self.headers.append(headers)
            if self.responder is not None:
                return self.responder(body)
            return self.script.popleft() if self.script else self.default

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": None}
        calls = [self._call(r) for r in reply.get("calls", [])] or (
            [self._call(reply)] if _is_call(reply) else []
        )
        if calls:
            message["tool_calls"] = calls
        else:
            message["content"] = reply.get("text", "")
        prompt = sum(len(json.dumps(m)) for m in body.get("messages", [])) // 4
        completion = max(1, len(json.dumps(message)) // 4)
        usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                                 "total_tokens": prompt + completion}  # fmt: skip
        if "cost" in reply:
            usage["cost"] = reply["cost"]
        return {
            "id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "scripted"), "usage": usage,
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
        }  # fmt: skip

    def _call(self, reply: Reply) -> dict[str, Any]:
        if "shell" in reply:
            name, arguments = SHELL_TOOL, json.dumps({"command": reply["shell"]})
        elif "end" in reply:
            name, arguments = END_TOOL, json.dumps({"message": reply["end"]})
        else:
            name, arguments = reply["tool"], reply.get("arguments", "{}")
        return {"id": f"call_{next(self._ids)}", "type": "function",
                "function": {"name": name, "arguments": arguments}}  # fmt: skip

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle on, a keep-alive client's delayed ACK holds the
            # second for ~40 ms, which would make every call look 40 ms slower than the code under test.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read requests instead
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                reply = server._next(body, dict(self.headers.items()))
                if reply.get("delay") or server.latency:
                    time.sleep(reply.get("delay") or server.latency)
                status = int(reply.get("status", 200))
                headers = {"content-type": "application/json"}
                if status != 200:
                    if "retry_after" in reply:
                        headers["retry-after"] = str(reply["retry_after"])
                    payload: dict[str, Any] = {"error": {"message": reply.get("message", f"upstream error {status}"),
                                                         "type": "server_error", "code": status}}  # fmt: skip
                else:
                    payload = server._completion(body, reply)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout case)

        return Handler


def _is_call(reply: Reply) -> bool:
    return any(key in reply for key in ("shell", "end", "tool"))


def episode_script(*replies: Reply) -> Callable[[dict[str, Any]], Reply]:
    """A ``responder`` that plays ``replies`` in every conversation it serves, however many run at once: the
    reply to a request is chosen by how many assistant turns its messages already hold (so concurrent episodes
    each get the whole script, in order), then the server's default once the script is done."""

    def respond(body: dict[str, Any]) -> Reply:
        turns = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
        return replies[turns] if turns < len(replies) else {"end": "Done."}

    return respond
