from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth import service as auth
from servicecycle.auth.models import ApiToken, LoginAttempt, User
from servicecycle.events import service as events
from servicecycle.events.service import Actor
from servicecycle.kit import clock
from servicecycle.kit.errors import Conflict, PreconditionFailed, TooManyRequests, ValidationFailed
from tests.factories import PASSWORD

MakeUser = Callable[..., Awaitable[User]]
THROTTLE = auth.Throttle(max_failures=3, window=timedelta(minutes=15))


@pytest.fixture
def frozen() -> object:
    moment = [datetime(2026, 5, 4, 10, 0, tzinfo=UTC)]
    clock.set_source(lambda: moment[0])
    yield moment
    clock.set_source(None)


async def test_a_new_user_has_an_argon2_hash_and_a_creation_event(db: AsyncSession) -> None:
    user = await auth.create_user(
        db,
        email="Kim@Example.com",
        name=" Kim ",
        role="agent",
        password=PASSWORD,
        actor=Actor.system("test"),
    )
    assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert user.name == "Kim"
    page = await events.query(db, subject_type="user", subject_id=user.id)
    assert [e.kind for e in page.items] == ["user.created"]
    assert page.items[0].data == {"email": "Kim@Example.com", "role": "agent"}


async def test_accounts_given_one_password_hashed_once_each_sign_in_with_it(
    db: AsyncSession,
) -> None:
    shared = auth.hash_once(PASSWORD)
    for email in ("one@example.com", "two@example.com"):
        await auth.create_user(
            db, email=email, name="Shared", role="agent", password=shared, actor=Actor.system()
        )
    for email in ("one@example.com", "two@example.com"):
        found = await auth.authenticate(
            db, email=email, password=PASSWORD, ip="1.2.3.4", throttle=THROTTLE
        )
        assert found is not None and found.email == email
        assert found.password_hash == shared.value and shared.value.startswith("$argon2id$")
    wrong = await auth.authenticate(
        db, email="one@example.com", password=PASSWORD + "x", ip="1.2.3.4", throttle=THROTTLE
    )
    assert wrong is None
    with pytest.raises(ValidationFailed) as caught:
        auth.hash_once("short")
    assert "password" in caught.value.fields


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"email": "not-an-address"}, "email"),
        ({"password": "short"}, "password"),
        ({"role": "superuser"}, "role"),
        ({"name": "   "}, "name"),
    ],
)
async def test_invalid_users_are_refused_naming_the_field(
    db: AsyncSession, changes: dict[str, str], field: str
) -> None:
    values = {"email": "ok@example.com", "name": "Ok", "role": "agent", "password": PASSWORD}
    values.update(changes)
    with pytest.raises(ValidationFailed) as caught:
        await auth.create_user(db, actor=Actor.system(), **values)  # type: ignore[arg-type]
    assert field in caught.value.fields
    assert await db.scalar(select(User).where(User.email == values["email"])) is None


async def test_email_is_unique_whatever_its_case(db: AsyncSession, make_user: MakeUser) -> None:
    await make_user(email="sam@example.com")
    with pytest.raises(Conflict) as caught:
        await auth.create_user(
            db,
            email="SAM@example.com",
            name="Sam",
            role="agent",
            password=PASSWORD,
            actor=Actor.system(),
        )
    assert caught.value.fields == {"email": "already taken"}


async def test_right_password_signs_in_wrong_one_is_counted(
    db: AsyncSession, make_user: MakeUser
) -> None:
    user = await make_user(email="lee@example.com")
    found = await auth.authenticate(
        db, email="LEE@example.com", password=PASSWORD, ip="1.2.3.4", throttle=THROTTLE
    )
    assert found is not None and found.id == user.id
    assert (
        await auth.authenticate(
            db, email="lee@example.com", password="nope", ip="1.2.3.4", throttle=THROTTLE
        )
        is None
    )
    assert (
        await auth.authenticate(
            db, email="ghost@example.com", password="nope", ip="1.2.3.4", throttle=THROTTLE
        )
        is None
    )
    attempts = (await db.scalars(select(LoginAttempt.email).order_by(LoginAttempt.id))).all()
    assert attempts == ["lee@example.com", "ghost@example.com"]


async def test_throttled_account_is_refused_even_with_the_right_password_until_the_window_ends(
    db: AsyncSession, make_user: MakeUser, frozen: list[datetime]
) -> None:
    await make_user(email="max@example.com")
    for _ in range(3):
        assert (
            await auth.authenticate(
                db, email="max@example.com", password="wrong", ip="5.5.5.5", throttle=THROTTLE
            )
            is None
        )
    with pytest.raises(TooManyRequests) as caught:
        await auth.authenticate(
            db, email="max@example.com", password=PASSWORD, ip="6.6.6.6", throttle=THROTTLE
        )
    assert 0 < caught.value.retry_after <= 15 * 60
    frozen[0] += timedelta(minutes=16)
    assert (
        await auth.authenticate(
            db, email="max@example.com", password=PASSWORD, ip="6.6.6.6", throttle=THROTTLE
        )
        is not None
    )


async def test_one_address_trying_many_accounts_is_throttled(
    db: AsyncSession, frozen: object
) -> None:
    for n in range(12):
        await auth.authenticate(
            db, email=f"u{n}@example.com", password="x", ip="9.9.9.9", throttle=THROTTLE
        )
    with pytest.raises(TooManyRequests):
        await auth.authenticate(
            db, email="other@example.com", password="x", ip="9.9.9.9", throttle=THROTTLE
        )


