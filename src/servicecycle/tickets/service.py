"""Every change to tickets and their messages. Flushes; the caller commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth import service as auth
from servicecycle.auth.models import Role
from servicecycle.customers.models import Customer
from servicecycle.events.service import Actor, NewEvent, record, record_many
from servicecycle.kit import clock
from servicecycle.kit.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from servicecycle.kit.pagination import Page, decode_cursor, encode_cursor
from servicecycle.tickets import attachments, content, custom_fields
from servicecycle.tickets.fields import clean_values, missing_required
from servicecycle.tickets.models import CHANNELS, PRIORITIES, STATUSES, Message, Ticket
from servicecycle.tickets.rules import (
    OPEN_STATUSES,
    allowed_next,
    status_after_agent_reply,
    status_after_customer_reply,
)

MAX_SUBJECT = 300


@dataclass(frozen=True)
class TicketFilter:
    """Which tickets a view or list shows; every field narrows it."""

    statuses: tuple[str, ...] | None = None
    assignee_id: int | None = None
    unassigned: bool = False
    team_id: int | None = None
    tag: str | None = None
    priority: str | None = None
    channel: str | None = None
    requester_id: int | None = None
    sort: str = "updated"  # updated | created | solved


BUILTIN_VIEWS: dict[str, tuple[str, TicketFilter]] = {
    "my-open": ("My open", TicketFilter(statuses=OPEN_STATUSES)),
    "unassigned": ("Unassigned", TicketFilter(statuses=OPEN_STATUSES, unassigned=True)),
    "all-open": ("All open", TicketFilter(statuses=OPEN_STATUSES)),
    "recently-solved": ("Recently solved", TicketFilter(statuses=("solved",), sort="solved")),
}


def view_filter(name: str, *, user_id: int) -> TicketFilter:
    if name not in BUILTIN_VIEWS:
        raise NotFound(f"No view {name!r}")
    flt = BUILTIN_VIEWS[name][1]
    return replace(flt, assignee_id=user_id) if name == "my-open" else flt


def refine(
    flt: TicketFilter,
    *,
    statuses: Sequence[str] | None,
    assignee: str | None,
    me: int,
    team_id: int | None,
    tag: str | None,
    priority: str | None,
    channel: str | None,
    requester_id: int | None,
) -> TicketFilter:
    """Narrow a view by query parameters; ``assignee`` is a user id, ``me`` or ``none``."""
    changes: dict[str, Any] = {}
    if statuses:
        changes["statuses"] = tuple(statuses)
    if assignee == "me":
        changes["assignee_id"] = me
    elif assignee == "none":
        changes["unassigned"] = True
    elif assignee is not None:
        if not assignee.isdigit():
            raise ValidationFailed("Invalid assignee", fields={"assignee": "a user id, me or none"})
        changes["assignee_id"] = int(assignee)
    for key, value in (
        ("team_id", team_id),
        ("tag", tag),
        ("priority", priority),
        ("channel", channel),
        ("requester_id", requester_id),
    ):
        if value is not None:
            changes[key] = value
    return replace(flt, **changes)


def _check_choice(field: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValidationFailed(f"Invalid {field}", fields={field: f"one of {', '.join(choices)}"})
    return value


def _clean_tags(tags: list[str]) -> list[str]:
    cleaned = sorted({t.strip().lower() for t in tags if t.strip()})
    if any(len(t) > 80 or " " in t for t in cleaned):
        raise ValidationFailed("Invalid tag", fields={"tags": "no spaces, at most 80 characters"})
    return cleaned


def clean_subject(subject: str) -> str:
    subject = " ".join(subject.split())
    if not subject:
        raise ValidationFailed("Subject is required", fields={"subject": "must not be empty"})
    if len(subject) > MAX_SUBJECT:
        raise ValidationFailed(
            "Subject too long", fields={"subject": f"at most {MAX_SUBJECT} characters"}
        )
    return subject


def _body(text: str | None, markup: str | None) -> tuple[str, str]:
    if text is None and markup is None:
        raise ValidationFailed("A message needs a body", fields={"body": "required"})
    if len(text or markup or "") > content.MAX_BODY_CHARS:
        raise ValidationFailed("Message too long", fields={"body": "at most 1,000,000 characters"})
    safe, plain = content.body(text=text, markup=markup)
    if not plain and "<img" not in safe:
        raise ValidationFailed("A message needs a body", fields={"body": "must not be empty"})
    return safe, plain


async def _check_assignee(session: AsyncSession, user_id: int | None) -> None:
    if user_id is None:
        return
    try:
        user = await auth.get_user(session, user_id)
    except NotFound as exc:
        raise ValidationFailed("No such agent", fields={"assignee_id": "unknown user"}) from exc
    if not user.is_active or user.role not in (Role.agent, Role.admin):
        raise ValidationFailed(
            "Cannot assign to this user", fields={"assignee_id": "not an active agent"}
        )


async def _check_team(session: AsyncSession, team_id: int | None) -> None:
    if team_id is None:
        return
    try:
        await auth.get_team(session, team_id)
    except NotFound as exc:
        raise ValidationFailed("No such team", fields={"team_id": "unknown team"}) from exc


# -- create and read ------------------------------------------------------------------------


async def create_ticket(
    session: AsyncSession,
    *,
    subject: str,
    requester: Customer,
    channel: str,
    body_text: str | None = None,
    body_html: str | None = None,
    author: str = "customer",
    author_user_id: int | None = None,
    priority: str = "normal",
    type: str | None = None,
    tags: list[str] | None = None,
    assignee_id: int | None = None,
    team_id: int | None = None,
    custom: dict[str, Any] | None = None,
    actor: Actor,
) -> tuple[Ticket, Message]:
    """Open a ticket with its first message (from the customer, or an agent on their behalf)."""
    subject = clean_subject(subject)
    values = clean_values(await custom_fields.specs(session), custom) if custom else {}
    _check_choice("channel", channel, CHANNELS)
    _check_choice("priority", priority, PRIORITIES)
    _check_choice("author", author, ("customer", "agent"))
    safe, plain = _body(body_text, body_html)
    if requester.merged_into_id is not None:
        raise ValidationFailed("This customer was merged", fields={"requester_id": "merged away"})
    await _check_assignee(session, assignee_id)
    await _check_team(session, team_id)
    now = clock.now()
    ticket = Ticket(
        subject=subject,
        status="new",
        priority=priority,
        type=type,
        channel=channel,
        requester_id=requester.id,
        assignee_id=assignee_id,
        team_id=team_id,
        tags=_clean_tags(tags or []),
        custom=values,
        created_at=now,
        updated_at=now,
    )
    session.add(ticket)
    await session.flush()
    message = Message(
        ticket_id=ticket.id,
        public=True,
        author_type=author,
        author_user_id=author_user_id if author == "agent" else None,
        author_customer_id=requester.id if author == "customer" else None,
        channel=channel,
        body_html=safe,
        body_text=plain,
        created_at=now,
    )
    session.add(message)
    await session.flush()
    _created(session)[ticket.id] = message
    # both rows in one statement; subscribers hear ticket.created, then message.added
    await record_many(
        session,
        [
            NewEvent(
                "ticket.created",
                "ticket",
                ticket.id,
                actor,
                now,
                {
                    "subject": subject,
                    "channel": channel,
                    "priority": priority,
                    "requester_id": requester.id,
                    "assignee_id": assignee_id,
                    "team_id": team_id,
                    "tags": ticket.tags,
                    "custom": values,
                },
            ),
            NewEvent(
                "message.added",
                "ticket",
                ticket.id,
                actor,
                now,
                {"message_id": message.id, "public": True, "author_type": author},
            ),
        ],
    )
    return ticket, message


def _created(session: AsyncSession) -> dict[int, Message]:
    """Tickets this transaction created, with their first message."""
    transaction = session.sync_session.get_transaction()
    seen = session.info.get("tickets_created")
    if seen is None or seen[0] is not transaction:
        seen = (transaction, {})
        session.info["tickets_created"] = seen
    created: dict[int, Message] = seen[1]
    return created


def created_here(session: AsyncSession, ticket_id: int) -> bool:
    """Was the ticket created by this transaction (so nothing outside it knows it yet)?"""
    return ticket_id in _created(session)


async def first_message(session: AsyncSession, ticket: Ticket) -> Message | None:
    """The ticket's first message (without a query for a ticket this transaction created)."""
    known = _created(session).get(ticket.id)
    if known is not None:
        return known
    stmt = select(Message).where(Message.ticket_id == ticket.id).order_by(Message.id).limit(1)
    found: Message | None = await session.scalar(stmt)
    return found


