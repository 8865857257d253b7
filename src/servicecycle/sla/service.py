"""Calendars, policies and clocks. Flushes; the caller commits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, and_, case, func, or_, select, text, true
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth.models import Team
from servicecycle.events import versions
from servicecycle.events.bus import Appended, dispatch_many
from servicecycle.events.service import Actor, record
from servicecycle.kit import clock
from servicecycle.kit.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from servicecycle.sla.calendar import BusinessCalendar, CalendarError, Shift, public_holidays
from servicecycle.sla.models import METRICS, Calendar, SlaClock, SlaPolicy
from servicecycle.sla.rules import (
    Adder,
    Measurer,
    TicketFacts,
    calendar_adder,
    calendar_measurer,
    check_conditions,
    check_targets,
    due_from,
    matches,
)

T = TypeVar("T")
SYSTEM = Actor.system("sla")
NAME_MAX = 120
WARN_MAX = 10_080  # a week
_built: dict[tuple[str | None, ...], BusinessCalendar] = {}
# recording these means policies or calendars changed: each process reloads its copy
versions.track(
    "sla",
    "calendar.created",
    "calendar.updated",
    "calendar.deleted",
    "sla_policy.created",
    "sla_policy.updated",
    "sla_policy.deleted",
)


# -- calendars ------------------------------------------------------------------------------


def build_calendar(
    *,
    zone: str,
    week: dict[str, list[list[str]]],
    holiday_country: str | None,
    holiday_region: str | None,
    closed_days: list[str],
) -> BusinessCalendar:
    """The pure calendar for these settings; any problem is a 422 naming its field."""
    shifts: dict[int, list[Shift]] = {}
    for day, spans in week.items():
        if not day.isdigit() or int(day) > 6:
            raise ValidationFailed("Invalid weekday", fields={f"week.{day}": "0 (Monday) to 6"})
        try:
            shifts[int(day)] = [Shift.of(start, end) for start, end in spans]
        except (CalendarError, ValueError, TypeError) as exc:
            raise ValidationFailed(
                "Invalid hours", fields={f"week.{day}": str(exc) or "HH:MM pairs"}
            ) from exc
    try:
        closed = frozenset(date.fromisoformat(d) for d in closed_days)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(
            "Invalid closed day", fields={"closed_days": "YYYY-MM-DD dates"}
        ) from exc
    try:
        source = public_holidays(holiday_country, holiday_region) if holiday_country else None
    except CalendarError as exc:
        raise ValidationFailed(str(exc), fields={"holiday_country": str(exc)}) from exc
    try:
        return BusinessCalendar(zone=zone, week=shifts, holidays=closed, holiday_source=source)
    except CalendarError as exc:
        field = "zone" if "zone" in str(exc) else "week"
        raise ValidationFailed(f"Calendar refused: {exc}", fields={field: str(exc)}) from exc


def business_calendar(row: Calendar) -> BusinessCalendar:
    """The row's calendar, built once per content (building is the slow part); the key is
    the content, not the row's id and version, which another database may also have."""
    key = (
        row.zone,
        repr(row.week),
        row.holiday_country,
        row.holiday_region,
        repr(row.closed_days),
    )
    if key not in _built:
        _built[key] = build_calendar(
            zone=row.zone,
            week=row.week,
            holiday_country=row.holiday_country,
            holiday_region=row.holiday_region,
            closed_days=row.closed_days,
        )
    return _built[key]


async def create_calendar(
    session: AsyncSession,
    *,
    name: str,
    zone: str,
    week: dict[str, list[list[str]]],
    holiday_country: str | None,
    holiday_region: str | None,
    closed_days: list[str],
    actor: Actor,
) -> Calendar:
    name = _check_name(name)
    build_calendar(
        zone=zone,
        week=week,
        holiday_country=holiday_country,
        holiday_region=holiday_region,
        closed_days=closed_days,
    )
    await _refuse_taken(session, Calendar, name, "A calendar with this name exists")
    row = Calendar(
        name=name,
        zone=zone,
        week=week,
        holiday_country=holiday_country,
        holiday_region=holiday_region,
        closed_days=closed_days,
    )
    session.add(row)
    await session.flush()
    await record(
        session,
        "calendar.created",
        subject_type="calendar",
        subject_id=row.id,
        actor=actor,
        data={"name": row.name, "zone": zone},
    )
    return row


