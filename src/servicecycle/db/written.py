"""Rows that the batched services write by SQL and keep in the session, undone on rollback.

The batched paths insert rows with one statement and keep them in the session as loaded rows
(``tickets.bulk.attach``), or update rows with one statement and tell the loaded objects the
values written (``set_committed_value``). The ORM does not know that these rows changed, so a
rolled-back savepoint would leave them in the session as written. The ORM expunges its own new
rows and expires its own changed ones when the transaction that made them is rolled back.
These services say what they wrote (``new``, ``changed``), and a rollback does the same for
those rows: a savepoint's rows when the savepoint is rolled back, and all rows when the whole
transaction is. The record lasts until the next transaction writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

# session.info: (outermost transaction, [(transaction written in, new rows, changed rows)])
_KEY = "db.written"
_Kept = tuple[SessionTransaction, list[tuple[SessionTransaction, list[Any], list[Any]]]]


def new(session: AsyncSession, rows: Iterable[Any]) -> None:
    """Rows inserted by SQL and added to the session as loaded: gone again on rollback."""
    _note(session.sync_session, list(rows), [])


def changed(session: AsyncSession, rows: Iterable[Any]) -> None:
    """Loaded rows updated by SQL (their new values set as committed): read again after a
    rollback."""
    _note(session.sync_session, [], list(rows))


def _note(session: Session, made: list[Any], touched: list[Any]) -> None:
    root = session.get_transaction()
    if root is None or (not made and not touched):
        return
    # the innermost transaction: a savepoint's rollback undoes only what was written in it
    transaction = session.get_nested_transaction() or root
    kept: _Kept | None = session.info.get(_KEY)
    if kept is None or kept[0] is not root:  # an earlier transaction's record: it ended
        kept = session.info[_KEY] = (root, [])
    kept[1].append((transaction, made, touched))


def _within(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_soft_rollback")
def _rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    kept: _Kept | None = session.info.get(_KEY)
    if kept is None:
        return
    records = []
    for record in kept[1]:
        transaction, made, touched = record
        if not _within(transaction, previous_transaction):
            records.append(record)
            continue
        for row in made:
            if row in session:
                session.expunge(row)
        for row in touched:
            if row in session:
                session.expire(row)
    kept[1][:] = records
