"""Every change to users, teams, sessions and tokens. Flushes; the caller commits."""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from servicecycle.auth.models import (
    ApiToken,
    LoginAttempt,
    Role,
    Scope,
    Team,
    TeamMember,
    User,
    WebSession,
)
from servicecycle.auth.passwords import (
    MIN_PASSWORD_LENGTH,
    Hashed,
    hash_password,
    hash_token,
    needs_rehash,
    new_token,
    verify_password,
)
from servicecycle.db import written
from servicecycle.events import versions
from servicecycle.events.service import Actor, record
from servicecycle.kit import clock
from servicecycle.kit.errors import (
    Conflict,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    TooManyRequests,
    ValidationFailed,
)
from servicecycle.kit.pagination import Page, decode_id_cursor, encode_cursor

TOKEN_PREFIX = "sc_"  # noqa: S105 - a public marker, not a secret
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SEEN_EVERY = timedelta(minutes=1)

# who a token is: each process keeps copies of the tokens it has seen, with their users, under
# the "auth" version, which every change to a token or a user draws anew (events/versions.py)
versions.track(
    "auth", "api_token.revoked", "user.updated", "user.availability_changed", "user.logged_in"
)
_TOKENS_KEPT = 1024
_tokens: dict[tuple[Any, str], tuple[int, ApiToken, User]] = {}
versions.on_forget(_tokens.clear)


# -- users ----------------------------------------------------------------------------------


def _check_email(email: str) -> str:
    email = email.strip()
    if not _EMAIL.match(email) or len(email) > 320:
        raise ValidationFailed("Invalid e-mail address", fields={"email": "not an e-mail address"})
    return email


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            "Password too short",
            fields={"password": f"at least {MIN_PASSWORD_LENGTH} characters"},
        )


def _check_role(role: str) -> str:
    if role not in {r.value for r in Role}:
        allowed = ", ".join(r.value for r in Role)
        raise ValidationFailed("Unknown role", fields={"role": f"one of {allowed}"})
    return role


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user {user_id}")
    return user


async def users_by_id(session: AsyncSession, user_ids: list[int]) -> list[User]:
    if not user_ids:
        return []
    return list((await session.scalars(select(User).where(User.id.in_(user_ids)))).all())


async def find_user_by_email(session: AsyncSession, email: str) -> User | None:
    stmt = select(User).where(func.lower(User.email) == email.strip().lower())
    return (await session.scalars(stmt)).one_or_none()


def hash_once(password: str) -> Hashed:
    """``password`` checked and hashed, for ``create_user`` to give several accounts."""
    _check_password(password)
    return Hashed(hash_password(password))


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    name: str,
    role: str,
    password: str | Hashed | None,
    actor: Actor,
) -> User:
    """Add a user; a taken e-mail address is a 409 on ``email``. ``password`` may be one
    hashed beforehand (``hash_once``)."""
    email = _check_email(email)
    _check_role(role)
    if not name.strip():
        raise ValidationFailed("Name is required", fields={"name": "must not be empty"})
    if isinstance(password, str):
        _check_password(password)
    if await find_user_by_email(session, email) is not None:
        raise Conflict("A user with this e-mail already exists", fields={"email": "already taken"})
    user = User(
        email=email,
        name=name.strip(),
        role=role,
        password_hash=(
            password.value
            if isinstance(password, Hashed)
            else hash_password(password)
            if password is not None
            else None
        ),
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent insert won the race
        raise Conflict(
            "A user with this e-mail already exists", fields={"email": "already taken"}
        ) from exc
    await record(
        session,
        "user.created",
        subject_type="user",
        subject_id=user.id,
        actor=actor,
        data={"email": email, "role": role},
    )
    return user


async def list_users(
    session: AsyncSession, *, limit: int = 50, cursor: str | None = None
) -> Page[User]:
    stmt = select(User).order_by(User.id)
    if cursor is not None:
        stmt = stmt.where(User.id > decode_id_cursor(cursor))
    rows = list((await session.scalars(stmt.limit(limit + 1))).all())
    next_cursor = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)


