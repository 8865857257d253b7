"""What the agent workspace pages read: tickets with the names of the people on them.

Reads only. Each function gathers one page's facts from the services of this and lower
domains (auth, customers, events) so the pages stay a parse-call-render. SLA clocks and
macros belong to higher domains, which tickets may not import: the app lends their
functions to the workspace as ``Sources`` (see below).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth import service as auth
from servicecycle.auth.models import Role, Team, User
from servicecycle.customers import service as customers
from servicecycle.customers.models import Customer, CustomerIdentity
from servicecycle.events import service as events
from servicecycle.events.models import Event
from servicecycle.events.service import Actor
from servicecycle.kit.errors import NotFound
from servicecycle.tickets import attachments, custom_fields, service, views
from servicecycle.tickets.models import Attachment, CustomField, Message, SavedView, Ticket
from servicecycle.tickets.rules import OPEN_STATUSES, allowed_next

ASSIGNABLE = (Role.agent.value, Role.admin.value)
TIMELINE_LIMIT = 300
# events a customer's timeline leaves out: "mail.queued" already says the mail went, and
# "survey.sent" or "survey.skipped" what became of a scheduled survey
_UNTOLD = frozenset({"mail.sent", "survey.scheduled"})


# -- what higher domains lend the workspace -------------------------------------------------
# The import contracts keep tickets below sla and automation, so the workspace names only
# the shapes it needs. The app hands in the real functions (the sla.service and
# automation.macros modules fit these protocols as they are) as ``app.state.workspace``;
# a missing source hides its part of the pages.


class Clock(Protocol):
    """An SLA clock as the workspace shows it (sla.models.SlaClock fits)."""

    @property
    def metric(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def target_minutes(self) -> int: ...
    @property
    def business(self) -> bool: ...
    @property
    def used_minutes(self) -> float: ...
    @property
    def running_since(self) -> datetime | None: ...
    @property
    def due_at(self) -> datetime | None: ...
    @property
    def warn_at(self) -> datetime | None: ...
    @property
    def breached_at(self) -> datetime | None: ...
    @property
    def stopped_at(self) -> datetime | None: ...


class SlaReads(Protocol):
    async def clocks_of_many(
        self, session: AsyncSession, ticket_ids: list[int]
    ) -> Mapping[int, Sequence[Clock]]: ...

    async def order_by_due(
        self,
        session: AsyncSession,
        view: Select[Any],
        *,
        due_first: bool,
        only: str | None,
        now: datetime,
        soon: timedelta,
        offset: int,
        limit: int,
    ) -> list[int]: ...


class MacroChoice(Protocol):
    """A macro in the editor's list (automation.models.Macro fits)."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def public(self) -> bool: ...


class MacroText(Protocol):
    @property
    def body(self) -> str: ...
    @property
    def public(self) -> bool: ...


class Macros(Protocol):
    async def macros_for(self, session: AsyncSession, user_id: int) -> Sequence[MacroChoice]: ...

    async def get_macro(
        self, session: AsyncSession, macro_id: int, *, user_id: int
    ) -> MacroChoice: ...

    async def preview(
        self, session: AsyncSession, macro: Any, ticket: Ticket, *, agent_id: int
    ) -> MacroText: ...

    async def apply_macro(
        self,
        session: AsyncSession,
        macro: Any,
        ticket: Ticket,
        *,
        agent_id: int,
        body: str | None,
        actor: Actor,
    ) -> Message | None: ...


@dataclass(frozen=True)
class Sources:
    """Functions of higher domains the workspace may call; ``None`` hides that part."""

    sla: SlaReads | None = None
    macros: Macros | None = None


NO_SOURCES = Sources()


# -- SLA, as agents read it -------------------------------------------------------------------

WARN_UNDER = timedelta(minutes=30)
DUE_SOON = timedelta(hours=1)
SLA_FILTERS = {"at-risk": "Breached or due within 1 h", "breached": "Breached"}
METRIC_NAMES = {
    "first_reply": "First reply",
    "next_reply": "Next reply",
    "periodic_update": "Periodic update",
    "resolution": "Resolution",
}


@dataclass(frozen=True)
class SlaBadge:
    """The nearest target of a ticket: "2 h 10 m left", "overdue 35 m" or "paused"."""

    text: str
    tone: str  # ok | warning | breached | paused
    metric: str  # its name, e.g. "First reply"
    due_at: datetime | None


@dataclass(frozen=True)
class ClockLine:
    """One clock in the ticket page's SLA panel."""

    metric: str
    state: str
    tone: str
    due_at: datetime | None
    stopped_at: datetime | None
    used: str
    target: str
    business: bool
    left: str | None


