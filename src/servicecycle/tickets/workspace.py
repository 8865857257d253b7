"""What the agent workspace pages read: tickets with the names of the people on them.

Reads only. Each function gathers one page's facts from the services of this and lower
domains (auth, customers, events) so the pages stay a parse-call-render.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth import service as auth
from servicecycle.auth.models import Role, Team, User
from servicecycle.customers import service as customers
from servicecycle.customers.models import Customer, CustomerIdentity
from servicecycle.events import service as events
from servicecycle.events.models import Event
from servicecycle.kit.errors import NotFound
from servicecycle.tickets import attachments, service
from servicecycle.tickets.models import Attachment, Message, Ticket
from servicecycle.tickets.rules import OPEN_STATUSES, allowed_next

ASSIGNABLE = (Role.agent.value, Role.admin.value)
TIMELINE_LIMIT = 300


@dataclass(frozen=True)
class Row:
    """One line of the inbox."""

    ticket: Ticket
    requester: str
    assignee: str | None


@dataclass(frozen=True)
class Post:
    """A message of a thread with its author's name."""

    message: Message
    author: str
    files: list[Attachment]


@dataclass(frozen=True)
class TicketView:
    """Everything the ticket page shows besides the request's own state."""

    ticket: Ticket
    posts: list[Post]
    requester: Customer
    identities: list[CustomerIdentity]
    other_open: list[Ticket]
    agents: list[User]
    teams: list[Team]
    assignee: str | None
    next_statuses: tuple[str, ...]


@dataclass(frozen=True)
class Entry:
    """One line of a customer's timeline: an event, who caused it, what it was about."""

    event: Event
    actor: str
    ticket: Ticket | None = None
    message: Message | None = None
    names: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Timeline:
    entries: list[Entry]
    truncated: bool


async def _user_names(session: AsyncSession, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = sorted({i for i in ids if i is not None})
    found = {user.id: user.name for user in await auth.users_by_id(session, wanted)}
    return {i: found.get(i, f"User #{i}") for i in wanted}


async def _customers(session: AsyncSession, ids: Iterable[int | None]) -> dict[int, Customer]:
    # one primary-key read per distinct customer: customers has no read-many yet
    found: dict[int, Customer] = {}
    for customer_id in {i for i in ids if i is not None}:
        try:
            found[customer_id] = await customers.get_customer(session, customer_id)
        except NotFound:
            continue
    return found


async def agents(session: AsyncSession) -> list[User]:
    """Active users who may be assigned tickets, by name."""
    users = (await auth.list_users(session, limit=1000)).items
    return sorted(
        (u for u in users if u.is_active and u.role in ASSIGNABLE), key=lambda u: u.name.lower()
    )


async def inbox_rows(session: AsyncSession, tickets: list[Ticket]) -> list[Row]:
    people = await _customers(session, (t.requester_id for t in tickets))
    names = await _user_names(session, (t.assignee_id for t in tickets))
    return [
        Row(
            ticket=t,
            requester=people[t.requester_id].name if t.requester_id in people else "—",
            assignee=names.get(t.assignee_id) if t.assignee_id is not None else None,
        )
        for t in tickets
    ]


async def ticket_view(session: AsyncSession, ticket: Ticket) -> TicketView:
    messages = await service.thread(session, ticket)
    people = await _customers(
        session, [ticket.requester_id, *(m.author_customer_id for m in messages)]
    )
    names = await _user_names(session, [ticket.assignee_id, *(m.author_user_id for m in messages)])
    files = await attachments.of_messages(session, [m.id for m in messages])
    posts = [Post(message=m, author=_author(m, names, people), files=files[m.id]) for m in messages]
    requester = people.get(ticket.requester_id) or await customers.get_customer(
        session, ticket.requester_id
    )
    identities = (await customers.identities_of(session, [requester.id]))[requester.id]
    others = await service.tickets_of_customer(session, requester.id)
    return TicketView(
        ticket=ticket,
        posts=posts,
        requester=requester,
        identities=identities,
        other_open=[t for t in others if t.id != ticket.id and t.status in OPEN_STATUSES],
        agents=await agents(session),
        teams=[team for team, _ in await auth.list_teams(session)],
        assignee=names.get(ticket.assignee_id) if ticket.assignee_id is not None else None,
        next_statuses=allowed_next(ticket.status),
    )


def _author(message: Message, names: dict[int, str], people: dict[int, Customer]) -> str:
    if message.author_type == "agent":
        return names.get(message.author_user_id or 0, "An agent")
    if message.author_type == "customer" and message.author_customer_id in people:
        return people[message.author_customer_id].name
    return "System"


async def reload(session: AsyncSession, ticket: Ticket) -> Ticket:
    """Read a ticket again after a refused change rolled its savepoint back."""
    await session.refresh(ticket)
    return ticket


async def customer_timeline(
    session: AsyncSession, customer: Customer, *, limit: int = TIMELINE_LIMIT
) -> tuple[list[Ticket], Timeline]:
    """A customer's tickets (newest first) and everything that happened with them (oldest
    first): their own events and those of all their tickets, with each message's text."""
    tickets = await service.tickets_of_customer(session, customer.id)
    by_id = {t.id: t for t in tickets}
    subjects = [("customer", str(customer.id))] + [("ticket", str(t.id)) for t in tickets]
    found = await events.timeline(session, subjects=subjects, limit=limit + 1)
    truncated = len(found) > limit
    found = found[-limit:]
    message_ids = [
        int(e.data["message_id"])
        for e in found
        if e.kind == "message.added" and isinstance(e.data.get("message_id"), int)
    ]
    messages = await _messages(session, message_ids)
    user_ids: list[int | None] = [_int(e.actor_id) for e in found if e.actor_type == "user"]
    user_ids += [_int(e.data.get("assignee_id")) for e in found if e.kind == "assigned"]
    names = await _user_names(session, user_ids)
    people = await _customers(
        session,
        [_int(e.actor_id) for e in found if e.actor_type == "customer"]
        + [m.author_customer_id for m in messages.values()],
    )
    teams = {team.id: team.name for team, _ in await auth.list_teams(session)}
    entries = []
    for event in found:
        ticket = by_id.get(int(event.subject_id)) if event.subject_type == "ticket" else None
        message = messages.get(event.data.get("message_id", 0))
        extra: dict[str, str] = {}
        if event.kind == "assigned":
            assignee = _int(event.data.get("assignee_id"))
            team = _int(event.data.get("team_id"))
            extra["assignee"] = names.get(assignee, "nobody") if assignee else "nobody"
            extra["team"] = teams.get(team, f"team #{team}") if team else ""
        entries.append(
            Entry(
                event=event,
                actor=_actor(event, names, people),
                ticket=ticket,
                message=message,
                names=extra,
            )
        )
    return tickets, Timeline(entries=entries, truncated=truncated)


async def _messages(session: AsyncSession, ids: list[int]) -> dict[int, Message]:
    if not ids:
        return {}
    rows = await session.scalars(select(Message).where(Message.id.in_(ids)))
    return {m.id: m for m in rows}


def _int(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _actor(event: Event, names: dict[int, str], people: dict[int, Customer]) -> str:
    actor_id = _int(event.actor_id)
    if event.actor_type == "user" and actor_id is not None:
        return names.get(actor_id, f"User #{actor_id}")
    if event.actor_type == "customer" and actor_id is not None and actor_id in people:
        return people[actor_id].name
    if event.actor_type == "system":
        return f"System ({event.actor_id})" if event.actor_id else "System"
    return event.actor_type.title()
