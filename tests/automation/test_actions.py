"""The e-mail and webhook actions, checks of what rules refer to, names, tags, macros."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.automation import service as automation
from servicecycle.automation.rules import Facts, check_actions, holds
from servicecycle.channels.email import outbox
from servicecycle.channels.models import OutboundMail
from servicecycle.events.models import Event
from servicecycle.events.service import Actor
from servicecycle.kit.errors import ValidationFailed
from servicecycle.tickets import service as tickets
from servicecycle.webhooks import service as webhooks
from tests.channels.test_email_out import smtp as smtp  # the fixture: a real SMTP server
from tests.factories import Token, sign_in
from tests.webhooks.conftest import Receiver, WebhookSettings, check_signature
from tests.webhooks.conftest import receiver as receiver  # the fixture

ADMIN = Actor.system("test")
Make = Callable[..., Awaitable[Any]]
MakeToken = Callable[..., Awaitable[Token]]
Sessions = async_sessionmaker[AsyncSession]
HTML = {"accept": "text/html"}


@pytest.fixture
def settings(tmp_path: Path) -> WebhookSettings:
    return WebhookSettings(data_dir=tmp_path / "data")


def _trigger(name: str, actions: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "trigger",
        "events": ["ticket.created"],
        "conditions": [],
        "actions": actions,
        **extra,
    }


# -- the checks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"to": "someone", "subject": "x", "body": "y"}, "actions[0].value.to"),
        ({"to": "requester", "subject": " ", "body": "y"}, "actions[0].value.subject"),
        (
            {"to": "requester", "subject": "{{ticket.colour}}", "body": "y"},
            "actions[0].value.subject",
        ),
        ({"to": "a@example.com", "subject": "x"}, "actions[0].value.body"),
        ({"to": "a@example.com", "subject": "x", "body": "y", "cc": "b"}, "actions[0].value"),
    ],
)
def test_send_email_is_checked_naming_the_path(value: dict[str, Any], path: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_actions([{"type": "send_email", "value": value}])
    assert path in refused.value.fields


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"webhook_id": "one"}, "actions[0].value.webhook_id"),
        ({"webhook_id": 1, "payload": [1]}, "actions[0].value.payload"),
        ({"webhook_id": 1, "payload": {"a": "{{nope.x}}"}}, "actions[0].value.payload"),
        ({"url": "https://example.com"}, "actions[0].value"),
    ],
)
def test_call_webhook_is_checked_naming_the_path(value: dict[str, Any], path: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_actions([{"type": "call_webhook", "value": value}])
    assert path in refused.value.fields


def test_tags_compare_without_case() -> None:
    facts = Facts({"ticket.tags": ["vip", "billing"]})
    assert holds([{"field": "ticket.tags", "op": "contains", "value": "VIP"}], facts)
    assert not holds([{"field": "ticket.tags", "op": "not_contains", "value": "Vip"}], facts)
    assert holds([{"field": "ticket.tags", "op": "contains_any", "value": ["X", "BILLING"]}], facts)


async def test_a_rule_removes_tags_whatever_their_case(db: AsyncSession, make_ticket: Make) -> None:
    await automation.create_rule(
        db, actor=ADMIN, **_trigger("Untag", [{"type": "remove_tags", "value": ["VIP"]}])
    )
    ticket = await make_ticket(tags=["vip", "other"])
    ticket = await tickets.get_ticket(db, ticket.id)
    await db.refresh(ticket)
    assert ticket.tags == ["other"]


async def test_references_are_checked_when_saved(
    client: AsyncClient, make_token: MakeToken, make_user: Make
) -> None:
    admin = await make_token("admin")
    cases = [
        ({"type": "call_webhook", "value": {"webhook_id": 424242}}, "actions[0].value.webhook_id"),
        ({"type": "assign_team", "value": 424242}, "actions[0].value"),
        ({"type": "notify", "value": {"to": 424242, "text": "hi"}}, "actions[0].value.to"),
    ]
    for action, path in cases:
        answer = await client.post(
            "/api/v1/rules", headers=admin.headers, json=_trigger("refs", [action])
        )
        assert answer.status_code == 422, answer.text
        assert path in answer.json()["error"]["fields"], answer.text


# -- send_email --------------------------------------------------------------------------------


async def test_send_email_queues_a_filled_mail_in_the_outbox_naming_its_rule(
    db: AsyncSession, make_ticket: Make, make_customer: Make
) -> None:
    rule = await automation.create_rule(
        db,
        actor=ADMIN,
        **_trigger(
            "Acknowledge and tell the boss",
            [
                {
                    "type": "send_email",
                    "value": {
                        "to": "requester",
                        "subject": "We have #{{ticket.number}}: {{ticket.subject}}",
                        "body": "Hi {{customer.first_name}}, thanks.",
                    },
                },
                {
                    "type": "send_email",
                    "value": {"to": "boss@example.com", "subject": "New", "body": "Look"},
                },
            ],
        ),
    )
    customer = await make_customer("Ada Lovelace", email="ada@example.net")
    ticket = await make_ticket("Broken", requester=customer, channel="api")
    mails = list(
        (
            await db.scalars(
                select(OutboundMail)
                .where(OutboundMail.ticket_id == ticket.id, OutboundMail.kind == "rule")
                .order_by(OutboundMail.id)
            )
        ).all()
    )
    assert [(m.to_address, m.subject) for m in mails] == [
        ("ada@example.net", f"We have #{ticket.id}: Broken"),
        ("boss@example.com", "New"),
    ]
    assert mails[0].body_text == "Hi Ada, thanks." and mails[0].status == "queued"
    queued = list((await db.scalars(select(Event).where(Event.kind == "rule.email_queued"))).all())
    assert {e.actor_id for e in queued} == {str(rule.id)}
    assert all(e.data["rule"] == {"id": rule.id, "name": rule.name} for e in queued)
    by_mailer = list(
        (
            await db.scalars(
                select(Event)
                .where(Event.kind == "mail.queued", Event.subject_id == str(ticket.id))
                .order_by(Event.id)
            )
        ).all()
    )
    ruled = [e.data for e in by_mailer if "rule" in e.data]
    assert [d["to"] for d in ruled] == ["ada@example.net", "boss@example.com"]


# -- call_webhook ------------------------------------------------------------------------------


async def test_call_webhook_posts_a_signed_delivery_to_a_real_receiver(
    sessions: Sessions,
    settings: WebhookSettings,
    receiver: Receiver,
    make_ticket: Make,
    make_customer: Make,
) -> None:
    sending = webhooks.sending_for(settings)
    async with sessions() as session, session.begin():
        sub, secret = await webhooks.create_subscription(
            session, name="Pager", url=receiver.url, kinds=[], sending=sending, actor=ADMIN
        )
        rule = await automation.create_rule(
            session,
            actor=ADMIN,
            **_trigger(
                "Page on urgent",
                [
                    {
                        "type": "call_webhook",
                        "value": {
                            "webhook_id": sub.id,
                            "payload": {"text": "#{{ticket.number}} from {{customer.name}}"},
                        },
                    }
                ],
                conditions=[{"field": "ticket.priority", "op": "is", "value": "urgent"}],
            ),
        )
    await make_ticket("Calm", priority="low")
    customer = await make_customer("Grace Hopper")
    ticket = await make_ticket("Fire", priority="urgent", requester=customer)
    async with sessions() as session, session.begin():
        assert await webhooks.deliver_due(session, sending) == (1, 0)
    [got] = receiver.received
    assert check_signature(secret, got, now=datetime.now(UTC).timestamp())
    body = json.loads(got.body)
    assert body["kind"] == "rule.webhook_called" == got.headers["servicecycle-event"]
    assert body["subject"] == {"type": "ticket", "id": str(ticket.id)}
    assert body["data"]["rule"] == {"id": rule.id, "name": "Page on urgent"}
    assert body["data"]["payload"] == {"text": f"#{ticket.id} from Grace Hopper"}
    assert body["data"]["ticket"]["priority"] == "urgent"


async def test_a_rule_calling_a_deleted_webhook_is_switched_off_with_the_reason(
    db: AsyncSession, settings: WebhookSettings, make_ticket: Make
) -> None:
    sub, _ = await webhooks.create_subscription(
        db,
        name="Old",
        url="https://example.com/h",
        kinds=[],
        sending=webhooks.sending_for(settings),
        actor=ADMIN,
    )
    rule = await automation.create_rule(
        db,
        actor=ADMIN,
        **_trigger("Call old", [{"type": "call_webhook", "value": {"webhook_id": sub.id}}]),
    )
    await webhooks.delete_subscription(db, sub, actor=ADMIN)
    ticket = await make_ticket()
    await db.refresh(rule)
    assert not rule.active and "was deleted" in (rule.disabled_reason or "")
    assert (await tickets.get_ticket(db, ticket.id)).id == ticket.id  # the ticket still exists


async def test_notifying_a_deactivated_user_switches_the_rule_off(
    db: AsyncSession, make_ticket: Make, make_user: Make
) -> None:
    from servicecycle.auth import service as auth

    agent = await make_user("agent", name="Leaving Agent")
    rule = await automation.create_rule(
        db,
        actor=ADMIN,
        **_trigger("Tell Leo", [{"type": "notify", "value": {"to": agent.id, "text": "new"}}]),
    )
    user = await auth.get_user(db, agent.id)
    await auth.update_user(
        db, user, expected_version=user.version, changes={"is_active": False}, actor=ADMIN
    )
    await make_ticket()
    await db.refresh(rule)
    assert not rule.active
    assert "Leaving Agent to notify is deactivated" in (rule.disabled_reason or "")
    disabled = await db.scalar(select(Event).where(Event.kind == "rule.disabled"))
    assert disabled is not None and disabled.actor_id == str(rule.id)
    assert disabled.data["rule"] == "Tell Leo"


# -- names, dry run, macros through the API -------------------------------------------------------


async def test_duplicate_names_are_409_and_dry_run_says_what_actions_would_do(
    client: AsyncClient, make_token: MakeToken
) -> None:
    admin = await make_token("admin")
    email = {"type": "send_email", "value": {"to": "requester", "subject": "Hi", "body": "Yo"}}
    one = await client.post("/api/v1/rules", headers=admin.headers, json=_trigger("One", [email]))
    two = await client.post("/api/v1/rules", headers=admin.headers, json=_trigger("Two", [email]))
    assert one.status_code == two.status_code == 201
    clash = await client.patch(
        f"/api/v1/rules/{two.json()['id']}",
        headers=admin.headers,
        json={"name": "One", "version": two.json()["version"]},
    )
    assert clash.status_code == 409 and clash.json()["error"]["fields"] == {"name": "already taken"}
    dry = await client.post(f"/api/v1/rules/{one.json()['id']}/dry-run", headers=admin.headers)
    assert dry.json()["actions"] == ["send an e-mail to the requester: “Hi”"]

    first = await client.post(
        "/api/v1/macros", headers=admin.headers, json={"name": "Thanks", "body": "Thanks!"}
    )
    second = await client.post(
        "/api/v1/macros", headers=admin.headers, json={"name": "Bye", "body": "Bye!"}
    )
    clash = await client.patch(
        f"/api/v1/macros/{second.json()['id']}", headers=admin.headers, json={"name": "Thanks"}
    )
    assert clash.status_code == 409, clash.text
    again = await client.post(
        "/api/v1/macros", headers=admin.headers, json={"name": "Thanks", "body": "x"}
    )
    assert again.status_code == 409
    assert first.status_code == 201


async def test_macros_are_changed_and_deleted_through_the_api(
    client: AsyncClient, make_token: MakeToken
) -> None:
    admin, agent = await make_token("admin"), await make_token("agent")
    shared = await client.post(
        "/api/v1/macros",
        headers=admin.headers,
        json={"name": "Shared", "body": "Hello {{customer.first_name}}", "shared": True},
    )
    mine = await client.post(
        "/api/v1/macros", headers=agent.headers, json={"name": "Mine", "body": "Hi"}
    )
    shared_id, mine_id = shared.json()["id"], mine.json()["id"]
    assert (
        await client.patch(f"/api/v1/macros/{shared_id}", headers=agent.headers, json={"body": "x"})
    ).status_code == 403
    assert (
        await client.delete(f"/api/v1/macros/{shared_id}", headers=agent.headers)
    ).status_code == 403
    bad = await client.patch(
        f"/api/v1/macros/{mine_id}", headers=agent.headers, json={"body": "{{ticket.colour}}"}
    )
    assert bad.status_code == 422 and "body" in bad.json()["error"]["fields"]
    bad = await client.patch(
        f"/api/v1/macros/{mine_id}",
        headers=agent.headers,
        json={"actions": [{"type": "set_status", "value": "done"}]},
    )
    assert bad.status_code == 422 and "actions[0].value" in bad.json()["error"]["fields"]
    changed = await client.patch(
        f"/api/v1/macros/{mine_id}",
        headers=agent.headers,
        json={"name": "Mine, better", "body": "Hi there", "version": mine.json()["version"]},
    )
    assert changed.status_code == 200 and changed.json()["name"] == "Mine, better"
    stale = await client.patch(
        f"/api/v1/macros/{mine_id}", headers=agent.headers, json={"body": "x", "version": 1}
    )
    assert stale.status_code == 412
    other = await make_token("agent")
    assert (
        await client.delete(f"/api/v1/macros/{mine_id}", headers=other.headers)
    ).status_code == 404
    assert (
        await client.delete(f"/api/v1/macros/{mine_id}", headers=agent.headers)
    ).status_code == 204
    assert (
        await client.delete(f"/api/v1/macros/{shared_id}", headers=admin.headers)
    ).status_code == 204
    left = await client.get("/api/v1/macros", headers=agent.headers)
    assert left.json() == []


# -- the admin pages ---------------------------------------------------------------------------


async def test_admin_edits_and_deletes_a_macro_and_sees_the_new_actions(
    client: AsyncClient, make_user: Make, sessions: Sessions, settings: WebhookSettings
) -> None:
    admin = await make_user("admin")
    csrf = await sign_in(client, admin.email)
    await client.post(
        "/admin/macros",
        data={
            "csrf_token": csrf,
            "name": "Refund",
            "body": "Refunded.",
            "kind": "reply",
            "shared": "on",
        },
    )
    await client.post(
        "/admin/macros",
        data={
            "csrf_token": csrf,
            "name": "Other",
            "body": "Other.",
            "kind": "reply",
            "shared": "on",
        },
    )
    listing = await client.get("/admin/macros", headers=HTML)
    ids = [int(i) for i in re.findall(r'href="/admin/macros/(\d+)"', listing.text)]
    assert len(ids) == 2
    refund_id = min(ids)
    page = await client.get(f"/admin/macros/{refund_id}", headers=HTML)
    assert page.status_code == 200 and "Refunded." in page.text
    version = re.search(r'name="version" value="(\d+)"', page.text).group(1)
    clash = await client.post(
        f"/admin/macros/{refund_id}",
        headers=HTML,
        data={
            "csrf_token": csrf,
            "name": "Other",
            "body": "x",
            "kind": "reply",
            "version": version,
        },
    )
    assert clash.status_code == 409 and "already taken" in clash.text
    saved = await client.post(
        f"/admin/macros/{refund_id}",
        data={
            "csrf_token": csrf,
            "name": "Refund sent",
            "body": "Your refund is on its way.",
            "kind": "note",
            "actions": '[{"type": "set_status", "value": "solved"}]',
            "version": version,
        },
    )
    assert saved.status_code == 303
    listing = await client.get("/admin/macros", headers=HTML)
    assert "Refund sent" in listing.text and "internal note" in listing.text
    gone = await client.post(f"/admin/macros/{refund_id}/delete", data={"csrf_token": csrf})
    assert gone.status_code == 303
    assert (
        f'href="/admin/macros/{refund_id}"'
        not in (await client.get("/admin/macros", headers=HTML)).text
    )

    async with sessions() as session, session.begin():
        await webhooks.create_subscription(
            session,
            name="Pager",
            url="https://pager.example.com/in",
            kinds=[],
            sending=webhooks.sending_for(settings),
            actor=ADMIN,
        )
    editor = await client.get("/admin/rules/new", headers=HTML)
    assert "send_email" in editor.text and "call_webhook" in editor.text
    assert re.search(r"<code>\d+</code> Pager", editor.text)
    macro_form = await client.get("/admin/macros", headers=HTML)
    assert '{"to": "requester" | an address' in macro_form.text.replace("&#34;", '"')
    made = await client.post(
        "/admin/rules",
        data={
            "csrf_token": csrf,
            "name": "Mail them",
            "kind": "trigger",
            "events": '["ticket.created"]',
            "conditions": "[]",
            "actions": json.dumps(
                [
                    {
                        "type": "send_email",
                        "value": {"to": "requester", "subject": "Hi", "body": "Yo"},
                    }
                ]
            ),
        },
    )
    assert made.status_code == 303, made.text
    rule_url = made.headers["location"]
    dry = await client.post(
        f"{rule_url}/dry-run", headers={**HTML, "hx-request": "true"}, data={"csrf_token": csrf}
    )
    assert "send an e-mail to the requester" in dry.text
    rules = await client.get("/admin/rules", headers=HTML)
    assert "E-mail" in rules.text and "the requester" in rules.text


async def test_a_rule_mail_goes_out_through_a_real_smtp_server(
    sessions: Sessions, make_ticket: Make, make_customer: Make, smtp: Any
) -> None:
    inbox, smtp_settings = smtp
    async with sessions() as session, session.begin():
        await automation.create_rule(
            session,
            actor=ADMIN,
            **_trigger(
                "Tell the on-call desk",
                [
                    {
                        "type": "send_email",
                        "value": {
                            "to": "oncall@example.com",
                            "subject": "Urgent #{{ticket.number}}",
                            "body": "{{customer.name}} wrote: {{ticket.subject}}",
                        },
                    }
                ],
                conditions=[{"field": "ticket.priority", "op": "is", "value": "urgent"}],
            ),
        )
    customer = await make_customer("Grace Hopper")
    ticket = await make_ticket("Server room flooded", priority="urgent", requester=customer)
    sent, failed = await outbox.deliver(sessions, smtp_settings)
    assert failed == 0 and sent >= 1
    [mail] = [m for m in inbox.mails if m["To"] == "oncall@example.com"]
    assert mail["Subject"] == f"Urgent #{ticket.id}"
    assert mail.get_content().strip() == "Grace Hopper wrote: Server room flooded"


# -- add_follow_up -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"reason": " ", "due_in_hours": 24}, "actions[0].value.reason"),
        ({"reason": "Call", "due_in_hours": 0}, "actions[0].value.due_in_hours"),
        ({"reason": "Call", "due_in_hours": 24, "owner": "boss"}, "actions[0].value.owner"),
        ({"reason": "Call", "due_in_hours": 24, "kind": "party"}, "actions[0].value.kind"),
        ({"reason": "Call", "due_in_hours": 24, "when": "now"}, "actions[0].value"),
    ],
)
def test_add_follow_up_is_checked_naming_the_path(value: dict[str, Any], path: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_actions([{"type": "add_follow_up", "value": value}])
    assert path in refused.value.fields


async def test_a_rule_plans_a_follow_up_for_the_assignee(
    db: AsyncSession, make_ticket: Make, make_user: Make
) -> None:
    from servicecycle.followups.models import FollowUp
    from servicecycle.kit import clock

    agent = await make_user("agent")
    with pytest.raises(ValidationFailed) as missing:
        await automation.create_rule(
            db,
            actor=ADMIN,
            **_trigger(
                "Owner gone",
                [
                    {
                        "type": "add_follow_up",
                        "value": {"reason": "x", "due_in_hours": 1, "owner": 99999},
                    }
                ],
            ),
        )
    assert "actions[0].value.owner" in missing.value.fields
    rule = await automation.create_rule(
        db,
        actor=ADMIN,
        **_trigger(
            "Check on VIP tickets",
            [
                {
                    "type": "add_follow_up",
                    "value": {"reason": "Did it work?", "due_in_hours": 72, "owner": "assignee"},
                }
            ],
        ),
    )
    assert await automation.plan(db, rule) == ["plan a follow-up in 72 h: “Did it work?”"]
    before = clock.now()
    ticket = await make_ticket("Broken", channel="api", assignee_id=agent.id)
    planned = (await db.scalars(select(FollowUp).where(FollowUp.ticket_id == ticket.id))).all()
    assert len(planned) == 1
    follow_up = planned[0]
    assert (follow_up.owner_id, follow_up.reason, follow_up.kind) == (
        agent.id,
        "Did it work?",
        "check_in",
    )
    hours = (follow_up.due_at - before).total_seconds() / 3600
    assert 71.9 < hours < 72.1
