"""REST routes of the channels: raw mail from a provider; IMAP mailboxes (admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from servicecycle.auth.deps import ApiAdmin, ApiAgent, Db, runtime
from servicecycle.channels import mailboxes
from servicecycle.channels.email import imap, intake
from servicecycle.channels.models import Mailbox
from servicecycle.kit.errors import Conflict, TooLarge, ValidationFailed
from servicecycle.kit.secrets import Keyring
from servicecycle.tickets.storage import storage_for
from servicecycle.web.concurrency import parse_if_match

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


# -- mailboxes (admins) ---------------------------------------------------------------------

MAILBOX = "/mailboxes/{mailbox_id}"
REFUSED: dict[int | str, dict[str, Any]] = {
    422: {"description": "Invalid input; `fields` names the bad field"},
    409: {"description": "Another mailbox has this name or support address"},
}
Security = Literal["ssl", "starttls", "none"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MailboxRead(BaseModel):
    """A mailbox as stored, and how its polling goes. The password is never shown."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    address: str
    kind: str
    host: str
    port: int
    security: str
    username: str
    folder: str
    enabled: bool
    poll_minutes: int
    uid_validity: int | None
    last_seen_uid: int
    last_polled_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    received_count: int = Field(description="Mails taken: new tickets, replies, ignored")
    rejected_count: int = Field(description="Mails refused by the intake (see inbound mail)")
    retrying: int = Field(description="Mails whose storing failed, to be tried again")
    watched_until: datetime | None = Field(
        description="While in the future, an IDLE watcher holds the mailbox and takes new "
        "mail as it arrives; otherwise it is polled every poll_minutes"
    )
    watch_mode: str | None = Field(
        description="What the server offered at the last check: idle, poll (no IDLE), "
        "or null (not checked yet)"
    )
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Mailbox) -> MailboxRead:
        data = {name: getattr(row, name) for name in cls.model_fields if name != "retrying"}
        return cls(**data, retrying=len(row.failing))


class MailboxCreate(Strict):
    name: str = Field(min_length=1, max_length=120, examples=["Support"])
    address: str = Field(
        max_length=320,
        description="The support address mail arrives at",
        examples=["support@example.com"],
    )
    host: str = Field(max_length=255, examples=["imap.gmail.com"])
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Default: 993 for ssl, 143 otherwise"
    )
    security: Security = Field(default="ssl", examples=["ssl"])
    username: str = Field(min_length=1, max_length=320, examples=["support@example.com"])
    password: str = Field(
        min_length=1,
        max_length=1000,
        description="Stored encrypted; never returned (for Gmail, an app password)",
        examples=["app-password"],
    )
    folder: str = Field(default="INBOX", max_length=200, examples=["INBOX"])
    enabled: bool = True
    poll_minutes: int = Field(default=1, ge=1, le=1440, description="Poll every n minutes")


