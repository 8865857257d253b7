"""Signing in to the portal: magic links (forged, replayed, expired), passwords, limits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select

from servicecycle.channels.models import OutboundMail
from servicecycle.kit import clock
from servicecycle.kit.secrets import Keyring
from tests.portal.conftest import Sessions, ask_link, hidden, links_sent, sign_in, use_link

MakeCustomer = Callable[..., Awaitable[Any]]


@pytest.fixture
def frozen() -> Iterator[list[datetime]]:
    moment = [datetime(2026, 12, 2, 9, 0, tzinfo=UTC)]
    clock.set_source(lambda: moment[0])
    yield moment
    clock.set_source(None)


async def test_a_magic_link_signs_in_once_and_a_replay_is_refused(
    client: AsyncClient, sessions: Sessions, make_customer: MakeCustomer
) -> None:
    await make_customer("Dana Fox", email="dana@example.com")
    answer = await ask_link(client, "Dana@Example.com")
    assert answer.status_code == 200 and "Check your e-mail" in answer.text
    [token] = await links_sent(sessions, "dana@example.com")

    first = await use_link(client, token)
    assert first.status_code == 303 and first.headers["location"] == "/portal/requests"
    cookie = first.headers["set-cookie"]
    assert cookie.startswith("sc_portal=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # http base URL
    page = await client.get("/portal/requests")
    assert page.status_code == 200 and "Dana Fox" in page.text

    client.cookies.clear()
    again = await use_link(client, token)
    assert again.status_code == 401 and "cannot be used" in again.text
    assert "sc_portal=" not in again.headers.get("set-cookie", "")
    assert (await client.get("/portal/requests")).status_code == 303


async def test_a_forged_link_is_refused_and_says_nothing_more(
    client: AsyncClient, sessions: Sessions, make_customer: MakeCustomer, settings: Any
) -> None:
    customer = await make_customer(email="eve@example.com")
    await ask_link(client, "eve@example.com")
    [token] = await links_sent(sessions, "eve@example.com")
    data, _, mac = token.partition(".")
    altered = data[:-2] + ("A" if data[-2] != "A" else "B") + data[-1] + "." + mac
    other_key = Keyring(b"k" * 32).sign(
        "portal.login", {"c": customer.id, "l": "x"}, expires_at=None
    )
    other_purpose = settings.keyring().sign("survey", {"c": customer.id, "l": "y"}, expires_at=None)
    for forged in (altered, other_key, other_purpose, "nonsense", token + "x"):
        page = await client.get(f"/portal/login/{forged}")
        assert page.status_code == 401 and "cannot be used" in page.text, forged
        assert str(customer.id) not in page.text and "eve" not in page.text
        # posting it directly is refused too
        form = await client.get("/portal")
        post = await client.post(f"/portal/login/{forged}", data={"csrf_token": hidden(form.text)})
        assert post.status_code == 401 and "sc_portal=" not in post.headers.get("set-cookie", "")
    assert (await use_link(client, token)).status_code == 303  # the real one still works


async def test_an_expired_link_is_refused(
    client: AsyncClient, sessions: Sessions, make_customer: MakeCustomer, frozen: list[datetime]
) -> None:
    await make_customer(email="late@example.com")
    await ask_link(client, "late@example.com")
    [token] = await links_sent(sessions, "late@example.com")
    frozen[0] += timedelta(minutes=19)
    page = await client.get(f"/portal/login/{token}")
    assert page.status_code == 200  # still valid for a minute
    frozen[0] += timedelta(minutes=2)
    assert (await client.get(f"/portal/login/{token}")).status_code == 401
    post = await client.post(f"/portal/login/{token}", data={"csrf_token": hidden(page.text)})
    assert post.status_code == 401 and "cannot be used" in post.text


async def test_an_unknown_address_gets_the_same_answer_and_no_mail(
    client: AsyncClient, sessions: Sessions
) -> None:
    answer = await ask_link(client, "nobody@example.com")
    assert answer.status_code == 200 and "Check your e-mail" in answer.text
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(OutboundMail)) == 0


async def test_link_requests_are_rate_limited_per_address_and_per_ip(
    client: AsyncClient, sessions: Sessions, make_customer: MakeCustomer, frozen: list[datetime]
) -> None:
    await make_customer(email="busy@example.com")
    for _ in range(3):
        assert (await ask_link(client, "busy@example.com")).status_code == 200
    refused = await ask_link(client, "busy@example.com")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert len(await links_sent(sessions, "busy@example.com")) == 3
    # an unknown address is limited alike, so the limit reveals nothing
    for _ in range(3):
        assert (await ask_link(client, "ghost@example.com")).status_code == 200
    assert (await ask_link(client, "ghost@example.com")).status_code == 429
    # per IP: 10 in the window, whatever the addresses
    for n in range(4):
        assert (await ask_link(client, f"x{n}@example.com")).status_code == 200
    assert (await ask_link(client, "fresh@example.com")).status_code == 429
    frozen[0] += timedelta(minutes=16)
    assert (await ask_link(client, "busy@example.com")).status_code == 200


async def test_password_sign_in_after_a_link_and_a_wrong_password(
    client: AsyncClient, sessions: Sessions, make_customer: MakeCustomer
) -> None:
    await make_customer("Pat Lee", email="pat@example.com")
    signed = await sign_in(client, sessions, "pat@example.com")
    short = await client.post(
        "/portal/account/password", data={"password": "short", "csrf_token": signed.csrf}
    )
    assert short.status_code == 422 and "at least 10 characters" in short.text
    saved = await client.post(
        "/portal/account/password",
        data={"password": "a long portal secret", "csrf_token": signed.csrf},
    )
    assert saved.status_code == 200 and "password is saved" in saved.text
    out = await client.post("/portal/logout", data={"csrf_token": signed.csrf})
    assert out.status_code == 303
    client.cookies.clear()

    async def with_password(password: str) -> Any:
        page = await client.get("/portal")
        return await client.post(
            "/portal/password",
            data={
                "email": "pat@example.com",
                "password": password,
                "csrf_token": hidden(page.text),
                "next": "/portal/requests",
            },
        )

    wrong = await with_password("not the password")
    assert wrong.status_code == 401 and "Wrong e-mail or password" in wrong.text
    ok = await with_password("a long portal secret")
    assert ok.status_code == 303 and ok.headers["set-cookie"].startswith("sc_portal=")
    assert "Pat Lee" in (await client.get("/portal/requests")).text


async def test_wrong_passwords_are_throttled_even_for_the_right_one(
    client: AsyncClient, sessions: Sessions, make_customer: MakeCustomer
) -> None:
    await make_customer(email="kim@example.com")
    signed = await sign_in(client, sessions, "kim@example.com")
    await client.post(
        "/portal/account/password",
        data={"password": "kim's own password", "csrf_token": signed.csrf},
    )
    client.cookies.clear()

    async def attempt(password: str) -> int:
        page = await client.get("/portal")
        response = await client.post(
            "/portal/password",
            data={
                "email": "kim@example.com",
                "password": password,
                "csrf_token": hidden(page.text),
            },
        )
        return response.status_code

    assert [await attempt("wrong guess") for _ in range(5)] == [401] * 5
    assert await attempt("kim's own password") == 429


async def test_portal_and_agent_sessions_are_separate(
    client: AsyncClient, sessions: Sessions, make_customer: MakeCustomer, make_user: Any
) -> None:
    await make_customer(email="sam@example.com")
    await sign_in(client, sessions, "sam@example.com")
    # a customer session is no agent session
    assert (await client.get("/inbox", headers={"accept": "text/html"})).status_code == 303
    assert (await client.get("/api/v1/tickets")).status_code == 401


async def test_writes_need_the_sessions_csrf_token(
    client: AsyncClient, sessions: Sessions, make_customer: MakeCustomer
) -> None:
    await make_customer(email="csrf@example.com")
    await sign_in(client, sessions, "csrf@example.com")
    refused = await client.post(
        "/portal/requests", data={"subject": "Hi", "description": "x", "csrf_token": "bad"}
    )
    assert refused.status_code == 403
    form = await client.post("/portal/link", data={"email": "csrf@example.com"})
    assert form.status_code == 400 and "expired" in form.text


async def test_cookies_are_secure_behind_https(
    app: FastAPI, sessions: Sessions, make_customer: MakeCustomer
) -> None:
    runtime = app.state.runtime
    runtime.settings = runtime.settings.model_copy(update={"base_url": "https://help.example.com"})
    await make_customer(email="tls@example.com")
    async with AsyncClient(
        transport=ASGITransport(app=app), base_url="https://help.example.com"
    ) as client:
        await ask_link(client, "tls@example.com")
        [token] = await links_sent(sessions, "tls@example.com")
        async with sessions() as session:
            body = await session.scalar(select(OutboundMail.body_text))
        assert f"https://help.example.com/portal/login/{token}" in (body or "")
        response = await use_link(client, token)
        assert response.status_code == 303
        assert "Secure" in response.headers["set-cookie"]


async def test_housekeeping_removes_spent_links_ended_sessions_and_old_counts(
    client: AsyncClient,
    sessions: Sessions,
    make_customer: MakeCustomer,
    frozen: list[datetime],
) -> None:
    from servicecycle.portal import service
    from servicecycle.portal.models import PortalSession, ThrottleHit, UsedLink

    await make_customer(email="old@example.com")
    await sign_in(client, sessions, "old@example.com")

    async def counts() -> list[int]:
        async with sessions() as session:
            return [
                int(await session.scalar(select(func.count()).select_from(m)) or 0)
                for m in (UsedLink, PortalSession, ThrottleHit)
            ]

    assert await counts() == [1, 1, 2]
    async with sessions() as session, session.begin():
        await service.remove_expired(session, now=frozen[0] + timedelta(hours=2))
    assert await counts() == [0, 1, 2]  # counts are kept a day, sessions 14 days
    async with sessions() as session, session.begin():
        await service.remove_expired(session, now=frozen[0] + timedelta(days=15))
    assert await counts() == [0, 0, 0]


async def test_a_new_password_ends_the_customers_other_sessions(
    app: FastAPI, client: AsyncClient, sessions: Sessions, make_customer: MakeCustomer
) -> None:
    await make_customer(email="two@example.com")
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as other:
        await sign_in(other, sessions, "two@example.com")
        signed = await sign_in(client, sessions, "two@example.com")
        saved = await client.post(
            "/portal/account/password",
            data={"password": "a brand new secret", "csrf_token": signed.csrf},
        )
        assert saved.status_code == 200
        assert (await client.get("/portal/requests")).status_code == 200
        assert (await other.get("/portal/requests")).status_code == 303
