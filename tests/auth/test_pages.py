from __future__ import annotations

from collections.abc import Awaitable, Callable

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth.models import User, WebSession
from tests.factories import PASSWORD, sign_in

MakeUser = Callable[..., Awaitable[User]]
HTML = {"accept": "text/html"}


def _login_csrf(page: str) -> str:
    return page.split('name="login_csrf" value="')[1].split('"')[0]


async def _try(client: AsyncClient, email: str, password: str) -> tuple[int, str]:
    page = await client.get("/login")
    response = await client.post(
        "/login", data={"email": email, "password": password, "login_csrf": _login_csrf(page.text)}
    )
    return response.status_code, response.text


async def test_signing_in_sets_a_safe_cookie_and_shows_the_start_page(
    client: AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user("agent", name="Rosa Parks")
    page = await client.get("/login")
    response = await client.post(
        "/login",
        data={"email": user.email, "password": PASSWORD, "login_csrf": _login_csrf(page.text)},
    )
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert "sc_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http on localhost; https base_url turns it on
    home = await client.get("/", headers=HTML)
    assert home.status_code == 200 and "Welcome, Rosa" in home.text


async def test_wrong_password_and_unknown_account_get_the_same_answer(
    client: AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    wrong = await _try(client, user.email, "not the password")
    unknown = await _try(client, "nobody@example.com", "not the password")
    assert wrong[0] == unknown[0] == 401
    assert "Wrong e-mail or password." in wrong[1] and "Wrong e-mail or password." in unknown[1]


async def test_repeated_failures_are_throttled(client: AsyncClient, make_user: MakeUser) -> None:
    user = await make_user()
    for _ in range(5):
        assert (await _try(client, user.email, "guess"))[0] == 401
    status, text = await _try(client, user.email, PASSWORD)
    assert status == 429 and "Too many failed attempts" in text


async def test_sign_in_form_without_its_token_is_refused(
    client: AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    response = await client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 400 and "sc_session" not in response.headers.get(
        "set-cookie", ""
    )


async def test_next_only_leads_to_local_pages(client: AsyncClient, make_user: MakeUser) -> None:
    user = await make_user()
    for target, expected in (
        ("//evil.example/x", "/"),
        ("https://evil.example", "/"),
        ("/activity", "/activity"),
    ):
        page = await client.get("/login")
        response = await client.post(
            "/login",
            data={
                "email": user.email,
                "password": PASSWORD,
                "login_csrf": _login_csrf(page.text),
                "next": target,
            },
        )
        assert response.headers["location"] == expected


async def test_anonymous_and_forged_sessions_go_to_the_login_page(client: AsyncClient) -> None:
    response = await client.get("/activity?kind=x", headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/activity%3Fkind%3Dx"
    client.cookies.set("sc_session", "forged")
    assert (await client.get("/", headers=HTML)).status_code == 303


async def test_sign_out_needs_the_csrf_token_and_ends_the_session(
    client: AsyncClient, make_user: MakeUser, db: AsyncSession
) -> None:
    user = await make_user()
    csrf = await sign_in(client, user.email)
    refused = await client.post("/logout", headers=HTML)
    assert refused.status_code == 403
    assert (await client.get("/", headers=HTML)).status_code == 200
    done = await client.post("/logout", data={"csrf_token": csrf})
    assert done.status_code == 303 and done.headers["location"] == "/login"
    assert await db.scalar(select(WebSession).where(WebSession.user_id == user.id)) is None


async def test_browser_sessions_need_the_csrf_header_for_api_writes(
    client: AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user("agent")
    csrf = await sign_in(client, user.email)
    payload = {"name": "from the browser", "scopes": ["read"]}
    assert (await client.post("/api/v1/tokens", json=payload)).status_code == 403
    created = await client.post("/api/v1/tokens", json=payload, headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201


async def test_agents_do_not_see_admin_pages(client: AsyncClient, make_user: MakeUser) -> None:
    agent = await make_user("agent")
    await sign_in(client, agent.email)
    response = await client.get("/admin/users", headers=HTML)
    assert response.status_code == 403
    assert "Not allowed" in response.text and "Traceback" not in response.text


async def test_admin_adds_a_user_and_markup_in_names_is_escaped(
    client: AsyncClient, make_user: MakeUser, db: AsyncSession
) -> None:
    admin = await make_user("admin")
    csrf = await sign_in(client, admin.email)
    response = await client.post(
        "/admin/users",
        data={
            "csrf_token": csrf,
            "name": "<script>alert(1)</script>",
            "email": "x@example.com",
            "role": "agent",
            "password": PASSWORD,
        },
    )
    assert response.status_code == 303
    page = await client.get("/admin/users", headers=HTML)
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "can now sign in" in page.text  # the flash message, shown once
    assert "can now sign in" not in (await client.get("/admin/users", headers=HTML)).text
    bad = await client.post(
        "/admin/users",
        data={
            "csrf_token": csrf,
            "name": "Y",
            "email": "x@example.com",
            "role": "agent",
            "password": PASSWORD,
        },
    )
    assert bad.status_code == 409 and "already exists" in bad.text
    assert len((await db.scalars(select(User).where(User.email == "x@example.com"))).all()) == 1


async def test_tokens_page_shows_a_new_token_once(client: AsyncClient, make_user: MakeUser) -> None:
    user = await make_user("agent")
    csrf = await sign_in(client, user.email)
    created = await client.post(
        "/account/tokens", data={"csrf_token": csrf, "name": "zap", "scopes": ["read"]}
    )
    secret = created.text.split('id="new-token">')[1].split("<")[0]
    assert secret.startswith("sc_")
    listing = await client.get("/account/tokens", headers=HTML)
    assert "zap" in listing.text and secret not in listing.text
    refused = await client.post(
        "/account/tokens", data={"csrf_token": csrf, "name": "adm", "scopes": ["admin"]}
    )
    assert refused.status_code == 422 and "Only admins" in refused.text
