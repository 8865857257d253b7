"""The scenario file: a simulated business described as data, validated with errors that name
the field (``topics[2].handling_minutes: must be greater than 0``). Pure: no database.

A scenario is TOML (YAML too when PyYAML happens to be installed). ``load_scenario`` reads and
checks one; ``parse_scenario`` checks already-parsed data. Both raise :class:`ScenarioError`,
whose ``lines`` are the problems, one per field.
"""

from __future__ import annotations

import tomllib
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Channel = Literal["email", "web", "chat", "api", "phone", "portal"]
Priority = Literal["low", "normal", "high", "urgent"]

# the phrase banks of text.py: a topic's ``wording`` picks one
WORDINGS = (
    "delivery",
    "returns",
    "refund",
    "payment",
    "invoice",
    "account",
    "product",
    "damaged",
    "order_change",
    "promo_code",
    "website",
    "general",
)

# what a product can be, so a ticket's case gets a product that fits it (text.py's ``needs``)
Kind = Literal["furniture", "assembly", "textile", "kitchen", "lighting", "decor", "fragile"]
KINDS: tuple[str, ...] = get_args(Kind)

_SLUG = r"^[a-z][a-z0-9-]*$"
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class ScenarioError(Exception):
    """A scenario that cannot be used; ``lines`` name each field and its problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _weekdays(days: list[int]) -> list[int]:
    if len(set(days)) != len(days):
        raise ValueError("each weekday at most once")
    return days


class Product(_Model):
    """A product the customers write about. ``kinds`` None (a plain name in the file): it fits
    every case; a list: it fits the cases that need one of them, and those that need none."""

    name: str = Field(min_length=1, max_length=200)
    kinds: list[Kind] | None = None


class Business(_Model):
    name: str = Field(min_length=1, max_length=200)
    time_zone: str
    country: str | None = None  # public holidays (ISO 3166 code, the holidays package)
    months: int = Field(ge=1, le=36)
    end: date | None = None  # the run's last day, included (default: the run ends now)
    products: list[Product] = Field(min_length=1)  # a name, or a table with name and kinds

    @field_validator("products", mode="before")
    @classmethod
    def _plain_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name)") from None
        return value

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is not None and value not in _countries():
            raise ValueError(f"no public holidays known for {value!r} (an ISO 3166 code)")
        return value


class Burst(_Model):
    start: date | int  # a date, or days after the run's start; outside the run: ignored
    days: int = Field(gt=0, le=60)
    multiplier: float = Field(gt=0, le=50)
    topic: str | None = None  # None: every topic
    note: str = ""


class Arrivals(_Model):
    expected_tickets: int = Field(gt=0, le=5_000_000)
    hourly: list[float] = Field(min_length=24, max_length=24)  # local hour 0..23, relative
    weekly: list[float] = Field(min_length=7, max_length=7)  # Monday first, relative
    trend: float = Field(default=0.0, gt=-1, le=10)  # rate at the end / rate at the start - 1
    holiday_factor: float = Field(default=0.5, ge=0, le=5)
    bursts: list[Burst] = Field(default_factory=list)

    @field_validator("hourly", "weekly")
    @classmethod
    def _profile(cls, value: list[float]) -> list[float]:
        if any(v < 0 for v in value):
            raise ValueError("weights must be 0 or more")
        if sum(value) <= 0:
            raise ValueError("at least one weight must be greater than 0")
        return value


class Customers(_Model):
    count: int = Field(gt=0, le=2_000_000)
    companies: int = Field(default=0, ge=0)
    company_share: float = Field(default=0.0, ge=0, le=1)
    repeat: float = Field(default=1.0, ge=0, le=3)  # Zipf exponent of who comes back
    tiers: dict[str, float] = Field(min_length=1)  # tier -> share
    reply_minutes: float = Field(gt=0)  # median delay of an answer when asked
    reply_spread: float = Field(default=1.0, gt=0, le=3)  # lognormal sigma
    no_reply_chance: float = Field(default=0.1, ge=0, lt=1)
    reopen_minutes: float = Field(default=720, gt=0)  # median delay of "it is not fixed"

    @field_validator("tiers")
    @classmethod
    def _shares(cls, value: dict[str, float]) -> dict[str, float]:
        for name, share in value.items():
            if share <= 0:
                raise ValueError(f"share of {name!r} must be greater than 0")
        return value


class Team(_Model):
    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    wait_hours: float = Field(default=4.0, gt=0)  # median wait on a third party or department


_NORMAL: dict[Priority, float] = {"normal": 1.0}


class Topic(_Model):
    name: str = Field(pattern=_SLUG, max_length=40)
    label: str = Field(min_length=1)
    team: str
    share: float = Field(gt=0)
    wording: str
    handling_minutes: float = Field(gt=0, le=24 * 60)  # mean of the first working session
    handling_spread: float = Field(default=0.6, gt=0, le=3)  # coefficient of variation
    distribution: Literal["lognormal", "gamma"] = "lognormal"
    reopen_chance: float = Field(default=0.05, ge=0, lt=1)
    pending_chance: float = Field(default=0.2, ge=0, lt=1)
    team_wait_share: float = Field(default=0.3, ge=0, le=1)  # pending on the team, not customer
    priorities: dict[Priority, float] = Field(default_factory=lambda: _NORMAL.copy())
    channels: dict[Channel, float] | None = None  # None: the business's channel shares
    satisfaction: float = Field(default=0.0, ge=-10, le=10)  # score shift, 0..10 scale
    followup_chance: float = Field(default=0.0, ge=0, le=1)

    @field_validator("wording")
    @classmethod
    def _wording(cls, value: str) -> str:
        if value not in WORDINGS:
            raise ValueError(f"unknown wording {value!r}: one of {', '.join(WORDINGS)}")
        return value

    @field_validator("priorities", "channels")
    @classmethod
    def _weights(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None and (any(v < 0 for v in value.values()) or sum(value.values()) <= 0):
            raise ValueError("weights must be 0 or more and sum to more than 0")
        return value


class Agent(_Model):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=_EMAIL)
    team: str
    skills: dict[str, int] = Field(min_length=1)  # topic -> level 1..5
    shift: tuple[int, int] = (9, 17)  # local hours [start, end)
    workdays: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1)
    absence_days: int = Field(default=0, ge=0, le=200)  # random days off over the run
    absences: list[date] = Field(default_factory=list)  # fixed days off

    @field_validator("skills")
    @classmethod
    def _levels(cls, value: dict[str, int]) -> dict[str, int]:
        for topic, level in value.items():
            if not 1 <= level <= 5:
                raise ValueError(f"level of {topic!r} must be 1 to 5")
        return value

    @field_validator("shift")
    @classmethod
    def _shift(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= value[0] < value[1] <= 24:
            raise ValueError("must be [start, end) hours with 0 <= start < end <= 24")
        return value

    @field_validator("workdays")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if any(not 0 <= d <= 6 for d in value):
            raise ValueError("weekdays are 0 (Monday) to 6")
        return _weekdays(value)


class Policy(_Model):
    name: str = Field(min_length=1, max_length=200)
    tiers: list[str] = Field(default_factory=list)
    priorities: list[Priority] = Field(default_factory=list)
    first_reply_minutes: int = Field(gt=0)
    resolution_minutes: int = Field(gt=0)
    hours: tuple[int, int] = (9, 17)
    days: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1)
    holidays: bool = True

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= value[0] < value[1] <= 24:
            raise ValueError("must be [start, end) hours with 0 <= start < end <= 24")
        return value

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if any(not 0 <= d <= 6 for d in value):
            raise ValueError("weekdays are 0 (Monday) to 6")
        return _weekdays(value)


class Survey(_Model):
    kind: Literal["csat", "nps", "ces"]
    name: str = Field(min_length=1, max_length=200)
    delay_minutes: int = Field(ge=0, le=60 * 24 * 30)
    throttle_days: int = Field(default=0, ge=0, le=3650)
    channels: list[Channel] = Field(default_factory=list)
    response_rate: float = Field(gt=0, le=1)
    comment_chance: float = Field(default=0.3, ge=0, le=1)

    @field_validator("delay_minutes")
    @classmethod
    def _whole_hours(cls, value: int) -> int:
        if value % 60:
            raise ValueError("must be whole hours (a multiple of 60): survey rules count hours")
        return value


class Service(_Model):
    """How the desk and its customers behave, beyond each topic's own numbers."""

    followup_work: float = Field(default=0.5, gt=0, le=5)  # later sessions / first session
    close_after_hours: float = Field(default=96, gt=0)
    handover_hours: float = Field(default=8, ge=0)  # wait for the assignee before another
    base_score: float = Field(default=8.3, ge=0, le=10)  # mean 0..10 score of a smooth ticket
    wait_penalty: float = Field(default=0.5, ge=0)  # points per doubling of hours waited
    reopen_penalty: float = Field(default=2.0, ge=0)
    skill_effect: float = Field(default=0.35, ge=0)  # points per skill level above 3
    score_noise: float = Field(default=1.4, ge=0)
    recovery_hours: float = Field(default=48, gt=0)  # a detractor's follow-up is due after


