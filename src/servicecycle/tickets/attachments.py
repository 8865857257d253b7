"""Files on messages: upload, attach, read. Flushes; the caller commits."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.events.service import Actor, record
from servicecycle.kit import clock
from servicecycle.kit.errors import NotFound, TooLarge, ValidationFailed
from servicecycle.tickets.content import show_inline_images
from servicecycle.tickets.files import check_file, clean_filename
from servicecycle.tickets.models import Attachment, Message
from servicecycle.tickets.storage import Storage

MAX_PER_MESSAGE = 20
STALE_UPLOAD = timedelta(days=1)
MAX_CONTENT_ID = 255
# Shown in place in a message's HTML: the image types whose first bytes are checked on upload
# (tickets.files.SIGNATURES). Anything else (SVG, which can carry script, included) is only
# ever a download.
IN_PLACE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


async def upload(
    session: AsyncSession,
    storage: Storage,
    *,
    filename: str,
    content_type: str | None,
    data: bytes,
    max_bytes: int,
    user_id: int | None,
    actor: Actor,
    inline: bool = False,
    content_id: str | None = None,
) -> Attachment:
    """Keep a file until a message claims it; refuses oversized and dangerous files.

    ``inline`` and ``content_id`` come from a mail part meant to be shown in its message
    (``<img src="cid:...">``); a Content-ID too long to keep is dropped, never the file."""
    if len(data) > max_bytes:
        raise TooLarge(f"The file is larger than {max_bytes:,} bytes", fields={"file": "too large"})
    if not data:
        raise ValidationFailed("The file is empty", fields={"file": "empty"})
    name = clean_filename(filename)
    kind = check_file(name, content_type, data[:16])
    key = secrets.token_hex(16)
    await storage.put(session, key, data)
    attachment = Attachment(
        filename=name,
        content_type=kind,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        storage_key=key,
        inline=inline,
        content_id=content_id if content_id and len(content_id) <= MAX_CONTENT_ID else None,
        uploaded_by_user_id=user_id,
        created_at=clock.now(),
    )
    session.add(attachment)
    await session.flush()
    await record(
        session,
        "upload.created",
        subject_type="attachment",
        subject_id=attachment.id,
        actor=actor,
        data={"filename": name, "size": len(data), "type": kind},
    )
    return attachment


async def attach(
    session: AsyncSession,
    message: Message,
    attachment_ids: list[int],
    *,
    user_id: int | None,
    actor: Actor,
) -> list[Attachment]:
    """Give uploads to a message: each must be this user's own and not yet sent."""
    ids = list(dict.fromkeys(attachment_ids))
    if len(ids) > MAX_PER_MESSAGE:
        raise ValidationFailed(
            "Too many files", fields={"attachment_ids": f"at most {MAX_PER_MESSAGE}"}
        )
    rows = list((await session.scalars(select(Attachment).where(Attachment.id.in_(ids)))).all())
    usable = {a.id: a for a in rows if a.message_id is None and a.uploaded_by_user_id == user_id}
    refused = [i for i in ids if i not in usable]
    if refused:
        raise ValidationFailed(
            "Some files cannot be attached (unknown, someone else's, or already sent)",
            fields={"attachment_ids": ", ".join(map(str, refused))},
        )
    for attachment in usable.values():
        attachment.message_id = message.id
    await session.flush()
    if usable:
        await record(
            session,
            "attachment.added",
            subject_type="ticket",
            subject_id=message.ticket_id,
            actor=actor,
            data={"message_id": message.id, "attachment_ids": ids},
        )
    return [usable[i] for i in ids]


@dataclass(frozen=True)
class Shown:
    """A message's HTML as displayed, and which of its files it shows in place."""

    html: str
    in_place: frozenset[int]  # attachment ids


def shown(markup: str, files: Sequence[Attachment], url: Callable[[Attachment], str]) -> Shown:
    """``markup`` with its ``cid:`` images pointing at ``url`` of the same message's own image
    files (``files``: that message's attachments, nothing else). See
    :func:`tickets.content.show_inline_images` for what happens to the rest."""
    by_content_id: dict[str, Attachment] = {}
    for attachment in files:  # the first of two parts with one Content-ID wins
        if attachment.content_id and attachment.content_type in IN_PLACE_TYPES:
            by_content_id.setdefault(attachment.content_id, attachment)
    html, used = show_inline_images(markup, {c: url(a) for c, a in by_content_id.items()})
    return Shown(html, frozenset(by_content_id[c].id for c in used))


async def of_messages(session: AsyncSession, message_ids: list[int]) -> dict[int, list[Attachment]]:
    found: dict[int, list[Attachment]] = {mid: [] for mid in message_ids}
    if message_ids:
        rows = await session.scalars(
            select(Attachment).where(Attachment.message_id.in_(message_ids)).order_by(Attachment.id)
        )
        for attachment in rows:
            found[attachment.message_id or 0].append(attachment)
    return found


async def get_attachment(session: AsyncSession, attachment_id: int) -> Attachment:
    attachment = await session.get(Attachment, attachment_id)
    if attachment is None:
        raise NotFound(f"No attachment {attachment_id}")
    return attachment


async def remove_stale_uploads(session: AsyncSession, storage: Storage, *, now: datetime) -> int:
    """Delete uploads no message claimed within a day."""
    stale = list(
        (
            await session.scalars(
                select(Attachment).where(
                    Attachment.message_id.is_(None), Attachment.created_at < now - STALE_UPLOAD
                )
            )
        ).all()
    )
    for attachment in stale:
        await storage.delete(session, attachment.storage_key)
    if stale:
        await session.execute(delete(Attachment).where(Attachment.id.in_([a.id for a in stale])))
    return len(stale)
