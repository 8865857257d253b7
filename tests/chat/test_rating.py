"""The rating at the end of a chat, over real WebSockets against a real server."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient
from sqlalchemy import select

from servicecycle.auth import service as auth
from servicecycle.chat.models import ChatSession
from servicecycle.customers.models import Customer
from servicecycle.events.models import Event
from servicecycle.followups.models import FollowUp
from servicecycle.surveys import service as surveys
from servicecycle.surveys.models import SurveyInvitation, SurveyResponse
from servicecycle.tickets import merging
from servicecycle.tickets import service as tickets
from servicecycle.tickets.models import Ticket
from tests.chat.conftest import SEEDER, Desk


async def _rows(desk: Desk, stmt: Any) -> list[Any]:
    async with desk.sessions() as session:
        return list((await session.scalars(stmt)).all())


async def _nothing_stored(desk: Desk) -> None:
    """No answer, no invitation and no survey event on a ticket: a refusal writes nothing."""
    assert await _rows(desk, select(SurveyResponse)) == []
    assert await _rows(desk, select(SurveyInvitation)) == []
    on_tickets = select(Event).where(Event.kind.like("survey.%"), Event.subject_type == "ticket")
    assert await _rows(desk, on_tickets) == []


async def _csat(desk: Desk) -> None:
    async with desk.sessions() as session, session.begin():
        await surveys.create_survey(
            session, name="CSAT after service", kind="csat", enabled=True, actor=SEEDER
        )


async def _taken_chat(desk: Desk) -> tuple[Any, Any, ChatSession, Any, Any]:
    """A visitor's chat taken by Ana of the Billing team; returns both sockets too."""
    ana = await desk.user("agent", name="Ana")
    async with desk.sessions() as session, session.begin():
        team = await auth.create_team(session, name="Billing", description="", actor=SEEDER)
    visitor = await desk.visitor()
    await visitor.hello()
    await visitor.send(type="start", name="Vera Visitor", text="Where is my parcel?")
    await visitor.until("line")
    [chat] = await _rows(desk, select(ChatSession))
    agent = await desk.agent(ana.email)
    await agent.send(type="take", ticket_id=chat.ticket_id)
    await visitor.until("state", state="active")
    async with desk.sessions() as session, session.begin():
        ticket = await tickets.get_ticket(session, chat.ticket_id)
        await tickets.assign(session, ticket, assignee_id=ana.id, team_id=team.id, actor=SEEDER)
    return visitor, agent, chat, ana, team


