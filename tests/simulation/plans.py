"""A small hand-made plan: two agents, three customers, four tickets whose stories cover every
kind of step (assignment, replies both ways, a note, pending and solved, a reopen, a survey
answer, a follow-up done later), across a weekend and an SLA breach."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from servicecycle.simulation.plan import (
    Answers,
    Assign,
    FollowUp,
    Note,
    Plan,
    PlanAgent,
    PlanCompany,
    PlanCustomer,
    PlanPolicy,
    PlanSurvey,
    PlanTeam,
    PlanTicket,
    Reply,
    Status,
    SurveyAnswer,
)

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
WEEKDAYS = {day: (9, 17) for day in range(5)}


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return START + timedelta(days=day, hours=hour, minutes=minute)


def small_plan() -> Plan:
    t1 = PlanTicket(
        key="T1",
        opened_at=at(0, 9, 5),
        customer="c1",
        channel="email",
        topic="delivery",
        subject="Parcel marked delivered but not here",
        body="Order 1001 says delivered, nothing arrived.",
        tags=("delivery",),
        steps=(
            Assign(at(0, 9, 30), "ana"),
            Note(at(0, 9, 40), "ana", "Courier scan shows the wrong street."),
            Reply(at(0, 10, 0), "ana", "agent", "I have asked the courier to check."),
            Status(at(0, 10, 1), "pending", "ana"),
            Reply(at(0, 15, 0), "c1", "customer", "Any news?"),
            Reply(at(1, 9, 30), "ana", "agent", "It was at number 12; it is on its way."),
            Status(at(1, 9, 31), "solved", "ana"),
            FollowUp(
                at(1, 9, 32),
                "ana",
                due=at(3, 9, 0),
                reason="Check the parcel arrived",
                done_at=at(3, 10, 0),
                outcome="resolved",
                kind="check_in",
            ),
            SurveyAnswer(at(2, 11, 0), "csat", 5, "Quick and kind"),
        ),
    )
    t2 = PlanTicket(
        key="T2",
        opened_at=at(0, 11, 0),
        customer="c2",
        channel="web",
        topic="billing",
        subject="Charged twice",
        body="Two charges of 59.90 on my card.",
        priority="high",
        steps=(
            # first reply after the 60-minute target: the sweep breaches it first
            Assign(at(0, 13, 0), "ben"),
            Reply(at(0, 13, 30), "ben", "agent", "I have refunded the duplicate."),
            Status(at(0, 13, 31), "solved", "ben"),
            SurveyAnswer(at(1, 16, 0), "csat", 2, "Took too long"),
            FollowUp(  # the recovery the detractor's answer opened, taken on by ben
                at(1, 16, 30),
                "ben",
                due=at(2, 16, 0),
                reason="",
                done_at=at(2, 10, 0),
                outcome="resolved",
                kind="recovery",
                note="Called; refunded the shipping too.",
            ),
        ),
    )
    t3 = PlanTicket(
        key="T3",
        opened_at=at(4, 16, 30),  # a Friday afternoon: the clock runs over the weekend
        customer="c1",
        channel="chat",
        topic="account",
        subject="Cannot sign in",
        body="The site says my account is locked.",
        steps=(
            Assign(at(7, 9, 10), "ben"),
            Reply(at(7, 9, 20), "ben", "agent", "Unlocked; please try again."),
            Status(at(7, 9, 21), "solved", "ben"),
            Reply(at(7, 12, 0), "c1", "customer", "Still locked."),  # reopens
            Reply(at(7, 12, 30), "ben", "agent", "Cleared the second lock too."),
            Status(at(7, 12, 31), "solved", "ben"),
            Status(at(11, 12, 31), "closed", None),
        ),
    )
    t4 = PlanTicket(
        key="T4",
        opened_at=at(8, 10, 0),
        customer="c3",
        channel="email",
        topic="delivery",
        subject="Where is my order?",
        body="Ordered a week ago.",
        steps=(Assign(at(8, 10, 5), "ana"),),  # still open at the end
    )
    answers = Answers(
        seed=0,
        scenario="hand-made",
        start=START,
        end=at(14, 0),
        tickets=4,
        arrival_rate_by_hour={},
        arrival_rate_by_weekday={},
        handling_minutes_by_topic={},
        bottleneck={},
        detractor_topic={},
        emerging_issue={},
        training_need={},
    )
    return Plan(
        name="Test shop",
        time_zone="Europe/London",
        start=START,
        end=at(14, 0),
        teams=(PlanTeam("Support", "Orders"), PlanTeam("Billing", "Money")),
        agents=(
            PlanAgent(
                "ana",
                "Ana Lima",
                "ana@shop.test",
                "Support",
                {"delivery": 4, "account": 2},
                (9, 17),
                (0, 1, 2, 3, 4),
            ),
            PlanAgent(
                "ben",
                "Ben Okafor",
                "ben@shop.test",
                "Billing",
                {"billing": 5},
                (9, 17),
                (0, 1, 2, 3, 4),
                absences=(date(2026, 3, 13),),
            ),
        ),
        companies=(PlanCompany("acme", "Acme Ltd", "acme.test"),),
        customers=(
            PlanCustomer("c1", "Priya Raman", "priya@example.com", "standard"),
            PlanCustomer("c2", "Tom Becker", "tom@acme.test", "vip", company="acme"),
            PlanCustomer("c3", "Lucía Fernández", "lucia@example.es", "standard"),
            PlanCustomer(
                "c4", "Quiet Customer", "quiet@example.com", "standard", since=at(3, 8, 0)
            ),
        ),
        policies=(
            PlanPolicy("VIP", ("vip",), (), 60, 480, WEEKDAYS, "GB", position=0),
            PlanPolicy("Everyone", (), (), 240, 1440, WEEKDAYS, "GB", position=1),
        ),
        surveys=(PlanSurvey("csat", "After each ticket", 24 * 60, 0),),
        tickets=(t1, t2, t3, t4),
        answers=answers,
    )
