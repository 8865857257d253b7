"""Cards that higher domains add to a customer's request page, so the portal imports none
of them (surveys adds its rating form here). A provider registers itself when its module
is imported and returns a panel, or None to add nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.customers.models import Customer
from servicecycle.tickets.models import Ticket


@dataclass(frozen=True)
class Panel:
    """A template to include under the conversation, and what it shows."""

    template: str
    context: dict[str, Any] = field(default_factory=dict)


Provider = Callable[[AsyncSession, Customer, Ticket], Awaitable[Panel | None]]
_providers: list[Provider] = []


def provide(provider: Provider) -> Provider:
    """Register ``provider`` (once, as a decorator)."""
    if provider not in _providers:
        _providers.append(provider)
    return provider


async def for_request(session: AsyncSession, customer: Customer, ticket: Ticket) -> list[Panel]:
    """The panels every provider adds to ``customer``'s view of ``ticket``."""
    found = [await provider(session, customer, ticket) for provider in _providers]
    return [panel for panel in found if panel is not None]
