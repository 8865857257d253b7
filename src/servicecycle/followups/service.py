"""Every change to follow-ups, and the reads the queue and the API need. Flushes; the caller
commits. Each change records an event about the ticket (or, without one, the customer), so
both timelines show it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import BigInteger, String, and_, any_, func, literal, select, text, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from servicecycle.auth import service as auth
from servicecycle.auth.models import Role, User
from servicecycle.automation.rules import PLACEHOLDERS, fill, unknown_placeholders
from servicecycle.config import get_settings
from servicecycle.customers import service as customers
from servicecycle.customers.models import Customer
from servicecycle.db import held, written
from servicecycle.events.service import Actor, NewEvent, record, record_many
from servicecycle.followups.models import KINDS, OUTCOMES, STATES, FollowUp, FollowUpSettings
from servicecycle.kit import clock
from servicecycle.kit.errors import (
    Conflict,
    NotFound,
    PreconditionFailed,
    ServiceError,
    ValidationFailed,
)
from servicecycle.kit.pagination import Page, decode_cursor, encode_cursor
from servicecycle.tickets import service as tickets
from servicecycle.tickets.bulk import attach, json_rows, new_row
from servicecycle.tickets.models import Message, Ticket

MAX_REASON = 2_000
MAX_NOTE = 2_000
MAX_TEMPLATE = 10_000
DEFAULT_RECOVERY_HOURS = 24
BRACES = re.compile(r"\{\{(.*?)\}\}")
DEFAULT_CHECK_IN = (
    "Hi {{customer.first_name}},\n\n"
    "I am checking in on your request #{{ticket.number}} ({{ticket.subject}}). "
    "Is everything working as it should now? If anything is still not right, simply reply "
    "to this message and I will pick it up.\n\n"
    "Best regards,\n{{agent.first_name}}"
)


def _subject(follow_up: FollowUp) -> tuple[str, int]:
    if follow_up.ticket_id is not None:
        return "ticket", follow_up.ticket_id
    return "customer", follow_up.customer_id


async def _record(
    session: AsyncSession,
    kind: str,
    follow_up: FollowUp,
    *,
    actor: Actor,
    data: dict[str, Any] | None = None,
) -> None:
    subject_type, subject_id = _subject(follow_up)
    await record(
        session,
        kind,
        subject_type=subject_type,
        subject_id=subject_id,
        actor=actor,
        data={"follow_up_id": follow_up.id, "kind": follow_up.kind, **(data or {})},
    )


# -- checks ---------------------------------------------------------------------------------


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise ValidationFailed("A reason is required", fields={"reason": "must not be empty"})
    if len(reason) > MAX_REASON:
        raise ValidationFailed(
            "Reason too long", fields={"reason": f"at most {MAX_REASON:,} characters"}
        )
    return reason


def _choice(field: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValidationFailed(f"Invalid {field}", fields={field: f"one of {', '.join(choices)}"})
    return value


def _aware(field: str, moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValidationFailed(
            f"Invalid {field}", fields={field: "needs a time zone, e.g. 2026-12-03T09:00:00Z"}
        )
    return moment


async def _owner_ok(session: AsyncSession, owner_id: int | None) -> bool:
    if owner_id is None:
        return True
    try:
        user = await auth.get_user(session, owner_id)
    except NotFound:
        return False
    return _active_agent(user)


def _active_agent(user: User | None) -> bool:
    return user is not None and user.is_active and user.role in (Role.agent, Role.admin)


def _owner_refused() -> ValidationFailed:
    return ValidationFailed(
        "The owner must be an active agent", fields={"owner_id": "not an active agent"}
    )


async def _check_owner(session: AsyncSession, owner_id: int | None) -> None:
    if not await _owner_ok(session, owner_id):
        raise _owner_refused()


# -- create and read ------------------------------------------------------------------------


async def create(
    session: AsyncSession,
    *,
    reason: str,
    due_at: datetime,
    actor: Actor,
    ticket_id: int | None = None,
    customer_id: int | None = None,
    owner_id: int | None = None,
    kind: str = "other",
    source: tuple[str, str] | None = None,
) -> FollowUp:
    """Plan a contact. The customer comes from the ticket when there is one. A due time in
    the past is allowed (it is overdue at once: a call that should already have happened).
    With a ``source``, a second follow-up for the same cause returns the first one."""
    item = NewFollowUp(
        reason=reason,
        due_at=due_at,
        actor=actor,
        at=clock.now(),
        ticket_id=ticket_id,
        customer_id=customer_id,
        owner_id=owner_id,
        kind=kind,
        source=source,
    )
    return (await _create(session, [item], named=False))[0]


@dataclass(frozen=True)
class NewFollowUp:
    """A contact to plan (``create``'s arguments), at ``at``."""

    reason: str
    due_at: datetime
    actor: Actor
    at: datetime
    ticket_id: int | None = None
    customer_id: int | None = None
    owner_id: int | None = None
    kind: str = "other"
    source: tuple[str, str] | None = None


async def create_many(session: AsyncSession, items: Sequence[NewFollowUp]) -> list[FollowUp]:
    """``create`` for each item, each at its own moment (its row's ``created_at`` and its
    event's time), as one after another would make them: every item is checked first (a
    bad one refuses the whole batch, naming the item, and nothing is written), then the
    new rows are written in one statement and their ``follow_up.created`` events recorded
    together, in the items' order (subscribers with a batch twin hear them at once). An
    item whose ``source`` already has a follow-up (made before, or by an earlier item)
    gets that one, with no event. Returns each item's follow-up."""
    return await _create(session, items, named=True)


def _check_new(
    item: NewFollowUp,
    held_tickets: dict[int, Ticket],
    held_customers: dict[int, Customer],
    users: dict[int, User],
) -> dict[str, Any]:
    """``create``'s checks of one item; its new row's values."""
    reason = _reason(item.reason)
    _choice("kind", item.kind, KINDS)
    _aware("due_at", item.due_at)
    customer_id = item.customer_id
    ticket = None
    if item.ticket_id is not None:
        ticket = held_tickets.get(item.ticket_id)
        if ticket is None:
            raise ValidationFailed("No such ticket", fields={"ticket_id": "unknown ticket"})
        if customer_id is not None and customer_id != ticket.requester_id:
            raise ValidationFailed(
                "The customer is not the ticket's requester",
                fields={"customer_id": f"ticket {ticket.id} belongs to another customer"},
            )
        customer_id = ticket.requester_id
    if customer_id is None:
        raise ValidationFailed(
            "A follow-up needs a customer or a ticket", fields={"customer_id": "required"}
        )
    if customer_id not in held_customers:
        raise ValidationFailed("No such customer", fields={"customer_id": "unknown"})
    if item.owner_id is not None and not _active_agent(users.get(item.owner_id)):
        raise _owner_refused()
    return _new_values(
        customer_id=customer_id,
        ticket_id=ticket.id if ticket is not None else None,
        owner_id=item.owner_id,
        kind=item.kind,
        reason=reason,
        due_at=item.due_at,
        actor=item.actor,
        at=item.at,
        source=item.source,
    )


def _new_values(
    *,
    customer_id: int,
    ticket_id: int | None,
    owner_id: int | None,
    kind: str,
    reason: str,
    due_at: datetime,
    actor: Actor,
    at: datetime,
    source: tuple[str, str] | None,
) -> dict[str, Any]:
    """Every column of a new open follow-up (``_insert`` keeps the row as loaded)."""
    return {
        "customer_id": customer_id,
        "ticket_id": ticket_id,
        "owner_id": owner_id,
        "kind": kind,
        "reason": reason,
        "due_at": due_at,
        "state": "open",
        "outcome": None,
        "outcome_note": "",
        "created_by_type": actor.type,
        "created_by_id": actor.id,
        "created_at": at,
        "updated_at": at,
        "done_at": None,
        "sent_at": None,
        "source_type": source[0] if source else None,
        "source_id": source[1] if source else None,
        "version": 1,
    }


async def _create(
    session: AsyncSession, items: Sequence[NewFollowUp], *, named: bool
) -> list[FollowUp]:
    """``create_many``; ``named``: a refusal names its item (else it is ``create``'s own)."""
    if not items:
        return []
    held_tickets = await held.rows_by_id(
        session, Ticket, {i.ticket_id for i in items if i.ticket_id is not None}, ("requester_id",)
    )
    customer_ids = set()
    for item in items:
        if item.ticket_id is None:
            customer_ids.add(item.customer_id)
        elif item.ticket_id in held_tickets:
            customer_ids.add(held_tickets[item.ticket_id].requester_id)
    held_customers = await held.rows_by_id(
        session, Customer, {i for i in customer_ids if i is not None}
    )
    users = await held.rows_by_id(
        session,
        User,
        {i.owner_id for i in items if i.owner_id is not None},
        ("is_active", "role"),
    )
    rows: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            rows.append(_check_new(item, held_tickets, held_customers, users))
        except ServiceError as exc:
            if not named:
                raise
            what = (
                f"follow-up on ticket {item.ticket_id}"
                if item.ticket_id is not None
                else f"follow-up for customer {item.customer_id}"
            )
            raise exc.at_item(index, what) from exc
    # a cause planned twice: the later items get the first one's follow-up
    first: dict[tuple[str, str], int] = {}
    for index, item in enumerate(items):
        if item.source is not None:
            first.setdefault(item.source, index)
    fresh = [i for i, item in enumerate(items) if item.source is None or first[item.source] == i]
    made = await _insert(session, [rows[index] for index in fresh])
    results: dict[int, FollowUp] = {}
    recorded: list[NewEvent] = []
    for index, follow_up in zip(fresh, made, strict=True):
        item = items[index]
        if follow_up is None:  # the cause had one already (or another transaction made it)
            assert item.source is not None
            existing = await by_source(session, *item.source)
            assert existing is not None
            results[index] = existing
            continue
        results[index] = follow_up
        recorded.append(
            _event(
                "follow_up.created",
                follow_up,
                item.actor,
                item.at,
                {
                    "customer_id": follow_up.customer_id,
                    "ticket_id": follow_up.ticket_id,
                    "owner_id": item.owner_id,
                    "reason": follow_up.reason,
                    "due_at": item.due_at.isoformat(),
                    "source": list(item.source) if item.source else None,
                },
            )
        )
    await record_many(session, recorded)
    return [
        results[index if item.source is None else first[item.source]]
        for index, item in enumerate(items)
    ]


_COLUMNS = (
    "customer_id",
    "ticket_id",
    "owner_id",
    "kind",
    "reason",
    "due_at",
    "created_by_type",
    "created_by_id",
    "created_at",
    "updated_at",
    "source_type",
    "source_id",
)
# many new follow-ups in one INSERT of one text whatever their number, the rows as one JSON
# document (``tickets.bulk.json_rows``) numbered in its order, so the sorted ids returned
# are the inserted rows' in that order. ON CONFLICT: two transactions hearing of the same
# cause at once still open one (the later one's row is not inserted)
_NEW = text("""
INSERT INTO follow_ups (customer_id, ticket_id, owner_id, kind, reason, due_at, state,
                        outcome_note, created_by_type, created_by_id, created_at, updated_at,
                        source_type, source_id, version)
SELECT CAST(e->>0 AS bigint), CAST(e->>1 AS bigint), CAST(e->>2 AS int), e->>3, e->>4,
       CAST(e->>5 AS timestamptz), 'open', '', e->>6, e->>7, CAST(e->>8 AS timestamptz),
       CAST(e->>9 AS timestamptz), e->>10, e->>11, 1
FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS u(e, n)
ORDER BY n
ON CONFLICT (source_type, source_id) WHERE source_id IS NOT NULL DO NOTHING
RETURNING id, source_type, source_id
""")


async def _insert(session: AsyncSession, rows: list[dict[str, Any]]) -> list[FollowUp | None]:
    """New open follow-ups (every column's value; no two with the same source), in one
    statement, kept in the session as loaded rows; None for a row whose source already has
    a follow-up (not inserted)."""
    if not rows:
        return []
    result = await session.execute(
        _NEW, {"rows": json_rows([[row[name] for name in _COLUMNS] for row in rows])}
    )
    returned = sorted(result.all())
    sources = {(source_type, source_id) for _, source_type, source_id in returned}
    kept = [
        row
        for row in rows
        if row["source_id"] is None or (row["source_type"], row["source_id"]) in sources
    ]
    made = [new_row(FollowUp, **row) for row in kept]
    attach(session, made, [row_id for row_id, _, _ in returned])
    by_row = {id(row): follow_up for row, follow_up in zip(kept, made, strict=True)}
    return [by_row.get(id(row)) for row in rows]


async def get(session: AsyncSession, follow_up_id: int) -> FollowUp:
    follow_up = await session.get(FollowUp, follow_up_id)
    if follow_up is None:
        raise NotFound(f"No follow-up {follow_up_id}")
    return follow_up


async def by_source(session: AsyncSession, source_type: str, source_id: str) -> FollowUp | None:
    stmt = select(FollowUp).where(
        FollowUp.source_type == source_type, FollowUp.source_id == source_id
    )
    return (await session.scalars(stmt)).one_or_none()


async def open_recovery_of_ticket(session: AsyncSession, ticket_id: int) -> FollowUp | None:
    """The ticket's open recovery (the first, should there be more)."""
    return (await open_recoveries_of_tickets(session, [ticket_id])).get(ticket_id)


async def open_recoveries_of_tickets(
    session: AsyncSession, ticket_ids: Iterable[int]
) -> dict[int, FollowUp]:
    """``open_recovery_of_ticket`` for many tickets, in one query: ticket -> its open
    recovery (tickets without one are left out)."""
    ids = sorted(set(ticket_ids))
    found: dict[int, FollowUp] = {}
    if not ids:
        return found
    stmt = (
        select(FollowUp)
        .where(
            FollowUp.ticket_id == any_(literal(ids, ARRAY(BigInteger))),
            FollowUp.kind == "recovery",
            FollowUp.state == "open",
        )
        .order_by(FollowUp.id)
    )
    for row in await session.scalars(stmt):
        if row.ticket_id is not None:
            found.setdefault(row.ticket_id, row)
    return found


@dataclass(frozen=True)
class Filter:
    """Which follow-ups a list shows; every field narrows it. ``owner``: a user id, ``none``
    (nobody's yet) or None (anyone's)."""

    owner: int | str | None = None
    state: str | None = "open"
    overdue: bool = False
    ticket_id: int | None = None
    customer_id: int | None = None
    kind: str | None = None


async def list_follow_ups(
    session: AsyncSession, flt: Filter, *, limit: int = 50, cursor: str | None = None
) -> Page[FollowUp]:
    """Follow-ups by due time (soonest first), by keyset cursor."""
    stmt = select(FollowUp)
    if flt.state is not None:
        stmt = stmt.where(FollowUp.state == _choice("state", flt.state, STATES))
    if flt.kind is not None:
        stmt = stmt.where(FollowUp.kind == _choice("kind", flt.kind, KINDS))
    if flt.owner == "none":
        stmt = stmt.where(FollowUp.owner_id.is_(None))
    elif isinstance(flt.owner, int):
        stmt = stmt.where(FollowUp.owner_id == flt.owner)
    if flt.overdue:
        stmt = stmt.where(FollowUp.state == "open", FollowUp.due_at < clock.now())
    if flt.ticket_id is not None:
        stmt = stmt.where(FollowUp.ticket_id == flt.ticket_id)
    if flt.customer_id is not None:
        stmt = stmt.where(FollowUp.customer_id == flt.customer_id)
    if cursor is not None:
        values = decode_cursor(cursor)
        if len(values) != 2 or not isinstance(values[0], str) or not isinstance(values[1], int):
            raise ValidationFailed(
                "Invalid cursor", fields={"cursor": "not a cursor from this API"}
            )
        try:
            moment = datetime.fromisoformat(values[0])
        except ValueError as exc:
            raise ValidationFailed(
                "Invalid cursor", fields={"cursor": "not a cursor from this API"}
            ) from exc
        stmt = stmt.where(tuple_(FollowUp.due_at, FollowUp.id) > tuple_(moment, values[1]))
    stmt = stmt.order_by(FollowUp.due_at, FollowUp.id).limit(limit + 1)
    rows = list((await session.scalars(stmt)).all())
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor([last.due_at.isoformat(), last.id])
    return Page(items=rows[:limit], next_cursor=next_cursor)


def _desk_zone() -> ZoneInfo:
    try:
        return ZoneInfo(get_settings().desk_time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def end_of_today(now: datetime) -> datetime:
    """Midnight after ``now`` in the desk's time zone: what "due today" runs up to."""
    zone = _desk_zone()
    local = now.astimezone(zone)
    tomorrow = (local + timedelta(days=1)).date()
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=zone)


@dataclass(frozen=True)
class Counts:
    overdue: int  # open and past their due time
    due_today: int  # open, due from now until midnight (desk time zone)
    open: int


async def counts(session: AsyncSession, *, owner_id: int | None = None) -> Counts:
    """Open follow-ups (of one owner, or everyone's), overdue and due today."""
    now = clock.now()
    base = [FollowUp.state == "open"]
    if owner_id is not None:
        base.append(FollowUp.owner_id == owner_id)
    row = (
        await session.execute(
            select(
                func.count().filter(FollowUp.due_at < now),
                func.count().filter(
                    and_(FollowUp.due_at >= now, FollowUp.due_at < end_of_today(now))
                ),
                func.count(),
            ).where(*base)
        )
    ).one()
    return Counts(overdue=int(row[0]), due_today=int(row[1]), open=int(row[2]))


async def states_of_customer(session: AsyncSession, customer_id: int) -> dict[str, int]:
    """How many of the customer's follow-ups are in each state (open, done, cancelled)."""
    stmt = (
        select(FollowUp.state, func.count())
        .where(FollowUp.customer_id == customer_id)
        .group_by(FollowUp.state)
    )
    return {state: int(n) for state, n in (await session.execute(stmt)).all()}


# -- change ---------------------------------------------------------------------------------


def _check_version(follow_up: FollowUp, expected_version: int | None) -> None:
    if expected_version is not None and follow_up.version != expected_version:
        raise PreconditionFailed(
            f"Follow-up {follow_up.id} was changed by someone else; reload and try again",
            extra={"current_version": follow_up.version},
        )


def _check_open(follow_up: FollowUp) -> None:
    if follow_up.state != "open":
        raise Conflict(
            f"This follow-up is {follow_up.state}", fields={"state": "only open ones change"}
        )


async def update(
    session: AsyncSession,
    follow_up: FollowUp,
    *,
    changes: dict[str, Any],
    actor: Actor,
    expected_version: int | None = None,
) -> FollowUp:
    """Reschedule, reassign or reword an open follow-up."""
    _check_version(follow_up, expected_version)
    _check_open(follow_up)
    changed: dict[str, Any] = {}
    if "due_at" in changes:
        due = changes["due_at"]
        if due is None:
            raise ValidationFailed("A due time is required", fields={"due_at": "required"})
        if _aware("due_at", due) != follow_up.due_at:
            changed["due_at"] = due
    if "owner_id" in changes and changes["owner_id"] != follow_up.owner_id:
        await _check_owner(session, changes["owner_id"])
        changed["owner_id"] = changes["owner_id"]
    if "reason" in changes:
        if changes["reason"] is None:
            raise ValidationFailed("A reason is required", fields={"reason": "required"})
        reason = _reason(changes["reason"])
        if reason != follow_up.reason:
            changed["reason"] = reason
    if not changed:
        return follow_up
    before = {key: getattr(follow_up, key) for key in changed}
    for key, value in changed.items():
        setattr(follow_up, key, value)
    follow_up.updated_at = clock.now()
    await session.flush()
    await _record(
        session,
        "follow_up.updated",
        follow_up,
        actor=actor,
        data={"changes": _plain(changed), "before": _plain(before)},
    )
    return follow_up


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


async def complete(
    session: AsyncSession,
    follow_up: FollowUp,
    *,
    outcome: str | None,
    note: str = "",
    actor: Actor,
    expected_version: int | None = None,
) -> FollowUp:
    """Close the loop: done, with what came of it (required)."""
    item = Completion(
        follow_up,
        outcome=outcome,
        note=note,
        at=clock.now(),
        actor=actor,
        expected_version=expected_version,
    )
    await _complete(session, [item], named=False)
    return follow_up


@dataclass(frozen=True)
class Completion:
    """An open follow-up done (``complete``'s arguments), at ``at``."""

    follow_up: FollowUp
    outcome: str | None
    at: datetime
    actor: Actor
    note: str = ""
    expected_version: int | None = None


async def complete_many(session: AsyncSession, items: Sequence[Completion]) -> None:
    """``complete`` for each item, each at its own moment (its ``done_at`` and its event's
    time), as one after another would do, for items about different follow-ups: every item
    is checked first (a bad one, or a follow-up twice, refuses the whole batch, naming the
    item, and nothing is written), then the rows are changed in one statement and the
    ``follow_up.done`` events recorded together, in the items' order (subscribers with a
    batch twin hear them at once)."""
    await _complete(session, items, named=True)


def _check_completion(item: Completion) -> str:
    """``complete``'s checks of one item; its note as kept."""
    _check_version(item.follow_up, item.expected_version)
    if not item.outcome:
        raise ValidationFailed(
            "Say how it ended", fields={"outcome": f"required: one of {', '.join(OUTCOMES)}"}
        )
    _choice("outcome", item.outcome, OUTCOMES)
    note = item.note.strip()
    if len(note) > MAX_NOTE:
        raise ValidationFailed("Note too long", fields={"note": f"at most {MAX_NOTE:,} characters"})
    _check_open(item.follow_up)
    return note


_DONE_COLUMNS = ("state", "outcome", "outcome_note", "done_at", "updated_at", "version")
# many follow-ups done in one UPDATE of one text whatever their number, each only if its
# version is still the one read (as the ORM's version check), the rows as one JSON document
_DONE = text("""
UPDATE follow_ups f
SET state = 'done', outcome = e->>2, outcome_note = e->>3,
    done_at = CAST(e->>4 AS timestamptz), updated_at = CAST(e->>4 AS timestamptz),
    version = f.version + 1
FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS u(e)
WHERE f.id = CAST(e->>0 AS bigint) AND f.version = CAST(e->>1 AS int)
""")


async def _complete(session: AsyncSession, items: Sequence[Completion], *, named: bool) -> None:
    """``complete_many``; ``named``: a refusal names its item (else it is ``complete``'s own)."""
    if not items:
        return
    notes: list[str] = []
    seen: set[int] = set()
    for index, item in enumerate(items):
        try:
            if item.follow_up.id in seen:
                raise ValidationFailed(
                    "a follow-up may be completed once per batch",
                    fields={"items": "one item per follow-up"},
                )
            seen.add(item.follow_up.id)
            notes.append(_check_completion(item))
        except ServiceError as exc:
            if not named:
                raise
            raise exc.at_item(index, f"follow-up {item.follow_up.id}") from exc
    await session.flush()  # what is pending on these follow-ups goes first
    rows = [
        [item.follow_up.id, item.follow_up.version, item.outcome, note, item.at]
        for item, note in zip(items, notes, strict=True)
    ]
    result = await session.execute(_DONE, {"rows": json_rows(rows)})
    if result.rowcount != len(rows):  # type: ignore[attr-defined]
        raise Conflict(
            "A follow-up was changed by someone else at the same time; reload and try again"
        )
    written.changed(session, [item.follow_up for item in items])
    recorded: list[NewEvent] = []
    for item, note in zip(items, notes, strict=True):
        follow_up = item.follow_up
        values = ("done", item.outcome, note, item.at, item.at, follow_up.version + 1)
        for name, value in zip(_DONE_COLUMNS, values, strict=True):
            set_committed_value(follow_up, name, value)
        recorded.append(
            _event(
                "follow_up.done",
                follow_up,
                item.actor,
                item.at,
                {
                    "outcome": item.outcome,
                    "note": note,
                    "owner_id": follow_up.owner_id,
                    "due_at": follow_up.due_at.isoformat(),
                    "late": item.at > follow_up.due_at,
                },
            )
        )
    await record_many(session, recorded)


async def cancel(
    session: AsyncSession,
    follow_up: FollowUp,
    *,
    note: str = "",
    actor: Actor,
    expected_version: int | None = None,
) -> FollowUp:
    _check_version(follow_up, expected_version)
    _check_open(follow_up)
    note = note.strip()[:MAX_NOTE]
    follow_up.state, follow_up.outcome_note = "cancelled", note
    follow_up.done_at = follow_up.updated_at = clock.now()
    await session.flush()
    await _record(session, "follow_up.cancelled", follow_up, actor=actor, data={"note": note})
    return follow_up


async def note(session: AsyncSession, follow_up: FollowUp, *, text: str, actor: Actor) -> None:
    """Record news about an open follow-up without changing it (e.g. a better survey score)."""
    await _record(session, "follow_up.updated", follow_up, actor=actor, data={"note": text})


# -- check-ins ------------------------------------------------------------------------------


async def _placeholder_values(
    session: AsyncSession, ticket: Ticket, *, agent_id: int | None
) -> dict[str, str]:
    customer = await customers.get_customer(session, ticket.requester_id)
    agent = await auth.get_user(session, agent_id) if agent_id else None
    return {
        "customer.name": customer.name,
        "customer.first_name": customer.name.split(" ")[0],
        "ticket.number": str(ticket.id),
        "ticket.subject": ticket.subject,
        "ticket.status": ticket.status,
        "agent.name": agent.name if agent else "",
        "agent.first_name": agent.name.split(" ")[0] if agent else "",
    }


async def _check_in_ticket(session: AsyncSession, follow_up: FollowUp) -> Ticket:
    if follow_up.ticket_id is None:
        raise Conflict(
            "A check-in is sent on a ticket, and this follow-up has none",
            fields={"ticket_id": "none"},
        )
    ticket = await tickets.get_ticket(session, follow_up.ticket_id)
    if ticket.status == "closed":
        raise Conflict(
            f"Ticket {ticket.id} is closed; contact the customer on a new ticket",
            fields={"status": "closed is final"},
        )
    return ticket


async def check_in_text(session: AsyncSession, follow_up: FollowUp, *, agent_id: int) -> str:
    """The check-in as it would be sent now by ``agent_id`` (the preview)."""
    ticket = await _check_in_ticket(session, follow_up)
    template = (await read_settings(session)).check_in_template or DEFAULT_CHECK_IN
    return fill(template, await _placeholder_values(session, ticket, agent_id=agent_id))


async def send_check_in(
    session: AsyncSession,
    follow_up: FollowUp,
    *,
    agent_id: int,
    actor: Actor,
    body: str | None = None,
) -> Message:
    """Reply on the ticket with the check-in (the agent's own text, or the template's), as a
    public agent reply: on an e-mail ticket it is mailed, and the answer threads back. The
    ticket keeps its status (a solved one stays solved until the customer answers)."""
    _check_open(follow_up)
    ticket = await _check_in_ticket(session, follow_up)
    if body is not None and not body.strip():
        raise ValidationFailed("The check-in is empty", fields={"body": "must not be empty"})
    text = body if body is not None else await check_in_text(session, follow_up, agent_id=agent_id)
    message = await tickets.add_message(
        session,
        ticket,
        public=True,
        author_type="agent",
        author_user_id=agent_id,
        body_text=text,
        status=ticket.status,
        actor=actor,
    )
    follow_up.sent_at = follow_up.updated_at = clock.now()
    await session.flush()
    await _record(
        session,
        "follow_up.check_in_sent",
        follow_up,
        actor=actor,
        data={"message_id": message.id},
    )
    return message


# -- settings -------------------------------------------------------------------------------


async def read_settings(session: AsyncSession) -> FollowUpSettings:
    """The desk's settings (the defaults until an admin saves them)."""
    row = await session.get(FollowUpSettings, 1)
    if row is None:
        return FollowUpSettings(
            id=1, recovery_hours=DEFAULT_RECOVERY_HOURS, check_in_template="", updated_at=None
        )
    return row


async def save_settings(
    session: AsyncSession, *, recovery_hours: int, check_in_template: str, actor: Actor
) -> FollowUpSettings:
    if not 1 <= recovery_hours <= 720:
        raise ValidationFailed(
            "Invalid recovery time", fields={"recovery_hours": "from 1 to 720 hours"}
        )
    template = check_in_template.strip()
    if len(template) > MAX_TEMPLATE:
        raise ValidationFailed(
            "Template too long",
            fields={"check_in_template": f"at most {MAX_TEMPLATE:,} characters"},
        )
    # stricter than the filler: any {{...}} that is not a placeholder would reach customers
    unknown = sorted(
        set(unknown_placeholders(template))
        | {m.strip() for m in BRACES.findall(template) if m.strip() not in PLACEHOLDERS}
    )
    if unknown:
        raise ValidationFailed(
            "Unknown placeholder",
            fields={
                "check_in_template": f"unknown {', '.join(unknown)}; use {', '.join(PLACEHOLDERS)}"
            },
        )
    now = clock.now()
    stmt = (
        insert(FollowUpSettings)
        .values(id=1, recovery_hours=recovery_hours, check_in_template=template, updated_at=now)
        .on_conflict_do_update(
            index_elements=["id"],
            set_={
                "recovery_hours": recovery_hours,
                "check_in_template": template,
                "updated_at": now,
            },
        )
    )
    await session.execute(stmt)
    row = await session.get(FollowUpSettings, 1, populate_existing=True)
    assert row is not None
    await record(
        session,
        "follow_up.settings_changed",
        subject_type="follow_up_settings",
        subject_id=1,
        actor=actor,
        data={"recovery_hours": recovery_hours, "check_in_template": template},
    )
    return row


# -- detractor recovery ---------------------------------------------------------------------


async def open_recovery(
    session: AsyncSession,
    *,
    ticket_id: int,
    response_id: str,
    agent_id: int | None,
    answered_at: datetime,
    summary: str,
    actor: Actor,
) -> FollowUp | None:
    """Open a recovery for an unhappy answer, for the ticket's owner (its assignee, else the
    agent the answer was about, else nobody yet), due within the desk's recovery hours. None
    when the ticket is gone or already has an open recovery."""
    try:
        ticket = await tickets.get_ticket(session, ticket_id)
    except NotFound:
        return None
    existing = await by_source(session, "survey_response", response_id)
    if existing is not None:
        return existing
    already = await open_recovery_of_ticket(session, ticket.id)
    if already is not None:
        await note(session, already, text=f"Another unhappy answer: {summary}", actor=actor)
        return already
    owner_id = None
    for candidate in (ticket.assignee_id, agent_id):
        if candidate is not None and await _owner_ok(session, candidate):
            owner_id = candidate
            break
    hours = (await read_settings(session)).recovery_hours
    return await create(
        session,
        ticket_id=ticket.id,
        owner_id=owner_id,
        kind="recovery",
        reason=f"Unhappy customer: {summary}. Call or write to them and close the loop.",
        due_at=answered_at + timedelta(hours=hours),
        source=("survey_response", response_id),
        actor=actor,
    )


@dataclass(frozen=True)
class Answered:
    """A survey answer the follow-ups hear of (``survey.answered``), at ``at``."""

    ticket_id: int
    response_id: str
    agent_id: int | None
    at: datetime
    summary: str  # e.g. "NPS 3"
    detractor: bool


async def hear_answers(session: AsyncSession, answers: list[Answered], *, actor: Actor) -> None:
    """For answers about different tickets, what hearing of each in turn does: an unhappy
    one is ``open_recovery`` (a new recovery, or a note on the ticket's open one), a
    happier one a note on the open recovery its earlier answer opened. The reads are one
    query each for all, the new recoveries one insert, and the events are recorded
    together in the answers' order, each at its answer's moment (which also dates the
    new recoveries)."""
    if not answers:
        return
    held = {a.ticket_id: await session.get(Ticket, a.ticket_id) for a in answers if a.detractor}
    sources = (
        await session.scalars(
            select(FollowUp).where(
                FollowUp.source_type == "survey_response",
                FollowUp.source_id
                == any_(literal(sorted({a.response_id for a in answers}), ARRAY(String))),
            )
        )
    ).all()
    by_response = {row.source_id: row for row in sources}
    open_ones = await open_recoveries_of_tickets(session, held)
    hours: int | None = None
    news: list[tuple[Answered, FollowUp | dict[str, Any], str]] = []  # (answer, row, note)
    for answer in answers:
        existing = by_response.get(answer.response_id)
        if not answer.detractor:
            if existing is not None and existing.state == "open":
                news.append(
                    (
                        answer,
                        existing,
                        f"The customer changed their answer to {answer.summary} "
                        "(no longer unhappy)",
                    )
                )
            continue
        ticket = held.get(answer.ticket_id)
        if ticket is None or existing is not None:
            continue
        already = open_ones.get(ticket.id)
        if already is not None:
            news.append((answer, already, f"Another unhappy answer: {answer.summary}"))
            continue
        owner_id = None
        for candidate in (ticket.assignee_id, answer.agent_id):
            if candidate is not None and await _owner_ok(session, candidate):
                owner_id = candidate
                break
        if hours is None:
            hours = (await read_settings(session)).recovery_hours
        await customers.get_customer(session, ticket.requester_id)  # as ``create`` checks
        reason = _reason(
            f"Unhappy customer: {answer.summary}. Call or write to them and close the loop."
        )
        news.append(
            (
                answer,
                _new_values(
                    customer_id=ticket.requester_id,
                    ticket_id=ticket.id,
                    owner_id=owner_id,
                    kind="recovery",
                    reason=reason,
                    due_at=answer.at + timedelta(hours=hours),
                    actor=actor,
                    at=answer.at,
                    source=("survey_response", answer.response_id),
                ),
                "",
            )
        )
    values = [new for _, new, _ in news if isinstance(new, dict)]
    made = {
        follow_up.source_id: follow_up
        for follow_up in await _insert(session, values)
        if follow_up is not None
    }
    recorded: list[NewEvent] = []
    for answer, what, said in news:
        if isinstance(what, FollowUp):
            recorded.append(_event("follow_up.updated", what, actor, answer.at, {"note": said}))
            continue
        follow_up = made.get(answer.response_id)
        if follow_up is None:  # opened by someone else meanwhile: theirs stands
            continue
        recorded.append(
            _event(
                "follow_up.created",
                follow_up,
                actor,
                answer.at,
                {
                    "customer_id": what["customer_id"],
                    "ticket_id": what["ticket_id"],
                    "owner_id": what["owner_id"],
                    "reason": what["reason"],
                    "due_at": what["due_at"].isoformat(),
                    "source": ["survey_response", answer.response_id],
                },
            )
        )
    await record_many(session, recorded)


def _event(
    kind: str, follow_up: FollowUp, actor: Actor, at: datetime, data: dict[str, Any]
) -> NewEvent:
    """What ``_record`` records, at ``at``."""
    subject_type, subject_id = _subject(follow_up)
    return NewEvent(
        kind,
        subject_type,
        subject_id,
        actor,
        at,
        {"follow_up_id": follow_up.id, "kind": follow_up.kind, **data},
    )


@dataclass(frozen=True)
class Recovery:
    opened: int
    closed_in_time: int  # done by the due time
    closed_late: int
    still_open: int
    cancelled: int

    @property
    def closed(self) -> int:
        return self.closed_in_time + self.closed_late

    @property
    def rate(self) -> float | None:
        """Share of opened recoveries whose loop was closed (None when none were opened)."""
        return round(self.closed / self.opened, 4) if self.opened else None


async def recovery_report(
    session: AsyncSession,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    owner_id: int | None = None,
) -> Recovery:
    """Recoveries opened in [since, until) (of one owner, or all), and what became of them."""
    where = [FollowUp.kind == "recovery"]
    if since is not None:
        where.append(FollowUp.created_at >= _aware("since", since))
    if until is not None:
        where.append(FollowUp.created_at < _aware("until", until))
    if owner_id is not None:
        where.append(FollowUp.owner_id == owner_id)
    done = FollowUp.state == "done"
    row = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(and_(done, FollowUp.done_at <= FollowUp.due_at)),
                func.count().filter(and_(done, FollowUp.done_at > FollowUp.due_at)),
                func.count().filter(FollowUp.state == "open"),
                func.count().filter(FollowUp.state == "cancelled"),
            ).where(*where)
        )
    ).one()
    return Recovery(*(int(n) for n in row))


async def people(
    session: AsyncSession, rows: list[FollowUp]
) -> tuple[dict[int, str], dict[int, str]]:
    """Names of the customers and owners of ``rows``, for lists."""
    owners = {
        u.id: u.name
        for u in await auth.users_by_id(session, sorted({r.owner_id for r in rows if r.owner_id}))
    }
    names: dict[int, str] = {}
    for customer_id in sorted({r.customer_id for r in rows}):
        names[customer_id] = (await customers.get_customer(session, customer_id)).name
    return names, owners
