"""Configuration copies kept per process follow the configuration's version."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.automation import service as automation
from servicecycle.events import versions
from servicecycle.events.service import Actor
from servicecycle.tickets import service as tickets

ADMIN = Actor.system("test")


class Undo(Exception):
    pass


async def _ticket(session: AsyncSession, customer: Any) -> list[str]:
    ticket, _ = await tickets.create_ticket(
        session, subject="Hi", requester=customer, channel="api", body_text="Hello", actor=ADMIN
    )
    return list(ticket.tags)


async def test_a_copy_made_inside_a_rolled_back_change_is_never_used_afterwards(
    sessions: async_sessionmaker[AsyncSession], make_customer: Callable[..., Awaitable[Any]]
) -> None:
    customer = await make_customer()
    async with sessions() as session, session.begin():
        customer = await session.merge(customer)
        assert await _ticket(session, customer) == []  # a copy of "no rules" is made
    with pytest.raises(Undo):
        async with sessions() as session, session.begin():
            customer = await session.merge(customer)
            await automation.create_rule(
                session,
                name="Tag everything",
                kind="trigger",
                events=["ticket.created"],
                conditions=[],
                actions=[{"type": "add_tags", "value": ["tagged"]}],
                actor=ADMIN,
            )
            assert await _ticket(session, customer) == ["tagged"]  # its own change, seen
            raise Undo
    async with sessions() as session, session.begin():
        customer = await session.merge(customer)
        assert await _ticket(session, customer) == []


async def test_changing_the_configuration_draws_a_new_version_and_reloads_the_copy(
    db: AsyncSession,
) -> None:
    loads: list[int] = []

    async def load(session: AsyncSession) -> int:
        loads.append(1)
        return len(loads)

    first = await versions.cached(db, "automation", "test-load", load)
    assert await versions.cached(db, "automation", "test-load", load) == first
    await versions.bump(db, "automation")
    assert await versions.cached(db, "automation", "test-load", load) == first + 1
    assert await versions.cached(db, "automation", "test-load", load) == first + 1
    assert len(loads) == 2


def test_the_events_that_change_configuration_are_tracked() -> None:
    # the services declare what they track when they are imported
    for module in ("automation", "sla", "webhooks"):
        importlib.import_module(f"servicecycle.{module}.service")

    for kind, domain in {
        "rule.created": "automation",
        "rule.updated": "automation",
        "rule.disabled": "automation",
        "sla_policy.updated": "sla",
        "calendar.updated": "sla",
        "webhook.created": "webhooks",
        "webhook.deleted": "webhooks",
    }.items():
        assert versions.domain_of(kind) == domain
    assert versions.domain_of("ticket.created") is None