async def list_calendars(session: AsyncSession) -> list[Calendar]:
    return list((await session.scalars(select(Calendar).order_by(Calendar.name))).all())


async def get_calendar(session: AsyncSession, calendar_id: int) -> Calendar:
    row = await session.get(Calendar, calendar_id)
    if row is None:
        raise NotFound(f"No calendar {calendar_id}")
    return row


CALENDAR_FIELDS = ("name", "zone", "week", "holiday_country", "holiday_region", "closed_days")


async def update_calendar(
    session: AsyncSession,
    row: Calendar,
    *,
    expected_version: int,
    changes: dict[str, Any],
    actor: Actor,
) -> Calendar:
    """Change a calendar; the whole result is checked as at creation (no working hours, bad
    times, an unknown zone or country are refused). Clocks already running keep the due
    time they have until their next pause, resume or re-target."""
    _check_version(row.version, expected_version, "calendar")
    unknown = set(changes) - set(CALENDAR_FIELDS)
    if unknown:
        raise ValidationFailed(
            "Unknown field", fields={key: "not a calendar field" for key in unknown}
        )
    if "name" in changes:
        changes["name"] = _check_name(changes["name"])
        if changes["name"] != row.name:
            await _refuse_taken(
                session, Calendar, changes["name"], "A calendar with this name exists"
            )
    merged = {key: changes.get(key, getattr(row, key)) for key in CALENDAR_FIELDS}
    build_calendar(**{key: value for key, value in merged.items() if key != "name"})
    changed = {k: v for k, v in changes.items() if getattr(row, k) != v}
    for key, value in changed.items():
        setattr(row, key, value)
    if changed:
        await session.flush()
        await record(
            session,
            "calendar.updated",
            subject_type="calendar",
            subject_id=row.id,
            actor=actor,
            data={"changes": changed},
        )
    return row


async def delete_calendar(
    session: AsyncSession, row: Calendar, *, expected_version: int | None, actor: Actor
) -> None:
    """Remove a calendar no policy uses; otherwise 409 naming the policies."""
    if expected_version is not None:
        _check_version(row.version, expected_version, "calendar")
    users = list(
        (
            await session.scalars(
                select(SlaPolicy.name)
                .where(SlaPolicy.calendar_id == row.id)
                .order_by(SlaPolicy.name)
            )
        ).all()
    )
    if users:
        raise Conflict(
            f"The calendar is used by {', '.join(users)}; point "
            f"{'that policy' if len(users) == 1 else 'those policies'} at another calendar first",
            fields={"calendar": f"used by {', '.join(users)}"},
            extra={"policies": users},
        )
    name = row.name
    await session.delete(row)
    await session.flush()
    await record(
        session,
        "calendar.deleted",
        subject_type="calendar",
        subject_id=row.id,
        actor=actor,
        data={"name": name},
    )


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationFailed("Name is required", fields={"name": "must not be empty"})
    if len(name.strip()) > NAME_MAX:
        raise ValidationFailed(
            "Name is too long", fields={"name": f"at most {NAME_MAX} characters"}
        )
    return name.strip()


async def _refuse_taken(
    session: AsyncSession, model: type[Calendar] | type[SlaPolicy], name: str, message: str
) -> None:
    if await session.scalar(select(model.id).where(model.name == name)) is not None:
        raise Conflict(message, fields={"name": "already taken"})


