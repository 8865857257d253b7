"""The driver replays a hand-made plan through the real services into a fresh database."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from servicecycle.db.engine import libpq_url
from servicecycle.kit import clock
from servicecycle.kit.secrets import Keyring
from servicecycle.simulation.driver import StaffUser, replay
from servicecycle.surveys.service import Mailer
from tests.simulation.plans import at, small_plan

MAILER = Mailer(keyring=Keyring(b"k" * 32), base_url="http://desk.test", sender="help@shop.test")
STAFF = (StaffUser("admin@shop.test", "Alex Admin", "admin"),)


def rows(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(url)) as conn:
        return conn.execute(sql, args).fetchall()  # type: ignore[arg-type]


def one(url: str, sql: str, *args: Any) -> Any:
    return rows(url, sql, *args)[0][0]


@pytest.fixture(scope="module")
def replayed(pg_server: Any) -> tuple[str, Any]:
    import asyncio

    url = pg_server.create_database()
    summary = asyncio.run(replay(url, small_plan(), staff=STAFF, mailer=MAILER))
    return url, summary


def test_tickets_and_messages_are_made_at_the_plans_times(replayed: tuple[str, Any]) -> None:
    url, summary = replayed
    tickets = {
        subject: (status, created, channel, kind)
        for subject, status, created, channel, kind in rows(
            url, "SELECT subject, status, created_at, channel, type FROM tickets"
        )
    }
    assert tickets == {
        "Parcel marked delivered but not here": ("solved", at(0, 9, 5), "email", "delivery"),
        "Charged twice": ("solved", at(0, 11), "web", "billing"),
        "Cannot sign in": ("closed", at(4, 16, 30), "chat", "account"),
        "Where is my order?": ("new", at(8, 10), "email", "delivery"),
    }
    thread = rows(
        url,
        "SELECT m.created_at, m.author_type, m.public, m.body_text FROM messages m "
        "JOIN tickets t ON t.id = m.ticket_id WHERE t.subject = %s ORDER BY m.id",
        "Parcel marked delivered but not here",
    )
    assert [(r[0], r[1], r[2]) for r in thread] == [
        (at(0, 9, 5), "customer", True),
        (at(0, 9, 40), "agent", False),
        (at(0, 10), "agent", True),
        (at(0, 15), "customer", True),
        (at(1, 9, 30), "agent", True),
    ]
    assert thread[4][3] == "It was at number 12; it is on its way."
    assert (summary.tickets, summary.messages, summary.notes) == (4, 11, 1)


def test_the_event_log_tells_each_story_in_time(replayed: tuple[str, Any]) -> None:
    url, _ = replayed
    story = rows(
        url,
        "SELECT e.kind, e.occurred_at, e.actor_type, e.data->>'to' FROM events e "
        "JOIN tickets t ON e.subject_type = 'ticket' AND e.subject_id = t.id::text "
        "WHERE t.subject = 'Cannot sign in' AND e.kind IN ('status.changed', 'assigned') "
        "ORDER BY e.id",
    )
    assert story == [
        ("assigned", at(7, 9, 10), "user", None),
        ("status.changed", at(7, 9, 20), "user", "open"),
        ("status.changed", at(7, 9, 21), "user", "solved"),
        ("status.changed", at(7, 12), "customer", "open"),  # the customer's reply reopens
        ("status.changed", at(7, 12, 31), "user", "solved"),
        ("status.changed", at(11, 12, 31), "system", "closed"),
    ]
    quiet = one(
        url,
        "SELECT e.occurred_at FROM events e JOIN customer_identities i "
        "ON e.subject_id = i.customer_id::text WHERE e.kind = 'customer.created' "
        "AND i.value = 'quiet@example.com'",
    )
    assert quiet == at(3, 8)


def test_sla_clocks_follow_the_plan_and_the_sweep_breaches_a_late_first_reply(
    replayed: tuple[str, Any],
) -> None:
    url, summary = replayed
    clocks = {
        (subject, metric): (state, breached, stopped)
        for subject, metric, state, breached, stopped in rows(
            url,
            "SELECT t.subject, c.metric, c.state, c.breached_at, c.stopped_at FROM sla_clocks c "
            "JOIN tickets t ON t.id = c.ticket_id",
        )
    }
    # the VIP policy: first reply within 60 business minutes of 11:00 on Monday
    assert clocks[("Charged twice", "first_reply")] == (
        "breached",
        at(0, 12),
        at(0, 13, 30),
    )
    assert clocks[("Parcel marked delivered but not here", "first_reply")] == (
        "met",
        None,
        at(0, 10),
    )
    # opened on Friday 16:30, answered on Monday 9:20: 40 business minutes of 240
    assert clocks[("Cannot sign in", "first_reply")][0] == "met"
    breach = rows(url, "SELECT occurred_at FROM events WHERE kind = 'sla.breached'")
    assert (at(0, 12),) in breach and summary.breached >= 1


def test_survey_answers_answer_the_invitations_the_rule_sent(replayed: tuple[str, Any]) -> None:
    url, summary = replayed
    answers = rows(
        url,
        "SELECT t.subject, r.score, r.comment, r.answered_at, r.source, i.sent_at "
        "FROM survey_responses r JOIN tickets t ON t.id = r.ticket_id "
        "JOIN survey_invitations i ON i.id = r.invitation_id ORDER BY r.answered_at",
    )
    assert answers == [
        # solved 13:31 Monday, sent by the 15-minute sender after the rule's 24 hours
        ("Charged twice", 2, "Took too long", at(1, 16), "email", at(1, 13, 45)),
        (
            "Parcel marked delivered but not here",
            5,
            "Quick and kind",
            at(2, 11),
            "email",
            at(2, 9, 45),
        ),
    ]
    assert summary.survey_answers == 2 and summary.survey_answers_unsent == 0
    # the detractor's answer opened a recovery, as a real answer does
    assert one(url, "SELECT count(*) FROM follow_ups WHERE kind = 'recovery'") == 1


def test_follow_ups_are_made_and_done_when_the_plan_says(replayed: tuple[str, Any]) -> None:
    url, _ = replayed
    done = rows(
        url,
        "SELECT reason, created_at, due_at, state, outcome, done_at FROM follow_ups "
        "WHERE kind = 'check_in'",
    )
    assert done == [
        ("Check the parcel arrived", at(1, 9, 32), at(3, 9), "done", "resolved", at(3, 10))
    ]
    # the recovery the detractor's answer opened is the one completed: no second one
    recovery = rows(
        url,
        "SELECT created_at, state, outcome, outcome_note, done_at FROM follow_ups "
        "WHERE kind = 'recovery'",
    )
    assert recovery == [
        (at(1, 16), "done", "resolved", "Called; refunded the shipping too.", at(2, 10))
    ]


def test_historic_mail_is_settled_as_sent_not_left_queued(
    replayed: tuple[str, Any],
) -> None:
    url, summary = replayed
    mails = dict(rows(url, "SELECT status, count(*) FROM outbound_mails GROUP BY status"))
    # acknowledgements (email, web), replies on email tickets, and two survey invitations
    assert mails == {"sent": summary.mails_sent} and summary.mails_sent >= 7
    assert one(url, "SELECT count(*) FROM events WHERE kind = 'mail.sent'") == summary.mails_sent
    late = one(
        url,
        "SELECT max(sent_at - created_at) FROM outbound_mails",
    )
    assert late <= timedelta(days=1)  # the outbox runs at each simulated midnight


def test_the_clock_is_the_wall_clock_again_after_a_replay(replayed: tuple[str, Any]) -> None:
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)


def digest(url: str) -> str:
    """Everything the plan decides, without ids and random Message-IDs."""
    parts = [
        rows(
            url,
            "SELECT subject, status, priority, channel, type, created_at, updated_at, "
            "solved_at, closed_at, first_reply_at FROM tickets ORDER BY created_at, subject",
        ),
        rows(
            url,
            "SELECT created_at, author_type, public, body_text FROM messages "
            "ORDER BY created_at, body_text",
        ),
        rows(
            url,
            "SELECT kind, subject_type, actor_type, occurred_at FROM events "
            "ORDER BY occurred_at, kind, subject_type",
        ),
        rows(
            url,
            "SELECT metric, state, started_at, due_at, breached_at, stopped_at, "
            "round(used_minutes::numeric, 3) FROM sla_clocks ORDER BY started_at, metric",
        ),
        rows(url, "SELECT score, comment, answered_at FROM survey_responses ORDER BY answered_at"),
        rows(url, "SELECT reason, kind, state, due_at, done_at FROM follow_ups ORDER BY due_at"),
        rows(
            url,
            "SELECT kind, to_address, subject, status, created_at, sent_at "
            "FROM outbound_mails ORDER BY created_at, kind, subject",
        ),
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def test_the_same_plan_replayed_twice_gives_the_same_data(
    replayed: tuple[str, Any], fresh_database: Callable[..., str]
) -> None:
    import asyncio

    url, _ = replayed
    again = fresh_database()
    asyncio.run(replay(again, small_plan(), staff=STAFF, mailer=MAILER))
    assert digest(again) == digest(url)


def test_the_replay_takes_the_planners_statistics_as_the_tables_grow(
    fresh_database: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tables start empty; ANALYZE runs as the tickets double (from ANALYZE_FIRST), not
    left to autovacuum, whose first visit to a new database can come a minute late."""
    import asyncio
    import time

    from servicecycle.simulation import driver

    monkeypatch.setattr(driver, "ANALYZE_FIRST", 1)
    url = fresh_database()
    asyncio.run(replay(url, small_plan(), staff=STAFF, mailer=MAILER))
    sql = "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'tickets'"
    deadline = time.monotonic() + 10  # the replay's backend reports its statistics on exit
    while one(url, sql) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert one(url, sql) >= 1  # ANALYZE by hand; autovacuum's count is autoanalyze_count


def test_a_refused_step_is_named_with_the_desks_own_words(
    fresh_database: Callable[..., str],
) -> None:
    """The step's refusal carries the service's message as it was, even when the batch's
    naming of the item holds ": " (a subject "Re: ...")."""
    import asyncio
    from dataclasses import replace

    from servicecycle.simulation.driver import Refused

    plan = small_plan()
    first = replace(plan.tickets[0], subject="Re: parcel lost", priority="bogus")  # type: ignore[arg-type]
    plan = replace(plan, tickets=(first, *plan.tickets[1:]))
    with pytest.raises(Refused) as refused:
        asyncio.run(replay(fresh_database(), plan, staff=STAFF, mailer=MAILER))
    assert str(refused.value) == "T1 step -1 (opening): Invalid priority"
