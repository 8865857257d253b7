"""Requests (tickets) as a customer sees them: only their own (and their company's, where the
company shares), only the public thread. Changes go through the tickets service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.customers import service as customers
from servicecycle.customers.models import Customer
from servicecycle.events.service import Actor
from servicecycle.kit.errors import NotFound, TooLarge, ValidationFailed
from servicecycle.portal.models import PortalUpload, SharedCompany
from servicecycle.portal.service import PORTAL, customer_actor
from servicecycle.tickets import attachments, custom_fields
from servicecycle.tickets import service as tickets
from servicecycle.tickets.models import Attachment, CustomField, Message, Ticket
from servicecycle.tickets.storage import Storage

NOT_FOUND = "There is no such request."
LIST_LIMIT = 200


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str | None
    data: bytes


@dataclass(frozen=True)
class Files:
    """Where files go and how big they may be."""

    storage: Storage
    max_bytes: int


# -- reading --------------------------------------------------------------------------------


async def _company_shares(session: AsyncSession, customer: Customer) -> bool:
    return (
        customer.company_id is not None
        and await session.get(SharedCompany, customer.company_id) is not None
    )


async def visible_tickets(session: AsyncSession, customer: Customer) -> list[Ticket]:
    """The customer's requests, newest activity first, plus their company's if it shares."""
    mine = Ticket.requester_id == customer.id
    if await _company_shares(session, customer):
        colleagues = select(Customer.id).where(Customer.company_id == customer.company_id)
        mine = or_(mine, Ticket.requester_id.in_(colleagues))
    stmt = (
        select(Ticket)
        .where(mine, Ticket.merged_into_id.is_(None))
        .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
        .limit(LIST_LIMIT)
    )
    return list((await session.scalars(stmt)).all())


async def get_visible(session: AsyncSession, customer: Customer, ticket_id: int) -> Ticket:
    """A request this customer may see (a merged one leads to where it went); else 404 with
    the same message whether it exists or not."""
    for _ in range(5):
        try:
            ticket = await tickets.get_ticket(session, ticket_id)
        except NotFound:
            break
        if ticket.requester_id != customer.id:
            requester = await session.get(Customer, ticket.requester_id)
            same_company = (
                requester is not None
                and requester.company_id == customer.company_id
                and await _company_shares(session, customer)
            )
            if not same_company:
                break
        if ticket.merged_into_id is None:
            return ticket
        ticket_id = ticket.merged_into_id
    raise NotFound(NOT_FOUND)


async def public_thread(
    session: AsyncSession, ticket: Ticket
) -> tuple[list[Message], dict[int, list[Attachment]]]:
    """The public messages only (never internal notes), with their files."""
    messages = await tickets.thread(session, ticket, public_only=True)
    files = await attachments.of_messages(session, [m.id for m in messages])
    return messages, files


async def visible_attachment(
    session: AsyncSession, customer: Customer, ticket_id: int, attachment_id: int
) -> Attachment:
    """A file on a public message of a request this customer may see; else 404."""
    ticket = await get_visible(session, customer, ticket_id)
    try:
        attachment = await attachments.get_attachment(session, attachment_id)
    except NotFound:
        raise NotFound(NOT_FOUND) from None
    message = (
        await tickets.get_message(session, attachment.message_id) if attachment.message_id else None
    )
    if message is None or message.ticket_id != ticket.id or not message.public:
        raise NotFound(NOT_FOUND)
    return attachment


async def public_fields(session: AsyncSession) -> list[CustomField]:
    """The custom fields admins marked public, for the request forms."""
    return [f for f in await custom_fields.list_fields(session) if f.public]


# -- changing -------------------------------------------------------------------------------


def _typed(field: CustomField, raw: Any) -> Any:
    """A form's text as the field's kind (JSON clients may send the typed value already)."""
    if not isinstance(raw, str):
        return raw
    raw = raw.strip()
    if raw == "":
        return None
    if field.kind == "checkbox":
        return raw.lower() in ("on", "true", "1", "yes")
    if field.kind == "number":
        try:
            return int(raw) if raw.lstrip("-").isdigit() else float(raw)
        except ValueError:
            raise ValidationFailed(
                "Invalid value", fields={f"custom.{field.key}": "a number"}
            ) from None
    return raw


async def clean_custom(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    """Only public fields may be set from the portal: any other key is a 422 naming it."""
    fields = {f.key: f for f in await public_fields(session)}
    cleaned: dict[str, Any] = {}
    for key, raw in values.items():
        field = fields.get(key)
        if field is None:
            raise ValidationFailed(
                f"Unknown field {key!r}", fields={f"custom.{key}": "no such field"}
            )
        value = _typed(field, raw)
        if value is not None:
            cleaned[key] = value
    return cleaned


def _check_sizes(files: list[Upload], limits: Files) -> None:
    """Refuse before anything is written (the attachments service checks again)."""
    for upload in files:
        if len(upload.data) > limits.max_bytes:
            raise TooLarge(
                f"{upload.filename} is larger than {limits.max_bytes:,} bytes",
                fields={"file": f"{upload.filename}: too large"},
            )


async def _store(
    session: AsyncSession, files: list[Upload], limits: Files, actor: Actor
) -> list[int]:
    ids = []
    for upload in files:
        stored = await attachments.upload(
            session,
            limits.storage,
            filename=upload.filename,
            content_type=upload.content_type,
            data=upload.data,
            max_bytes=limits.max_bytes,
            user_id=None,
            actor=actor,
        )
        ids.append(stored.id)
    return ids


async def upload(
    session: AsyncSession, customer: Customer, *, file: Upload, limits: Files
) -> Attachment:
    """Keep a file for a request or reply of this customer's to claim (the API's way)."""
    _check_sizes([file], limits)
    stored = (await _store(session, [file], limits, customer_actor(customer.id)))[0]
    session.add(PortalUpload(attachment_id=stored, customer_id=customer.id))
    await session.flush()
    return await attachments.get_attachment(session, stored)


async def _claimable(session: AsyncSession, customer: Customer, ids: list[int]) -> list[int]:
    """``ids`` if each is this customer's own upload, not yet sent; else a 422 naming them."""
    ids = list(dict.fromkeys(ids))
    if not ids:
        return []
    own = set(
        (
            await session.scalars(
                select(PortalUpload.attachment_id)
                .join(Attachment, Attachment.id == PortalUpload.attachment_id)
                .where(
                    PortalUpload.attachment_id.in_(ids),
                    PortalUpload.customer_id == customer.id,
                    Attachment.message_id.is_(None),
                )
            )
        ).all()
    )
    refused = [i for i in ids if i not in own]
    if refused:
        raise ValidationFailed(
            "Some files cannot be attached (unknown, someone else's, or already sent)",
            fields={"attachment_ids": ", ".join(map(str, refused))},
        )
    return ids


