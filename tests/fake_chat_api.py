"""A local stand-in for an OpenAI-compatible chat API: answers POST <url>/chat/completions in
OpenAI's response shape and records every request (path, headers, JSON body), so tests can
check what Trainyard sent. Shared by seed 004's /model tests, the assistant's integration
tests and the browser tests' stack."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.helpers import QuietHandler, serve_locally


@dataclass
class ChatServer:
    url: str  # the API's base URL, as TRAINYARD_CHAT_API_URL takes it
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    reply: Any = None  # a whole answer body in place of the default one
    delay_seconds: float = 0.0  # how long to think before answering (a slow or stuck API)


def reply_to(question: str) -> str:
    """The default answer's text for `question`."""
    return f"Réponse à « {question} »"


@contextmanager
def chat_server() -> Iterator[ChatServer]:
    """A local server that answers POST /v1/chat/completions in OpenAI's response shape."""
    server_state = ChatServer(url="")

    class Handler(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            server_state.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            question = body["messages"][-1]["content"]
            time.sleep(server_state.delay_seconds)
            answer = server_state.reply or {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply_to(question)},
                        "finish_reason": "stop",
                    }
                ],
            }
            payload = json.dumps(answer).encode()
            self.send_response(server_state.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    with serve_locally(Handler) as base_url:
        server_state.url = f"{base_url}/v1"
        yield server_state
