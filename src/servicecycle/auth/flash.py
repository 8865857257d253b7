"""One-line messages for the next page a signed-in browser renders."""

from __future__ import annotations

from servicecycle.auth.deps import Principal
from servicecycle.auth.service import add_flash


def flash(principal: Principal, text: str, level: str = "success") -> None:
    """Queue ``text`` for the principal's next page (API callers have no web session: no-op)."""
    if principal.web_session is not None:
        add_flash(principal.web_session, level, text)
