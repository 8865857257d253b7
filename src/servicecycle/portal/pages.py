"""Pages of the customer portal (``/portal``) and the public request form (``/support``)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from servicecycle.auth.deps import Db, Public, runtime
from servicecycle.kit.errors import ServiceError, TooManyRequests, Unauthenticated
from servicecycle.portal import panels, requests, service
from servicecycle.portal.deps import (
    PORTAL_COOKIE,
    PortalVisitor,
    Visitor,
    anonymous_form_ok,
    client_ip,
    files,
    new_form_token,
    policy,
    send_mail_soon,
    set_form_cookie,
    set_session_cookie,
)
from servicecycle.tickets import attachments
from servicecycle.web.templating import render

router = APIRouter(include_in_schema=False)

HONEYPOT = "website"
FORM_EXPIRED = "Your form expired. Please try again."


def _page(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    visitor: Visitor | None = None,
    status_code: int = 200,
    anonymous_form: bool = False,
) -> Response:
    """Render a portal page (its own layout): the desk's name, the customer, their token."""
    settings = runtime(request).settings
    form_token = new_form_token() if anonymous_form else ""
    base: dict[str, Any] = {
        "desk_name": settings.desk_name,
        "customer": visitor.customer if visitor else None,
        "csrf_token": visitor.csrf_token if visitor else "",
        "form_token": form_token,
        "error": None,
        "fields": {},
    }
    base.update(context or {})
    response = render(request, f"portal/{name}", base, status_code=status_code)
    if anonymous_form:
        set_form_cookie(request, response, form_token)
    return response


def _to_sign_in(request: Request) -> Response:
    if request.method != "GET":  # a form's target cannot be reopened after signing in
        return RedirectResponse("/portal", status_code=303)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/portal?next={quote(target)}", status_code=303)


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/portal/") and not target.startswith("/portal//"):
        return target
    return "/portal/requests"


def _signed_in(request: Request, next_url: str, token: str) -> Response:
    response = RedirectResponse(next_url, status_code=303)
    set_session_cookie(request, response, token)
    return response


def _retry_headers(response: Response, exc: TooManyRequests) -> Response:
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def _uploads(request: Request) -> list[requests.Upload]:
    form = await request.form()
    found = []
    for item in form.getlist("files"):
        if isinstance(item, UploadFile) and item.filename:
            found.append(
                requests.Upload(
                    filename=item.filename, content_type=item.content_type, data=await item.read()
                )
            )
    return found


async def _custom_values(request: Request) -> dict[str, Any]:
    form = await request.form()
    return {
        key.removeprefix("custom."): value
        for key, value in form.multi_items()
        if key.startswith("custom.") and isinstance(value, str)
    }


# -- signing in -----------------------------------------------------------------------------


@router.get("/portal", dependencies=[Public])
async def sign_in_page(request: Request, db: Db, next: str | None = None) -> Response:
    cookie = request.cookies.get(PORTAL_COOKIE)
    if cookie and await service.resolve_session(db, cookie, kind="web") is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _page(request, "sign_in.html", {"next": _safe_next(next)}, anonymous_form=True)


@router.post("/portal/link", dependencies=[Public])
async def ask_for_link(
    request: Request,
    db: Db,
    background: BackgroundTasks,
    email: Annotated[str, Form(max_length=320)] = "",
) -> Response:
    context = {"next": "/portal/requests", "email": email}
    if not await anonymous_form_ok(request):
        return _page(
            request,
            "sign_in.html",
            context | {"error": FORM_EXPIRED},
            status_code=400,
            anonymous_form=True,
        )
    settings = runtime(request).settings
    try:
        async with db.begin_nested():
            await service.request_link(
                db,
                email=email,
                ip=client_ip(request),
                keyring=settings.keyring(),
                portal_url=_portal_url(request),
                sender=settings.mail_from,
                desk_name=settings.desk_name,
                policy=policy(settings),
            )
    except TooManyRequests as exc:
        page = _page(
            request,
            "sign_in.html",
            context | {"error": exc.message},
            status_code=429,
            anonymous_form=True,
        )
        return _retry_headers(page, exc)
    except ServiceError as exc:
        return _page(
            request,
            "sign_in.html",
            context | {"error": exc.message, "fields": exc.fields},
            status_code=exc.status_code,
            anonymous_form=True,
        )
    background.add_task(send_mail_soon, runtime(request).jobs)
    return _page(request, "check_mail.html", {"email": email.strip()})


