"""A generated business replayed into a database tells its planted truths back: from the
tables and the event log alone, the arrival rates by hour and weekday, the handling time of
each topic and the planted bottleneck come out as the answers file says.

Two kinds of check. *Exact* ones (the replay keeps every time the plan decided): the
arrivals counted in the database are the answers' realised arrivals, the first working
session read from the event log is the realised session time, and the pending hours of each
team are the realised ones (to the second the plan rounds its times to). *Statistical* ones
(the data is a fair draw of the scenario): counts are Poisson, so a realised count may be off
its expectation by up to 4·√expected + 1; a mean of n lognormal minutes by 4·cv/√n.
"""

from __future__ import annotations

import asyncio
import math
import tomllib
from collections import defaultdict
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from servicecycle.kit.secrets import Keyring
from servicecycle.simulation.driver import StaffUser, replay
from servicecycle.simulation.generate import generate
from servicecycle.simulation.plan import Plan
from servicecycle.simulation.scenario import Scenario, default_scenario_path, parse_scenario
from servicecycle.surveys.service import Mailer
from tests.simulation.test_driver import rows

END = date(2026, 10, 31)


def _scenario() -> Scenario:
    """The shop for a month at about 200 tickets (its teams, topics and planted truths)."""
    data = tomllib.loads(default_scenario_path().read_text("utf-8"))
    data["business"]["months"] = 1
    data["arrivals"]["expected_tickets"] = 200
    data["customers"]["count"] = 120
    data["customers"]["companies"] = 5
    return parse_scenario(data)


@pytest.fixture(scope="module")
def world(pg_server: Any) -> tuple[Scenario, Plan, dict[str, Any], str]:
    scenario = _scenario()
    plan = generate(scenario, seed=11, end=END)
    url = pg_server.create_database()
    mailer = Mailer(keyring=Keyring(b"r" * 32), base_url="http://desk.test", sender="h@x.test")
    asyncio.run(replay(url, plan, staff=(StaffUser("a@x.test", "A", "admin"),), mailer=mailer))
    return scenario, plan, plan.answers.to_json(), url


def _slots(plan: Plan) -> tuple[dict[int, int], dict[int, int]]:
    """How many local hours of each hour of day, and of each weekday, the run covers."""
    zone = ZoneInfo(plan.time_zone)
    hours: dict[int, int] = defaultdict(int)
    weekdays: dict[int, int] = defaultdict(int)
    at = plan.start
    while at < plan.end:
        local = at.astimezone(zone)
        hours[local.hour] += 1
        weekdays[local.weekday()] += 1
        at += timedelta(hours=1)
    return hours, weekdays


def _poisson_close(observed: float, expected: float) -> bool:
    return abs(observed - expected) <= 4 * math.sqrt(expected) + 1


def test_arrival_rates_by_hour_and_weekday_come_back_from_the_tickets(
    world: tuple[Scenario, Plan, dict[str, Any], str],
) -> None:
    _, plan, answers, url = world
    zone = plan.time_zone
    by_hour = dict(
        rows(
            url,
            "SELECT extract(hour FROM created_at AT TIME ZONE %s)::int, count(*) FROM tickets "
            "GROUP BY 1",
            zone,
        )
    )
    by_weekday = dict(
        rows(
            url,
            "SELECT extract(isodow FROM created_at AT TIME ZONE %s)::int - 1, count(*) "
            "FROM tickets GROUP BY 1",
            zone,
        )
    )
    hours, weekdays = _slots(plan)
    assert sum(by_hour.values()) == answers["tickets"] == len(plan.tickets)
    for hour, slots in hours.items():
        seen = by_hour.get(hour, 0)
        # exactly the realised arrivals the answers file gives ...
        assert seen / slots == pytest.approx(
            answers["extra"]["arrivals_by_hour_realised"][str(hour)], abs=1e-3
        )
        # ... and a fair draw of the true rate
        assert _poisson_close(seen, answers["arrival_rate_by_hour"][str(hour)] * slots), hour
    for weekday, slots in weekdays.items():
        seen = by_weekday.get(weekday, 0)
        per_day = seen / (slots / 24)
        assert per_day == pytest.approx(
            answers["extra"]["arrivals_by_weekday_realised"][str(weekday)], abs=1e-3
        )
        expected = answers["arrival_rate_by_weekday"][str(weekday)] * slots / 24
        assert _poisson_close(seen, expected), weekday


