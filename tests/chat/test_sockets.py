"""Live chat over real WebSockets against a real server and database."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import func, select
from websockets.exceptions import ConnectionClosed, InvalidStatus

from servicecycle.channels.models import OutboundMail
from servicecycle.chat import service
from servicecycle.chat.models import ChatSession
from servicecycle.customers import service as customers
from servicecycle.events.models import Event
from servicecycle.tickets.models import Message, Ticket
from tests.chat.conftest import Desk


async def _rows(desk: Desk, stmt: Any) -> list[Any]:
    async with desk.sessions() as session:
        return list((await session.scalars(stmt)).all())


async def _kinds(desk: Desk, ticket_id: int) -> list[str]:
    return await _rows(
        desk,
        select(Event.kind)
        .where(Event.subject_type == "ticket", Event.subject_id == str(ticket_id))
        .order_by(Event.id),
    )


async def _start(desk: Desk, text: str = "Hello, is my order on its way?", **extra: Any) -> Any:
    visitor = await desk.visitor()
    welcome = await visitor.hello()
    await visitor.send(type="start", name="Vera Visitor", text=text, **extra)
    line = await visitor.until("line")
    chat = (await _rows(desk, select(ChatSession).order_by(ChatSession.id.desc())))[0]
    return visitor, welcome, line, chat


async def test_a_visitor_starts_a_chat_which_is_a_ticket_with_its_message_and_events(
    desk: Desk,
) -> None:
    await desk.user("agent")
    visitor, welcome, line, chat = await _start(desk)

    assert welcome["agents_online"] is True and welcome["token"] and welcome["chat"] is False
    assert line["from"] == "visitor" and "Hello, is my order on its way?" in line["html"]
    assert (await visitor.until("state"))["state"] == "waiting"
    ticket = (await _rows(desk, select(Ticket).where(Ticket.id == chat.ticket_id)))[0]
    assert ticket.channel == "chat" and ticket.subject.startswith("Chat: Hello")
    messages = await _rows(desk, select(Message).where(Message.ticket_id == ticket.id))
    assert [(m.author_type, m.public, m.body_text) for m in messages] == [
        ("customer", True, "Hello, is my order on its way?")
    ]
    assert chat.state == "waiting" and chat.origin == "https://shop.example"
    assert await _kinds(desk, ticket.id) == ["ticket.created", "message.added", "chat.started"]
    # an anonymous visitor is a customer known by the visitor id in their token
    async with desk.sessions() as session:
        found = await customers.find_by_identity(session, "external", f"chat:{chat.visitor_id}")
        assert found is not None and found.name == "Vera Visitor"
    await visitor.close()


async def test_an_agent_takes_the_chat_and_the_visitor_sees_the_reply_at_once(desk: Desk) -> None:
    agent_user = await desk.user("agent", name="Ana")
    visitor, _, _, chat = await _start(desk)
    agent = await desk.agent(agent_user.email)

    listed = await agent.until("chats")
    assert [(c["ticket_id"], c["state"], c["visitor"]) for c in listed["items"]] == [
        (chat.ticket_id, "waiting", "Vera Visitor")
    ]
    await agent.send(type="watch", ticket_id=chat.ticket_id)
    seen = await agent.until("line")
    assert seen["from"] == "visitor" and "my order" in seen["html"]
    await agent.send(type="take", ticket_id=chat.ticket_id)
    assert (await agent.until("state", state="active"))["mine"] is True
    joined = await visitor.until("state", state="active")
    assert joined["agent"] == "Ana"

    await agent.send(type="say", ticket_id=chat.ticket_id, text="Hi Vera, <b>yes</b>: tomorrow.")
    reply = await visitor.until("line", **{"from": "agent"})
    assert reply["name"] == "Ana"
    # plain text is escaped, never markup
    assert "&lt;b&gt;yes&lt;/b&gt;" in reply["html"] and "<b>" not in reply["html"]

    await visitor.send(type="say", text="Great, thanks!")
    back = await agent.until("line", **{"from": "visitor"})
    assert "Great, thanks!" in back["html"]

    ticket = (await _rows(desk, select(Ticket).where(Ticket.id == chat.ticket_id)))[0]
    assert ticket.assignee_id == agent_user.id
    kinds = await _kinds(desk, chat.ticket_id)
    assert "chat.taken" in kinds and "assigned" in kinds
    assert kinds.count("message.added") == 3

    # a second agent cannot take it any more
    other = await desk.user("agent", name="Bo")
    second = await desk.agent(other.email)
    await second.send(type="take", ticket_id=chat.ticket_id)
    refused = await second.until("error")
    assert refused["code"] == "conflict"
    await second.send(type="say", ticket_id=chat.ticket_id, text="me too")
    assert (await second.until("error"))["message"] == "This chat is not yours"

    # the visitor leaves: the chat ends, the transcript stays on the ticket
    await visitor.send(type="end")
    assert (await visitor.until("state"))["state"] == "ended"
    ended = (await _rows(desk, select(ChatSession).where(ChatSession.id == chat.id)))[0]
    assert ended.state == "ended" and ended.ended_at is not None
    assert (await _kinds(desk, chat.ticket_id))[-1] == "chat.ended"
    for socket in (visitor, agent, second):
        await socket.close()


async def test_a_reload_resumes_the_chat_with_its_transcript(desk: Desk) -> None:
    await desk.user("agent")
    visitor, welcome, _, _ = await _start(desk, text="First line")
    await visitor.send(type="say", text="Second line")
    await visitor.until("line", **{"from": "visitor"})
    await visitor.close()

    again = await desk.visitor()
    resumed = await again.hello(welcome["token"])
    assert resumed["chat"] is True
    first, second = await again.until("line"), await again.until("line")
    assert "First line" in first["html"] and "Second line" in second["html"]
    await again.close()
    # each visit hands out a fresh token (its expiry slides) for the same chat
    third = await desk.visitor()
    assert (await third.hello(resumed["token"]))["chat"] is True
    assert "First line" in (await third.until("line"))["html"]
    await third.close()


async def test_a_forged_token_is_refused_and_another_visitor_sees_nothing(desk: Desk) -> None:
    await desk.user("agent")
    visitor, welcome, _, chat = await _start(desk, text="My secret order 5521")
    token: str = welcome["token"]

    forged = await desk.visitor()
    data, mac = token.split(".")
    tampered = ("A" if data[5] != "A" else "B").join((data[:5], data[6:])) + "." + mac
    await forged.send(type="hello", token=tampered)
    refused = await forged.receive()
    assert refused["type"] == "error" and refused["code"] == "bad_token"
    with pytest.raises(ConnectionClosed) as closed:
        await forged.receive()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401

    # a token signed with the desk's own key for another purpose is no visitor token either
    other_purpose = desk.settings.keyring().sign("other", {"v": chat.visitor_id}, expires_at=None)
    reused = await desk.visitor()
    await reused.send(type="hello", token=other_purpose)
    assert (await reused.receive())["code"] == "bad_token"

    stranger = await desk.visitor()
    fresh = await stranger.hello()
    assert fresh["chat"] is False and fresh["token"] != token
    await stranger.send(type="say", text="show me")
    assert (await stranger.until("error"))["code"] == "not_found"
    # the first visitor keeps talking; the stranger hears nothing of it
    await visitor.send(type="say", text="Order 5521 again")
    await visitor.until("line", **{"from": "visitor"})
    await stranger.send(type="ping")
    await stranger.send(type="start", name="Sam", text="My own question")
    own = await stranger.until("line")
    assert "My own question" in own["html"]
    other_chat = (await _rows(desk, select(ChatSession).order_by(ChatSession.id.desc())))[0]
    assert other_chat.ticket_id != chat.ticket_id
    for socket in (visitor, stranger):
        await socket.close()


async def test_an_oversize_line_is_refused_and_nothing_is_stored(desk: Desk) -> None:
    await desk.user("agent")
    visitor, *_ = await _start(desk)
    before = await _rows(desk, select(func.count()).select_from(Message))

    await visitor.send(type="say", text="x" * (service.MAX_LINE_CHARS + 1))
    error = await visitor.until("error")
    assert error["code"] == "validation_error"
    assert error["fields"] == {"text": f"at most {service.MAX_LINE_CHARS} characters"}
    await visitor.socket.send("y" * 20_000)  # a frame bigger than any valid one
    assert (await visitor.until("error"))["code"] == "too_long"
    # an oversize first line opens nothing either
    newcomer = await desk.visitor()
    await newcomer.hello()
    await newcomer.send(type="start", name="N", text="z" * (service.MAX_LINE_CHARS + 1))
    assert (await newcomer.until("error"))["code"] == "validation_error"

    assert await _rows(desk, select(func.count()).select_from(Message)) == before
    assert len(await _rows(desk, select(ChatSession))) == 1
    for socket in (visitor, newcomer):
        await socket.close()


async def test_lines_are_rate_limited_per_visitor(desk: Desk) -> None:
    await desk.user("agent")
    visitor, _, _, chat = await _start(desk, text="line 1")
    for n in range(2, service.RATE_LINES + 1):
        await visitor.send(type="say", text=f"line {n}")
        await visitor.until("line", **{"from": "visitor"})
    await visitor.send(type="say", text="one too many")
    error = await visitor.until("error")
    assert error["code"] == "too_many_requests"
    stored = await _rows(
        desk, select(func.count()).select_from(Message).where(Message.ticket_id == chat.ticket_id)
    )
    assert stored == [service.RATE_LINES]
    await visitor.close()


async def test_with_no_agent_online_the_chat_falls_back_to_email(desk: Desk) -> None:
    away = await desk.user("agent", online=False, name="Ana")
    visitor = await desk.visitor()
    welcome = await visitor.hello()
    assert welcome["agents_online"] is False
    assert welcome["offline_text"] == service.DEFAULT_OFFLINE

    await visitor.send(type="start", name="Olga", text="Do you ship to Norway?")
    refused = await visitor.until("error")
    assert refused["fields"] == {"email": "required while no agent is online"}
    assert await _rows(desk, select(ChatSession)) == []

    await visitor.send(type="start", name="Olga", email="olga@example.no", text="Do you ship?")
    state = await visitor.until("state")
    assert state == {"type": "state", "state": "missed", "agent": None, "email_known": True}
    chat = (await _rows(desk, select(ChatSession)))[0]
    ticket = (await _rows(desk, select(Ticket).where(Ticket.id == chat.ticket_id)))[0]
    assert ticket.channel == "chat"  # the channel stays: replies go by mail from here
    assert await _kinds(desk, ticket.id) == [
        "ticket.created",
        "message.added",
        "chat.started",
        "chat.missed",
        "mail.queued",
    ]
    mails = await _rows(desk, select(OutboundMail).where(OutboundMail.ticket_id == ticket.id))
    assert [(m.kind, m.to_address) for m in mails] == [("acknowledgement", "olga@example.no")]
    assert "Do you ship?" in mails[0].body_text

    # the agent answers later from the ticket: the reply goes out by mail
    http = await desk.api(away.email)
    response = await http.post(
        f"/api/v1/tickets/{ticket.id}/messages", json={"kind": "reply", "body": "Yes, we do."}
    )
    assert response.status_code == 201, response.text
    await http.aclose()
    mails = await _rows(
        desk,
        select(OutboundMail).where(OutboundMail.ticket_id == ticket.id).order_by(OutboundMail.id),
    )
    assert [(m.kind, m.to_address, m.body_text) for m in mails][1:] == [
        ("reply", "olga@example.no", "Yes, we do.")
    ]
    await visitor.close()


async def test_an_email_given_later_reaches_the_customer(desk: Desk) -> None:
    await desk.user("agent")
    visitor, *_ = await _start(desk)
    await visitor.send(type="email", email="not-an-address")
    assert (await visitor.until("error"))["fields"] == {"email": "not an e-mail address"}
    await visitor.send(type="email", email="Vera@Example.com")
    assert (await visitor.until("state", email_known=True))["state"] == "waiting"
    async with desk.sessions() as session:
        found = await customers.find_by_identity(session, "email", "vera@example.com")
        assert found is not None and found.name == "Vera Visitor"
    await visitor.close()


async def test_an_agent_reply_from_the_ticket_api_reaches_the_visitor(desk: Desk) -> None:
    agent_user = await desk.user("agent", name="Ana")
    visitor, _, _, chat = await _start(desk)
    await visitor.until("state", state="waiting")
    http = await desk.api(agent_user.email)
    response = await http.post(
        f"/api/v1/tickets/{chat.ticket_id}/messages",
        json={
            "kind": "reply",
            "body_html": "<p>From the ticket page <script>alert(1)</script></p>",
        },
    )
    assert response.status_code == 201, response.text
    note = await http.post(
        f"/api/v1/tickets/{chat.ticket_id}/messages",
        json={"kind": "note", "body": "Internal: VIP customer"},
    )
    assert note.status_code == 201
    await http.aclose()
    line = await visitor.until("line", **{"from": "agent"})
    assert line["name"] == "Ana" and "From the ticket page" in line["html"]
    assert "<script" not in line["html"]
    # the internal note never reaches the visitor; nothing was mailed while live
    await visitor.send(type="say", text="ok")
    nxt = await visitor.until("line")
    assert "ok" in nxt["html"] and nxt["from"] == "visitor"
    assert (
        await _rows(desk, select(OutboundMail).where(OutboundMail.ticket_id == chat.ticket_id))
        == []
    )
    await visitor.close()


async def test_agent_socket_needs_a_signed_in_agent_on_our_own_origin(desk: Desk) -> None:
    from websockets.asyncio.client import connect

    with pytest.raises(InvalidStatus) as anonymous:
        await connect(desk.ws + "/chat/ws/agent", origin=desk.url)  # type: ignore[arg-type]
    assert anonymous.value.response.status_code == 403

    analyst = await desk.user("analyst", online=False, name="Ann")
    with pytest.raises(InvalidStatus):
        await desk.agent(analyst.email)

    agent_user = await desk.user("agent", name="Ana")
    agent = await desk.agent(agent_user.email)  # works from our own origin
    assert (await agent.until("chats"))["items"] == []
    await agent.close()
    from httpx import AsyncClient

    from tests.factories import sign_in

    async with AsyncClient(base_url=desk.url) as http:
        await sign_in(http, agent_user.email)
        cookie = http.cookies["sc_session"]
    with pytest.raises(InvalidStatus) as cross_site:
        await connect(
            desk.ws + "/chat/ws/agent",
            origin="https://evil.example",  # type: ignore[arg-type]
            additional_headers={"Cookie": f"sc_session={cookie}"},
        )
    assert cross_site.value.response.status_code == 403


async def test_the_widget_files_are_served_for_other_sites(desk: Desk) -> None:
    from httpx import AsyncClient

    async with AsyncClient(base_url=desk.url) as http:
        script = await http.get("/chat/widget.js")
        style = await http.get("/chat/widget.css")
    assert script.status_code == 200 and script.headers["content-type"].startswith(
        "text/javascript"
    )
    assert "/chat/ws/visitor" in script.text
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert script.headers["cross-origin-resource-policy"] == "cross-origin"


async def test_only_allowed_origins_may_open_a_visitor_socket(desk: Desk) -> None:
    desk.settings.chat_allowed_origins = "https://shop.example, https://www.example.com"
    with pytest.raises(InvalidStatus) as refused:
        await desk.visitor(origin="https://elsewhere.example")
    assert refused.value.response.status_code == 403
    allowed = await desk.visitor(origin="https://www.example.com")
    assert (await allowed.hello())["type"] == "welcome"
    await allowed.close()


async def test_lines_cross_between_server_processes(desk: Desk, second_desk: Desk) -> None:
    """The visitor on one server, the agent on another: LISTEN/NOTIFY carries the lines."""
    agent_user = await desk.user("agent", name="Ana")
    visitor, *_, chat = await _start(desk)
    agent = await second_desk.agent(agent_user.email)
    await agent.send(type="watch", ticket_id=chat.ticket_id)
    await agent.send(type="take", ticket_id=chat.ticket_id)
    await agent.until("state", state="active")
    await visitor.until("state", state="active")
    await agent.send(type="say", ticket_id=chat.ticket_id, text="Answer from the other server")
    line = await visitor.until("line", **{"from": "agent"})
    assert "Answer from the other server" in line["html"]
    await visitor.send(type="say", text="Got it")
    assert "Got it" in (await agent.until("line", **{"from": "visitor"}))["html"]
    await visitor.close()
    await agent.close()


async def test_an_agent_who_signs_out_is_cut_off(desk: Desk) -> None:
    agent_user = await desk.user("agent", name="Ana")
    visitor, *_, chat = await _start(desk)
    http = await desk.api(agent_user.email)
    cookie = http.cookies["sc_session"]
    from websockets.asyncio.client import connect

    socket = await connect(
        desk.ws + "/chat/ws/agent",
        origin=desk.url,  # type: ignore[arg-type]
        additional_headers={"Cookie": f"sc_session={cookie}"},
    )
    assert (await socket.recv()) is not None
    await http.post("/logout", data={"csrf_token": http.headers["X-CSRF-Token"]})
    await http.aclose()
    await socket.send(json.dumps({"type": "take", "ticket_id": chat.ticket_id}))
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(socket.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    async with desk.sessions() as session:
        still = await session.get(ChatSession, chat.id)
        assert still is not None and still.state == "waiting"
    await visitor.close()
