"""Sign-in and sign-out pages, API tokens for the signed-in user, and user admin."""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from servicecycle.auth import service
from servicecycle.auth.deps import SESSION_COOKIE, Db, PageAdmin, PageUser, Public, runtime
from servicecycle.auth.models import Role, Scope
from servicecycle.kit.errors import ServiceError, TooManyRequests
from servicecycle.web.templating import render

router = APIRouter(include_in_schema=False)

LOGIN_CSRF_COOKIE = "sc_login_csrf"
GENERIC_FAILURE = "Wrong e-mail or password."


def _safe_next(target: str | None) -> str:
    """Only local paths: never redirect a fresh session to another site."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _login_page(
    request: Request,
    *,
    error: str | None = None,
    email: str = "",
    next_url: str = "/",
    status_code: int = 200,
) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "auth/login.html",
        {"error": error, "email": email, "next": next_url, "login_csrf": token},
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=runtime(request).settings.secure_cookies,
        path="/login",
    )
    return response


@router.get("/login", dependencies=[Public])
async def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, next_url=_safe_next(next))


@router.post("/login", dependencies=[Public])
async def login(
    request: Request,
    db: Db,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    login_csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    next_url = _safe_next(next)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, login_csrf):
        return _login_page(
            request,
            error="Your sign-in form expired. Please try again.",
            email=email,
            next_url=next_url,
            status_code=400,
        )
    settings = runtime(request).settings
    throttle = service.Throttle(
        max_failures=settings.login_max_failures,
        window=timedelta(minutes=settings.login_window_minutes),
    )
    try:
        user = await service.authenticate(
            db, email=email, password=password, ip=_client_ip(request), throttle=throttle
        )
    except TooManyRequests as exc:
        minutes = max(1, round(exc.retry_after / 60))
        response = _login_page(
            request,
            error=f"Too many failed attempts. Try again in about {minutes} minute(s).",
            email=email,
            next_url=next_url,
            status_code=429,
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if user is None:
        return _login_page(
            request, error=GENERIC_FAILURE, email=email, next_url=next_url, status_code=401
        )
    token, _ = await service.start_session(
        db,
        user,
        lifetime=timedelta(days=settings.session_days),
        ip=_client_ip(request),
        user_agent=request.headers.get("user-agent"),
    )
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_days * 86400,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request, principal: PageUser, db: Db) -> Response:
    if principal.web_session is not None:
        await service.end_session(db, principal.web_session)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/account/tokens")
async def tokens_page(request: Request, principal: PageUser, db: Db) -> Response:
    tokens = await service.list_api_tokens(db, principal.user)
    return render(
        request,
        "auth/tokens.html",
        {"tokens": tokens, "scopes": _scopes_for(principal.role), "created": None},
    )


def _scopes_for(role: Role) -> list[str]:
    return [s.value for s in Scope if s != Scope.admin or role == Role.admin]


@router.post("/account/tokens")
async def create_token(
    request: Request,
    principal: PageUser,
    db: Db,
    name: Annotated[str, Form(max_length=120)] = "",
    scopes: Annotated[list[str] | None, Form()] = None,
) -> Response:
    error = None
    created = None
    try:
        async with db.begin_nested():
            created, _ = await service.create_api_token(
                db,
                principal.user,
                name=name,
                scopes=scopes or [],
                expires_at=None,
                actor=principal.actor,
            )
    except ServiceError as exc:
        error = exc.message + "".join(f" ({k}: {v})" for k, v in exc.fields.items())
    tokens = await service.list_api_tokens(db, principal.user)
    return render(
        request,
        "auth/tokens.html",
        {
            "tokens": tokens,
            "scopes": _scopes_for(principal.role),
            "created": created,
            "error": error,
        },
        status_code=422 if error else 200,
    )


@router.post("/account/tokens/{token_id}/revoke")
async def revoke_token(request: Request, token_id: int, principal: PageUser, db: Db) -> Response:
    token = await service.get_api_token(db, token_id, owner=principal.user)
    await service.revoke_api_token(db, token, actor=principal.actor)
    if principal.web_session is not None:
        service.add_flash(principal.web_session, "success", f"Token “{token.name}” revoked.")
    return RedirectResponse("/account/tokens", status_code=303)


@router.get("/admin/users")
async def users_page(request: Request, principal: PageAdmin, db: Db) -> Response:
    page = await service.list_users(db, limit=200)
    teams = await service.list_teams(db)
    return render(
        request,
        "auth/users.html",
        {
            "users": page.items,
            "teams": teams,
            "roles": [r.value for r in Role],
            "form": {},
            "error": None,
        },
    )


@router.post("/admin/users")
async def create_user(
    request: Request,
    principal: PageAdmin,
    db: Db,
    email: Annotated[str, Form(max_length=320)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=20)] = "agent",
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    try:
        async with db.begin_nested():
            user = await service.create_user(
                db,
                email=email,
                name=name,
                role=role,
                password=password or None,
                actor=principal.actor,
            )
    except ServiceError as exc:
        page = await service.list_users(db, limit=200)
        teams = await service.list_teams(db)
        return render(
            request,
            "auth/users.html",
            {
                "users": page.items,
                "teams": teams,
                "roles": [r.value for r in Role],
                "form": {"email": email, "name": name, "role": role},
                "error": exc.message,
                "fields": exc.fields,
            },
            status_code=exc.status_code,
        )
    if principal.web_session is not None:
        service.add_flash(principal.web_session, "success", f"{user.name} can now sign in.")
    return RedirectResponse("/admin/users", status_code=303)
