"""Reactions inside the same transaction: a higher domain asks to hear of event kinds.

News travels upward by events: tickets never import sla, but sla subscribes to
``ticket.created`` and keeps its clocks in the transaction that created the ticket.
Subscribers live in ``servicecycle.<domain>.subscribers`` modules, found by name.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from servicecycle.events.models import Event

Handler = Callable[["AsyncSession", "Event"], Awaitable[None]]
MAX_DEPTH = 8

_handlers: dict[str, list[Handler]] = {}
_loaded = False


def subscribe(*kinds: str) -> Callable[[Handler], Handler]:
    """Decorator: call the handler, in the recording transaction, for events of ``kinds``."""

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


async def dispatch(session: AsyncSession, event: Event) -> None:
    """Run the handlers for ``event``; a chain deeper than MAX_DEPTH is a bug, and stops."""
    load_all()
    handlers = _handlers.get(event.kind)
    if not handlers:
        return
    depth = session.info.get("event_depth", 0)
    if depth >= MAX_DEPTH:
        raise RuntimeError(f"event chain deeper than {MAX_DEPTH} at {event.kind}")
    session.info["event_depth"] = depth + 1
    try:
        for handler in handlers:
            await handler(session, event)
    finally:
        session.info["event_depth"] = depth
