"""The generator does what it says: the planted truths can be recovered from the plan's own
tickets and steps, the steps follow the ticket workflow, and the same seed gives the same plan.

Tolerances are statistical, not arbitrary: counts are Poisson, so a realised count may differ
from its expectation by up to 4 standard deviations (4·√expected + 1); a mean of n lognormal or
gamma minutes may differ by 4·cv/√n. The seed is fixed, so the tests cannot flake; the bounds
say how far a correct generator could be off by chance with any seed.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import tomllib
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from servicecycle.kit import clock
from servicecycle.simulation.generate import _shifts, generate, window
from servicecycle.simulation.plan import (
    Assign,
    FollowUp,
    Note,
    Plan,
    PlanTicket,
    Reply,
    Status,
    SurveyAnswer,
)
from servicecycle.simulation.scenario import (
    Scenario,
    default_scenario_path,
    load_scenario,
    parse_scenario,
)
from servicecycle.tickets.rules import (
    allowed_next,
    status_after_agent_reply,
    status_after_customer_reply,
)

END = date(2026, 12, 1)


@pytest.fixture(scope="module")
def shop() -> Scenario:
    return load_scenario(default_scenario_path())


@pytest.fixture(scope="module")
def plan(shop: Scenario) -> Plan:
    return generate(shop, seed=7, end=END)


def _small(**arrivals: Any) -> Scenario:
    data = tomllib.loads(default_scenario_path().read_text("utf-8"))
    data["business"]["months"] = 1
    data["arrivals"].update({"expected_tickets": 1500, **arrivals})
    data["planted"]["emerging"]["days"] = 7
    return parse_scenario(data)


def _within_poisson(seen: float, expected: float) -> bool:
    return abs(seen - expected) <= 4 * math.sqrt(expected) + 1


def test_the_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    small = _small()
    first = generate(small, seed=3, end=END)
    assert generate(small, seed=3, end=END) == first
    other = generate(small, seed=4, end=END)
    assert other.tickets != first.tickets
    assert [t.subject for t in other.tickets[:20]] != [t.subject for t in first.tickets[:20]]


def test_the_run_ends_now_by_default_and_covers_the_months_before() -> None:
    clock.set_source(lambda: datetime(2026, 7, 15, 10, 37, tzinfo=UTC))
    try:
        result = generate(_small(), seed=1)
    finally:
        clock.set_source(None)
    assert result.end == datetime(2026, 7, 15, 10, 0, tzinfo=UTC)
    assert result.start == datetime(2026, 6, 15, 10, 0, tzinfo=UTC)
    assert all(result.start <= t.opened_at < result.end for t in result.tickets)
    last_day = generate(_small(), seed=1, end=date(2026, 7, 31))  # the last day is included
    assert last_day.end == datetime(2026, 7, 31, 23, 0, tzinfo=UTC)  # midnight in London
    assert last_day.start == datetime(2026, 6, 30, 23, 0, tzinfo=UTC)


def test_the_last_day_is_the_last_with_holidays_shifts_and_absences() -> None:
    data = tomllib.loads(default_scenario_path().read_text("utf-8"))
    data["business"].update(months=1, country="US", time_zone="America/New_York")
    data["arrivals"].update(expected_tickets=300)
    data["planted"]["emerging"]["days"] = 7
    data["agents"][0]["absences"] = [date(2026, 6, 10), date(2026, 7, 1), date(2026, 7, 20)]
    data["agents"][1]["absence_days"] = 40  # more than the run's free days: every one of them
    scenario = parse_scenario(data)
    result = generate(scenario, seed=2, end=date(2026, 7, 3))
    zone = ZoneInfo("America/New_York")
    assert result.end == datetime(2026, 7, 4, 0, 0, tzinfo=zone)
    first, last = date(2026, 6, 4), date(2026, 7, 3)
    assert result.start == datetime(2026, 6, 4, 0, 0, tzinfo=zone)
    # 2026-07-03 is Independence Day observed (included), the 4th is the day after the run
    assert result.answers.extra["holidays"] == [date(2026, 6, 19), date(2026, 7, 3)]
    run = window(scenario, date(2026, 7, 3))
    shifts, _ = _shifts(random.Random(1), scenario, run, frozenset())
    shift_days = {
        (run.start + timedelta(seconds=s.start)).astimezone(zone).date() for a in shifts for s in a
    }
    assert max(shift_days) == last  # a Friday: someone works it, nobody works the Saturday
    assert all(s.start < (run.end - run.start).total_seconds() for a in shifts for s in a)
    days = (last - first).days + 1
    for spec, agent in zip(scenario.agents, result.agents, strict=True):
        fixed = {d for d in spec.absences if first <= d <= last}
        assert all(first <= d <= last for d in agent.absences)
        assert fixed <= set(agent.absences)
        assert len(agent.absences) == min(days, len(fixed) + spec.absence_days), agent.key
    assert len(result.agents[1].absences) == days


def test_a_half_hour_time_zone_runs_over_whole_local_days_and_hours() -> None:
    data = tomllib.loads(default_scenario_path().read_text("utf-8"))
    data["business"].update(months=1, country="IN", time_zone="Asia/Kolkata")
    data["arrivals"].update(expected_tickets=300)
    data["planted"]["emerging"]["days"] = 7
    scenario = parse_scenario(data)
    zone = ZoneInfo("Asia/Kolkata")
    dated = window(scenario, date(2026, 7, 31))
    assert dated.start == datetime(2026, 7, 1, 0, 0, tzinfo=zone)  # 06-30 18:30 UTC
    assert dated.end == datetime(2026, 8, 1, 0, 0, tzinfo=zone)
    assert dated.days == (date(2026, 7, 1), date(2026, 7, 31))
    clock.set_source(lambda: datetime(2026, 7, 15, 10, 37, tzinfo=UTC))  # 16:07 in Kolkata
    try:
        now = window(scenario)
    finally:
        clock.set_source(None)
    assert now.end == datetime(2026, 7, 15, 16, 0, tzinfo=zone)
    assert now.start == datetime(2026, 6, 15, 16, 0, tzinfo=zone)
    result = generate(scenario, seed=3, end=date(2026, 7, 31))
    assert (result.start, result.end) == (dated.start, dated.end)
    assert all(dated.start <= t.opened_at < dated.end for t in result.tickets)
    # shifts start on the local hour the scenario gives
    shifts, _ = _shifts(random.Random(1), scenario, dated, frozenset())
    for spec, agent_shifts in zip(scenario.agents, shifts, strict=True):
        for shift in agent_shifts:
            local = (dated.start + timedelta(seconds=shift.start)).astimezone(zone)
            assert (local.hour, local.minute) == (spec.shift[0], 0)


def test_the_plan_is_the_same_in_processes_with_different_hash_seeds() -> None:
    # str hashes (set and dict-of-set order) change with PYTHONHASHSEED; the plan must not
    script = (
        "import hashlib, tomllib\n"
        "from datetime import date\n"
        "from servicecycle.simulation.generate import generate\n"
        "from servicecycle.simulation.scenario import default_scenario_path, parse_scenario\n"
        "data = tomllib.loads(default_scenario_path().read_text('utf-8'))\n"
        "data['business']['months'] = 1\n"
        "data['arrivals']['expected_tickets'] = 300\n"
        "data['planted']['emerging']['days'] = 7\n"
        "plan = generate(parse_scenario(data), seed=9, end=date(2026, 7, 31))\n"
        "print(len(plan.tickets), hashlib.sha256(repr(plan).encode()).hexdigest())\n"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        digests.add(done.stdout)
    (digest,) = digests  # one digest: every field of the plan (its repr) is the same
    assert int(digest.split()[0]) > 100


def test_tickets_and_steps_follow_the_workflow_the_driver_replays(plan: Plan) -> None:
    agents = {a.key for a in plan.agents}
    customers = {c.key for c in plan.customers}
    assert [t.opened_at for t in plan.tickets] == sorted(t.opened_at for t in plan.tickets)
    assert len({t.key for t in plan.tickets}) == len(plan.tickets)
    surveys = {s.kind: s for s in plan.surveys}
    for ticket in plan.tickets:
        assert ticket.opened_at.tzinfo is not None and ticket.customer in customers
        status, assigned, solved_at = "new", None, None
        times = [s.at for s in ticket.steps]
        assert times == sorted(times) and all(ticket.opened_at <= t < plan.end for t in times)
        for step in ticket.steps:
            if isinstance(step, Assign):
                assert step.agent in agents
                assigned = step.agent
            elif isinstance(step, Reply) and step.by == "agent":
                assert assigned == step.author, ticket.key  # an agent's reply after Assign
                status = status_after_agent_reply(status, None)
            elif isinstance(step, Reply):
                assert step.author == ticket.customer and status != "closed"
                status = status_after_customer_reply(status)
            elif isinstance(step, Status):
                assert step.status in allowed_next(status), (ticket.key, status, step)
                status = step.status
                if status == "solved":
                    solved_at = step.at
            elif isinstance(step, SurveyAnswer):
                assert status in ("solved", "closed") and solved_at is not None
                delay = timedelta(minutes=surveys[step.kind].delay_minutes)
                assert step.at >= solved_at + delay
            elif isinstance(step, FollowUp):
                assert step.agent in agents and step.due > step.at
                assert step.done_at is None or step.outcome in (
                    "resolved",
                    "no_answer",
                    "escalated",
                )
            else:
                assert isinstance(step, Note) and step.agent == assigned


def test_realised_arrivals_by_hour_and_weekday_match_the_true_rates(plan: Plan) -> None:
    answers, zone = plan.answers, _zone(plan)
    hours = int((plan.end - plan.start).total_seconds() // 3600)
    slots = [(plan.start + timedelta(hours=i)).astimezone(zone) for i in range(hours)]
    hour_slots = Counter(s.hour for s in slots)  # how many times each hour of day occurs
    day_slots = Counter(s.weekday() for s in slots)
    seen_hour = Counter(t.opened_at.astimezone(zone).hour for t in plan.tickets)
    seen_weekday = Counter(t.opened_at.astimezone(zone).weekday() for t in plan.tickets)
    for hour, rate in answers.arrival_rate_by_hour.items():
        assert _within_poisson(seen_hour[hour], rate * hour_slots[hour]), hour
        realised = answers.extra["arrivals_by_hour_realised"][hour]
        assert realised * hour_slots[hour] == pytest.approx(seen_hour[hour], abs=0.1)
    for weekday, per_day in answers.arrival_rate_by_weekday.items():
        days = day_slots[weekday] / 24
        assert _within_poisson(seen_weekday[weekday], per_day * days), weekday
        realised = answers.extra["arrivals_by_weekday_realised"][weekday]
        assert realised * days == pytest.approx(seen_weekday[weekday], abs=0.1)


def test_the_true_rates_follow_the_scenario_profiles(plan: Plan, shop: Scenario) -> None:
    rates = plan.answers.arrival_rate_by_hour
    hourly = shop.arrivals.hourly
    for hour in range(24):
        # every hour of the day meets the same days, so only the hourly profile differs
        assert rates[hour] / rates[10] == pytest.approx(hourly[hour] / hourly[10], rel=0.03)
    assert sum(rates.values()) * (plan.end - plan.start).days == pytest.approx(
        shop.arrivals.expected_tickets, rel=0.01
    )
    weekly = plan.answers.arrival_rate_by_weekday
    assert max(weekly, key=weekly.__getitem__) == 0  # Mondays are the busiest
    assert len(plan.tickets) == plan.answers.tickets
    assert _within_poisson(len(plan.tickets), shop.arrivals.expected_tickets)


def _first_session(ticket: PlanTicket) -> tuple[str, float] | None:
    """(agent, minutes) from the first Assign to the agent's first note or reply."""
    start = None
    for step in ticket.steps:
        if isinstance(step, Assign) and start is None:
            start = step
        elif start is not None and (isinstance(step, Note) or getattr(step, "by", "") == "agent"):
            return start.agent, (step.at - start.at).total_seconds() / 60
    return None