async def update_user(
    session: AsyncSession,
    user: User,
    *,
    expected_version: int,
    changes: dict[str, Any],
    actor: Actor,
) -> User:
    """Change name, role, e-mail, active flag or password, if ``expected_version`` is current."""
    if user.version != expected_version:
        raise PreconditionFailed(
            f"User {user.id} was changed by someone else (version {user.version}, "
            f"you sent {expected_version}); reload and try again",
            extra={"current_version": user.version},
        )
    changed: dict[str, Any] = {}
    if "email" in changes and changes["email"] != user.email:
        email = _check_email(changes["email"])
        other = await find_user_by_email(session, email)
        if other is not None and other.id != user.id:
            raise Conflict(
                "A user with this e-mail already exists", fields={"email": "already taken"}
            )
        user.email = changed["email"] = email
    if "name" in changes and changes["name"] != user.name:
        if not str(changes["name"]).strip():
            raise ValidationFailed("Name is required", fields={"name": "must not be empty"})
        user.name = changed["name"] = changes["name"].strip()
    new_role = changes.get("role", user.role)
    stays_active = changes.get("is_active", user.is_active)
    if user.role == Role.admin and user.is_active and (new_role != Role.admin or not stays_active):
        await _keep_an_admin(session, user)
    if "role" in changes and changes["role"] != user.role:
        user.role = changed["role"] = _check_role(changes["role"])
    if "is_active" in changes and changes["is_active"] != user.is_active:
        user.is_active = changed["is_active"] = bool(changes["is_active"])
    if "capacity" in changes and changes["capacity"] != user.capacity:
        capacity = changes["capacity"]
        if not isinstance(capacity, int) or isinstance(capacity, bool) or not 0 <= capacity <= 1000:
            raise ValidationFailed(
                "Invalid capacity", fields={"capacity": "0 to 1000 open tickets"}
            )
        user.capacity = changed["capacity"] = capacity
    if "skills" in changes and changes["skills"] != user.skills:
        user.skills = changed["skills"] = _check_skills(changes["skills"])
    if changes.get("password") is not None:
        _check_password(changes["password"])
        user.password_hash = hash_password(changes["password"])
        changed["password"] = "changed"  # noqa: S105 - notes the change, not the value
    if "password" in changed or changed.get("is_active") is False:
        # a new password or a disabled account signs out every browser of this user
        await session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    if changed:
        await session.flush()
        await record(
            session,
            "user.updated",
            subject_type="user",
            subject_id=user.id,
            actor=actor,
            data={"changes": changed},
        )
    return user


def _check_skills(skills: Any) -> dict[str, int]:
    """``{"billing": 3, "returns": 1}``: skill names to levels 1 (some) to 5 (expert)."""
    if not isinstance(skills, dict) or not all(
        isinstance(k, str)
        and k.strip()
        and isinstance(v, int)
        and not isinstance(v, bool)
        and 1 <= v <= 5
        for k, v in skills.items()
    ):
        raise ValidationFailed("Invalid skills", fields={"skills": "names to levels 1-5"})
    return {k.strip().lower(): v for k, v in skills.items()}


AVAILABILITY = ("online", "away", "offline")
ROUTING = ("manual", "round_robin", "least_loaded", "skills")


async def set_availability(session: AsyncSession, user: User, status: str, *, actor: Actor) -> User:
    """Online agents receive routed work; coming online pulls the work waiting for them."""
    if status not in AVAILABILITY:
        raise ValidationFailed("Invalid availability", fields={"status": ", ".join(AVAILABILITY)})
    if status != user.availability:
        before = user.availability
        # availability is not an edit of the user: no version bump
        await session.execute(update(User).where(User.id == user.id).values(availability=status))
        set_committed_value(user, "availability", status)
        written.changed(session, [user])
        await record(
            session,
            "user.availability_changed",
            subject_type="user",
            subject_id=user.id,
            actor=actor,
            data={"from": before, "to": status},
        )
    return user


