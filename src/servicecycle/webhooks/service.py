"""Webhook subscriptions, their delivery outbox, and sending it. Flushes; the caller commits.

A matching event writes a delivery row in the transaction that recorded the event; a job
POSTs due rows (claimed with SKIP LOCKED), signed with the subscription's secret, and
retries network errors, 5xx and 429 with exponential backoff. Any other answer but 2xx fails
the delivery at once. Redelivering resets the row and keeps its delivery id, so a receiver
that saw it before can recognise it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import httpx
import structlog
from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.customers import service as customers
from servicecycle.events import versions
from servicecycle.events.bus import Appended
from servicecycle.events.models import Event
from servicecycle.events.service import Actor, record
from servicecycle.kit import clock
from servicecycle.kit.errors import Conflict, NotFound, ValidationFailed
from servicecycle.kit.pagination import Page, decode_id_cursor, encode_cursor
from servicecycle.kit.secrets import BadToken, Keyring
from servicecycle.tickets import service as tickets
from servicecycle.tickets.models import Ticket
from servicecycle.webhooks import kinds as catalogue
from servicecycle.webhooks import signing, targets
from servicecycle.webhooks.models import InboundReference, WebhookDelivery, WebhookSubscription

__all__ = ["WebhookDelivery", "WebhookSubscription"]

log = structlog.get_logger(__name__)
SENDER = Actor.system("webhooks")
MAX_ATTEMPTS = 8
FIRST_WAIT = timedelta(minutes=1)
MAX_WAIT = timedelta(hours=6)
TIMEOUT = 10.0
PARALLEL = 8
EXCERPT = 1000
USER_AGENT = "Servicecycle-Webhooks/1"
_DELIVERIES = cast(Table, WebhookDelivery.__table__)
# recording these means the subscriptions changed: each process reloads its copy
versions.track("webhooks", "webhook.created", "webhook.updated", "webhook.deleted")


@dataclass(frozen=True)
class Sending:
    """What the delivery job needs: the key that opens secrets, the SSRF rule."""

    keyring: Keyring
    allow_private: bool = False


def backoff(attempts: int) -> timedelta:
    """Wait after the ``attempts``-th failure: 1, 3, 9, 27, 81 minutes, then 6 hours at most."""
    wait: timedelta = FIRST_WAIT * 3 ** max(attempts - 1, 0)
    return min(wait, MAX_WAIT)


# -- subscriptions ----------------------------------------------------------------------------


def _check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ValidationFailed("Name is required", fields={"name": "must not be empty"})
    if len(name) > 120:
        raise ValidationFailed("Name is too long", fields={"name": "at most 120 characters"})
    return name


def check_kinds(kinds: Any) -> list[str]:
    if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
        raise ValidationFailed("Invalid event kinds", fields={"kinds": "a list of event kinds"})
    cleaned = list(dict.fromkeys(k.strip() for k in kinds if k.strip()))
    for index, kind in enumerate(cleaned):
        reason = catalogue.problem(kind)
        if reason:
            raise ValidationFailed(
                f"Invalid event kind {kind!r}", fields={f"kinds[{index}]": reason}
            )
    return cleaned


async def check_url(url: str, *, allow_private: bool) -> str:
    try:
        url = targets.check_form(url)
        await targets.check_address(url, allow_private=allow_private, must_resolve=False)
    except targets.TargetRefused as exc:
        raise ValidationFailed(
            f"Invalid target URL: {exc.reason}", fields={"url": exc.reason}
        ) from None
    return url


async def _check_unique(session: AsyncSession, name: str, own_id: int | None = None) -> None:
    stmt = select(WebhookSubscription.id).where(WebhookSubscription.name == name)
    if own_id is not None:
        stmt = stmt.where(WebhookSubscription.id != own_id)
    if await session.scalar(stmt) is not None:
        raise Conflict("A webhook with this name exists", fields={"name": "already taken"})


async def create_subscription(
    session: AsyncSession,
    *,
    name: str,
    url: str,
    kinds: list[str],
    enabled: bool = True,
    description: str = "",
    sending: Sending,
    actor: Actor,
) -> tuple[WebhookSubscription, str]:
    """A new subscription and its secret, in plain text: shown this once, stored encrypted."""
    name = _check_name(name)
    url = await check_url(url, allow_private=sending.allow_private)
    kinds = check_kinds(kinds)
    await _check_unique(session, name)
    secret = signing.new_secret()
    sub = WebhookSubscription(
        name=name,
        url=url,
        kinds=kinds,
        enabled=enabled,
        description=description.strip(),
        secret_encrypted=sending.keyring.encrypt(secret),
    )
    session.add(sub)
    await session.flush()
    await record(
        session,
        "webhook.created",
        subject_type="webhook",
        subject_id=sub.id,
        actor=actor,
        data={"name": name, "url": url, "kinds": kinds},
    )
    return sub, secret


async def get_subscription(session: AsyncSession, subscription_id: int) -> WebhookSubscription:
    sub = await session.get(WebhookSubscription, subscription_id)
    if sub is None:
        raise NotFound(f"No webhook {subscription_id}")
    return sub


async def list_subscriptions(session: AsyncSession) -> list[WebhookSubscription]:
    stmt = select(WebhookSubscription).order_by(WebhookSubscription.name)
    return list((await session.scalars(stmt)).all())


async def update_subscription(
    session: AsyncSession,
    sub: WebhookSubscription,
    *,
    changes: dict[str, Any],
    allow_private: bool,
    actor: Actor,
) -> WebhookSubscription:
    changes = dict(changes)
    if "name" in changes:
        changes["name"] = _check_name(changes["name"])
        await _check_unique(session, changes["name"], sub.id)
    if "url" in changes:
        changes["url"] = await check_url(changes["url"], allow_private=allow_private)
    if "kinds" in changes:
        changes["kinds"] = check_kinds(changes["kinds"])
    if "description" in changes:
        changes["description"] = (changes["description"] or "").strip()
    changed = {k: v for k, v in changes.items() if getattr(sub, k) != v}
    for key, value in changed.items():
        setattr(sub, key, value)
    if changed:
        await session.flush()
        await session.refresh(sub)
        await record(
            session,
            "webhook.updated",
            subject_type="webhook",
            subject_id=sub.id,
            actor=actor,
            data={"changes": changed},
        )
    return sub


async def rotate_secret(
    session: AsyncSession, sub: WebhookSubscription, *, keyring: Keyring, actor: Actor
) -> str:
    """A new secret (returned once, in plain text); the old one stops signing at once."""
    secret = signing.new_secret()
    sub.secret_encrypted = keyring.encrypt(secret)
    await session.flush()
    await session.refresh(sub)
    await record(
        session, "webhook.secret_rotated", subject_type="webhook", subject_id=sub.id, actor=actor
    )
    return secret


async def delete_subscription(
    session: AsyncSession, sub: WebhookSubscription, *, actor: Actor
) -> None:
    await record(
        session,
        "webhook.deleted",
        subject_type="webhook",
        subject_id=sub.id,
        actor=actor,
        data={"name": sub.name, "url": sub.url},
    )
    await session.delete(sub)
    # the event (recorded first, while the row is there) drew a new version before the
    # row went: draw another, so no copy made in between keeps the deleted subscription
    await versions.bump(session, "webhooks")


# -- the outbox --------------------------------------------------------------------------------


def body_of(event: Event | Appended, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON a receiver gets: ``{id, kind, occurred_at, subject, data}``."""
    return {
        "id": event.id,
        "kind": event.kind,
        "occurred_at": event.occurred_at.isoformat(),
        "subject": {"type": event.subject_type, "id": event.subject_id},
        "data": event.data if data is None else data,
    }