def test_handling_minutes_by_topic_are_recovered_from_the_steps(plan: Plan, shop: Scenario) -> None:
    trainee = plan.answers.training_need
    minutes: dict[str, list[float]] = defaultdict(list)
    for ticket in plan.tickets:
        session = _first_session(ticket)
        if session is None or (session[0] == trainee["key"] and ticket.topic == trainee["topic"]):
            continue
        minutes[ticket.topic].append(session[1])
    for topic in shop.topics:
        values = minutes[topic.name]
        mean = sum(values) / len(values)
        tolerance = 4 * topic.handling_spread / math.sqrt(len(values))
        assert mean / topic.handling_minutes == pytest.approx(1, abs=tolerance), topic.name
        realised = plan.answers.extra["first_session_minutes_realised"][topic.name]
        assert mean == pytest.approx(realised, abs=0.05)
        # per ticket, later sessions (after answers, waits and reopens) add to the first
        assert plan.answers.handling_minutes_by_topic[topic.name] > realised


def _pending_hours_by_team(plan: Plan) -> dict[str, list[float]]:
    hours: dict[str, list[float]] = defaultdict(list)
    for ticket in plan.tickets:
        team, since = None, None
        for step in ticket.steps:
            if isinstance(step, Assign):
                team = step.team
            if since is not None and (
                (isinstance(step, Reply) and step.by == "customer") or isinstance(step, Status)
            ):
                hours[str(team)].append((step.at - since).total_seconds() / 3600)
                since = None
            if isinstance(step, Status) and step.status == "pending":
                since = step.at
    return hours


