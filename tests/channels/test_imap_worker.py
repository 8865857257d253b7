"""The periodic job through a real procrastinate worker on a fresh database: the settings'
key opens the password, the mail in the mailbox becomes a ticket, and it is marked read."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from servicecycle.channels import mailboxes
from servicecycle.config import get_settings
from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
from servicecycle.events.service import Actor
from servicecycle.jobs.queue import bind_sessions, make_job_app
from servicecycle.tickets.models import Ticket
from tests.channels.conftest import ImapAccount
from tests.channels.test_imap import mail


@pytest.fixture
def own_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process settings the task reads, pointed at this test's key and data folder."""
    monkeypatch.setenv("SERVICECYCLE_SECRET_KEY", "k" * 48)
    monkeypatch.setenv("SERVICECYCLE_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def test_the_worker_polls_due_mailboxes_every_minute(
    fresh_database: Callable[..., str], own_settings: None, imap_account: ImapAccount
) -> None:
    url = fresh_database()
    engine = make_engine(url, pool_size=2)
    factory = make_sessionmaker(engine)
    bind_sessions(factory)
    try:
        uid = imap_account.append(mail("Through the worker", message_id="<w1@example.com>"))
        async with unit_of_work(factory) as session:
            box = await mailboxes.create_mailbox(
                session,
                name="Support",
                address="support@desk.example",
                host=imap_account.host,
                port=imap_account.port,
                security="none",
                username=imap_account.username,
                password=imap_account.password,
                keyring=get_settings().keyring(),
                actor=Actor.system("test"),
            )
        app = make_job_app(url)
        async with app.open_async():
            await app.configure_task("channels.poll_mailboxes").defer_async(timestamp=1_900_000_000)
            await app.run_worker_async(
                wait=False, install_signal_handlers=False, listen_notify=False
            )
        async with unit_of_work(factory) as session:
            subjects = (await session.scalars(select(Ticket.subject))).all()
            row = await mailboxes.get_mailbox(session, box.id)
        assert "Through the worker" in subjects
        assert row.received_count == 1 and row.last_error is None
        assert "\\Seen" in imap_account.flags(uid)
    finally:
        bind_sessions(None)
        await engine.dispose()
