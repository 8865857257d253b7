"""The inbox's SLA order is computed by the database and paged there."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.sla import service as sla
from servicecycle.tickets import service, workspace
from tests.tickets.test_pages import NINE, Make, Moment, _sla_desk, frozen  # noqa: F401


async def test_sla_due_first_pages_follow_each_other_without_gaps_or_repeats(
    db: AsyncSession,
    sessions: async_sessionmaker[Any],
    frozen: Moment,  # noqa: F811
    make_ticket: Make,
) -> None:
    made = await _sla_desk(sessions, frozen, make_ticket)
    key = {ticket.id: name for name, ticket in made.items()}
    flt = service.view_filter("all-open", user_id=0)
    seen: list[str] = []
    more, page = True, 1
    while more:
        found, more, clocks = await workspace.by_sla(
            db, flt, sla, due_first=True, only=None, now=NINE, page=page, limit=2
        )
        assert len(found) <= 2 and set(clocks) == {t.id for t in found}
        seen += [key[t.id] for t in found]
        page += 1
    assert seen == ["late", "soon", "window", "fine", "waiting", "none"]
    at_risk, more, _ = await workspace.by_sla(
        db, flt, sla, due_first=True, only="at-risk", now=NINE, page=2, limit=2
    )
    assert [key[t.id] for t in at_risk] == ["window"] and not more
