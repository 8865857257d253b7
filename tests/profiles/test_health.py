"""The health score and segment, with hand-computed values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from servicecycle.profiles.health import Answer, Facts, health, segment_of, wait_part

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def test_nothing_known_has_no_score_and_no_segment() -> None:
    found = health(Facts(now=NOW))
    assert (found.score, found.parts, found.segment) == (None, [], "unknown")


def test_a_happy_customer_is_a_promoter() -> None:
    # NPS 9 -> 40*9/10 = 36; none open 20; no reopen 20; median wait 2 h -> 20
    found = health(Facts(now=NOW, latest_nps=Answer("nps", 9, ago(10)), waits=[1, 2, 3], tickets=3))
    assert [(p.name, p.value, p.points, p.max_points) for p in found.parts] == [
        ("Feedback", "NPS 9", 36, 40),
        ("Open tickets", "0 open", 20, 20),
        ("Reopens", "0 reopened", 20, 20),
        ("Waiting", "2.0 h", 20, 20),
    ]
    assert (found.score, found.segment) == (96, "promoter")


def test_a_detractor_with_a_ticket_open_is_at_risk() -> None:
    # NPS 3 -> 12; 1 open -> 15; no reopen 20; wait 30 h -> 5: 52
    found = health(
        Facts(
            now=NOW,
            latest_nps=Answer("nps", 3, ago(1)),
            open_tickets=1,
            waits=[30],
            tickets=1,
        )
    )
    assert (found.score, found.segment) == (52, "at_risk")


def test_a_detractor_without_open_tickets_stays_a_detractor() -> None:
    # NPS 6 -> 24; 20; 20; no wait 20: 84
    found = health(Facts(now=NOW, latest_nps=Answer("nps", 6, ago(1))))
    assert (found.score, found.segment) == (84, "detractor")


def test_a_low_score_is_at_risk_without_any_answer() -> None:
    # no answer 20; 4 open 0; 2 reopens 0; 100 h 0: 20
    found = health(Facts(now=NOW, open_tickets=4, reopens=2, waits=[100], tickets=5))
    assert [p.points for p in found.parts] == [20, 0, 0, 0]
    assert (found.score, found.segment) == (20, "at_risk")
    assert found.parts[0].value == "no recent answer"
    assert found.parts[3].value == "4.2 days"


def test_the_newer_answer_counts_and_old_answers_do_not() -> None:
    newer_csat = Facts(
        now=NOW,
        latest_nps=Answer("nps", 2, ago(30)),
        latest_csat=Answer("csat", 5, ago(3)),
        tickets=1,
    )
    found = health(newer_csat)
    assert (found.parts[0].value, found.parts[0].points, found.segment) == (
        "CSAT 5",
        40,
        "promoter",
    )
    # CSAT 3 -> 40*2/4 = 20: passive
    assert health(Facts(now=NOW, latest_csat=Answer("csat", 3, ago(3)))).segment == "passive"
    # 200 days old: outside the 180-day window, neutral and unknown
    old = health(Facts(now=NOW, latest_nps=Answer("nps", 10, ago(200)), tickets=1))
    assert (old.parts[0].points, old.score, old.segment) == (20, 80, "unknown")
    # a tie goes to NPS
    tie = health(
        Facts(now=NOW, latest_nps=Answer("nps", 8, ago(1)), latest_csat=Answer("csat", 1, ago(1)))
    )
    assert (tie.parts[0].value, tie.segment) == ("NPS 8", "passive")


def test_reopens_and_open_tickets_take_points_off() -> None:
    one = health(Facts(now=NOW, open_tickets=2, reopens=1, tickets=2))
    # 20 + (20-10) + 10 + 20
    assert [p.points for p in one.parts] == [20, 10, 10, 20]
    assert one.score == 60


def test_the_wait_is_the_median_of_the_last_ten() -> None:
    assert wait_part([2, 6]).points == 20  # median 4 h
    assert wait_part([2, 6, 30, 40]).points == 12  # median 18 h
    assert wait_part([50, 60, 70]).points == 5  # 60 h
    # only the newest ten count: ten quick ones, then slow ones
    assert wait_part([1] * 10 + [500] * 20).points == 20
    assert "last 10 tickets" in wait_part([1] * 12).explanation


def test_segment_rules_at_the_edges() -> None:
    assert segment_of(40, None, 0) == "unknown"
    assert segment_of(39, Answer("nps", 10, NOW), 0) == "at_risk"
    assert segment_of(90, Answer("csat", 2, NOW), 0) == "detractor"
    assert segment_of(90, Answer("csat", 2, NOW), 1) == "at_risk"
    assert segment_of(90, Answer("nps", 7, NOW), 3) == "passive"
