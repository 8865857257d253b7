"""A scenario run as a discrete-event simulation, into a :class:`~.plan.Plan`. Pure.

Arrivals are a non-homogeneous Poisson process, hour by hour: base rate x hour-of-day profile x
weekday profile x trend x public holidays x bursts, split into topics by their shares (the
emerging issue's topic spikes at the end). Each ticket then goes through the desk
(``desk.py``): routing to a free, skilled agent on shift or a queue, work sessions, pending
periods on the customer or the team, reopens, surveys and follow-ups. The same seed gives the
same plan; separate random streams keep wording changes from moving the numbers.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate
from zoneinfo import ZoneInfo

from servicecycle.kit import clock
from servicecycle.simulation import people
from servicecycle.simulation.desk import Desk, DeskAgent, Shift
from servicecycle.simulation.plan import (
    Answers,
    Plan,
    PlanAgent,
    PlanPolicy,
    PlanSurvey,
    PlanTeam,
)
from servicecycle.simulation.scenario import Scenario
from servicecycle.simulation.text import Writer
from servicecycle.simulation.truths import facts_of

HOUR = 3600.0


@dataclass(frozen=True)
class Window:
    """The run: [start, end) in UTC, on whole local hours, and the business's time zone."""

    start: datetime
    end: datetime
    zone: ZoneInfo

    @property
    def hours(self) -> int:
        return int((self.end - self.start).total_seconds() // HOUR)

    @property
    def days(self) -> tuple[date, date]:
        """The first and the last local day of the run, both included."""
        last = (self.end - timedelta(microseconds=1)).astimezone(self.zone).date()
        return self.start.astimezone(self.zone).date(), last


def window(scenario: Scenario, end: datetime | date | None = None) -> Window:
    """The run's window: ``months`` before ``end``. A date (by default the scenario's ``end``)
    is the run's last day, included: the run covers whole local days up to the next local
    midnight. A datetime, or now when there is no date, is floored to the local hour."""
    zone = ZoneInfo(scenario.business.time_zone)
    chosen = end if end is not None else scenario.business.end
    if isinstance(chosen, datetime) or chosen is None:
        if chosen is not None and chosen.tzinfo is None:
            raise ValueError("end must be timezone-aware")
        moment = (chosen if chosen is not None else clock.now()).astimezone(zone)
        local = moment.replace(minute=0, second=0, microsecond=0)
    else:
        local = datetime.combine(chosen + timedelta(days=1), time(0), zone)
    stop = local.astimezone(UTC)
    local = stop.astimezone(zone)  # a nonexistent local midnight becomes a real time
    months = local.year * 12 + local.month - 1 - scenario.business.months
    year, month = divmod(months, 12)
    day = min(local.day, _days_in_month(year, month + 1))
    begin = local.replace(year=year, month=month + 1, day=day).astimezone(UTC)
    return Window(begin, stop, zone)


def _days_in_month(year: int, month: int) -> int:
    following = date(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def holidays_between(country: str | None, first: date, last: date) -> frozenset[date]:
    if country is None:
        return frozenset()
    import holidays

    found = holidays.country_holidays(country, years=range(first.year, last.year + 1))
    return frozenset(d for d in found if first <= d <= last)


@dataclass(frozen=True)
class Intensity:
    """The arrival rate of every hour of the run, and the topic weights within it."""

    rates: list[float]  # expected tickets in hour i
    topic_weights: list[int]  # index into ``weights`` for hour i
    weights: list[list[float]]  # cumulative topic weights (order of scenario.topics)
    local_hours: list[int]
    local_weekdays: list[int]
    emerging_from: datetime | None


def intensity(scenario: Scenario, run: Window, holidays: frozenset[date]) -> Intensity:
    """λ(hour) = k x hourly x weekly x trend x holiday x Σ topic share x burst/spike, with k
    chosen so the run expects ``expected_tickets``."""
    arrivals, topics = scenario.arrivals, scenario.topics
    hourly_mean = sum(arrivals.hourly) / 24
    weekly_mean = sum(arrivals.weekly) / 7
    shares = [t.share for t in topics]
    total_share = sum(shares)
    first_day = run.start.astimezone(run.zone).date()
    bursts = []
    for burst in arrivals.bursts:
        begin = (
            first_day + timedelta(days=burst.start) if isinstance(burst.start, int) else burst.start
        )
        index = None if burst.topic is None else [t.name for t in topics].index(burst.topic)
        bursts.append((begin, begin + timedelta(days=burst.days), burst.multiplier, index))
    emerging = scenario.planted.emerging
    spike_from = spike_index = None
    if emerging is not None:
        spike_from = run.end - timedelta(days=emerging.days)
        spike_index = [t.name for t in topics].index(emerging.topic)
    keys: dict[tuple[int, ...], int] = {}
    weights: list[list[float]] = []
    base: list[float] = []
    mix: list[float] = []
    choice: list[int] = []
    hours_of_day: list[int] = []
    weekdays: list[int] = []
    n = run.hours
    for i in range(n):
        at = run.start + timedelta(hours=i)
        local = at.astimezone(run.zone)
        day = local.date()
        hours_of_day.append(local.hour)
        weekdays.append(local.weekday())
        rate = arrivals.hourly[local.hour] / hourly_mean
        rate *= arrivals.weekly[local.weekday()] / weekly_mean
        rate *= 1 + arrivals.trend * (i + 0.5) / n
        if day in holidays:
            rate *= arrivals.holiday_factor
        active = tuple(j for j, b in enumerate(bursts) if b[0] <= day < b[1])
        spiking = spike_from is not None and at >= spike_from
        key = (*active, -1) if spiking else active
        if key not in keys:
            topic_rates = list(shares)
            for j in active:
                _, _, multiplier, index = bursts[j]
                for t in range(len(topic_rates)):
                    if index is None or index == t:
                        topic_rates[t] *= multiplier
            if emerging is not None and spike_index is not None:
                if spiking:
                    topic_rates[spike_index] *= emerging.multiplier
                elif emerging.new:
                    topic_rates[spike_index] = 0.0
            keys[key] = len(weights)
            weights.append(list(accumulate(topic_rates)))
        index = keys[key]
        base.append(rate)
        mix.append(weights[index][-1] / total_share)
        choice.append(index)
    scale = arrivals.expected_tickets / sum(b * m for b, m in zip(base, mix, strict=True))
    rates = [scale * b * m for b, m in zip(base, mix, strict=True)]
    return Intensity(rates, choice, weights, hours_of_day, weekdays, spike_from)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, product = math.exp(-lam), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def arrivals(rng: random.Random, shape: Intensity) -> list[tuple[float, int]]:
    """(seconds after the start, topic index) of every ticket, in time order."""
    out: list[tuple[float, int]] = []
    for i, lam in enumerate(shape.rates):
        cumulative = shape.weights[shape.topic_weights[i]]
        total = cumulative[-1]
        for _ in range(_poisson(rng, lam)):
            topic = bisect_right(cumulative, rng.random() * total)
            out.append(((i + rng.random()) * HOUR, min(topic, len(cumulative) - 1)))
    out.sort()
    return out


def _shifts(
    rng: random.Random, scenario: Scenario, run: Window, holidays: frozenset[date]
) -> tuple[list[list[Shift]], list[tuple[date, ...]]]:
    first, last = run.days
    days = (last - first).days + 1
    all_shifts, all_absences = [], []
    for agent in scenario.agents:
        off = set(agent.absences)
        free = [first + timedelta(days=d) for d in range(days)]
        free = [day for day in free if day not in off]
        remaining = min(agent.absence_days, len(free))
        while remaining > 0:  # blocks of 1 to 5 days, cut short by the run's end or a day off
            block = min(remaining, rng.randint(1, 5))
            begin = rng.choice(free)
            taken = 0
            while taken < block and begin <= last and begin not in off:
                off.add(begin)
                taken += 1
                begin += timedelta(days=1)
            free = [day for day in free if day not in off]
            remaining -= taken
        shifts = []
        for d in range(days):
            day = first + timedelta(days=d)
            if day.weekday() not in agent.workdays or day in off or day in holidays:
                continue
            midnight = datetime.combine(day, time(0), run.zone)
            begin_at = (midnight + timedelta(hours=agent.shift[0])).astimezone(UTC)
            end_at = (midnight + timedelta(hours=agent.shift[1])).astimezone(UTC)
            shifts.append(
                Shift(
                    (begin_at - run.start).total_seconds(),
                    (end_at - run.start).total_seconds(),
                )
            )
        all_shifts.append(shifts)
        all_absences.append(tuple(sorted(d for d in off if first <= d <= last)))
    return all_shifts, all_absences


def _keys(emails: list[str]) -> list[str]:
    seen: Counter[str] = Counter()
    keys = []
    for email in emails:
        base = email.split("@")[0].lower()
        seen[base] += 1
        keys.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return keys


def _stream(seed: int, name: str) -> random.Random:
    """One random stream per concern, so changing one does not move the others."""
    return random.Random(f"{seed}:{name}")  # noqa: S311 - a simulation, not a secret


def generate(scenario: Scenario, *, seed: int, end: datetime | date | None = None) -> Plan:
    """Simulate ``scenario`` with ``seed`` into a plan (same inputs, same plan)."""
    run = window(scenario, end)
    holidays = holidays_between(scenario.business.country, *run.days)
    shape = intensity(scenario, run, holidays)
    arrival_rng = _stream(seed, "arrivals")
    tickets_in = arrivals(arrival_rng, shape)
    shifts, absences = _shifts(_stream(seed, "shifts"), scenario, run, holidays)
    keys = _keys([a.email for a in scenario.agents])
    agents = [DeskAgent(key, a, s) for key, a, s in zip(keys, scenario.agents, shifts, strict=True)]
    crowd = people.Crowd(_stream(seed, "customers"), scenario)
    writer = Writer(_stream(seed, "text"), scenario.business.products)
    desk = Desk(scenario, run.start, run.end, agents, crowd, writer, _stream(seed, "desk"))
    tickets = desk.run(tickets_in)
    answers = _answers(scenario, seed, run, shape, tickets_in, desk)
    return Plan(
        name=scenario.business.name,
        time_zone=scenario.business.time_zone,
        start=run.start,
        end=run.end,
        teams=tuple(PlanTeam(t.name, t.description) for t in scenario.teams),
        agents=tuple(
            PlanAgent(
                key=key,
                name=a.name,
                email=a.email,
                team=a.team,
                skills=dict(a.skills),
                shift=a.shift,
                workdays=tuple(a.workdays),
                absences=off,
            )
            for key, a, off in zip(keys, scenario.agents, absences, strict=True)
        ),
        companies=crowd.plan_companies(),
        customers=crowd.plan_customers(),
        policies=tuple(
            PlanPolicy(
                name=p.name,
                tiers=tuple(p.tiers),
                priorities=tuple(p.priorities),
                first_reply_minutes=p.first_reply_minutes,
                resolution_minutes=p.resolution_minutes,
                business_hours={d: p.hours for d in p.days},
                holidays_country=scenario.business.country if p.holidays else None,
                position=i,
            )
            for i, p in enumerate(scenario.policies)
        ),
        surveys=tuple(
            PlanSurvey(s.kind, s.name, s.delay_minutes, s.throttle_days, tuple(s.channels))
            for s in scenario.surveys
        ),
        tickets=tickets,
        answers=answers,
    )


def _per_day(counts: dict[int, float], slots: Counter[int], per: float) -> dict[int, float]:
    return {k: round(counts.get(k, 0.0) / (slots[k] / per), 4) for k in sorted(slots)}


def _answers(
    scenario: Scenario,
    seed: int,
    run: Window,
    shape: Intensity,
    tickets_in: list[tuple[float, int]],
    desk: Desk,
) -> Answers:
    hour_slots = Counter(shape.local_hours)
    weekday_slots = Counter(shape.local_weekdays)
    true_hour: dict[int, float] = {}
    true_weekday: dict[int, float] = {}
    for lam, h, w in zip(shape.rates, shape.local_hours, shape.local_weekdays, strict=True):
        true_hour[h] = true_hour.get(h, 0.0) + lam
        true_weekday[w] = true_weekday.get(w, 0.0) + lam
    seen_hour: dict[int, float] = {}
    seen_weekday: dict[int, float] = {}
    for at, _ in tickets_in:
        slot = int(at // HOUR)
        h, w = shape.local_hours[slot], shape.local_weekdays[slot]
        seen_hour[h] = seen_hour.get(h, 0.0) + 1
        seen_weekday[w] = seen_weekday.get(w, 0.0) + 1
    facts = facts_of(desk)
    planted = scenario.planted
    emerging: dict[str, object] = {}
    if planted.emerging is not None and shape.emerging_from is not None:
        e = planted.emerging
        index = [t.name for t in scenario.topics].index(e.topic)
        cut = (shape.emerging_from - run.start).total_seconds()
        share = scenario.topics[index].share
        before = during = 0.0
        for i, lam in enumerate(shape.rates):
            weights = shape.weights[shape.topic_weights[i]]
            part = (weights[index] - (weights[index - 1] if index else 0.0)) / weights[-1]
            if i * HOUR < cut:
                before += lam * part
            else:
                during += lam * part
        days_before = cut / 86400
        seen_before = sum(1 for at, t in tickets_in if t == index and at < cut)
        seen_during = sum(1 for at, t in tickets_in if t == index and at >= cut)
        emerging = {
            "topic": e.topic,
            "from": shape.emerging_from,
            "days": e.days,
            "rate_multiplier": e.multiplier,
            "new": e.new,
            "share": share,
            "expected_per_day_before": round(before / days_before, 4),
            "expected_per_day_during": round(during / e.days, 4),
            "realised_per_day_before": round(seen_before / days_before, 4),
            "realised_per_day_during": round(seen_during / e.days, 4),
        }
    return Answers(
        seed=seed,
        scenario=scenario.business.name,
        start=run.start,
        end=run.end,
        tickets=len(tickets_in),
        arrival_rate_by_hour=_per_day(true_hour, hour_slots, 1),
        arrival_rate_by_weekday=_per_day(true_weekday, weekday_slots, 24),
        handling_minutes_by_topic=facts.handling_by_topic,
        bottleneck=facts.bottleneck,
        detractor_topic=facts.detractor,
        emerging_issue=emerging,
        training_need=facts.training,
        extra={
            "expected_tickets": scenario.arrivals.expected_tickets,
            "arrivals_by_hour_realised": _per_day(seen_hour, hour_slots, 1),
            "arrivals_by_weekday_realised": _per_day(seen_weekday, weekday_slots, 24),
            "first_session_minutes_by_topic": {t.name: t.handling_minutes for t in scenario.topics},
            "first_session_minutes_realised": facts.first_session_by_topic,
            "tickets_by_topic": facts.tickets_by_topic,
            "holidays": sorted(holidays_between(scenario.business.country, *run.days)),
        },
    )
