from __future__ import annotations

from collections.abc import Awaitable, Callable

from httpx import AsyncClient

from servicecycle.auth.models import User
from tests.factories import sign_in

HTML = {"accept": "text/html"}


async def test_unknown_pages_get_a_friendly_404_and_the_api_its_error_shape(
    client: AsyncClient,
) -> None:
    page = await client.get("/no/such/page", headers=HTML)
    assert page.status_code == 404
    assert "There is nothing at this address." in page.text and "Traceback" not in page.text
    api = await client.get("/api/v1/no-such-thing")
    assert api.status_code == 404
    assert api.json()["error"]["code"] == "not_found"


async def test_every_response_carries_a_request_id_and_safe_headers(client: AsyncClient) -> None:
    response = await client.get("/login", headers={"x-request-id": "abc123"})
    assert response.headers["x-request-id"] == "abc123"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    fresh = await client.get("/login", headers={"x-request-id": "bad\nid"})
    assert len(fresh.headers["x-request-id"]) == 32


async def test_an_oversized_body_is_a_413_before_it_is_read(
    client: AsyncClient, app: object
) -> None:
    limit = app.state.runtime.settings.max_request_bytes  # type: ignore[attr-defined]
    response = await client.post(
        "/api/v1/users", content=b"x" * (limit + 1), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_healthz_reports_database_and_worker(client: AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "ok"
    assert body["worker"]["state"] in {"ok", "no worker"}
    assert set(body["worker"]) >= {"alive", "queued", "failed", "last_heartbeat"}


async def test_metrics_count_requests_by_route_template(client: AsyncClient) -> None:
    await client.get("/api/v1/users/12345")
    text = (await client.get("/metrics")).text
    assert (
        'servicecycle_http_requests_total{method="GET",route="/api/v1/users/{user_id}",status="401"}'
        in text
    )
    assert "servicecycle_http_request_duration_seconds_bucket" in text


async def test_pages_show_navigation_by_role(
    client: AsyncClient, make_user: Callable[..., Awaitable[User]]
) -> None:
    analyst = await make_user("analyst")
    await sign_in(client, analyst.email)
    home = (await client.get("/", headers=HTML)).text
    assert 'href="/activity"' in home and 'href="/admin/users"' not in home
    activity = await client.get("/activity", headers=HTML)
    assert activity.status_code == 200 and "user.logged_in" in activity.text


async def test_a_413_still_carries_the_security_headers(client: AsyncClient, app: object) -> None:
    limit = app.state.runtime.settings.max_request_bytes  # type: ignore[attr-defined]
    response = await client.post("/api/v1/users", content=b"x" * (limit + 1))
    assert response.status_code == 413
    assert response.headers["x-frame-options"] == "DENY" and response.headers["x-request-id"]


async def test_the_api_reference_loads_from_our_own_static_files(client: AsyncClient) -> None:
    page = await client.get("/api/v1/docs")
    assert page.status_code == 200
    assert 'src="/static/vendor/swagger-ui-bundle.js"' in page.text
    assert "cdn" not in page.text.lower() and "<script>" not in page.text


async def test_an_unexpected_error_is_a_500_page_that_leaks_nothing(app: object) -> None:
    from httpx import ASGITransport

    from servicecycle.auth.deps import Public

    async def boom() -> None:
        raise RuntimeError("secret internal detail: password=hunter2")

    app.add_api_route("/boom", boom, dependencies=[Public])  # type: ignore[attr-defined]
    transport = ASGITransport(app=app, raise_app_exceptions=False)  # type: ignore[arg-type]
    async with AsyncClient(transport=transport, base_url="http://testserver") as http:
        page = await http.get("/boom", headers=HTML)
        api = await http.get("/boom", headers={"accept": "application/json"})
    assert page.status_code == 500 and "Something went wrong" in page.text
    assert api.status_code == 500 and api.json()["error"]["code"] == "internal_error"
    for body in (page.text, api.text):
        assert "hunter2" not in body and "RuntimeError" not in body and "Traceback" not in body
    assert page.headers["x-request-id"] in page.text


async def test_cookies_are_secure_behind_https(
    app: object, make_user: Callable[..., Awaitable[User]]
) -> None:
    from httpx import ASGITransport

    app.state.runtime.settings.base_url = "https://help.example.com"  # type: ignore[attr-defined]
    user = await make_user()
    transport = ASGITransport(app=app)  # type: ignore[arg-type]
    async with AsyncClient(transport=transport, base_url="https://testserver") as client:
        page = await client.get("/login")
        login_csrf = page.text.split('name="login_csrf" value="')[1].split('"')[0]
        assert "Secure" in page.headers["set-cookie"]
        response = await client.post(
            "/login",
            data={
                "email": user.email,
                "password": "correct horse battery",
                "login_csrf": login_csrf,
            },
        )
    assert response.status_code == 303
    assert (
        "Secure" in response.headers["set-cookie"] and "HttpOnly" in response.headers["set-cookie"]
    )


async def test_the_api_reference_carries_a_signed_in_browsers_csrf_token(
    client: AsyncClient, make_user: Callable[..., Awaitable[User]]
) -> None:
    assert 'data-csrf="' not in (await client.get("/api/v1/docs")).text
    user = await make_user()
    csrf = await sign_in(client, user.email)
    assert f'data-csrf="{csrf}"' in (await client.get("/api/v1/docs")).text
