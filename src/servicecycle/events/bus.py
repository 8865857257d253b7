"""Reactions inside the same transaction: a higher domain asks to hear of event kinds.

News travels upward by events: tickets never import sla, but sla subscribes to
``ticket.created`` and keeps its clocks in the transaction that created the ticket.
Subscribers live in ``servicecycle.<domain>.subscribers`` modules, found by name.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from servicecycle.events.models import Event


@dataclass(frozen=True)
class Appended:
    """An event appended in bulk (by SQL, not the ORM), as handlers see it."""

    id: int
    kind: str
    subject_type: str
    subject_id: str
    actor_type: str
    actor_id: str | None
    data: dict[str, Any]
    occurred_at: datetime


Handler = Callable[["AsyncSession", "Event"], Awaitable[None]]
# A handler's batch twin (``handler.batch``): the same effect for a run of events of one
# kind, each about a different subject, in one go.
BatchHandler = Callable[["AsyncSession", list[Appended]], Awaitable[None]]
MAX_DEPTH = 8

_handlers: dict[str, list[Handler]] = {}
_loaded = False


def subscribe(*kinds: str) -> Callable[[Handler], Handler]:
    """Decorator: call the handler, in the recording transaction, for events of ``kinds``
    (``"*"``: every kind, after the handlers of that kind)."""

    def register(handler: Handler) -> Handler:
        for kind in kinds:
            _handlers.setdefault(kind, []).append(handler)
        return handler

    return register


def load_all() -> None:
    """Import every domain's ``subscribers`` module once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import servicecycle

    for module in pkgutil.iter_modules(servicecycle.__path__):
        name = f"servicecycle.{module.name}.subscribers"
        if module.ispkg and importlib.util.find_spec(name):
            importlib.import_module(name)


def _for(kind: str) -> list[Handler]:
    return _handlers.get(kind, []) + _handlers.get("*", [])


async def dispatch_many(session: AsyncSession, events: list[Appended]) -> None:
    """Dispatch a bulk of events; a handler with a ``wants(session, kind)`` check is asked
    once per kind, so a sweep of thousands of events costs little when nobody listens."""
    load_all()
    asked: dict[tuple[int, str], bool] = {}
    for event in events:
        for handler in _for(event.kind):
            key = (id(handler), event.kind)
            if key not in asked:
                wants = getattr(handler, "wants", None)
                asked[key] = True if wants is None else bool(await wants(session, event.kind))
            if asked[key]:
                await _run(session, handler, event)


def batch_twin(handler: Handler) -> Callable[[BatchHandler], BatchHandler]:
    """Decorator: ``twin`` does for a run of events what ``handler`` does for each of them,
    with the same rows and events; ``dispatch_batch`` calls it instead of the handler."""

    def register(twin: BatchHandler) -> BatchHandler:
        handler.batch = twin  # type: ignore[attr-defined]
        return twin

    return register


async def dispatch_batch(session: AsyncSession, events: list[Appended]) -> None:
    """Dispatch events recorded together (``record_many``): run by run of one kind, each
    handler of the kind hears the whole run (after the kind's ``wants`` check) through its
    batch twin if it has one, else event by event. Each subject's events reach each handler
    in the order given, as one ``dispatch`` after another would; a run that names a subject
    twice goes event by event to every handler, so a twin never sees a subject twice."""
    load_all()
    start = 0
    while start < len(events):
        kind = events[start].kind
        end = start
        while end < len(events) and events[end].kind == kind:
            end += 1
        run = events[start:end]
        start = end
        handlers = _for(kind)
        if not handlers:
            continue
        subjects = {(e.subject_type, e.subject_id) for e in run}
        if len(subjects) < len(run):
            for event in run:
                await dispatch(session, event)
            continue
        for handler in handlers:
            wants = getattr(handler, "wants", None)
            if wants is not None and not await wants(session, kind):
                continue
            twin: BatchHandler | None = getattr(handler, "batch", None)
            if twin is None:
                for event in run:
                    await _run(session, handler, event)
                continue
            with _deeper(session, kind):
                await twin(session, run)


@contextmanager
def _deeper(session: AsyncSession, kind: str) -> Iterator[None]:
    """One level deeper in a chain of reactions; a chain deeper than MAX_DEPTH is a bug."""
    depth = session.info.get("event_depth", 0)
    if depth >= MAX_DEPTH:
        raise RuntimeError(f"event chain deeper than {MAX_DEPTH} at {kind}")
    session.info["event_depth"] = depth + 1
    try:
        yield
    finally:
        session.info["event_depth"] = depth


async def _run(session: AsyncSession, handler: Handler, event: Event | Appended) -> None:
    with _deeper(session, event.kind):
        await handler(session, event)  # type: ignore[arg-type]  # same fields as Event


async def dispatch(session: AsyncSession, event: Event | Appended) -> None:
    """Run the handlers for ``event``; a chain deeper than MAX_DEPTH is a bug, and stops."""
    load_all()
    handlers = _for(event.kind)
    if not handlers:
        return
    with _deeper(session, event.kind):
        for handler in handlers:
            await handler(session, event)  # type: ignore[arg-type]  # same fields as Event