def _portal_url(request: Request) -> str:
    base = runtime(request).settings.base_url or str(request.base_url)
    return base.rstrip("/") + "/portal"


@router.get("/portal/login/{token}", dependencies=[Public])
async def link_page(request: Request, db: Db, token: str) -> Response:
    """Check the link and ask for one click: mail scanners that open links must not use it."""
    keyring = runtime(request).settings.keyring()
    if not await service.link_usable(db, token=token, keyring=keyring):
        return _page(request, "link_refused.html", status_code=401)
    return _page(request, "confirm_link.html", {"token": token}, anonymous_form=True)


@router.post("/portal/login/{token}", dependencies=[Public])
async def use_link(request: Request, db: Db, token: str) -> Response:
    if not await anonymous_form_ok(request):
        return _page(
            request,
            "confirm_link.html",
            {"token": token, "error": FORM_EXPIRED},
            status_code=400,
            anonymous_form=True,
        )
    settings = runtime(request).settings
    try:
        async with db.begin_nested():
            customer = await service.consume_link(
                db, token=token, keyring=settings.keyring(), policy=policy(settings)
            )
    except Unauthenticated:
        return _page(request, "link_refused.html", status_code=401)
    session_token = await service.start_session(
        db, customer, kind="web", lifetime=policy(settings).session_lifetime
    )
    return _signed_in(request, "/portal/requests", session_token)


@router.post("/portal/password", dependencies=[Public])
async def password_sign_in(
    request: Request,
    db: Db,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form()] = "/portal/requests",
) -> Response:
    context = {"next": _safe_next(next), "email": email}
    if not await anonymous_form_ok(request):
        return _page(
            request,
            "sign_in.html",
            context | {"error": FORM_EXPIRED},
            status_code=400,
            anonymous_form=True,
        )
    settings = runtime(request).settings
    try:
        customer = await service.authenticate(
            db, email=email, password=password, ip=client_ip(request), policy=policy(settings)
        )
    except TooManyRequests as exc:
        page = _page(
            request,
            "sign_in.html",
            context | {"error": exc.message},
            status_code=429,
            anonymous_form=True,
        )
        return _retry_headers(page, exc)
    if customer is None:
        return _page(
            request,
            "sign_in.html",
            context | {"error": "Wrong e-mail or password."},
            status_code=401,
            anonymous_form=True,
        )
    token = await service.start_session(
        db, customer, kind="web", lifetime=policy(settings).session_lifetime
    )
    return _signed_in(request, _safe_next(next), token)


@router.post("/portal/logout")
async def sign_out(request: Request, who: PortalVisitor, db: Db) -> Response:
    if who.portal_session is not None:
        await service.end_session(db, who.portal_session)
    response = RedirectResponse("/portal", status_code=303)
    response.delete_cookie(PORTAL_COOKIE, path="/")
    return response


# -- account --------------------------------------------------------------------------------


@router.get("/portal/account")
async def account_page(request: Request, who: PortalVisitor, db: Db) -> Response:
    if who.customer is None:
        return _to_sign_in(request)
    has = await service.has_password(db, who.customer)
    return _page(request, "account.html", {"has_password": has, "saved": False}, visitor=who)


