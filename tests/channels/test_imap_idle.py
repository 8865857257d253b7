"""The IDLE watcher against a real dovecot: new mail becomes a ticket within seconds although
the poll interval is an hour; it survives the server dropping the connection; a server
without IDLE is left to polling; leases keep two watchers off one mailbox.

The watcher runs on its own engine against a database of this module whose data is really
committed, as in production (the per-test rolled-back connection cannot be shared by
concurrent tasks). A small TCP relay between the watcher and dovecot can cut every connection
(a server dropping it) or hide IDLE from the capabilities (a server without it)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.channels import mailboxes
from servicecycle.channels.email.idle import IdleConnection, watch_mode
from servicecycle.channels.email.imap import ImapError
from servicecycle.channels.email.watch import Watchers, backoff
from servicecycle.channels.models import Mailbox
from servicecycle.config import Settings
from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
from servicecycle.events.models import Event
from servicecycle.events.service import Actor
from servicecycle.kit import clock
from servicecycle.tickets.models import Ticket
from servicecycle.tickets.storage import storage_for
from tests.channels.conftest import ImapAccount, ImapServer
from tests.channels.test_imap import mail

Sessions = async_sessionmaker[AsyncSession]


# -- pure decisions --------------------------------------------------------------------------


def test_idle_is_used_only_where_the_server_offers_it_and_it_is_not_switched_off() -> None:
    assert watch_mode({"IMAP4rev1", "IDLE", "UIDPLUS"}) == "idle"
    assert watch_mode({"imap4rev1", "idle"}) == "idle"  # capability names ignore case
    assert watch_mode({"IMAP4rev1", "UIDPLUS"}) == "poll"
    assert watch_mode({"IMAP4rev2"}) == "idle"  # IMAP4rev2 requires IDLE
    assert watch_mode({"IMAP4rev1", "IDLE"}, idle_enabled=False) == "poll"
    assert watch_mode(set()) == "poll"


def test_reconnecting_backs_off_doubling_up_to_a_cap() -> None:
    for failures, base in ((1, 1), (2, 2), (3, 4), (5, 16)):
        assert 0.8 * base <= backoff(failures) <= 1.2 * base
    assert backoff(30) <= 1.2 * 300


# -- a relay in front of dovecot -------------------------------------------------------------


class Relay:
    """Passes IMAP through to dovecot; can drop every connection, or hide IDLE."""

    def __init__(self, port: int, *, hide_idle: bool = False) -> None:
        self.upstream = port
        self.hide_idle = hide_idle
        self.port = 0
        self.idle_commands = 0
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream)
        self._writers += [client_w, server_w]

        async def down() -> None:  # server to client, line by line
            while line := await server_r.readline():
                if self.hide_idle and b"CAPABILITY" in line.upper():
                    line = line.replace(b" IDLE", b"")
                client_w.write(line)
                await client_w.drain()

        async def up() -> None:
            while data := await client_r.read(65536):
                self.idle_commands += data.upper().count(b" IDLE\r\n")
                server_w.write(data)
                await server_w.drain()

        with contextlib.suppress(Exception):
            await asyncio.gather(down(), up())
        for writer in (client_w, server_w):
            writer.close()

    def drop(self) -> None:
        """Cut every open connection, as a server restart or a NAT timeout would."""
        for writer in self._writers:
            transport = writer.transport
            transport.abort()
        self._writers.clear()

    async def stop(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def watch_url(pg_server: Any) -> str:
    """One migrated database for the module, its data committed."""
    return str(pg_server.create_database())


@pytest.fixture
async def factory(watch_url: str) -> AsyncIterator[Sessions]:
    engine = make_engine(watch_url, pool_size=4)
    sessions = make_sessionmaker(engine)
    try:
        yield sessions
    finally:  # no mailbox of this test is watched by the next
        async with unit_of_work(sessions) as session:
            await session.execute(delete(Mailbox))
        await engine.dispose()


@pytest.fixture
async def running(
    factory: Sessions, settings: Settings
) -> AsyncIterator[Callable[..., Awaitable[Watchers]]]:
    """Start watchers (stopped at the end of the test)."""
    started: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(**extra: Any) -> Watchers:
        watchers = Watchers(
            factory,
            keyring=settings.keyring(),
            storage=storage_for(settings.attachment_storage, settings.data_dir),
            max_file_bytes=settings.max_attachment_bytes,
            scan_seconds=0.2,
            **extra,
        )
        stop = asyncio.Event()
        started.append((stop, asyncio.create_task(watchers.run(stop))))
        return watchers

    yield start
    for stop, _ in started:
        stop.set()
    await asyncio.gather(*(task for _, task in started))


async def add(factory: Sessions, settings: Settings, account: ImapAccount, port: int) -> Mailbox:
    async with unit_of_work(factory) as session:
        return await mailboxes.create_mailbox(
            session,
            name=f"Support {account.username}",
            address=f"{account.username}@desk.example",
            host=account.host,
            port=port,
            security="none",
            username=account.username,
            password=account.password,
            poll_minutes=60,  # an hour: anything taken within seconds was not polled for
            keyring=settings.keyring(),
            actor=Actor.system("test"),
        )


async def row(factory: Sessions, box: Mailbox) -> Mailbox:
    async with factory() as session:
        return await mailboxes.get_mailbox(session, box.id)


async def until(check: Callable[[], Awaitable[bool]], *, seconds: float = 15.0) -> float:
    """Wait for ``check`` to hold; how long it took."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not within {seconds} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def ticket_named(factory: Sessions, subject: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        async with factory() as session:
            found = await session.scalar(select(Ticket.id).where(Ticket.subject == subject))
        return found is not None

    return check


