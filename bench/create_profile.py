"""In-process cost of creating one ticket: SQL statements and CPU per ticket, for the API
(``POST /api/v1/tickets`` through the ASGI app) and for a new mail (``intake.receive``).

Runs against a fresh, migrated database on an external PostgreSQL (``--admin-url``; the
database is dropped afterwards) that holds what a configured desk holds: an SLA policy and a
business calendar, automation rules, a webhook subscription, an acknowledgement template.
No HTTP server and no network: the figures are the Python work of the server process, and
``time.process_time`` makes them independent of the machine's other load.

    .venv/bin/python bench/create_profile.py --admin-url postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/create_profile.py --admin-url ... --profile api --top 40

``--statements`` prints every SQL statement of one created ticket, in order.
``--mail-batch 25`` also measures new mails 25 per transaction (``batch.receive_many``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import time
import uuid
from collections import Counter
from typing import Any

import psycopg
from httpx import ASGITransport, AsyncClient
from sqlalchemy import event
from sqlalchemy.engine import make_url

SORT = ["cumulative"]
FILTER: list[str] = []  # a regular expression the profile rows must match (--only)


class Counted:
    """Counts the statements an engine sends (``before_cursor_execute``)."""

    def __init__(self) -> None:
        self.n = 0
        self.log: list[str] | None = None

    def attach(self, sync_engine: Any) -> None:
        @event.listens_for(sync_engine, "before_cursor_execute")
        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            self.n += 1
            if self.log is not None:
                self.log.append(" ".join(statement.split())[:160])


async def configure(sessions: Any) -> str:
    """An admin with an API token, and the configuration a working desk has."""
    from servicecycle.auth import service as auth
    from servicecycle.db.engine import unit_of_work
    from servicecycle.events.service import Actor

    actor = Actor.system("bench")
    async with unit_of_work(sessions) as session:
        admin = await auth.create_user(
            session,
            email="admin@example.com",
            name="Admin",
            role="admin",
            password=None,
            actor=actor,
        )
        plain, _ = await auth.create_api_token(
            session,
            admin,
            name="bench",
            scopes=["read", "write", "admin"],
            expires_at=None,
            actor=actor,
        )
        await _desk_configuration(session, actor)
    return plain


async def _desk_configuration(session: Any, actor: Any) -> None:
    from servicecycle.automation import service as automation
    from servicecycle.config import Settings
    from servicecycle.sla import service as sla
    from servicecycle.webhooks import service as webhooks

    for name, word, action in (
        ("Urgent to the top", "outage", {"type": "set_priority", "value": "urgent"}),
        ("Tag refunds", "refund", {"type": "add_tags", "value": ["refund"]}),
    ):
        await automation.create_rule(
            session,
            name=name,
            kind="trigger",
            events=["ticket.created"],
            conditions=[{"field": "ticket.subject", "op": "contains", "value": word}],
            actions=[action],
            actor=actor,
        )
    await sla.create_policy(
        session,
        name="Standard",
        conditions={},
        targets={
            "first_reply": {"minutes": 240, "business": False},
            "resolution": {"minutes": 2880, "business": False},
        },
        calendar_id=None,
        pause_statuses=["pending"],
        warn_minutes=30,
        actor=actor,
    )
    await webhooks.create_subscription(
        session,
        name="CRM",
        url="http://127.0.0.1:9/hook",
        kinds=["ticket.created"],
        sending=webhooks.Sending(keyring=Settings().keyring(), allow_private=True),
        actor=actor,
    )


def time_handlers() -> Counter[str]:
    """Wrap every event subscriber to add up its CPU time (inclusive of what it causes)."""
    from servicecycle.events import bus

    bus.load_all()
    spent: Counter[str] = Counter()

    def wrap(handler: Any) -> Any:
        async def timed(session: Any, event: Any) -> None:
            started = time.process_time()
            try:
                await handler(session, event)
            finally:
                spent[f"{handler.__module__}.{handler.__name__} ({event.kind})"] += (
                    time.process_time() - started
                )

        if hasattr(handler, "wants"):
            timed.wants = handler.wants  # type: ignore[attr-defined]
        return timed

    for kind, handlers in bus._handlers.items():
        bus._handlers[kind] = [wrap(h) for h in handlers]
    return spent


def _body(n: int) -> dict[str, Any]:
    return {
        "subject": f"My parcel {n} has not arrived",
        "requester": {
            "email": f"customer{n % 50}@example.net"
            if n % 10
            else f"new-{uuid.uuid4().hex[:10]}@example.org"
        },
        "body": "Hello,\n\nI ordered a printer last week and it has not arrived yet. "
        "Could you check where it is?\n\nThanks, a customer",
        "channel": "api",
        "priority": "normal",
        "tags": ["delivery"],
    }


def _mail(n: int) -> bytes:
    sender = f"customer{n % 50}@example.net" if n % 10 else f"new{n}@example.org"
    return (
        f"From: A Customer <{sender}>\r\nTo: support@example.com\r\n"
        f"Subject: Order {n} is late\r\nMessage-ID: <m{n}.{uuid.uuid4().hex[:8]}@example.net>\r\n"
        f"Date: Wed, 02 Dec 2026 03:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Hello,\r\n\r\nmy order has not arrived. Where is it?\r\n\r\nThanks\r\n"
    ).encode()


async def run(
    url: str,
    n: int,
    profile: str | None,
    top: int,
    statements: bool,
    handlers: bool,
    mail_batch: int = 1,
) -> dict[str, Any]:
    from servicecycle.app import create_app
    from servicecycle.channels.email import intake
    from servicecycle.config import Settings
    from servicecycle.db.engine import unit_of_work
    from servicecycle.tickets.storage import DatabaseStorage

    app = create_app(Settings(), url, run_worker=False)
    counted = Counted()
    spent = time_handlers() if handlers else None
    out: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        counted.attach(runtime.engine.sync_engine)
        token = await configure(runtime.sessions)
        headers = {"Authorization": f"Bearer {token}"}
        async with AsyncClient(
            transport=ASGITransport(app=app), base_url="http://bench", headers=headers
        ) as http:

            async def create(i: int) -> None:
                r = await http.post("/api/v1/tickets", json=_body(i))
                assert r.status_code == 201, r.text

            for i in range(20):  # warm: imports, caches, the pool
                await create(i)
            if statements:
                counted.log = []
                await create(10_001)
                print("\n".join(f"{k + 1:3} {s}" for k, s in enumerate(counted.log)))
                counted.log = None
            if spent is not None:
                spent.clear()
            out["api"] = await _measure(n, create, counted, profile == "api", top)
            if spent is not None:
                out["api"]["handler_cpu_ms_per_ticket"] = {
                    k: round(v / n * 1000, 2) for k, v in spent.most_common()
                }

        storage = DatabaseStorage()

        async def receive(i: int) -> None:
            async with unit_of_work(runtime.sessions) as session:
                outcome = await intake.receive(
                    session, _mail(i), storage=storage, max_file_bytes=10_000_000
                )
            assert outcome.outcome == "ticket", outcome

        for i in range(20):
            await receive(100_000 + i)
        if statements:
            counted.log = []
            await receive(200_001)
            print("\n".join(f"{k + 1:3} {s}" for k, s in enumerate(counted.log)))
            counted.log = None
        if spent is not None:
            spent.clear()
        out["mail"] = await _measure(
            n, lambda i: receive(300_000 + i), counted, profile == "mail", top
        )
        if spent is not None:
            out["mail"]["handler_cpu_ms_per_ticket"] = {
                k: round(v / n * 1000, 2) for k, v in spent.most_common()
            }
        if mail_batch > 1:  # the same mails, ``mail_batch`` per transaction (the IMAP poll)
            from servicecycle.channels.email.batch import receive_many

            async def receive_batch(i: int) -> None:
                first = 400_000 + i * mail_batch
                async with unit_of_work(runtime.sessions) as session:
                    got = await receive_many(
                        session,
                        [_mail(first + k) for k in range(mail_batch)],
                        storage=storage,
                        max_file_bytes=10_000_000,
                    )
                assert {o.outcome for o in got} == {"ticket"}, got

            if statements:
                counted.log = []
                await receive_batch(10_000)
                print("\n".join(f"{k + 1:3} {s}" for k, s in enumerate(counted.log)))
                counted.log = None
            batches = max(n // mail_batch, 1)
            measured = await _measure(batches, receive_batch, counted, profile == "mail-batch", top)
            per = batches * mail_batch
            out["mail_batch"] = {
                "batch": mail_batch,
                "n": per,
                "statements_per_ticket": round(measured["statements_per_ticket"] / mail_batch, 2),
                "cpu_ms_per_ticket": round(measured["cpu_ms_per_ticket"] / mail_batch, 2),
                "per_cpu_s": round(measured["per_cpu_s"] * mail_batch, 1),
                "wall_ms_per_ticket": round(measured["wall_ms_per_ticket"] / mail_batch, 2),
                "profiled": measured["profiled"],
            }
    return out


async def _measure(n: int, one: Any, counted: Counted, profile: bool, top: int) -> dict[str, Any]:
    prof = cProfile.Profile(time.process_time) if profile else None
    before = counted.n
    cpu, wall = time.process_time(), time.perf_counter()
    if prof:
        prof.enable()
    for i in range(n):
        await one(i)
    if prof:
        prof.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if prof:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats(SORT[0]).print_stats(*FILTER, top)
        print(buf.getvalue())
    return {
        "n": n,
        "statements_per_ticket": round((counted.n - before) / n, 2),
        "cpu_ms_per_ticket": round(cpu / n * 1000, 2),
        "per_cpu_s": round(n / cpu, 1),
        "wall_ms_per_ticket": round(wall / n * 1000, 2),
        "profiled": profile,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--admin-url", required=True, help="a PostgreSQL to make a database on")
    parser.add_argument("-n", type=int, default=300, help="tickets per path")
    parser.add_argument("--profile", choices=["api", "mail", "mail-batch"])
    parser.add_argument(
        "--mail-batch",
        type=int,
        default=1,
        help="also mails N per transaction (batch.receive_many), as the IMAP poll takes them",
    )
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--statements", action="store_true")
    parser.add_argument("--handlers", action="store_true", help="CPU per event subscriber")
    parser.add_argument("--sort", default="cumulative", help="cProfile sort key")
    parser.add_argument("--only", help="profile rows matching this regular expression")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    SORT[0] = args.sort
    if args.only:
        FILTER.append(args.only)

    from servicecycle.db.engine import libpq_url
    from servicecycle.db.migrate import upgrade

    name = f"bench_create_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq_url(args.admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(libpq_url(args.admin_url)).set(database=name).render_as_string(False)
    try:
        upgrade(url)
        load = os.getloadavg()
        result = asyncio.run(
            run(
                url,
                args.n,
                args.profile,
                args.top,
                args.statements,
                args.handlers,
                args.mail_batch,
            )
        )
        result["loadavg"] = [load, os.getloadavg()]
    finally:
        with psycopg.connect(libpq_url(args.admin_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
