from __future__ import annotations

from collections.abc import Callable
from datetime import date

import psycopg

from servicecycle.auth import service as auth
from servicecycle.auth.passwords import verify_password
from servicecycle.db.engine import libpq_url, make_engine, make_sessionmaker, unit_of_work
from servicecycle.demo import DEMO_LOGINS, load


async def test_the_demo_business_loads_once_through_the_services_with_its_sign_ins(
    fresh_database: Callable[..., str],
) -> None:
    url = fresh_database()
    # the shop's six months, shrunk to a few dozen tickets (`servicecycle demo --tickets 40`)
    first = await load(url, tickets=40, end=date(2026, 10, 31))
    again = await load(url, tickets=40, end=date(2026, 10, 31))
    assert first > 0 and again == 0
    with psycopg.connect(libpq_url(url)) as conn:
        tickets = conn.execute("SELECT count(*) FROM tickets").fetchone()
        created = conn.execute(
            "SELECT count(*) FROM events WHERE kind = 'ticket.created'"
        ).fetchone()
        clocks = conn.execute("SELECT count(DISTINCT ticket_id) FROM sla_clocks").fetchone()
        queued = conn.execute(
            "SELECT count(*) FROM outbound_mails WHERE status <> 'sent'"
        ).fetchone()
    assert tickets is not None and tickets[0] > 0 and created == tickets
    assert clocks == tickets  # every ticket runs on an SLA policy (the standard one is for all)
    assert queued == (0,)  # no old mail left for the first worker to send
    engine = make_engine(url, pool_size=1)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            for role, email, password in DEMO_LOGINS:
                user = await auth.find_user_by_email(session, email)
                assert user is not None and user.role == role
                assert verify_password(user.password_hash, password)
    finally:
        await engine.dispose()
