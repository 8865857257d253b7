"""Admin pages for service standards: business calendars and SLA policies.

Each handler parses the form, calls the sla service, and renders; a refusal is shown beside
the form with what was typed, and the savepoint around the service call leaves nothing behind.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from servicecycle.auth import service as auth
from servicecycle.auth.deps import Db, PageAdmin
from servicecycle.auth.flash import flash
from servicecycle.kit import clock
from servicecycle.kit.errors import ServiceError, ValidationFailed
from servicecycle.sla import service
from servicecycle.sla.calendar import CalendarError
from servicecycle.sla.models import METRICS, Calendar, SlaPolicy
from servicecycle.tickets.models import CHANNELS, PRIORITIES
from servicecycle.web.forms import form_text, form_version, problem
from servicecycle.web.templating import render

router = APIRouter(include_in_schema=False)

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DAY_ABBR = tuple(day[:3] for day in WEEKDAYS)
WHOLE_DAY = ["00:00", "24:00"]
PREVIEW_MINUTES = 240
NAME_MAX = 120
METRIC_WORDS = {
    "first_reply": "first reply",
    "next_reply": "next reply",
    "periodic_update": "periodic update",
    "resolution": "resolution",
}
CHANNEL_WORDS = {"email": "e-mail", "api": "API"}
UNITS = {"min": 1, "h": 60, "d": 1440}
PAUSABLE = ("pending", "on-hold")
DASH = "\u2013"  # an en dash, between two times or two weekdays
_SHIFT = re.compile(r"^(\d{1,2}:\d{2})\s*(?:\u2013|\u2014|-|to)\s*(\d{1,2}:\d{2})$")
_LIST = re.compile(r"[,;\s]+")
_NUMBER = re.compile(r"^\d{1,6}(?:[.,]\d{1,3})?$")


@cache
def time_zones() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def _many(form: FormData, name: str) -> list[str]:
    return [v for v in form.getlist(name) if isinstance(v, str) and v]


def _check_name(name: str) -> str:
    if len(name) > NAME_MAX:
        raise ValidationFailed(
            "Name is too long", fields={"name": f"at most {NAME_MAX} characters"}
        )
    return name


def words_list(values: list[str], last: str = "or") -> str:
    """["a", "b", "c"] -> "a, b or c"."""
    if len(values) <= 1:
        return "".join(values)
    return f"{', '.join(values[:-1])} {last} {values[-1]}"


def duration(minutes: int) -> str:
    """60 -> "1 h", 2880 -> "2 d", 90 -> "1 h 30 min" (a day is 24 hours)."""
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [
        f"{days} d" if days else "",
        f"{hours} h" if hours else "",
        f"{mins} min" if mins else "",
    ]
    return " ".join(p for p in parts if p) or "0 min"


# -- calendars ------------------------------------------------------------------------------


def parse_shifts(text: str, day: int) -> list[list[str]]:
    """ "09:00-12:30, 13:30-17:00" (hyphen or en dash) -> [["09:00", "12:30"], ["13:30",
    "17:00"]]; "" or "closed" is no shift. The service checks the times themselves."""
    if text.strip().lower() in ("", "closed", "-", DASH):
        return []
    shifts = []
    for part in re.split(r"[,;\n]+", text):
        part = part.strip()
        if not part:
            continue
        found = _SHIFT.match(part)
        if found is None:
            raise ValidationFailed(
                f"Invalid hours on {WEEKDAYS[day]}",
                fields={f"week.{day}": f"“{part}” is not HH:MM{DASH}HH:MM"},
            )
        shifts.append([found[1], found[2]])
    return shifts


def shifts_text(spans: list[list[str]]) -> str:
    return ", ".join(f"{start}{DASH}{end}" for start, end in spans)


def hours_in_words(week: dict[str, list[list[str]]]) -> list[str]:
    """Weekdays with the same hours grouped: ["Mon-Fri 09:00-17:00", "Sat 10:00-14:00"]."""
    texts = [shifts_text(week.get(str(day), [])) for day in range(7)]
    if all(text == f"00:00{DASH}24:00" for text in texts):
        return ["24/7"]
    lines: list[str] = []
    first = 0
    for day in range(1, 8):
        if day < 7 and texts[day] == texts[first]:
            continue
        if texts[first]:
            label = (
                DAY_ABBR[first]
                if day - 1 == first
                else f"{DAY_ABBR[first]}{DASH}{DAY_ABBR[day - 1]}"
            )
            lines.append(f"{label} {texts[first]}")
        first = day
    return lines or ["no working hours"]


@dataclass
class CalendarDraft:
    """The calendar form as typed, kept to show again beside a refusal."""

    name: str = ""
    zone: str = "UTC"
    days: list[str] = field(default_factory=lambda: [f"09:00{DASH}17:00"] * 5 + ["", ""])
    always_open: bool = False
    holiday_country: str = ""
    holiday_region: str = ""
    closed_days: str = ""
    version: str = ""

    @classmethod
    def from_form(cls, form: FormData) -> CalendarDraft:
        return cls(
            version=form_text(form, "version"),
            name=form_text(form, "name"),
            zone=form_text(form, "zone"),
            days=[form_text(form, f"day{day}") for day in range(7)],
            always_open=form_text(form, "always_open") == "on",
            holiday_country=form_text(form, "holiday_country").upper(),
            holiday_region=form_text(form, "holiday_region"),
            closed_days=form_text(form, "closed_days"),
        )

    @classmethod
    def of(cls, row: Calendar) -> CalendarDraft:
        days = [shifts_text(row.week.get(str(day), [])) for day in range(7)]
        return cls(
            name=row.name,
            zone=row.zone,
            days=days,
            always_open=all(text == f"00:00{DASH}24:00" for text in days),
            holiday_country=row.holiday_country or "",
            holiday_region=row.holiday_region or "",
            closed_days="\n".join(row.closed_days),
            version=str(row.version),
        )

    def settings(self) -> dict[str, Any]:
        """The service's arguments (everything but the name)."""
        if self.always_open:
            week = {str(day): [WHOLE_DAY] for day in range(7)}
        else:
            week = {}
            for day, text in enumerate(self.days):
                if shifts := parse_shifts(text, day):
                    week[str(day)] = shifts
        for name, value, limit in (
            ("holiday_country", self.holiday_country, 8),
            ("holiday_region", self.holiday_region, 16),
        ):
            if len(value) > limit:
                raise ValidationFailed(
                    "Unknown holidays", fields={name: "a code such as GB or ENG"}
                )
        return {
            "zone": self.zone,
            "week": week,
            "holiday_country": self.holiday_country or None,
            "holiday_region": self.holiday_region or None,
            "closed_days": [d for d in _LIST.split(self.closed_days) if d],
        }