def watched(factory: Sessions, box: Mailbox) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        now = await row(factory, box)
        return (
            now.watched_until is not None
            and now.watch_mode == "idle"
            and now.last_success_at is not None  # the catch-up poll has run
        )

    return check


async def append(account: ImapAccount, raw: bytes) -> int:
    return await asyncio.to_thread(account.append, raw)


# -- against dovecot -------------------------------------------------------------------------


async def test_a_mail_appended_by_another_client_becomes_a_ticket_within_seconds(
    factory: Sessions,
    settings: Settings,
    imap_account: ImapAccount,
    running: Callable[..., Awaitable[Watchers]],
) -> None:
    waiting = await append(imap_account, mail("Waiting before", message_id="<i0@example.com>"))
    box = await add(factory, settings, imap_account, imap_account.port)
    watchers = await running()

    await until(watched(factory, box))
    assert watchers.watching == {box.id}
    assert await ticket_named(factory, "Waiting before")()  # taken when watching began
    async with unit_of_work(factory) as session:  # the poll job leaves it to the watcher
        assert box.id not in await mailboxes.due_ids(session, now=clock.now())
    polls_before = (await row(factory, box)).last_polled_at

    uid = await append(imap_account, mail("Pushed by IDLE", message_id="<i1@example.com>"))
    # the mailbox is not due for an hour: only the server's notice can bring it this soon
    await until(ticket_named(factory, "Pushed by IDLE"), seconds=10)

    assert "\\Seen" in await asyncio.to_thread(imap_account.flags, uid)
    assert "\\Seen" in await asyncio.to_thread(imap_account.flags, waiting)
    after = await row(factory, box)
    assert after.last_polled_at != polls_before  # the ordinary poll ran: lease, seen-after
    assert after.received_count == 2 and after.last_error is None


async def test_the_watcher_comes_back_after_the_server_drops_the_connection(
    factory: Sessions,
    settings: Settings,
    imap_account: ImapAccount,
    running: Callable[..., Awaitable[Watchers]],
) -> None:
    relay = Relay(imap_account.port)
    await relay.start()
    try:
        box = await add(factory, settings, imap_account, relay.port)
        await running()
        await until(watched(factory, box))

        relay.drop()

        async def failure_shown() -> bool:
            async with factory() as session:
                found = await session.scalars(
                    select(Event.data).where(
                        Event.kind == "mailbox.failed", Event.subject_id == str(box.id)
                    )
                )
                return any("IDLE" in str(data.get("error")) for data in found.all())

        await until(failure_shown, seconds=10)
        await until(watched(factory, box), seconds=15)  # reconnected after the backoff
        await append(imap_account, mail("After the drop", message_id="<i2@example.com>"))
        await until(ticket_named(factory, "After the drop"), seconds=10)

        assert relay.connections >= 3  # IDLE and a poll, then IDLE again
    finally:
        await relay.stop()


