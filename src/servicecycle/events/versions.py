"""Per-process copies of the configuration that every event reads (trigger rules, SLA
policies and calendars, webhook subscriptions), never stale across processes.

Each configured domain has a version number in ``config_versions``. Recording one of the
event kinds a domain ``track``s (``rule.updated``, ``sla_policy.created``, ...) draws a new
number for it in the same transaction, after the change is flushed. A transaction reads all
the numbers once (one small query) and uses a process's copy only if it was made under the
number it reads; otherwise it loads the configuration again. So a rule changed by one
server process is obeyed by another's next transaction that starts after the commit.

The numbers come from a sequence, which a rollback does not rewind: a copy made inside a
transaction that changed the configuration and was then rolled back is filed under a number
no committed configuration will ever have.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")

_INFO = "config_versions"
_tracked: dict[str, str] = {}  # event kind -> domain
# (database, domain, what) -> (version, copy)
_copies: dict[tuple[Any, str, str], tuple[int, Any]] = {}

_READ = text("SELECT name, version FROM config_versions")
_BUMP = text(
    "INSERT INTO config_versions (name) VALUES (:name) "
    "ON CONFLICT (name) DO UPDATE SET version = nextval('config_versions_seq') "
    "RETURNING version"
)


def track(domain: str, *kinds: str) -> None:
    """Recording an event of one of ``kinds`` means ``domain``'s configuration changed."""
    for kind in kinds:
        _tracked[kind] = domain


def domain_of(kind: str) -> str | None:
    return _tracked.get(kind)


async def _versions(session: AsyncSession) -> dict[str, int]:
    """The numbers as this transaction knows them (read at its first need)."""
    seen = session.info.get(_INFO)
    if seen is None or seen[0] is not session.sync_session.get_transaction():
        rows = await session.execute(_READ)
        found = {str(name): int(version) for name, version in rows}
        # the transaction itself, not its id: held here, it cannot be freed and its id reused
        seen = (session.sync_session.get_transaction(), found)
        session.info[_INFO] = seen
    versions: dict[str, int] = seen[1]
    return versions


async def current(session: AsyncSession, domain: str) -> int:
    """``domain``'s version as this transaction knows it (0 if it never changed)."""
    return (await _versions(session)).get(domain, 0)


async def bump(session: AsyncSession, domain: str) -> None:
    """Mark ``domain``'s configuration changed; pending changes are flushed first, so a copy
    loaded under the new number holds them."""
    await session.flush()
    version = await session.scalar(_BUMP, {"name": domain})
    seen = session.info.get(_INFO)
    if seen is not None and seen[0] is session.sync_session.get_transaction():
        seen[1][domain] = int(version or 0)


async def cached(
    session: AsyncSession, domain: str, what: str, load: Callable[[AsyncSession], Awaitable[T]]
) -> T:
    """This process's copy of ``load``'s result if it is current, else a new copy. The copy
    is shared by concurrent requests: treat it as read-only (ORM rows in it are detached)."""
    version = await current(session, domain)
    url = session.get_bind().engine.url  # which database (hashing a URL renders it: slow)
    where = (url.host, url.port, url.database, url.username, tuple(url.query.items()))
    key = (where, domain, what)
    hit = _copies.get(key)
    if hit is not None and hit[0] == version:
        value: T = hit[1]
        return value
    value = await load(session)
    _copies[key] = (version, value)
    return value


def snapshot(row: T) -> T:
    """A detached copy of an ORM row's columns, safe to share: changing it changes nothing
    in the database (change the row itself, through its service)."""
    cls = type(row)
    twin = cls()
    for attr in inspect(cls).column_attrs:
        setattr(twin, attr.key, copy.deepcopy(getattr(row, attr.key)))
    return twin


_forgetters: list[Callable[[], None]] = []


def on_forget(drop: Callable[[], None]) -> None:
    """``drop`` empties a domain's own copies when ``forget`` is called."""
    _forgetters.append(drop)


def forget() -> None:
    """Drop every copy (tests that change configuration behind the services' backs)."""
    _copies.clear()
    for drop in _forgetters:
        drop()