def span(minutes: float) -> str:
    """Minutes as agents say them: "< 1 m", "35 m", "2 h 10 m", "3 d 4 h"."""
    whole = int(minutes)
    if whole < 1:
        return "< 1 m"
    days, rest = divmod(whole, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {mins} m" if mins else f"{hours} h"
    return f"{mins} m"


def _metric(clock: Clock) -> str:
    return METRIC_NAMES.get(clock.metric, clock.metric.replace("_", " ").capitalize())


def _timed(clocks: Iterable[Clock]) -> list[Clock]:
    """Clocks that still count towards a due time (running, or breached and not stopped)."""
    return [
        c
        for c in clocks
        if c.stopped_at is None and c.state in ("running", "breached") and c.due_at is not None
    ]


def _badge_of(clock: Clock, now: datetime) -> SlaBadge:
    assert clock.due_at is not None
    left = (clock.due_at - now).total_seconds() / 60
    if clock.state == "breached" or left <= 0:
        return SlaBadge(f"overdue {span(-left)}", "breached", _metric(clock), clock.due_at)
    warning = left < WARN_UNDER.total_seconds() / 60 or (
        clock.warn_at is not None and now >= clock.warn_at
    )
    tone = "warning" if warning else "ok"
    return SlaBadge(f"{span(left)} left", tone, _metric(clock), clock.due_at)


def sla_badge(clocks: Sequence[Clock], now: datetime) -> SlaBadge | None:
    """The nearest running (or overdue) target; "paused" when only paused ones are left."""
    timed = _timed(clocks)
    if timed:
        return _badge_of(min(timed, key=lambda c: c.due_at or now), now)
    paused = [c for c in clocks if c.stopped_at is None and c.state == "paused"]
    if paused:
        return SlaBadge("paused", "paused", _metric(paused[0]), None)
    return None


def clock_lines(clocks: Sequence[Clock], now: datetime) -> list[ClockLine]:
    lines = []
    for c in clocks:
        live = c.stopped_at is None and c.due_at is not None and c.state in ("running", "breached")
        badge = _badge_of(c, now) if live else None
        tone = badge.tone if badge else {"met": "ok", "breached": "breached"}.get(c.state, c.state)
        lines.append(
            ClockLine(
                metric=_metric(c),
                state="overdue" if badge and badge.tone == "breached" else c.state,
                tone=tone,
                due_at=c.due_at,
                stopped_at=c.stopped_at,
                used=_used(c, now),
                target=span(c.target_minutes),
                business=c.business,
                left=badge.text if badge else None,
            )
        )
    return lines


def _used(clock: Clock, now: datetime) -> str:
    """Time used so far. A running clock in business time adds working minutes only the
    calendar knows (sla's), so it says since when it counts instead."""
    before = span(clock.used_minutes) if clock.used_minutes >= 1 else "0 m"
    since = clock.running_since
    if clock.stopped_at is not None or since is None or clock.state not in ("running", "breached"):
        return before
    if not clock.business:
        return span(clock.used_minutes + max((now - since).total_seconds(), 0) / 60)
    moment = since.strftime("%d %b, %H:%M UTC")
    if clock.used_minutes < 1:
        return f"counting since {moment}"
    return f"{before}, counting again since {moment}"


_VIEW_ORDER = {
    "updated": Ticket.updated_at,
    "created": Ticket.created_at,
    "solved": Ticket.solved_at,
}


async def by_sla(
    session: AsyncSession,
    flt: service.TicketFilter,
    sla: SlaReads,
    *,
    due_first: bool,
    only: str | None,
    now: datetime,
    page: int,
    limit: int = 25,
) -> tuple[list[Ticket], bool, Mapping[int, Sequence[Clock]]]:
    """A page of a view ordered by SLA due time and/or narrowed to tickets at risk.

    sla orders and narrows the view in the database (tickets may not read sla's tables, so
    the view goes to it as a query of ids with their place in the view's own order); only
    the page's tickets and their clocks are read. Returns the tickets, whether there is a
    next page, and the clocks of those tickets.
    """
    key = _VIEW_ORDER.get(flt.sort, Ticket.updated_at)
    place = func.row_number().over(order_by=(key.desc().nulls_last(), Ticket.id.desc()))
    view = service.filtered(flt).with_only_columns(Ticket.id, place.label("pos"))
    start = (max(page, 1) - 1) * limit
    ids = await sla.order_by_due(
        session,
        view,
        due_first=due_first,
        only=only,
        now=now,
        soon=DUE_SOON,
        offset=start,
        limit=limit,
    )
    wanted = ids[:limit]
    found = {t.id: t for t in await session.scalars(select(Ticket).where(Ticket.id.in_(wanted)))}
    tickets = [found[i] for i in wanted if i in found]
    clocks = await sla.clocks_of_many(session, wanted)
    return tickets, len(ids) > limit, {i: clocks.get(i, ()) for i in wanted}


# -- the inbox --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the inbox."""

    ticket: Ticket
    requester: str
    assignee: str | None
    sla: SlaBadge | None = None


@dataclass(frozen=True)
class SavedEntry:
    """A saved view in the inbox's left column, with its live count."""

    view: SavedView
    count: int
    deletable: bool

    @property
    def shown(self) -> str:
        return service.shown_count(self.count)


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
    fields: list[CustomField]
    clocks: list[ClockLine] | None  # None: no SLA source
    macros: list[MacroChoice] | None  # None: no macro source


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


async def user_names(session: AsyncSession, ids: Iterable[int | None]) -> dict[int, str]:
    """Users' names by id (a missing user reads "User #id")."""
    wanted = sorted({i for i in ids if i is not None})
    found = {user.id: user.name for user in await auth.users_by_id(session, wanted)}
    return {i: found.get(i, f"User #{i}") for i in wanted}


async def customer_names(session: AsyncSession, ids: Iterable[int | None]) -> dict[int, str]:
    """Customers' names by id (customers that are gone are left out)."""
    return {i: c.name for i, c in (await _customers(session, ids)).items()}


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


async def inbox_rows(
    session: AsyncSession,
    tickets: list[Ticket],
    *,
    sla: SlaReads | None = None,
    clocks: Mapping[int, Sequence[Clock]] | None = None,
    now: datetime | None = None,
) -> list[Row]:
    """The inbox's lines; with an SLA source, each with its nearest target (one query)."""
    people = await _customers(session, (t.requester_id for t in tickets))
    names = await user_names(session, (t.assignee_id for t in tickets))
    if clocks is None and sla is not None and tickets:
        clocks = await sla.clocks_of_many(session, [t.id for t in tickets])
    return [
        Row(
            ticket=t,
            requester=people[t.requester_id].name if t.requester_id in people else "—",
            assignee=names.get(t.assignee_id) if t.assignee_id is not None else None,
            sla=sla_badge(clocks.get(t.id, ()), now) if clocks is not None and now else None,
        )
        for t in tickets
    ]


async def saved_views(session: AsyncSession, *, user_id: int, is_admin: bool) -> list[SavedEntry]:
    """The user's own and the shared views, each with its count (one count per view)."""
    entries = []
    for view in await views.views_for(session, user_id):
        total = await views.count(session, views.filter_from(view.filters))
        deletable = view.owner_id == user_id or (view.owner_id is None and is_admin)
        entries.append(SavedEntry(view=view, count=total, deletable=deletable))
    return entries


@dataclass(frozen=True)
class Looker:
    """Someone else with the ticket open."""

    name: str
    replying: bool


async def lookers(session: AsyncSession, others: Sequence[views.Viewer]) -> list[Looker]:
    names = await user_names(session, (v.user_id for v in others))
    return [Looker(name=names[v.user_id], replying=v.replying) for v in others]


async def ticket_view(
    session: AsyncSession,
    ticket: Ticket,
    *,
    user_id: int,
    now: datetime,
    sources: Sources = NO_SOURCES,
) -> TicketView:
    messages = await service.thread(session, ticket)
    people = await _customers(
        session, [ticket.requester_id, *(m.author_customer_id for m in messages)]
    )
    names = await user_names(session, [ticket.assignee_id, *(m.author_user_id for m in messages)])
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
        fields=await custom_fields.list_fields(session),
        clocks=clock_lines((await sources.sla.clocks_of_many(session, [ticket.id]))[ticket.id], now)
        if sources.sla is not None
        else None,
        macros=list(await sources.macros.macros_for(session, user_id))
        if sources.macros is not None
        else None,
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
    """A customer's tickets and everything that happened with them, both newest first:
    their own events and those of all their tickets, with each message's text (not the
    bookkeeping that repeats another line: a queued mail's delivery, a survey's scheduling)."""
    tickets = await service.tickets_of_customer(session, customer.id)
    by_id = {t.id: t for t in tickets}
    subjects = [("customer", str(customer.id))] + [("ticket", str(t.id)) for t in tickets]
    found = await events.timeline(session, subjects=subjects, limit=limit + 1)
    truncated = len(found) > limit
    found = [e for e in found[-limit:] if e.kind not in _UNTOLD]
    message_ids = [
        int(e.data["message_id"])
        for e in found
        if e.kind == "message.added" and isinstance(e.data.get("message_id"), int)
    ]
    messages = await _messages(session, message_ids)
    user_ids: list[int | None] = [_int(e.actor_id) for e in found if e.actor_type == "user"]
    user_ids += [_int(e.data.get("assignee_id")) for e in found if e.kind == "assigned"]
    names = await user_names(session, user_ids)
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
    entries.reverse()
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
