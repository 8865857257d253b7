"""One source of "now", so tests and the simulation can move time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

_source: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731


def now() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return _source()


def set_source(source: Callable[[], datetime] | None) -> None:
    """Replace the clock (``None`` restores the wall clock)."""
    global _source
    _source = source if source is not None else (lambda: datetime.now(UTC))