async def test_disabled_users_cannot_sign_in_and_lose_their_sessions(
    db: AsyncSession, make_user: MakeUser
) -> None:
    user = await auth.get_user(db, (await make_user()).id)
    token, _ = await auth.start_session(
        db, user, lifetime=timedelta(days=1), ip=None, user_agent=None
    )
    assert await auth.resolve_session(db, token) is not None
    await auth.update_user(
        db, user, expected_version=user.version, changes={"is_active": False}, actor=Actor.system()
    )
    assert await auth.resolve_session(db, token) is None
    assert (
        await auth.authenticate(
            db, email=user.email, password=PASSWORD, ip="1.1.1.1", throttle=THROTTLE
        )
        is None
    )


async def test_sessions_expire(
    db: AsyncSession, make_user: MakeUser, frozen: list[datetime]
) -> None:
    user = await auth.get_user(db, (await make_user()).id)
    token, web_session = await auth.start_session(
        db, user, lifetime=timedelta(hours=1), ip="1.1.1.1", user_agent="pytest"
    )
    assert web_session.token_hash != token
    frozen[0] += timedelta(minutes=59)
    assert await auth.resolve_session(db, token) is not None
    frozen[0] += timedelta(minutes=2)
    assert await auth.resolve_session(db, token) is None
    assert await auth.resolve_session(db, "forged-value") is None


async def test_api_tokens_are_stored_hashed_and_can_be_revoked(
    db: AsyncSession, make_user: MakeUser
) -> None:
    user = await make_user("agent")
    plain, token = await auth.create_api_token(
        db, user, name="crm", scopes=["read"], expires_at=None, actor=Actor.user(user.id)
    )
    stored = await db.scalar(text("SELECT string_agg(token_hash || prefix, ',') FROM api_tokens"))
    assert plain.startswith("sc_") and stored is not None and plain not in stored
    resolved = await auth.resolve_api_token(db, plain)
    assert resolved is not None and resolved[1].id == user.id
    assert resolved[0].last_used_at is not None
    await auth.revoke_api_token(db, token, actor=Actor.user(user.id))
    assert await auth.resolve_api_token(db, plain) is None
    kinds = [
        e.kind for e in (await events.query(db, subject_type="user", subject_id=user.id)).items
    ]
    assert kinds[:2] == ["api_token.revoked", "api_token.created"]


async def test_expired_tokens_and_bad_scopes(
    db: AsyncSession, make_user: MakeUser, frozen: list[datetime]
) -> None:
    agent = await make_user("agent")
    plain, _ = await auth.create_api_token(
        db,
        agent,
        name="short",
        scopes=["read"],
        expires_at=frozen[0] + timedelta(hours=1),
        actor=Actor.system(),
    )
    frozen[0] += timedelta(hours=2)
    assert await auth.resolve_api_token(db, plain) is None
    with pytest.raises(ValidationFailed) as caught:
        await auth.create_api_token(
            db, agent, name="x", scopes=["admin"], expires_at=None, actor=Actor.system()
        )
    assert "scopes" in caught.value.fields
    with pytest.raises(ValidationFailed):
        await auth.create_api_token(
            db, agent, name="x", scopes=["delete-everything"], expires_at=None, actor=Actor.system()
        )
    assert (await db.scalar(select(ApiToken.id).where(ApiToken.name == "x"))) is None


async def test_updates_need_the_current_version(db: AsyncSession, make_user: MakeUser) -> None:
    user = await auth.get_user(db, (await make_user()).id)
    seen = user.version
    await auth.update_user(
        db, user, expected_version=seen, changes={"name": "First"}, actor=Actor.system()
    )
    assert user.version == seen + 1
    with pytest.raises(PreconditionFailed):
        await auth.update_user(
            db, user, expected_version=seen, changes={"name": "Second"}, actor=Actor.system()
        )
    assert user.name == "First"


async def test_signing_in_does_not_change_the_users_version(
    db: AsyncSession, make_user: MakeUser
) -> None:
    user = await auth.get_user(db, (await make_user()).id)
    before = user.version
    await auth.start_session(db, user, lifetime=timedelta(days=1), ip=None, user_agent=None)
    await db.refresh(user)
    assert user.version == before and user.last_login_at is not None


async def test_a_new_password_signs_out_every_browser(
    db: AsyncSession, make_user: MakeUser
) -> None:
    user = await auth.get_user(db, (await make_user()).id)
    token, _ = await auth.start_session(
        db, user, lifetime=timedelta(days=1), ip=None, user_agent=None
    )
    await auth.update_user(
        db,
        user,
        expected_version=user.version,
        changes={"password": "a brand new password"},
        actor=Actor.system(),
    )
    assert await auth.resolve_session(db, token) is None
    assert (
        await auth.authenticate(
            db, email=user.email, password="a brand new password", ip="1.1.1.1", throttle=THROTTLE
        )
        is not None
    )


async def test_housekeeping_removes_expired_sessions_and_old_failures(
    db: AsyncSession, make_user: MakeUser, frozen: list[datetime]
) -> None:
    user = await auth.get_user(db, (await make_user()).id)
    await auth.start_session(db, user, lifetime=timedelta(hours=1), ip=None, user_agent=None)
    await auth.authenticate(
        db, email="who@example.com", password="x", ip="1.1.1.1", throttle=THROTTLE
    )
    frozen[0] += timedelta(days=2)
    fresh, _ = await auth.start_session(
        db, user, lifetime=timedelta(hours=1), ip=None, user_agent=None
    )
    removed = await auth.remove_expired(db, now=clock.now())
    assert removed == {"sessions": 1, "login_attempts": 1}
    assert await auth.resolve_session(db, fresh) is not None