@router.post("/portal/account/password")
async def set_password(
    request: Request,
    who: PortalVisitor,
    db: Db,
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    if who.customer is None:
        return _to_sign_in(request)
    try:
        async with db.begin_nested():
            await service.set_password(db, who.customer, password=password, keep=who.portal_session)
    except ServiceError as exc:
        has = await service.has_password(db, who.customer)
        return _page(
            request,
            "account.html",
            {"has_password": has, "saved": False, "error": exc.message, "fields": exc.fields},
            visitor=who,
            status_code=exc.status_code,
        )
    return _page(request, "account.html", {"has_password": True, "saved": True}, visitor=who)


# -- requests -------------------------------------------------------------------------------


@router.get("/portal/requests")
async def my_requests(request: Request, who: PortalVisitor, db: Db) -> Response:
    if who.customer is None:
        return _to_sign_in(request)
    found = await requests.visible_tickets(db, who.customer)
    return _page(request, "requests.html", {"tickets": found}, visitor=who)


@router.get("/portal/new", dependencies=[Public])
async def new_when_signed_out(request: Request) -> Response:
    """Signed in: the portal's form; signed out: the public form."""
    target = "/portal/requests/new" if request.cookies.get(PORTAL_COOKIE) else "/support"
    return RedirectResponse(target, status_code=303)


@router.get("/portal/requests/new")
async def new_request_page(request: Request, who: PortalVisitor, db: Db) -> Response:
    if who.customer is None:
        return _to_sign_in(request)
    fields = await requests.public_fields(db)
    return _page(request, "new_request.html", {"custom_fields": fields, "form": {}}, visitor=who)


@router.post("/portal/requests")
async def create_request(
    request: Request,
    who: PortalVisitor,
    db: Db,
    background: BackgroundTasks,
    subject: Annotated[str, Form(max_length=300)] = "",
    description: Annotated[str, Form(max_length=100_000)] = "",
) -> Response:
    if who.customer is None:
        return _to_sign_in(request)
    custom = await _custom_values(request)
    try:
        async with db.begin_nested():
            ticket = await requests.open_request(
                db,
                who.customer,
                subject=subject,
                description=description,
                custom=custom,
                files=await _uploads(request),
                limits=files(runtime(request).settings),
            )
    except ServiceError as exc:
        fields = await requests.public_fields(db)
        form = {"subject": subject, "description": description, "custom": custom}
        return _page(
            request,
            "new_request.html",
            {"custom_fields": fields, "form": form, "error": exc.message, "fields": exc.fields},
            visitor=who,
            status_code=exc.status_code,
        )
    background.add_task(send_mail_soon, runtime(request).jobs)  # the acknowledgement
    return RedirectResponse(f"/portal/requests/{ticket.id}", status_code=303)


@router.get("/portal/requests/{ticket_id}")
async def request_page(request: Request, ticket_id: int, who: PortalVisitor, db: Db) -> Response:
    if who.customer is None:
        return _to_sign_in(request)
    return await _request_view(request, who, db, ticket_id)


async def _request_view(
    request: Request,
    who: Visitor,
    db: Db,
    ticket_id: int,
    *,
    error: ServiceError | None = None,
    draft: str = "",
) -> Response:
    assert who.customer is not None
    try:
        ticket = await requests.get_visible(db, who.customer, ticket_id)
    except ServiceError as exc:
        return _page(
            request, "not_found.html", {"message": exc.message}, visitor=who, status_code=404
        )
    if ticket.id != ticket_id:
        return RedirectResponse(f"/portal/requests/{ticket.id}", status_code=303)
    messages, attached = await requests.public_thread(db, ticket)
    # a message's cid: images load through this portal's own route, which checks the ticket
    # is the customer's and the file is on one of its public messages
    shown = {
        m.id: attachments.shown(
            m.body_html, attached[m.id], lambda a: f"/portal/requests/{ticket.id}/files/{a.id}"
        )
        for m in messages
    }
    return _page(
        request,
        "request.html",
        {
            "ticket": ticket,
            "messages": messages,
            "attached": attached,
            "shown": shown,
            "panels": await panels.for_request(db, who.customer, ticket),
            "draft": draft,
            "error": error.message if error else None,
            "fields": error.fields if error else {},
        },
        visitor=who,
        status_code=error.status_code if error else 200,
    )


@router.post("/portal/requests/{ticket_id}/replies")
async def reply(
    request: Request,
    ticket_id: int,
    who: PortalVisitor,
    db: Db,
    body: Annotated[str, Form(max_length=100_000)] = "",
) -> Response:
    if who.customer is None:
        return _to_sign_in(request)
    try:
        async with db.begin_nested():
            ticket = await requests.get_visible(db, who.customer, ticket_id)
            await requests.reply(
                db,
                who.customer,
                ticket,
                body=body,
                files=await _uploads(request),
                limits=files(runtime(request).settings),
            )
    except ServiceError as exc:
        return await _request_view(request, who, db, ticket_id, error=exc, draft=body)
    return RedirectResponse(f"/portal/requests/{ticket.id}#latest", status_code=303)


@router.get("/portal/requests/{ticket_id}/files/{attachment_id}")
async def download(
    request: Request, ticket_id: int, attachment_id: int, who: PortalVisitor, db: Db
) -> Response:
    if who.customer is None:
        return _to_sign_in(request)
    try:
        attachment = await requests.visible_attachment(db, who.customer, ticket_id, attachment_id)
    except ServiceError as exc:
        return _page(
            request, "not_found.html", {"message": exc.message}, visitor=who, status_code=404
        )
    data = await files(runtime(request).settings).storage.get(db, attachment.storage_key)
    return Response(
        data,
        media_type=attachment.content_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(attachment.filename)}",
            "Content-Security-Policy": "sandbox",
            "Cache-Control": "private, max-age=3600",
        },
    )


