"""Clocks of many tickets at once: what ``start_many``, ``stop`` and the sweep do, for a
batch of tickets in a few statements (the batched path of ``tickets.bulk``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import any_, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import instance_state, set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.util import identity_key
from sqlalchemy.types import BigInteger, DateTime

from servicecycle.db import written as db_written
from servicecycle.events.bus import dispatch_many
from servicecycle.events.service import NewEvent, record_many
from servicecycle.sla import service
from servicecycle.sla.models import SlaClock, SlaPolicy
from servicecycle.tickets.bulk import attach, json_rows

# (ticket id, policy, metrics, moment, paused)
Start = tuple[int, SlaPolicy, list[str], datetime, bool]


# one text whatever the number of tickets (an array, not an IN list)
_CLOCKS_OF = (
    select(SlaClock)
    .where(SlaClock.ticket_id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
    .order_by(SlaClock.id)
)


async def clocks_of_tickets(
    session: AsyncSession, ticket_ids: list[int]
) -> dict[int, list[SlaClock]]:
    """Every clock of each ticket (``clocks_of`` for each, one query for those this
    transaction does not keep). The transaction keeps what it read (outside a savepoint),
    as it keeps a new ticket's clocks: the ticket's next event in it needs no query."""
    fresh = service._fresh(session)
    found = {i: list(fresh[i]) for i in ticket_ids if i in fresh}
    rest = [i for i in ticket_ids if i not in found]
    if rest:
        for i in rest:
            found[i] = []
        for row in await session.scalars(_CLOCKS_OF, {"ids": rest}):
            found[row.ticket_id].append(row)
        if not session.in_nested_transaction():
            for i in rest:
                fresh[i] = list(found[i])
    return found


# many clocks in one INSERT of one text whatever their number; the rows (one JSON document,
# ``bulk.json_rows``) are numbered in its order, so the sorted ids are the clocks' in that order
_NEW_CLOCKS = text("""
INSERT INTO sla_clocks (ticket_id, policy_id, metric, state, target_minutes, business,
                        started_at, running_since, used_minutes, due_at, warn_at)
SELECT CAST(e->>0 AS bigint), CAST(e->>1 AS bigint), e->>2, e->>3, CAST(e->>4 AS int),
       CAST(e->>5 AS boolean), CAST(e->>6 AS timestamptz), CAST(e->>7 AS timestamptz),
       CAST(e->>8 AS float8), CAST(e->>9 AS timestamptz), CAST(e->>10 AS timestamptz)
FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS u(e, n)
ORDER BY n
RETURNING id
""")


async def start_for(session: AsyncSession, starts: list[Start]) -> dict[int, list[SlaClock]]:
    """``start_many`` for each ticket, stored in one statement; returns the started clocks.
    A clock that ``start_many`` would pause at once (the ticket waits) is stored paused, as
    the pause leaves it, instead of running and then changed."""
    made: dict[int, list[SlaClock]] = {}
    for ticket_id, policy, metrics, at, paused in starts:
        rows = await service.new_clocks(session, ticket_id, policy, metrics, at=at)
        if paused:
            for row in rows:
                await service.pause(session, row, at=at)
        if rows:
            made.setdefault(ticket_id, []).extend(rows)
    if not made:
        return made
    await _insert(session, [row for rows in made.values() for row in rows])
    for ticket_id, _policy, _, at, _paused in starts:
        if made.get(ticket_id):
            await service.note_started(session, ticket_id, made[ticket_id], at=at, paused=False)
    return made


async def _insert(session: AsyncSession, rows: list[SlaClock]) -> None:
    """Insert the new clocks (every column given) in one statement and keep them in the
    session as loaded rows: nothing is left for the unit of work to write."""
    for row in rows:
        row.warned_at = row.breached_at = row.stopped_at = None
    params = {
        "rows": json_rows(
            [
                [
                    r.ticket_id,
                    r.policy_id,
                    r.metric,
                    r.state,
                    r.target_minutes,
                    r.business,
                    r.started_at,
                    r.running_since,
                    r.used_minutes,
                    r.due_at,
                    r.warn_at,
                ]
                for r in rows
            ]
        )
    }
    attach(session, rows, sorted((await session.execute(_NEW_CLOCKS, params)).scalars().all()))


# what ``stop``, ``pause`` and ``resume`` change on a clock, each bit one column
_WRITTEN = ("state", "running_since", "used_minutes", "stopped_at", "due_at", "warn_at")
_WRITE_CLOCKS = text("""
UPDATE sla_clocks c
SET state = CASE WHEN m & 1 <> 0 THEN e->>2 ELSE c.state END,
    running_since = CASE WHEN m & 2 <> 0 THEN CAST(e->>3 AS timestamptz) ELSE c.running_since END,
    used_minutes = CASE WHEN m & 4 <> 0 THEN CAST(e->>4 AS float8) ELSE c.used_minutes END,
    stopped_at = CASE WHEN m & 8 <> 0 THEN CAST(e->>5 AS timestamptz) ELSE c.stopped_at END,
    due_at = CASE WHEN m & 16 <> 0 THEN CAST(e->>6 AS timestamptz) ELSE c.due_at END,
    warn_at = CASE WHEN m & 32 <> 0 THEN CAST(e->>7 AS timestamptz) ELSE c.warn_at END
