"""Each server process keeps a copy of the trigger rules; a change committed by one process
is obeyed by another's next ticket (``serve --workers 2``)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable

from servicecycle.automation import service as automation
from servicecycle.customers import service as customers
from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
from servicecycle.events.service import Actor

ADMIN = Actor.system("test")

# a second process that creates a ticket each time it reads a line, and prints its tags
WORKER = """
import asyncio, json, sys
from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
from servicecycle.events.service import Actor
from servicecycle.customers import service as customers
from servicecycle.tickets import service as tickets

async def main(url, customer_id):
    engine = make_engine(url, pool_size=1)
    sessions = make_sessionmaker(engine)
    for line in sys.stdin:
        async with unit_of_work(sessions) as session:
            requester = await customers.get_customer(session, customer_id)
            ticket, _ = await tickets.create_ticket(
                session, subject=line.strip(), requester=requester, channel="api",
                body_text="Hello", actor=Actor.system("worker"),
            )
            await session.refresh(ticket)
            print(json.dumps(ticket.tags), flush=True)
    await engine.dispose()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def test_a_rule_changed_in_one_process_is_obeyed_by_the_next_ticket_of_another(
    fresh_database: Callable[..., str],
) -> None:
    url = fresh_database()

    async def setup() -> tuple[int, int]:
        engine = make_engine(url, pool_size=1)
        async with unit_of_work(make_sessionmaker(engine)) as session:
            customer = await customers.create_customer(
                session, name="Ann", emails=["ann@example.net"], tier="standard", actor=ADMIN
            )
            rule = await automation.create_rule(
                session,
                name="Tag new tickets",
                kind="trigger",
                events=["ticket.created"],
                conditions=[],
                actions=[{"type": "add_tags", "value": ["first"]}],
                actor=ADMIN,
            )
        await engine.dispose()
        return customer.id, rule.id

    async def change(rule_id: int, changes: dict[str, object]) -> None:
        engine = make_engine(url, pool_size=1)
        async with unit_of_work(make_sessionmaker(engine)) as session:
            rule = await automation.get_rule(session, rule_id)
            await automation.update_rule(
                session, rule, expected_version=rule.version, changes=changes, actor=ADMIN
            )
        await engine.dispose()

    customer_id, rule_id = asyncio.run(setup())
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, url, str(customer_id)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdin is not None and worker.stdout is not None

    def ticket_tags(subject: str) -> list[str]:
        worker.stdin.write(subject + "\n")  # type: ignore[union-attr]
        worker.stdin.flush()  # type: ignore[union-attr]
        tags: list[str] = json.loads(worker.stdout.readline())  # type: ignore[union-attr]
        return tags

    try:
        assert ticket_tags("one") == ["first"]  # the worker now holds its copy of the rules
        assert ticket_tags("two") == ["first"]
        asyncio.run(change(rule_id, {"actions": [{"type": "add_tags", "value": ["second"]}]}))
        assert ticket_tags("three") == ["second"]
        asyncio.run(change(rule_id, {"active": False}))
        assert ticket_tags("four") == []
    finally:
        worker.stdin.close()
        assert worker.wait(timeout=60) == 0
