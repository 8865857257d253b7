"""REST routes of the channels: raw mail from a provider."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from servicecycle.auth.deps import ApiAgent, Db, runtime
from servicecycle.channels.email import intake
from servicecycle.kit.errors import TooLarge, ValidationFailed
from servicecycle.tickets.storage import storage_for

router = APIRouter(prefix="/api/v1", tags=["channels"])


class InboundResult(BaseModel):
    outcome: str
    ticket_id: int | None
    reason: str | None


@router.post(
    "/channels/email/inbound",
    response_model=InboundResult,
    summary="Deliver one raw mail (RFC 5322 bytes as the body, e.g. message/rfc822)",
    responses={413: {"description": "Larger than the mail limit"}},
)
async def inbound(request: Request, principal: ApiAgent, db: Db) -> InboundResult:
    """For mail providers that post each incoming mail. The answer says what became of it:
    a new `ticket`, a `reply` on its ticket, a `duplicate` (this Message-ID came before),
    `ignored` (an auto-reply or bounce with no ticket) or `rejected` (with the reason)."""
    raw = await request.body()
    if not raw.strip():
        raise ValidationFailed("The body must be the raw mail", fields={"body": "empty"})
    if len(raw) > intake.MAX_MAIL_BYTES:
        raise TooLarge(
            f"Mail larger than {intake.MAX_MAIL_BYTES:,} bytes", fields={"body": "too large"}
        )
    settings = runtime(request).settings
    outcome = await intake.receive(
        db,
        raw,
        storage=storage_for(settings.attachment_storage, settings.data_dir),
        max_file_bytes=settings.max_attachment_bytes,
    )
    return InboundResult(
        outcome=outcome.outcome, ticket_id=outcome.ticket_id, reason=outcome.reason
    )
