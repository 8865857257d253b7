"""Every change to customers and companies. Flushes; the caller commits."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.customers.models import Company, Customer, CustomerIdentity
from servicecycle.events.service import Actor, NewEvent, record, record_many
from servicecycle.kit import clock
from servicecycle.kit.errors import (
    Conflict,
    NotFound,
    PreconditionFailed,
    ServiceError,
    ValidationFailed,
)
from servicecycle.kit.pagination import Page, decode_id_cursor, encode_cursor

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ().-]{4,30}$")
EDITABLE = ("name", "company_id", "tier", "segment", "tags", "notes", "attributes")


def normalise_identity(kind: str, value: str) -> str:
    """The stored form: e-mails lower-cased, phones digits only (with a leading +)."""
    value = value.strip()
    if kind == "email":
        if not _EMAIL.match(value) or len(value) > 320:
            raise ValidationFailed(
                "Invalid e-mail address", fields={"email": "not an e-mail address"}
            )
        return value.lower()
    if kind == "phone":
        if not _PHONE.match(value):
            raise ValidationFailed("Invalid phone number", fields={"phone": "not a phone number"})
        return ("+" if value.startswith("+") else "") + re.sub(r"\D", "", value)
    if kind == "external":
        if not value or len(value) > 320:
            raise ValidationFailed(
                "Invalid external id", fields={"external_id": "1-320 characters"}
            )
        return value
    raise ValidationFailed("Unknown identity kind", fields={"kind": "email, phone or external"})


def _clean_tags(tags: list[str]) -> list[str]:
    cleaned = sorted({t.strip().lower() for t in tags if t.strip()})
    if any(len(t) > 80 for t in cleaned):
        raise ValidationFailed("Tag too long", fields={"tags": "at most 80 characters each"})
    return cleaned


# -- companies ------------------------------------------------------------------------------


async def create_company(
    session: AsyncSession, *, name: str, domain: str | None, tier: str, actor: Actor
) -> Company:
    name = name.strip()
    if not name:
        raise ValidationFailed("Name is required", fields={"name": "must not be empty"})
    taken = await session.scalar(select(Company.id).where(func.lower(Company.name) == name.lower()))
    if taken is not None:
        raise Conflict("A company with this name exists", fields={"name": "already taken"})
    company = Company(
        name=name, domain=(domain or "").strip().lower() or None, tier=tier or "standard"
    )
    session.add(company)
    await session.flush()
    await record(
        session,
        "company.created",
        subject_type="company",
        subject_id=company.id,
        actor=actor,
        data={"name": name},
    )
    return company


async def get_company(session: AsyncSession, company_id: int) -> Company:
    company = await session.get(Company, company_id)
    if company is None:
        raise NotFound(f"No company {company_id}")
    return company


async def _check_company(session: AsyncSession, company_id: int | None) -> None:
    if company_id is not None and await session.get(Company, company_id) is None:
        raise ValidationFailed("No such company", fields={"company_id": "unknown company"})


async def list_companies(session: AsyncSession) -> list[Company]:
    return list((await session.scalars(select(Company).order_by(Company.name))).all())


# -- customers ------------------------------------------------------------------------------


async def get_customer(session: AsyncSession, customer_id: int) -> Customer:
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"No customer {customer_id}")
    return customer


async def identities_of(
    session: AsyncSession, customer_ids: list[int]
) -> dict[int, list[CustomerIdentity]]:
    rows = await session.scalars(
        select(CustomerIdentity)
        .where(CustomerIdentity.customer_id.in_(customer_ids))
        .order_by(CustomerIdentity.id)
    )
    found: dict[int, list[CustomerIdentity]] = {cid: [] for cid in customer_ids}
    for identity in rows:
        found[identity.customer_id].append(identity)
    return found


async def find_by_identity(session: AsyncSession, kind: str, value: str) -> Customer | None:
    """The customer who owns this identity (following merges), or None."""
    normalised = normalise_identity(kind, value)
    customer = await session.scalar(
        select(Customer)
        .join(CustomerIdentity, CustomerIdentity.customer_id == Customer.id)
        .where(CustomerIdentity.kind == kind, CustomerIdentity.value == normalised)
    )
    return customer


@dataclass(frozen=True)
class NewCustomer:
    """A customer to add (``create_customers``), with their identities."""

    name: str
    emails: Sequence[str] = ()
    phones: Sequence[str] = ()
    external_ids: Sequence[str] = ()
    company_id: int | None = None
    tier: str = "standard"
    segment: str | None = None
    tags: Sequence[str] = ()
    notes: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    at: datetime | None = None  # when they were added (default: now)


async def create_customer(
    session: AsyncSession,
    *,
    name: str,
    emails: list[str] | None = None,
    phones: list[str] | None = None,
    external_ids: list[str] | None = None,
    company_id: int | None = None,
    tier: str = "standard",
    segment: str | None = None,
    tags: list[str] | None = None,
    notes: str = "",
    attributes: dict[str, Any] | None = None,
    actor: Actor,
) -> Customer:
    """Add a customer with their identities; an identity already in use is a 409 naming it."""
    new = NewCustomer(
        name=name,
        emails=emails or (),
        phones=phones or (),
        external_ids=external_ids or (),
        company_id=company_id,
        tier=tier,
        segment=segment,
        tags=tags or (),
        notes=notes,
        attributes=attributes or {},
    )
    (customer,) = await _create(session, [new], actor=actor, named=False)
    return customer


async def create_customers(
    session: AsyncSession, items: Sequence[NewCustomer], *, actor: Actor
) -> list[Customer]:
    """``create_customer`` for each item, in order, in a statement or two each for the
    checks, the rows, their identities and the ``customer.created`` events. Everything is
    checked first: an invalid item, an unknown company or an identity already in use (also
    by an earlier item) refuses the whole batch, naming the item, and writes nothing."""
    return await _create(session, items, actor=actor, named=True)


async def _create(
    session: AsyncSession, items: Sequence[NewCustomer], *, actor: Actor, named: bool
) -> list[Customer]:
    """``create_customers``; ``named``: a refusal names its item (else: one customer's
    error, as it was)."""

    def refuse(exc: ServiceError, index: int) -> ServiceError:
        return exc.at_item(index, f"customer {items[index].name[:40]!r}") if named else exc

    cleaned: list[tuple[Customer, list[tuple[str, str]]]] = []
    for index, item in enumerate(items):
        try:
            customer, identities = _new_row(item)
        except ServiceError as exc:
            raise refuse(exc, index) from exc
        cleaned.append((customer, identities))
    companies = {item.company_id for item in items if item.company_id is not None}
    if companies:
        known = set(await session.scalars(select(Company.id).where(Company.id.in_(companies))))
        for index, item in enumerate(items):
            if item.company_id is not None and item.company_id not in known:
                unknown = ValidationFailed(
                    "No such company", fields={"company_id": "unknown company"}
                )
                raise refuse(unknown, index)
    owner: dict[tuple[str, str], int] = {}
    for index, (_, identities) in enumerate(cleaned):
        for identity in identities:
            earlier = owner.setdefault(identity, index)
            if earlier != index:
                raise refuse(_taken(identity, f"item {earlier} of this batch"), index)
    taken = await _taken_identities(session, list(owner))
    if taken:
        first = min(taken, key=lambda identity: owner[identity])
        index = owner[first]
        conflict = _taken(first, f"customer {taken[first]}", customer_id=taken[first])
        raise refuse(conflict, index)
    now = clock.now()
    await _insert(
        session,
        [
            (customer, identities, item.at or now)
            for (customer, identities), item in zip(cleaned, items, strict=True)
        ],
        actor=actor,
    )
    return [customer for customer, _ in cleaned]


async def _insert(
    session: AsyncSession,
    made: list[tuple[Customer, list[tuple[str, str]], datetime]],
    *,
    actor: Actor,
) -> None:
    """Write checked new customers (row, normalised identities, when): the rows, then the
    identities, then the ``customer.created`` events, a statement each."""
    for customer, _, at in made:
        customer.created_at = customer.updated_at = at
    session.add_all(customer for customer, _, _ in made)
    await session.flush()
    session.add_all(
        CustomerIdentity(customer_id=customer.id, kind=kind, value=value)
        for customer, identities, _ in made
        for kind, value in identities
    )
    await session.flush()
    await record_many(
        session,
        [
            NewEvent(
                "customer.created",
                "customer",
                customer.id,
                actor,
                at,
                {"name": customer.name, "identities": [v for _, v in identities]},
            )
            for customer, identities, at in made
        ],
    )


def _new_row(item: NewCustomer) -> tuple[Customer, list[tuple[str, str]]]:
    """The customer's row (not added) and their normalised identities, once each."""
    wanted = [("email", v) for v in item.emails] + [("phone", v) for v in item.phones]
    wanted += [("external", v) for v in item.external_ids]
    normalised = list(dict.fromkeys((kind, normalise_identity(kind, v)) for kind, v in wanted))
    name = item.name.strip() or next((v.split("@")[0] for k, v in normalised if k == "email"), "")
    if not name:
        raise ValidationFailed("Name is required", fields={"name": "must not be empty"})
    customer = Customer(
        name=name[:200],
        company_id=item.company_id,
        tier=item.tier or "standard",
        segment=item.segment,
        tags=_clean_tags(list(item.tags)),
        notes=item.notes,
        attributes=dict(item.attributes),
    )
    return customer, normalised