class Bottleneck(_Model):
    team: str
    pending_multiplier: float = Field(gt=1, le=100)


class Detractor(_Model):
    topic: str
    score_drop: float = Field(gt=0, le=10)  # points off the 0..10 score


class Emerging(_Model):
    topic: str
    days: int = Field(default=14, gt=0, le=90)
    multiplier: float = Field(gt=1, le=100)
    new: bool = False  # True: the topic does not exist before the spike


class Training(_Model):
    agent: str  # the agent's email
    topic: str
    slowdown: float = Field(ge=1, le=10)
    extra_reopen_chance: float = Field(default=0.0, ge=0, lt=1)
    score_drop: float = Field(default=0.0, ge=0, le=10)


class Planted(_Model):
    bottleneck: Bottleneck | None = None
    detractor: Detractor | None = None
    emerging: Emerging | None = None
    training: Training | None = None


class Scenario(_Model):
    business: Business
    arrivals: Arrivals
    channels: dict[Channel, float] = Field(min_length=1)
    customers: Customers
    teams: list[Team] = Field(min_length=1)
    topics: list[Topic] = Field(min_length=1)
    agents: list[Agent] = Field(min_length=1)
    policies: list[Policy] = Field(default_factory=list)
    surveys: list[Survey] = Field(default_factory=list)
    service: Service = Service()
    planted: Planted = Planted()

    def topic(self, name: str) -> Topic:
        return next(t for t in self.topics if t.name == name)