def _check_version(current: int, expected: int, what: str) -> None:
    if current != expected:
        raise PreconditionFailed(
            f"This {what} was changed by someone else; reload and try again",
            extra={"current_version": current},
        )


def _check_warn(minutes: Any) -> int:
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not 0 <= minutes <= WARN_MAX:
        raise ValidationFailed(
            "Invalid warning time", fields={"warn_minutes": f"0 to {WARN_MAX} minutes"}
        )
    return minutes


async def _check_teams(session: AsyncSession, conditions: dict[str, list[Any]]) -> None:
    """A team condition names existing teams (a rule about no team would never match)."""
    wanted = set(conditions.get("team_id", []))
    if wanted:
        found = set((await session.scalars(select(Team.id).where(Team.id.in_(wanted)))).all())
        if missing := sorted(wanted - found):
            raise ValidationFailed(
                "Unknown team",
                fields={"conditions.team_id": f"no team {', '.join(map(str, missing))}"},
            )


# -- policies -------------------------------------------------------------------------------


async def create_policy(
    session: AsyncSession,
    *,
    name: str,
    conditions: dict[str, Any],
    targets: dict[str, Any],
    calendar_id: int | None,
    pause_statuses: list[str],
    warn_minutes: int,
    actor: Actor,
) -> SlaPolicy:
    name = _check_name(name)
    clean_conditions = check_conditions(conditions)
    await _check_teams(session, clean_conditions)
    clean_targets = check_targets(targets, METRICS)
    _check_pause(pause_statuses)
    warn_minutes = _check_warn(warn_minutes)
    if calendar_id is not None and await session.get(Calendar, calendar_id) is None:
        raise ValidationFailed("No such calendar", fields={"calendar_id": "unknown calendar"})
    if any(t["business"] for t in clean_targets.values()) and calendar_id is None:
        raise ValidationFailed(
            "Business-time targets need a calendar",
            fields={"calendar_id": "required for business time"},
        )
    await _refuse_taken(session, SlaPolicy, name, "A policy with this name exists")
    position = len((await session.scalars(select(SlaPolicy.id))).all())
    policy = SlaPolicy(
        name=name,
        conditions=clean_conditions,
        targets=clean_targets,
        calendar_id=calendar_id,
        pause_statuses=pause_statuses,
        warn_minutes=warn_minutes,
        position=position,
    )
    session.add(policy)
    await session.flush()
    await record(
        session,
        "sla_policy.created",
        subject_type="sla_policy",
        subject_id=policy.id,
        actor=actor,
        data={"name": policy.name, "conditions": clean_conditions, "targets": clean_targets},
    )
    return policy


def _check_pause(statuses: list[str]) -> None:
    if not set(statuses) <= {"pending", "on-hold"}:
        raise ValidationFailed(
            "Only pending and on-hold can pause clocks",
            fields={"pause_statuses": "pending, on-hold"},
        )


async def list_policies(session: AsyncSession) -> list[SlaPolicy]:
    stmt = select(SlaPolicy).order_by(SlaPolicy.position, SlaPolicy.id)
    return list((await session.scalars(stmt)).all())


async def get_policy(session: AsyncSession, policy_id: int) -> SlaPolicy:
    policy = await session.get(SlaPolicy, policy_id)
    if policy is None:
        raise NotFound(f"No SLA policy {policy_id}")
    return policy


