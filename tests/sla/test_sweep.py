"""The periodic sweep with two workers side by side on a real, committed database: every
due clock is warned or breached exactly once, each with one event, and the rest untouched."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from servicecycle.customers import service as customers
from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
from servicecycle.events.models import Event
from servicecycle.events.service import Actor
from servicecycle.kit import clock
from servicecycle.sla import service as sla
from servicecycle.sla import tasks
from servicecycle.sla.models import SlaClock
from servicecycle.tickets import service as tickets

ACTOR = Actor.system("test")
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def frozen() -> Iterator[list[datetime]]:
    moment = [START]
    clock.set_source(lambda: moment[0])
    yield moment
    clock.set_source(None)


async def test_two_workers_sweep_each_clock_once(
    fresh_database: Callable[..., str], frozen: list[datetime]
) -> None:
    engine = make_engine(fresh_database(), pool_size=3)
    factory = make_sessionmaker(engine)
    try:
        async with unit_of_work(factory) as session:
            await sla.create_policy(
                session,
                name="Clock time",
                conditions={},
                targets={"first_reply": {"minutes": 60, "business": False}},
                calendar_id=None,
                pause_statuses=[],
                warn_minutes=30,
                actor=ACTOR,
            )
            customer = await customers.create_customer(
                session, name="C", emails=["sweep@example.com"], tier="standard", actor=ACTOR
            )
            for n in range(40):  # one a minute: due 10:00, 10:01, ... 10:39
                frozen[0] = START + timedelta(minutes=n)
                await tickets.create_ticket(
                    session,
                    subject=f"T{n}",
                    requester=customer,
                    channel="web",
                    body_text="x",
                    actor=ACTOR,
                )
        # at 10:15: 16 clocks are due (10:00-10:15), 30 within the warning (up to 10:45)
        frozen[0] = START + timedelta(hours=1, minutes=15)
        warned, breached = await tasks.sweep_until_done(factory, batch=3, workers=2)
        assert (warned, breached) == (24, 16)
        assert await tasks.sweep_until_done(factory, batch=3, workers=2) == (0, 0)

        async with factory() as session:
            states = dict(
                (
                    await session.execute(
                        select(SlaClock.state, func.count()).group_by(SlaClock.state)
                    )
                ).all()
            )
            assert states == {"breached": 16, "running": 24}
            swept = (
                await session.scalars(
                    select(Event.data).where(Event.kind.in_(["sla.warning", "sla.breached"]))
                )
            ).all()
            clock_ids = [data["clock_id"] for data in swept]
            assert len(clock_ids) == len(set(clock_ids)) == 40
            warned_at = await session.scalars(
                select(SlaClock.warned_at).where(SlaClock.state == "running")
            )
            assert set(warned_at) == {frozen[0]}
    finally:
        await engine.dispose()