async def set_team_routing(
    session: AsyncSession, team: Team, routing: str, *, actor: Actor
) -> Team:
    if routing not in ROUTING:
        raise ValidationFailed("Invalid routing", fields={"routing": ", ".join(ROUTING)})
    if routing != team.routing:
        team.routing = routing
        await session.flush()
        await record(
            session,
            "team.routing_changed",
            subject_type="team",
            subject_id=team.id,
            actor=actor,
            data={"routing": routing},
        )
    return team


async def teams_of(session: AsyncSession, user_id: int) -> list[Team]:
    stmt = (
        select(Team)
        .join(TeamMember, TeamMember.team_id == Team.id)
        .where(TeamMember.user_id == user_id)
        .order_by(Team.id)
    )
    return list((await session.scalars(stmt)).all())


async def team_members(session: AsyncSession, team_id: int) -> list[User]:
    stmt = (
        select(User)
        .join(TeamMember, TeamMember.user_id == User.id)
        .where(TeamMember.team_id == team_id)
        .order_by(User.id)
    )
    return list((await session.scalars(stmt)).all())


async def _keep_an_admin(session: AsyncSession, user: User) -> None:
    """Refuse to demote or disable the last active admin: nobody could manage users after."""
    others = await session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == Role.admin, User.is_active.is_(True), User.id != user.id)
    )
    if not others:
        raise Conflict(
            "This is the last active admin; make another admin first",
            fields={"role": "last admin"},
        )


# -- sign-in and sessions -------------------------------------------------------------------


@dataclass(frozen=True)
class Throttle:
    max_failures: int
    window: timedelta


async def _check_throttle(
    session: AsyncSession, *, email: str, ip: str, throttle: Throttle
) -> None:
    since = clock.now() - throttle.window
    by_email = select(func.count(), func.min(LoginAttempt.attempted_at)).where(
        LoginAttempt.email == email, LoginAttempt.attempted_at >= since
    )
    by_ip = select(func.count(), func.min(LoginAttempt.attempted_at)).where(
        LoginAttempt.ip == ip, LoginAttempt.attempted_at >= since
    )
    for stmt, limit in ((by_email, throttle.max_failures), (by_ip, throttle.max_failures * 4)):
        count, oldest = (await session.execute(stmt)).one()
        if count >= limit:
            retry = math.ceil((oldest + throttle.window - clock.now()).total_seconds())
            raise TooManyRequests(
                "Too many failed sign-in attempts. Try again later.", retry_after=max(retry, 1)
            )


async def authenticate(
    session: AsyncSession, *, email: str, password: str, ip: str, throttle: Throttle
) -> User | None:
    """The active user with these credentials, or None (and the failure is counted).

    Raises TooManyRequests while the account or address is throttled, whether or not
    the password is right, so throttling reveals nothing either.
    """
    email_key = email.strip().lower()[:320]
    await _check_throttle(session, email=email_key, ip=ip, throttle=throttle)
    user = await find_user_by_email(session, email_key)
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        session.add(LoginAttempt(email=email_key, ip=ip, attempted_at=clock.now()))
        await session.flush()
        return None
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    await session.execute(delete(LoginAttempt).where(LoginAttempt.email == email_key))
    return user


async def start_session(
    session: AsyncSession,
    user: User,
    *,
    lifetime: timedelta,
    ip: str | None,
    user_agent: str | None,
) -> tuple[str, WebSession]:
    """Open a browser session; returns the cookie value (never stored) and the row."""
    token = new_token()
    now = clock.now()
    web_session = WebSession(
        token_hash=hash_token(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + lifetime,
        ip=ip,
        user_agent=(user_agent or "")[:400],
    )
    session.add(web_session)
    # a Core UPDATE: signing in is not an edit, so it must not bump the row's version
    await session.execute(update(User).where(User.id == user.id).values(last_login_at=now))
    set_committed_value(user, "last_login_at", now)
    written.changed(session, [user])
    await session.flush()
    await record(
        session,
        "user.logged_in",
        subject_type="user",
        subject_id=user.id,
        actor=Actor.user(user.id),
        data={"ip": ip},
    )
    return token, web_session


async def resolve_session(session: AsyncSession, token: str) -> tuple[WebSession, User] | None:
    """The live session and its active user for a cookie value, or None."""
    stmt = (
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.token_hash == hash_token(token))
    )
    row = (await session.execute(stmt)).one_or_none()
    if row is None:
        return None
    web_session, user = row
    now = clock.now()
    if web_session.expires_at <= now or not user.is_active:
        return None
    if now - web_session.last_seen_at > _SEEN_EVERY:
        web_session.last_seen_at = now
    return web_session, user


