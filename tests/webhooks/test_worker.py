"""The periodic job through a real procrastinate worker on a fresh database: an event's
delivery reaches a real receiver, signed with the secret the settings' key opens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from servicecycle.customers import service as customers
from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
from servicecycle.events.service import Actor
from servicecycle.jobs.queue import bind_sessions, make_job_app
from servicecycle.tickets import service as tickets
from servicecycle.webhooks import service
from tests.webhooks.conftest import Receiver, WebhookSettings, check_signature

ADMIN = Actor.system("test")


async def test_the_worker_sends_due_deliveries(
    fresh_database: Callable[..., str],
    receiver: Receiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = WebhookSettings(data_dir=tmp_path / "data", secret_key="k" * 48)  # type: ignore[arg-type]
    monkeypatch.setattr("servicecycle.webhooks.tasks.get_settings", lambda: settings)
    url = fresh_database()
    engine = make_engine(url, pool_size=2)
    factory = make_sessionmaker(engine)
    bind_sessions(factory)
    try:
        async with unit_of_work(factory) as session:
            _, secret = await service.create_subscription(
                session,
                name="Receiver",
                url=receiver.url,
                kinds=["ticket.created"],
                sending=service.sending_for(settings),
                actor=ADMIN,
            )
            customer = await customers.create_customer(
                session, name="Ada", emails=["ada@example.net"], actor=ADMIN
            )
            await tickets.create_ticket(
                session,
                subject="Through the worker",
                requester=customer,
                channel="api",
                body_text="Hello",
                actor=ADMIN,
            )
        app = make_job_app(url)
        async with app.open_async():
            await app.configure_task("webhooks.deliver").defer_async(timestamp=1_900_000_000)
            await app.run_worker_async(
                wait=False, install_signal_handlers=False, listen_notify=False
            )
        [got] = receiver.received
        assert b"Through the worker" in got.body
        assert check_signature(secret, got, now=datetime.now(UTC).timestamp())
        async with unit_of_work(factory) as session:
            [row] = (await service.list_deliveries(session)).items
            assert (row.status, row.attempts, row.response_code) == ("delivered", 1, 200)
    finally:
        bind_sessions(None)
        await engine.dispose()