# -- the public form ------------------------------------------------------------------------


@router.get("/support", dependencies=[Public])
async def support_form(request: Request, db: Db) -> Response:
    fields = await requests.public_fields(db)
    return _page(
        request, "support.html", {"custom_fields": fields, "form": {}}, anonymous_form=True
    )


@router.post("/support", dependencies=[Public])
async def send_support_form(
    request: Request,
    db: Db,
    background: BackgroundTasks,
    name: Annotated[str, Form(max_length=200)] = "",
    email: Annotated[str, Form(max_length=320)] = "",
    subject: Annotated[str, Form(max_length=300)] = "",
    description: Annotated[str, Form(max_length=100_000)] = "",
) -> Response:
    form_data = await request.form()
    custom = await _custom_values(request)
    form = {
        "name": name,
        "email": email,
        "subject": subject,
        "description": description,
        "custom": custom,
    }
    if form_data.get(HONEYPOT):  # only robots fill in the hidden field: thank them, keep nothing
        return _page(request, "support_sent.html", {"email": email})

    async def again(message: str, status: int, fields: dict[str, str] | None = None) -> Response:
        custom_fields = await requests.public_fields(db)
        return _page(
            request,
            "support.html",
            {
                "custom_fields": custom_fields,
                "form": form,
                "error": message,
                "fields": fields or {},
            },
            status_code=status,
            anonymous_form=True,
        )

    if not await anonymous_form_ok(request):
        return await again(FORM_EXPIRED, 400)
    settings = runtime(request).settings
    try:
        async with db.begin_nested():
            await service.throttle(
                db, "web_form", client_ip(request), policy(settings).forms_per_ip
            )
    except TooManyRequests as exc:
        return _retry_headers(await again(exc.message, 429), exc)
    try:
        async with db.begin_nested():
            await requests.open_anonymous_request(
                db,
                name=name,
                email=email,
                subject=subject,
                description=description,
                custom=custom,
                files=await _uploads(request),
                limits=files(settings),
            )
    except ServiceError as exc:
        return await again(exc.message, exc.status_code, exc.fields)
    background.add_task(send_mail_soon, runtime(request).jobs)  # the acknowledgement
    return _page(request, "support_sent.html", {"email": email})