async def remove_expired(session: AsyncSession, *, now: datetime) -> dict[str, int]:
    """Delete sessions past their expiry and sign-in failures older than a day."""
    sessions = await session.execute(delete(WebSession).where(WebSession.expires_at < now))
    attempts = await session.execute(
        delete(LoginAttempt).where(LoginAttempt.attempted_at < now - timedelta(days=1))
    )
    return {"sessions": sessions.rowcount, "login_attempts": attempts.rowcount}  # type: ignore[attr-defined]


async def end_session(session: AsyncSession, web_session: WebSession) -> None:
    await session.delete(web_session)
    await record(
        session,
        "user.logged_out",
        subject_type="user",
        subject_id=web_session.user_id,
        actor=Actor.user(web_session.user_id),
    )


def add_flash(web_session: WebSession, level: str, text: str) -> None:
    """Queue a message for the next page this browser renders."""
    web_session.flashes = [*web_session.flashes, {"level": level, "text": text}]


# -- API tokens -----------------------------------------------------------------------------


def _check_scopes(scopes: list[str]) -> list[str]:
    allowed = {s.value for s in Scope}
    bad = [s for s in scopes if s not in allowed]
    if bad or not scopes:
        raise ValidationFailed(
            "Invalid scopes", fields={"scopes": f"a non-empty list of {', '.join(sorted(allowed))}"}
        )
    return sorted(set(scopes))


async def create_api_token(
    session: AsyncSession,
    user: User,
    *,
    name: str,
    scopes: list[str],
    expires_at: datetime | None,
    actor: Actor,
    within: list[str] | None = None,
) -> tuple[str, ApiToken]:
    """Make a token; the plain value is returned once and never stored.

    ``within``: the scopes of the token making this request, if any; a token never
    makes a token that may do more than itself.
    """
    if not name.strip():
        raise ValidationFailed("Name is required", fields={"name": "must not be empty"})
    scopes = _check_scopes(scopes)
    if within is not None and not set(scopes) <= set(within):
        raise PermissionDenied(
            "A token cannot create a token with scopes it does not have itself",
            fields={"scopes": f"at most {', '.join(sorted(within))}"},
        )
    if Scope.admin in scopes and user.role != Role.admin:
        raise ValidationFailed(
            "Only admins can hold admin tokens", fields={"scopes": "admin not allowed"}
        )
    if expires_at is not None and expires_at <= clock.now():
        raise ValidationFailed(
            "Expiry is in the past", fields={"expires_at": "must be in the future"}
        )
    plain = new_token(TOKEN_PREFIX)
    token = ApiToken(
        user_id=user.id,
        name=name.strip()[:120],
        prefix=plain[:10],
        token_hash=hash_token(plain),
        scopes=scopes,
        expires_at=expires_at,
        created_at=clock.now(),
    )
    session.add(token)
    await session.flush()
    await record(
        session,
        "api_token.created",
        subject_type="user",
        subject_id=user.id,
        actor=actor,
        data={"token_id": token.id, "name": token.name, "scopes": scopes},
    )
    return plain, token


async def list_api_tokens(session: AsyncSession, user: User) -> list[ApiToken]:
    stmt = select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
    return list((await session.scalars(stmt)).all())


async def get_api_token(session: AsyncSession, token_id: int, *, owner: User) -> ApiToken:
    token = await session.get(ApiToken, token_id)
    if token is None or (token.user_id != owner.id and owner.role != Role.admin):
        raise NotFound(f"No API token {token_id}")
    return token


