"""Admin pages of the channels: the overview, and the IMAP mailboxes mail is taken from.

Each handler parses the form, calls the mailbox service, and renders; a refusal is shown beside
the form with what was typed (never the password), and the savepoint around the service call
leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from servicecycle.auth import service as auth
from servicecycle.auth.deps import Db, PageAdmin, Principal, runtime
from servicecycle.channels import mailboxes
from servicecycle.channels.email import imap
from servicecycle.channels.models import Mailbox
from servicecycle.kit import clock
from servicecycle.kit.errors import ServiceError, ValidationFailed
from servicecycle.web.templating import render

router = APIRouter(include_in_schema=False)

OVERVIEW = "/admin/channels"
SECURITY_WORDS = {
    "ssl": "SSL/TLS (port 993)",
    "starttls": "STARTTLS (port 143)",
    "none": "None: plain text (test servers only)",
}


def _flash(principal: Principal, text: str, level: str = "success") -> None:
    if principal.web_session is not None:
        auth.add_flash(principal.web_session, level, text)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _number(typed: str, name: str, words: str) -> int | None:
    if not typed:
        return None
    if not typed.isdigit() or len(typed) > 6:
        raise ValidationFailed(f"Invalid {words}", fields={name: "a whole number"})
    return int(typed)


@dataclass
class MailboxDraft:
    """The mailbox form as typed (the password is never sent back to the browser)."""

    name: str = ""
    address: str = ""
    host: str = ""
    port: str = ""
    security: str = "ssl"
    username: str = ""
    folder: str = "INBOX"
    enabled: bool = True
    poll_minutes: str = "1"
    version: str = ""

    @classmethod
    def from_form(cls, form: FormData) -> tuple[MailboxDraft, str]:
        password = form.get("password")
        draft = cls(
            name=_text(form, "name"),
            address=_text(form, "address"),
            host=_text(form, "host"),
            port=_text(form, "port"),
            security=_text(form, "security"),
            username=_text(form, "username"),
            folder=_text(form, "folder"),
            enabled=_text(form, "enabled") == "on",
            poll_minutes=_text(form, "poll_minutes"),
            version=_text(form, "version"),
        )
        return draft, password if isinstance(password, str) else ""

    @classmethod
    def of(cls, row: Mailbox) -> MailboxDraft:
        return cls(
            name=row.name,
            address=row.address,
            host=row.host,
            port=str(row.port),
            security=row.security,
            username=row.username,
            folder=row.folder,
            enabled=row.enabled,
            poll_minutes=str(row.poll_minutes),
            version=str(row.version),
        )

    def values(self) -> dict[str, Any]:
        minutes = _number(self.poll_minutes, "poll_minutes", "poll interval")
        return {
            "name": self.name,
            "address": self.address,
            "host": self.host,
            "port": _number(self.port, "port", "port"),
            "security": self.security,
            "username": self.username,
            "folder": self.folder or "INBOX",
            "enabled": self.enabled,
            "poll_minutes": 1 if minutes is None else minutes,
        }


def _how(request: Request, row: Mailbox) -> str:
    """Watched (IDLE) or polled, in words."""
    return mailboxes.how_taken(
        row, now=clock.now(), idle_enabled=runtime(request).settings.imap_idle
    )


def _refusal(exc: ServiceError | None) -> dict[str, Any]:
    return {"error": exc.message if exc else None, "fields": dict(exc.fields) if exc else {}}


async def _overview(
    request: Request,
    db: Db,
    draft: MailboxDraft | None = None,
    *,
    refusal: ServiceError | None = None,
) -> Response:
    rows = await mailboxes.list_mailboxes(db)
    return render(
        request,
        "channels/overview.html",
        {
            "mailboxes": rows,
            "how": {row.id: _how(request, row) for row in rows},
            "draft": draft or MailboxDraft(),
            "security_words": SECURITY_WORDS,
            **_refusal(refusal),
        },
        status_code=refusal.status_code if refusal else 200,
    )


async def _mailbox_page(
    request: Request,
    db: Db,
    row: Mailbox,
    draft: MailboxDraft | None = None,
    *,
    refusal: ServiceError | None = None,
) -> Response:
    return render(
        request,
        "channels/mailbox.html",
        {
            "box": row,
            "how": _how(request, row),
            "draft": draft or MailboxDraft.of(row),
            "security_words": SECURITY_WORDS,
            **_refusal(refusal),
        },
        status_code=refusal.status_code if refusal else 200,
    )


@router.get(OVERVIEW)
async def overview(request: Request, principal: PageAdmin, db: Db) -> Response:
    return await _overview(request, db)


@router.post("/admin/mailboxes")
async def create_mailbox(request: Request, principal: PageAdmin, db: Db) -> Response:
    draft, password = MailboxDraft.from_form(await request.form())
    try:
        async with db.begin_nested():
            row = await mailboxes.create_mailbox(
                db,
                password=password,
                keyring=runtime(request).settings.keyring(),
                actor=principal.actor,
                **draft.values(),
            )
    except ServiceError as exc:
        return await _overview(request, db, draft, refusal=exc)
    _flash(principal, f"Mailbox “{row.name}” saved. Test the connection, then poll it.")
    return RedirectResponse(f"/admin/mailboxes/{row.id}", status_code=303)


@router.get("/admin/mailboxes/{mailbox_id:int}")
async def mailbox_page(request: Request, mailbox_id: int, principal: PageAdmin, db: Db) -> Response:
    return await _mailbox_page(request, db, await mailboxes.get_mailbox(db, mailbox_id))


@router.post("/admin/mailboxes/{mailbox_id:int}")
async def update_mailbox(
    request: Request, mailbox_id: int, principal: PageAdmin, db: Db
) -> Response:
    row = await mailboxes.get_mailbox(db, mailbox_id)
    draft, password = MailboxDraft.from_form(await request.form())
    try:
        async with db.begin_nested():
            changes = draft.values()
            if password:  # empty: keep the stored one
                changes["password"] = password
            await mailboxes.update_mailbox(
                db,
                row,
                changes=changes,
                keyring=runtime(request).settings.keyring(),
                actor=principal.actor,
                expected_version=int(draft.version) if draft.version.isdigit() else None,
            )
    except ServiceError as exc:
        row = await mailboxes.get_mailbox(db, mailbox_id)
        await db.refresh(row)  # as stored, after the rollback
        return await _mailbox_page(request, db, row, draft, refusal=exc)
    _flash(principal, f"Mailbox “{row.name}” saved.")
    return RedirectResponse(f"/admin/mailboxes/{row.id}", status_code=303)


@router.post("/admin/mailboxes/{mailbox_id:int}/test")
async def test_connection(
    request: Request, mailbox_id: int, principal: PageAdmin, db: Db
) -> Response:
    row = await mailboxes.get_mailbox(db, mailbox_id)
    try:
        found = await imap.check(mailboxes.login_of(row, runtime(request).settings.keyring()))
    except (imap.ImapError, ServiceError) as exc:
        text = exc.message if isinstance(exc, ServiceError) else str(exc)
        _flash(principal, f"“{row.name}”: connection failed. {text}", "error")
    else:
        count = found["messages"]
        _flash(
            principal,
            f"“{row.name}”: connected and opened {row.folder} "
            f"({count} mail{'s' if count != 1 else ''}).",
        )
    return RedirectResponse(_back(request, row), status_code=303)


@router.post("/admin/mailboxes/{mailbox_id:int}/poll")
async def poll_now(request: Request, mailbox_id: int, principal: PageAdmin, db: Db) -> Response:
    row = await mailboxes.get_mailbox(db, mailbox_id)
    rt = runtime(request)
    result = await imap.poll_configured(rt.settings, rt.sessions, mailbox_id)
    if result.busy:
        _flash(principal, f"“{row.name}” is being polled right now; try again shortly.", "info")
    elif result.error:
        _flash(principal, f"“{row.name}”: poll failed. {result.error}", "error")
    else:
        words = ", ".join(f"{n} {kind}" for kind, n in sorted(result.outcomes.items()))
        extra = f"; {result.failed} not stored, retried next poll" if result.failed else ""
        more = "; more is waiting for the next poll" if result.more else ""
        _flash(principal, f"“{row.name}” polled: {words or 'no new mail'}{extra}{more}.")
    return RedirectResponse(_back(request, row), status_code=303)


@router.post("/admin/mailboxes/{mailbox_id:int}/delete")
async def delete_mailbox(
    request: Request, mailbox_id: int, principal: PageAdmin, db: Db
) -> Response:
    row = await mailboxes.get_mailbox(db, mailbox_id)
    name = row.name
    await mailboxes.delete_mailbox(db, row, actor=principal.actor)
    _flash(principal, f"Mailbox “{name}” removed; its mail and tickets stay.")
    return RedirectResponse(OVERVIEW, status_code=303)


def _back(request: Request, row: Mailbox) -> str:
    """Where a button was pressed: the overview, or the mailbox's own page."""
    return (
        OVERVIEW if request.query_params.get("back") == "overview" else f"/admin/mailboxes/{row.id}"
    )
