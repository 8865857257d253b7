"""Customers' sign-in to the portal: magic links, passwords, sessions and rate limits.

Flushes; the caller commits. Requests (tickets) seen from the portal are in ``requests.py``.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth.passwords import (
    MIN_PASSWORD_LENGTH,
    hash_password,
    hash_token,
    needs_rehash,
    new_token,
    verify_password,
)
from servicecycle.channels.email import outbox
from servicecycle.customers import service as customers
from servicecycle.customers.models import Customer
from servicecycle.events.service import Actor, record
from servicecycle.kit import clock
from servicecycle.kit.errors import TooManyRequests, Unauthenticated, ValidationFailed
from servicecycle.kit.secrets import BadToken, Keyring
from servicecycle.portal.models import (
    PortalAccount,
    PortalSession,
    SharedCompany,
    ThrottleHit,
    UsedLink,
)

LINK_PURPOSE = "portal.login"
API_TOKEN_PREFIX = "scp_"  # noqa: S105 - a public marker, not a secret
PORTAL = Actor.system("portal")
REFUSED_LINK = "This sign-in link cannot be used. Links work once, for a short time."


def customer_actor(customer_id: int) -> Actor:
    return Actor("customer", str(customer_id))


@dataclass(frozen=True)
class Limit:
    count: int
    window: timedelta


@dataclass(frozen=True)
class Policy:
    """How long links and sessions last and how often each thing may be asked for."""

    link_lifetime: timedelta = timedelta(minutes=20)
    session_lifetime: timedelta = timedelta(days=14)
    links_per_address: Limit = Limit(3, timedelta(minutes=15))
    links_per_ip: Limit = Limit(10, timedelta(minutes=15))
    forms_per_ip: Limit = Limit(5, timedelta(minutes=10))
    password_failures_per_address: Limit = Limit(5, timedelta(minutes=15))
    password_failures_per_ip: Limit = Limit(20, timedelta(minutes=15))


# -- rate limits ----------------------------------------------------------------------------


async def _refuse_over(session: AsyncSession, bucket: str, key: str, limit: Limit) -> None:
    now = clock.now()
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(ThrottleHit.at)).where(
                ThrottleHit.bucket == bucket,
                ThrottleHit.key == key,
                ThrottleHit.at > now - limit.window,
            )
        )
    ).one()
    if count >= limit.count:
        retry = math.ceil((oldest + limit.window - now).total_seconds())
        raise TooManyRequests(
            "Too many requests. Please wait a few minutes and try again.",
            retry_after=max(retry, 1),
        )


async def _count(session: AsyncSession, bucket: str, key: str) -> None:
    session.add(ThrottleHit(bucket=bucket, key=key[:320], at=clock.now()))
    await session.flush()


async def throttle(session: AsyncSession, bucket: str, key: str, limit: Limit) -> None:
    """Refuse (429) once ``key`` was counted ``limit.count`` times in the window; else count it."""
    await _refuse_over(session, bucket, key, limit)
    await _count(session, bucket, key)


async def remove_expired(session: AsyncSession, *, now: datetime) -> dict[str, int]:
    """Delete ended sessions, links past their lifetime, and rate-limit records over a day old."""
    done = {}
    for name, stmt in (
        ("sessions", delete(PortalSession).where(PortalSession.expires_at < now)),
        ("used_links", delete(UsedLink).where(UsedLink.expires_at < now)),
        ("throttle_hits", delete(ThrottleHit).where(ThrottleHit.at < now - timedelta(days=1))),
    ):
        done[name] = (await session.execute(stmt)).rowcount  # type: ignore[attr-defined]
    return done


# -- magic links ----------------------------------------------------------------------------


def normalise_email(email: str) -> str:
    return customers.normalise_identity("email", email)


async def request_link(
    session: AsyncSession,
    *,
    email: str,
    ip: str,
    keyring: Keyring,
    portal_url: str,
    sender: str,
    desk_name: str,
    policy: Policy,
) -> None:
    """Mail a sign-in link if ``email`` belongs to a customer. Known or not, the caller
    answers the same; both are rate-limited alike, so neither reveals who is a customer."""
    address = normalise_email(email)
    await _refuse_over(session, "link_ip", ip, policy.links_per_ip)
    await _refuse_over(session, "link_address", address, policy.links_per_address)
    await _count(session, "link_ip", ip)
    await _count(session, "link_address", address)
    customer = await customers.find_by_identity(session, "email", address)
    if customer is None or customer.merged_into_id is not None:
        return
    expires_at = clock.now() + policy.link_lifetime
    token = keyring.sign(
        LINK_PURPOSE,
        {"c": customer.id, "l": secrets.token_urlsafe(16)},
        expires_at=expires_at,
    )
    minutes = int(policy.link_lifetime.total_seconds() // 60)
    body = (
        f"Hello {customer.name},\n\nFollow this link to sign in to {desk_name}:\n\n"
        f"{portal_url.rstrip('/')}/login/{token}\n\n"
        f"The link works once, within {minutes} minutes. If you did not ask for it, "
        "you can ignore this e-mail."
    )
    row = await outbox.queue_plain(
        session,
        kind="sign_in_link",
        to=address,
        subject=f"Your sign-in link for {desk_name}",
        body=body,
        sender=sender,
    )
    await record(
        session,
        "portal.link_sent",
        subject_type="customer",
        subject_id=customer.id,
        actor=PORTAL,
        data={"outbound_id": row.id, "ip": ip},
    )


def _read_link(token: str, keyring: Keyring) -> tuple[int, str]:
    try:
        payload = keyring.unsign(LINK_PURPOSE, token, now=clock.now())
    except BadToken as exc:
        raise Unauthenticated(REFUSED_LINK) from exc
    customer_id, link_id = payload.get("c"), payload.get("l")
    if not isinstance(customer_id, int) or not isinstance(link_id, str) or not link_id:
        raise Unauthenticated(REFUSED_LINK)
    return customer_id, link_id


async def link_usable(session: AsyncSession, *, token: str, keyring: Keyring) -> bool:
    """Whether a sign-in link would be accepted now (read only: it stays unused)."""
    try:
        _, link_id = _read_link(token, keyring)
    except Unauthenticated:
        return False
    return await session.get(UsedLink, link_id) is None


async def consume_link(
    session: AsyncSession, *, token: str, keyring: Keyring, policy: Policy
) -> Customer:
    """The customer a sign-in link was made for; refused (401, one message for every reason)
    if it was altered, has expired, or was used before."""
    customer_id, link_id = _read_link(token, keyring)
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise Unauthenticated(REFUSED_LINK)
    claimed = await session.scalar(
        insert(UsedLink)
        .values(
            link_id=link_id,
            customer_id=customer_id,
            used_at=clock.now(),
            expires_at=clock.now() + policy.link_lifetime,
        )
        .on_conflict_do_nothing()
        .returning(UsedLink.link_id)
    )
    if claimed is None:
        raise Unauthenticated(REFUSED_LINK)
    if customer.merged_into_id is not None:  # the person now lives in the merged record
        customer = await customers.get_customer(session, customer.merged_into_id)
    await record(
        session,
        "portal.signed_in",
        subject_type="customer",
        subject_id=customer.id,
        actor=customer_actor(customer.id),
        data={"method": "link"},
    )
    return customer


# -- passwords ------------------------------------------------------------------------------


async def has_password(session: AsyncSession, customer: Customer) -> bool:
    account = await session.get(PortalAccount, customer.id)
    return account is not None and account.password_hash is not None


async def set_password(
    session: AsyncSession, customer: Customer, *, password: str, keep: PortalSession | None
) -> None:
    """Set or change the customer's portal password; every other session of theirs ends
    (a stolen session does not survive the change), ``keep`` stays signed in."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            "Password too short", fields={"password": f"at least {MIN_PASSWORD_LENGTH} characters"}
        )
    if len(password) > 1024:
        raise ValidationFailed("Password too long", fields={"password": "at most 1024 characters"})
    now = clock.now()
    hashed = hash_password(password)
    await session.execute(
        insert(PortalAccount)
        .values(customer_id=customer.id, password_hash=hashed, password_set_at=now)
        .on_conflict_do_update(
            index_elements=[PortalAccount.customer_id],
            set_={"password_hash": hashed, "password_set_at": now},
        )
    )
    others = delete(PortalSession).where(PortalSession.customer_id == customer.id)
    if keep is not None:
        others = others.where(PortalSession.id != keep.id)
    await session.execute(others)
    await record(
        session,
        "portal.password_set",
        subject_type="customer",
        subject_id=customer.id,
        actor=customer_actor(customer.id),
    )


