"""The ticket life cycle: which status may follow which. Pure."""

from __future__ import annotations

OPEN_STATUSES = ("new", "open", "pending", "on-hold")

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("open", "pending", "on-hold", "solved"),
    "open": ("pending", "on-hold", "solved"),
    "pending": ("open", "on-hold", "solved"),
    "on-hold": ("open", "pending", "solved"),
    "solved": ("open", "closed"),
    "closed": (),
}


def allowed_next(status: str) -> tuple[str, ...]:
    return TRANSITIONS.get(status, ())


def status_after_customer_reply(status: str) -> str:
    """A customer answering reopens a solved ticket and wakes a pending or held one."""
    return "open" if status in ("solved", "pending", "on-hold") else status


def status_after_agent_reply(status: str, requested: str | None) -> str:
    """The status an agent chose with the reply, else a new ticket becomes open."""
    if requested is not None:
        return requested
    return "open" if status == "new" else status