@cache
def _countries() -> frozenset[str]:
    import holidays

    return frozenset(holidays.list_supported_countries())


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            continue
        else:
            out += ("." if out else "") + part
    return out or "(top)"


def _message(error: Any) -> str:
    msg = str(error["msg"])
    if error["type"] == "missing":
        return "required"
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "model_type":
        if error.get("ctx", {}).get("class_name") == "Product":
            return "must be a name or a table with name and kinds"
        return "must be a table"
    for prefix, instead in (("Value error, ", ""), ("Input should be", "must be")):
        if msg.startswith(prefix):
            msg = instead + msg[len(prefix) :]
            break
    return msg.strip()


def _names(items: list[Any], field: str, kind: str, lines: list[str]) -> set[str]:
    seen: set[str] = set()
    for i, item in enumerate(items):
        name = getattr(item, field)
        if name in seen:
            lines.append(f"{kind}[{i}].{field}: {name!r} appears twice")
        seen.add(name)
    return seen


def _cross_checks(s: Scenario) -> list[str]:
    lines: list[str] = []
    teams = _names(s.teams, "name", "teams", lines)
    topics = _names(s.topics, "name", "topics", lines)
    emails = _names(s.agents, "email", "agents", lines)
    if sum(s.channels.values()) <= 0 or any(v < 0 for v in s.channels.values()):
        lines.append("channels: shares must be 0 or more and sum to more than 0")
    if s.customers.companies == 0 and s.customers.company_share > 0:
        lines.append("customers.company_share: needs customers.companies greater than 0")
    tiers = set(s.customers.tiers)
    for i, agent in enumerate(s.agents):
        if agent.team not in teams:
            lines.append(f"agents[{i}].team: no team named {agent.team!r}")
        for skill in agent.skills:
            if skill not in topics:
                lines.append(f"agents[{i}].skills.{skill}: no topic named {skill!r}")
    for i, topic in enumerate(s.topics):
        if topic.team not in teams:
            lines.append(f"topics[{i}].team: no team named {topic.team!r}")
        elif not any(a.team == topic.team for a in s.agents):
            lines.append(f"topics[{i}].team: team {topic.team!r} has no agents")
    for i, burst in enumerate(s.arrivals.bursts):
        if isinstance(burst.start, int) and burst.start < 0:
            lines.append(f"arrivals.bursts[{i}].start: days after the start must be 0 or more")
        if burst.topic is not None and burst.topic not in topics:
            lines.append(f"arrivals.bursts[{i}].topic: no topic named {burst.topic!r}")
    for i, policy in enumerate(s.policies):
        for tier in policy.tiers:
            if tier not in tiers:
                lines.append(f"policies[{i}].tiers: no customer tier named {tier!r}")
    p = s.planted
    if p.bottleneck is not None and p.bottleneck.team not in teams:
        lines.append(f"planted.bottleneck.team: no team named {p.bottleneck.team!r}")
    for field, planted in (("detractor", p.detractor), ("emerging", p.emerging)):
        if planted is not None and planted.topic not in topics:
            lines.append(f"planted.{field}.topic: no topic named {planted.topic!r}")
    if p.emerging is not None and p.emerging.days * 2 > s.business.months * 28:
        lines.append("planted.emerging.days: must be less than half the run")
    if p.training is not None:
        t = p.training
        if t.agent not in emails:
            lines.append(f"planted.training.agent: no agent with email {t.agent!r}")
        elif t.topic not in topics:
            lines.append(f"planted.training.topic: no topic named {t.topic!r}")
        else:
            agent = next(a for a in s.agents if a.email == t.agent)
            if t.topic not in agent.skills or agent.team != s.topic(t.topic).team:
                lines.append(
                    "planted.training.topic: the agent must have the skill and be in the "
                    f"topic's team ({s.topic(t.topic).team!r})"
                )
    return lines