FROM (SELECT e, CAST(e->>1 AS int) AS m
      FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS u(e)) AS u
WHERE c.id = CAST(e->>0 AS bigint)
""")


async def write_clocks(session: AsyncSession, rows: list[SlaClock]) -> None:
    """Write the changes made to loaded clocks (the columns the unit of work would write at
    the next flush, and only those) in one statement of one text, and mark them written.
    A clock with any other change is left to the unit of work."""
    written: list[tuple[SlaClock, int, list[str]]] = []
    for row in dict.fromkeys(rows):
        state = instance_state(row)
        changed = list(state.committed_state)
        if not state.persistent or not changed or not set(changed) <= set(_WRITTEN):
            continue
        mask = sum(1 << _WRITTEN.index(key) for key in changed)
        written.append((row, mask, changed))
    if not written:
        return
    params = {
        "rows": json_rows(
            [
                [
                    row.id,
                    mask,
                    row.state,
                    row.running_since,
                    row.used_minutes,
                    row.stopped_at,
                    row.due_at,
                    row.warn_at,
                ]
                for row, mask, _ in written
            ]
        )
    }
    with session.no_autoflush:  # the unit of work would write these very changes first
        result = await session.execute(_WRITE_CLOCKS, params)
    if result.rowcount != len(written):  # type: ignore[attr-defined]
        raise StaleDataError("An SLA clock was deleted by someone else")
    for row, _, changed in written:
        for key in changed:
            set_committed_value(row, key, getattr(row, key))
    db_written.changed(session, [row for row, _, _ in written])


async def stop_many(
    session: AsyncSession,
    stops: list[tuple[SlaClock, datetime, bool]],
    *,
    also: list[SlaClock] | None = None,
) -> None:
    """``stop`` for each (clock, moment, met), written together with the changes made to
    the clocks ``also`` names (paused, resumed), their events recorded together."""
    recorded = []
    for row, at, met in stops:
        if row.state in ("met", "cancelled") or row.stopped_at is not None:
            continue
        service._touch(session, row.ticket_id)
        if row.state == "running" and row.running_since is not None:
            policy = await service.policy_of(session, row.policy_id)
            _, measure = await service._time(session, policy, row.business)
            row.used_minutes += max(measure(row.running_since, at), 0.0)
        row.stopped_at, row.running_since = at, None
        if row.state != "breached":
            row.state = "met" if met else "cancelled"
        recorded.append(
            NewEvent(
                "sla.met" if met and row.state == "met" else "sla.stopped",
                "ticket",
                row.ticket_id,
                service.SYSTEM,
                at,
                {
                    "metric": row.metric,
                    "clock_id": row.id,
                    "state": row.state,
                    "used_minutes": round(row.used_minutes, 2),
                },
            )
        )
    await write_clocks(session, [row for row, _, _ in stops] + (also or []))
    await record_many(session, recorded)


_HISTORY = """
WITH m AS ({moments}),
due AS (
    SELECT c.id,
           c.due_at <= m.at AS breach,
           c.warned_at IS NULL AND c.warn_at <= m.at AND c.warn_at < c.due_at AS warn
    FROM sla_clocks c JOIN m ON c.ticket_id = m.ticket_id
    WHERE c.state = 'running'
      AND (c.due_at <= m.at OR (c.warned_at IS NULL AND c.warn_at <= m.at))
    FOR UPDATE OF c
),
changed AS (
    UPDATE sla_clocks c
    SET state = CASE WHEN due.breach THEN 'breached' ELSE c.state END,
        breached_at = CASE WHEN due.breach THEN c.due_at ELSE c.breached_at END,
        warned_at = CASE WHEN due.warn THEN c.warn_at ELSE c.warned_at END
    FROM due
    WHERE c.id = due.id
    RETURNING c.id, c.ticket_id, c.metric, c.due_at, c.warn_at, due.breach, due.warn
)
INSERT INTO events (kind, subject_type, subject_id, actor_type, actor_id, data, occurred_at)
SELECT kind, 'ticket', ticket_id::text, 'system', 'sla',
       jsonb_build_object('metric', metric, 'clock_id', id, 'due_at', due_at), at
