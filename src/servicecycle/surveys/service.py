"""Surveys as data, their invitations after a solved ticket, and the customers' answers.

A ticket becomes solved -> each enabled survey with a matching rule schedules one
invitation (due = solved + the rule's delay) -> the minute job sends the due ones through
the mail outbox, or skips them with a reason (``survey.skipped``) -> the customer clicks a
score in the mail -> ``survey.answered`` (a second click updates the same answer).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Select,
    and_,
    any_,
    func,
    literal,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from servicecycle.auth import service as auth
from servicecycle.channels.email import outbox
from servicecycle.customers import service as customers
from servicecycle.db import held, written
from servicecycle.events import versions
from servicecycle.events.service import Actor, NewEvent, record, record_many
from servicecycle.kit import clock
from servicecycle.kit.errors import (
    Conflict,
    NotFound,
    PreconditionFailed,
    ServiceError,
    ValidationFailed,
)
from servicecycle.kit.secrets import BadToken, Keyring
from servicecycle.surveys import scores
from servicecycle.surveys.models import (
    KINDS,
    SOURCES,
    Survey,
    SurveyInvitation,
    SurveyResponse,
    SurveyRule,
)
from servicecycle.tickets import service as tickets
from servicecycle.tickets.bulk import json_rows
from servicecycle.tickets.models import CHANNELS, Ticket

SURVEYOR = Actor.system("surveys")
# recording these means the surveys or their rules changed: each process reloads its copy
versions.track(
    "surveys",
    "survey.created",
    "survey.updated",
    "survey.rule_created",
    "survey.rule_updated",
    "survey.rule_deleted",
)
TOKEN_PURPOSE = "survey"  # noqa: S105  # the signing purpose, not a secret
LINK_DAYS = 30
GROUPS = ("team", "agent", "channel", "category", "month", "week", "customer")

DEFAULTS: dict[str, dict[str, Any]] = {
    "csat": {
        "question": "How satisfied are you with the help you received?",
        "why_question": "Anything we could have done better?",
        "scale": (1, 5),
        "labels": ("very dissatisfied", "very satisfied"),
    },
    "nps": {
        "question": "How likely are you to recommend us to a friend or colleague?",
        "why_question": "What is the main reason for your score?",
        "scale": (0, 10),
        "labels": ("not at all likely", "extremely likely"),
    },
    "ces": {
        "question": "The company made it easy to handle my issue.",
        "why_question": "What would have made it easier?",
        "scale": (1, 7),
        "labels": ("strongly disagree", "strongly agree"),
    },
    "custom": {"question": "", "why_question": "", "scale": (1, 5), "labels": ("", "")},
}


# -- surveys and rules ----------------------------------------------------------------------


def _text(field: str, value: Any, *, limit: int, required: bool) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} must be text", fields={field: "must be text"})
    value = " ".join(value.split())
    if required and not value:
        raise ValidationFailed(f"Give the survey a {field}", fields={field: "required"})
    if len(value) > limit:
        raise ValidationFailed(
            f"{field} is too long", fields={field: f"at most {limit} characters"}
        )
    return str(value)


def _int(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value).strip())
        except ValueError:
            raise ValidationFailed(
                f"{field} must be a whole number", fields={field: "must be a whole number"}
            ) from None
    if not low <= value <= high:
        raise ValidationFailed(
            f"{field} must be between {low} and {high}",
            fields={field: f"between {low} and {high}"},
        )
    return int(value)


async def _check_name(session: AsyncSession, name: str, *, other_than: int | None) -> None:
    stmt = select(Survey.id).where(func.lower(Survey.name) == name.lower())
    if other_than is not None:
        stmt = stmt.where(Survey.id != other_than)
    if await session.scalar(stmt) is not None:
        raise Conflict(f"A survey named {name!r} exists", fields={"name": "already taken"})


def _snapshot(survey: Survey) -> dict[str, Any]:
    return {
        "name": survey.name,
        "kind": survey.kind,
        "question": survey.question,
        "why_question": survey.why_question,
        "scale": [survey.scale_min, survey.scale_max],
        "enabled": survey.enabled,
    }


async def create_survey(
    session: AsyncSession,
    *,
    name: str,
    kind: str,
    question: str | None = None,
    why_question: str | None = None,
    scale_min: int | None = None,
    scale_max: int | None = None,
    enabled: bool = False,
    actor: Actor,
) -> Survey:
    """A survey of ``kind``; CSAT, NPS and CES bring their standard question and scale."""
    if kind not in KINDS:
        raise ValidationFailed(
            f"Unknown survey kind {kind!r}", fields={"kind": f"one of {', '.join(KINDS)}"}
        )
    defaults = DEFAULTS[kind]
    name = _text("name", name, limit=120, required=True)
    question = _text("question", question or defaults["question"], limit=500, required=True)
    why = _text(
        "why_question",
        defaults["why_question"] if why_question is None else why_question,
        limit=500,
        required=False,
    )
    low, high = defaults["scale"]
    if kind == "custom":
        low = _int("scale_min", low if scale_min is None else scale_min, 0, 10)
        high = _int("scale_max", high if scale_max is None else scale_max, 1, 10)
        if low >= high:
            raise ValidationFailed(
                "The scale must run from a lower to a higher number",
                fields={"scale_max": "must be above scale_min"},
            )
    await _check_name(session, name, other_than=None)
    survey = Survey(
        name=name,
        kind=kind,
        question=question,
        why_question=why,
        scale_min=low,
        scale_max=high,
        enabled=bool(enabled),
    )
    session.add(survey)
    await session.flush()
    await record(
        session,
        "survey.created",
        subject_type="survey",
        subject_id=survey.id,
        actor=actor,
        data=_snapshot(survey),
    )
    return survey


async def update_survey(
    session: AsyncSession, survey: Survey, *, changes: dict[str, Any], actor: Actor
) -> Survey:
    """Change the name, question texts or enabled flag (the kind and scale stay)."""
    unknown = set(changes) - {"name", "question", "why_question", "enabled"}
    if unknown:
        field = sorted(unknown)[0]
        raise ValidationFailed(f"{field} cannot be changed", fields={field: "cannot be changed"})
    before = _snapshot(survey)
    if "name" in changes:
        name = _text("name", changes["name"], limit=120, required=True)
        await _check_name(session, name, other_than=survey.id)
        survey.name = name
    if "question" in changes:
        survey.question = _text("question", changes["question"], limit=500, required=True)
    if "why_question" in changes:
        survey.why_question = _text(
            "why_question", changes["why_question"], limit=500, required=False
        )
    if "enabled" in changes:
        if not isinstance(changes["enabled"], bool):
            raise ValidationFailed("enabled must be true or false", fields={"enabled": "boolean"})
        survey.enabled = changes["enabled"]
    after = _snapshot(survey)
    changed = {k: after[k] for k in after if after[k] != before[k]}
    if changed:
        survey.updated_at = clock.now()
        await session.flush()
        await record(
            session,
            "survey.updated",
            subject_type="survey",
            subject_id=survey.id,
            actor=actor,
            data={"changed": changed},
        )
    return survey


async def get_survey(session: AsyncSession, survey_id: int) -> Survey:
    survey = await session.get(Survey, survey_id)
    if survey is None:
        raise NotFound(f"No survey {survey_id}")
    return survey


async def list_surveys(session: AsyncSession) -> list[Survey]:
    return list((await session.scalars(select(Survey).order_by(Survey.id))).all())


async def rules_of(session: AsyncSession, survey_ids: list[int]) -> dict[int, list[SurveyRule]]:
    found: dict[int, list[SurveyRule]] = {sid: [] for sid in survey_ids}
    rows = await session.scalars(
        select(SurveyRule).where(SurveyRule.survey_id.in_(survey_ids)).order_by(SurveyRule.id)
    )
    for rule in rows:
        found[rule.survey_id].append(rule)
    return found


def _names(field: str, values: Any, *, choices: tuple[str, ...] | None, limit: int) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = values.split(",")
    if not isinstance(values, list):
        raise ValidationFailed(f"{field} must be a list", fields={field: "a list of names"})
    cleaned: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise ValidationFailed(f"{field} must be a list", fields={field: "a list of names"})
        value = value.strip()
        if not value:
            continue
        if len(value) > limit:
            raise ValidationFailed(
                f"{field}: {value[:20]!r} is too long", fields={field: f"at most {limit} chars"}
            )
        if choices is not None and value not in choices:
            raise ValidationFailed(
                f"Unknown {field[:-1]} {value!r}", fields={field: f"one of {', '.join(choices)}"}
            )
        if value not in cleaned:
            cleaned.append(value)
    return cleaned


def _rule_snapshot(rule: SurveyRule) -> dict[str, Any]:
    return {
        "survey_id": rule.survey_id,
        "delay_hours": rule.delay_hours,
        "channels": list(rule.channels),
        "tiers": list(rule.tiers),
        "segments": list(rule.segments),
        "throttle_days": rule.throttle_days,
        "enabled": rule.enabled,
    }


async def create_rule(
    session: AsyncSession,
    survey: Survey,
    *,
    delay_hours: Any = 24,
    channels: Any = None,
    tiers: Any = None,
    segments: Any = None,
    throttle_days: Any = 30,
    enabled: bool = True,
    actor: Actor,
) -> SurveyRule:
    """Send ``survey`` ``delay_hours`` after solved, for these channels, tiers and segments
    (empty: any), at most once per customer in ``throttle_days``."""
    rule = SurveyRule(
        survey_id=survey.id,
        delay_hours=_int("delay_hours", delay_hours, 0, 24 * 90),
        channels=_names("channels", channels, choices=CHANNELS, limit=20),
        tiers=_names("tiers", tiers, choices=None, limit=40),
        segments=_names("segments", segments, choices=None, limit=80),
        throttle_days=_int("throttle_days", throttle_days, 0, 3650),
        enabled=bool(enabled),
    )
    session.add(rule)
    await session.flush()
    await record(
        session,
        "survey.rule_created",
        subject_type="survey",
        subject_id=survey.id,
        actor=actor,
        data={"rule_id": rule.id, **_rule_snapshot(rule)},
    )
    return rule


RULE_FIELDS = ("delay_hours", "channels", "tiers", "segments", "throttle_days", "enabled")


async def update_rule(
    session: AsyncSession,
    rule: SurveyRule,
    *,
    expected_version: int | None,
    changes: dict[str, Any],
    actor: Actor,
) -> SurveyRule:
    """Change a rule's delay, channels, tiers, segments, throttle or enabled flag (412 when
    someone changed it since ``expected_version``); records ``survey.rule_updated`` with
    what changed. Invitations already scheduled keep the due time they were given."""
    if expected_version is not None and rule.version != expected_version:
        raise PreconditionFailed(
            f"Survey rule {rule.id} was changed by someone else; reload and try again",
            extra={"current_version": rule.version},
        )
    unknown = set(changes) - set(RULE_FIELDS)
    if unknown:
        field = sorted(unknown)[0]
        raise ValidationFailed(f"{field} cannot be changed", fields={field: "cannot be changed"})
    # every value is checked before any is set: a refused change leaves the rule as it was
    values: dict[str, Any] = {}
    if "delay_hours" in changes:
        values["delay_hours"] = _int("delay_hours", changes["delay_hours"], 0, 24 * 90)
    if "channels" in changes:
        values["channels"] = _names("channels", changes["channels"], choices=CHANNELS, limit=20)
    if "tiers" in changes:
        values["tiers"] = _names("tiers", changes["tiers"], choices=None, limit=40)
    if "segments" in changes:
        values["segments"] = _names("segments", changes["segments"], choices=None, limit=80)
    if "throttle_days" in changes:
        values["throttle_days"] = _int("throttle_days", changes["throttle_days"], 0, 3650)
    if "enabled" in changes:
        if not isinstance(changes["enabled"], bool):
            raise ValidationFailed("enabled must be true or false", fields={"enabled": "boolean"})
        values["enabled"] = changes["enabled"]
    before = _rule_snapshot(rule)
    for key, value in values.items():
        if before[key] != value:
            setattr(rule, key, value)
    after = _rule_snapshot(rule)
    changed = {k: after[k] for k in after if after[k] != before[k]}
    if changed:
        rule.updated_at = clock.now()
        await session.flush()
        await record(
            session,
            "survey.rule_updated",
            subject_type="survey",
            subject_id=rule.survey_id,
            actor=actor,
            data={
                "rule_id": rule.id,
                "changed": changed,
                "before": {k: before[k] for k in changed},
            },
        )
    return rule


async def get_rule(session: AsyncSession, rule_id: int) -> SurveyRule:
    rule = await session.get(SurveyRule, rule_id)
    if rule is None:
        raise NotFound(f"No survey rule {rule_id}")
    return rule


async def delete_rule(session: AsyncSession, rule: SurveyRule, *, actor: Actor) -> None:
    data = {"rule_id": rule.id, **_rule_snapshot(rule)}
    await session.delete(rule)
    await session.flush()
    await record(
        session,
        "survey.rule_deleted",
        subject_type="survey",
        subject_id=data["survey_id"],
        actor=actor,
        data=data,
    )


# -- scheduling and sending -----------------------------------------------------------------


def _matches(rule: SurveyRule, ticket: Ticket, tier: str, segment: str | None) -> bool:
    return (
        rule.enabled
        and (not rule.channels or ticket.channel in rule.channels)
        and (not rule.tiers or tier in rule.tiers)
        and (not rule.segments or (segment is not None and segment in rule.segments))
    )


@dataclass(frozen=True)
class _Schedule:
    """Read-only copies of the enabled surveys (in order) and their rules (in order)."""

    surveys: list[Survey]
    rules: dict[int, list[SurveyRule]]


async def _load_schedule(session: AsyncSession) -> _Schedule:
    surveys = list(
        (await session.scalars(select(Survey).where(Survey.enabled).order_by(Survey.id))).all()
    )
    rules = await rules_of(session, [s.id for s in surveys]) if surveys else {}
    return _Schedule(
        [versions.snapshot(s) for s in surveys],
        {sid: [versions.snapshot(r) for r in found] for sid, found in rules.items()},
    )


async def _schedule(session: AsyncSession) -> _Schedule:
    """Each process keeps the copy while the surveys' configuration version holds: every
    solve reads it."""
    return await versions.cached(session, "surveys", "schedule", _load_schedule)


async def schedule_for_ticket(session: AsyncSession, ticket: Ticket, *, at: datetime) -> int:
    """On solve: one invitation per enabled survey whose first matching rule says so (due
    after the rule's delay). A ticket solved again moves its unsent invitation's due time.
    Returns how many were scheduled."""
    return await schedule_for_tickets(session, [(ticket, at)], recorded_at=None)


async def schedule_for_tickets(
    session: AsyncSession,
    solved: list[tuple[Ticket, datetime]],
    *,
    recorded_at: Callable[[datetime], datetime] | None = lambda at: at,
) -> int:
    """``schedule_for_ticket`` for each (ticket, solved at) of different tickets: the
    invitations read in one query, written in one, their events recorded together (at the
    solve; ``recorded_at=None``: now). Returns how many were scheduled."""
    config = await _schedule(session)
    if not config.surveys or not solved:
        return 0
    ids = [ticket.id for ticket, _ in solved]
    rows = await session.scalars(
        select(SurveyInvitation)
        .where(
            SurveyInvitation.ticket_id == any_(literal(ids, ARRAY(BigInteger))),
            SurveyInvitation.survey_id.in_([s.id for s in config.surveys]),
        )
        .order_by(SurveyInvitation.id)
        .with_for_update()
    )
    existing = {(row.survey_id, row.ticket_id): row for row in rows}
    made: list[tuple[SurveyInvitation | None, Survey, SurveyRule, Ticket, datetime]] = []
    new_rows: list[dict[str, Any]] = []
    for ticket, at in solved:
        customer = await customers.get_customer(session, ticket.requester_id)
        for survey in config.surveys:
            rule = next(
                (
                    r
                    for r in config.rules[survey.id]
                    if _matches(r, ticket, customer.tier, customer.segment)
                ),
                None,
            )
            if rule is None:
                continue
            due = at + timedelta(hours=rule.delay_hours)
            values = {
                "rule_id": rule.id,
                "customer_id": ticket.requester_id,
                "agent_id": ticket.assignee_id,
                "team_id": ticket.team_id,
                "channel": ticket.channel,
                "category": ticket.type,
                "throttle_days": rule.throttle_days,
                "solved_at": at,
                "due_at": due,
            }
            invitation = existing.get((survey.id, ticket.id))
            if invitation is not None:
                # sent once: never again for this ticket; skipped for a reopen: try again
                if invitation.status == "sent" or (
                    invitation.status == "skipped" and invitation.skip_reason != "reopened"
                ):
                    continue
                for key, value in values.items():
                    setattr(invitation, key, value)
                invitation.status, invitation.skip_reason = "scheduled", None
            else:
                new_rows.append({"survey_id": survey.id, "ticket_id": ticket.id, **values})
            made.append((invitation, survey, rule, ticket, at))
    await session.flush()
    new_ids = iter(await _insert_invitations(session, new_rows))
    now = clock.now()
    await record_many(
        session,
        [
            NewEvent(
                "survey.scheduled",
                "ticket",
                ticket.id,
                SURVEYOR,
                recorded_at(at) if recorded_at is not None else now,
                {
                    "invitation_id": next(new_ids) if invitation is None else invitation.id,
                    "survey_id": survey.id,
                    "rule_id": rule.id,
                    "kind": survey.kind,
                    "due_at": (at + timedelta(hours=rule.delay_hours)).isoformat(),
                },
            )
            for invitation, survey, rule, ticket, at in made
        ],
    )
    return len(made)


_INVITATION_COLUMNS = (  # a new invitation's columns (the rest: their defaults)
    "survey_id",
    "rule_id",
    "ticket_id",
    "customer_id",
    "agent_id",
    "team_id",
    "channel",
    "category",
    "throttle_days",
    "solved_at",
    "due_at",
    "created_at",
)
# one statement text whatever the number of rows (the driver parses it once; a multi-row
# VALUES is a new text for each number), the rows as one JSON document (``json_rows``), the
# ids drawn in their order
_INSERT_INVITATIONS = text("""
INSERT INTO survey_invitations (survey_id, rule_id, ticket_id, customer_id, agent_id, team_id,
                                channel, category, throttle_days, solved_at, due_at, created_at)
SELECT CAST(e->>0 AS bigint), CAST(e->>1 AS bigint), CAST(e->>2 AS bigint),
       CAST(e->>3 AS bigint), CAST(e->>4 AS bigint), CAST(e->>5 AS bigint), e->>6, e->>7,
       CAST(e->>8 AS int), CAST(e->>9 AS timestamptz), CAST(e->>10 AS timestamptz),
       CAST(e->>11 AS timestamptz)
FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS u(e, n)
ORDER BY n
RETURNING id
""")


async def _insert_invitations(session: AsyncSession, rows: list[dict[str, Any]]) -> list[int]:
    """New scheduled invitations, made now, in one statement; their ids in order."""
    if not rows:
        return []
    now = clock.now()
    document = json_rows([[row.get(name, now) for name in _INVITATION_COLUMNS] for row in rows])
    return sorted((await session.execute(_INSERT_INVITATIONS, {"rows": document})).scalars())


@dataclass(frozen=True)
class Mailer:
    """What sending needs from the settings: the key, the public address, the sender."""

    keyring: Keyring
    base_url: str
    sender: str


async def _record_sent(
    session: AsyncSession,
    invitation: SurveyInvitation,
    survey: Survey,
    *,
    ticket_id: int,
    via: str,
    **extra: Any,
) -> None:
    """``survey.sent`` on the invitation's ticket: by mail, or asked in the chat or portal."""
    await session.flush()
    await record(
        session,
        "survey.sent",
        subject_type="ticket",
        subject_id=ticket_id,
        actor=SURVEYOR,
        data={
            "invitation_id": invitation.id,
            "survey_id": survey.id,
            "kind": survey.kind,
            "customer_id": invitation.customer_id,
            **extra,
            "via": via,
        },
    )


def make_token(keyring: Keyring, invitation: SurveyInvitation, *, sent: datetime) -> str:
    return keyring.sign(
        TOKEN_PURPOSE,
        {"invitation": invitation.id, "customer": invitation.customer_id},
        expires_at=sent + timedelta(days=LINK_DAYS),
    )


def link(base_url: str, token: str, score: int) -> str:
    return f"{base_url.rstrip('/')}/surveys/r/{token}?score={score}"


def mail_body(survey: Survey, ticket: Ticket, base_url: str, token: str) -> str:
    """The question, then one link per score: one click answers."""
    low_label, high_label = DEFAULTS[survey.kind]["labels"]
    lines = [
        f"Your request #{ticket.id} “{ticket.subject}” was solved.",
        "",
        survey.question,
        "",
    ]
    if low_label:
        lines.append(
            f"Click one number ({survey.scale_min} = {low_label}, "
            f"{survey.scale_max} = {high_label}):"
        )
    else:
        lines.append(f"Click one number from {survey.scale_min} to {survey.scale_max}:")
    lines.append("")
    for score in range(survey.scale_max, survey.scale_min - 1, -1):
        lines.append(f"{score:>3}  {link(base_url, token, score)}")
    lines += ["", "One click is enough; you can change your answer with another click."]
    return "\n".join(lines)


_LOCK_CUSTOMERS = text(
    "SELECT pg_advisory_xact_lock(hashtextextended('survey-customer' || chr(10) || c, 0)) "
    "FROM unnest(CAST(:customers AS text[])) AS c"
)


async def _last_surveyed(
    session: AsyncSession, customer_ids: list[int], *, since: datetime
) -> dict[int, datetime]:
    """When each customer was last sent a survey after ``since``. One sender at a time per
    customer (a lock held to the transaction's end, taken in id order), so two workers
    cannot both find the throttle window free."""
    if not customer_ids:
        return {}
    ordered = sorted(set(customer_ids))
    await session.execute(_LOCK_CUSTOMERS, {"customers": [str(c) for c in ordered]})
    rows = await session.execute(
        select(SurveyInvitation.customer_id, func.max(SurveyInvitation.sent_at))
        .where(
            SurveyInvitation.customer_id == any_(literal(ordered, ARRAY(BigInteger))),
            SurveyInvitation.status == "sent",
            SurveyInvitation.sent_at > since,
        )
        .group_by(SurveyInvitation.customer_id)
    )
    return {int(customer): last for customer, last in rows.all() if last is not None}


async def send_due(
    session: AsyncSession, mailer: Mailer, *, now: datetime | None = None, limit: int = 200
) -> tuple[int, int]:
    """Queue the mail of each due invitation (or skip it, with the reason in the event
    log); returns (sent, skipped). Rows are locked (SKIP LOCKED): workers share the work."""
    sent, skipped = await send_due_invitations(session, mailer, now=now, limit=limit)
    return len(sent), skipped


async def send_due_invitations(
    session: AsyncSession,
    mailer: Mailer,
    *,
    now: datetime | None = None,
    limit: int = 200,
    runs: Sequence[datetime] | None = None,
) -> tuple[list[SurveyInvitation], int]:
    """``send_due``, returning the invitations sent (and how many were skipped). Each due
    invitation is decided in order (a customer's later invitation sees the earlier one's
    outcome), then the mail, the invitations and the events of all are written together,
    the events in the order one invitation after another would record them.

    ``runs`` (instead of ``now``; for replayed history): what the sender would have done
    had it run at each of these times in turn, in one call. Each invitation due by the
    last run is sent (or skipped) at the first run at or after its due time: its
    ``sent_at``, its link's expiry, its mail's time, its event's time and its throttle
    window are that run's. Nothing else changes between the runs, so it is the same as one
    call per run (``limit`` counts the invitations of all the runs)."""
    if runs is not None:
        if now is not None or not runs:
            raise ValueError("give either now or some runs")
        runs = sorted(runs)
    at = runs[-1] if runs is not None else now or clock.now()

    def run_of(invitation: SurveyInvitation) -> datetime:
        """When the invitation is sent (or skipped)."""
        if runs is None:
            return at
        return runs[bisect_left(runs, invitation.due_at)]

    def stamp(invitation: SurveyInvitation) -> datetime:
        """Its events' (and mail's) time: now, or its run's time."""
        return clock.now() if runs is None else run_of(invitation)

    due = list(
        (
            await session.scalars(
                select(SurveyInvitation)
                .where(SurveyInvitation.status == "scheduled", SurveyInvitation.due_at <= at)
                .order_by(SurveyInvitation.due_at, SurveyInvitation.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
    )
    if not due:
        return [], 0
    tickets_ = await held.rows_by_id(session, Ticket, [i.ticket_id for i in due])
    known = {s.id: s for s in (await _schedule(session)).surveys}  # the enabled ones
    missing = {i.survey_id for i in due} - set(known)
    if missing:
        known.update(
            {s.id: s for s in await session.scalars(select(Survey).where(Survey.id.in_(missing)))}
        )
    throttled = [i for i in due if i.throttle_days > 0 and i.ticket_id in tickets_]
    last_sent = await _last_surveyed(
        session,
        [tickets_[i.ticket_id].requester_id for i in throttled],
        since=min(
            (run_of(i) - timedelta(days=i.throttle_days) for i in throttled),
            default=at,
        ),
    )
    address = await outbox.addresses(session, [t.requester_id for t in tickets_.values()])
    # (invitation, skip reason and detail) or (invitation, survey, ticket, its mail's index)
    decided: list[tuple[SurveyInvitation, str, str] | tuple[SurveyInvitation, Survey, Ticket, int]]
    decided = []
    mails: list[outbox.Mail] = []
    for invitation in due:
        survey = known.get(invitation.survey_id)
        ticket = tickets_.get(invitation.ticket_id)
        if survey is None or ticket is None:
            continue
        reason, detail, sent_at = "", "", run_of(invitation)
        if not survey.enabled:
            reason = "survey disabled"
        elif ticket.merged_into_id is not None:
            reason, detail = "merged", f"merged into #{ticket.merged_into_id}"
        elif ticket.status not in ("solved", "closed"):
            reason, detail = "reopened", f"the ticket is {ticket.status}"
        else:
            invitation.customer_id = ticket.requester_id  # a requester moved by a merge
            last = last_sent.get(invitation.customer_id)
            window = sent_at - timedelta(days=invitation.throttle_days)
            if invitation.throttle_days > 0 and last is not None and last > window:
                reason = "throttled"
                detail = (
                    f"customer {invitation.customer_id} was surveyed on "
                    f"{last:%Y-%m-%d %H:%M} UTC, within {invitation.throttle_days} days"
                )
            elif address.get(ticket.requester_id) is None:
                reason = "no e-mail address"
        if reason:
            decided.append((invitation, reason, detail))
            continue
        token = make_token(mailer.keyring, invitation, sent=sent_at)
        decided.append((invitation, survey, ticket, len(mails)))
        mails.append(
            outbox.Mail(
                ticket=ticket,
                kind="survey",
                body=mail_body(survey, ticket, mailer.base_url, token),
                sender=mailer.sender,
                at=stamp(invitation),
                note={"invitation_id": invitation.id, "survey_id": survey.id},
                subject=f"How did we do? [#{ticket.id}] {ticket.subject}"[:400],
                to=address[ticket.requester_id],
            )
        )
        last_sent[invitation.customer_id] = sent_at
    rows, queued = await outbox.queue_rows(session, mails)
    recorded: list[NewEvent] = []
    sent: list[SurveyInvitation] = []
    skipped = 0
    for entry in decided:
        if len(entry) == 3:
            invitation, reason, detail = entry
            invitation.status, invitation.skip_reason = "skipped", reason
            recorded.append(_skipped(invitation, reason, detail, stamp(invitation)))
            skipped += 1
            continue
        invitation, survey, ticket, index = entry
        row, event = rows[index], queued[index]
        assert row is not None and event is not None  # the address was known
        invitation.status, invitation.sent_at = "sent", run_of(invitation)
        invitation.outbound_id = row.id
        sent.append(invitation)
        recorded += [
            event,
            NewEvent(
                "survey.sent",
                "ticket",
                ticket.id,
                SURVEYOR,
                stamp(invitation),
                {
                    "invitation_id": invitation.id,
                    "survey_id": survey.id,
                    "kind": survey.kind,
                    "customer_id": invitation.customer_id,
                    "outbound_id": row.id,
                    "via": "email",
                },
            ),
        ]
    await _write_outcomes(session, [entry[0] for entry in decided])
    await record_many(session, recorded)
    return sent, skipped


_OUTCOME = ("status", "skip_reason", "sent_at", "outbound_id", "customer_id")
# one statement (and one text) for any number of invitations, the rows as one JSON document
_WRITE_OUTCOMES = text("""
UPDATE survey_invitations AS i
SET status = e->>1, skip_reason = e->>2, sent_at = CAST(e->>3 AS timestamptz),
    outbound_id = CAST(e->>4 AS bigint), customer_id = CAST(e->>5 AS bigint)
FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS u(e)
WHERE i.id = CAST(e->>0 AS bigint)
""")


async def _write_outcomes(session: AsyncSession, invitations: list[SurveyInvitation]) -> None:
    """The sender's changes to the invitations (sent or skipped, and a requester moved by a
    merge) in one statement for all, rather than the unit of work's one per run of equal
    changes (a sent invitation next to a skipped one is two); the loaded invitations keep
    the values as written."""
    if invitations:
        rows = [[getattr(i, name) for name in ("id", *_OUTCOME)] for i in invitations]
        with session.no_autoflush:  # not the unit of work's way
            await session.execute(_WRITE_OUTCOMES, {"rows": json_rows(rows)})
        for invitation, row in zip(invitations, rows, strict=True):
            for name, value in zip(_OUTCOME, row[1:], strict=True):
                set_committed_value(invitation, name, value)
        written.changed(session, invitations)
    await session.flush()  # anything else pending, as the flush this replaces did


def _skipped(invitation: SurveyInvitation, reason: str, detail: str, at: datetime) -> NewEvent:
    return NewEvent(
        "survey.skipped",
        "ticket",
        invitation.ticket_id,
        SURVEYOR,
        at,
        {
            "invitation_id": invitation.id,
            "survey_id": invitation.survey_id,
            "customer_id": invitation.customer_id,
            "reason": reason,
            "detail": detail,
        },
    )


# -- answers --------------------------------------------------------------------------------


class Refused(Exception):
    """A survey link that cannot be used: ``status`` is the page's HTTP status."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason  # "invalid" | "expired" | "other customer"
        self.status = status


async def resolve_token(
    session: AsyncSession, keyring: Keyring, token: str, *, now: datetime | None = None
) -> tuple[SurveyInvitation, Survey]:
    """The invitation a link was made for, or ``Refused`` (altered, expired, another
    purpose's token, or the invitation's customer is no longer the link's)."""
    try:
        payload = keyring.unsign(TOKEN_PURPOSE, token, now=now or clock.now())
    except BadToken as exc:
        raise Refused(exc.reason, 410 if exc.reason == "expired" else 400) from exc
    invitation_id, customer_id = payload.get("invitation"), payload.get("customer")
    if not isinstance(invitation_id, int) or not isinstance(customer_id, int):
        raise Refused("invalid", 400)
    invitation = await session.get(SurveyInvitation, invitation_id)
    if invitation is None or invitation.status != "sent":
        raise Refused("invalid", 400)
    ticket = await session.get(Ticket, invitation.ticket_id)
    if (
        customer_id != invitation.customer_id
        or ticket is None
        or ticket.requester_id != invitation.customer_id
    ):
        raise Refused("other customer", 403)
    survey = await get_survey(session, invitation.survey_id)
    return invitation, survey


def check_score(survey: Survey, score: Any) -> int:
    """The score as a number on the survey's scale, or 422 naming ``score``."""
    return _int("score", score, survey.scale_min, survey.scale_max)


async def answer(
    session: AsyncSession,
    invitation: SurveyInvitation,
    survey: Survey,
    *,
    score: Any,
    comment: str | None = None,
    source: str = "email",
) -> SurveyResponse:
    """Record the customer's answer, or update it (one answer per invitation, even with
    two clicks at once). Records ``survey.answered`` when something changed: the same
    score clicked again is no news."""
    value, text = _checked(survey, score, comment, source)
    now = clock.now()
    response, inserted = await _upsert(session, invitation, survey, value, text, source, now)
    if inserted is None:  # the same answer again (a second click on the same score): no news
        return response
    event = _answered(invitation, survey, response, value, inserted, source, now)
    await record(
        session,
        event.kind,
        subject_type=event.subject_type,
        subject_id=event.subject_id,
        actor=event.actor,
        data=event.data,
    )
    return response


def _checked(
    survey: Survey, score: Any, comment: str | None, source: str
) -> tuple[int, str | None]:
    """The score on the survey's scale and the cleaned comment (None: not given), or 422."""
    value = check_score(survey, score)
    if source not in SOURCES:
        raise ValidationFailed("Unknown source", fields={"source": f"one of {SOURCES}"})
    return value, None if comment is None else _clean_comment(comment)


def _response_values(
    invitation: SurveyInvitation,
    survey: Survey,
    value: int,
    text: str | None,
    source: str,
    now: datetime,
) -> dict[str, Any]:
    return {
        "invitation_id": invitation.id,
        "survey_id": survey.id,
        "kind": survey.kind,
        "score": value,
        "comment": text or "",
        "source": source,
        "ticket_id": invitation.ticket_id,
        "customer_id": invitation.customer_id,
        "agent_id": invitation.agent_id,
        "team_id": invitation.team_id,
        "channel": invitation.channel,
        "category": invitation.category,
        "answered_at": now,
        "updated_at": now,
    }


async def _upsert(
    session: AsyncSession,
    invitation: SurveyInvitation,
    survey: Survey,
    value: int,
    text: str | None,
    source: str,
    now: datetime,
) -> tuple[SurveyResponse, bool | None]:
    """The invitation's answer written: (the response, whether it is new), or (the
    response as it was, None) when nothing changed."""
    update = {"score": value, "source": source, "updated_at": now}
    if text is not None:
        update["comment"] = text
    changed = SurveyResponse.score != value
    if text is not None:
        changed = changed | (SurveyResponse.comment != text)
    row: Any = (
        await session.execute(
            insert(SurveyResponse)
            .values(**_response_values(invitation, survey, value, text, source, now))
            .on_conflict_do_update(index_elements=["invitation_id"], set_=update, where=changed)
            .returning(SurveyResponse.id, literal_column("(xmax = 0)").label("inserted"))
        )
    ).one_or_none()
    if row is None:
        same = await response_of(session, invitation.id)
        assert same is not None
        return same, None
    response = await session.get(SurveyResponse, row.id, populate_existing=True)
    assert response is not None
    return response, bool(row.inserted)


def _answered(
    invitation: SurveyInvitation,
    survey: Survey,
    response: SurveyResponse,
    value: int,
    inserted: bool,
    source: str,
    now: datetime,
) -> NewEvent:
    """``survey.answered`` on the ticket, by the customer."""
    return NewEvent(
        "survey.answered",
        "ticket",
        invitation.ticket_id,
        Actor("customer", str(invitation.customer_id)),
        now,
        {
            "response_id": response.id,
            "invitation_id": invitation.id,
            "survey_id": survey.id,
            "kind": survey.kind,
            "score": value,
            "customer_id": invitation.customer_id,
            "agent_id": invitation.agent_id,
            "team_id": invitation.team_id,
            "detractor": scores.is_detractor(survey.kind, value),
            "updated": not inserted,
            "comment": bool(response.comment),
            "source": source,
        },
    )


@dataclass(frozen=True)
class NewAnswer:
    """A click on a survey link at ``at``: what the answer page does with ``resolve_token``
    and ``answer`` (``answer_many``)."""

    token: str
    score: Any
    at: datetime
    comment: str | None = None
    source: str = "email"


async def answer_many(
    session: AsyncSession, keyring: Keyring, items: Sequence[NewAnswer]
) -> list[SurveyResponse]:
    """``resolve_token`` and ``answer`` for each item, each at its own moment (its link's
    expiry, its answer's and its event's time), as one after another would make them, for
    items about different invitations: every link and score is checked first (a link
    that ``resolve_token`` refuses, an invitation twice, a score off its scale or a bad
    comment refuses the whole batch, naming the item, and nothing is written), then the
    new answers are written in one statement and the ``survey.answered`` events recorded
    together, in the items' order (subscribers with a batch twin hear them at once). An
    answer given before is updated as ``answer`` updates it; the same answer again is no
    news. Returns each item's response."""
    if not items:
        return []
    claims: list[tuple[int, int]] = []  # (invitation, customer) each link was made for
    for index, item in enumerate(items):
        try:
            payload = keyring.unsign(TOKEN_PURPOSE, item.token, now=item.at)
        except BadToken as exc:
            raise _bad_link(exc.reason).at_item(index, "survey link") from exc
        invitation_id, customer_id = payload.get("invitation"), payload.get("customer")
        if not isinstance(invitation_id, int) or not isinstance(customer_id, int):
            raise _bad_link("invalid").at_item(index, "survey link")
        claims.append((invitation_id, customer_id))
    found = {
        invitation.id: (invitation, survey)
        for invitation, survey in (
            await session.execute(
                select(SurveyInvitation, Survey)
                .join(Survey, Survey.id == SurveyInvitation.survey_id)
                .where(
                    SurveyInvitation.id
                    == any_(literal(sorted({i for i, _ in claims}), ARRAY(BigInteger)))
                )
            )
        ).all()
    }
    tickets_ = await held.rows_by_id(
        session, Ticket, [found[i][0].ticket_id for i, _ in claims if i in found]
    )
    checked: list[tuple[SurveyInvitation, Survey, int, str | None, NewAnswer]] = []
    seen: set[int] = set()
    for index, (item, (invitation_id, customer_id)) in enumerate(zip(items, claims, strict=True)):
        what = f"invitation {invitation_id}"
        invitation, survey = found.get(invitation_id, (None, None))
        if invitation is None or survey is None or invitation.status != "sent":
            raise _bad_link("invalid").at_item(index, what)
        ticket = tickets_.get(invitation.ticket_id)
        if (
            customer_id != invitation.customer_id
            or ticket is None
            or ticket.requester_id != invitation.customer_id
        ):
            raise _bad_link("other customer").at_item(index, what)
        if invitation_id in seen:
            raise ValidationFailed(
                "an invitation may be answered once per batch",
                fields={"items": "one item per invitation"},
            ).at_item(index, what)
        seen.add(invitation_id)
        try:
            value, text = _checked(survey, item.score, item.comment, item.source)
        except ServiceError as exc:
            raise exc.at_item(index, what) from exc
        checked.append((invitation, survey, value, text, item))
    rows = [
        _response_values(invitation, survey, value, text, item.source, item.at)
        for invitation, survey, value, text, item in checked
    ]
    made = {
        response.invitation_id: response
        for response in await session.scalars(
            select(SurveyResponse).from_statement(
                _INSERT_RESPONSES.columns(*SurveyResponse.__table__.columns)
            ),
            {"rows": json_rows([[row[name] for name in _RESPONSE_COLUMNS] for row in rows])},
        )
    }
    responses: list[SurveyResponse] = []
    recorded: list[NewEvent] = []
    for invitation, survey, value, text, item in checked:
        response = made.get(invitation.id)
        inserted: bool | None = True
        if response is None:  # answered before: updated as ``answer`` updates it
            response, inserted = await _upsert(
                session, invitation, survey, value, text, item.source, item.at
            )
        responses.append(response)
        if inserted is not None:
            recorded.append(
                _answered(invitation, survey, response, value, inserted, item.source, item.at)
            )
    await record_many(session, recorded)
    return responses


_RESPONSE_COLUMNS = (  # a new answer's columns (``_response_values``), as the rows give them
    "invitation_id",
    "survey_id",
    "kind",
    "score",
    "comment",
    "source",
    "ticket_id",
    "customer_id",
    "agent_id",
    "team_id",
    "channel",
    "category",
    "answered_at",
    "updated_at",
)
# one statement text for any number of answers (the driver parses it once; a multi-row
# VALUES is a new text for each number), the rows as one JSON document (``json_rows``), the
# ids drawn in their order; an invitation answered before is left to ``_upsert``
_INSERT_RESPONSES = text("""
INSERT INTO survey_responses (invitation_id, survey_id, kind, score, comment, source, ticket_id,
                              customer_id, agent_id, team_id, channel, category, answered_at,
                              updated_at)
SELECT CAST(e->>0 AS bigint), CAST(e->>1 AS bigint), e->>2, CAST(e->>3 AS int), e->>4, e->>5,
       CAST(e->>6 AS bigint), CAST(e->>7 AS bigint), CAST(e->>8 AS int), CAST(e->>9 AS int),
       e->>10, e->>11, CAST(e->>12 AS timestamptz), CAST(e->>13 AS timestamptz)
FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS u(e, n)
ORDER BY n
ON CONFLICT (invitation_id) DO NOTHING
RETURNING id, invitation_id, survey_id, kind, score, comment, source, ticket_id, customer_id,
          agent_id, team_id, channel, category, answered_at, updated_at
""")


def _bad_link(reason: str) -> ValidationFailed:
    """A link ``resolve_token`` refuses (``reason`` as its ``Refused`` says)."""
    return ValidationFailed(f"The survey link is refused ({reason})", fields={"token": reason})


async def rate_in_place(
    session: AsyncSession,
    ticket: Ticket,
    *,
    kind: str,
    score: Any,
    comment: str | None = None,
    source: str = "chat",
) -> SurveyResponse:
    """A rating given where the customer already is (the end of a chat, a portal page),
    without a mail: answers the ticket's invitation of the first enabled survey of ``kind``
    (made, as sent now, when there is none; it counts for the throttle like a mail) and
    records ``survey.sent`` when the invitation is made, turned to sent, or moved to the
    current requester. 404 without an enabled survey of that kind; 422 for a score off its
    scale or a comment too long, before anything is written."""
    survey = await session.scalar(
        select(Survey).where(Survey.kind == kind, Survey.enabled).order_by(Survey.id).limit(1)
    )
    if survey is None:
        raise NotFound(f"No enabled {kind} survey", fields={"kind": "no enabled survey"})
    check_score(survey, score)
    if source not in SOURCES:
        raise ValidationFailed("Unknown source", fields={"source": f"one of {SOURCES}"})
    if comment is not None:
        _clean_comment(comment)
    now = clock.now()
    # Two first ratings at once: the unique (survey, ticket) makes the second insert wait
    # for the first and then do nothing; the select below locks the one row both share.
    made = await session.scalar(
        insert(SurveyInvitation)
        .values(
            survey_id=survey.id,
            ticket_id=ticket.id,
            customer_id=ticket.requester_id,
            agent_id=ticket.assignee_id,
            team_id=ticket.team_id,
            channel=ticket.channel,
            category=ticket.type,
            status="sent",
            solved_at=ticket.solved_at or now,
            due_at=now,
            sent_at=now,
        )
        .on_conflict_do_nothing(constraint="uq_survey_invitations_survey_ticket")
        .returning(SurveyInvitation.id)
    )
    invitation = await session.scalar(
        select(SurveyInvitation)
        .where(SurveyInvitation.survey_id == survey.id, SurveyInvitation.ticket_id == ticket.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert invitation is not None
    news: dict[str, Any] = {}
    if invitation.customer_id != ticket.requester_id:
        # The requester changed (or customers were merged) since the invitation was made.
        # One invitation and one answer per ticket and survey: the rating now is the
        # current requester's, so the earlier requester's answer is dropped here; it stays
        # in the event log (their ``survey.answered``) as their history.
        news["previous_customer_id"] = invitation.customer_id
        earlier = await response_of(session, invitation.id)
        if earlier is not None:
            news["dropped_response_id"] = earlier.id
            await session.delete(earlier)
        invitation.customer_id = ticket.requester_id
    if made is None and invitation.status != "sent":  # asked here rather than by mail
        invitation.status, invitation.sent_at, invitation.skip_reason = "sent", now, None
        news["sent"] = True
    if made is not None or news:
        extra = {k: v for k, v in news.items() if k != "sent"}
        await _record_sent(session, invitation, survey, ticket_id=ticket.id, via=source, **extra)
    return await answer(session, invitation, survey, score=score, comment=comment, source=source)


def _clean_comment(comment: str) -> str:
    text = comment.strip()
    if len(text) > 4000:
        raise ValidationFailed("The comment is too long", fields={"comment": "at most 4000"})
    return text


async def response_of(session: AsyncSession, invitation_id: int) -> SurveyResponse | None:
    found: SurveyResponse | None = await session.scalar(
        select(SurveyResponse).where(SurveyResponse.invitation_id == invitation_id)
    )
    return found


# -- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResponseFilter:
    kind: str | None = None
    customer_id: int | None = None
    ticket_id: int | None = None
    team_id: int | None = None
    agent_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    detractors_only: bool = False


def _filtered(flt: ResponseFilter) -> Select[Any]:
    stmt = select(SurveyResponse)
    if flt.kind is not None:
        if flt.kind not in KINDS:
            raise ValidationFailed("Unknown kind", fields={"kind": f"one of {', '.join(KINDS)}"})
        stmt = stmt.where(SurveyResponse.kind == flt.kind)
    for column, value in (
        (SurveyResponse.customer_id, flt.customer_id),
        (SurveyResponse.ticket_id, flt.ticket_id),
        (SurveyResponse.team_id, flt.team_id),
        (SurveyResponse.agent_id, flt.agent_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if flt.since is not None:
        stmt = stmt.where(SurveyResponse.answered_at >= flt.since)
    if flt.until is not None:
        stmt = stmt.where(SurveyResponse.answered_at < flt.until)
    if flt.detractors_only:
        stmt = stmt.where(
            (and_(SurveyResponse.kind == "nps", SurveyResponse.score <= 6))
            | (and_(SurveyResponse.kind == "csat", SurveyResponse.score <= 2))
        )
    return stmt


async def count_responses(session: AsyncSession, *, customer_id: int) -> int:
    """How many survey answers the customer gave, all time."""
    stmt = select(func.count()).where(SurveyResponse.customer_id == customer_id)
    return int(await session.scalar(stmt) or 0)


async def list_responses(
    session: AsyncSession, flt: ResponseFilter, *, limit: int = 50, before_id: int | None = None
) -> list[SurveyResponse]:
    stmt = _filtered(flt)
    if before_id is not None:
        stmt = stmt.where(SurveyResponse.id < before_id)
    rows = await session.scalars(stmt.order_by(SurveyResponse.id.desc()).limit(limit))
    found: list[SurveyResponse] = list(rows.all())
    return found


def _month(at: datetime | None) -> str:
    return f"{at:%Y-%m}" if at is not None else "none"


def _key(group: str, item: Any, at: datetime | None) -> Any:
    """The group of an answer or an invitation (rows with the same column names)."""
    if group == "team":
        return item.team_id
    if group == "agent":
        return item.agent_id
    if group == "customer":
        return item.customer_id
    if group == "channel":
        return item.channel
    if group == "category":
        return item.category
    if group == "month":
        return _month(at)
    if group == "week":
        return f"{at:%G-W%V}" if at is not None else "none"
    return "all"


def summarise(kind: str, values: list[int]) -> dict[str, Any]:
    """The score of one group, as plain data."""
    if kind == "nps":
        n = scores.nps(values)
        return {
            "n": n.n,
            "score": n.score,
            "se": n.se,
            "ci_low": n.ci_low,
            "ci_high": n.ci_high,
            "promoters": n.promoters,
            "passives": n.passives,
            "detractors": n.detractors,
        }
    if kind == "csat":
        c = scores.csat(values)
        return {"n": c.n, "score": c.score, "satisfied": c.satisfied}
    if kind == "ces":
        e = scores.ces(values)
        return {"n": e.n, "score": e.mean, "mean": e.mean, "pct_easy": e.pct_easy}
    mean = sum(values) / len(values) if values else None
    return {"n": len(values), "score": mean, "mean": mean}


async def _labels(session: AsyncSession, group: str, keys: list[Any]) -> dict[Any, str]:
    ids = [k for k in keys if isinstance(k, int)]
    if group == "team" and ids:
        return {team.id: team.name for team, _ in await auth.list_teams(session) if team.id in ids}
    if group == "agent" and ids:
        return {user.id: user.name for user in await auth.users_by_id(session, ids)}
    return {}


async def score_table(
    session: AsyncSession,
    *,
    kind: str,
    group: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    customer_id: int | None = None,
) -> list[dict[str, Any]]:
    """The score of ``kind`` per group (team, agent, channel, category, month, ISO week, customer;
    None: one group "all"), with the response rate of the invitations sent."""
    if kind not in KINDS:
        raise ValidationFailed("Unknown kind", fields={"kind": f"one of {', '.join(KINDS)}"})
    if group is not None and group not in GROUPS:
        raise ValidationFailed("Unknown group", fields={"group": f"one of {', '.join(GROUPS)}"})
    grouping = group or "all"
    flt = ResponseFilter(kind=kind, since=since, until=until, customer_id=customer_id)
    answers = (
        await session.execute(
            _filtered(flt).with_only_columns(
                SurveyResponse.score,
                SurveyResponse.team_id,
                SurveyResponse.agent_id,
                SurveyResponse.customer_id,
                SurveyResponse.channel,
                SurveyResponse.category,
                SurveyResponse.answered_at,
            )
        )
    ).all()
    # surveys sent in the period, and whether each was answered (whenever that was)
    sent_stmt = (
        select(
            SurveyInvitation.team_id,
            SurveyInvitation.agent_id,
            SurveyInvitation.customer_id,
            SurveyInvitation.channel,
            SurveyInvitation.category,
            SurveyInvitation.sent_at,
            SurveyResponse.id.label("response_id"),
        )
        .join(Survey, Survey.id == SurveyInvitation.survey_id)
        .outerjoin(SurveyResponse, SurveyResponse.invitation_id == SurveyInvitation.id)
        .where(Survey.kind == kind, SurveyInvitation.status == "sent")
    )
    if since is not None:
        sent_stmt = sent_stmt.where(SurveyInvitation.sent_at >= since)
    if until is not None:
        sent_stmt = sent_stmt.where(SurveyInvitation.sent_at < until)
    if customer_id is not None:
        sent_stmt = sent_stmt.where(SurveyInvitation.customer_id == customer_id)
    invitations = (await session.execute(sent_stmt)).all()
    by_group = scores.grouped(
        answers, lambda r: _key(grouping, r, r.answered_at), lambda r: r.score, list
    )
    sent_by_group = scores.grouped(
        invitations, lambda i: _key(grouping, i, i.sent_at), lambda i: 1, len
    )
    answered_by_group = scores.grouped(
        [i for i in invitations if i.response_id is not None],
        lambda i: _key(grouping, i, i.sent_at),
        lambda i: 1,
        len,
    )
    keys = list(dict.fromkeys([*by_group, *sent_by_group]))
    labels = await _labels(session, grouping, keys)
    table = []
    for key in sorted(keys, key=lambda k: (k is None, str(k))):
        sent = sent_by_group.get(key, 0)
        answered = answered_by_group.get(key, 0)
        table.append(
            {
                "group": grouping,
                "key": key,
                "label": labels.get(key, "none" if key is None else str(key)),
                "kind": kind,
                **summarise(kind, by_group.get(key, [])),
                "sent": sent,
                "response_rate": scores.response_rate(answered, sent),
            }
        )
    return table


async def customer_surveys(session: AsyncSession, customer_id: int) -> dict[str, Any]:
    """A customer's answers, newest first, and their NPS, CSAT and CES."""
    await customers.get_customer(session, customer_id)
    answers = await list_responses(session, ResponseFilter(customer_id=customer_id), limit=200)
    by_kind: dict[str, list[int]] = {}
    for row in answers:
        by_kind.setdefault(row.kind, []).append(row.score)
    return {
        "customer_id": customer_id,
        "responses": answers,
        "scores": {kind: summarise(kind, by_kind.get(kind, [])) for kind in ("nps", "csat", "ces")},
    }


async def ticket_of(session: AsyncSession, ticket_id: int) -> Ticket:
    return await tickets.get_ticket(session, ticket_id)
