"""Who is asking: every route declares its access with exactly one of these dependencies.

* :func:`public` - anyone (login, health, metrics, public portal paths);
* :func:`api_access` - a signed-in user or an API token, with roles and token scopes;
* :func:`page_access` - a signed-in browser; anonymous visitors are sent to the login page.

Unsafe methods from a browser session must carry the session's CSRF token (form field
``csrf_token`` or header ``X-CSRF-Token``); bearer tokens are not sent by browsers
on their own, so they need none.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth import service
from servicecycle.auth.models import ApiToken, Role, Scope, User, WebSession
from servicecycle.events.service import Actor
from servicecycle.kit.errors import LoginRequired, PermissionDenied, Unauthenticated
from servicecycle.runtime import Runtime

SESSION_COOKIE = "sc_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's transaction: committed after the handler returns, rolled back if it raises."""
    async with runtime(request).sessions() as session, session.begin():
        yield session


# scope="function": commit before the response is sent, so a failed commit is a 500, not a lie.
Db = Annotated[AsyncSession, Depends(get_db, scope="function")]


@dataclass(frozen=True)
class Identity:
    """Plain facts about the signed-in user, safe to read after the transaction ended."""

    id: int
    name: str
    email: str
    role: str


@dataclass
class Principal:
    user: User
    web_session: WebSession | None = None
    token: ApiToken | None = None
    identity: Identity = field(init=False)
    csrf_token: str = field(init=False)

    def __post_init__(self) -> None:
        self.identity = Identity(self.user.id, self.user.name, self.user.email, self.user.role)
        self.csrf_token = self.web_session.csrf_token if self.web_session is not None else ""

    @property
    def actor(self) -> Actor:
        return Actor.user(self.identity.id)

    @property
    def role(self) -> Role:
        return Role(self.identity.role)

    def has_scope(self, scope: Scope) -> bool:
        return self.token is None or scope.value in self.token.scopes


async def _identify(request: Request, db: AsyncSession) -> Principal | None:
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    principal: Principal | None = None
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        found = await service.resolve_api_token(db, authorization[7:].strip())
        if found is None:
            raise Unauthenticated("Invalid, expired or revoked API token")
        principal = Principal(user=found[1], token=found[0])
    elif cookie := request.cookies.get(SESSION_COOKIE):
        resolved = await service.resolve_session(db, cookie)
        if resolved is not None:
            principal = Principal(user=resolved[1], web_session=resolved[0])
    request.state.principal = principal
    return principal


async def signed_in(request: Request, db: AsyncSession) -> Principal | None:
    """Who is asking on a public page, if anyone (so it can greet them or carry their CSRF
    token); never refuses."""
    try:
        return await _identify(request, db)
    except Unauthenticated:
        return None


async def _check_csrf(request: Request, principal: Principal) -> None:
    if request.method in SAFE_METHODS or principal.web_session is None:
        return
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent, principal.csrf_token):
        raise PermissionDenied("Missing or invalid CSRF token; reload the page and try again")


# Declares the bearer scheme in the OpenAPI document (the header is read by _identify).
BearerScheme = Annotated[
    HTTPAuthorizationCredentials | None,
    Depends(HTTPBearer(auto_error=False, description="An API token: `sc_...`")),
]

Check = Callable[..., Coroutine[Any, Any, Principal]]


def _allowed(principal: Principal, roles: tuple[Role, ...]) -> None:
    if roles and principal.role not in roles:
        raise PermissionDenied("Your role does not allow this")


def api_access(*roles: Role, admin_scope: bool = False) -> Check:
    """Dependency for an API route: signed in, one of ``roles`` (any if none), right scope."""

    async def check(request: Request, db: Db, _: BearerScheme = None) -> Principal:
        principal = await _identify(request, db)
        if principal is None:
            raise Unauthenticated("Sign in or send an API token (Authorization: Bearer ...)")
        _allowed(principal, roles)
        needed = Scope.read if request.method in SAFE_METHODS else Scope.write
        if not principal.has_scope(needed) or (
            admin_scope and not principal.has_scope(Scope.admin)
        ):
            raise PermissionDenied("This API token lacks the scope for this request")
        await _check_csrf(request, principal)
        return principal

    check.access = ("api", roles)  # type: ignore[attr-defined]
    return check


def page_access(*roles: Role) -> Check:
    """Dependency for a web page: a signed-in browser with one of ``roles`` (any if none)."""

    async def check(request: Request, db: Db) -> Principal:
        principal = await _identify(request, db)
        if principal is None or principal.web_session is None:
            raise LoginRequired("Please sign in")
        _allowed(principal, roles)
        await _check_csrf(request, principal)
        return principal

    check.access = ("page", roles)  # type: ignore[attr-defined]
    return check


async def public() -> None:
    """Marks a route that answers without authentication (it must be on the allow-list)."""


public.access = ("public", ())  # type: ignore[attr-defined]

ApiUser = Annotated[Principal, Depends(api_access())]
ApiAdmin = Annotated[Principal, Depends(api_access(Role.admin, admin_scope=True))]
ApiAnalyst = Annotated[Principal, Depends(api_access(Role.admin, Role.analyst))]
# changing tickets and customers is agents' (and admins') work; analysts read
ApiAgent = Annotated[Principal, Depends(api_access(Role.admin, Role.agent))]
PageUser = Annotated[Principal, Depends(page_access())]
PageAdmin = Annotated[Principal, Depends(page_access(Role.admin))]
PageAnalyst = Annotated[Principal, Depends(page_access(Role.admin, Role.analyst))]
Public = Depends(public)