_FIELDS = {"email": "emails", "phone": "phones", "external": "external_ids"}


def _taken(identity: tuple[str, str], owner: str, customer_id: int | None = None) -> Conflict:
    kind, value = identity
    return Conflict(
        f"{value} already belongs to {owner}",
        fields={_FIELDS[kind]: f"{value} is taken"},
        extra={"customer_id": customer_id} if customer_id is not None else {},
    )


async def _taken_identities(
    session: AsyncSession, identities: list[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """Which of these identities belong to a customer already, and to whom (one query)."""
    if not identities:
        return {}
    rows = await session.execute(
        select(CustomerIdentity.kind, CustomerIdentity.value, CustomerIdentity.customer_id).where(
            tuple_(CustomerIdentity.kind, CustomerIdentity.value).in_(identities)
        )
    )
    return {(kind, value): int(customer_id) for kind, value, customer_id in rows}


async def _refuse_taken(session: AsyncSession, identities: list[tuple[str, str]]) -> None:
    taken = await _taken_identities(session, identities)
    first = next((identity for identity in identities if identity in taken), None)
    if first is not None:
        raise _taken(first, f"customer {taken[first]}", customer_id=taken[first])


async def find_or_create_by_email(
    session: AsyncSession, *, email: str, name: str, actor: Actor
) -> Customer:
    """The customer with this e-mail, or a new one (how channels meet unknown senders)."""
    existing = await find_by_identity(session, "email", email)
    if existing is not None:
        return existing
    return await _create_for_email(session, email=email, name=name, actor=actor)


async def _create_for_email(
    session: AsyncSession, *, email: str, name: str, actor: Actor
) -> Customer:
    """``create_customer`` with one e-mail just found unused in this transaction (so not
    looked up a second time; a concurrent taker still meets the unique index)."""
    value = normalise_identity("email", email)
    customer = _plain(name.strip() or value.split("@")[0])
    await _insert(session, [(customer, [("email", value)], clock.now())], actor=actor)
    return customer


def _plain(name: str) -> Customer:
    """A customer with nothing but a name (what ``create_customer`` makes of an address)."""
    return Customer(
        name=name[:200],
        company_id=None,
        tier="standard",
        segment=None,
        tags=[],
        notes="",
        attributes={},
    )


async def find_many_by_email(session: AsyncSession, emails: list[str]) -> dict[str, Customer]:
    """The customers owning these e-mails, by normalised address, in one query; unknown
    addresses (and those that are no e-mail address at all) are absent."""
    wanted = []
    for email in emails:
        try:
            wanted.append(normalise_identity("email", email))
        except ValidationFailed:
            continue
    wanted = list(dict.fromkeys(wanted))
    if not wanted:
        return {}
    rows = await session.execute(
        select(CustomerIdentity.value, Customer)
        .join(Customer, CustomerIdentity.customer_id == Customer.id)
        .where(CustomerIdentity.kind == "email", CustomerIdentity.value.in_(wanted))
    )
    return {value: customer for value, customer in rows}


async def create_many_by_email(
    session: AsyncSession, senders: list[tuple[str, str]], *, actor: Actor
) -> dict[str, Customer]:
    """A new customer for each (e-mail, name) whose e-mail the caller found unused in this
    transaction (``find_many_by_email``): ``find_or_create_by_email``'s new customers, their
    rows, identities and ``customer.created`` events written in one statement each."""
    made: dict[str, Customer] = {}
    for email, name in senders:
        value = normalise_identity("email", email)
        if value not in made:
            made[value] = _plain(name.strip() or value.split("@")[0])
    if not made:
        return {}
    now = clock.now()
    await _insert(
        session,
        [(customer, [("email", value)], now) for value, customer in made.items()],
        actor=actor,
    )
    return made


async def update_customer(
    session: AsyncSession,
    customer: Customer,
    *,
    expected_version: int,
    changes: dict[str, Any],
    actor: Actor,
) -> Customer:
    if customer.version != expected_version:
        raise PreconditionFailed(
            f"Customer {customer.id} was changed by someone else; reload and try again",
            extra={"current_version": customer.version},
        )
    changed: dict[str, Any] = {}
    for key in EDITABLE:
        if key not in changes:
            continue
        value = changes[key]
        if key == "name":
            value = str(value).strip()
            if not value:
                raise ValidationFailed("Name is required", fields={"name": "must not be empty"})
        if key == "tags":
            value = _clean_tags(value)
        if key == "company_id":
            await _check_company(session, value)
        if getattr(customer, key) != value:
            setattr(customer, key, value)
            changed[key] = value
    if changed:
        await session.flush()
        await record(
            session,
            "customer.updated",
            subject_type="customer",
            subject_id=customer.id,
            actor=actor,
            data={"changes": changed},
        )
    return customer


async def add_identity(
    session: AsyncSession, customer: Customer, *, kind: str, value: str, actor: Actor
) -> CustomerIdentity:
    normalised = normalise_identity(kind, value)
    await _refuse_taken(session, [(kind, normalised)])
    identity = CustomerIdentity(customer_id=customer.id, kind=kind, value=normalised)
    session.add(identity)
    await session.flush()
    await record(
        session,
        "customer.identity_added",
        subject_type="customer",
        subject_id=customer.id,
        actor=actor,
        data={"kind": kind, "value": normalised},
    )
    return identity


async def list_customers(
    session: AsyncSession, *, query: str | None = None, limit: int = 50, cursor: str | None = None
) -> Page[Customer]:
    """Customers by id, optionally those whose name or any identity contains ``query``."""
    stmt = select(Customer).where(Customer.merged_into_id.is_(None)).order_by(Customer.id)
    if query:
        like = f"%{query.strip().lower()}%"
        matching = select(CustomerIdentity.customer_id).where(CustomerIdentity.value.ilike(like))
        stmt = stmt.where(or_(Customer.name.ilike(like), Customer.id.in_(matching)))
    if cursor is not None:
        stmt = stmt.where(Customer.id > decode_id_cursor(cursor))
    rows = list((await session.scalars(stmt.limit(limit + 1))).all())
    next_cursor = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)


async def merge_into(
    session: AsyncSession, source: Customer, target: Customer, *, actor: Actor
) -> None:
    """Move ``source``'s identities to ``target`` and mark it merged. The caller moves what
    higher domains hold (tickets) in the same transaction."""
    if source.id == target.id:
        raise ValidationFailed(
            "A customer cannot be merged into itself", fields={"into_id": "same customer"}
        )
    if source.merged_into_id is not None or target.merged_into_id is not None:
        raise Conflict("One of these customers was already merged away")
    identities = await session.scalars(
        select(CustomerIdentity).where(CustomerIdentity.customer_id == source.id)
    )
    moved = []
    for identity in identities:
        identity.customer_id = target.id
        moved.append(identity.value)
    target.tags = sorted(set(target.tags) | set(source.tags))
    source.merged_into_id = target.id
    await session.flush()
    await record(
        session,
        "customer.merged",
        subject_type="customer",
        subject_id=source.id,
        actor=actor,
        data={"into": target.id, "identities": moved},
    )
    await record(
        session,
        "customer.absorbed",
        subject_type="customer",
        subject_id=target.id,
        actor=actor,
        data={"from": source.id, "identities": moved},
    )
