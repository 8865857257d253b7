"""One LISTEN connection per server process; it wakes this process's chat sockets.

A notification is only a doorbell (``{"t": ticket_id, "k": kind}``, sent with
``pg_notify`` inside the transaction that changed the chat, so it arrives after the
commit). A woken socket reads what is new from the tables itself, from the last message
id it sent: nothing is lost if notifications coalesce, and after the listening
connection drops and comes back, every socket is woken to catch up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import psycopg
import structlog

log = structlog.get_logger(__name__)

LOBBY = "lobby"  # every agent socket hears every chat change, for its list
EVERYTHING = "*"  # sent to all subscribers after a reconnect: re-read everything


class Subscription:
    """What one socket listens to; ``wake`` lists the woken topics (coalesced)."""

    def __init__(self, hub: Hub, topics: set[str]) -> None:
        self.hub = hub
        self.topics = topics
        self.pending: set[str] = set()
        self.event = asyncio.Event()

    def listen(self, topic: str) -> None:
        self.hub._add(self, topic)

    def forget(self, topic: str) -> None:
        self.hub._remove(self, topic)

    def _ring(self, topic: str) -> None:
        self.pending.add(topic)
        self.event.set()

    async def wait(self, seconds: float) -> set[str]:
        """Topics woken since the last call (empty after ``seconds`` of quiet)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), seconds)
        self.event.clear()
        woken, self.pending = self.pending, set()
        return woken


class Hub:
    def __init__(self, conninfo: str, channel: str) -> None:
        self.conninfo = conninfo
        self.channel = channel
        self._subs: dict[str, set[Subscription]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        """Listen in the background; returns once the first LISTEN is in place."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="chat-hub")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.contextmanager
    def subscribe(self, *topics: str) -> Iterator[Subscription]:
        sub = Subscription(self, set())
        for topic in topics:
            self._add(sub, topic)
        try:
            yield sub
        finally:
            for topic in list(sub.topics):
                self._remove(sub, topic)

    def _add(self, sub: Subscription, topic: str) -> None:
        sub.topics.add(topic)
        self._subs.setdefault(topic, set()).add(sub)

    def _remove(self, sub: Subscription, topic: str) -> None:
        sub.topics.discard(topic)
        subs = self._subs.get(topic)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[topic]

    def deliver(self, payload: dict[str, Any]) -> None:
        topic = f"ticket:{payload.get('t')}"
        for sub in list(self._subs.get(topic, ())):
            sub._ring(topic)
        for sub in list(self._subs.get(LOBBY, ())):
            sub._ring(topic)

    def _wake_all(self) -> None:
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub._ring(EVERYTHING)

    async def _run(self) -> None:
        delay = 0.5
        first = True
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, application_name="servicecycle-chat"
                ) as conn:
                    await conn.execute(f'LISTEN "{self.channel}"')
                    self._ready.set()
                    if not first:
                        self._wake_all()  # we may have missed some: everyone re-reads
                    first, delay = False, 0.5
                    async for note in conn.notifies():
                        try:
                            payload = json.loads(note.payload)
                        except ValueError:
                            continue
                        if isinstance(payload, dict):
                            self.deliver(payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: retry, then catch everyone up
                log.warning("chat.hub_disconnected", error=type(exc).__name__)
                first = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