async def _load_enabled(session: AsyncSession) -> list[tuple[int, list[str]]]:
    rows = await session.execute(
        select(WebhookSubscription.id, WebhookSubscription.kinds).where(
            WebhookSubscription.enabled.is_(True)
        )
    )
    return [(row.id, list(row.kinds)) for row in rows]


async def _enabled(session: AsyncSession) -> list[tuple[int, list[str]]]:
    """Enabled subscriptions (id, kinds): every event asks, so each process keeps them
    while their version holds (any subscription change draws a new one)."""
    return await versions.cached(session, "webhooks", "enabled", _load_enabled)


async def listens(session: AsyncSession, kind: str) -> bool:
    return any(catalogue.matches(k, kind) for _, k in await _enabled(session))


def _delivery(subscription_id: int, body: dict[str, Any], event_id: int | None) -> WebhookDelivery:
    return WebhookDelivery(
        delivery_id=str(uuid.uuid4()),
        subscription_id=subscription_id,
        event_id=event_id,
        kind=str(body["kind"]),
        payload=body,
        status="pending",
        attempts=0,
        next_attempt_at=clock.now(),
    )


async def enqueue_event(session: AsyncSession, event: Event | Appended) -> int:
    """A delivery row for every enabled subscription that wants this event's kind."""
    return await enqueue_events(session, [event], due_now=True)