async def authenticate(
    session: AsyncSession, *, email: str, password: str, ip: str, policy: Policy
) -> Customer | None:
    """The customer with this e-mail and password, or None (the failure is counted). While
    the address or IP is throttled it answers 429 even for the right password."""
    address = email.strip().lower()[:320]
    await _refuse_over(session, "password_address", address, policy.password_failures_per_address)
    await _refuse_over(session, "password_ip", ip, policy.password_failures_per_ip)
    try:
        customer = await customers.find_by_identity(session, "email", address)
    except ValidationFailed:
        customer = None
    account = await session.get(PortalAccount, customer.id) if customer else None
    stored = account.password_hash if account else None
    ok = verify_password(stored, password)  # a dummy hash when there is none: same timing
    if customer is None or account is None or stored is None or not ok:
        await _count(session, "password_address", address)
        await _count(session, "password_ip", ip)
        return None
    if needs_rehash(stored):
        account.password_hash = hash_password(password)
    await session.execute(
        delete(ThrottleHit).where(
            ThrottleHit.bucket == "password_address", ThrottleHit.key == address
        )
    )
    await record(
        session,
        "portal.signed_in",
        subject_type="customer",
        subject_id=customer.id,
        actor=customer_actor(customer.id),
        data={"method": "password"},
    )
    return customer


