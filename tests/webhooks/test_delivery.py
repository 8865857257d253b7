"""Outbound deliveries to a real HTTP server: signed, retried with backoff, logged."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.events.models import Event
from servicecycle.events.service import Actor
from servicecycle.kit import clock
from servicecycle.kit.errors import ValidationFailed
from servicecycle.webhooks import service
from servicecycle.webhooks.models import WebhookDelivery
from tests.webhooks.conftest import Receiver, WebhookSettings, check_signature

ADMIN = Actor.system("test")
Sessions = async_sessionmaker[AsyncSession]


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def frozen() -> Iterator[Clock]:
    source = Clock()
    clock.set_source(source)
    yield source
    clock.set_source(None)


async def _subscribe(
    sessions: Sessions, settings: WebhookSettings, url: str, kinds: list[str]
) -> tuple[int, str]:
    async with sessions() as session, session.begin():
        sub, secret = await service.create_subscription(
            session,
            name=f"hook {kinds}",
            url=url,
            kinds=kinds,
            sending=service.sending_for(settings),
            actor=ADMIN,
        )
        return sub.id, secret


async def _deliver(sessions: Sessions, settings: WebhookSettings) -> tuple[int, int]:
    async with sessions() as session, session.begin():
        return await service.deliver_due(session, service.sending_for(settings))


async def _rows(sessions: Sessions, sub_id: int) -> list[WebhookDelivery]:
    async with sessions() as session:
        found = await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.subscription_id == sub_id)
            .order_by(WebhookDelivery.id)
        )
        return list(found.all())


async def test_a_matching_event_is_posted_signed_to_the_receiver(
    sessions: Sessions,
    settings: WebhookSettings,
    receiver: Receiver,
    make_ticket: Callable[..., Awaitable[Any]],
) -> None:
    sub_id, secret = await _subscribe(sessions, settings, receiver.url, ["ticket.created"])
    ticket = await make_ticket("Printer on fire")
    rows = await _rows(sessions, sub_id)
    assert [r.kind for r in rows] == ["ticket.created"] and rows[0].status == "pending"

    assert await _deliver(sessions, settings) == (1, 0)
    [got] = receiver.received
    body = json.loads(got.body)
    assert body["kind"] == "ticket.created"
    assert body["subject"] == {"type": "ticket", "id": str(ticket.id)}
    assert set(body) == {"id", "kind", "occurred_at", "subject", "data"}
    assert got.headers["servicecycle-event"] == "ticket.created"
    assert got.headers["servicecycle-delivery"] == rows[0].delivery_id
    now = datetime.now(UTC).timestamp()
    assert check_signature(secret, got, now=now)
    assert not check_signature(secret + "x", got, now=now)
    tampered = type(got)(got.headers, got.body.replace(b"Printer", b"Scanner"))
    assert not check_signature(secret, tampered, now=now)
    assert not check_signature(secret, got, now=now + 3600)  # a replay much later

    [row] = await _rows(sessions, sub_id)
    assert (row.status, row.attempts, row.response_code) == ("delivered", 1, 200)
    assert row.response_excerpt == '{"ok": true}' and row.duration_ms is not None
    assert await _deliver(sessions, settings) == (0, 0)  # never twice


async def test_a_500_is_retried_after_the_backoff_and_delivered_once(
    sessions: Sessions,
    settings: WebhookSettings,
    receiver: Receiver,
    make_ticket: Callable[..., Awaitable[Any]],
    frozen: Clock,
) -> None:
    sub_id, _ = await _subscribe(sessions, settings, receiver.url, ["ticket.*"])
    await make_ticket()
    receiver.answers = [500]
    assert await _deliver(sessions, settings) == (0, 0)
    [row] = await _rows(sessions, sub_id)
    assert (row.status, row.attempts, row.response_code) == ("pending", 1, 500)
    assert row.next_attempt_at == frozen.at + timedelta(minutes=1)

    frozen.at += timedelta(seconds=30)
    assert await _deliver(sessions, settings) == (0, 0)  # not due yet
    assert len(receiver.received) == 1
    frozen.at += timedelta(seconds=31)
    assert await _deliver(sessions, settings) == (1, 0)
    frozen.at += timedelta(hours=10)
    assert await _deliver(sessions, settings) == (0, 0)
    assert len(receiver.received) == 2
    first, second = receiver.received
    assert first.headers["servicecycle-delivery"] == second.headers["servicecycle-delivery"]
    [row] = await _rows(sessions, sub_id)
    assert (row.status, row.attempts) == ("delivered", 2)


async def test_a_410_fails_at_once_and_redeliver_sends_it_again(
    sessions: Sessions,
    settings: WebhookSettings,
    receiver: Receiver,
    make_ticket: Callable[..., Awaitable[Any]],
    frozen: Clock,
) -> None:
    sub_id, _ = await _subscribe(sessions, settings, receiver.url, ["ticket.created"])
    await make_ticket()
    receiver.answers = [410]
    assert await _deliver(sessions, settings) == (0, 1)
    frozen.at += timedelta(days=1)
    assert await _deliver(sessions, settings) == (0, 0)
    assert len(receiver.received) == 1
    [row] = await _rows(sessions, sub_id)
    assert (row.status, row.response_code, row.response_excerpt) == (
        "failed",
        410,
        "receiver says no",
    )
    async with sessions() as session, session.begin():
        failed = await session.scalar(select(Event).where(Event.kind == "webhook.failed"))
        assert failed is not None and failed.data["delivery"] == row.delivery_id
        await service.redeliver(session, await service.get_delivery(session, row.id), actor=ADMIN)
    assert await _deliver(sessions, settings) == (1, 0)
    assert len(receiver.received) == 2


async def test_network_errors_retry_up_to_eight_attempts_then_fail(
    sessions: Sessions,
    settings: WebhookSettings,
    make_ticket: Callable[..., Awaitable[Any]],
    frozen: Clock,
) -> None:
    sub_id, _ = await _subscribe(sessions, settings, "http://127.0.0.1:9/closed", ["*"])
    await make_ticket()
    waits = []
    for _ in range(8):
        before = frozen.at
        await _deliver(sessions, settings)
        [row] = [r for r in await _rows(sessions, sub_id) if r.kind == "ticket.created"]
        if row.next_attempt_at:
            waits.append(row.next_attempt_at - before)
            frozen.at = row.next_attempt_at
    assert row.status == "failed" and row.attempts == 8
    assert row.error and "Connect" in row.error
    assert waits[:3] == [timedelta(minutes=1), timedelta(minutes=3), timedelta(minutes=9)]
    assert waits[-1] == timedelta(hours=6)


async def test_only_wanted_kinds_are_queued(
    sessions: Sessions,
    settings: WebhookSettings,
    receiver: Receiver,
    make_ticket: Callable[..., Awaitable[Any]],
) -> None:
    messages, _ = await _subscribe(sessions, settings, receiver.url, ["message.added"])
    status, _ = await _subscribe(sessions, settings, receiver.url, ["status.changed"])
    await make_ticket()
    assert [r.kind for r in await _rows(sessions, messages)] == ["message.added"]
    assert await _rows(sessions, status) == []


async def test_kinds_and_urls_are_checked(db: AsyncSession, settings: WebhookSettings) -> None:
    sending = service.sending_for(settings)
    for kinds, path in ((["ticket.exploded"], "kinds[0]"), (["nope.*"], "kinds[0]")):
        with pytest.raises(ValidationFailed) as refused:
            await service.create_subscription(
                db, name="x", url="https://example.com/h", kinds=kinds, sending=sending, actor=ADMIN
            )
        assert path in refused.value.fields
    with pytest.raises(ValidationFailed) as refused:
        await service.create_subscription(
            db, name="x", url="ftp://example.com/h", kinds=["*"], sending=sending, actor=ADMIN
        )
    assert refused.value.fields == {"url": "must start with http:// or https://"}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ],
)
async def test_private_targets_are_refused_unless_allowed(db: AsyncSession, url: str) -> None:
    settings = WebhookSettings(webhooks_allow_private=False)
    with pytest.raises(ValidationFailed) as refused:
        await service.create_subscription(
            db,
            name="internal",
            url=url,
            kinds=["*"],
            sending=service.Sending(keyring=settings.keyring()),
            actor=ADMIN,
        )
    assert "url" in refused.value.fields


async def test_a_target_that_turned_private_is_refused_at_delivery(
    sessions: Sessions,
    settings: WebhookSettings,
    receiver: Receiver,
    make_ticket: Callable[..., Awaitable[Any]],
) -> None:
    sub_id, _ = await _subscribe(sessions, settings, receiver.url, ["ticket.created"])
    await make_ticket()
    strict = service.Sending(keyring=settings.keyring(), allow_private=False)
    async with sessions() as session, session.begin():
        assert await service.deliver_due(session, strict) == (0, 1)
    [row] = await _rows(sessions, sub_id)
    assert row.status == "failed" and row.error and row.error.startswith("refused:")
    assert receiver.received == []


async def test_the_documented_signature_check_accepts_a_real_delivery(
    sessions: Sessions,
    settings: WebhookSettings,
    receiver: Receiver,
    make_ticket: Callable[..., Awaitable[Any]],
) -> None:
    """The Python example in docs/webhooks.md, run as a receiver would run it."""
    doc = (Path(__file__).parents[2] / "docs" / "webhooks.md").read_text()
    code = doc.split("## Verifying the signature")[1].split("```python")[1].split("```")[0]
    scope: dict[str, Any] = {}
    exec(code, scope)  # noqa: S102 - our own documentation
    _, secret = await _subscribe(sessions, settings, receiver.url, ["ticket.created"])
    await make_ticket()
    await _deliver(sessions, settings)
    [got] = receiver.received
    headers = {k.title(): v for k, v in got.headers.items()}
    assert scope["verify"](secret, headers, got.body)
    assert not scope["verify"](secret, headers, got.body + b" ")
    assert not scope["verify"]("whsec_other", headers, got.body)


async def test_no_delivery_outlives_a_rolled_back_change(
    sessions: Sessions,
    settings: WebhookSettings,
    receiver: Receiver,
    make_customer: Callable[..., Awaitable[Any]],
) -> None:
    from servicecycle.tickets import service as tickets

    sub_id, _ = await _subscribe(sessions, settings, receiver.url, ["ticket.created"])
    customer = await make_customer()
    with pytest.raises(RuntimeError):
        async with sessions() as session, session.begin():
            await tickets.create_ticket(
                session,
                subject="Never mind",
                requester=customer,
                channel="email",
                body_text="x",
                actor=ADMIN,
            )
            assert len(await _rows_in(session, sub_id)) == 1  # written with the event
            raise RuntimeError("the change fails after the event")
    assert await _rows(sessions, sub_id) == []


async def _rows_in(session: AsyncSession, sub_id: int) -> list[WebhookDelivery]:
    found = await session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.subscription_id == sub_id)
    )
    return list(found.all())


async def test_events_appended_in_bulk_are_delivered_too(
    sessions: Sessions, settings: WebhookSettings, receiver: Receiver
) -> None:
    """The SLA sweep appends its events by SQL and dispatches them in bulk."""
    from servicecycle.events.bus import Appended, dispatch_many

    sub_id, _ = await _subscribe(sessions, settings, receiver.url, ["sla.*"])
    appended = [
        Appended(
            id=900_000 + n,
            kind=kind,
            subject_type="ticket",
            subject_id="1001",
            actor_type="system",
            actor_id="sla",
            data={"metric": "first_reply"},
            occurred_at=datetime(2026, 12, 2, 9, 0, tzinfo=UTC),
        )
        for n, kind in enumerate(["sla.warning", "sla.breached", "user.logged_in"])
    ]
    async with sessions() as session, session.begin():
        await dispatch_many(session, appended)
    assert [r.kind for r in await _rows(sessions, sub_id)] == ["sla.warning", "sla.breached"]
    assert await _deliver(sessions, settings) == (2, 0)
    assert json.loads(receiver.received[1].body)["data"] == {"metric": "first_reply"}


def test_sign_ins_tokens_and_deliveries_never_leave_the_desk() -> None:
    from servicecycle.webhooks.kinds import private

    for kind in ("user.logged_in", "api_token.created", "portal.signed_in", "webhook.failed"):
        assert private(kind), kind
    for kind in ("ticket.created", "chat.started", "webhook.received", "user.updated"):
        assert not private(kind), kind