@dataclass(frozen=True)
class Preview:
    """When a ticket arriving now with a 4-hour target would be due, on the typed calendar."""

    now: datetime | None = None
    due: datetime | None = None
    open_now: bool = False
    error: str | None = None
    fields: dict[str, str] = field(default_factory=dict)


def preview(draft: CalendarDraft) -> Preview:
    try:
        cal = service.build_calendar(**draft.settings())
        now = clock.now()
        due = cal.add_minutes(now, PREVIEW_MINUTES)
        zone = ZoneInfo(draft.zone)
        return Preview(
            now=now.astimezone(zone), due=due.astimezone(zone), open_now=cal.is_open(now)
        )
    except ServiceError as exc:
        return Preview(error=exc.message, fields=dict(exc.fields))
    except CalendarError as exc:  # e.g. holidays that leave no working day within reach
        return Preview(error=f"Calendar refused: {exc}")


async def _calendar_rows(db: Db) -> list[dict[str, Any]]:
    calendars = await service.list_calendars(db)
    policies = await service.list_policies(db)
    now = clock.now()
    rows = []
    for row in calendars:
        try:
            open_now: bool | None = service.business_calendar(row).is_open(now)
        except (ServiceError, CalendarError):
            open_now = None  # stored before a rule changed; shown as unknown, not a crash
        rows.append(
            {
                "calendar": row,
                "hours": hours_in_words(row.week),
                "open_now": open_now,
                "used_by": [p.name for p in policies if p.calendar_id == row.id],
            }
        )
    return rows