async def revoke_api_token(session: AsyncSession, token: ApiToken, *, actor: Actor) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = clock.now()
        await session.flush()
        await record(
            session,
            "api_token.revoked",
            subject_type="user",
            subject_id=token.user_id,
            actor=actor,
            data={"token_id": token.id, "name": token.name},
        )
    return token


async def resolve_api_token(session: AsyncSession, plain: str) -> tuple[ApiToken, User] | None:
    """The live token and its active user, or None; notes when it was last used.

    The two are this process's detached copies while no token or user has changed since
    they were read (read-only: change a user through ``get_user`` and this service)."""
    digest = hash_token(plain)
    version = await versions.current(session, "auth")
    key = (session.get_bind().engine.url, digest)
    kept = _tokens.get(key)
    if kept is not None and kept[0] == version:
        token, user = kept[1], kept[2]
    else:
        stmt = (
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == digest)
        )
        row = (await session.execute(stmt)).one_or_none()
        if row is None:
            return None
        token, user = versions.snapshot(row[0]), versions.snapshot(row[1])
        if len(_tokens) >= _TOKENS_KEPT:
            _tokens.clear()
        _tokens[key] = (version, token, user)
    now = clock.now()
    if token.revoked_at is not None or not user.is_active:
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    if token.last_used_at is None or now - token.last_used_at > _SEEN_EVERY:
        await session.execute(
            update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now)
        )
        token.last_used_at = now
    return token, user


# -- teams ----------------------------------------------------------------------------------


async def create_team(session: AsyncSession, *, name: str, description: str, actor: Actor) -> Team:
    name = name.strip()
    if not name:
        raise ValidationFailed("Name is required", fields={"name": "must not be empty"})
    exists = await session.scalar(select(Team.id).where(func.lower(Team.name) == name.lower()))
    if exists is not None:
        raise Conflict("A team with this name already exists", fields={"name": "already taken"})
    team = Team(name=name, description=description)
    session.add(team)
    await session.flush()
    await record(
        session,
        "team.created",
        subject_type="team",
        subject_id=team.id,
        actor=actor,
        data={"name": name},
    )
    return team


async def get_team(session: AsyncSession, team_id: int) -> Team:
    team = await session.get(Team, team_id)
    if team is None:
        raise NotFound(f"No team {team_id}")
    return team


async def list_teams(session: AsyncSession) -> list[tuple[Team, list[int]]]:
    teams = list((await session.scalars(select(Team).order_by(Team.name))).all())
    members = (await session.execute(select(TeamMember.team_id, TeamMember.user_id))).all()
    by_team: dict[int, list[int]] = {}
    for team_id, user_id in members:
        by_team.setdefault(team_id, []).append(user_id)
    return [(team, sorted(by_team.get(team.id, []))) for team in teams]


async def team_member_ids(session: AsyncSession, team: Team) -> list[int]:
    stmt = (
        select(TeamMember.user_id).where(TeamMember.team_id == team.id).order_by(TeamMember.user_id)
    )
    return list((await session.scalars(stmt)).all())


async def add_team_member(session: AsyncSession, team: Team, user: User, *, actor: Actor) -> None:
    if await session.get(TeamMember, (team.id, user.id)) is not None:
        return
    session.add(TeamMember(team_id=team.id, user_id=user.id))
    await session.flush()
    await record(
        session,
        "team.member_added",
        subject_type="team",
        subject_id=team.id,
        actor=actor,
        data={"user_id": user.id},
    )


async def remove_team_member(
    session: AsyncSession, team: Team, user: User, *, actor: Actor
) -> None:
    member = await session.get(TeamMember, (team.id, user.id))
    if member is None:
        raise NotFound(f"User {user.id} is not in team {team.id}")
    await session.delete(member)
    await session.flush()
    await record(
        session,
        "team.member_removed",
        subject_type="team",
        subject_id=team.id,
        actor=actor,
        data={"user_id": user.id},
    )
