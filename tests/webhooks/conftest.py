"""A real HTTP receiver on 127.0.0.1, and settings that allow it (private targets)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from servicecycle.config import Settings
from servicecycle.webhooks import signing


class WebhookSettings(Settings):
    webhooks_allow_private: bool = True


@pytest.fixture
def settings(tmp_path: Path) -> WebhookSettings:
    return WebhookSettings(data_dir=tmp_path / "data")


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each POST with the next status of ``answers`` (then 200) and keeps it."""

    url: str
    answers: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)


def check_signature(secret: str, request: Received, *, now: float) -> bool:
    """What a receiver does, as docs/webhooks.md describes it."""
    return signing.verify(
        secret,
        header=request.headers["servicecycle-signature"],
        timestamp=request.headers["servicecycle-timestamp"],
        body=request.body,
        now=now,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            state.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
            code = state.answers.pop(0) if state.answers else 200
            payload = b'{"ok": true}' if code < 400 else b"receiver says no"
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
