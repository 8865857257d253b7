"""Mail in by IMAP: poll a mailbox and hand each new mail to the intake.

Order of work, a batch of mails at a time (up to ``BATCH`` mails or ``BATCH_BYTES``): fetch
them without changing their flags (``BODY.PEEK[]``), store them (``batch.receive_many``) and
advance the mailbox's last UID in one transaction, commit, and only then mark them
``\\Seen``. Nothing is ever deleted or moved on the server. A mail whose storing fails is
rolled back alone (the others of its batch are stored), stays unread and is retried by the
next poll; one that cannot be parsed is recorded as rejected by the intake and marked read
like any other stored mail.

The standard library's ``imaplib`` does the protocol; each blocking call runs in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.channels import mailboxes
from servicecycle.channels.email import batch
from servicecycle.channels.mailboxes import Login
from servicecycle.config import Settings
from servicecycle.kit import clock
from servicecycle.kit.errors import ServiceError
from servicecycle.kit.secrets import Keyring
from servicecycle.tickets.storage import Storage, storage_for

log = structlog.get_logger(__name__)

TIMEOUT_SECONDS = 30.0
LEASE = timedelta(minutes=10)  # renewed with every stored mail
MAX_PER_POLL = 200  # the rest waits for the next poll, so one poll never runs for hours
BATCH = 50  # mails stored per transaction: a commit and the per-transaction reads shared
BATCH_BYTES = 8 * 1024 * 1024  # fewer when they are large, to bound what is held in memory
_T = TypeVar("_T")
_UID = re.compile(rb"UID (\d+)")


class ImapError(Exception):
    """A connection, login or protocol failure, worded for the admin page."""


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, list | tuple) and value:
        return _text(value[-1])
    return str(value)


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Connection:
    """One IMAP session on one folder; every blocking ``imaplib`` call runs in a thread."""

    def __init__(self, imap: imaplib.IMAP4) -> None:
        self._imap = imap

    async def _call(self, fn: Callable[..., _T], *args: Any) -> _T:
        try:
            return await asyncio.to_thread(fn, *args)
        except imaplib.IMAP4.abort as exc:
            raise ImapError(f"The server closed the connection: {_text(exc.args)}") from exc
        except imaplib.IMAP4.error as exc:
            raise ImapError(f"The server refused: {_text(exc.args)}") from exc
        except OSError as exc:
            raise ImapError(f"Connection lost: {exc}") from exc

    @classmethod
    async def open(cls, login: Login, *, wait: float = TIMEOUT_SECONDS) -> Connection:
        """Connect, secure the connection as configured, and log in."""
        where = f"{login.host}:{login.port}"

        def connect() -> imaplib.IMAP4:
            if login.security == "ssl":
                return imaplib.IMAP4_SSL(
                    login.host,
                    login.port,
                    ssl_context=ssl.create_default_context(),
                    timeout=wait,
                )
            imap = imaplib.IMAP4(login.host, login.port, timeout=wait)
            if login.security == "starttls":
                imap.starttls(ssl_context=ssl.create_default_context())
            return imap

        try:
            imap = await asyncio.to_thread(connect)
        except (imaplib.IMAP4.error, OSError) as exc:
            raise ImapError(f"Cannot connect to {where}: {_text(exc.args) or exc}") from exc
        connection = cls(imap)
        try:
            await asyncio.to_thread(imap.login, login.username, login.password)
        except imaplib.IMAP4.error as exc:
            await connection.close()
            raise ImapError(f"Login failed: {_text(exc.args)}") from exc
        except OSError as exc:
            raise ImapError(f"Connection lost while logging in to {where}: {exc}") from exc
        return connection

    async def select(self, folder: str) -> tuple[int, int]:
        """Open ``folder`` for reading and flagging: its UIDVALIDITY and the next UID."""
        status, data = await self._call(self._imap.select, _quoted(folder))
        if status != "OK":
            raise ImapError(f"Cannot open folder {folder}: {_text(data)}")
        validity = self._imap.response("UIDVALIDITY")[1]
        uidnext = self._imap.response("UIDNEXT")[1]
        if not validity or validity[0] is None:
            raise ImapError(f"The server sent no UIDVALIDITY for {folder}")
        if uidnext and uidnext[0] is not None:
            next_uid = int(uidnext[0])
        else:  # UIDNEXT is optional in IMAP4rev1; the highest UID there is will do
            every = await self.search("ALL")
            next_uid = (max(every) + 1) if every else 1
        return int(validity[0]), next_uid

    async def search(self, *criteria: str) -> list[int]:
        status, data = await self._call(self._imap.uid, "SEARCH", *criteria)
        if status != "OK":
            raise ImapError(f"Search failed: {_text(data)}")
        return sorted(int(uid) for part in data if part for uid in part.split())

    async def uids_after(self, uid: int) -> list[int]:
        # "n:*" always includes the highest UID, even when it is below n
        return [found for found in await self.search("UID", f"{uid + 1}:*") if found > uid]

    async def fetch(self, uid: int) -> bytes | None:
        """The raw mail, leaving its flags alone; None if it is gone."""
        status, data = await self._call(self._imap.uid, "FETCH", str(uid), "(BODY.PEEK[])")
        if status != "OK":
            raise ImapError(f"Fetching mail UID {uid} failed: {_text(data)}")
        for part in data:
            if isinstance(part, tuple) and len(part) == 2:
                found = _UID.search(part[0])
                if found is None or int(found[1]) == uid:
                    return bytes(part[1])
        return None

    async def mark_seen(self, *uids: int) -> None:
        if not uids:
            return
        which = ",".join(str(uid) for uid in uids)
        status, data = await self._call(self._imap.uid, "STORE", which, "+FLAGS", r"(\Seen)")
        if status != "OK":
            raise ImapError(f"Marking mail UID {which} read failed: {_text(data)}")

    async def close(self) -> None:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            await asyncio.to_thread(self._imap.logout)


async def check(login: Login) -> dict[str, int]:
    """Log in and open the folder, as a poll would: its message count and UIDVALIDITY."""
    connection = await Connection.open(login)
    try:
        validity, next_uid = await connection.select(login.folder)
        count = len(await connection.search("ALL"))
    finally:
        await connection.close()
    return {"messages": count, "uid_validity": validity, "next_uid": next_uid}


@dataclass
class PollResult:
    """What one poll did."""

    mailbox_id: int
    busy: bool = False  # another poller holds it
    outcomes: dict[str, int] = field(default_factory=dict)  # ticket, reply, duplicate, ...
    failed: int = 0  # not stored this time: left unread, retried next poll
    more: bool = False  # stopped at MAX_PER_POLL; the next poll goes on
    error: str | None = None

    @property
    def taken(self) -> int:
        return sum(self.outcomes.values())


async def poll_mailbox(
    factory: async_sessionmaker[AsyncSession],
    mailbox_id: int,
    *,
    keyring: Keyring,
    storage: Storage,
    max_file_bytes: int,
    due_only: bool = False,
    limit: int = MAX_PER_POLL,
) -> PollResult:
    """Take the mailbox's new mail. Never raises for the server's faults: they end up in
    ``last_error`` (and the result), and the next poll tries again."""
    result = PollResult(mailbox_id)
    started = clock.now()
    async with factory() as session, session.begin():
        box = await mailboxes.claim(
            session, mailbox_id, now=started, lease=LEASE, due_only=due_only
        )
        if box is None:
            await mailboxes.get_mailbox(session, mailbox_id)  # NotFound if it is gone
            result.busy = True
            return result
        try:
            login = mailboxes.login_of(box, keyring)
        except ServiceError as exc:
            login, result.error = None, exc.message
        state = (box.uid_validity, box.last_seen_uid, box.unread_until, dict(box.failing))
    try:
        if login is not None:
            await _poll(factory, login, state, result, storage, max_file_bytes, limit)
    except ImapError as exc:
        result.error = str(exc)
    except Exception as exc:  # a bug here must not stop other mailboxes, nor hide
        log.exception("imap.poll_crashed", mailbox_id=mailbox_id)
        result.error = f"Unexpected error: {type(exc).__name__}: {exc}"
    async with factory() as session, session.begin():
        await mailboxes.finish(
            session, mailbox_id, error=result.error, started=started, now=clock.now()
        )
    log.info(
        "imap.polled",
        mailbox_id=mailbox_id,
        outcomes=result.outcomes,
        failed=result.failed,
        error=result.error,
    )
    return result


async def _poll(
    factory: async_sessionmaker[AsyncSession],
    login: Login,
    state: tuple[int | None, int, int | None, dict[str, int]],
    result: PollResult,
    storage: Storage,
    max_file_bytes: int,
    limit: int,
) -> None:
    uid_validity, last_seen, unread_until, failing = state
    connection = await Connection.open(login)
    try:
        validity, next_uid = await connection.select(login.folder)
        if validity != uid_validity:
            # first poll, or the folder was renumbered: old UIDs mean nothing now. What is
            # there already is taken only if unread; Message-IDs stop any repeat.
            async with factory() as session, session.begin():
                await mailboxes.resync(
                    session, result.mailbox_id, uid_validity=validity, next_uid=next_uid
                )
            last_seen, unread_until, failing = 0, next_uid - 1, {}
        old: list[int] = []
        if unread_until is not None and last_seen < unread_until:
            found = await connection.search("UNSEEN", "UID", f"{last_seen + 1}:{unread_until}")
            old = [uid for uid in found if last_seen < uid <= unread_until]
        new = await connection.uids_after(max(last_seen, unread_until or 0))
        work = sorted({int(uid) for uid in failing} | set(old) | set(new))
        result.more = len(work) > limit
        fetched: list[tuple[int, bytes | None]] = []
        for uid in work[:limit]:
            fetched.append((uid, await connection.fetch(uid)))
            if len(fetched) >= BATCH or sum(len(r or b"") for _, r in fetched) >= BATCH_BYTES:
                await _take(factory, connection, fetched, result, storage, max_file_bytes)
                fetched = []
        await _take(factory, connection, fetched, result, storage, max_file_bytes)
    finally:
        await connection.close()


async def _take(
    factory: async_sessionmaker[AsyncSession],
    connection: Connection,
    fetched: list[tuple[int, bytes | None]],
    result: PollResult,
    storage: Storage,
    max_file_bytes: int,
) -> None:
    """Store fetched mails (UID, raw; None: gone) in one transaction, then mark them read."""
    if not fetched:
        return
    present = [(uid, raw) for uid, raw in fetched if raw is not None]
    taken: list[tuple[int, str | None, bool]] = []  # uid, outcome (None: failed), mark read
    async with factory() as session, session.begin():
        got = await batch.receive_many(
            session,
            [raw for _, raw in present],
            storage=storage,
            max_file_bytes=max_file_bytes,
            mailbox_id=result.mailbox_id,
        )
        outcomes = {uid: o for (uid, _), o in zip(present, got, strict=True)}
        for uid, raw in fetched:
            error: str | None = None
            if raw is None:
                outcome: str | None = "gone"  # deleted on the server since the search
            elif outcomes[uid].outcome == batch.FAILED:  # rolled back alone; stays unread
                outcome, error = None, outcomes[uid].reason
                log.warning("imap.store_failed", uid=uid, error=error)
            else:
                outcome = outcomes[uid].outcome
            stored = await mailboxes.note_mail(
                session,
                result.mailbox_id,
                uid=uid,
                outcome=outcome if outcome != "gone" else "duplicate",
                error=error,
                now=clock.now(),
                lease=LEASE,
            )
            taken.append((uid, outcome, stored and raw is not None))
    # committed: only now may the server hear that the mails were taken
    for _, outcome, _ in taken:
        if outcome is None:
            result.failed += 1
        else:
            result.outcomes[outcome] = result.outcomes.get(outcome, 0) + 1
    await connection.mark_seen(*(uid for uid, _, seen in taken if seen))


async def poll_configured(
    settings: Settings,
    factory: async_sessionmaker[AsyncSession],
    mailbox_id: int,
    *,
    due_only: bool = False,
) -> PollResult:
    """``poll_mailbox`` with the key, file storage and limits of ``settings``."""
    return await poll_mailbox(
        factory,
        mailbox_id,
        keyring=settings.keyring(),
        storage=storage_for(settings.attachment_storage, settings.data_dir),
        max_file_bytes=settings.max_attachment_bytes,
        due_only=due_only,
    )
