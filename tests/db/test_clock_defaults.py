"""Rows take their times from the service clock (kit.clock), which the simulation moves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth import service as auth
from servicecycle.auth.models import TeamMember
from servicecycle.customers import service as customers
from servicecycle.events.service import Actor
from servicecycle.kit import clock

THEN = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
LATER = datetime(2025, 3, 5, 16, 0, tzinfo=UTC)


@pytest.fixture
def moment() -> Iterator[list[datetime]]:
    now = [THEN]
    clock.set_source(lambda: now[0])
    yield now
    clock.set_source(None)


async def test_created_and_updated_times_follow_the_service_clock(
    db: AsyncSession, moment: list[datetime]
) -> None:
    actor = Actor.system("test")
    person = await customers.create_customer(
        db, name="Ada", emails=["ada@example.org"], actor=actor
    )
    user = await auth.create_user(
        db, email="agent@example.org", name="Agent", role="agent", password=None, actor=actor
    )
    team = await auth.create_team(db, name="Billing", description="", actor=actor)
    await auth.add_team_member(db, team, user, actor=actor)
    await db.flush()
    assert (person.created_at, person.updated_at) == (THEN, THEN)
    assert (user.created_at, team.created_at) == (THEN, THEN)
    identities = await customers.identities_of(db, [person.id])
    assert [i.created_at for i in identities[person.id]] == [THEN]
    member = await db.get(TeamMember, (team.id, user.id))
    assert member is not None and member.added_at == THEN

    moment[0] = LATER
    await customers.update_customer(
        db, person, expected_version=person.version, changes={"tier": "vip"}, actor=actor
    )
    await db.flush()
    assert (person.created_at, person.updated_at) == (THEN, LATER)
