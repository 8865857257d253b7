"""Fixtures of the follow-up tests: a frozen clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from servicecycle.kit import clock

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


class Frozen:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def move(self, **delta: float) -> None:
        self.now = self.now + timedelta(**delta)


@pytest.fixture
def frozen() -> Iterator[Frozen]:
    source = Frozen(NOW)
    clock.set_source(source)
    yield source
    clock.set_source(None)


At = Callable[..., datetime]


def at(**delta: float) -> datetime:
    return NOW + timedelta(**delta)