async def enqueue_events(
    session: AsyncSession, events: Sequence[Event | Appended], *, due_now: bool = False
) -> int:
    """``enqueue_event`` for each event, in one statement; each delivery is due at its
    event's moment (``due_now``: now)."""
    enabled = await _enabled(session)
    now = clock.now()
    rows = []
    for event in events:
        wanted = [sid for sid, k in enabled if catalogue.matches(k, event.kind)]
        if not wanted:
            continue
        body = body_of(event)
        rows += [
            {
                "delivery_id": str(uuid.uuid4()),
                "subscription_id": sid,
                "event_id": event.id,
                "kind": str(body["kind"]),
                "payload": body,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now if due_now else event.occurred_at,
            }
            for sid in wanted
        ]
    if rows:
        # plain INSERTs: every event a subscription wants passes here, and nothing in the
        # transaction changes the rows again
        await session.execute(insert(_DELIVERIES), rows)
    return len(rows)


async def enqueue(
    session: AsyncSession, sub: WebhookSubscription, event: Event, *, data: dict[str, Any]
) -> WebhookDelivery:
    """One delivery to ``sub`` about ``event`` with its own ``data`` (pings, rule calls);
    sent even if the subscription does not list the kind."""
    if not sub.enabled:
        raise ValidationFailed(
            f"The webhook “{sub.name}” is disabled", fields={"subscription_id": "disabled"}
        )
    row = _delivery(sub.id, body_of(event, data), event.id)
    session.add(row)
    await session.flush()
    return row


async def ping(session: AsyncSession, sub: WebhookSubscription, *, actor: Actor) -> WebhookDelivery:
    event = await record(
        session, "webhook.ping", subject_type="webhook", subject_id=sub.id, actor=actor
    )
    return await enqueue(session, sub, event, data={"webhook": {"id": sub.id, "name": sub.name}})


async def list_deliveries(
    session: AsyncSession,
    *,
    subscription_id: int | None = None,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[WebhookDelivery]:
    stmt = select(WebhookDelivery)
    if subscription_id is not None:
        stmt = stmt.where(WebhookDelivery.subscription_id == subscription_id)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    if cursor is not None:
        stmt = stmt.where(WebhookDelivery.id < decode_id_cursor(cursor))
    rows = list(
        (await session.scalars(stmt.order_by(WebhookDelivery.id.desc()).limit(limit + 1))).all()
    )
    next_cursor = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)


async def get_delivery(session: AsyncSession, delivery_row_id: int) -> WebhookDelivery:
    row = await session.get(WebhookDelivery, delivery_row_id)
    if row is None:
        raise NotFound(f"No delivery {delivery_row_id}")
    return row


async def redeliver(
    session: AsyncSession, row: WebhookDelivery, *, actor: Actor
) -> WebhookDelivery:
    """Send again soon, with a fresh budget of attempts and the same delivery id."""
    if row.status == "pending" and row.attempts == 0:
        return row
    row.status, row.attempts, row.next_attempt_at = "pending", 0, clock.now()
    row.error = None
    await session.flush()
    await record(
        session,
        "webhook.redelivered",
        subject_type="webhook",
        subject_id=row.subscription_id,
        actor=actor,
        data={"delivery": row.delivery_id},
    )
    return row


# -- sending -----------------------------------------------------------------------------------


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _retry_after(response: httpx.Response) -> timedelta | None:
    value = response.headers.get("retry-after", "")
    return timedelta(seconds=min(int(value), 6 * 3600)) if value.isdigit() else None