async def _calendars_page(
    request: Request,
    db: Db,
    draft: CalendarDraft,
    *,
    editing: Calendar | None = None,
    shown: Preview | None = None,
    refusal: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "sla/calendars.html",
        {
            "section": "calendars",
            "editing": editing,
            "rows": await _calendar_rows(db),
            "draft": draft,
            "weekdays": WEEKDAYS,
            "zones": time_zones(),
            "preview": shown or preview(draft),
            "preview_hours": PREVIEW_MINUTES // 60,
            "error": None,
            "fields": {},
            **(refusal or {}),
        },
        status_code=status_code,
    )


@router.get("/admin/calendars")
async def calendars_page(request: Request, principal: PageAdmin, db: Db) -> Response:
    return await _calendars_page(request, db, CalendarDraft())


@router.post("/admin/calendars")
async def create_calendar(request: Request, principal: PageAdmin, db: Db) -> Response:
    draft = CalendarDraft.from_form(await request.form())
    try:
        async with db.begin_nested():
            row = await service.create_calendar(
                db, name=_check_name(draft.name), actor=principal.actor, **draft.settings()
            )
    except ServiceError as exc:
        return await _calendars_page(
            request, db, draft, refusal=problem(exc), status_code=exc.status_code
        )
    flash(principal, f"Calendar “{row.name}” saved.")
    return RedirectResponse("/admin/calendars", status_code=303)


@router.get("/admin/calendars/{calendar_id:int}")
async def calendar_page(
    request: Request, calendar_id: int, principal: PageAdmin, db: Db
) -> Response:
    row = await service.get_calendar(db, calendar_id)
    return await _calendars_page(request, db, CalendarDraft.of(row), editing=row)


@router.post("/admin/calendars/{calendar_id:int}")
async def update_calendar(
    request: Request, calendar_id: int, principal: PageAdmin, db: Db
) -> Response:
    row = await service.get_calendar(db, calendar_id)
    draft = CalendarDraft.from_form(await request.form())
    try:
        async with db.begin_nested():
            await service.update_calendar(
                db,
                row,
                expected_version=form_version(draft.version),
                changes={"name": _check_name(draft.name), **draft.settings()},
                actor=principal.actor,
            )
    except ServiceError as exc:
        row = await service.get_calendar(db, calendar_id)  # as stored, after the rollback
        return await _calendars_page(
            request, db, draft, editing=row, refusal=problem(exc), status_code=exc.status_code
        )
    flash(principal, f"Calendar “{row.name}” saved.")
    return RedirectResponse("/admin/calendars", status_code=303)


@router.post("/admin/calendars/{calendar_id:int}/delete")
async def delete_calendar(
    request: Request, calendar_id: int, principal: PageAdmin, db: Db
) -> Response:
    row = await service.get_calendar(db, calendar_id)
    name = row.name
    form = await request.form()
    try:
        async with db.begin_nested():
            await service.delete_calendar(
                db,
                row,
                expected_version=form_version(form_text(form, "version")),
                actor=principal.actor,
            )
    except ServiceError as exc:
        row = await service.get_calendar(db, calendar_id)
        return await _calendars_page(
            request,
            db,
            CalendarDraft.of(row),
            editing=row,
            refusal=problem(exc),
            status_code=exc.status_code,
        )
    flash(principal, f"Calendar “{name}” deleted.")
    return RedirectResponse("/admin/calendars", status_code=303)


