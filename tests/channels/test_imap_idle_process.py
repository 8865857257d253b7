"""`servicecycle worker` runs the IDLE watcher beside the job worker: a mail appended to a
mailbox that is not due for an hour becomes a ticket within seconds, and SIGTERM gives the
mailbox back (so polling covers it) before the process ends."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from servicecycle.channels import mailboxes
from servicecycle.channels.models import Mailbox
from servicecycle.config import Settings
from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
from servicecycle.events.service import Actor
from servicecycle.kit import clock
from servicecycle.tickets.models import Ticket
from tests.channels.conftest import ImapAccount
from tests.channels.test_imap import mail

KEY = "w" * 48


def start_worker(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "servicecycle", "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


async def test_the_worker_process_watches_mailboxes_with_idle(
    fresh_database: Callable[..., str], imap_account: ImapAccount, tmp_path: Path
) -> None:
    url = fresh_database()
    engine = make_engine(url, pool_size=2)
    factory = make_sessionmaker(engine)
    keyring = Settings(secret_key=KEY, data_dir=tmp_path / "data").keyring()  # type: ignore[arg-type]
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
            poll_minutes=60,
            keyring=keyring,
            actor=Actor.system("test"),
        )
        # polled a moment ago: the periodic job has nothing to do for an hour
        await session.execute(
            update(Mailbox).where(Mailbox.id == box.id).values(last_polled_at=clock.now())
        )
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SERVICECYCLE_", "DATABASE_URL"))
    }
    env |= {
        "DATABASE_URL": url,
        "SERVICECYCLE_SECRET_KEY": KEY,
        "SERVICECYCLE_DATA_DIR": str(tmp_path / "data"),
    }
    process = start_worker(env)
    try:

        async def current() -> Mailbox:
            async with factory() as session:
                return await mailboxes.get_mailbox(session, box.id)

        deadline = time.monotonic() + 60
        while not ((row := await current()).watched_until and row.last_success_at):
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "the worker never watched the mailbox"
            await asyncio.sleep(0.1)

        await asyncio.to_thread(
            imap_account.append, mail("Seen by the worker", message_id="<wp1@example.com>")
        )
        started = time.monotonic()
        while True:
            async with factory() as session:
                found = await session.scalar(
                    select(Ticket.id).where(Ticket.subject == "Seen by the worker")
                )
            if found is not None:
                break
            assert time.monotonic() - started < 10, "not taken within 10 s"
            await asyncio.sleep(0.05)

        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
            raise AssertionError(f"SIGTERM did not stop the worker:\n{output}") from None
        assert process.returncode == 0, output
        after = await current()
        assert after.watched_until is None and after.watcher is None  # given back
        assert after.last_polled_at is not None
        assert clock.now() - after.last_polled_at < timedelta(minutes=1)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        await engine.dispose()