async def update_policy(
    session: AsyncSession,
    policy: SlaPolicy,
    *,
    expected_version: int,
    changes: dict[str, Any],
    actor: Actor,
) -> SlaPolicy:
    _check_version(policy.version, expected_version, "policy")
    if "name" in changes:
        changes["name"] = _check_name(changes["name"])
        if changes["name"] != policy.name:
            await _refuse_taken(
                session, SlaPolicy, changes["name"], "A policy with this name exists"
            )
    if "warn_minutes" in changes:
        changes["warn_minutes"] = _check_warn(changes["warn_minutes"])
    for key in ("active", "position", "conditions", "targets", "pause_statuses"):
        if key in changes and changes[key] is None:
            raise ValidationFailed(f"Invalid {key}", fields={key: "must not be null"})
    if "conditions" in changes:
        changes["conditions"] = check_conditions(changes["conditions"])
        await _check_teams(session, changes["conditions"])
    if "targets" in changes:
        changes["targets"] = check_targets(changes["targets"], METRICS)
    if "pause_statuses" in changes:
        _check_pause(changes["pause_statuses"])
    calendar_id = changes.get("calendar_id", policy.calendar_id)
    if calendar_id is not None and await session.get(Calendar, calendar_id) is None:
        raise ValidationFailed("No such calendar", fields={"calendar_id": "unknown calendar"})
    targets = changes.get("targets", policy.targets)
    if calendar_id is None and any(t["business"] for t in targets.values()):
        raise ValidationFailed(
            "Business-time targets need a calendar",
            fields={"calendar_id": "required for business time"},
        )
    changed = {k: v for k, v in changes.items() if getattr(policy, k) != v}
    for key, value in changed.items():
        setattr(policy, key, value)
    if changed:
        await session.flush()
        await record(
            session,
            "sla_policy.updated",
            subject_type="sla_policy",
            subject_id=policy.id,
            actor=actor,
            data={"changes": changed},
        )
    return policy


async def delete_policy(
    session: AsyncSession, policy: SlaPolicy, *, expected_version: int | None, actor: Actor
) -> None:
    """Remove a policy that times no open ticket any more; otherwise 409 (deactivate it: its
    clocks then run out with their tickets, and new tickets get other policies)."""
    if expected_version is not None:
        _check_version(policy.version, expected_version, "policy")
    timed = await session.scalar(
        select(func.count(func.distinct(SlaClock.ticket_id))).where(
            SlaClock.policy_id == policy.id,
            SlaClock.stopped_at.is_(None),
            SlaClock.state != "cancelled",
        )
    )
    if timed:
        raise Conflict(
            f"{timed} open ticket{'s are' if timed != 1 else ' is'} timed by this policy; "
            "deactivate it instead, and delete it once they are solved",
            fields={"policy": f"timing {timed} open ticket{'s' if timed != 1 else ''}"},
            extra={"timed_tickets": timed},
        )
    name = policy.name
    await session.delete(policy)
    await session.flush()
    await record(
        session,
        "sla_policy.deleted",
        subject_type="sla_policy",
        subject_id=policy.id,
        actor=actor,
        data={"name": name},
    )


@dataclass(frozen=True)
class _Config:
    """Read-only copies of every policy (in order) and calendar, as clocks need them."""

    policies: list[SlaPolicy]
    by_id: dict[int, SlaPolicy]
    calendars: dict[int, Calendar]


async def _load_config(session: AsyncSession) -> _Config:
    policies = [versions.snapshot(p) for p in await list_policies(session)]
    calendars = [versions.snapshot(c) for c in (await session.scalars(select(Calendar))).all()]
    return _Config(policies, {p.id: p for p in policies}, {c.id: c for c in calendars})


async def _config(session: AsyncSession) -> _Config:
    """Each process keeps the copy while the configuration's version holds: every new
    ticket and every clock change reads it."""
    return await versions.cached(session, "sla", "config", _load_config)


async def choose_policy(session: AsyncSession, facts: TicketFacts) -> SlaPolicy | None:
    """The first active policy, in order, whose conditions the ticket meets (a read-only
    copy: change policies through ``update_policy`` on ``get_policy``'s row)."""
    for policy in (await _config(session)).policies:
        if policy.active and matches(policy.conditions, facts):
            return policy
    return None


async def policy_of(session: AsyncSession, policy_id: int | None) -> SlaPolicy | None:
    """The policy a clock names (a read-only copy), or None if it is gone."""
    return (await _config(session)).by_id.get(policy_id) if policy_id is not None else None