@router.post("/admin/calendars/preview")
async def preview_calendar(request: Request, principal: PageAdmin, db: Db) -> Response:
    """The preview for the typed calendar: a fragment for htmx, else the whole page."""
    draft = CalendarDraft.from_form(await request.form())
    shown = preview(draft)
    if request.headers.get("hx-request") == "true":
        return render(
            request,
            "sla/_preview.html",
            {"preview": shown, "draft": draft, "preview_hours": PREVIEW_MINUTES // 60},
            in_transaction=False,
        )
    return await _calendars_page(request, db, draft, shown=shown)


# -- policies -------------------------------------------------------------------------------


def _amount(minutes: int) -> tuple[str, str]:
    for unit in ("d", "h"):
        if minutes % UNITS[unit] == 0:
            return str(minutes // UNITS[unit]), unit
    return str(minutes), "min"


@dataclass
class PolicyDraft:
    """The policy form as typed."""

    name: str = ""
    priority: list[str] = field(default_factory=list)
    channel: list[str] = field(default_factory=list)
    tier: str = ""
    team: list[str] = field(default_factory=list)
    tags: str = ""
    # metric -> {"amount": "4", "unit": "h", "clock": "business"}
    targets: dict[str, dict[str, str]] = field(
        default_factory=lambda: {
            m: {"amount": "", "unit": "h", "clock": "business"} for m in METRICS
        }
    )
    calendar_id: str = ""
    pause: list[str] = field(default_factory=lambda: list(PAUSABLE))
    warn: str = "30"
    version: str = ""

    @classmethod
    def from_form(cls, form: FormData) -> PolicyDraft:
        return cls(
            name=form_text(form, "name"),
            priority=_many(form, "priority"),
            channel=_many(form, "channel"),
            tier=form_text(form, "tier"),
            team=_many(form, "team"),
            tags=form_text(form, "tags"),
            targets={
                m: {
                    "amount": form_text(form, f"{m}_amount"),
                    "unit": form_text(form, f"{m}_unit") or "h",
                    "clock": form_text(form, f"{m}_clock") or "business",
                }
                for m in METRICS
            },
            calendar_id=form_text(form, "calendar_id"),
            pause=_many(form, "pause"),
            warn=form_text(form, "warn_minutes"),
            version=form_text(form, "version"),
        )

    @classmethod
    def of(cls, policy: SlaPolicy) -> PolicyDraft:
        c = policy.conditions
        draft = cls(
            name=policy.name,
            priority=list(c.get("priority", [])),
            channel=list(c.get("channel", [])),
            tier=", ".join(c.get("tier", [])),
            team=[str(t) for t in c.get("team_id", [])],
            tags=", ".join(c.get("tags", [])),
            calendar_id=str(policy.calendar_id or ""),
            pause=list(policy.pause_statuses),
            warn=str(policy.warn_minutes),
            version=str(policy.version),
        )
        for metric, target in policy.targets.items():
            amount, unit = _amount(target["minutes"])
            draft.targets[metric] = {
                "amount": amount,
                "unit": unit,
                "clock": "business" if target["business"] else "calendar",
            }
        return draft

    def fields(self) -> dict[str, Any]:
        """The service's arguments; a value that is not even a number is refused here."""
        conditions: dict[str, list[Any]] = {}
        for key, values in (
            ("priority", self.priority),
            ("channel", self.channel),
            ("tier", [t.strip() for t in self.tier.split(",") if t.strip()]),
            # ticket tags are stored in lower case, so a policy's tags are too
            ("tags", [t.lower() for t in _LIST.split(self.tags) if t]),
        ):
            if values:
                conditions[key] = values
        if self.team:
            if not all(t.isdigit() for t in self.team):
                raise ValidationFailed("Invalid team", fields={"conditions.team_id": "a team"})
            conditions["team_id"] = [int(t) for t in self.team]
        targets: dict[str, dict[str, Any]] = {}
        for metric, typed in self.targets.items():
            if not typed["amount"]:
                continue
            path = f"targets.{metric}.minutes"
            if not _NUMBER.match(typed["amount"]) or typed["unit"] not in UNITS:
                raise ValidationFailed(
                    "Invalid target", fields={path: "a number of minutes, hours or days"}
                )
            minutes = float(typed["amount"].replace(",", ".")) * UNITS[typed["unit"]]
            if minutes != round(minutes):
                raise ValidationFailed("Invalid target", fields={path: "whole minutes"})
            targets[metric] = {"minutes": int(minutes), "business": typed["clock"] != "calendar"}
        if not self.calendar_id.isdigit() and self.calendar_id:
            raise ValidationFailed("No such calendar", fields={"calendar_id": "unknown calendar"})
        if not self.warn.isdigit() or int(self.warn) > 10_080:
            raise ValidationFailed(
                "Invalid warning time", fields={"warn_minutes": "0 to 10080 minutes"}
            )
        return {
            "name": _check_name(self.name),
            "conditions": conditions,
            "targets": targets,
            "calendar_id": int(self.calendar_id) if self.calendar_id else None,
            "pause_statuses": self.pause,
            "warn_minutes": int(self.warn),
        }


def conditions_in_words(conditions: dict[str, list[Any]], team_names: dict[int, str]) -> str:
    parts = []
    if tiers := conditions.get("tier"):
        parts.append(f"{words_list([t.upper() if len(t) <= 3 else t for t in tiers])} tier")
    if channels := conditions.get("channel"):
        parts.append(words_list([CHANNEL_WORDS.get(c, c) for c in channels]))
    if priorities := conditions.get("priority"):
        parts.append(f"{words_list(priorities)} priority")
    if teams := conditions.get("team_id"):
        parts.append(f"team {words_list([team_names.get(t, f'#{t}') for t in teams])}")
    if tags := conditions.get("tags"):
        parts.append(f"tagged {words_list(tags)}")
    return ", ".join(parts) or "Every ticket"


def targets_in_words(targets: dict[str, dict[str, Any]]) -> str:
    return ", ".join(
        f"{METRIC_WORDS[m]} {duration(targets[m]['minutes'])} "
        f"{'business' if targets[m]['business'] else 'calendar'}"
        for m in METRICS
        if m in targets
    )


async def _team_names(db: Db) -> dict[int, str]:
    return {team.id: team.name for team, _ in await auth.list_teams(db)}


async def _policies_page(
    request: Request, db: Db, *, refusal: dict[str, Any] | None = None, status_code: int = 200
) -> Response:
    names = await _team_names(db)
    calendars = {c.id: c.name for c in await service.list_calendars(db)}
    policies = await service.list_policies(db)
    return render(
        request,
        "sla/policies.html",
        {
            "section": "policies",
            "rows": [
                {
                    "policy": p,
                    "conditions": conditions_in_words(p.conditions, names),
                    "targets": targets_in_words(p.targets),
                    "calendar": calendars.get(p.calendar_id or 0),
                }
                for p in policies
            ],
            "error": None,
            "fields": {},
            **(refusal or {}),
        },
        status_code=status_code,
    )


async def _policy_form(
    request: Request,
    db: Db,
    draft: PolicyDraft,
    *,
    policy: SlaPolicy | None = None,
    refusal: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    teams = [team for team, _ in await auth.list_teams(db)]
    return render(
        request,
        "sla/policy.html",
        {
            "section": "policies",
            "policy": policy,
            "draft": draft,
            "priorities": PRIORITIES + tuple(p for p in draft.priority if p not in PRIORITIES),
            "channels": [
                (c, CHANNEL_WORDS.get(c, c))
                for c in CHANNELS + tuple(c for c in draft.channel if c not in CHANNELS)
            ],
            "teams": teams,
            "calendars": await service.list_calendars(db),
            "metrics": [(m, METRIC_WORDS[m]) for m in METRICS],
            "units": list(UNITS),
            "pausable": PAUSABLE,
            "error": None,
            "fields": {},
            **(refusal or {}),
        },
        status_code=status_code,
    )


@router.get("/admin/sla/policies")
async def policies_page(request: Request, principal: PageAdmin, db: Db) -> Response:
    return await _policies_page(request, db)


@router.get("/admin/sla/policies/new")
async def new_policy(request: Request, principal: PageAdmin, db: Db) -> Response:
    draft = PolicyDraft()
    if calendars := await service.list_calendars(db):  # business time is the default clock
        draft.calendar_id = str(calendars[0].id)
    return await _policy_form(request, db, draft)


@router.post("/admin/sla/policies")
async def create_policy(request: Request, principal: PageAdmin, db: Db) -> Response:
    draft = PolicyDraft.from_form(await request.form())
    try:
        async with db.begin_nested():
            policy = await service.create_policy(db, actor=principal.actor, **draft.fields())
    except ServiceError as exc:
        return await _policy_form(
            request, db, draft, refusal=problem(exc), status_code=exc.status_code
        )
    flash(principal, f"Policy “{policy.name}” saved.")
    return RedirectResponse("/admin/sla/policies", status_code=303)


@router.get("/admin/sla/policies/{policy_id:int}")
async def policy_page(request: Request, policy_id: int, principal: PageAdmin, db: Db) -> Response:
    policy = await service.get_policy(db, policy_id)
    return await _policy_form(request, db, PolicyDraft.of(policy), policy=policy)


@router.post("/admin/sla/policies/{policy_id:int}")
async def update_policy(request: Request, policy_id: int, principal: PageAdmin, db: Db) -> Response:
    policy = await service.get_policy(db, policy_id)
    draft = PolicyDraft.from_form(await request.form())
    try:
        async with db.begin_nested():
            await service.update_policy(
                db,
                policy,
                expected_version=form_version(draft.version),
                changes=draft.fields(),
                actor=principal.actor,
            )
    except ServiceError as exc:
        policy = await service.get_policy(db, policy_id)  # as stored, after the rollback
        return await _policy_form(
            request, db, draft, policy=policy, refusal=problem(exc), status_code=exc.status_code
        )
    flash(principal, f"Policy “{policy.name}” saved.")
    return RedirectResponse("/admin/sla/policies", status_code=303)


@router.post("/admin/sla/policies/{policy_id:int}/delete")
async def delete_policy(request: Request, policy_id: int, principal: PageAdmin, db: Db) -> Response:
    policy = await service.get_policy(db, policy_id)
    name = policy.name
    form = await request.form()
    try:
        async with db.begin_nested():
            await service.delete_policy(
                db,
                policy,
                expected_version=form_version(form_text(form, "version")),
                actor=principal.actor,
            )
    except ServiceError as exc:
        policy = await service.get_policy(db, policy_id)
        return await _policy_form(
            request,
            db,
            PolicyDraft.of(policy),
            policy=policy,
            refusal=problem(exc),
            status_code=exc.status_code,
        )
    flash(principal, f"Policy “{name}” deleted.")
    return RedirectResponse("/admin/sla/policies", status_code=303)


@router.post("/admin/sla/policies/{policy_id:int}/active")
async def set_active(request: Request, policy_id: int, principal: PageAdmin, db: Db) -> Response:
    form = await request.form()
    policy = await service.get_policy(db, policy_id)
    active = form_text(form, "active") == "true"
    try:
        async with db.begin_nested():
            await service.update_policy(
                db,
                policy,
                expected_version=form_version(form_text(form, "version")),
                changes={"active": active},
                actor=principal.actor,
            )
    except ServiceError as exc:
        return await _policies_page(request, db, refusal=problem(exc), status_code=exc.status_code)
    flash(principal, f"Policy “{policy.name}” {'activated' if active else 'deactivated'}.")
    return RedirectResponse("/admin/sla/policies", status_code=303)


@router.post("/admin/sla/policies/{policy_id:int}/move")
async def move_policy(request: Request, policy_id: int, principal: PageAdmin, db: Db) -> Response:
    """Swap the policy with its neighbour, then number them all 0, 1, 2, ... in that order
    (so positions that were equal or had gaps become a plain sequence)."""
    form = await request.form()
    policy = await service.get_policy(db, policy_id)
    order = await service.list_policies(db)
    index = next(i for i, p in enumerate(order) if p.id == policy.id)
    other = index - 1 if form_text(form, "direction") == "up" else index + 1
    if 0 <= other < len(order):
        order[index], order[other] = order[other], order[index]
        try:
            async with db.begin_nested():
                for position, row in enumerate(order):
                    if row.position == position:
                        continue
                    expected = row.version
                    if row.id == policy.id:
                        expected = form_version(form_text(form, "version"))
                    await service.update_policy(
                        db,
                        row,
                        expected_version=expected,
                        changes={"position": position},
                        actor=principal.actor,
                    )
        except ServiceError as exc:
            return await _policies_page(
                request, db, refusal=problem(exc), status_code=exc.status_code
            )
    return RedirectResponse("/admin/sla/policies", status_code=303)
