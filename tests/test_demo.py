from __future__ import annotations

from collections.abc import Callable

import psycopg

from servicecycle.db.engine import libpq_url
from servicecycle.demo import STORIES, load


async def test_demo_data_loads_once_through_the_services(
    fresh_database: Callable[..., str],
) -> None:
    url = fresh_database()
    first = await load(url)
    again = await load(url)
    assert first > 0 and again == 0
    with psycopg.connect(libpq_url(url)) as conn:
        tickets = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'solved') FROM tickets"
        ).fetchone()
        created = conn.execute(
            "SELECT count(*) FROM events WHERE kind = 'ticket.created'"
        ).fetchone()
        clocks = conn.execute("SELECT count(DISTINCT ticket_id) FROM sla_clocks").fetchone()
    assert tickets[0] == len(STORIES) == created[0]
    assert clocks is not None and clocks[0] == len(STORIES)  # every ticket runs on an SLA policy
    assert tickets[1] == sum(1 for s in STORIES if s.status == "solved" and not s.answer)
