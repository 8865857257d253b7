from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from httpx import AsyncClient
from sqlalchemy import event, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from servicecycle.auth.models import User
from tests.factories import PASSWORD, Token

MakeToken = Callable[..., Awaitable[Token]]


def assert_error(body: dict[str, object], code: str) -> dict[str, object]:
    error = body["error"]
    assert isinstance(error, dict)
    assert set(error) >= {"code", "message", "fields"}
    assert error["code"] == code, error
    return error


async def test_no_credentials_is_a_401_in_the_error_shape(client: AsyncClient) -> None:
    response = await client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert_error(response.json(), "unauthenticated")


async def test_a_token_identifies_its_user(client: AsyncClient, make_token: MakeToken) -> None:
    token = await make_token("agent")
    response = await client.get("/api/v1/me", headers=token.headers)
    assert response.status_code == 200
    assert response.json()["email"] == token.user.email
    assert "password_hash" not in response.json()


async def test_a_forged_token_is_refused(client: AsyncClient) -> None:
    response = await client.get("/api/v1/me", headers={"Authorization": "Bearer sc_forged"})
    assert response.status_code == 401
    assert "token" in assert_error(response.json(), "unauthenticated")["message"]  # type: ignore[operator]


async def test_roles_limit_what_a_user_may_do(client: AsyncClient, make_token: MakeToken) -> None:
    agent = await make_token("agent")
    analyst = await make_token("analyst")
    assert (await client.get("/api/v1/users", headers=agent.headers)).status_code == 403
    assert (await client.get("/api/v1/events", headers=agent.headers)).status_code == 403
    assert (await client.get("/api/v1/events", headers=analyst.headers)).status_code == 200


async def test_scopes_limit_what_a_token_may_do(client: AsyncClient, make_token: MakeToken) -> None:
    read_only = await make_token("admin", scopes=["read"])
    no_admin = await make_token("admin", scopes=["read", "write"])
    assert (await client.get("/api/v1/me", headers=read_only.headers)).status_code == 200
    response = await client.post(
        "/api/v1/tokens", headers=read_only.headers, json={"name": "x", "scopes": ["read"]}
    )
    assert response.status_code == 403
    assert (await client.get("/api/v1/users", headers=no_admin.headers)).status_code == 403