async def first_reply_due(
    session: AsyncSession, facts: TicketFacts, *, at: datetime
) -> tuple[datetime, str | None] | None:
    """When a first reply to a ticket opened at ``at`` with these facts would be due (as
    ``start`` computes it), and its policy calendar's time zone (None: no calendar); None
    when no policy with a first-reply target applies."""
    policy = await choose_policy(session, facts)
    target = policy.targets.get("first_reply") if policy is not None else None
    if policy is None or target is None:
        return None
    add, _ = await _time(session, policy, target["business"])
    return add(at, target["minutes"]), await zone_of(session, policy)


async def zone_of(session: AsyncSession, policy: SlaPolicy | None) -> str | None:
    """The time zone of the policy's calendar; None without one."""
    if policy is None or policy.calendar_id is None:
        return None
    row = (await _config(session)).calendars.get(policy.calendar_id)
    return row.zone if row is not None else None


# -- clocks ---------------------------------------------------------------------------------


async def _time(
    session: AsyncSession, policy: SlaPolicy | None, business: bool
) -> tuple[Adder, Measurer]:
    if business and policy is not None and policy.calendar_id is not None:
        row = (await _config(session)).calendars.get(policy.calendar_id)
        if row is not None:
            cal = business_calendar(row)
            return cal.add_minutes, cal.minutes_between
    return calendar_adder, calendar_measurer


def _mine(session: AsyncSession, name: str, empty: Callable[[], T]) -> T:
    """Something this transaction keeps for itself (forgotten when it ends)."""
    transaction = session.sync_session.get_transaction()
    seen = session.info.get(name)
    if seen is None or seen[0] is not transaction:
        seen = (transaction, empty())
        session.info[name] = seen
    kept: T = seen[1]
    return kept


def _started(session: AsyncSession) -> set[int]:
    """Tickets this transaction started a clock for (a savepoint rolled back may leave one
    in: the set may say too much, never too little)."""
    return _mine(session, "sla_started", set)


def _fresh(session: AsyncSession) -> dict[int, list[SlaClock]]:
    """Every clock of tickets whose clocks this transaction started from none (a new
    ticket's) or read whole (``batch.clocks_of_tickets``), kept as it changes them, so the
    ticket's next event needs no query. A ticket whose clocks change inside a savepoint is
    dropped: a rollback would expire them."""
    return _mine(session, "sla_fresh", dict)


def _touch(session: AsyncSession, ticket_id: int) -> None:
    if session.in_nested_transaction():
        _fresh(session).pop(ticket_id, None)


def started_here(session: AsyncSession, ticket_id: int) -> bool:
    """May this transaction have started a clock for the ticket?"""
    return ticket_id in _started(session)


def note_fresh(session: AsyncSession, ticket_id: int, rows: list[SlaClock]) -> None:
    """``rows`` are all the clocks the ticket has (just started, it had none)."""
    if not session.in_nested_transaction():
        _fresh(session)[ticket_id] = list(rows)


def forget_clock(session: AsyncSession, row: SlaClock) -> None:
    """``row`` is being deleted."""
    kept = _fresh(session).get(row.ticket_id)
    if kept is not None and row in kept:
        kept.remove(row)
    _touch(session, row.ticket_id)


async def clocks_of(session: AsyncSession, ticket_id: int) -> list[SlaClock]:
    kept = _fresh(session).get(ticket_id)
    if kept is not None:
        return list(kept)
    stmt = select(SlaClock).where(SlaClock.ticket_id == ticket_id).order_by(SlaClock.id)
    return list((await session.scalars(stmt)).all())


