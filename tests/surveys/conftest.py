"""Fixtures of the surveys tests: a frozen clock, a real SMTP server, a team and an agent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from servicecycle.kit import clock
from tests.channels.test_email_out import smtp as smtp  # the fixture: a real SMTP server

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.at = START

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: Any) -> datetime:
        self.at += timedelta(**delta)
        return self.at


@pytest.fixture
def frozen() -> Iterator[Clock]:
    moment = Clock()
    clock.set_source(moment)
    yield moment
    clock.set_source(None)
