"""What a simulated business did, decided before anything is written: the plan.

The generator (``generate.py``) runs the discrete-event simulation of a scenario and returns a
:class:`Plan`; the driver (``driver.py``) replays the plan through the real services with the clock
moved to each step's time. The plan is plain frozen data, so the same seed gives the same plan and
the generator is testable without a database. ``Answers`` is what the scenario planted, written
beside the data as JSON for the analysis to be measured against.

Keys (``agent``, ``customer``, ...) are the plan's own stable names; the driver maps them to
database ids. All times are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, Literal

Channel = Literal["email", "web", "chat", "api", "phone", "portal"]
Priority = Literal["low", "normal", "high", "urgent"]


@dataclass(frozen=True)
class PlanTeam:
    name: str
    description: str


@dataclass(frozen=True)
class PlanAgent:
    key: str
    name: str
    email: str
    team: str  # a PlanTeam.name
    skills: dict[str, int]  # topic -> level 1..5 (the routing skill tags are the topic names)
    shift: tuple[int, int]  # local hours [start, end)
    workdays: tuple[int, ...]  # 0 = Monday
    absences: tuple[date, ...] = ()


@dataclass(frozen=True)
class PlanCompany:
    key: str
    name: str
    domain: str


@dataclass(frozen=True)
class PlanCustomer:
    key: str
    name: str
    email: str
    tier: str  # one of the customers domain's tiers
    company: str | None = None  # a PlanCompany.key
    since: datetime | None = None  # when the customer is created (default: their first ticket)


@dataclass(frozen=True)
class PlanPolicy:
    """An SLA policy with its business calendar (hours in the business's time zone)."""

    name: str
    tiers: tuple[str, ...]  # empty: any tier
    priorities: tuple[str, ...]  # empty: any priority
    first_reply_minutes: int
    resolution_minutes: int
    business_hours: dict[int, tuple[int, int]]  # weekday -> (start hour, end hour); absent: closed
    holidays_country: str | None = None
    position: int = 0


@dataclass(frozen=True)
class PlanSurvey:
    """A survey and its sending rule (sent after solved plus ``delay_minutes``)."""

    kind: Literal["csat", "nps", "ces"]
    name: str
    delay_minutes: int
    throttle_days: int
    channels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Assign:
    at: datetime
    agent: str  # PlanAgent.key
    team: str | None = None


@dataclass(frozen=True)
class Reply:
    """A public message; ``author`` is an agent key or the ticket's customer key."""

    at: datetime
    author: str
    by: Literal["agent", "customer"]
    body: str


@dataclass(frozen=True)
class Note:
    at: datetime
    agent: str
    body: str


@dataclass(frozen=True)
class Status:
    at: datetime
    status: Literal["open", "pending", "on-hold", "solved", "closed"]
    agent: str | None  # None: the customer's or the system's doing (a reopen by reply is a Reply)


@dataclass(frozen=True)
class SurveyAnswer:
    """The customer answers the invitation the survey rule sent after ``solved``."""

    at: datetime
    kind: Literal["csat", "nps", "ces"]
    score: int
    comment: str = ""


@dataclass(frozen=True)
class FollowUp:
    at: datetime  # when it is created
    agent: str  # owner
    due: datetime
    reason: str
    done_at: datetime | None = None
    outcome: str = ""  # with done_at: one of the follow-ups domain's outcomes ("resolved", ...)
    # "recovery": the one the follow-ups domain opens by itself for a detractor's answer (the
    # driver completes that one rather than creating another); "check_in" / "other": created
    kind: Literal["check_in", "recovery", "other"] = "other"
    note: str = ""  # the agent's note on completing it


Step = Assign | Reply | Note | Status | SurveyAnswer | FollowUp


@dataclass(frozen=True)
class PlanTicket:
    key: str
    opened_at: datetime
    customer: str  # PlanCustomer.key
    channel: Channel
    topic: str
    subject: str
    body: str
    priority: Priority = "normal"
    tags: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()  # in time order, all at or after opened_at


@dataclass(frozen=True)
class Answers:
    """What the scenario planted, for later analysis to recover (written as JSON)."""

    seed: int
    scenario: str
    start: datetime
    end: datetime
    tickets: int
    arrival_rate_by_hour: dict[int, float]  # mean tickets per hour of day (local), whole run
    arrival_rate_by_weekday: dict[int, float]  # mean tickets per day, 0 = Monday
    handling_minutes_by_topic: dict[str, float]  # mean agent working minutes per ticket
    bottleneck: dict[str, Any]  # e.g. {"team": "Billing", "status": "pending", "mean_hours": ..}
    detractor_topic: dict[str, Any]  # e.g. {"topic": "...", "nps_drop": ..}
    emerging_issue: dict[str, Any]  # e.g. {"topic": "...", "from": date, "rate_multiplier": ..}
    training_need: dict[str, Any]  # e.g. {"agent": email, "topic": "...", ...}
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (dates and datetimes as ISO strings)."""
        result: dict[str, Any] = _jsonable(asdict(self))
        return result


@dataclass(frozen=True)
class Plan:
    name: str  # the business's name
    time_zone: str
    start: datetime
    end: datetime
    teams: tuple[PlanTeam, ...]
    agents: tuple[PlanAgent, ...]
    companies: tuple[PlanCompany, ...]
    customers: tuple[PlanCustomer, ...]
    policies: tuple[PlanPolicy, ...]
    surveys: tuple[PlanSurvey, ...]
    tickets: tuple[PlanTicket, ...]  # by opened_at
    answers: Answers


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