async def test_admin_creates_a_user(
    client: AsyncClient, make_token: MakeToken, db: AsyncSession
) -> None:
    admin = await make_token("admin")
    response = await client.post(
        "/api/v1/users",
        headers=admin.headers,
        json={
            "email": "new@example.com",
            "name": "New Person",
            "role": "analyst",
            "password": PASSWORD,
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["role"] == "analyst" and body["version"] == 1
    assert response.headers["location"] == f"/api/v1/users/{body['id']}"
    assert response.headers["etag"] == '"1"'
    events = await client.get(
        "/api/v1/events",
        headers=admin.headers,
        params={"subject_type": "user", "subject_id": str(body["id"])},
    )
    assert [e["kind"] for e in events.json()["items"]] == ["user.created"]
    assert events.json()["items"][0]["actor_id"] == str(admin.user.id)


async def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(
    client: AsyncClient, make_token: MakeToken, db: AsyncSession
) -> None:
    admin = await make_token("admin")
    before = await db.scalar(select(func.count()).select_from(User))
    cases = [
        ({"email": "a@example.com", "name": "A", "role": "agent", "colour": "red"}, "colour"),
        ({"email": "a@example.com", "name": "A", "role": "pirate"}, "role"),
        ({"email": "a@example.com", "role": "agent"}, "name"),
        ({"email": "not-mail", "name": "A", "role": "agent"}, "email"),
        ({"email": "a@example.com", "name": "A", "role": "agent", "password": "short"}, "password"),
    ]
    for payload, field in cases:
        response = await client.post("/api/v1/users", headers=admin.headers, json=payload)
        assert response.status_code == 422, (payload, response.text)
        error = assert_error(response.json(), "validation_error")
        assert field in error["fields"], (field, error)  # type: ignore[operator]
    malformed = await client.post(
        "/api/v1/users",
        headers={**admin.headers, "content-type": "application/json"},
        content=b'{"email": ',
    )
    assert malformed.status_code == 422
    assert await db.scalar(select(func.count()).select_from(User)) == before


async def test_a_taken_email_is_a_409(client: AsyncClient, make_token: MakeToken) -> None:
    admin = await make_token("admin")
    payload = {"email": "twice@example.com", "name": "Twice", "role": "agent"}
    assert (
        await client.post("/api/v1/users", headers=admin.headers, json=payload)
    ).status_code == 201
    again = await client.post("/api/v1/users", headers=admin.headers, json=payload)
    assert again.status_code == 409
    assert assert_error(again.json(), "conflict")["fields"] == {"email": "already taken"}


async def test_updates_are_never_silently_lost(client: AsyncClient, make_token: MakeToken) -> None:
    admin = await make_token("admin")
    created = (
        await client.post(
            "/api/v1/users",
            headers=admin.headers,
            json={"email": "v@example.com", "name": "V", "role": "agent"},
        )
    ).json()
    url = f"/api/v1/users/{created['id']}"
    missing = await client.patch(url, headers=admin.headers, json={"name": "No version"})
    assert missing.status_code == 428
    first = await client.patch(
        url, headers={**admin.headers, "If-Match": '"1"'}, json={"name": "First"}
    )
    assert first.status_code == 200 and first.json()["version"] == 2
    assert first.headers["etag"] == '"2"'
    stale = await client.patch(url, headers=admin.headers, json={"name": "Second", "version": 1})
    assert stale.status_code == 412
    assert assert_error(stale.json(), "version_mismatch")["current_version"] == 2
    assert (await client.get(url, headers=admin.headers)).json()["name"] == "First"
    bad = await client.patch(
        url, headers={**admin.headers, "If-Match": "banana"}, json={"name": "x"}
    )
    assert bad.status_code == 422


async def test_users_are_paged_by_cursor(client: AsyncClient, make_token: MakeToken) -> None:
    admin = await make_token("admin")
    for n in range(5):
        await client.post(
            "/api/v1/users",
            headers=admin.headers,
            json={"email": f"p{n}@example.com", "name": f"P{n}", "role": "agent"},
        )
    seen: list[int] = []
    params: dict[str, str | int] = {"limit": 2}
    while True:
        page = (await client.get("/api/v1/users", headers=admin.headers, params=params)).json()
        seen += [u["id"] for u in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert len(seen) == len(set(seen)) >= 6
    assert seen == sorted(seen)
    broken = await client.get("/api/v1/users", headers=admin.headers, params={"cursor": "%%%"})
    assert broken.status_code == 422
    too_many = await client.get("/api/v1/users", headers=admin.headers, params={"limit": 5000})
    assert too_many.status_code == 422
    assert "limit" in too_many.json()["error"]["fields"]


async def test_tokens_are_shown_once_and_revocable(
    client: AsyncClient, make_token: MakeToken
) -> None:
    admin = await make_token("admin")
    created = await client.post(
        "/api/v1/tokens", headers=admin.headers, json={"name": "sync", "scopes": ["read"]}
    )
    assert created.status_code == 201
    secret = created.json()["token"]
    listed = (await client.get("/api/v1/tokens", headers=admin.headers)).json()
    assert secret not in str(listed)
    assert {"sync"} <= {t["name"] for t in listed}
    bearer = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/api/v1/me", headers=bearer)).status_code == 200
    revoked = await client.delete(f"/api/v1/tokens/{created.json()['id']}", headers=admin.headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert (await client.get("/api/v1/me", headers=bearer)).status_code == 401


async def test_nobody_revokes_another_users_token(
    client: AsyncClient, make_token: MakeToken
) -> None:
    owner = await make_token("agent")
    other = await make_token("agent")
    mine = (await client.get("/api/v1/tokens", headers=owner.headers)).json()[0]
    response = await client.delete(f"/api/v1/tokens/{mine['id']}", headers=other.headers)
    assert response.status_code == 404
    assert (await client.get("/api/v1/me", headers=owner.headers)).status_code == 200


async def test_teams_and_members(client: AsyncClient, make_token: MakeToken) -> None:
    admin = await make_token("admin")
    agent = await make_token("agent")
    team = (
        await client.post("/api/v1/teams", headers=admin.headers, json={"name": "Billing"})
    ).json()
    added = await client.post(
        f"/api/v1/teams/{team['id']}/members",
        headers=admin.headers,
        json={"user_id": agent.user.id},
    )
    assert added.json()["member_ids"] == [agent.user.id]
    duplicate = await client.post("/api/v1/teams", headers=admin.headers, json={"name": "billing"})
    assert duplicate.status_code == 409
    listed = (await client.get("/api/v1/teams", headers=agent.headers)).json()
    assert [t["member_ids"] for t in listed if t["name"] == "Billing"] == [[agent.user.id]]
    gone = await client.delete(
        f"/api/v1/teams/{team['id']}/members/{agent.user.id}", headers=admin.headers
    )
    assert gone.status_code == 204
    again = await client.delete(
        f"/api/v1/teams/{team['id']}/members/{agent.user.id}", headers=admin.headers
    )
    assert again.status_code == 404
    assert (
        await client.post("/api/v1/teams", headers=agent.headers, json={"name": "X"})
    ).status_code == 403


async def test_openapi_document_is_public_and_lists_the_api(client: AsyncClient) -> None:
    doc = (await client.get("/api/v1/openapi.json")).json()
    assert "/api/v1/users/{user_id}" in doc["paths"]
    assert "/login" not in doc["paths"]


async def test_a_token_cannot_make_a_stronger_token(
    client: AsyncClient, make_token: MakeToken
) -> None:
    limited = await make_token("admin", scopes=["read", "write"])
    stronger = await client.post(
        "/api/v1/tokens",
        headers=limited.headers,
        json={"name": "escalate", "scopes": ["read", "write", "admin"]},
    )
    assert stronger.status_code == 403
    assert "scopes" in stronger.json()["error"]["fields"]
    same = await client.post(
        "/api/v1/tokens", headers=limited.headers, json={"name": "same", "scopes": ["read"]}
    )
    assert same.status_code == 201


async def test_the_last_admin_cannot_be_demoted_or_disabled(
    client: AsyncClient, make_token: MakeToken, db: AsyncSession
) -> None:
    await db.execute(update(User).where(User.role == "admin").values(is_active=False))
    admin = await make_token("admin")
    me = (await client.get("/api/v1/me", headers=admin.headers)).json()
    url = f"/api/v1/users/{me['id']}"
    for change in ({"role": "agent"}, {"is_active": False}):
        response = await client.patch(
            url, headers=admin.headers, json={**change, "version": me["version"]}
        )
        assert response.status_code == 409, response.text
        assert "last active admin" in response.json()["error"]["message"]
    second = await client.post(
        "/api/v1/users",
        headers=admin.headers,
        json={"email": "second@example.com", "name": "Second", "role": "admin"},
    )
    assert second.status_code == 201
    demoted = await client.patch(
        url, headers=admin.headers, json={"role": "agent", "version": me["version"]}
    )
    assert demoted.status_code == 200 and demoted.json()["role"] == "agent"


async def test_schema_declares_the_bearer_scheme(client: AsyncClient) -> None:
    doc = (await client.get("/api/v1/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


async def test_a_known_token_is_not_read_again_until_a_user_or_token_changes(
    client: AsyncClient, make_token: MakeToken, engine: AsyncEngine
) -> None:
    admin = await make_token("admin")
    agent = await make_token("agent")
    assert (await client.get("/api/v1/me", headers=admin.headers)).status_code == 200
    reads: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if "FROM api_tokens" in statement:
            reads.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        assert (await client.get("/api/v1/me", headers=agent.headers)).status_code == 200
        assert (await client.get("/api/v1/me", headers=agent.headers)).status_code == 200
        assert len(reads) == 1  # the second request used this process's copy
        me = (await client.get("/api/v1/me", headers=agent.headers)).json()
        assert me["role"] == "agent"
        # promoted: the very next request is an admin's
        promoted = await client.patch(
            f"/api/v1/users/{me['id']}",
            headers=admin.headers,
            json={"role": "admin", "version": me["version"]},
        )
        assert promoted.status_code == 200, promoted.text
        me = (await client.get("/api/v1/me", headers=agent.headers)).json()
        assert me["role"] == "admin"
        assert len(reads) == 2  # read again after the change, once
        # deactivated: refused at once, though the token was known a moment ago
        off = await client.patch(
            f"/api/v1/users/{me['id']}",
            headers=admin.headers,
            json={"is_active": False, "version": me["version"]},
        )
        assert off.status_code == 200, off.text
        assert (await client.get("/api/v1/me", headers=agent.headers)).status_code == 401
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", note)


async def test_me_shows_a_changed_availability_at_once(
    client: AsyncClient, make_token: MakeToken
) -> None:
    agent = await make_token("agent")
    assert (await client.get("/api/v1/me", headers=agent.headers)).json()["availability"] == (
        "offline"
    )
    changed = await client.put(
        "/api/v1/me/availability", headers=agent.headers, json={"status": "online"}
    )
    assert changed.status_code == 200, changed.text
    assert (await client.get("/api/v1/me", headers=agent.headers)).json()["availability"] == (
        "online"
    )
