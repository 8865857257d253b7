"""Every route declares who may call it; none answers anonymously unless allow-listed."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from httpx import AsyncClient

PUBLIC = {
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/docs"),
    # the customer portal's ways in, and the public request form
    ("GET", "/portal"),
    ("POST", "/portal/link"),
    ("GET", "/portal/login/{token}"),
    ("POST", "/portal/login/{token}"),
    ("POST", "/portal/password"),
    ("GET", "/portal/new"),
    ("GET", "/support"),
    ("POST", "/support"),
    ("POST", "/api/v1/portal/magic-links"),
    ("POST", "/api/v1/portal/sessions"),
    # the chat widget, embedded on other sites (its socket checks the visitor's token)
    ("GET", "/chat/widget.js"),
    ("GET", "/chat/widget.css"),
    # survey answers, reached from the mail's signed one-click links
    ("GET", "/surveys/r/{token}"),
    ("POST", "/surveys/r/{token}"),
}


def _access(route: RouteContext) -> set[str]:
    kinds: set[str] = set()
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        access = getattr(dependant.call, "access", None)
        if access is not None:
            kinds.add(access[0])
        stack.extend(dependant.dependencies)
    return kinds


def _routes(app: FastAPI) -> list[tuple[str, str, RouteContext]]:
    """Every (method, full path, route), through included routers."""
    out = []
    for route in iter_route_contexts(app.routes):
        for method in sorted((route.methods or set()) - {"HEAD"}):
            out.append((method, route.path or "", route))
    assert len(out) >= 20, "the route table looks empty: did FastAPI change how it nests routers?"
    return out


async def test_every_route_declares_exactly_one_access_rule(app: FastAPI) -> None:
    undeclared = []
    for method, path, route in _routes(app):
        if not isinstance(route.original_route, APIRoute):
            assert (method, path) in PUBLIC, f"{method} {path} is not an APIRoute and not public"
            continue
        kinds = _access(route)
        if len(kinds) != 1 or (kinds == {"public"}) != ((method, path) in PUBLIC):
            undeclared.append((method, path, kinds))
    assert undeclared == []


async def test_no_route_answers_anonymously_except_the_allow_list(
    app: FastAPI, client: AsyncClient
) -> None:
    checked = 0
    for method, path, _ in _routes(app):
        if (method, path) in PUBLIC:
            continue
        url = re.sub(r"\{[^}]+\}", "1", path)
        response = await client.request(method, url, headers={"accept": "text/html"})
        if path.startswith("/api/"):
            assert response.status_code == 401, (method, path, response.status_code)
        else:
            assert response.status_code == 303, (method, path, response.status_code)
            # customers sign in to the portal, everyone else to the desk
            sign_in = "/portal" if path.startswith("/portal/") else "/login"
            assert response.headers["location"].startswith(sign_in), (method, path)
        checked += 1
    assert checked >= 15