async def clocks_of_many(session: AsyncSession, ticket_ids: list[int]) -> dict[int, list[SlaClock]]:
    """The clocks of many tickets in one query (an inbox page); every id gets a list."""
    found: dict[int, list[SlaClock]] = {ticket_id: [] for ticket_id in ticket_ids}
    if found:
        stmt = (
            select(SlaClock)
            .where(SlaClock.ticket_id.in_(list(found)))
            .order_by(SlaClock.ticket_id, SlaClock.id)
        )
        for row in await session.scalars(stmt):
            found[row.ticket_id].append(row)
    return found


async def order_by_due(
    session: AsyncSession,
    view: Select[Any],
    *,
    due_first: bool,
    only: str | None,
    now: datetime,
    soon: timedelta,
    offset: int,
    limit: int,
) -> list[int]:
    """One page of ticket ids from ``view`` (a select of ``id`` and its place ``pos`` in the
    view's own order), in the database: narrowed to tickets with a live target overdue
    (``only="breached"``) or due within ``soon`` (any other ``only``), and with ``due_first``
    ordered soonest due first, then tickets whose clocks are all paused, then those without
    a target, each group in view order. Up to ``limit + 1`` ids, so the caller sees whether
    there is a next page."""
    v = view.subquery("v")
    c = SlaClock
    timed = and_(
        c.stopped_at.is_(None), c.state.in_(("running", "breached")), c.due_at.is_not(None)
    )
    clocks = (
        select(
            func.min(c.due_at).filter(timed).label("due"),
            func.bool_or(and_(c.stopped_at.is_(None), c.state == "paused")).label("paused"),
            func.bool_or(and_(timed, or_(c.state == "breached", c.due_at <= now))).label("overdue"),
            func.bool_or(and_(timed, c.due_at <= now + soon)).label("soon"),
        )
        .where(c.ticket_id == v.c.id)
        .lateral("k")
    )
    stmt = select(v.c.id).select_from(v.outerjoin(clocks, true()))
    if only == "breached":
        stmt = stmt.where(clocks.c.overdue.is_(True))
    elif only:
        stmt = stmt.where(clocks.c.soon.is_(True))
    if due_first:
        group = case((clocks.c.due.is_not(None), 0), (clocks.c.paused.is_(True), 1), else_=2)
        stmt = stmt.order_by(group, clocks.c.due, v.c.pos)
    else:
        stmt = stmt.order_by(v.c.pos)
    return list((await session.scalars(stmt.offset(offset).limit(limit + 1))).all())


async def due_clocks(
    session: AsyncSession, *, within_minutes: int | None, breached: bool, limit: int
) -> list[SlaClock]:
    """Live clocks soonest due first: those due within ``within_minutes`` (or all running
    ones), or the breached ones whose ticket still waits (not yet stopped)."""
    stmt = select(SlaClock)
    if breached:
        stmt = stmt.where(SlaClock.state == "breached", SlaClock.stopped_at.is_(None))
    else:
        stmt = stmt.where(SlaClock.state == "running")
        if within_minutes is not None:
            stmt = stmt.where(SlaClock.due_at <= clock.now() + timedelta(minutes=within_minutes))
    stmt = stmt.order_by(SlaClock.due_at, SlaClock.id).limit(limit)
    return list((await session.scalars(stmt)).all())


async def start(
    session: AsyncSession,
    ticket_id: int,
    policy: SlaPolicy,
    metric: str,
    *,
    at: datetime,
    paused: bool = False,
) -> SlaClock | None:
    """Start ``metric`` for the ticket if the policy has that target."""
    rows = await start_many(session, ticket_id, policy, [metric], at=at, paused=paused)
    return rows[0] if rows else None


async def start_many(
    session: AsyncSession,
    ticket_id: int,
    policy: SlaPolicy,
    metrics: list[str],
    *,
    at: datetime,
    paused: bool = False,
) -> list[SlaClock]:
    """Start those of ``metrics`` the policy has targets for (stored in one statement)."""
    rows = await new_clocks(session, ticket_id, policy, metrics, at=at)
    if not rows:
        return rows
    session.add_all(rows)
    await session.flush()
    await note_started(session, ticket_id, rows, at=at, paused=paused)
    return rows


