"""Every change to live chats. Flushes; the caller commits.

A chat is a ticket of channel ``chat``: each line is a public message on it, so the
transcript stays on the ticket. ``ChatSession`` holds what only a live conversation has:
its state (waiting -> active -> ended, or waiting -> missed), the agent, and when the
visitor was last seen. Every state change records a ``chat.*`` event on the ticket and
rings the doorbell (``pg_notify``, delivered on commit) that wakes the sockets of every
server process (see ``chat.hub``).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, any_, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth import service as auth
from servicecycle.auth.models import Role, User
from servicecycle.chat.models import LIVE_STATES, ChatSession, ChatSettings
from servicecycle.customers import service as customers
from servicecycle.customers.models import Customer
from servicecycle.events.service import Actor, record
from servicecycle.kit import clock
from servicecycle.kit.errors import Conflict, NotFound, TooManyRequests, ValidationFailed
from servicecycle.kit.secrets import BadToken, Keyring
from servicecycle.tickets import content
from servicecycle.tickets import service as tickets
from servicecycle.tickets.models import Message, Ticket

NOTIFY_CHANNEL = "servicecycle_chat"
TOKEN_PURPOSE = "chat-visitor"  # noqa: S105 - a signing purpose, not a secret
TOKEN_DAYS = 30
MAX_LINE_CHARS = 2000  # one chat line; longer is refused with an error frame, nothing stored
MAX_NAME_CHARS = 120
RATE_LINES = 8  # at most this many lines from one visitor ...
RATE_WINDOW = timedelta(seconds=10)  # ... within this window
MAX_CHATS_PER_HOUR = 5  # new chats one visitor may open
MAX_CHATS_PER_ADDRESS = 30  # ... and one network address (new tokens cost nothing)
WAIT_LIMIT = timedelta(minutes=5)  # a waiting chat nobody takes is missed after this
GONE_AFTER = timedelta(minutes=10)  # a visitor not seen this long has left
DEFAULT_GREETING = "Hi! Ask us anything: an agent will answer here in a moment."
DEFAULT_OFFLINE = (
    "Nobody is online right now. Leave your e-mail address and your question: "
    "we will answer by e-mail."
)
SYSTEM = Actor.system("chat")


def visitor_actor(customer_id: int) -> Actor:
    return Actor("customer", str(customer_id))


# -- visitor tokens -------------------------------------------------------------------------


def issue_token(keyring: Keyring, visitor_id: str | None = None) -> tuple[str, str]:
    """(signed token for the browser, visitor id kept on their chats): a new visitor, or a
    fresh token for a returning one (so a visitor who keeps coming back keeps their chat)."""
    visitor_id = visitor_id or secrets.token_hex(16)
    expires = clock.now() + timedelta(days=TOKEN_DAYS)
    return keyring.sign(TOKEN_PURPOSE, {"v": visitor_id}, expires_at=expires), visitor_id


def client_key(keyring: Keyring, address: str | None) -> str | None:
    """A keyed hash of a client address: counts chats per address without storing it."""
    if not address:
        return None
    return keyring.sign("chat-client", {"a": address}, expires_at=None).rsplit(".", 1)[1][:64]


def read_token(keyring: Keyring, token: str) -> str:
    """The visitor id in a token made by :func:`issue_token`, or ``BadToken``."""
    payload = keyring.unsign(TOKEN_PURPOSE, token, now=clock.now())
    visitor_id = payload.get("v")
    if not isinstance(visitor_id, str) or not visitor_id:
        raise BadToken("invalid")
    return visitor_id


# -- checks ---------------------------------------------------------------------------------


def check_line(text_: object) -> str:
    """A chat line: text, not empty, at most MAX_LINE_CHARS characters."""
    if not isinstance(text_, str) or not text_.strip():
        raise ValidationFailed("Write a message first", fields={"text": "must not be empty"})
    if len(text_) > MAX_LINE_CHARS:
        raise ValidationFailed(
            f"Message too long: at most {MAX_LINE_CHARS} characters",
            fields={"text": f"at most {MAX_LINE_CHARS} characters"},
        )
    return text_.strip()


def _check_name(name: object) -> str:
    if name is None:
        return ""
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS:
        raise ValidationFailed("Name too long", fields={"name": f"at most {MAX_NAME_CHARS}"})
    return " ".join(name.split())


# -- reads ----------------------------------------------------------------------------------


async def agents_online(session: AsyncSession) -> int:
    """How many active agents or admins are ``online`` (their availability)."""
    # auth.service has no such read yet; this is the one read of auth's table here
    count = await session.scalar(
        select(func.count())
        .select_from(User)
        .where(
            User.availability == "online",
            User.is_active.is_(True),
            User.role.in_((Role.agent.value, Role.admin.value)),
        )
    )
    return int(count or 0)


async def current_chat(session: AsyncSession, visitor_id: str) -> ChatSession | None:
    """The visitor's latest chat they can still write in (not ended, ticket not closed)."""
    chat = await session.scalar(
        select(ChatSession)
        .where(ChatSession.visitor_id == visitor_id)
        .order_by(ChatSession.id.desc())
        .limit(1)
    )
    if chat is None or chat.state == "ended":
        return None
    ticket = await tickets.get_ticket(session, chat.ticket_id)
    if ticket.status == "closed" or ticket.merged_into_id is not None:
        return None
    return chat