async def get_ticket(session: AsyncSession, ticket_id: int) -> Ticket:
    ticket = await session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound(f"No ticket {ticket_id}")
    return ticket


async def get_message(session: AsyncSession, message_id: int) -> Message:
    message = await session.get(Message, message_id)
    if message is None:
        raise NotFound(f"No message {message_id}")
    return message


async def open_tickets_for_rules(
    session: AsyncSession,
    *,
    statuses: list[str] | None,
    updated_before: datetime | None,
    created_before: datetime | None,
    after_id: int,
    limit: int,
) -> list[Ticket]:
    """Tickets a time rule may act on, by id, narrowed in SQL by what it can narrow."""
    stmt = select(Ticket).where(
        Ticket.merged_into_id.is_(None), Ticket.status != "closed", Ticket.id > after_id
    )
    if statuses:
        stmt = stmt.where(Ticket.status.in_(statuses))
    if updated_before is not None:
        stmt = stmt.where(Ticket.updated_at <= updated_before)
    if created_before is not None:
        stmt = stmt.where(Ticket.created_at <= created_before)
    return list((await session.scalars(stmt.order_by(Ticket.id).limit(limit))).all())


async def open_counts(session: AsyncSession, user_ids: list[int]) -> dict[int, int]:
    """How many open tickets each agent holds (their load)."""
    counts = dict.fromkeys(user_ids, 0)
    if user_ids:
        rows = await session.execute(
            select(Ticket.assignee_id, func.count())
            .where(
                Ticket.assignee_id.in_(user_ids),
                Ticket.status.in_(OPEN_STATUSES),
                Ticket.merged_into_id.is_(None),
            )
            .group_by(Ticket.assignee_id)
        )
        for user_id, count in rows:
            if user_id is not None:
                counts[user_id] = int(count)
    return counts


