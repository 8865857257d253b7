"""Small factories with fixed defaults, as fixtures."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.auth import service as auth
from servicecycle.auth.models import User
from servicecycle.events.service import Actor

PASSWORD = "correct horse battery"
_counter = itertools.count(1)


@pytest.fixture
def make_user(sessions: async_sessionmaker[AsyncSession]) -> Callable[..., Awaitable[User]]:
    async def make(
        role: str = "agent",
        *,
        email: str | None = None,
        name: str | None = None,
        password: str = PASSWORD,
    ) -> User:
        n = next(_counter)
        async with sessions() as session, session.begin():
            return await auth.create_user(
                session,
                email=email or f"{role}{n}@example.com",
                name=name or f"{role.title()} {n}",
                role=role,
                password=password,
                actor=Actor.system("test"),
            )

    return make


@dataclass
class Token:
    user: User
    value: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.value}"}


@pytest.fixture
def make_token(
    sessions: async_sessionmaker[AsyncSession], make_user: Callable[..., Awaitable[User]]
) -> Callable[..., Awaitable[Token]]:
    async def make(
        role: str = "admin", *, scopes: list[str] | None = None, user: User | None = None
    ) -> Token:
        user = user or await make_user(role)
        wanted = scopes or (
            ["read", "write", "admin"] if user.role == "admin" else ["read", "write"]
        )
        async with sessions() as session, session.begin():
            plain, _ = await auth.create_api_token(
                session,
                user,
                name="test",
                scopes=wanted,
                expires_at=None,
                actor=Actor.system("test"),
            )
        return Token(user=user, value=plain)

    return make


async def sign_in(client: AsyncClient, email: str, password: str = PASSWORD) -> str:
    """Sign in through the real form; returns the session's CSRF token."""
    page = await client.get("/login")
    login_csrf = page.text.split('name="login_csrf" value="')[1].split('"')[0]
    response = await client.post(
        "/login", data={"email": email, "password": password, "login_csrf": login_csrf, "next": "/"}
    )
    assert response.status_code == 303, response.text
    home = await client.get("/", headers={"accept": "text/html"})
    return home.text.split('data-csrf="')[1].split('"')[0]


@pytest.fixture
def make_customer(sessions: async_sessionmaker[AsyncSession]) -> Callable[..., Awaitable[Any]]:
    from servicecycle.customers import service as customers

    async def make(
        name: str | None = None, *, email: str | None = None, tier: str = "standard"
    ) -> Any:
        n = next(_counter)
        async with sessions() as session, session.begin():
            return await customers.create_customer(
                session,
                name=name or f"Customer {n}",
                emails=[email or f"customer{n}@example.net"],
                tier=tier,
                actor=Actor.system("test"),
            )

    return make


@pytest.fixture
def make_ticket(
    sessions: async_sessionmaker[AsyncSession], make_customer: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    from servicecycle.tickets import service as tickets

    async def make(
        subject: str = "Where is my order?",
        *,
        requester: Any = None,
        body: str = "It is late.",
        channel: str = "email",
        **extra: Any,
    ) -> Any:
        requester = requester or await make_customer()
        async with sessions() as session, session.begin():
            ticket, _ = await tickets.create_ticket(
                session,
                subject=subject,
                requester=requester,
                channel=channel,
                body_text=body,
                actor=Actor("customer", str(requester.id)),
                **extra,
            )
            return ticket

    return make
