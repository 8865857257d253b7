"""The two WebSocket protocols: visitors (the widget) and agents (the /chat page).

Frames are JSON objects with a ``type``. Each client frame runs in its own short
transaction; a refused frame (``error`` frame back) stores nothing. Sockets never hold a
transaction while they wait. News reaches a socket through the hub (``chat.hub``); the
socket then reads what is new from the tables, from the last message id it sent.

Visitor -> server: ``hello {token?}`` (first), ``start {name, email?, text}``,
``say {text}``, ``email {email}``, ``end``, ``rate {score, comment?}`` (once the chat has
ended; again to change it), ``ping``.
Server -> visitor: ``welcome {token, agents_online, greeting, offline_text, max_chars,
chat?, lines}``, ``line``, ``state {state, agent, email_known}``, ``rating {kind, question,
why_question, scale_min, scale_max, low_label, high_label, score, comment}`` (after an
ended chat, when the desk asks for CSAT), ``rated {kind, score, comment}``, ``error {code,
message, fields}``.

Agent -> server: ``watch {ticket_id}``, ``take {ticket_id}``, ``say {ticket_id, text}``,
``end {ticket_id}``. Server -> agent: ``chats {items}``, ``transcript``, ``line``,
``state``, ``error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import structlog
from fastapi import WebSocket, WebSocketDisconnect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.auth import service as auth
from servicecycle.auth.deps import SESSION_COOKIE
from servicecycle.auth.models import Role
from servicecycle.chat import service
from servicecycle.chat.hub import EVERYTHING, LOBBY, Hub, Subscription
from servicecycle.chat.models import ChatSession
from servicecycle.db.engine import libpq_url
from servicecycle.events.service import Actor
from servicecycle.kit.errors import NotFound, ServiceError, ValidationFailed
from servicecycle.kit.secrets import BadToken
from servicecycle.runtime import Runtime
from servicecycle.surveys import in_place
from servicecycle.tickets import service as tickets

log = structlog.get_logger(__name__)

MAX_FRAME_CHARS = 8 * 1024  # a frame bigger than any valid one is refused unread
HEARTBEAT_SECONDS = 25.0
HELLO_TIMEOUT = 15.0
# close codes (4000-4999 are the application's)
CLOSE_BAD_TOKEN = 4401
CLOSE_FORBIDDEN = 4403
CHAT_RATING = ("csat",)  # what the widget asks at the end of a chat


def _runtime(ws: WebSocket) -> Runtime:
    rt: Runtime = ws.app.state.runtime
    return rt


_hub_lock = asyncio.Lock()


async def get_hub(ws: WebSocket) -> Hub:
    """This process's hub, started on the first socket (stopped by the router's lifespan)."""
    state = ws.app.state
    hub: Hub | None = getattr(state, "chat_hub", None)
    if hub is None:
        async with _hub_lock:
            hub = getattr(state, "chat_hub", None)
            if hub is None:
                hub = Hub(libpq_url(_runtime(ws).database_url), service.NOTIFY_CHANNEL)
                await hub.start()
                state.chat_hub = hub
    return hub


def allowed_origins(ws: WebSocket) -> str:
    """``chat_allowed_origins``: ``*`` or a comma-separated list of origins."""
    return _runtime(ws).settings.chat_allowed_origins or "*"


def origin_allowed(origin: str | None, setting: str) -> bool:
    """Whether a page on ``origin`` may open a visitor socket."""
    if setting.strip() == "*":
        return True
    if not origin:
        return False
    wanted = {o.strip().rstrip("/").lower() for o in setting.split(",") if o.strip()}
    return origin.rstrip("/").lower() in wanted


def same_origin(ws: WebSocket) -> bool:
    """The agent socket only accepts our own pages (no cross-site socket hijacking)."""
    origin = ws.headers.get("origin")
    if not origin:
        return False
    parts = urlsplit(origin)
    base = getattr(_runtime(ws).settings, "base_url", None)
    if base and origin.rstrip("/").lower() == base.rstrip("/").lower():
        return True
    return parts.netloc.lower() == ws.headers.get("host", "").lower()


def error_frame(exc: ServiceError) -> dict[str, Any]:
    return {"type": "error", "code": exc.code, "message": exc.message, "fields": exc.fields}


@dataclass
class Conn:
    """One socket, sending from two tasks (reader and pusher) one frame at a time."""

    ws: WebSocket
    sessions: async_sessionmaker[AsyncSession]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_text(json.dumps(frame, default=str))

    async def frames(self) -> Any:
        """Client frames as dicts; an oversize or malformed one is answered, not used."""
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            raw = message.get("text")
            if raw is None:  # a binary frame: never ours
                async with self.lock:
                    await self.send(
                        {"type": "error", "code": "bad_frame", "message": "Send JSON text"}
                    )
                continue
            if len(raw) > MAX_FRAME_CHARS:
                async with self.lock:
                    await self.send(
                        {
                            "type": "error",
                            "code": "too_long",
                            "message": f"Message too long: at most {service.MAX_LINE_CHARS} "
                            "characters",
                            "fields": {"text": f"at most {service.MAX_LINE_CHARS} characters"},
                        }
                    )
                continue
            try:
                frame = json.loads(raw)
            except ValueError:
                frame = None
            if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
                async with self.lock:
                    await self.send(
                        {"type": "error", "code": "bad_frame", "message": "Not a chat frame"}
                    )
                continue
            yield frame


async def _run_both(reader: Awaitable[None], pusher: Awaitable[None]) -> None:
    """Run until either side stops (the client left, or the server closed)."""
    tasks = [asyncio.ensure_future(reader), asyncio.ensure_future(pusher)]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            if exc is not None and not isinstance(exc, WebSocketDisconnect):
                raise exc
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await task


# -- visitors -------------------------------------------------------------------------------


@dataclass
class VisitorState:
    visitor_id: str
    client: str | None = None  # keyed hash of the client's address
    chat_id: int | None = None
    ticket_id: int | None = None
    last_id: int = 0
    shown: tuple[str, str | None, bool] | None = None  # the state frame last sent
    offered: int | None = None  # the chat whose rating question was sent


async def visitor(ws: WebSocket) -> None:
    rt = _runtime(ws)
    if not origin_allowed(ws.headers.get("origin"), allowed_origins(ws)):
        await ws.close(code=CLOSE_FORBIDDEN)  # before accept: an HTTP 403
        return
    await ws.accept()
    conn = Conn(ws, rt.sessions)
    try:
        hello = json.loads(await asyncio.wait_for(ws.receive_text(), HELLO_TIMEOUT))
    except (TimeoutError, ValueError, KeyError, WebSocketDisconnect):
        with contextlib.suppress(Exception):
            await ws.close(code=1008)
        return
    if not isinstance(hello, dict) or hello.get("type") != "hello":
        await conn.send({"type": "error", "code": "bad_frame", "message": "Say hello first"})
        await ws.close(code=1008)
        return
    keyring = rt.settings.keyring()
    token = hello.get("token")
    if token:
        try:
            visitor_id = service.read_token(keyring, str(token))
        except BadToken as exc:
            await conn.send(
                {
                    "type": "error",
                    "code": "bad_token",
                    "message": "This chat link is not valid"
                    if exc.reason == "invalid"
                    else "This chat has expired",
                }
            )
            await ws.close(code=CLOSE_BAD_TOKEN)
            return
    else:
        visitor_id = None
    token, visitor_id = service.issue_token(keyring, visitor_id)
    address = ws.client.host if ws.client else None
    state = VisitorState(visitor_id=visitor_id, client=service.client_key(keyring, address))
    hub = await get_hub(ws)
    with hub.subscribe() as sub:
        async with rt.sessions() as session, session.begin():
            chat = await service.current_chat(session, visitor_id)
            online = await service.agents_online(session)
            texts = await service.texts(session)
            if chat is not None:
                state.chat_id, state.ticket_id = chat.id, chat.ticket_id
                sub.listen(f"ticket:{chat.ticket_id}")
                await service.seen(session, chat.id)
        await conn.send(
            {
                "type": "welcome",
                "token": token,
                "agents_online": online > 0,
                "greeting": texts.greeting,
                "offline_text": texts.offline_text,
                "max_chars": service.MAX_LINE_CHARS,
                "chat": chat is not None,
            }
        )
        await _visitor_sync(conn, state)

        async def read() -> None:
            async for frame in conn.frames():
                await _visitor_frame(conn, state, frame, origin=ws.headers.get("origin"), sub=sub)

        async def push() -> None:
            while True:
                woken = await sub.wait(HEARTBEAT_SECONDS)
                if woken:
                    await _visitor_sync(conn, state)
                elif state.chat_id is not None:
                    async with rt.sessions() as session, session.begin():
                        await service.seen(session, state.chat_id)

        await _run_both(read(), push())
    if state.chat_id is not None:  # the tab closed or reloaded: seen until now
        with contextlib.suppress(Exception):
            async with rt.sessions() as session, session.begin():
                await service.seen(session, state.chat_id)


async def _visitor_frame(
    conn: Conn,
    state: VisitorState,
    frame: dict[str, Any],
    *,
    origin: str | None,
    sub: Subscription,
) -> None:
    kind = frame["type"]
    started: ChatSession | None = None
    rated: dict[str, Any] | None = None
    try:
        async with conn.sessions() as session, session.begin():
            chat = await session.get(ChatSession, state.chat_id) if state.chat_id else None
            if kind == "start":
                if chat is not None and chat.state != "ended":
                    await service.visitor_says(session, chat, frame.get("text"))
                else:
                    started = await service.start_chat(
                        session,
                        visitor_id=state.visitor_id,
                        name=frame.get("name"),
                        email=frame.get("email"),
                        text_=frame.get("text"),
                        origin=origin,
                        client=state.client,
                    )
            elif kind == "ping":
                if chat is not None:
                    await service.seen(session, chat.id)
            elif chat is None:
                raise NotFound("Start a chat first")
            elif kind == "say":
                await service.visitor_says(session, chat, frame.get("text"))
            elif kind == "email":
                await service.give_email(session, chat, frame.get("email"))
            elif kind == "end":
                ticket = await tickets.get_ticket(session, chat.ticket_id)
                actor = service.visitor_actor(ticket.requester_id)
                await service.end(session, chat, by="visitor", actor=actor)
            elif kind == "rate":
                ticket = await service.rated_ticket(session, service.check_rateable(chat))
                response = await in_place.rate(
                    session,
                    ticket,
                    kind="csat",
                    score=frame.get("score"),
                    comment=frame.get("comment"),
                    source="chat",
                    kinds=CHAT_RATING,
                )
                rated = {
                    "type": "rated",
                    "kind": response.kind,
                    "score": response.score,
                    "comment": response.comment,
                }
            else:
                raise NotFound(f"Unknown frame type {kind!r}")
    except ServiceError as exc:
        async with conn.lock:
            await conn.send(error_frame(exc))
        return
    if started is not None:  # committed: from now on this socket follows that chat
        sub.listen(f"ticket:{started.ticket_id}")  # before reading, so nothing falls between
        state.chat_id, state.ticket_id, state.last_id = started.id, started.ticket_id, 0
    if rated is not None:  # committed
        async with conn.lock:
            await conn.send(rated)
    await _visitor_sync(conn, state)


async def _visitor_sync(conn: Conn, state: VisitorState) -> None:
    """Send the visitor what is new on their chat: lines after the last one, and its state."""
    if state.ticket_id is None:
        return
    async with conn.lock:
        async with conn.sessions() as session, session.begin():
            chat = await session.get(ChatSession, state.chat_id)
            if chat is None:
                return
            new = await service.lines(session, state.ticket_id, after_id=state.last_id)
            agent = None
            if chat.agent_id is not None:
                agent = (await auth.get_user(session, chat.agent_id)).name
            ticket_email = await service.email_known(
                session, await tickets.get_ticket(session, chat.ticket_id)
            )
            shown = (chat.state, agent, ticket_email)
            rating = None
            if chat.state == "ended" and state.offered != chat.id:
                ticket = await service.rated_ticket(session, chat)
                found = await in_place.offers(session, ticket, kinds=CHAT_RATING)
                rating = found[0] if found else None
        for line in new:
            await conn.send(line.frame())
            state.last_id = max(state.last_id, line.id)
        if shown != state.shown:
            state.shown = shown
            await conn.send(
                {"type": "state", "state": shown[0], "agent": shown[1], "email_known": shown[2]}
            )
        if chat.state == "ended" and state.offered != chat.id:
            state.offered = chat.id
            if rating is not None:
                await conn.send({"type": "rating", **rating.frame()})


# -- agents ---------------------------------------------------------------------------------


@dataclass
class AgentState:
    user_id: int
    name: str
    cookie: str
    watching: int | None = None
    last_id: int = 0


async def agent(ws: WebSocket) -> None:
    rt = _runtime(ws)
    if not same_origin(ws):
        await ws.close(code=CLOSE_FORBIDDEN)
        return
    cookie = ws.cookies.get(SESSION_COOKIE)
    user_id = name = None
    if cookie:
        async with rt.sessions() as session, session.begin():
            resolved = await auth.resolve_session(session, cookie)
            if resolved is not None and resolved[1].role in (Role.agent, Role.admin):
                user_id, name = resolved[1].id, resolved[1].name
    if user_id is None or name is None:
        await ws.close(code=CLOSE_FORBIDDEN)
        return
    await ws.accept()
    conn = Conn(ws, rt.sessions)
    state = AgentState(user_id=user_id, name=name, cookie=cookie or "")
    hub = await get_hub(ws)
    with hub.subscribe(LOBBY) as sub:
        await _agent_list(conn)

        async def read() -> None:
            async for frame in conn.frames():
                await _agent_frame(conn, state, frame)

        async def push() -> None:
            while True:
                woken = await sub.wait(HEARTBEAT_SECONDS)
                if not woken:
                    continue
                await _agent_list(conn)
                if state.watching is not None and (
                    EVERYTHING in woken or f"ticket:{state.watching}" in woken
                ):
                    await _agent_sync(conn, state)

        await _run_both(read(), push())


async def _agent_list(conn: Conn) -> None:
    async with conn.lock:
        async with conn.sessions() as session, session.begin():
            live = await service.list_chats(session, live=True)
        await conn.send({"type": "chats", "items": [row.item() for row in live]})


def _ticket_id(frame: dict[str, Any]) -> int:
    value = frame.get("ticket_id")
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationFailed("Which chat?", fields={"ticket_id": "a ticket number"})
    return value


async def _agent_frame(conn: Conn, state: AgentState, frame: dict[str, Any]) -> None:
    kind = frame["type"]
    try:
        async with conn.sessions() as session, session.begin():
            # every frame: still signed in (not signed out, expired or demoted)?
            resolved = await auth.resolve_session(session, state.cookie)
            if resolved is None or resolved[1].role not in (Role.agent, Role.admin):
                await conn.ws.close(code=CLOSE_FORBIDDEN)
                return
            user = resolved[1]
            if kind == "watch":
                ticket_id = _ticket_id(frame)
                await service.get_chat(session, ticket_id)
                state.watching, state.last_id = ticket_id, 0
            elif kind == "take":
                await service.take(session, _ticket_id(frame), user)
            elif kind == "say":
                await service.agent_says(session, _ticket_id(frame), user, frame.get("text"))
            elif kind == "end":
                chat = await service.get_chat(session, _ticket_id(frame), lock=True)
                await service.end(session, chat, by="agent", actor=Actor.user(user.id))
            else:
                raise NotFound(f"Unknown frame type {kind!r}")
    except ServiceError as exc:
        async with conn.lock:
            await conn.send(error_frame(exc))
        return
    if kind == "watch":
        async with conn.lock:
            await conn.send({"type": "transcript", "ticket_id": state.watching})
    await _agent_sync(conn, state)


async def _agent_sync(conn: Conn, state: AgentState) -> None:
    if state.watching is None:
        return
    async with conn.lock:
        async with conn.sessions() as session, session.begin():
            ticket_id = state.watching
            chat = await service.get_chat(session, ticket_id)
            new = await service.lines(session, ticket_id, after_id=state.last_id)
            agent = (await auth.get_user(session, chat.agent_id)).name if chat.agent_id else None
            info = {
                "type": "state",
                "ticket_id": ticket_id,
                "state": chat.state,
                "agent": agent,
                "agent_id": chat.agent_id,
                "mine": chat.agent_id == state.user_id,
            }
        for line in new:
            await conn.send(line.frame())
            state.last_id = max(state.last_id, line.id)
        await conn.send(info)