async def test_the_visitor_rates_the_chat_the_agent_ended_and_can_change_it(desk: Desk) -> None:
    await _csat(desk)
    visitor, agent, chat, ana, team = await _taken_chat(desk)

    # before the end there is nothing to rate
    await visitor.send(type="rate", score=5)
    early = await visitor.until("error")
    assert early["code"] == "conflict" and early["fields"] == {"chat": "not ended yet"}

    await agent.send(type="end", ticket_id=chat.ticket_id)
    assert (await visitor.until("state"))["state"] == "ended"
    asked = await visitor.until("rating")
    assert (asked["kind"], asked["scale_min"], asked["scale_max"], asked["score"]) == (
        "csat",
        1,
        5,
        None,
    )
    assert asked["question"] == "How satisfied are you with the help you received?"

    # out of range, not a number: an error frame naming the score, nothing stored
    for bad in (6, 0, "five", 4.5, True):
        await visitor.send(type="rate", score=bad)
        refused = await visitor.until("error")
        assert refused["code"] == "validation_error" and "score" in refused["fields"], bad
    await visitor.send(type="rate", score=4, comment=["not", "text"])
    assert (await visitor.until("error"))["fields"] == {"comment": "must be text"}
    await visitor.send(type="rate", score=4, comment="x" * 4001)
    assert (await visitor.until("error"))["fields"] == {"comment": "at most 4000"}
    await _nothing_stored(desk)

    await visitor.send(type="rate", score=2)
    assert await visitor.until("rated") == {
        "type": "rated",
        "kind": "csat",
        "score": 2,
        "comment": "",
    }
    [response] = await _rows(desk, select(SurveyResponse))
    assert (response.kind, response.score, response.source, response.channel) == (
        "csat",
        2,
        "chat",
        "chat",
    )
    assert (response.ticket_id, response.agent_id, response.team_id) == (
        chat.ticket_id,
        ana.id,
        team.id,
    )
    [ticket] = await _rows(desk, select(Ticket).where(Ticket.id == chat.ticket_id))
    assert response.customer_id == ticket.requester_id

    # a second rating from the same chat updates the answer, with a comment
    await visitor.send(type="rate", score=5, comment="  Quick and kind.  ")
    assert (await visitor.until("rated"))["comment"] == "Quick and kind."
    [response] = await _rows(desk, select(SurveyResponse).execution_options(populate_existing=True))
    assert (response.score, response.comment) == (5, "Quick and kind.")
    answered = await _rows(
        desk, select(Event).where(Event.kind == "survey.answered").order_by(Event.id)
    )
    assert [(e.data["score"], e.data["updated"], e.data["source"]) for e in answered] == [
        (2, False, "chat"),
        (5, True, "chat"),
    ]
    # a CSAT of 2 was a detractor: follow-ups opened a recovery for Ana on the chat's ticket
    assert answered[0].data["detractor"] is True
    [recovery] = await _rows(desk, select(FollowUp).where(FollowUp.kind == "recovery"))
    assert (recovery.ticket_id, recovery.owner_id) == (chat.ticket_id, ana.id)

    # the API shows the chat's rating on the customer
    api = await desk.api(ana.email)
    found = await api.get(f"/api/v1/customers/{ticket.requester_id}/surveys")
    assert found.status_code == 200
    assert [(r["kind"], r["score"], r["source"]) for r in found.json()["responses"]] == [
        ("csat", 5, "chat")
    ]
    await api.aclose()
    for socket in (visitor, agent):
        await socket.close()


async def test_the_visitor_who_ends_the_chat_is_asked_too(desk: Desk) -> None:
    await _csat(desk)
    visitor, agent, _, _, _ = await _taken_chat(desk)
    await visitor.send(type="end")
    assert (await visitor.until("state"))["state"] == "ended"
    assert (await visitor.until("rating"))["score"] is None
    await visitor.send(type="rate", score=3)
    assert (await visitor.until("rated"))["score"] == 3
    for socket in (visitor, agent):
        await socket.close()


async def test_no_rating_question_without_an_enabled_csat_survey(desk: Desk) -> None:
    visitor, agent, chat, _, _ = await _taken_chat(desk)
    await agent.send(type="end", ticket_id=chat.ticket_id)
    assert (await visitor.until("state"))["state"] == "ended"
    await visitor.send(type="rate", score=4)
    seen = []
    while (frame := await visitor.receive())["type"] != "error":
        seen.append(frame["type"])
    assert "rating" not in seen  # no question was asked
    refused = frame
    assert refused["code"] == "not_found" and refused["fields"] == {"kind": "no enabled survey"}
    assert await _rows(desk, select(SurveyResponse)) == []
    for socket in (visitor, agent):
        await socket.close()


async def test_a_waiting_chat_the_visitor_leaves_is_missed_and_not_rated(desk: Desk) -> None:
    await _csat(desk)
    await desk.user("agent", name="Bo")
    visitor = await desk.visitor()
    await visitor.hello()
    await visitor.send(type="start", name="Vera Visitor", text="Hello?")
    await visitor.until("line")
    await visitor.send(type="end")
    assert (await visitor.until("state", state="missed"))["state"] == "missed"
    await visitor.send(type="rate", score=5)
    refused = await visitor.until("error")
    assert (refused["code"], refused["fields"]) == ("conflict", {"chat": "missed"})
    await _nothing_stored(desk)
    await visitor.close()