# -- sessions -------------------------------------------------------------------------------


async def start_session(
    session: AsyncSession, customer: Customer, *, kind: str, lifetime: timedelta
) -> str:
    """Open a customer session; returns the cookie or bearer value (only its hash is kept)."""
    token = new_token(API_TOKEN_PREFIX if kind == "api" else "")
    now = clock.now()
    session.add(
        PortalSession(
            token_hash=hash_token(token),
            customer_id=customer.id,
            kind=kind,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    await session.flush()
    return token


async def resolve_session(
    session: AsyncSession, token: str, *, kind: str
) -> tuple[PortalSession, Customer] | None:
    row = (
        await session.execute(
            select(PortalSession, Customer)
            .join(Customer, Customer.id == PortalSession.customer_id)
            .where(PortalSession.token_hash == hash_token(token), PortalSession.kind == kind)
        )
    ).one_or_none()
    if row is None:
        return None
    portal_session, customer = row
    if portal_session.expires_at <= clock.now() or customer.merged_into_id is not None:
        return None
    return portal_session, customer


async def end_session(session: AsyncSession, portal_session: PortalSession) -> None:
    await session.delete(portal_session)
    await session.flush()


# -- companies ------------------------------------------------------------------------------


async def shared_company_ids(session: AsyncSession) -> list[int]:
    return list((await session.scalars(select(SharedCompany.company_id))).all())


async def set_company_shared(
    session: AsyncSession, company_id: int, *, shared: bool, actor: Actor
) -> None:
    """Let a company's people see each other's requests in the portal, or stop it."""
    await customers.get_company(session, company_id)  # 404 for an unknown company
    if shared:
        await session.execute(
            insert(SharedCompany).values(company_id=company_id).on_conflict_do_nothing()
        )
    else:
        await session.execute(delete(SharedCompany).where(SharedCompany.company_id == company_id))
    await record(
        session,
        "portal.company_sharing",
        subject_type="company",
        subject_id=company_id,
        actor=actor,
        data={"shared": shared},
    )