async def test_idle_is_re_issued_before_the_server_would_end_it(
    factory: Sessions,
    settings: Settings,
    imap_account: ImapAccount,
    running: Callable[..., Awaitable[Watchers]],
) -> None:
    relay = Relay(imap_account.port)
    await relay.start()
    try:
        box = await add(factory, settings, imap_account, relay.port)
        await running(idle_seconds=0.3)
        await until(watched(factory, box))

        await until(_at_least(relay, 4), seconds=10)  # DONE, a look, IDLE again, ...
        await append(imap_account, mail("Between rounds", message_id="<i3@example.com>"))
        await until(ticket_named(factory, "Between rounds"), seconds=10)

        assert (await row(factory, box)).last_error is None
    finally:
        await relay.stop()


def _at_least(relay: Relay, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return relay.idle_commands >= count

    return check


async def test_a_server_without_idle_is_left_to_polling(
    factory: Sessions,
    settings: Settings,
    imap_account: ImapAccount,
    running: Callable[..., Awaitable[Watchers]],
) -> None:
    relay = Relay(imap_account.port, hide_idle=True)
    await relay.start()
    try:
        box = await add(factory, settings, imap_account, relay.port)
        watchers = await running()

        async def decided() -> bool:
            return (await row(factory, box)).watch_mode is not None

        await until(decided)
        await asyncio.sleep(0.5)  # a few scans: it is not taken up again

        after = await row(factory, box)
        assert after.watch_mode == "poll" and after.watched_until is None
        assert watchers.watching == set() and relay.idle_commands == 0
        async with unit_of_work(factory) as session:
            assert box.id in await mailboxes.due_ids(session, now=clock.now())
        assert "does not offer IDLE" in mailboxes.how_taken(
            after, now=clock.now(), idle_enabled=True
        )
    finally:
        await relay.stop()


async def test_two_watchers_never_watch_one_mailbox_and_switching_it_off_lets_go(
    factory: Sessions,
    settings: Settings,
    imap_account: ImapAccount,
    running: Callable[..., Awaitable[Watchers]],
) -> None:
    box = await add(factory, settings, imap_account, imap_account.port)
    first, second = await running(), await running()
    await until(watched(factory, box))
    await asyncio.sleep(0.5)  # scans by both
    assert len(first.watching) + len(second.watching) == 1

    async with unit_of_work(factory) as session:
        await mailboxes.update_mailbox(
            session,
            await mailboxes.get_mailbox(session, box.id),
            changes={"enabled": False},
            keyring=settings.keyring(),
            actor=Actor.system("test"),
        )

    async def let_go() -> bool:
        now = await row(factory, box)
        return now.watched_until is None and not first.watching and not second.watching

    await until(let_go, seconds=5)


async def test_a_wrong_password_is_named_by_the_idle_connection(
    imap_account: ImapAccount,
) -> None:
    login = mailboxes.Login(
        host=imap_account.host,
        port=imap_account.port,
        security="none",
        username=imap_account.username,
        password="not-it \u00e9",  # 8-bit: sent as a literal
        folder="INBOX",
    )
    with pytest.raises(ImapError, match="Login failed"):
        await IdleConnection.open(login)


def test_watched_or_polled_in_words() -> None:
    now = clock.now()
    box = Mailbox(poll_minutes=5, watch_mode=None, watched_until=None, enabled=True)
    assert mailboxes.how_taken(box, now=now, idle_enabled=True) == "polled every 5 min"
    assert "IDLE is switched off" in mailboxes.how_taken(box, now=now, idle_enabled=False)
    box.watch_mode = "idle"
    assert "until the IDLE watcher" in mailboxes.how_taken(box, now=now, idle_enabled=True)
    box.watched_until = now + timedelta(minutes=3)
    assert mailboxes.how_taken(box, now=now, idle_enabled=True).startswith("watched (IDLE)")
    box.watched_until = now - timedelta(seconds=1)  # a lease that ran out: polled again
    assert mailboxes.how_taken(box, now=now, idle_enabled=True).startswith("polled")
    box.enabled = False
    assert mailboxes.how_taken(box, now=now, idle_enabled=True) == "not taken: switched off"


async def test_a_mailbox_it_cannot_log_in_to_is_tried_again_later_and_left_to_polling(
    factory: Sessions,
    settings: Settings,
    imap_account: ImapAccount,
    running: Callable[..., Awaitable[Watchers]],
) -> None:
    relay = Relay(imap_account.port)
    await relay.start()
    try:
        box = await add(factory, settings, imap_account, relay.port)
        async with unit_of_work(factory) as session:
            await mailboxes.update_mailbox(
                session,
                await mailboxes.get_mailbox(session, box.id),
                changes={"password": "wrong-password"},
                keyring=settings.keyring(),
                actor=Actor.system("test"),
            )
        watchers = await running()

        await until(_connected(relay, 1), seconds=10)
        await asyncio.sleep(1.5)  # scans every 0.2 s; the retries back off: 1 s, then 2 s

        assert relay.connections <= 3

        async def released() -> bool:  # between two tries (a try holds it for a moment)
            return (await row(factory, box)).watched_until is None and not watchers.watching

        await until(released, seconds=5)
        async with unit_of_work(factory) as session:  # polling covers it and shows the fault
            assert box.id in await mailboxes.due_ids(session, now=clock.now())
            events = (
                await session.scalars(
                    select(Event.data).where(
                        Event.kind == "mailbox.failed", Event.subject_id == str(box.id)
                    )
                )
            ).all()
        assert not any("IDLE" in str(data.get("error")) for data in events)
    finally:
        await relay.stop()


def _connected(relay: Relay, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return relay.connections >= count

    return check


@pytest.mark.parametrize("security", ["starttls", "ssl"])
async def test_the_idle_connection_is_encrypted_as_configured_and_checks_the_certificate(
    imap_server: ImapServer,
    imap_account: ImapAccount,
    monkeypatch: pytest.MonkeyPatch,
    security: str,
) -> None:
    login = mailboxes.Login(
        host=imap_account.host,
        port=imap_server.tls_port if security == "ssl" else imap_account.port,
        security=security,
        username=imap_account.username,
        password=imap_account.password,
        folder="INBOX",
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(imap_server.root / "server.key"))  # no CA in it
    with pytest.raises(ImapError, match=r"(?i)certificate|TLS"):
        await IdleConnection.open(login)

    monkeypatch.setenv("SSL_CERT_FILE", str(imap_server.ca_file))
    connection = await IdleConnection.open(login)
    try:
        assert watch_mode(connection.capabilities) == "idle"
        await connection.examine("INBOX")
        assert await connection.idle(0.2) is False  # nothing came: DONE after the wait
        await append(imap_account, mail("While idling", message_id=f"<tls-{security}@ex.com>"))
        assert await connection.idle(10) is True
    finally:
        await connection.close()


async def test_a_bad_mail_does_not_stop_the_watcher(
    factory: Sessions,
    settings: Settings,
    imap_account: ImapAccount,
    running: Callable[..., Awaitable[Watchers]],
) -> None:
    box = await add(factory, settings, imap_account, imap_account.port)
    await running()
    await until(watched(factory, box))

    bad = await append(imap_account, b"Subject: no sender\r\n\r\n\x00\xff garbage\r\n")
    good = await append(imap_account, mail("Good after bad", message_id="<gab@example.com>"))
    await until(ticket_named(factory, "Good after bad"), seconds=10)

    for uid in (bad, good):  # both stored (the bad one as a refusal), so both marked read
        assert "\\Seen" in await asyncio.to_thread(imap_account.flags, uid)
    after = await row(factory, box)
    assert after.rejected_count == 1 and after.received_count == 1