async def new_clocks(
    session: AsyncSession, ticket_id: int, policy: SlaPolicy, metrics: list[str], *, at: datetime
) -> list[SlaClock]:
    """Unsaved running clocks for those of ``metrics`` the policy has targets for."""
    rows = []
    for metric in metrics:
        target = policy.targets.get(metric)
        if target is None:
            continue
        add, _ = await _time(session, policy, target["business"])
        row = SlaClock(
            ticket_id=ticket_id,
            policy_id=policy.id,
            metric=metric,
            state="running",
            target_minutes=target["minutes"],
            business=target["business"],
            started_at=at,
            running_since=at,
            used_minutes=0.0,
        )
        due = due_from(at, target=row.target_minutes, used=0.0, warn=policy.warn_minutes, add=add)
        row.due_at, row.warn_at = due.due_at, due.warn_at
        rows.append(row)
    return rows


async def note_started(
    session: AsyncSession, ticket_id: int, rows: list[SlaClock], *, at: datetime, paused: bool
) -> None:
    """After ``rows`` (the ticket's newly started clocks) are flushed: this transaction knows
    them, and they are paused at once if the ticket waits."""
    _started(session).add(ticket_id)
    kept = _fresh(session).get(ticket_id)
    if kept is not None:
        kept.extend(rows)
    _touch(session, ticket_id)
    if paused:
        for row in rows:
            await pause(session, row, at=at)


async def pause(session: AsyncSession, row: SlaClock, *, at: datetime) -> None:
    if row.state != "running" or row.running_since is None:
        return
    _touch(session, row.ticket_id)
    policy = await policy_of(session, row.policy_id)
    _, measure = await _time(session, policy, row.business)
    row.used_minutes += max(measure(row.running_since, at), 0.0)
    row.state, row.running_since, row.due_at, row.warn_at = "paused", None, None, None


async def resume(session: AsyncSession, row: SlaClock, *, at: datetime) -> None:
    if row.state != "paused":
        return
    _touch(session, row.ticket_id)
    policy = await policy_of(session, row.policy_id)
    add, _ = await _time(session, policy, row.business)
    warn = policy.warn_minutes if policy is not None else 0
    due = due_from(at, target=row.target_minutes, used=row.used_minutes, warn=warn, add=add)
    row.state, row.running_since, row.due_at, row.warn_at = "running", at, due.due_at, due.warn_at


async def stop(session: AsyncSession, row: SlaClock, *, at: datetime, met: bool = True) -> None:
    """The target was reached (``met``) or no longer applies; a breached clock stays breached."""
    if row.state in ("met", "cancelled") or row.stopped_at is not None:
        return
    _touch(session, row.ticket_id)
    if row.state == "running" and row.running_since is not None:
        policy = await policy_of(session, row.policy_id)
        _, measure = await _time(session, policy, row.business)
        row.used_minutes += max(measure(row.running_since, at), 0.0)
    row.stopped_at, row.running_since = at, None
    if row.state != "breached":
        row.state = "met" if met else "cancelled"
    await record(
        session,
        "sla.met" if met and row.state == "met" else "sla.stopped",
        subject_type="ticket",
        subject_id=row.ticket_id,
        actor=SYSTEM,
        data={
            "metric": row.metric,
            "clock_id": row.id,
            "state": row.state,
            "used_minutes": round(row.used_minutes, 2),
        },
    )


async def retarget(
    session: AsyncSession, row: SlaClock, policy: SlaPolicy, *, at: datetime
) -> None:
    """Apply a new policy's target to a live clock, keeping the time already used."""
    _touch(session, row.ticket_id)
    target = policy.targets.get(row.metric)
    if target is None:
        await stop(session, row, at=at, met=False)
        return
    was_running = row.state == "running"
    if was_running:
        await pause(session, row, at=at)
    row.policy_id, row.target_minutes, row.business = (
        policy.id,
        target["minutes"],
        target["business"],
    )
    if was_running:
        await resume(session, row, at=at)


