"""Rows by key: those the session already holds, the rest read in one query."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import BigInteger, any_, inspect, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.util import identity_key

T = TypeVar("T")


async def rows_by_id(
    session: AsyncSession, cls: type[T], ids: Iterable[int], needs: tuple[str, ...] = ()
) -> dict[int, T]:
    """The rows of ``cls`` with these ids that exist: those the session holds (as
    ``session.get`` takes them: not expired, nor the attributes ``needs`` names), the rest
    in one query."""
    wanted = set(ids)
    found: dict[int, T] = {}
    for key in wanted:
        held = session.identity_map.get(identity_key(cls, key))
        if isinstance(held, cls):
            state = inspect(held)
            if not state.expired and not state.expired_attributes.intersection(needs):
                found[key] = held
    rest = sorted(wanted - set(found))
    if rest:
        column: Any = inspect(cls).primary_key[0]
        stmt = select(cls).where(column == any_(literal(rest, ARRAY(BigInteger))))
        rows: Any = await session.scalars(stmt)
        found.update({row.id: row for row in rows})
    return found