async def open_request(
    session: AsyncSession,
    customer: Customer,
    *,
    subject: str,
    description: str,
    custom: dict[str, Any],
    files: list[Upload],
    limits: Files,
    channel: str = "portal",
    attachment_ids: list[int] | None = None,
) -> Ticket:
    """A new ticket from the customer, with files (sent along, or uploaded before through
    the API) on its first message."""
    _check_sizes(files, limits)
    values = await clean_custom(session, custom)
    claimed = await _claimable(session, customer, attachment_ids or [])
    actor = customer_actor(customer.id)
    if not description.strip():
        raise ValidationFailed(
            "Please describe your request", fields={"description": "must not be empty"}
        )
    ticket, message = await tickets.create_ticket(
        session,
        subject=subject,
        requester=customer,
        channel=channel,
        body_text=description,
        custom=values,
        actor=actor,
    )
    ids = claimed + (await _store(session, files, limits, actor) if files else [])
    if ids:
        await attachments.attach(session, message, ids, user_id=None, actor=actor)
    return ticket


async def open_anonymous_request(
    session: AsyncSession,
    *,
    name: str,
    email: str,
    subject: str,
    description: str,
    custom: dict[str, Any],
    files: list[Upload],
    limits: Files,
) -> Ticket:
    """The public web form: find or create the customer by e-mail, then open a ``web`` ticket."""
    _check_sizes(files, limits)
    await clean_custom(session, custom)  # refuse bad input before a customer is created
    if not name.strip():
        raise ValidationFailed("Please tell us your name", fields={"name": "must not be empty"})
    customer = await customers.find_or_create_by_email(
        session, email=email, name=name.strip(), actor=PORTAL
    )
    if customer.merged_into_id is not None:
        customer = await customers.get_customer(session, customer.merged_into_id)
    return await open_request(
        session,
        customer,
        subject=subject,
        description=description,
        custom=custom,
        files=files,
        limits=limits,
        channel="web",
    )


async def reply(
    session: AsyncSession,
    customer: Customer,
    ticket: Ticket,
    *,
    body: str,
    files: list[Upload],
    limits: Files,
    attachment_ids: list[int] | None = None,
) -> Message:
    """The customer's public reply (it reopens a solved request, by the usual rules)."""
    _check_sizes(files, limits)
    actor = customer_actor(customer.id)
    claimed = await _claimable(session, customer, attachment_ids or [])
    ids = claimed + (await _store(session, files, limits, actor) if files else [])
    return await tickets.add_message(
        session,
        ticket,
        public=True,
        author_type="customer",
        author_customer_id=customer.id,
        body_text=body,
        channel="portal",
        attachment_ids=ids or None,
        actor=actor,
    )
