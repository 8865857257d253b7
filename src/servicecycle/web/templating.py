"""Jinja2 templates: one environment, autoescaped, with the layout's shared context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from servicecycle import __version__

WEB_DIR = Path(__file__).parent
STATIC_DIR = WEB_DIR / "static"

# every domain keeps its templates in <domain>/templates/<domain>/
_template_dirs = [str(WEB_DIR / "templates")] + [
    str(path) for path in sorted(WEB_DIR.parent.glob("*/templates")) if path.parent != WEB_DIR
]
templates = Jinja2Templates(directory=_template_dirs)
templates.env.globals["version"] = __version__


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    in_transaction: bool = True,
) -> HTMLResponse:
    """Render a page with the signed-in user, CSRF token and pending flash messages.

    ``in_transaction=False`` (error pages) reads only what was captured when the user was
    identified, since the request's transaction may already be rolled back.
    """
    principal = getattr(request.state, "principal", None)
    base: dict[str, Any] = {
        "principal": principal,
        "user": principal.identity if principal is not None else None,
        "csrf_token": principal.csrf_token if principal is not None else "",
        "flashes": _take_flashes(principal.web_session)
        if principal is not None and in_transaction
        else [],
        "request_id": getattr(request.state, "request_id", ""),
    }
    base.update(context or {})
    return templates.TemplateResponse(request, name, base, status_code=status_code)


def _take_flashes(web_session: Any) -> list[dict[str, str]]:
    """Messages queued for this browser; shown once (the request's transaction clears them)."""
    if web_session is None or not web_session.flashes:
        return []
    flashes: list[dict[str, str]] = list(web_session.flashes)
    web_session.flashes = []
    return flashes