async def _attempt(
    client: httpx.AsyncClient, row: WebhookDelivery, sub: WebhookSubscription, sending: Sending
) -> tuple[str, timedelta | None]:
    """POST once; the outcome is ``delivered``, ``retry`` or ``failed``, and a wait if the
    receiver asked for one."""
    try:
        secret = sending.keyring.decrypt(sub.secret_encrypted)
    except BadToken:
        row.error = "the secret cannot be decrypted (was the secret key changed?)"
        return "failed", None
    try:
        await targets.check_address(sub.url, allow_private=sending.allow_private, must_resolve=True)
    except targets.TargetRefused as exc:
        row.error = f"refused: {exc.reason}"
        return ("retry" if "does not resolve" in exc.reason else "failed"), None
    body = encode(row.payload)
    timestamp = int(clock.now().timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Servicecycle-Event": row.kind,
        "Servicecycle-Delivery": row.delivery_id,
        "Servicecycle-Timestamp": str(timestamp),
        "Servicecycle-Signature": signing.signature(secret, timestamp, body),
    }
    started = time.perf_counter()
    try:
        response = await client.post(sub.url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        row.duration_ms = int((time.perf_counter() - started) * 1000)
        row.response_code, row.response_excerpt = None, None
        row.error = f"{type(exc).__name__}: {exc}"[:EXCERPT]
        return "retry", None
    row.duration_ms = int((time.perf_counter() - started) * 1000)
    row.response_code = response.status_code
    row.response_excerpt = response.text[:EXCERPT]
    if 200 <= response.status_code < 300:
        row.error = None
        return "delivered", None
    row.error = f"HTTP {response.status_code}"
    if response.status_code == 429 or response.status_code >= 500:
        return "retry", _retry_after(response)
    return "failed", None


async def deliver_due(
    session: AsyncSession,
    sending: Sending,
    *,
    limit: int = 50,
    now: datetime | None = None,
    client: httpx.AsyncClient | None = None,
) -> tuple[int, int]:
    """POST the due deliveries of enabled subscriptions; returns (delivered, failed)."""
    now = now or clock.now()
    rows = list(
        (
            await session.scalars(
                select(WebhookDelivery)
                .join(WebhookSubscription)
                .where(
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at <= now,
                    WebhookSubscription.enabled.is_(True),
                )
                .order_by(WebhookDelivery.id)
                .limit(limit)
                .with_for_update(of=WebhookDelivery, skip_locked=True)
            )
        ).all()
    )
    if not rows:
        return 0, 0
    subs = {
        sub.id: sub
        for sub in await session.scalars(
            select(WebhookSubscription).where(
                WebhookSubscription.id.in_({row.subscription_id for row in rows})
            )
        )
    }
    own = client is None
    http = client or httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False)
    gate = asyncio.Semaphore(PARALLEL)

    async def attempt(row: WebhookDelivery) -> tuple[str, timedelta | None]:
        async with gate:
            row.attempts += 1
            row.last_attempt_at = clock.now()
            return await _attempt(http, row, subs[row.subscription_id], sending)

    try:  # the POSTs run side by side (a slow receiver does not hold up the others)
        outcomes = await asyncio.gather(*(attempt(row) for row in rows))
    finally:
        if own:
            await http.aclose()
    delivered = failed = 0
    for row, (outcome, wait) in zip(rows, outcomes, strict=True):
        if outcome == "retry" and row.attempts >= MAX_ATTEMPTS:
            outcome = "failed"
        if outcome == "delivered":
            row.status, row.delivered_at, row.next_attempt_at = "delivered", clock.now(), None
            delivered += 1
        elif outcome == "retry":
            row.next_attempt_at = clock.now() + max(backoff(row.attempts), wait or timedelta())
        else:
            row.status, row.next_attempt_at = "failed", None
            failed += 1
            await record(
                session,
                "webhook.failed",
                subject_type="webhook",
                subject_id=row.subscription_id,
                actor=SENDER,
                data={
                    "delivery": row.delivery_id,
                    "kind": row.kind,
                    "attempts": row.attempts,
                    "error": row.error,
                },
            )
            log.warning(
                "webhook.failed",
                webhook=row.subscription_id,
                delivery=row.delivery_id,
                error=row.error,
            )
    await session.flush()
    return delivered, failed


def sending_for(settings: Any) -> Sending:
    """The keyring and SSRF rule from the settings (``webhooks_allow_private``, default off)."""
    return Sending(
        keyring=settings.keyring(),
        allow_private=bool(settings.webhooks_allow_private),
    )


# -- inbound -----------------------------------------------------------------------------------


async def receive(
    session: AsyncSession,
    *,
    source: str,
    external_id: str | None,
    subject: str,
    body: str,
    email: str,
    name: str | None,
    priority: str,
    tags: list[str],
    custom: dict[str, Any] | None,
    actor: Actor,
) -> tuple[Ticket, bool]:
    """A ticket (channel ``api``) from another system, and whether it is new: the same
    ``external_id`` from the same ``source`` finds the ticket made the first time."""
    if external_id is not None:
        await session.execute(
            select(func.pg_advisory_xact_lock(func.hashtextextended(f"{source}\n{external_id}", 0)))
        )
        known = await session.scalar(
            select(InboundReference.ticket_id).where(
                InboundReference.source == source, InboundReference.external_id == external_id
            )
        )
        if known is not None:
            return await tickets.get_ticket(session, known), False
    requester = await customers.find_or_create_by_email(
        session, email=email, name=(name or "").strip() or email.split("@")[0], actor=actor
    )
    ticket, _ = await tickets.create_ticket(
        session,
        subject=subject,
        requester=requester,
        channel="api",
        body_text=body,
        priority=priority,
        tags=tags,
        custom=custom or None,
        actor=actor,
    )
    if external_id is not None:
        session.add(InboundReference(source=source, external_id=external_id, ticket_id=ticket.id))
        await session.flush()
    await record(
        session,
        "webhook.received",
        subject_type="ticket",
        subject_id=ticket.id,
        actor=actor,
        data={"source": source, "external_id": external_id},
    )
    return ticket, True