# -- the sweep ------------------------------------------------------------------------------

_SWEEP = text("""
WITH breach AS (
    -- the soonest due, walking the partial index; SKIP LOCKED hands a worker the next clocks
    -- that no other worker holds, so several can sweep at once
    SELECT ctid AS tid FROM sla_clocks
    WHERE state = 'running' AND due_at <= :now
    ORDER BY due_at
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
),
warn AS (
    -- within the warning time but not yet due; the index holds due_at too, so clocks that
    -- are due (and breached above) are passed over without reading them
    SELECT ctid AS tid FROM sla_clocks
    WHERE state = 'running' AND warned_at IS NULL AND warn_at <= :now AND due_at > :now
    ORDER BY warn_at
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
),
changed AS (
    -- by row address: the rows are locked, so it cannot move
    UPDATE sla_clocks c
    SET state = CASE WHEN c.due_at <= :now THEN 'breached' ELSE c.state END,
        breached_at = CASE WHEN c.due_at <= :now THEN c.due_at ELSE c.breached_at END,
        warned_at = CASE WHEN c.due_at <= :now THEN c.warned_at ELSE :now END
    WHERE c.ctid = ANY(ARRAY(SELECT tid FROM breach UNION ALL SELECT tid FROM warn))
    RETURNING c.id, c.ticket_id, c.metric, c.due_at, c.state
)
INSERT INTO events (kind, subject_type, subject_id, actor_type, actor_id, data, occurred_at)
SELECT CASE WHEN state = 'breached' THEN 'sla.breached' ELSE 'sla.warning' END,
       'ticket', ticket_id::text, 'system', 'sla',
       jsonb_build_object('metric', metric, 'clock_id', id, 'due_at', due_at),
       CASE WHEN state = 'breached' THEN due_at ELSE :now END
FROM changed
-- plain columns back, not the JSON document: decoding 50,000 of them cost more than the SQL
RETURNING id, kind, subject_id, occurred_at,
          data->>'metric', (data->>'clock_id')::bigint, data->>'due_at'
""")


def swept_events(rows: Sequence[Any]) -> list[Appended]:
    """The warnings and breaches a sweep statement appended (its RETURNING rows: id, kind,
    ticket id, moment, metric, clock id, due time), as the bus hands them to subscribers."""
    return [
        Appended(
            event_id,
            kind,
            "ticket",
            subject_id,
            "system",
            "sla",
            {"metric": metric, "clock_id": clock_id, "due_at": due_at},
            occurred_at,
        )
        for event_id, kind, subject_id, occurred_at, metric, clock_id, due_at in rows
    ]


async def sweep(
    session: AsyncSession, *, now: datetime | None = None, batch: int = 1000
) -> tuple[int, int]:
    """Warn and breach the running clocks whose moment has come, up to ``batch`` of each;
    returns (warned, breached): less than ``batch`` of both means nothing more is due.

    One statement claims the clocks with SKIP LOCKED (so several workers share the work),
    updates them and appends their events; it reads only due clocks through partial
    indexes, so its cost follows what is due, not how many tickets exist. The events then
    go to their subscribers (escalation rules) like any other.
    """
    now = now or clock.now()
    # the clocks loaded below are expired: changes not yet written (a pause) go first, or
    # the expiry would drop them
    await session.flush()
    rows = (await session.execute(_SWEEP, {"now": now, "batch": batch})).all()
    _fresh(session).clear()
    for loaded in list(session.identity_map.values()):
        if isinstance(loaded, SlaClock):  # changed behind the ORM's back: reload when next read
            session.expire(loaded)
    appended = swept_events(rows)
    breached = sum(1 for event in appended if event.kind == "sla.breached")
    warned = len(appended) - breached
    await dispatch_many(session, appended)
    return warned, breached