class MailboxUpdate(Strict):
    version: int | None = Field(default=None, description="If given, must be the current one")
    name: str | None = Field(default=None, min_length=1, max_length=120)
    address: str | None = Field(default=None, max_length=320)
    host: str | None = Field(default=None, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Security | None = None
    username: str | None = Field(default=None, min_length=1, max_length=320)
    password: str | None = Field(
        default=None, min_length=1, max_length=1000, description="Left out: keep the stored one"
    )
    folder: str | None = Field(default=None, max_length=200)
    enabled: bool | None = None
    poll_minutes: int | None = Field(default=None, ge=1, le=1440)


class ConnectionCheck(BaseModel):
    ok: bool
    error: str | None = Field(description="The server's answer when it failed")
    messages: int | None = Field(description="Mails in the folder")
    uid_validity: int | None


class PollRead(BaseModel):
    ok: bool
    error: str | None
    outcomes: dict[str, int] = Field(
        description="How many mails became a ticket, reply, duplicate, ignored or rejected",
        examples=[{"ticket": 2, "reply": 1}],
    )
    failed: int = Field(description="Mails not stored this time; left unread, retried next poll")
    more: bool = Field(description="More mail is waiting than one poll takes")


@router.get(
    "/mailboxes",
    response_model=list[MailboxRead],
    tags=["mailboxes"],
    summary="IMAP mailboxes the desk takes mail from",
)
async def list_mailboxes(principal: ApiAdmin, db: Db) -> list[MailboxRead]:
    return [MailboxRead.of(row) for row in await mailboxes.list_mailboxes(db)]


@router.post(
    "/mailboxes",
    response_model=MailboxRead,
    status_code=status.HTTP_201_CREATED,
    tags=["mailboxes"],
    summary="Connect an IMAP mailbox (the password is stored encrypted)",
    responses=REFUSED,
)
async def create_mailbox(
    body: MailboxCreate, request: Request, principal: ApiAdmin, db: Db
) -> MailboxRead:
    row = await mailboxes.create_mailbox(
        db, keyring=_keyring(request), actor=principal.actor, **body.model_dump()
    )
    return MailboxRead.of(row)


@router.get(MAILBOX, response_model=MailboxRead, tags=["mailboxes"])
async def get_mailbox(mailbox_id: int, principal: ApiAdmin, db: Db) -> MailboxRead:
    return MailboxRead.of(await mailboxes.get_mailbox(db, mailbox_id))


@router.patch(
    MAILBOX,
    response_model=MailboxRead,
    tags=["mailboxes"],
    summary="Change a mailbox; a new server, user or folder starts again from its unread mail",
    responses={**REFUSED, 412: {"description": "`version` (or If-Match) is not the current one"}},
)
async def update_mailbox(
    mailbox_id: int,
    body: MailboxUpdate,
    request: Request,
    principal: ApiAdmin,
    db: Db,
    if_match: Annotated[str | None, Header()] = None,
) -> MailboxRead:
    sent = if_match is not None or body.version is not None
    expected = parse_if_match(if_match, body.version) if sent else None
    row = await mailboxes.get_mailbox(db, mailbox_id)
    changes = body.model_dump(exclude_unset=True, exclude={"version"})
    for key in [k for k, v in changes.items() if v is None]:
        if key != "port":  # null means "leave as is"; a null port means "the default"
            raise ValidationFailed(f"{key} cannot be null", fields={key: "leave it out instead"})
    row = await mailboxes.update_mailbox(
        db,
        row,
        changes=changes,
        keyring=_keyring(request),
        actor=principal.actor,
        expected_version=expected,
    )
    return MailboxRead.of(row)


@router.delete(
    MAILBOX,
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["mailboxes"],
    summary="Stop taking mail from a mailbox (mail and tickets taken stay)",
)
async def delete_mailbox(mailbox_id: int, principal: ApiAdmin, db: Db) -> Response:
    await mailboxes.delete_mailbox(
        db, await mailboxes.get_mailbox(db, mailbox_id), actor=principal.actor
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    f"{MAILBOX}/test",
    response_model=ConnectionCheck,
    tags=["mailboxes"],
    summary="Log in and open the folder, as a poll would; nothing is read or marked",
)
async def check_mailbox(
    mailbox_id: int, request: Request, principal: ApiAdmin, db: Db
) -> ConnectionCheck:
    row = await mailboxes.get_mailbox(db, mailbox_id)
    try:
        found = await imap.check(mailboxes.login_of(row, _keyring(request)))
    except imap.ImapError as exc:
        return ConnectionCheck(ok=False, error=str(exc), messages=None, uid_validity=None)
    return ConnectionCheck(
        ok=True, error=None, messages=found["messages"], uid_validity=found["uid_validity"]
    )


@router.post(
    f"{MAILBOX}/poll",
    response_model=PollRead,
    tags=["mailboxes"],
    summary="Take new mail now, without waiting for the next scheduled poll",
    responses={409: {"description": "Another worker is polling this mailbox right now"}},
)
async def poll_mailbox(mailbox_id: int, request: Request, principal: ApiAdmin, db: Db) -> PollRead:
    await mailboxes.get_mailbox(db, mailbox_id)
    result = await _poll_now(request, mailbox_id)
    return PollRead(
        ok=result.error is None,
        error=result.error,
        outcomes=result.outcomes,
        failed=result.failed,
        more=result.more,
    )


def _keyring(request: Request) -> Keyring:
    return runtime(request).settings.keyring()


async def _poll_now(request: Request, mailbox_id: int) -> imap.PollResult:
    """One poll in its own transactions (each stored mail is committed before it is marked
    read), outside the request's; a mailbox another worker holds is a 409."""
    rt = runtime(request)
    result = await imap.poll_configured(rt.settings, rt.sessions, mailbox_id)
    if result.busy:
        raise Conflict("This mailbox is being polled right now; try again in a moment")
    return result
