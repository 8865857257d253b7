"""Mailboxes: the IMAP accounts mail is taken from, and where each poll has got to.

Settings changes (create, update, delete) record ``mailbox.*`` events. The poller's
bookkeeping (claiming a mailbox, advancing the last UID taken, noting errors) lives here too,
so that a stored mail and the UID that says "taken" are committed together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.channels.models import Mailbox
from servicecycle.events.service import Actor, record
from servicecycle.kit import clock
from servicecycle.kit.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from servicecycle.kit.secrets import BadToken, Keyring

POLLER = Actor.system("imap")
SECURITY = ("ssl", "starttls", "none")
DEFAULT_PORT = {"ssl": 993, "starttls": 143, "none": 143}
# what a settings change may touch; the rest is the poller's state
SETTINGS = (
    "name",
    "address",
    "host",
    "port",
    "security",
    "username",
    "password",
    "folder",
    "enabled",
    "poll_minutes",
)
# changing any of these points at another mailbox: the UID state no longer applies
WHERE = ("host", "port", "username", "folder")
MAX_ATTEMPTS = 5  # a mail whose storing fails this often is left on the server, unread
GAVE_UP = "Mail UID"  # such an error stays shown until the settings are next saved
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[[0-9A-Fa-f:.]+\]$")


@dataclass(frozen=True)
class Login:
    """What the poller needs to reach a mailbox (the password decrypted)."""

    host: str
    port: int
    security: str
    username: str
    password: str = field(repr=False)  # never in a log line or an error message
    folder: str


def _clean(values: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """Checked and normalised settings; a refusal names the field."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in SETTINGS:
            raise ValidationFailed(f"Unknown field {key}", fields={key: "not a mailbox setting"})
        if isinstance(value, str) and key != "password":
            value = value.strip()
        out[key] = value
    if "name" in out and not (0 < len(out["name"] or "") <= 120):
        raise ValidationFailed("Name is required", fields={"name": "1-120 characters"})
    if "address" in out:
        address = (out["address"] or "").lower()
        if not _EMAIL.match(address) or len(address) > 320:
            raise ValidationFailed(
                "Invalid support address", fields={"address": "not an e-mail address"}
            )
        out["address"] = address
    if "host" in out and not (_HOST.match(out["host"] or "") and len(out["host"]) <= 255):
        raise ValidationFailed(
            "Invalid server name", fields={"host": "a host name or IP address, e.g. imap.gmail.com"}
        )
    if "security" in out and out["security"] not in SECURITY:
        raise ValidationFailed(
            "Unknown connection security", fields={"security": "ssl, starttls or none"}
        )
    if "port" in out and out["port"] is not None:
        port = out["port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValidationFailed("Invalid port", fields={"port": "a number from 1 to 65535"})
    if "username" in out and not (0 < len(out["username"] or "") <= 320):
        raise ValidationFailed("User name is required", fields={"username": "1-320 characters"})
    if "password" in out:
        password = out["password"]
        if password is None and not creating:
            del out["password"]  # left empty on a form: keep the stored one
        elif not isinstance(password, str) or not password or len(password) > 1000:
            raise ValidationFailed("Password is required", fields={"password": "1-1000 characters"})
    if "folder" in out:
        folder = out["folder"] or ""
        if not folder or len(folder) > 200 or any(c in folder for c in '"\\\r\n'):
            raise ValidationFailed(
                "Invalid folder", fields={"folder": "1-200 characters, no quotes, e.g. INBOX"}
            )
    if "poll_minutes" in out:
        minutes = out["poll_minutes"]
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 1440:
            raise ValidationFailed(
                "Invalid poll interval", fields={"poll_minutes": "1 to 1440 minutes"}
            )
    if "enabled" in out and not isinstance(out["enabled"], bool):
        raise ValidationFailed("Invalid value", fields={"enabled": "true or false"})
    return out


async def _unique(session: AsyncSession, values: dict[str, Any], own_id: int | None) -> None:
    for key, column, words in (
        ("name", Mailbox.name, "name"),
        ("address", Mailbox.address, "address"),
    ):
        if key not in values:
            continue
        clash = await session.scalar(
            select(Mailbox.id).where(column == values[key], Mailbox.id != (own_id or 0))
        )
        if clash is not None:
            raise Conflict(
                f"Another mailbox has this {words}",
                fields={key: f"already used by mailbox {clash}"},
            )


async def _flush(session: AsyncSession) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:  # a concurrent change took the name or address first
        raise Conflict(
            "Another mailbox has this name or address", fields={"name": "already used"}
        ) from exc


async def create_mailbox(
    session: AsyncSession,
    *,
    name: str,
    address: str,
    host: str,
    username: str,
    password: str,
    security: str = "ssl",
    port: int | None = None,
    folder: str = "INBOX",
    enabled: bool = True,
    poll_minutes: int = 1,
    keyring: Keyring,
    actor: Actor,
) -> Mailbox:
    """A new IMAP mailbox; its first poll takes the mail that is unread then."""
    values = _clean(
        {
            "name": name,
            "address": address,
            "host": host,
            "port": port,
            "security": security,
            "username": username,
            "password": password,
            "folder": folder,
            "enabled": enabled,
            "poll_minutes": poll_minutes,
        },
        creating=True,
    )
    await _unique(session, values, None)
    row = Mailbox(
        name=values["name"],
        address=values["address"],
        kind="imap",
        host=values["host"],
        port=values["port"] or DEFAULT_PORT[values["security"]],
        security=values["security"],
        username=values["username"],
        password_encrypted=keyring.encrypt(values["password"]),
        folder=values["folder"],
        enabled=values["enabled"],
        poll_minutes=values["poll_minutes"],
        failing={},
    )
    session.add(row)
    await _flush(session)
    await record(
        session,
        "mailbox.created",
        subject_type="mailbox",
        subject_id=row.id,
        actor=actor,
        data={"name": row.name, "address": row.address, "host": row.host},
    )
    return row


async def update_mailbox(
    session: AsyncSession,
    mailbox: Mailbox,
    *,
    changes: dict[str, Any],
    keyring: Keyring,
    actor: Actor,
    expected_version: int | None = None,
) -> Mailbox:
    """Change settings; a password left out (or None) keeps the stored one."""
    if expected_version is not None and expected_version != mailbox.version:
        raise PreconditionFailed(
            "The mailbox was changed since you read it",
            extra={"current_version": mailbox.version},
        )
    values = _clean(changes, creating=False)
    await _unique(session, values, mailbox.id)
    changed: list[str] = []
    for key, value in values.items():
        if key == "password":
            mailbox.password_encrypted = keyring.encrypt(value)
            changed.append(key)
        elif key == "port" and value is None:
            continue
        elif getattr(mailbox, key) != value:
            setattr(mailbox, key, value)
            changed.append(key)
    if not changed:
        return mailbox
    if "security" in changed and "port" not in values:
        mailbox.port = DEFAULT_PORT[mailbox.security]
        changed.append("port")
    if any(key in WHERE for key in changed):
        mailbox.uid_validity, mailbox.last_seen_uid, mailbox.failing = None, 0, {}
        mailbox.unread_until = None
    if any(key in WHERE or key in ("security", "password") for key in changed):
        mailbox.watch_mode = mailbox.watch_checked_at = None  # ask the server again
    mailbox.version += 1
    mailbox.updated_at = clock.now()
    mailbox.last_error = mailbox.last_error_at = None  # the next poll tells about the new settings
    await _flush(session)
    await record(
        session,
        "mailbox.updated",
        subject_type="mailbox",
        subject_id=mailbox.id,
        actor=actor,
        data={"name": mailbox.name, "changed": changed},  # names only, never the password
    )
    return mailbox


async def delete_mailbox(session: AsyncSession, mailbox: Mailbox, *, actor: Actor) -> None:
    """Stop taking mail from it; mail already taken and its tickets stay."""
    await session.delete(mailbox)
    await session.flush()
    await record(
        session,
        "mailbox.deleted",
        subject_type="mailbox",
        subject_id=mailbox.id,
        actor=actor,
        data={"name": mailbox.name, "address": mailbox.address},
    )


async def list_mailboxes(session: AsyncSession) -> list[Mailbox]:
    return list((await session.scalars(select(Mailbox).order_by(Mailbox.name))).all())


async def get_mailbox(session: AsyncSession, mailbox_id: int) -> Mailbox:
    row = await session.get(Mailbox, mailbox_id)
    if row is None:
        raise NotFound(f"Mailbox {mailbox_id} not found")
    return row


def login_of(mailbox: Mailbox, keyring: Keyring) -> Login:
    """The decrypted login; a password sealed with another key is refused by name."""
    try:
        password = keyring.decrypt(mailbox.password_encrypted)
    except BadToken as exc:
        raise ValidationFailed(
            "The stored password cannot be read with this server's secret key; enter it again",
            fields={"password": "enter it again"},
        ) from exc
    return Login(
        host=mailbox.host,
        port=mailbox.port,
        security=mailbox.security,
        username=mailbox.username,
        password=password,
        folder=mailbox.folder,
    )


# -- the poller's bookkeeping ---------------------------------------------------------------


def _free(now: datetime) -> Any:
    return or_(Mailbox.polling_until.is_(None), Mailbox.polling_until < now)


def _due(now: datetime) -> Any:
    # half a minute of slack: a poll that started a little after the last run is still due
    return and_(
        Mailbox.enabled,
        or_(
            Mailbox.last_polled_at.is_(None),
            Mailbox.last_polled_at
            <= now - Mailbox.poll_minutes * text("interval '1 minute'") + timedelta(seconds=30),
        ),
    )


def _unwatched(now: datetime) -> Any:
    return or_(Mailbox.watched_until.is_(None), Mailbox.watched_until < now)


async def due_ids(session: AsyncSession, *, now: datetime) -> list[int]:
    """Enabled mailboxes whose interval has passed and that nobody is polling, nor
    watching with IDLE (the watcher takes their mail as it arrives)."""
    found = await session.scalars(
        select(Mailbox.id)
        .where(_due(now), _free(now), _unwatched(now))
        .order_by(Mailbox.last_polled_at.nulls_first(), Mailbox.id)
    )
    return list(found.all())


async def claim(
    session: AsyncSession, mailbox_id: int, *, now: datetime, lease: timedelta, due_only: bool
) -> Mailbox | None:
    """Take the mailbox for one poll (a lease, renewed as mail is stored), or None if another
    poller has it (or, with ``due_only``, it is not due any more). ``SKIP LOCKED``: never
    waits for a row another transaction holds."""
    conditions = [Mailbox.id == mailbox_id, _free(now)]
    if due_only:
        conditions.append(_due(now))
    locked = (
        select(Mailbox.id).where(*conditions).with_for_update(skip_locked=True).scalar_subquery()
    )
    claimed = await session.scalar(
        update(Mailbox)
        .where(Mailbox.id == locked)
        .values(polling_until=now + lease, last_polled_at=now)
        .returning(Mailbox.id)
    )
    if claimed is None:
        return None
    row = await session.get(Mailbox, claimed, populate_existing=True)
    return row


async def resync(
    session: AsyncSession, mailbox_id: int, *, uid_validity: int, next_uid: int
) -> None:
    """First poll, or the server renumbered the folder (UIDVALIDITY changed): the mail there
    now is taken only if unread; everything from ``next_uid`` on is new."""
    row = await get_mailbox(session, mailbox_id)
    renumbered = row.uid_validity is not None
    row.uid_validity, row.last_seen_uid, row.unread_until = uid_validity, 0, next_uid - 1
    row.failing = {}
    await session.flush()
    if renumbered:
        await record(
            session,
            "mailbox.resynced",
            subject_type="mailbox",
            subject_id=row.id,
            actor=POLLER,
            data={"uid_validity": uid_validity},
        )


async def note_mail(
    session: AsyncSession,
    mailbox_id: int,
    *,
    uid: int,
    outcome: str | None,
    error: str | None,
    now: datetime,
    lease: timedelta,
) -> bool:
    """Record what became of one mail, in the transaction that stored it. Returns whether to
    mark it read on the server (only once stored). A mail that failed is retried next poll,
    up to ``MAX_ATTEMPTS`` times; then it is left unread and the failure named."""
    row = await get_mailbox(session, mailbox_id)
    failing = dict(row.failing)
    row.last_seen_uid = max(row.last_seen_uid, uid)
    row.polling_until = now + lease
    key = str(uid)
    if outcome is not None:
        failing.pop(key, None)
        if outcome == "rejected":
            row.rejected_count += 1
        elif outcome != "duplicate":
            row.received_count += 1
        row.failing = failing
        await session.flush()
        return True
    attempts = failing.get(key, 0) + 1
    if attempts >= MAX_ATTEMPTS:
        failing.pop(key, None)
        row.last_error = f"{GAVE_UP} {uid} could not be stored after {attempts} attempts: {error}"
        row.last_error_at = now
        await record(
            session,
            "mailbox.mail_abandoned",
            subject_type="mailbox",
            subject_id=row.id,
            actor=POLLER,
            data={"uid": uid, "error": error},
        )
    else:
        failing[key] = attempts
    row.failing = failing
    await session.flush()
    return False


async def finish(
    session: AsyncSession, mailbox_id: int, *, error: str | None, started: datetime, now: datetime
) -> None:
    """End a poll: free the lease and show its error, or clear an error from before it."""
    row = await session.get(Mailbox, mailbox_id, populate_existing=True)
    if row is None:  # deleted while it was polled
        return
    row.polling_until = None
    if error is None:
        row.last_success_at = now
        earlier = row.last_error_at is None or row.last_error_at < started
        if row.last_error is not None and earlier and not row.last_error.startswith(GAVE_UP):
            row.last_error = None
            row.last_error_at = None
            await record(
                session,
                "mailbox.recovered",
                subject_type="mailbox",
                subject_id=row.id,
                actor=POLLER,
                data={},
            )
    else:
        await _failed(session, row, error, now)
    await session.flush()


async def _failed(session: AsyncSession, row: Mailbox, error: str, now: datetime) -> None:
    repeated = row.last_error == error
    row.last_error, row.last_error_at = error, now
    if not repeated:  # one event per new fault, not one a minute
        await record(
            session,
            "mailbox.failed",
            subject_type="mailbox",
            subject_id=row.id,
            actor=POLLER,
            data={"error": error},
        )


# -- the IDLE watcher's bookkeeping ---------------------------------------------------------


async def watch_candidates(
    session: AsyncSession, *, now: datetime, recheck: timedelta
) -> list[int]:
    """Enabled mailboxes nobody watches whose server may offer IDLE: not known yet, known
    to, or found without it longer than ``recheck`` ago."""
    found = await session.scalars(
        select(Mailbox.id)
        .where(
            Mailbox.enabled,
            _unwatched(now),
            or_(
                Mailbox.watch_mode.is_distinct_from("poll"),
                Mailbox.watch_checked_at.is_(None),
                Mailbox.watch_checked_at < now - recheck,
            ),
        )
        .order_by(Mailbox.id)
    )
    return list(found.all())


async def claim_watch(
    session: AsyncSession, mailbox_id: int, *, watcher: str, now: datetime, lease: timedelta
) -> Mailbox | None:
    """Take the mailbox for a watcher (a lease it renews), or None if another has it or it
    is switched off. ``SKIP LOCKED``: never waits for a row another transaction holds."""
    locked = (
        select(Mailbox.id)
        .where(Mailbox.id == mailbox_id, Mailbox.enabled, _unwatched(now))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    claimed = await session.scalar(
        update(Mailbox)
        .where(Mailbox.id == locked)
        .values(watched_until=now + lease, watcher=watcher)
        .returning(Mailbox.id)
    )
    if claimed is None:
        return None
    return await session.get(Mailbox, claimed, populate_existing=True)


async def renew_watches(
    session: AsyncSession, ids: list[int], *, watcher: str, now: datetime, lease: timedelta
) -> dict[int, int]:
    """Extend the watcher's leases on ``ids`` that are still its own and switched on: their
    settings versions (a mailbox missing from the answer must no longer be watched)."""
    if not ids:
        return {}
    rows = await session.execute(
        update(Mailbox)
        .where(
            Mailbox.id.in_(ids),
            Mailbox.watcher == watcher,
            Mailbox.enabled,
            Mailbox.watched_until >= now,
        )
        .values(watched_until=now + lease)
        .returning(Mailbox.id, Mailbox.version)
    )
    return {int(row[0]): int(row[1]) for row in rows.all()}


async def note_watch_mode(
    session: AsyncSession, mailbox_id: int, *, watcher: str, mode: str, now: datetime
) -> None:
    """Record what the server offered; without IDLE the lease is given back, so the poll
    job takes the mailbox's mail on its interval."""
    row = await session.get(Mailbox, mailbox_id, populate_existing=True)
    if row is None:
        return
    row.watch_mode, row.watch_checked_at = mode, now
    if mode == "poll" and row.watcher == watcher:
        row.watched_until = row.watcher = None
    await session.flush()


async def release_watch(
    session: AsyncSession, mailbox_id: int, *, watcher: str, error: str | None, now: datetime
) -> None:
    """The watcher lets go (stopped, settings changed, or its connection failed: then the
    error is shown, and the poll job covers the mailbox until the watcher is back)."""
    row = await session.get(Mailbox, mailbox_id, populate_existing=True)
    if row is None:
        return
    if row.watcher == watcher:
        row.watched_until = row.watcher = None
    if error is not None:
        await _failed(session, row, error, now)
    await session.flush()


async def release_all_watches(session: AsyncSession, *, watcher: str) -> None:
    """Give back every lease the watcher still holds (on shut-down)."""
    await session.execute(
        update(Mailbox).where(Mailbox.watcher == watcher).values(watched_until=None, watcher=None)
    )


def how_taken(mailbox: Mailbox, *, now: datetime, idle_enabled: bool) -> str:
    """In words for the admin pages: whether the mailbox is watched (IDLE) or polled."""
    every = f"polled every {mailbox.poll_minutes} min"
    if not mailbox.enabled:
        return "not taken: switched off"
    if mailbox.watched_until is not None and mailbox.watched_until >= now:
        return "watched (IDLE): new mail is taken as it arrives"
    if not idle_enabled:
        return f"{every} (IDLE is switched off for this desk)"
    if mailbox.watch_mode == "poll":
        return f"{every}: the server does not offer IDLE"
    if mailbox.watch_mode == "idle":
        return f"{every} until the IDLE watcher is connected again"
    return every
