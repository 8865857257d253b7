"""Changes to many tickets at once: all in one transaction, or none."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Table, TextClause, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.instrumentation import manager_of_class

from servicecycle.customers.models import Customer
from servicecycle.db import written
from servicecycle.events.service import Actor, NewEvent, record_many
from servicecycle.kit.errors import Conflict, NotFound, ServiceError, ValidationFailed
from servicecycle.tickets import custom_fields, service
from servicecycle.tickets.fields import missing_required
from servicecycle.tickets.models import CHANNELS, PRIORITIES, STATUSES, Message, Ticket
from servicecycle.tickets.rules import (
    allowed_next,
    status_after_agent_reply,
    status_after_customer_reply,
)
from servicecycle.tickets.service import update_ticket

MAX_BULK = 500
T = TypeVar("T")


async def bulk_update(
    session: AsyncSession,
    ticket_ids: list[int],
    *,
    changes: dict[str, Any],
    add_tags: list[str] | None = None,
    remove_tags: list[str] | None = None,
    actor: Actor,
) -> list[Ticket]:
    """Apply the same change to every ticket; the first ticket that refuses stops them all
    (the caller's transaction rolls back) and the error names it."""
    ids = list(dict.fromkeys(ticket_ids))
    if not ids or len(ids) > MAX_BULK:
        raise ValidationFailed("Choose 1 to 500 tickets", fields={"ids": f"1 to {MAX_BULK} ids"})
    if not changes and not add_tags and not remove_tags:
        raise ValidationFailed("Nothing to change", fields={"changes": "empty"})
    rows = await session.scalars(select(Ticket).where(Ticket.id.in_(ids)).with_for_update())
    found = {ticket.id: ticket for ticket in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"No ticket {', '.join(map(str, missing))}", fields={"ids": "unknown ids"})
    for ticket_id in ids:
        ticket = found[ticket_id]
        these = dict(changes)
        if add_tags or remove_tags:
            tags = (set(ticket.tags) | {t.lower() for t in add_tags or []}) - {
                t.lower() for t in remove_tags or []
            }
            these["tags"] = sorted(tags)
        try:
            await update_ticket(session, ticket, expected_version=None, changes=these, actor=actor)
        except ServiceError as exc:
            exc.message = f"Ticket {ticket_id}: {exc.message}. No ticket was changed."
            exc.extra = {**exc.extra, "ticket_id": ticket_id}
            raise
    return [found[i] for i in ids]


# -- the batched path: many tickets, each with its own change and moment ---------------------
#
# The same rows and events as ``create_ticket``, ``add_message``, ``set_status`` and
# ``assign`` called one after another in one transaction, each at its item's moment (``at``),
# for items about different tickets: everything is checked first (a bad item writes nothing
# and the error names it), then written with multi-row statements, then the events recorded
# together (``events.record_many``), so subscribers with a batch twin hear them at once.


@dataclass(frozen=True)
class NewTicket:
    """A ticket to open with its first message, from the customer (``create_ticket``)."""

    subject: str
    requester: Customer
    channel: str
    body_text: str | None
    at: datetime
    actor: Actor
    priority: str = "normal"
    type: str | None = None
    tags: tuple[str, ...] = ()
    body_html: str | None = None  # sanitised here, as create_ticket does


@dataclass(frozen=True)
class NewMessage:
    """A reply or note on a ticket (``add_message``)."""

    ticket: Ticket
    public: bool
    author_type: str
    body_text: str | None
    at: datetime
    actor: Actor
    author_user_id: int | None = None
    author_customer_id: int | None = None
    status: str | None = None
    body_html: str | None = None  # sanitised here, as add_message does
    channel: str | None = None  # the ticket's, unless the message came another way


@dataclass(frozen=True)
class NewStatus:
    """A ticket's move to ``status`` (``set_status``)."""

    ticket: Ticket
    status: str
    at: datetime
    actor: Actor


@dataclass(frozen=True)
class NewAssignment:
    """A ticket's new assignee and team (``assign``)."""

    ticket: Ticket
    assignee_id: int | None
    team_id: int | None
    at: datetime
    actor: Actor


def _distinct(tickets: list[Ticket]) -> None:
    seen: set[int] = set()
    for index, ticket in enumerate(tickets):
        if ticket.id in seen:
            raise ValidationFailed(
                f"Item {index} (ticket {ticket.id}): a ticket may appear once per batch",
                fields={"items": "one item per ticket"},
                extra={"item": index},
            )
        seen.add(ticket.id)


_TICKETS = cast(Table, Ticket.__table__)
# what the batched path changes on a ticket, written for many tickets in one statement
_CHANGED = (
    "status",
    "updated_at",
    "solved_at",
    "closed_at",
    "first_reply_at",
    "assignee_id",
    "team_id",
)
# one UPDATE of one text whatever the number of tickets, each row only if its version is
# still the one read; the rows go as one JSON document (see ``json_rows``)
_WRITE = text("""
UPDATE tickets t
SET status = e->>2, updated_at = CAST(e->>3 AS timestamptz),
    solved_at = CAST(e->>4 AS timestamptz), closed_at = CAST(e->>5 AS timestamptz),
    first_reply_at = CAST(e->>6 AS timestamptz), assignee_id = CAST(e->>7 AS int),
    team_id = CAST(e->>8 AS int), version = CAST(e->>9 AS int)
FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS u(e)
WHERE t.id = CAST(e->>0 AS bigint) AND t.version = CAST(e->>1 AS int)
""")


def json_rows(rows: list[list[Any]]) -> str:
    """Rows for a statement that reads them from one JSON document (``jsonb_array_elements``
    in the document's order): one C-speed ``json.dumps``, where arrays of text cost the driver
    a Python escape per element; moments as ISO text, which the casts read back exactly."""
    return json.dumps(rows, default=_iso)


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


async def _write(
    session: AsyncSession, changes: list[tuple[Ticket, datetime, dict[str, Any]]]
) -> None:
    """Each (ticket, moment, changed values) as ``touch`` and the attribute changes of the
    single services leave it (``updated_at`` the moment, the version up once per
    transaction), written in one statement for all; the loaded tickets learn the values as
    written (no second write at the next flush). A ticket changed by someone else since it
    was read is refused, as the ORM's version check refuses it."""
    if not changes:
        return
    await session.flush()  # what is pending on these tickets goes first
    rows = []
    for ticket, at, values in changes:
        version = ticket.version + 1 if service.first_change(session, ticket.id) else ticket.version
        row = {name: getattr(ticket, name) for name in _CHANGED}
        row.update(values, updated_at=at)
        rows.append({**row, "version": version, "b_id": ticket.id, "b_version": ticket.version})
    document = json_rows(
        [
            [row["b_id"], row["b_version"], *(row[name] for name in _CHANGED), row["version"]]
            for row in rows
        ]
    )
    result = await session.execute(_WRITE, {"rows": document})
    if result.rowcount != len(rows):  # type: ignore[attr-defined]
        raise Conflict("A ticket was changed by someone else; nothing was written")
    for (ticket, _, _), row in zip(changes, rows, strict=True):
        for name in (*_CHANGED, "version"):
            set_committed_value(ticket, name, row[name])
    written.changed(session, [ticket for ticket, _, _ in changes])


# Many rows in one INSERT of one text whatever their number (as ``events.record_many``): the
# driver parses it once, the server can prepare it, and the ORM's unit of work is not asked
# to sort and batch rows it only has to remember. The rows (one JSON document, see ``json_rows``)
# are numbered in the document's order, so the sorted ids returned are the rows' in that order.
_NEW_TICKETS = text("""
INSERT INTO tickets (subject, status, priority, type, channel, requester_id, tags, custom,
                     created_at, updated_at, version)
SELECT e->>0, 'new', e->>1, e->>2, e->>3, CAST(e->>4 AS bigint),
       CAST(ARRAY(SELECT jsonb_array_elements_text(e->5)) AS varchar(80)[]),
       CAST('{}' AS jsonb), CAST(e->>6 AS timestamptz), CAST(e->>6 AS timestamptz), 1
FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS u(e, n)
ORDER BY n
RETURNING id
""")
_NEW_MESSAGES = text("""
INSERT INTO messages (ticket_id, public, author_type, author_user_id, author_customer_id,
                      channel, body_html, body_text, created_at)
SELECT CAST(e->>0 AS bigint), CAST(e->>1 AS boolean), e->>2, CAST(e->>3 AS int),
       CAST(e->>4 AS bigint), e->>5, e->>6, e->>7, CAST(e->>8 AS timestamptz)
FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS u(e, n)
ORDER BY n
RETURNING id
""")


async def _insert(session: AsyncSession, stmt: TextClause, rows: list[list[Any]]) -> list[int]:
    """The ids of the rows ``stmt`` inserted (from one JSON document), in the rows' order."""
    return sorted((await session.execute(stmt, {"rows": json_rows(rows)})).scalars().all())


def new_row(cls: type[T], **values: Any) -> T:
    """An instance of a mapped class holding ``values``, built as the ORM builds a row it
    loads (no attribute events: a quarter of the constructor's cost), for a row written by
    SQL with every column given and then kept by ``attach``."""
    row: T = manager_of_class(cls).new_instance()
    row.__dict__.update(values)
    return row


def attach(session: AsyncSession, rows: Sequence[Any], ids: list[int]) -> None:
    """Rows written by SQL (every column given; ``ids`` their new keys), kept in the
    session as loaded rows: nothing is left for the unit of work to write."""
    for row, row_id in zip(rows, ids, strict=True):
        row.__dict__["id"] = row_id
        make_transient_to_detached(row)
    session.add_all(rows)
    written.new(session, rows)  # gone again if the transaction or savepoint rolls back


async def _insert_messages(session: AsyncSession, messages: list[Message]) -> None:
    ids = await _insert(
        session,
        _NEW_MESSAGES,
        [
            [
                m.ticket_id,
                m.public,
                m.author_type,
                m.author_user_id,
                m.author_customer_id,
                m.channel,
                m.body_html,
                m.body_text,
                m.created_at,
            ]
            for m in messages
        ],
    )
    attach(session, messages, ids)


async def create_tickets(
    session: AsyncSession, items: list[NewTicket]
) -> list[tuple[Ticket, Message]]:
    """Open many tickets, each with its first message from its customer: ``create_ticket``
    for each item, in one multi-row insert of tickets, one of messages, two of events."""
    cleaned = []
    for index, item in enumerate(items):
        try:
            subject = service.clean_subject(item.subject)
            service._check_choice("channel", item.channel, CHANNELS)
            service._check_choice("priority", item.priority, PRIORITIES)
            safe, plain = service._body(item.body_text, item.body_html)
            if item.requester.merged_into_id is not None:
                raise ValidationFailed(
                    "This customer was merged", fields={"requester_id": "merged away"}
                )
            tags = service._clean_tags(list(item.tags))
        except ServiceError as exc:
            raise exc.at_item(index, f"ticket {item.subject[:40]!r}") from exc
        cleaned.append((subject, safe, plain, tags))
    made = [
        new_row(
            Ticket,
            subject=subject,
            status="new",
            priority=item.priority,
            type=item.type,
            channel=item.channel,
            requester_id=item.requester.id,
            assignee_id=None,
            team_id=None,
            tags=tags,
            custom={},
            created_at=item.at,
            updated_at=item.at,
            first_reply_at=None,
            solved_at=None,
            closed_at=None,
            merged_into_id=None,
            version=1,
        )
        for item, (subject, _, _, tags) in zip(items, cleaned, strict=True)
    ]
    ids = await _insert(
        session,
        _NEW_TICKETS,
        [
            [t.subject, t.priority, t.type, t.channel, t.requester_id, t.tags, t.created_at]
            for t in made
        ],
    )
    attach(session, made, ids)
    messages = [
        new_row(
            Message,
            ticket_id=ticket.id,
            public=True,
            author_type="customer",
            author_user_id=None,
            author_customer_id=item.requester.id,
            channel=item.channel,
            body_html=safe,
            body_text=plain,
            created_at=item.at,
        )
        for ticket, item, (_, safe, plain, _) in zip(made, items, cleaned, strict=True)
    ]
    await _insert_messages(session, messages)
    created = service._created(session)
    for ticket, message in zip(made, messages, strict=True):
        created[ticket.id] = message
    # all rows in one statement, as create_ticket writes its two; subscribers hear every
    # ticket.created, then every message.added
    created_events = [
        NewEvent(
            "ticket.created",
            "ticket",
            ticket.id,
            item.actor,
            item.at,
            {
                "subject": ticket.subject,
                "channel": item.channel,
                "priority": item.priority,
                "requester_id": item.requester.id,
                "assignee_id": None,
                "team_id": None,
                "tags": ticket.tags,
                "custom": {},
            },
        )
        for ticket, item in zip(made, items, strict=True)
    ]
    added_events = [
        NewEvent(
            "message.added",
            "ticket",
            ticket.id,
            item.actor,
            item.at,
            {"message_id": message.id, "public": True, "author_type": "customer"},
        )
        for ticket, message, item in zip(made, messages, items, strict=True)
    ]
    await record_many(session, created_events + added_events)
    return list(zip(made, messages, strict=True))


async def _check_statuses(session: AsyncSession, items: list[NewStatus]) -> None:
    specs = None
    for index, item in enumerate(items):
        ticket = item.ticket
        try:
            service._check_choice("status", item.status, STATUSES)
            if item.status == ticket.status:
                continue
            allowed = allowed_next(ticket.status)
            if item.status not in allowed:
                raise Conflict(
                    f"A {ticket.status} ticket cannot become {item.status}",
                    fields={"status": f"allowed: {', '.join(allowed) or 'none (closed is final)'}"},
                    extra={"allowed": list(allowed)},
                )
            if item.status == "solved":
                specs = specs if specs is not None else await custom_fields.specs(session)
                missing = missing_required(specs, ticket.custom)
                if missing:
                    raise ValidationFailed(
                        "Fill in the required fields before solving",
                        fields={f"custom.{key}": "required to solve" for key in missing},
                    )
        except ServiceError as exc:
            raise exc.at_item(index, f"ticket {ticket.id}") from exc


async def set_statuses(session: AsyncSession, items: list[NewStatus]) -> None:
    """Move each ticket to its status (``set_status`` for each); an item whose ticket has
    that status already changes nothing."""
    _distinct([item.ticket for item in items])
    await _check_statuses(session, items)
    await _apply_statuses(session, items)


async def _apply_statuses(
    session: AsyncSession,
    items: list[NewStatus],
    also: dict[int, dict[str, Any]] | None = None,
    touched: list[Ticket] | None = None,
) -> None:
    """Each status change written and recorded; ``also``: more values for some tickets,
    written with them; ``touched``: tickets written (at their item's moment) even if their
    status stays."""
    also = also or {}
    touching = {t.id for t in touched or []}
    writes: list[tuple[Ticket, datetime, dict[str, Any]]] = []
    changes = []
    for item in items:
        ticket = item.ticket
        values = dict(also.get(ticket.id, {}))
        if item.status != ticket.status:
            before = ticket.status
            values["status"] = item.status
            if item.status == "solved":
                values["solved_at"] = item.at
            elif item.status == "closed":
                values["closed_at"] = item.at
            elif before == "solved":
                values["solved_at"] = None
            changes.append(
                NewEvent(
                    "status.changed",
                    "ticket",
                    ticket.id,
                    item.actor,
                    item.at,
                    {"from": before, "to": item.status},
                )
            )
        elif ticket.id not in touching:
            continue
        writes.append((ticket, item.at, values))
    await _write(session, writes)
    await record_many(session, changes)


async def assign_many(session: AsyncSession, items: list[NewAssignment]) -> None:
    """Give each ticket its assignee and team (``assign`` for each)."""
    _distinct([item.ticket for item in items])
    for index, item in enumerate(items):
        try:
            await service._check_assignee(session, item.assignee_id)
            await service._check_team(session, item.team_id)
        except ServiceError as exc:
            raise exc.at_item(index, f"ticket {item.ticket.id}") from exc
    changes = []
    writes: list[tuple[Ticket, datetime, dict[str, Any]]] = []
    for item in items:
        ticket = item.ticket
        if (item.assignee_id, item.team_id) == (ticket.assignee_id, ticket.team_id):
            continue
        before = {"assignee_id": ticket.assignee_id, "team_id": ticket.team_id}
        writes.append((ticket, item.at, {"assignee_id": item.assignee_id, "team_id": item.team_id}))
        changes.append(
            NewEvent(
                "assigned",
                "ticket",
                ticket.id,
                item.actor,
                item.at,
                {"assignee_id": item.assignee_id, "team_id": item.team_id, "before": before},
            )
        )
    await _write(session, writes)
    await record_many(session, changes)


async def add_messages(session: AsyncSession, items: list[NewMessage]) -> list[Message]:
    """Add each reply or note (``add_message`` for each): a customer's reply reopens, an
    agent's public reply opens a new ticket (or sets the item's status) and is its first
    reply if none came before."""
    _distinct([item.ticket for item in items])
    bodies = []
    for index, item in enumerate(items):
        ticket = item.ticket
        try:
            service._check_choice("author_type", item.author_type, ("agent", "customer", "system"))
            if ticket.status == "closed":
                raise Conflict(
                    "This ticket is closed; open a follow-up ticket instead",
                    fields={"status": "closed is final"},
                )
            if item.author_type == "customer" and not item.public:
                raise ValidationFailed(
                    "Customers cannot write internal notes", fields={"public": "must be true"}
                )
            bodies.append(service._body(item.body_text, item.body_html))
        except ServiceError as exc:
            raise exc.at_item(index, f"ticket {ticket.id}") from exc
    # refused before anything is written, as far as the tickets' statuses now tell
    await _check_statuses(session, [_following(item) for item in items])
    messages = [
        new_row(
            Message,
            ticket_id=item.ticket.id,
            public=item.public,
            author_type=item.author_type,
            author_user_id=item.author_user_id,
            author_customer_id=item.author_customer_id,
            channel=item.channel or item.ticket.channel,
            body_html=safe,
            body_text=plain,
            created_at=item.at,
        )
        for item, (safe, plain) in zip(items, bodies, strict=True)
    ]
    await _insert_messages(session, messages)
    await record_many(
        session,
        [
            NewEvent(
                "message.added",
                "ticket",
                item.ticket.id,
                item.actor,
                item.at,
                {"message_id": m.id, "public": item.public, "author_type": item.author_type},
            )
            for item, m in zip(items, messages, strict=True)
        ],
    )
    # the status each reply leads to, from the status the ticket has after its
    # message.added subscribers (a rule may have moved it), as add_message decides it
    statuses = [_following(item) for item in items]
    await _check_statuses(session, statuses)
    first = {
        item.ticket.id: {"first_reply_at": item.at}
        for item in items
        if item.author_type == "agent" and item.public and item.ticket.first_reply_at is None
    }
    await _apply_statuses(session, statuses, first, [item.ticket for item in items])
    return messages


def _following(item: NewMessage) -> NewStatus:
    """The status ``item``'s message leads its ticket to (``add_message``'s rule)."""
    ticket = item.ticket
    if item.author_type == "customer":
        following = status_after_customer_reply(ticket.status)
    elif item.author_type == "agent" and item.public:
        following = status_after_agent_reply(ticket.status, item.status)
    else:
        following = item.status or ticket.status
    return NewStatus(ticket, following, item.at, item.actor)
