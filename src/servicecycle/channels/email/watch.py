"""The IDLE watcher: new mail taken as soon as the server says it has arrived.

For each enabled mailbox whose server offers IDLE, the watcher holds one connection in IDLE.
When the server reports a new message (``EXISTS``), it runs the mailbox's ordinary poll
(:func:`imap.poll_mailbox`: the same lease, the same storing, ``\\Seen`` only after commit, a
bad message never stopping it), then waits in IDLE again. It re-issues IDLE every
``idle_seconds`` (under RFC 2177's 29 minutes), polling then as well, so nothing is missed
even if a notice were lost.

A watcher takes a mailbox with a lease in the database (``watched_until``, renewed on every
scan), so several worker processes share the mailboxes and never watch one twice; while the
lease lasts, the periodic poll job leaves the mailbox alone. A mailbox whose server offers no
IDLE is given back to the poll job (and asked again after ``recheck``). A dropped connection
is shown as the mailbox's error, the lease is given back (so polling covers the gap), and the
watcher reconnects after a backoff that doubles up to ``MAX_BACKOFF``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.channels import mailboxes
from servicecycle.channels.email import imap
from servicecycle.channels.email.idle import IDLE_SECONDS, IdleConnection, watch_mode
from servicecycle.channels.email.listener import ListenerThread
from servicecycle.channels.mailboxes import Login
from servicecycle.config import Settings
from servicecycle.db.engine import unit_of_work
from servicecycle.kit import clock
from servicecycle.kit.errors import NotFound, ServiceError
from servicecycle.kit.secrets import Keyring
from servicecycle.tickets.storage import Storage, storage_for

log = structlog.get_logger(__name__)

SCAN_SECONDS = 30.0  # how often leases are renewed and new or changed mailboxes noticed
LEASE = timedelta(minutes=3)  # a watcher that died is replaced by polling after this
RECHECK = timedelta(hours=1)  # a server without IDLE is asked again this often
BUSY_RETRY_SECONDS = 2.0  # the mailbox was being polled by someone else: look again soon
MAX_BACKOFF = 300.0
STEADY_SECONDS = 60.0  # a connection that lasted this long resets the backoff


def backoff(failures: int, *, cap: float = MAX_BACKOFF) -> float:
    """Seconds before reconnecting after ``failures`` failures in a row: 1, 2, 4, ... up to
    ``cap``, give or take a fifth (so many watchers do not all come back at once)."""
    base = min(cap, 2.0 ** max(0, failures - 1))
    return float(base * random.uniform(0.8, 1.2))  # noqa: S311 (timing, not secrecy)


@dataclass
class _Progress:
    watching: bool = False  # connected, logged in and waiting in IDLE at least once


@dataclass
class _Watch:
    version: int
    task: asyncio.Task[None]


@dataclass
class Watchers:
    """Watches every IDLE-capable mailbox it can lease, until ``run``'s stop is set."""

    factory: async_sessionmaker[AsyncSession]
    keyring: Keyring
    storage: Storage
    max_file_bytes: int
    idle_seconds: float = IDLE_SECONDS
    scan_seconds: float = SCAN_SECONDS
    lease: timedelta = LEASE
    recheck: timedelta = RECHECK
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    _watches: dict[int, _Watch] = field(default_factory=dict)
    _failures: dict[int, int] = field(default_factory=dict)
    _retry_at: dict[int, float] = field(default_factory=dict)

    @property
    def watching(self) -> set[int]:
        """The mailboxes this watcher holds an IDLE connection (or is connecting) for."""
        return set(self._watches)

    async def run(self, stop: asyncio.Event) -> None:
        """Scan, watch and renew until ``stop`` is set; then let every mailbox go."""
        log.info("imap.watcher.started", watcher=self.token)
        try:
            while not stop.is_set():
                try:
                    await self.scan()
                except Exception:  # the database is away: the next scan tries again
                    log.exception("imap.watcher.scan_failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.scan_seconds)
        finally:
            await self.close()
            log.info("imap.watcher.stopped", watcher=self.token)

    async def close(self) -> None:
        watches = list(self._watches.values())
        for watch in watches:
            watch.task.cancel()
        await asyncio.gather(*(w.task for w in watches), return_exceptions=True)
        with contextlib.suppress(Exception):
            async with unit_of_work(self.factory) as session:
                await mailboxes.release_all_watches(session, watcher=self.token)

    async def scan(self) -> None:
        """Renew the leases held, stop watching what changed, start on what is new."""
        now = clock.now()
        async with unit_of_work(self.factory) as session:
            held = await mailboxes.renew_watches(
                session, list(self._watches), watcher=self.token, now=now, lease=self.lease
            )
            candidates = await mailboxes.watch_candidates(session, now=now, recheck=self.recheck)
        for mailbox_id, watch in list(self._watches.items()):
            if held.get(mailbox_id) != watch.version:  # switched off, deleted, changed, lost
                watch.task.cancel()
        loop = asyncio.get_running_loop()
        for mailbox_id in candidates:
            if mailbox_id in self._watches or self._retry_at.get(mailbox_id, 0) > loop.time():
                continue
            async with unit_of_work(self.factory) as session:
                box = await mailboxes.claim_watch(
                    session, mailbox_id, watcher=self.token, now=clock.now(), lease=self.lease
                )
                if box is None:
                    continue
                try:
                    login = mailboxes.login_of(box, self.keyring)
                except ServiceError:  # polling shows this; no point holding the mailbox
                    await mailboxes.release_watch(
                        session, mailbox_id, watcher=self.token, error=None, now=clock.now()
                    )
                    self._retry_at[mailbox_id] = loop.time() + self.recheck.total_seconds()
                    continue
                version = box.version
            task = asyncio.create_task(
                self._watch(mailbox_id, login), name=f"imap-idle-{mailbox_id}"
            )
            self._watches[mailbox_id] = _Watch(version, task)
            task.add_done_callback(self._forget(mailbox_id))

    def _forget(self, mailbox_id: int) -> Callable[[asyncio.Task[None]], None]:
        def forget(task: asyncio.Task[None]) -> None:
            watch = self._watches.get(mailbox_id)
            if watch is not None and watch.task is task:
                del self._watches[mailbox_id]

        return forget

    async def _watch(self, mailbox_id: int, login: Login) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        state = _Progress()
        error: str | None = None
        try:
            await self._follow(mailbox_id, login, state)
        except imap.ImapError as exc:
            error = f"IDLE: {exc}"
        except NotFound:  # deleted while watched
            pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must show, not silently end watching
            log.exception("imap.watcher.crashed", mailbox_id=mailbox_id)
            error = f"IDLE: unexpected error: {type(exc).__name__}: {exc}"
        finally:
            if error is not None:
                failures = (
                    1
                    if loop.time() - started >= STEADY_SECONDS
                    else (self._failures.get(mailbox_id, 0) + 1)
                )
                self._failures[mailbox_id] = failures
                wait = backoff(failures)
                self._retry_at[mailbox_id] = loop.time() + wait
                log.warning("imap.watcher.lost", mailbox_id=mailbox_id, error=error, retry_in=wait)
                if not state.watching:
                    # could not connect or log in: the polls meanwhile meet the same fault
                    # and show it; two wordings taking turns would log an event each time
                    error = None
            with contextlib.suppress(Exception):
                async with unit_of_work(self.factory) as session:
                    await mailboxes.release_watch(
                        session, mailbox_id, watcher=self.token, error=error, now=clock.now()
                    )

    async def _follow(self, mailbox_id: int, login: Login, state: _Progress) -> None:
        connection = await IdleConnection.open(login)
        try:
            mode = watch_mode(connection.capabilities)
            async with unit_of_work(self.factory) as session:
                await mailboxes.note_watch_mode(
                    session, mailbox_id, watcher=self.token, mode=mode, now=clock.now()
                )
            if mode == "poll":
                log.info("imap.watcher.no_idle", mailbox_id=mailbox_id)
                self._retry_at[mailbox_id] = (
                    asyncio.get_running_loop().time() + self.recheck.total_seconds()
                )
                return
            await connection.examine(login.folder)
            state.watching = True
            log.info("imap.watcher.watching", mailbox_id=mailbox_id)
            while True:
                # what arrived before IDLE began, or since the last look
                result = await imap.poll_mailbox(
                    self.factory,
                    mailbox_id,
                    keyring=self.keyring,
                    storage=self.storage,
                    max_file_bytes=self.max_file_bytes,
                )
                again_soon = result.busy or result.more
                if result.error is None and not result.busy:
                    self._failures.pop(mailbox_id, None)
                await connection.idle(BUSY_RETRY_SECONDS if again_soon else self.idle_seconds)
        finally:
            await connection.close()


async def watch_mailboxes(settings: Settings, url: str, stop: asyncio.Event) -> None:
    """Run the watcher on its own small connection pool until ``stop`` is set."""
    from servicecycle.db.engine import make_engine, make_sessionmaker

    engine = make_engine(url, pool_size=2)
    try:
        await Watchers(
            make_sessionmaker(engine),
            keyring=settings.keyring(),
            storage=storage_for(settings.attachment_storage, settings.data_dir),
            max_file_bytes=settings.max_attachment_bytes,
        ).run(stop)
    finally:
        await engine.dispose()


def watcher_thread(settings: Settings, url: str) -> ListenerThread:
    """The watcher on a thread and event loop of its own (beside a web server)."""

    async def run(stop: asyncio.Event, ready: Callable[[], None]) -> None:
        ready()
        await watch_mailboxes(settings, url, stop)

    return ListenerThread(run, name="imap-idle")