async def last_chat(session: AsyncSession, visitor_id: str) -> ChatSession | None:
    """The visitor's latest chat, whatever its state (the one a rating is about)."""
    chat: ChatSession | None = await session.scalar(
        select(ChatSession)
        .where(ChatSession.visitor_id == visitor_id)
        .order_by(ChatSession.id.desc())
        .limit(1)
    )
    return chat


def check_rateable(chat: ChatSession | None) -> ChatSession:
    """A chat the visitor may rate: one that has ended (only a chat an agent took ends; one
    nobody answered is missed, asks no rating and refuses one: 409)."""
    if chat is None:
        raise NotFound("No chat to rate")
    if chat.state == "missed":
        raise Conflict("A chat nobody answered cannot be rated", fields={"chat": "missed"})
    if chat.state != "ended":
        raise Conflict("You can rate the chat once it has ended", fields={"chat": "not ended yet"})
    return chat


async def rated_ticket(session: AsyncSession, chat: ChatSession) -> Ticket:
    """The ticket a chat's rating is about: the chat's own, or, once an agent merged it, the
    ticket it lives on in, as long as that is still the visitor's (a merge into another
    customer's ticket leaves the rating on the visitor's own)."""
    own = ticket = await tickets.get_ticket(session, chat.ticket_id)
    seen = {ticket.id}
    while ticket.merged_into_id is not None and ticket.merged_into_id not in seen:
        ticket = await tickets.get_ticket(session, ticket.merged_into_id)
        seen.add(ticket.id)
    return ticket if ticket.requester_id == own.requester_id else own