async def test_the_rating_over_http_with_the_visitor_token(desk: Desk) -> None:
    await _csat(desk)
    ana = await desk.user("agent", name="Ana")
    visitor = await desk.visitor()
    welcome = await visitor.hello()
    token = welcome["token"]
    await visitor.send(type="start", name="Vera Visitor", text="Where is my parcel?")
    await visitor.until("line")
    [chat] = await _rows(desk, select(ChatSession))
    agent = await desk.agent(ana.email)
    await agent.send(type="take", ticket_id=chat.ticket_id)
    await visitor.until("state", state="active")
    mine = {"Authorization": f"Bearer {token}"}
    async with AsyncClient(base_url=desk.url) as http:
        early = await http.post("/api/v1/chat/rating", json={"score": 5}, headers=mine)
        assert early.status_code == 409
        await agent.send(type="end", ticket_id=chat.ticket_id)
        await visitor.until("rating")
        for headers in ({}, {"Authorization": f"Bearer {token}x"}):
            refused = await http.post("/api/v1/chat/rating", json={"score": 5}, headers=headers)
            assert refused.status_code == 401
        for body, field in (
            ({"score": 6}, "score"),
            ({"score": 0}, "score"),
            ({"score": "five"}, "score"),
            ({"score": True}, "score"),  # JSON true is not a 1
            ({"score": "4"}, "score"),
            ({"score": 4.5}, "score"),
            ({"score": 4.0}, "score"),
            ({"score": 4, "comment": "x" * 4001}, "comment"),
            ({"score": 4, "kind": "nps"}, "kind"),
        ):
            bad = await http.post("/api/v1/chat/rating", json=body, headers=mine)
            assert bad.status_code == 422, (body, bad.text)
            assert field in str(bad.json()["error"]["fields"]), (body, bad.text)
        await _nothing_stored(desk)
        rated = await http.post(
            "/api/v1/chat/rating", json={"score": 4, "comment": "Fine."}, headers=mine
        )
        assert rated.status_code == 200, rated.text
        assert rated.json() == {"kind": "csat", "score": 4, "comment": "Fine."}
        again = await http.post("/api/v1/chat/rating", json={"score": 5}, headers=mine)
        assert again.json() == {"kind": "csat", "score": 5, "comment": "Fine."}
        # another visitor (a token of their own) has no chat to rate
        stranger = await desk.visitor()
        other = (await stranger.hello())["token"]
        nothing = await http.post(
            "/api/v1/chat/rating",
            json={"score": 1},
            headers={"Authorization": f"Bearer {other}"},
        )
        assert nothing.status_code == 404
        await stranger.close()
    [response] = await _rows(desk, select(SurveyResponse))
    assert (response.score, response.comment, response.source) == (5, "Fine.", "chat")
    assert response.ticket_id == chat.ticket_id and response.agent_id == ana.id
    for socket in (visitor, agent):
        await socket.close()


async def test_a_chat_merged_into_another_ticket_is_rated_on_that_ticket(desk: Desk) -> None:
    """An agent merged the chat's ticket into the customer's earlier one: the rating (and
    the question the widget shows) is about the ticket that lives on."""
    await _csat(desk)
    ana = await desk.user("agent", name="Ana")
    visitor = await desk.visitor()
    token = (await visitor.hello())["token"]
    await visitor.send(type="start", name="Vera Visitor", text="Where is my parcel?")
    await visitor.until("line")
    [chat] = await _rows(desk, select(ChatSession))
    agent = await desk.agent(ana.email)
    await agent.send(type="take", ticket_id=chat.ticket_id)
    await visitor.until("state", state="active")
    await agent.send(type="end", ticket_id=chat.ticket_id)
    await visitor.until("rating")
    async with desk.sessions() as session, session.begin():
        own = await tickets.get_ticket(session, chat.ticket_id)
        requester = await session.get(Customer, own.requester_id)
        assert requester is not None
        earlier, _ = await tickets.create_ticket(
            session,
            subject="Parcel, by mail",
            requester=requester,
            channel="email",
            body_text="Where is it?",
            actor=SEEDER,
        )
        await merging.merge(session, own, earlier, actor=SEEDER)
    await visitor.send(type="rate", score=2)
    assert (await visitor.until("rated"))["score"] == 2
    async with AsyncClient(base_url=desk.url) as http:
        again = await http.post(
            "/api/v1/chat/rating",
            json={"score": 4, "comment": "Found it."},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert again.status_code == 200, again.text
    [response] = await _rows(desk, select(SurveyResponse))
    assert (response.ticket_id, response.score, response.comment) == (earlier.id, 4, "Found it.")
    assert response.customer_id == requester.id
    for socket in (visitor, agent):
        await socket.close()