FROM (
    SELECT 'sla.warning' AS kind, ticket_id, metric, id, due_at, warn_at AS at
    FROM changed WHERE warn
    UNION ALL
    SELECT 'sla.breached', ticket_id, metric, id, due_at, due_at FROM changed WHERE breach
) e
ORDER BY at, id, kind DESC
RETURNING id, kind, subject_id, occurred_at, data->>'metric', (data->>'clock_id')::bigint,
          data->>'due_at'
"""
_FOR_TICKETS = text(
    _HISTORY.format(moments="SELECT * FROM unnest(:ids, :moments) AS m(ticket_id, at)")
).bindparams(
    bindparam("ids", type_=ARRAY(BigInteger)),
    bindparam("moments", type_=ARRAY(DateTime(timezone=True))),
)
_FOR_ALL = text(
    _HISTORY.format(
        moments="SELECT DISTINCT ticket_id, CAST(:until AS timestamptz) AS at "
        "FROM sla_clocks WHERE state = 'running' "
        "AND (due_at <= :until OR (warned_at IS NULL AND warn_at <= :until))"
    )
)


async def sweep_history(
    session: AsyncSession,
    *,
    until: datetime | None = None,
    moments: dict[int, datetime] | None = None,
) -> tuple[int, int]:
    """What a sweep running every minute would have done by ``until`` (every ticket) or by
    each ticket's own moment (``moments``): each running clock past its warning time is
    warned at that time, each past its due time breached at its due time (both, for a clock
    past both). For loading history that sweeps now and then, before what happens to each
    ticket at its moment: a reply after the due time still meets a breached clock, and
    warnings and breaches carry their own times. Returns (warned, breached)."""
    if moments is not None:
        if not moments:
            return 0, 0
        stmt, params = _FOR_TICKETS, {"ids": list(moments), "moments": list(moments.values())}
    else:
        stmt, params = _FOR_ALL, {"until": until}
    await session.flush()
    rows = (await session.execute(stmt, params)).all()
    if not rows:
        return 0, 0
    changed: dict[int, list[tuple[str, datetime]]] = {}
    for _, kind, _, occurred_at, _, clock_id, _ in rows:
        changed.setdefault(clock_id, []).append((kind, occurred_at))
    learnt = []
    for clock_id, swept in changed.items():
        # changed behind the ORM's back: a loaded row learns it (nothing to write); looked up
        # by its key, not by walking everything the session holds
        loaded = session.identity_map.get(identity_key(SlaClock, clock_id))
        if loaded is None:
            continue
        for kind, occurred_at in swept:
            if kind == "sla.breached":
                set_committed_value(loaded, "state", "breached")
                set_committed_value(loaded, "breached_at", occurred_at)
            else:
                set_committed_value(loaded, "warned_at", occurred_at)
        learnt.append(loaded)
    db_written.changed(session, learnt)
    appended = service.swept_events(rows)
    breached = sum(1 for event in appended if event.kind == "sla.breached")
    await dispatch_many(session, appended)
    return len(appended) - breached, breached
