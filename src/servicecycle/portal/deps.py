"""Who is asking in the portal: a customer, never an agent. Customer sessions have their own
cookie (``sc_portal``) and bearer tokens (``scp_...``), separate from agents' sessions."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

import procrastinate
import structlog
from fastapi import Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from servicecycle.auth.deps import Db, runtime
from servicecycle.config import Settings
from servicecycle.customers.models import Customer
from servicecycle.kit.errors import PermissionDenied, Unauthenticated
from servicecycle.portal import service
from servicecycle.portal.models import PortalSession
from servicecycle.portal.requests import Files
from servicecycle.tickets.storage import storage_for

log = structlog.get_logger(__name__)

PORTAL_COOKIE = "sc_portal"
FORM_COOKIE = "sc_portal_form"  # double-submit token for forms sent before sign-in
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def policy(settings: Settings) -> service.Policy:
    """Lifetimes and limits; ``SERVICECYCLE_PORTAL_*`` settings override the defaults."""
    return service.Policy(
        link_lifetime=timedelta(minutes=settings.portal_link_minutes),
        session_lifetime=timedelta(days=settings.session_days),
    )


def files(settings: Settings) -> Files:
    return Files(
        storage=storage_for(settings.attachment_storage, settings.data_dir),
        max_bytes=settings.max_attachment_bytes,
    )


async def send_mail_soon(jobs: procrastinate.App) -> None:
    """Run the mail job now rather than at the next minute: someone waits for a sign-in link.
    Called after the commit (a response's background task), so the job finds the mail."""
    try:
        await jobs.configure_task(
            "channels.send_mail", queueing_lock="channels.send_mail"
        ).defer_async(timestamp=int(time.time()))
    except procrastinate.exceptions.AlreadyEnqueued:
        pass  # a run is already waiting; it will send this mail too
    except procrastinate.exceptions.AppNotOpen:
        log.debug("portal.mail_job_not_deferred")  # the minute job still sends it


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@dataclass
class Visitor:
    """Someone on a portal page: a signed-in customer, or nobody yet (``customer`` is None)."""

    customer: Customer | None
    portal_session: PortalSession | None

    @property
    def csrf_token(self) -> str:
        return self.portal_session.csrf_token if self.portal_session else ""


async def _sent_csrf(request: Request) -> str | None:
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get("csrf_token")
        sent = value if isinstance(value, str) else None
    return sent


async def visitor(request: Request, db: Db) -> Visitor:
    """The signed-in customer, if any. Their unsafe requests must carry the session's CSRF
    token; pages that need a customer send a visitor without one to the sign-in page."""
    found = None
    if cookie := request.cookies.get(PORTAL_COOKIE):
        found = await service.resolve_session(db, cookie, kind="web")
    if found is None:
        return Visitor(None, None)
    portal_session, customer = found
    if request.method not in SAFE_METHODS:
        sent = await _sent_csrf(request)
        if not sent or not hmac.compare_digest(sent, portal_session.csrf_token):
            raise PermissionDenied("Your form expired. Please reload the page and try again.")
    return Visitor(customer, portal_session)


visitor.access = ("customer", ())  # type: ignore[attr-defined]


async def anonymous_form_ok(request: Request) -> bool:
    """A form sent before sign-in carries the token of the cookie set when it was shown
    (another site cannot read the cookie, so it cannot forge the form)."""
    cookie = request.cookies.get(FORM_COOKIE, "")
    sent = await _sent_csrf(request)
    return bool(cookie and sent and hmac.compare_digest(cookie, sent))


def set_form_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        FORM_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=runtime(request).settings.secure_cookies,
        path="/",
    )


def new_form_token() -> str:
    return secrets.token_urlsafe(32)


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    settings = runtime(request).settings
    response.set_cookie(
        PORTAL_COOKIE,
        token,
        max_age=settings.session_days * 86400,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
        path="/",
    )


BearerScheme = Annotated[
    HTTPAuthorizationCredentials | None,
    Depends(
        HTTPBearer(
            auto_error=False,
            scheme_name="CustomerToken",
            description="A customer token: `scp_...`",
        )
    ),
]


async def api_customer(request: Request, db: Db, _: BearerScheme = None) -> Customer:
    """A customer's bearer token (from ``POST /api/v1/portal/sessions``); 401 otherwise."""
    authorization = request.headers.get("authorization", "")
    token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
    found = (
        await service.resolve_session(db, token, kind="api")
        if token.startswith(service.API_TOKEN_PREFIX)
        else None
    )
    if found is None:
        raise Unauthenticated("Send a customer token (Authorization: Bearer scp_...)")
    return found[1]


api_customer.access = ("customer", ())  # type: ignore[attr-defined]

PortalVisitor = Annotated[Visitor, Depends(visitor)]
ApiCustomer = Annotated[Customer, Depends(api_customer)]
