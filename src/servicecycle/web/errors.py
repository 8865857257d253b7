"""One error shape for the API, friendly pages for browsers; neither leaks internals."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from servicecycle.kit.errors import LoginRequired, ServiceError
from servicecycle.web.observability import SecurityHeaders
from servicecycle.web.templating import render

log = structlog.get_logger(__name__)

_TITLES = {
    400: "Bad request",
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    422: "Invalid input",
    429: "Too many requests",
    500: "Something went wrong",
}


def wants_json(request: Request) -> bool:
    """API paths, and clients that ask for JSON rather than HTML, get the JSON error shape."""
    if request.url.path.startswith("/api/"):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def error_body(
    code: str, message: str, fields: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}, **extra}}


def _respond(
    request: Request,
    status: int,
    code: str,
    message: str,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    if wants_json(request):
        return JSONResponse(
            error_body(code, message, fields, **extra), status_code=status, headers=headers
        )
    return render(
        request,
        "error.html",
        {
            "status": status,
            "title": _TITLES.get(status, "Error"),
            "message": message,
            "fields": fields or {},
        },
        status_code=status,
        in_transaction=False,
    )


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or str(loc[0] if loc else "request")


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        if isinstance(exc, LoginRequired) and not wants_json(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
        headers = {}
        if "retry_after" in exc.extra:
            headers["Retry-After"] = str(exc.extra["retry_after"])
        if exc.status_code == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return _respond(
            request, exc.status_code, exc.code, exc.message, exc.fields, headers, **exc.extra
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        fields: dict[str, str] = {}
        for error in exc.errors():
            fields.setdefault(_field_name(error.get("loc", ())), str(error.get("msg", "invalid")))
        names = ", ".join(fields) or "request"
        return _respond(request, 422, "validation_error", f"Invalid input: {names}", fields)

    @app.exception_handler(StaleDataError)
    async def stale(request: Request, exc: StaleDataError) -> Response:
        return _respond(
            request,
            409,
            "conflict",
            "Someone else changed this record at the same time; reload and try again",
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = (
            exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
        )
        if exc.status_code == 404:
            message = "There is nothing at this address."
        return _respond(
            request,
            exc.status_code,
            _TITLES.get(exc.status_code, "error").lower().replace(" ", "_"),
            message,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        if isinstance(exc, ClientDisconnect):  # the browser went away mid-request: not our error
            log.info("client_disconnected", path=request.url.path)
            return Response(status_code=400)
        log.exception("unhandled_error", path=request.url.path)
        request_id = getattr(request.state, "request_id", "")
        response = _respond(
            request,
            500,
            "internal_error",
            f"An unexpected error occurred. Quote request id {request_id} when reporting it.",
        )
        # this handler answers outside our middleware, so it adds their headers itself
        response.headers["x-request-id"] = request_id
        for name, value in SecurityHeaders.HEADERS:
            response.headers[name.decode()] = value.decode()
        return response