async def get_chat(session: AsyncSession, ticket_id: int, *, lock: bool = False) -> ChatSession:
    stmt = select(ChatSession).where(ChatSession.ticket_id == ticket_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    chat = await session.scalar(stmt)
    if chat is None:
        raise NotFound(f"No chat on ticket {ticket_id}")
    return chat


async def chat_of_ticket(session: AsyncSession, ticket_id: int) -> ChatSession | None:
    return await session.scalar(select(ChatSession).where(ChatSession.ticket_id == ticket_id))


# one text whatever the number of tickets (an array, not an IN list)
_CHATS_OF_TICKETS = select(ChatSession).where(
    ChatSession.ticket_id == any_(bindparam("ids", type_=ARRAY(BigInteger)))
)


async def chats_of_tickets(session: AsyncSession, ticket_ids: list[int]) -> dict[int, ChatSession]:
    """``chat_of_ticket`` for many tickets in one query: the tickets that have a chat."""
    if not ticket_ids:
        return {}
    rows = await session.scalars(_CHATS_OF_TICKETS, {"ids": list(ticket_ids)})
    return {chat.ticket_id: chat for chat in rows}


@dataclass(frozen=True)
class Line:
    """A chat line as both sides see it: sanitised HTML only."""

    id: int
    ticket_id: int
    author: str  # visitor | agent
    name: str
    html: str
    at: datetime

    def frame(self) -> dict[str, object]:
        return {
            "type": "line",
            "ticket_id": self.ticket_id,
            "id": self.id,
            "from": self.author,
            "name": self.name,
            "html": self.html,
            "at": self.at.isoformat(),
        }


async def lines(session: AsyncSession, ticket_id: int, *, after_id: int = 0) -> list[Line]:
    """The public lines of a chat after ``after_id``, oldest first."""
    rows = list(
        (
            await session.scalars(
                select(Message)
                .where(
                    Message.ticket_id == ticket_id,
                    Message.public.is_(True),
                    Message.author_type.in_(("customer", "agent")),
                    Message.id > after_id,
                )
                .order_by(Message.id)
                .limit(500)
            )
        ).all()
    )
    users = {
        u.id: u.name
        for u in await auth.users_by_id(
            session, sorted({m.author_user_id for m in rows if m.author_user_id})
        )
    }
    names: dict[int, str] = {}
    for cid in sorted({m.author_customer_id for m in rows if m.author_customer_id}):
        names[cid] = (await customers.get_customer(session, cid)).name
    return [
        Line(
            id=m.id,
            ticket_id=ticket_id,
            author="agent" if m.author_type == "agent" else "visitor",
            name=users.get(m.author_user_id or 0, "Agent")
            if m.author_type == "agent"
            else names.get(m.author_customer_id or 0, "Visitor"),
            # sanitised when stored; cleaned again here, as it goes to other sites' pages
            html=content.sanitise_html(m.body_html),
            at=m.created_at,
        )
        for m in rows
    ]


@dataclass(frozen=True)
class ChatRow:
    """A chat on the agents' list."""

    ticket_id: int
    subject: str
    state: str
    visitor: str
    agent_id: int | None
    agent: str | None
    started_at: datetime
    last_line: str

    def item(self) -> dict[str, object]:
        return {
            "ticket_id": self.ticket_id,
            "subject": self.subject,
            "state": self.state,
            "visitor": self.visitor,
            "agent_id": self.agent_id,
            "agent": self.agent,
            "started_at": self.started_at.isoformat(),
            "last_line": self.last_line,
        }


async def list_chats(session: AsyncSession, *, live: bool = True, limit: int = 50) -> list[ChatRow]:
    """Waiting and active chats, oldest first (``live``), or the latest finished ones."""
    stmt = (
        select(ChatSession, Ticket, Customer)
        .join(Ticket, Ticket.id == ChatSession.ticket_id)
        .join(Customer, Customer.id == Ticket.requester_id)
    )
    if live:
        stmt = stmt.where(ChatSession.state.in_(LIVE_STATES)).order_by(ChatSession.started_at)
    else:
        stmt = stmt.where(ChatSession.state.not_in(LIVE_STATES)).order_by(
            ChatSession.started_at.desc()
        )
    found = (await session.execute(stmt.limit(limit))).all()
    agents = {
        u.id: u.name
        for u in await auth.users_by_id(
            session, sorted({c.agent_id for c, _, _ in found if c.agent_id})
        )
    }
    last: dict[int, str] = {}
    ids = [t.id for _, t, _ in found]
    if ids:
        latest = (
            select(Message.ticket_id, func.max(Message.id).label("mid"))
            .where(Message.ticket_id.in_(ids), Message.public.is_(True))
            .group_by(Message.ticket_id)
            .subquery()
        )
        for ticket_id, body in await session.execute(
            select(Message.ticket_id, Message.body_text).join(latest, Message.id == latest.c.mid)
        ):
            last[ticket_id] = body[:140]
    return [
        ChatRow(
            ticket_id=t.id,
            subject=t.subject,
            state=c.state,
            visitor=cu.name,
            agent_id=c.agent_id,
            agent=agents.get(c.agent_id) if c.agent_id else None,
            started_at=c.started_at,
            last_line=last.get(t.id, ""),
        )
        for c, t, cu in found
    ]


async def email_known(session: AsyncSession, ticket: Ticket) -> bool:
    found = await customers.identities_of(session, [ticket.requester_id])
    return any(i.kind == "email" for i in found[ticket.requester_id])


# -- the doorbell ---------------------------------------------------------------------------


async def notify(session: AsyncSession, ticket_id: int, kind: str) -> None:
    """Wake every process's sockets for this chat once the transaction commits."""
    payload = json.dumps({"t": ticket_id, "k": kind})
    await session.execute(text("SELECT pg_notify(:c, :p)"), {"c": NOTIFY_CHANNEL, "p": payload})


# the payloads in the array's order, in one statement whatever their number
_NOTIFY_MANY = text(
    "SELECT pg_notify(:c, p) FROM jsonb_array_elements_text(CAST(:ps AS jsonb)) "
    "WITH ORDINALITY AS u(p, n) ORDER BY n"
)


async def notify_many(session: AsyncSession, ticket_ids: list[int], kind: str) -> None:
    """``notify`` for each ticket, in order, in one statement."""
    if ticket_ids:
        payloads = [json.dumps({"t": ticket_id, "k": kind}) for ticket_id in ticket_ids]
        # one JSON list of the payloads: a text array costs the driver an escape per element
        await session.execute(_NOTIFY_MANY, {"c": NOTIFY_CHANNEL, "ps": json.dumps(payloads)})


# -- changes --------------------------------------------------------------------------------


async def _visitor_customer(
    session: AsyncSession, *, visitor_id: str, name: str, email: str | None
) -> Customer:
    if email:
        return await customers.find_or_create_by_email(
            session, email=email, name=name, actor=SYSTEM
        )
    external = f"chat:{visitor_id}"
    found = await customers.find_by_identity(session, "external", external)
    if found is not None:
        return found
    return await customers.create_customer(
        session, name=name or "Chat visitor", external_ids=[external], actor=SYSTEM
    )


async def start_chat(
    session: AsyncSession,
    *,
    visitor_id: str,
    name: object,
    email: object,
    text_: object,
    origin: str | None,
    client: str | None = None,
) -> ChatSession:
    """The visitor's first line opens a ticket (channel ``chat``) and a waiting chat; with
    no agent online the chat is missed at once and needs an e-mail address to answer to."""
    line = check_line(text_)
    clean_name = _check_name(name)
    address: str | None = None
    if email not in (None, ""):
        if not isinstance(email, str):
            raise ValidationFailed("Invalid e-mail address", fields={"email": "not text"})
        address = customers.normalise_identity("email", email)
    online = await agents_online(session)
    if not online and address is None:
        raise ValidationFailed(
            "Nobody is online: leave your e-mail address so we can answer",
            fields={"email": "required while no agent is online"},
        )
    recent = await session.scalar(
        select(func.count())
        .select_from(ChatSession)
        .where(
            ChatSession.visitor_id == visitor_id,
            ChatSession.started_at > clock.now() - timedelta(hours=1),
        )
    )
    if (recent or 0) >= MAX_CHATS_PER_HOUR:
        raise TooManyRequests("Too many chats started; please wait a while", retry_after=600)
    if client is not None:
        from_there = await session.scalar(
            select(func.count())
            .select_from(ChatSession)
            .where(
                ChatSession.client_key == client,
                ChatSession.started_at > clock.now() - timedelta(hours=1),
            )
        )
        if (from_there or 0) >= MAX_CHATS_PER_ADDRESS:
            raise TooManyRequests(
                "Too many chats started from your network; please wait a while",
                retry_after=600,
            )
    customer = await _visitor_customer(
        session, visitor_id=visitor_id, name=clean_name, email=address
    )
    subject = " ".join(line.split())
    subject = f"Chat: {subject[:80]}{'…' if len(subject) > 80 else ''}"
    ticket, _ = await tickets.create_ticket(
        session,
        subject=subject,
        requester=customer,
        channel="chat",
        body_text=line,
        actor=visitor_actor(customer.id),
    )
    now = clock.now()
    chat = ChatSession(
        ticket_id=ticket.id,
        visitor_id=visitor_id,
        state="waiting",
        origin=(origin or None) and (origin or "")[:300],
        client_key=client,
        started_at=now,
        last_seen_at=now,
    )
    session.add(chat)
    await session.flush()
    await record(
        session,
        "chat.started",
        subject_type="ticket",
        subject_id=ticket.id,
        actor=visitor_actor(customer.id),
        occurred_at=now,
        data={"chat_id": chat.id, "origin": chat.origin, "agents_online": online},
    )
    if not online:
        await _set_missed(session, chat, reason="no agent online")
    await notify(session, ticket.id, "state")
    return chat


async def _set_missed(session: AsyncSession, chat: ChatSession, *, reason: str) -> None:
    chat.state, chat.ended_at = "missed", clock.now()
    await session.flush()
    await record(
        session,
        "chat.missed",
        subject_type="ticket",
        subject_id=chat.ticket_id,
        actor=SYSTEM,
        data={"chat_id": chat.id, "reason": reason},
    )


async def visitor_says(session: AsyncSession, chat: ChatSession, text_: object) -> Message:
    """A visitor's line on their chat (at most RATE_LINES per RATE_WINDOW)."""
    line = check_line(text_)
    if chat.state == "ended":
        raise Conflict("This chat has ended; start a new one", fields={"chat": "ended"})
    ticket = await tickets.get_ticket(session, chat.ticket_id)
    recent = await session.scalar(
        select(func.count())
        .select_from(Message)
        .where(
            Message.ticket_id == ticket.id,
            Message.author_type == "customer",
            Message.created_at > clock.now() - RATE_WINDOW,
        )
    )
    if (recent or 0) >= RATE_LINES:
        raise TooManyRequests(
            "You are writing too fast; wait a few seconds",
            retry_after=int(RATE_WINDOW.total_seconds()),
        )
    message = await tickets.add_message(
        session,
        ticket,
        public=True,
        author_type="customer",
        author_customer_id=ticket.requester_id,
        body_text=line,
        channel="chat",
        actor=visitor_actor(ticket.requester_id),
    )
    chat.last_seen_at = clock.now()
    await session.flush()
    return message


async def give_email(session: AsyncSession, chat: ChatSession, email: object) -> None:
    """The visitor's e-mail address, so replies can reach them by mail.

    An anonymous visitor gets it as an identity; if the address already belongs to a
    customer, the visitor is merged into that customer (as mail from that address would)."""
    if not isinstance(email, str):
        raise ValidationFailed("Invalid e-mail address", fields={"email": "not text"})
    address = customers.normalise_identity("email", email)
    ticket = await tickets.get_ticket(session, chat.ticket_id)
    if await email_known(session, ticket):
        return
    visitor = await customers.get_customer(session, ticket.requester_id)
    actor = visitor_actor(visitor.id)
    owner = await customers.find_by_identity(session, "email", address)
    if owner is None:
        await customers.add_identity(session, visitor, kind="email", value=address, actor=actor)
    elif owner.id != visitor.id:
        await customers.merge_into(session, visitor, owner, actor=actor)
        await tickets.move_requester(session, from_id=visitor.id, to_id=owner.id, actor=actor)
    await notify(session, chat.ticket_id, "state")


async def take(session: AsyncSession, ticket_id: int, agent: User) -> ChatSession:
    """An agent takes a waiting chat (and its ticket); two agents at once: one wins."""
    chat = await get_chat(session, ticket_id, lock=True)
    if chat.state == "active" and chat.agent_id == agent.id:
        return chat
    if chat.state != "waiting":
        raise Conflict(
            "Someone else took this chat"
            if chat.state == "active"
            else f"This chat is {chat.state}; answer it from the ticket",
            fields={"state": chat.state},
        )
    actor = Actor.user(agent.id)
    now = clock.now()
    chat.state, chat.agent_id, chat.taken_at = "active", agent.id, now
    await session.flush()
    ticket = await tickets.get_ticket(session, ticket_id)
    await tickets.assign(session, ticket, assignee_id=agent.id, team_id=ticket.team_id, actor=actor)
    await record(
        session,
        "chat.taken",
        subject_type="ticket",
        subject_id=ticket_id,
        actor=actor,
        occurred_at=now,
        data={"chat_id": chat.id, "agent_id": agent.id},
    )
    await notify(session, ticket_id, "state")
    return chat


async def agent_says(session: AsyncSession, ticket_id: int, agent: User, text_: object) -> Message:
    """The agent who took the chat answers in it."""
    line = check_line(text_)
    chat = await get_chat(session, ticket_id)
    if chat.state != "active" or chat.agent_id != agent.id:
        raise Conflict(
            "Take the chat first" if chat.state == "waiting" else "This chat is not yours",
            fields={"state": chat.state},
        )
    ticket = await tickets.get_ticket(session, ticket_id)
    return await tickets.add_message(
        session,
        ticket,
        public=True,
        author_type="agent",
        author_user_id=agent.id,
        body_text=line,
        channel="chat",
        actor=Actor.user(agent.id),
    )


async def end(session: AsyncSession, chat: ChatSession, *, by: str, actor: Actor) -> None:
    """The visitor left or the agent closed it: an active chat ends, a waiting one is
    missed. The transcript stays on the ticket."""
    if chat.state not in LIVE_STATES:
        return
    if chat.state == "waiting":
        await _set_missed(session, chat, reason=f"{by} left")
    else:
        chat.state, chat.ended_at = "ended", clock.now()
        await session.flush()
        await record(
            session,
            "chat.ended",
            subject_type="ticket",
            subject_id=chat.ticket_id,
            actor=actor,
            data={"chat_id": chat.id, "by": by},
        )
    await notify(session, chat.ticket_id, "state")


async def seen(session: AsyncSession, chat_id: int) -> None:
    """The visitor is still there (not a state change: no event)."""
    await session.execute(
        update(ChatSession).where(ChatSession.id == chat_id).values(last_seen_at=clock.now())
    )


async def sweep(session: AsyncSession, *, now: datetime | None = None) -> tuple[int, int]:
    """Chats nobody took in time are missed; chats whose visitor is gone end.
    Returns (missed, ended)."""
    now = now or clock.now()
    stale = list(
        (
            await session.scalars(
                select(ChatSession)
                .where(
                    ChatSession.state.in_(LIVE_STATES),
                    (
                        (ChatSession.state == "waiting")
                        & (ChatSession.started_at <= now - WAIT_LIMIT)
                    )
                    | (ChatSession.last_seen_at <= now - GONE_AFTER),
                )
                .order_by(ChatSession.id)
                .limit(500)
                .with_for_update(skip_locked=True)
            )
        ).all()
    )
    missed = ended = 0
    for chat in stale:
        if chat.state == "waiting":
            await _set_missed(session, chat, reason="not answered")
            missed += 1
        else:
            await end(session, chat, by="timeout", actor=SYSTEM)
            ended += 1
            continue
        await notify(session, chat.ticket_id, "state")
    return missed, ended


# -- what the widget says -------------------------------------------------------------------


@dataclass(frozen=True)
class Texts:
    greeting: str
    offline_text: str


async def texts(session: AsyncSession) -> Texts:
    row = await session.get(ChatSettings, 1)
    if row is None:
        return Texts(DEFAULT_GREETING, DEFAULT_OFFLINE)
    return Texts(row.greeting, row.offline_text)


async def update_texts(
    session: AsyncSession, *, greeting: str, offline_text: str, actor: Actor
) -> Texts:
    greeting, offline_text = greeting.strip(), offline_text.strip()
    for field, value in (("greeting", greeting), ("offline_text", offline_text)):
        if not value or len(value) > 500:
            raise ValidationFailed("Invalid text", fields={field: "1-500 characters"})
    row = await session.get(ChatSettings, 1)
    if row is None:
        row = ChatSettings(id=1, greeting=greeting, offline_text=offline_text)
        session.add(row)
    else:
        row.greeting, row.offline_text, row.updated_at = greeting, offline_text, clock.now()
    await session.flush()
    await record(
        session,
        "chat.settings_changed",
        subject_type="chat_settings",
        subject_id=1,
        actor=actor,
        data={"greeting": greeting, "offline_text": offline_text},
    )
    return Texts(greeting, offline_text)