async def waiting_for_teams(
    session: AsyncSession, team_ids: list[int], *, limit: int
) -> list[Ticket]:
    """Unassigned open tickets of these teams, oldest first (the queue routing drains)."""
    if not team_ids:
        return []
    stmt = (
        select(Ticket)
        .where(
            Ticket.team_id.in_(team_ids),
            Ticket.assignee_id.is_(None),
            Ticket.status.in_(OPEN_STATUSES),
            Ticket.merged_into_id.is_(None),
        )
        .order_by(Ticket.created_at, Ticket.id)
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


async def thread(
    session: AsyncSession, ticket: Ticket, *, public_only: bool = False
) -> list[Message]:
    stmt = select(Message).where(Message.ticket_id == ticket.id)
    if public_only:
        stmt = stmt.where(Message.public.is_(True))
    return list((await session.scalars(stmt.order_by(Message.id))).all())


def filtered(flt: TicketFilter) -> Select[Any]:
    stmt = select(Ticket).where(Ticket.merged_into_id.is_(None))
    if flt.statuses:
        stmt = stmt.where(Ticket.status.in_(flt.statuses))
    if flt.assignee_id is not None:
        stmt = stmt.where(Ticket.assignee_id == flt.assignee_id)
    if flt.unassigned:
        stmt = stmt.where(Ticket.assignee_id.is_(None))
    if flt.team_id is not None:
        stmt = stmt.where(Ticket.team_id == flt.team_id)
    if flt.tag:
        stmt = stmt.where(Ticket.tags.contains([flt.tag.lower()]))
    if flt.priority:
        stmt = stmt.where(Ticket.priority == flt.priority)
    if flt.channel:
        stmt = stmt.where(Ticket.channel == flt.channel)
    if flt.requester_id is not None:
        stmt = stmt.where(Ticket.requester_id == flt.requester_id)
    return stmt


_SORTS = {"updated": Ticket.updated_at, "created": Ticket.created_at, "solved": Ticket.solved_at}


async def list_tickets(
    session: AsyncSession, flt: TicketFilter, *, limit: int = 25, cursor: str | None = None
) -> Page[Ticket]:
    """Tickets matching ``flt``, newest first by the filter's sort key, by keyset cursor."""
    if flt.sort not in _SORTS:
        raise ValidationFailed("Invalid sort", fields={"sort": ", ".join(_SORTS)})
    key = _SORTS[flt.sort]
    stmt = filtered(flt)
    if cursor is not None:
        values = decode_cursor(cursor)
        if len(values) != 2 or not isinstance(values[1], int):
            raise ValidationFailed(
                "Invalid cursor", fields={"cursor": "not a cursor from this API"}
            )
        moment = datetime.fromisoformat(values[0]) if values[0] else None
        # one row comparison, which the list's index can start from (an OR of two cannot)
        stmt = stmt.where(
            tuple_(key, Ticket.id) < tuple_(moment, values[1])
            if moment is not None
            else and_(key.is_(None), Ticket.id < values[1])
        )
    stmt = stmt.order_by(key.desc().nulls_last(), Ticket.id.desc()).limit(limit + 1)
    rows = list((await session.scalars(stmt)).all())
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        moment = getattr(last, key.key)
        next_cursor = encode_cursor([moment.isoformat() if moment else None, last.id])
    return Page(items=rows[:limit], next_cursor=next_cursor)


# Counts stop here: counting every row of a 300,000-ticket view costs a scan of it on each
# page load, and nobody reads "312,457" differently from "10,000+".
COUNT_CAP = 10_000


def capped_count(stmt: Select[Any]) -> Select[int]:
    """``count(*)`` of ``stmt``'s rows, stopping at ``COUNT_CAP + 1`` (see ``shown_count``)."""
    inner = stmt.with_only_columns(Ticket.id).order_by(None).limit(COUNT_CAP + 1).subquery()
    return select(func.count()).select_from(inner)


def shown_count(count: int) -> str:
    """A capped count as people read it: ``1,234`` or ``10,000+``."""
    return f"{COUNT_CAP:,}+" if count > COUNT_CAP else f"{count:,}"


async def count_views(session: AsyncSession, *, user_id: int) -> dict[str, int]:
    """Live counts of the built-in views (capped, each answered by its view's index)."""
    row = (
        await session.execute(
            select(
                *(
                    capped_count(filtered(flt)).scalar_subquery()
                    for flt in (view_filter(key, user_id=user_id) for key in BUILTIN_VIEWS)
                )
            )
        )
    ).one()
    return dict(zip(BUILTIN_VIEWS, (int(n) for n in row), strict=True))


async def tickets_of_customer(session: AsyncSession, customer_id: int) -> list[Ticket]:
    stmt = (
        select(Ticket)
        .where(Ticket.requester_id == customer_id, Ticket.merged_into_id.is_(None))
        .order_by(Ticket.created_at.desc())
    )
    return list((await session.scalars(stmt)).all())


# -- change ---------------------------------------------------------------------------------


def touch(session: AsyncSession, ticket: Ticket) -> None:
    """Mark a change: ``updated_at`` now, and the version up by one per transaction, however
    many steps the change takes (so a client's If-Match counts whole updates)."""
    ticket.updated_at = clock.now()
    if first_change(session, ticket.id):
        ticket.version = ticket.version + 1


def first_change(session: AsyncSession, ticket_id: int) -> bool:
    """Is this the ticket's first change in this transaction (its version goes up once)?"""
    transaction = session.sync_session.get_transaction()
    seen = session.info.get("tickets_bumped")
    # the transaction itself, not its id: held here, it cannot be freed and its id reused
    if seen is None or seen[0] is not transaction:
        seen = (transaction, set())
        session.info["tickets_bumped"] = seen
    changed: set[int] = seen[1]
    if ticket_id in changed:
        return False
    changed.add(ticket_id)
    return True


def forget_rolled_back(session: AsyncSession) -> None:
    """After a savepoint was rolled back: loaded rows are read again, and the version bumps
    it made are forgotten (a ticket changed again in this transaction is bumped anew)."""
    session.expire_all()
    session.info.pop("tickets_bumped", None)


def _check_version(ticket: Ticket, expected_version: int | None) -> None:
    if expected_version is not None and ticket.version != expected_version:
        raise PreconditionFailed(
            f"Ticket {ticket.id} was changed by someone else; reload and try again",
            extra={"current_version": ticket.version},
        )


async def set_status(
    session: AsyncSession, ticket: Ticket, status: str, *, actor: Actor, check_fields: bool = True
) -> None:
    """Move to ``status`` if the life cycle allows it (409 listing what it allows)."""
    _check_choice("status", status, STATUSES)
    if status == ticket.status:
        return
    allowed = allowed_next(ticket.status)
    if status not in allowed:
        raise Conflict(
            f"A {ticket.status} ticket cannot become {status}",
            fields={"status": f"allowed: {', '.join(allowed) or 'none (closed is final)'}"},
            extra={"allowed": list(allowed)},
        )
    if status == "solved" and check_fields:
        missing = missing_required(await custom_fields.specs(session), ticket.custom)
        if missing:
            raise ValidationFailed(
                "Fill in the required fields before solving",
                fields={f"custom.{key}": "required to solve" for key in missing},
            )
    before, now = ticket.status, clock.now()
    ticket.status = status
    touch(session, ticket)
    if status == "solved":
        ticket.solved_at = now
    elif status == "closed":
        ticket.closed_at = now
    elif before == "solved":
        ticket.solved_at = None
    await record(
        session,
        "status.changed",
        subject_type="ticket",
        subject_id=ticket.id,
        actor=actor,
        occurred_at=now,
        data={"from": before, "to": status},
    )


async def update_ticket(
    session: AsyncSession,
    ticket: Ticket,
    *,
    expected_version: int | None,
    changes: dict[str, Any],
    actor: Actor,
) -> Ticket:
    """Change status, priority, type, subject, tags, assignee or team; one event per kind."""
    _check_version(ticket, expected_version)
    if ticket.status == "closed" and set(changes) - {"tags"}:
        raise Conflict("A closed ticket cannot be changed", fields={"status": "closed is final"})
    if changes.get("custom"):
        # before the status: solving may need the required fields this sets
        values = clean_values(
            await custom_fields.specs(session), changes["custom"], current=ticket.custom
        )
        if values != ticket.custom:
            ticket.custom = values  # set first: subscribers of the event see the new values
            touch(session, ticket)
            await record(
                session,
                "ticket.updated",
                subject_type="ticket",
                subject_id=ticket.id,
                actor=actor,
                data={"changes": {"custom": values}},
            )
    if "status" in changes:
        await set_status(session, ticket, changes["status"], actor=actor)
    if "assignee_id" in changes or "team_id" in changes:
        await assign(
            session,
            ticket,
            assignee_id=changes.get("assignee_id", ticket.assignee_id),
            team_id=changes.get("team_id", ticket.team_id),
            actor=actor,
        )
    changed: dict[str, Any] = {}
    if "priority" in changes and changes["priority"] != ticket.priority:
        changed["priority"] = _check_choice("priority", changes["priority"], PRIORITIES)
    if "subject" in changes:
        subject = clean_subject(changes["subject"])
        if subject != ticket.subject:
            changed["subject"] = subject
    if "type" in changes and changes["type"] != ticket.type:
        changed["type"] = changes["type"]
    if "tags" in changes:
        tags = _clean_tags(changes["tags"])
        if tags != ticket.tags:
            changed["tags"] = tags

    for key, value in changed.items():
        setattr(ticket, key, value)
    if changed:  # status, assignment and custom values touched the ticket themselves
        touch(session, ticket)
    await session.flush()
    if changed:
        await record(
            session,
            "ticket.updated",
            subject_type="ticket",
            subject_id=ticket.id,
            actor=actor,
            data={"changes": changed},
        )
    return ticket


async def assign(
    session: AsyncSession,
    ticket: Ticket,
    *,
    assignee_id: int | None,
    team_id: int | None,
    actor: Actor,
) -> Ticket:
    if (assignee_id, team_id) == (ticket.assignee_id, ticket.team_id):
        return ticket
    await _check_assignee(session, assignee_id)
    await _check_team(session, team_id)
    before = {"assignee_id": ticket.assignee_id, "team_id": ticket.team_id}
    ticket.assignee_id, ticket.team_id = assignee_id, team_id
    touch(session, ticket)
    await session.flush()
    await record(
        session,
        "assigned",
        subject_type="ticket",
        subject_id=ticket.id,
        actor=actor,
        data={"assignee_id": assignee_id, "team_id": team_id, "before": before},
    )
    return ticket


async def add_message(
    session: AsyncSession,
    ticket: Ticket,
    *,
    public: bool,
    author_type: str,
    author_user_id: int | None = None,
    author_customer_id: int | None = None,
    body_text: str | None = None,
    body_html: str | None = None,
    channel: str | None = None,
    status: str | None = None,
    expected_version: int | None = None,
    attachment_ids: list[int] | None = None,
    actor: Actor,
) -> Message:
    """Add a reply or note. A customer's reply reopens; an agent may set the status with it."""
    _check_version(ticket, expected_version)
    _check_choice("author_type", author_type, ("agent", "customer", "system"))
    if ticket.status == "closed":
        raise Conflict(
            "This ticket is closed; open a follow-up ticket instead",
            fields={"status": "closed is final"},
        )
    if author_type == "customer" and not public:
        raise ValidationFailed(
            "Customers cannot write internal notes", fields={"public": "must be true"}
        )
    safe, plain = _body(body_text, body_html)
    now = clock.now()
    message = Message(
        ticket_id=ticket.id,
        public=public,
        author_type=author_type,
        author_user_id=author_user_id,
        author_customer_id=author_customer_id,
        channel=channel or ticket.channel,
        body_html=safe,
        body_text=plain,
        created_at=now,
    )
    session.add(message)
    await session.flush()
    await record(
        session,
        "message.added",
        subject_type="ticket",
        subject_id=ticket.id,
        actor=actor,
        occurred_at=now,
        data={"message_id": message.id, "public": public, "author_type": author_type},
    )
    if attachment_ids:
        await attachments.attach(
            session, message, attachment_ids, user_id=author_user_id, actor=actor
        )
    if author_type == "customer":
        next_status = status_after_customer_reply(ticket.status)
    elif author_type == "agent" and public:
        next_status = status_after_agent_reply(ticket.status, status)
        if ticket.first_reply_at is None:
            ticket.first_reply_at = now
    else:
        next_status = status or ticket.status
    await set_status(session, ticket, next_status, actor=actor)
    touch(session, ticket)
    await session.flush()
    return message


async def move_requester(
    session: AsyncSession, *, from_id: int, to_id: int, actor: Actor
) -> list[int]:
    """Give every ticket of one customer to another (a customer merge); one event per ticket."""
    moved = list(
        (
            await session.execute(
                update(Ticket)
                .where(Ticket.requester_id == from_id)
                .values(requester_id=to_id, version=Ticket.version + 1, updated_at=clock.now())
                .returning(Ticket.id)
            )
        ).scalars()
    )
    for ticket_id in moved:
        await record(
            session,
            "ticket.requester_changed",
            subject_type="ticket",
            subject_id=ticket_id,
            actor=actor,
            data={"from": from_id, "to": to_id},
        )
    return moved