def test_the_planted_bottleneck_shows_in_the_pending_times(plan: Plan) -> None:
    truth = plan.answers.bottleneck
    hours = _pending_hours_by_team(plan)
    mean = {team: sum(v) / len(v) for team, v in hours.items()}
    team = truth["team"]
    assert team == "Billing"
    others = [h for t, v in hours.items() if t != team for h in v]
    assert mean[team] > 2 * (sum(others) / len(others))
    assert max(mean, key=mean.__getitem__) == team
    assert mean[team] == pytest.approx(truth["mean_hours"], rel=0.02)


def _scores(plan: Plan, kind: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for ticket in plan.tickets:
        for step in ticket.steps:
            if isinstance(step, SurveyAnswer) and step.kind == kind:
                out[ticket.topic].append(step.score)
    return out


def test_the_detractor_topic_has_the_lowest_scores_and_gets_recoveries(plan: Plan) -> None:
    topic = plan.answers.detractor_topic["topic"]
    for kind in ("nps", "csat"):
        scores = _scores(plan, kind)
        means = {t: sum(v) / len(v) for t, v in scores.items() if len(v) >= 20}
        assert min(means, key=means.__getitem__) == topic, kind
        rest = [s for t, v in scores.items() if t != topic for s in v]
        assert means[topic] < sum(rest) / len(rest) - (2 if kind == "nps" else 0.8)
    recoveries = [
        s for t in plan.tickets for s in t.steps if isinstance(s, FollowUp) and s.kind == "recovery"
    ]
    assert recoveries and all(r.reason.split()[0] in ("NPS", "CSAT") for r in recoveries)


def test_the_emerging_issue_spikes_in_its_last_days(plan: Plan) -> None:
    truth = plan.answers.emerging_issue
    start = (
        datetime.fromisoformat(str(truth["from"]))
        if isinstance(truth["from"], str)
        else truth["from"]
    )
    topic = truth["topic"]
    before = sum(1 for t in plan.tickets if t.topic == topic and t.opened_at < start)
    during = sum(1 for t in plan.tickets if t.topic == topic and t.opened_at >= start)
    assert truth["new"] and before == 0  # a new issue: not there before
    assert _within_poisson(during, truth["expected_per_day_during"] * truth["days"])
    assert truth["realised_per_day_during"] == pytest.approx(during / truth["days"], abs=0.01)


def test_an_existing_topic_that_emerges_is_several_times_its_usual_rate() -> None:
    data = tomllib.loads(default_scenario_path().read_text("utf-8"))
    data["business"]["months"] = 2
    data["arrivals"]["expected_tickets"] = 4000
    data["planted"]["emerging"].update(days=10, new=False, multiplier=6.0)
    result = generate(parse_scenario(data), seed=2, end=END)
    truth = result.answers.emerging_issue
    start = truth["from"]
    assert isinstance(start, datetime)
    before_days = (start - result.start).total_seconds() / 86400
    before = sum(1 for t in result.tickets if t.topic == "checkout" and t.opened_at < start)
    during = sum(1 for t in result.tickets if t.topic == "checkout" and t.opened_at >= start)
    assert _within_poisson(before, truth["expected_per_day_before"] * before_days)
    assert _within_poisson(during, truth["expected_per_day_during"] * 10)
    assert (during / 10) / (before / before_days) > 3  # planted 6x; 3x is far outside chance


def test_the_answers_are_json(plan: Plan) -> None:
    data = json.loads(json.dumps(plan.answers.to_json(), allow_nan=False))
    assert data["bottleneck"]["team"] == "Billing"
    assert data["arrival_rate_by_hour"]["10"] > data["arrival_rate_by_hour"]["3"]


def test_the_training_need_agent_is_slower_reopens_more_and_scores_lower(plan: Plan) -> None:
    truth = plan.answers.training_need
    key, topic = truth["key"], truth["topic"]
    mine: list[float] = []
    theirs: list[float] = []
    reopened: dict[bool, list[bool]] = {True: [], False: []}
    scores: dict[bool, list[int]] = {True: [], False: []}
    for ticket in plan.tickets:
        session = _first_session(ticket)
        if ticket.topic != topic or session is None:
            continue
        is_trainee = session[0] == key
        (mine if is_trainee else theirs).append(session[1])
        solved = [s for s in ticket.steps if isinstance(s, Status) and s.status == "solved"]
        if solved:
            reopened[is_trainee].append(
                any(
                    isinstance(s, Reply) and s.by == "customer" and s.at > solved[0].at
                    for s in ticket.steps
                )
            )
        scores[is_trainee] += [
            s.score for s in ticket.steps if isinstance(s, SurveyAnswer) and s.kind == "nps"
        ]
    assert len(mine) >= 100
    assert (sum(mine) / len(mine)) / (sum(theirs) / len(theirs)) > 1.5
    rate = {k: sum(v) / len(v) for k, v in reopened.items()}
    assert rate[True] > rate[False] + 0.05
    assert sum(scores[True]) / len(scores[True]) < sum(scores[False]) / len(scores[False]) - 1


def test_the_wording_varies(plan: Plan) -> None:
    subjects: dict[str, set[str]] = defaultdict(set)
    for ticket in plan.tickets:
        subjects[ticket.topic].add(ticket.subject)
    assert all(len(s) >= 30 for s in subjects.values()), {k: len(v) for k, v in subjects.items()}
    bodies = Counter(t.body for t in plan.tickets)
    assert bodies.most_common(1)[0][1] <= 3
    replies = Counter(
        s.body for t in plan.tickets for s in t.steps if isinstance(s, Reply) and s.by == "agent"
    )
    assert len(replies) > 0.5 * sum(replies.values())
    lower = sum(1 for t in plan.tickets if t.body == t.body.lower())
    assert 0 < lower < 0.15 * len(plan.tickets)  # some customers write in lowercase


def test_survey_comments_match_the_score(plan: Plan) -> None:
    unhappy = {"Took far too long.", "Very disappointed.", "Still not sorted properly."}
    happy = {"Great help.", "Sorted in no time.", "Quick and friendly, thanks!"}
    for ticket in plan.tickets:
        for step in ticket.steps:
            if isinstance(step, SurveyAnswer) and step.kind == "nps":
                assert not (step.score >= 9 and step.comment in unhappy)
                assert not (step.score <= 6 and step.comment in happy)


def test_the_demo_people_are_in_the_plan(plan: Plan) -> None:
    agents = {a.email: a for a in plan.agents}
    assert agents["ana@demo.servicecycle.test"].team == "Support"
    assert agents["ben@demo.servicecycle.test"].team == "Billing"
    assert "admin@demo.servicecycle.test" not in agents
    assert {t.name for t in plan.teams} >= {"Support", "Billing"}


def _zone(plan: Plan) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(plan.time_zone)


def test_agents_take_tickets_only_on_their_shifts_and_never_when_absent(plan: Plan) -> None:
    zone = _zone(plan)
    agents = {a.key: a for a in plan.agents}
    holidays = set(plan.answers.extra["holidays"])
    taken: Counter[str] = Counter()
    for ticket in plan.tickets:
        for step in ticket.steps:
            if isinstance(step, Assign):
                agent, local = agents[step.agent], step.at.astimezone(zone)
                assert agent.shift[0] <= local.hour < agent.shift[1], (agent.key, local)
                assert local.weekday() in agent.workdays and local.date() not in agent.absences
                assert local.date() not in holidays
                taken[agent.key] += 1
    assert all(len(a.absences) > 0 for a in plan.agents)
    assert set(taken) == set(agents)  # everyone works
    # a queue forms overnight: the first morning pickups are older than the night's tickets
    waits = [
        (step.at - t.opened_at).total_seconds() / 3600
        for t in plan.tickets
        for step in t.steps[:1]
        if isinstance(step, Assign)
    ]
    assert max(waits) > 8 and sorted(waits)[len(waits) // 2] < 2


def test_a_bare_scenario_without_plants_surveys_or_holidays_runs() -> None:
    data = tomllib.loads(default_scenario_path().read_text("utf-8"))
    data["business"].update(months=1, country=None, time_zone="Asia/Kolkata")
    del data["business"]["country"]
    data["arrivals"].update(expected_tickets=800, trend=-0.5)
    data["arrivals"]["bursts"] = [{"start": date(2001, 1, 1), "days": 3, "multiplier": 5.0}]
    for key in ("planted", "surveys", "policies"):
        del data[key]
    result = generate(parse_scenario(data), seed=5, end=END)
    answers = result.answers
    assert answers.bottleneck == answers.detractor_topic == {}
    assert answers.emerging_issue == answers.training_need == {}
    assert result.surveys == result.policies == ()
    assert not any(isinstance(s, SurveyAnswer) for t in result.tickets for s in t.steps)
    assert _within_poisson(len(result.tickets), 800)
    # a shrinking business: the first week busier than the last
    first = sum(1 for t in result.tickets if t.opened_at < result.start + timedelta(days=7))
    last = sum(1 for t in result.tickets if t.opened_at >= result.end - timedelta(days=7))
    assert first > last


def test_follow_ups_that_slip_are_done_late_and_only_recent_ones_are_left_open(
    plan: Plan,
) -> None:
    """Most follow-ups are done by their due time; some slip by days; none is left open for
    months (a desk whose list reached back half a year would not be believable)."""
    from servicecycle.simulation.desk import LATE_DAYS

    follow_ups = [s for t in plan.tickets for s in t.steps if isinstance(s, FollowUp)]
    done = [f for f in follow_ups if f.done_at is not None]
    late = [f for f in done if f.done_at is not None and f.done_at > f.due + timedelta(days=1)]
    still_open = [f for f in follow_ups if f.done_at is None]
    assert 0.05 * len(done) < len(late) < 0.3 * len(done)
    assert all(f.outcome == "no_answer" for f in late if f.kind == "recovery")
    assert still_open and all(f.due >= plan.end - timedelta(days=LATE_DAYS) for f in still_open), (
        min(f.due for f in still_open)
    )