def test_handling_time_by_topic_comes_back_from_the_event_log(
    world: tuple[Scenario, Plan, dict[str, Any], str],
) -> None:
    """The first working session of a ticket runs from its first assignment (the agent takes
    it) to the agent's first message, reply or note (the end of that session)."""
    scenario, _, answers, url = world
    trainee = answers["training_need"]["agent"]
    training_topic = answers["training_need"]["topic"]
    sessions = rows(
        url,
        """
        WITH taken AS (
            SELECT subject_id::bigint AS ticket_id, min(occurred_at) AS at FROM events
            WHERE kind = 'assigned' AND subject_type = 'ticket' GROUP BY 1
        ), first_agent AS (
            SELECT DISTINCT ON (ticket_id) ticket_id, created_at AS at, author_user_id
            FROM messages WHERE author_type = 'agent' ORDER BY ticket_id, created_at, id
        )
        SELECT t.type, u.email, extract(epoch FROM f.at - k.at) / 60
        FROM tickets t JOIN taken k ON k.ticket_id = t.id
        JOIN first_agent f ON f.ticket_id = t.id JOIN users u ON u.id = f.author_user_id
        """,
    )
    minutes: dict[str, list[float]] = defaultdict(list)
    for topic, email, session in sessions:
        if topic == training_topic and email == trainee:
            continue  # the trainee's slower sessions are the training truth, not the topic's
        minutes[topic].append(float(session))
    realised = answers["extra"]["first_session_minutes_realised"]
    spread = {t.name: t.handling_spread for t in scenario.topics}
    configured = answers["extra"]["first_session_minutes_by_topic"]
    checked = 0
    for topic, values in minutes.items():
        mean = sum(values) / len(values)
        # the plan's whole seconds are all that separates the database from the answers
        assert mean == pytest.approx(realised[topic], abs=0.05), topic
        tolerance = 4 * spread[topic] / math.sqrt(len(values))
        assert abs(mean / configured[topic] - 1) <= tolerance, topic
        checked += 1
    assert checked >= 6  # most topics had tickets in a month


def test_the_planted_bottleneck_shows_in_the_pending_time_of_its_teams_tickets(
    world: tuple[Scenario, Plan, dict[str, Any], str],
) -> None:
    """Pending periods from the event log: a change to pending, until the next change away
    from it; by the ticket's team. Only periods that ended count (as in the answers)."""
    _, _, answers, url = world
    periods = rows(
        url,
        """
        WITH changes AS (
            SELECT subject_id::bigint AS ticket_id, occurred_at, data->>'to' AS status,
                   lead(occurred_at) OVER w AS next_at
            FROM events WHERE kind = 'status.changed' AND subject_type = 'ticket'
            WINDOW w AS (PARTITION BY subject_id ORDER BY occurred_at, id)
        )
        SELECT team.name, extract(epoch FROM c.next_at - c.occurred_at) / 3600
        FROM changes c JOIN tickets t ON t.id = c.ticket_id JOIN teams team ON team.id = t.team_id
        WHERE c.status = 'pending' AND c.next_at IS NOT NULL
        """,
    )
    hours: dict[str, list[float]] = defaultdict(list)
    for team, length in periods:
        hours[team].append(float(length))
    truth = answers["bottleneck"]
    means = {team: sum(v) / len(v) for team, v in hours.items()}
    for team, mean in means.items():
        assert mean == pytest.approx(truth["mean_hours_by_team"][team], rel=0.02, abs=0.01)
    slowest = max(means, key=lambda team: means[team])
    assert slowest == truth["team"] == "Billing"
    others = [h for team, v in hours.items() if team != slowest for h in v]
    others_mean = sum(others) / len(others)
    assert means[slowest] == pytest.approx(truth["mean_hours"], rel=0.02)
    assert others_mean == pytest.approx(truth["others_mean_hours"], rel=0.02)
    # customers' own silences (up to the close-after time) dilute it, yet it stands out
    assert means[slowest] > 1.5 * others_mean