def parse_scenario(data: Any) -> Scenario:
    """Validate parsed data (a dict) as a scenario, field by field and across fields."""
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(
            [f"{_path(e['loc'])}: {_message(e)}" for e in exc.errors(include_url=False)]
        ) from None
    lines = _cross_checks(scenario)
    if lines:
        raise ScenarioError(lines)
    return scenario


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file (``.toml``; ``.yaml``/``.yml`` when PyYAML is there)."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ScenarioError([f"{file}: no such file"]) from None
    except OSError as exc:
        raise ScenarioError([f"{file}: cannot be read ({exc.strerror})"]) from None
    if file.suffix.lower() in (".yaml", ".yml"):
        data = _yaml(file, raw)
    else:
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ScenarioError([f"{file}: not UTF-8 text"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ScenarioError([f"{file}: TOML syntax error: {exc}"]) from None
    return parse_scenario(data)


def _yaml(file: Path, raw: bytes) -> Any:
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise ScenarioError([f"{file}: YAML needs PyYAML installed; use TOML instead"]) from None
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ScenarioError([f"{file}: YAML syntax error{where}"]) from None


def scenarios_folder() -> Path:
    """Where the scenarios shipped with the package live."""
    return Path(__file__).parent / "scenarios"


def default_scenario_path() -> Path:
    """The demo's scenario: a mid-size online shop over six months."""
    return scenarios_folder() / "online_shop.toml"
