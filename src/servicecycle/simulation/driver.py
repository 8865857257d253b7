"""Replay a :class:`~servicecycle.simulation.plan.Plan` through the real services.

Every row, event, SLA clock and survey answer is made by the services a user's action goes
through, at the moment the plan says, in their batched form (``tickets.bulk``): the plan is
replayed day by day, and a day's items (a ticket's opening or one of its steps) go in
waves, each ticket's next item in the next wave, one call of a batched service per kind of
item and wave, each item at its own moment. Steps of all tickets are merged in time order
(a heap keyed by time, then the plan's order, so the same plan replays the same way). The
periodic jobs run as if at their times: the SLA sweep as if every minute (before each day
and, for a wave's tickets, as of each item's moment: warnings and breaches keep their own
time), the survey sender at each planned run (a solve plus a rule's delay; the items that
depend on a run wait for it), and the mail outbox at each simulated midnight (the day's
mail is settled as sent to no one, ``outbox.settle_history``: history is not mailed, and no
SMTP is spoken for it).

Speed: one session for the whole replay, one transaction per ``commit_every`` steps or per
simulated day (whichever comes first), on connections that commit without waiting for the
disk (``synchronous_commit = off``, this load's own engine only; the last commit waits), and
ANALYZE each time the tickets double, as after any bulk load. The driver keeps id maps of
everything it made and drops tickets from memory once their last step is done. A step the
desk refuses (a plan that breaks the desk's rules) stops the replay with the step named: the
generator's tests keep plans within the rules.
"""

from __future__ import annotations

import gc
import heapq
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from servicecycle.auth import service as auth
from servicecycle.auth.models import Team, User
from servicecycle.channels.email import outbox
from servicecycle.customers import service as customers
from servicecycle.customers.models import Customer
from servicecycle.db.engine import make_sessionmaker, sqlalchemy_url
from servicecycle.events.service import Actor
from servicecycle.followups import service as followups
from servicecycle.followups.models import OUTCOMES
from servicecycle.followups.models import FollowUp as FollowUpRow
from servicecycle.kit import clock
from servicecycle.kit.errors import ServiceError
from servicecycle.kit.secrets import Keyring
from servicecycle.simulation.plan import (
    Assign,
    FollowUp,
    Note,
    Plan,
    PlanCustomer,
    PlanTicket,
    Reply,
    Status,
    SurveyAnswer,
)
from servicecycle.sla import batch as sla_batch
from servicecycle.sla import service as sla
from servicecycle.surveys import service as surveys
from servicecycle.surveys.models import SurveyInvitation, SurveyResponse
from servicecycle.tickets import bulk
from servicecycle.tickets import service as tickets
from servicecycle.tickets.models import Ticket

SIMULATION = Actor.system("simulation")
ANALYZE_FIRST = 100  # tickets made before the first ANALYZE (then at each doubling)
COMMIT_EVERY = 5_000  # steps per transaction (and at least one commit per simulated day)
SWEEP_EVERY = timedelta(minutes=5)  # the SLA sweep's cadence (production: every minute)
# the replay's window (it never crosses midnight): its items go through the batched services
# in waves, the sweep runs at its start (and for a wave's tickets just before it)
WAVE_EVERY = timedelta(days=1)
SURVEYS_EVERY = timedelta(minutes=15)  # the survey sender's cadence (production: every minute)
SETUP_BEFORE = timedelta(days=1)  # the desk is set up this long before the plan starts
HISTORY_NOTE = "simulated history: not mailed"


@dataclass(frozen=True)
class StaffUser:
    """A user the plan does not name (an admin, an analyst), made at set-up time."""

    email: str
    name: str
    role: str


@dataclass
class Summary:
    """What a replay made, and how long it took (``mail_seconds``: of which settling the
    historic mail into the null sink)."""

    tickets: int = 0
    customers: int = 0
    users: int = 0
    messages: int = 0
    notes: int = 0
    status_changes: int = 0
    assignments: int = 0
    survey_answers: int = 0
    survey_answers_unsent: int = 0  # answers whose invitation was never sent (throttled, ...)
    surveys_sent: int = 0
    surveys_skipped: int = 0
    follow_ups: int = 0
    follow_ups_done: int = 0
    sweeps: int = 0
    waves: int = 0  # calls of the batched services' rounds (see ``_Replay.wave``)
    warned: int = 0
    breached: int = 0
    mails_sent: int = 0
    mails_failed: int = 0
    steps: int = 0
    commits: int = 0
    seconds: float = 0.0
    mail_seconds: float = 0.0

    @property
    def records(self) -> int:
        """Rows a user would call records: people, tickets, messages, answers, follow-ups."""
        return (
            self.users
            + self.customers
            + self.tickets
            + self.messages
            + self.notes
            + self.survey_answers
            + self.follow_ups
        )


Progress = Callable[[int, int], None]  # (steps done, steps in all)


@dataclass(order=True, frozen=True)
class _Item:
    at: datetime
    rank: int  # see the RANKS below: at one moment, jobs run first
    index: int  # the plan's order (customer or ticket)
    step: int  # -1: the ticket opens; else its step


SEND_SURVEYS, CUSTOMER, STEP, FOLLOW_UP_DONE = range(4)  # the RANKS


class _Replay:
    """The state of one replay: id maps, open objects, when each job last ran."""

    def __init__(
        self,
        session: AsyncSession,
        factory: async_sessionmaker[AsyncSession],
        plan: Plan,
        *,
        mailer: surveys.Mailer,
        staff: Sequence[StaffUser],
        password: str | None,
        progress: Progress | None,
        commit_every: int,
        wave_every: timedelta,
    ) -> None:
        self.session, self.factory, self.plan = session, factory, plan
        self.mailer, self.staff = mailer, staff
        # every made user's: hashed once, not once per user (argon2 costs ~0.2 s each time)
        self.password = auth.hash_once(password) if password is not None else None
        self.progress, self.commit_every, self.wave_every = progress, commit_every, wave_every
        self.summary = Summary()
        self.users: dict[str, User] = {}  # agent key (and staff e-mail) -> user
        self.teams: dict[str, Team] = {}
        self.agent_team: dict[str, str] = {}
        self.companies: dict[str, int] = {}
        self.customers: dict[str, Customer] = {}
        self.plan_customers = {c.key: c for c in plan.customers}
        self.tickets: dict[int, Ticket] = {}  # plan index -> ticket, while steps remain
        self.follow_ups: dict[tuple[int, int], FollowUpRow] = {}
        self.survey_kinds: dict[int, str] = {}  # survey id -> kind
        self.sent: dict[tuple[int, str], tuple[int, int, datetime]] = {}  # -> invitation
        self.admin: Actor = SIMULATION
        self.in_batch = 0
        self.batch_day: datetime | None = None
        self.next_sweep = plan.start
        self.queue: list[_Item] = []
        self.planned_jobs: set[tuple[datetime, int]] = set()
        self.survey_delays = sorted({round(s.delay_minutes / 60) for s in plan.surveys})
        self.look_up = False  # whether people may exist already (then found, not made)
        self.jobs: list[datetime] = []  # the survey sender's runs due in the window
        # ticket -> the sender's runs it waits for
        self.survey_due: dict[int, set[datetime]] = {}
        self.done = self.total = 0
        self.analyze_at = ANALYZE_FIRST  # tickets made at the next ANALYZE

    # -- time and transactions --------------------------------------------------------------

    def at(self, moment: datetime) -> None:
        clock.set_source(lambda: moment)

    async def commit(self, now: datetime, *, last: bool = False) -> None:
        """Commit the batch; at a new day, the mail the day queued is settled first, at the
        day's end (the replay's outbox runs daily), and at the last commit all of it."""
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.batch_day is not None and day > self.batch_day:
            await self.deliver_mail(self.batch_day + timedelta(days=1))
        if last:  # the load's end waits for the disk like any commit
            await self.deliver_mail(now)
            await self.session.execute(text("SET LOCAL synchronous_commit = on"))
        await self.session.commit()
        self.summary.commits += 1
        self.in_batch = 0
        self.batch_day = day
        if self.summary.tickets >= self.analyze_at and not last:
            # the tables grow from empty: their statistics are taken each time the tickets
            # double, as after any bulk load, so the batched statements' joins keep their
            # index plans (autovacuum's first visit to a database created moments before can
            # come a minute or more late: the load then took a fifth longer)
            await self.session.execute(text("ANALYZE"))
            await self.session.commit()
            self.analyze_at = 2 * self.summary.tickets

    # -- set-up ------------------------------------------------------------------------------

    async def set_up(self) -> None:
        plan, session = self.plan, self.session
        self.at(plan.start - SETUP_BEFORE)
        self.look_up = (await customers.list_customers(session, limit=1)).items != []
        for person in self.staff:
            user = await self.user(person.email, person.name, person.role)
            if person.role == "admin" and self.admin is SIMULATION:
                self.admin = Actor.user(user.id)
        existing = {team.name: team for team, _ in await auth.list_teams(session)}
        for plan_team in plan.teams:
            team = existing.get(plan_team.name) or await auth.create_team(
                session, name=plan_team.name, description=plan_team.description, actor=self.admin
            )
            self.teams[plan_team.name] = team
        for agent in plan.agents:
            user = await self.user(agent.email, agent.name, "agent")
            if agent.skills and user.skills != {k.lower(): v for k, v in agent.skills.items()}:
                await auth.update_user(
                    session,
                    user,
                    expected_version=user.version,
                    changes={"skills": dict(agent.skills)},
                    actor=self.admin,
                )
            self.users[agent.key] = user
            self.agent_team[agent.key] = agent.team
            await auth.add_team_member(session, self.teams[agent.team], user, actor=self.admin)
        known = {c.name.lower(): c.id for c in await customers.list_companies(session)}
        for company in plan.companies:
            company_id = known.get(company.name.lower())
            if company_id is None:
                row = await customers.create_company(
                    session, name=company.name, domain=company.domain, tier="", actor=self.admin
                )
                company_id = row.id
            self.companies[company.key] = company_id
        await self.standards()
        # customers who never write and have no date of their own exist from the start
        writing = {t.customer for t in plan.tickets}
        await self.make_customers(
            [
                (clock.now(), customer)
                for customer in plan.customers
                if customer.since is None and customer.key not in writing
            ]
        )
        await self.session.commit()

    async def user(self, email: str, name: str, role: str) -> User:
        user = await auth.find_user_by_email(self.session, email)
        if user is None:
            user = await auth.create_user(
                self.session,
                email=email,
                name=name,
                role=role,
                password=self.password,
                actor=self.admin,
            )
            self.summary.users += 1
        self.users.setdefault(email, user)
        return user

    async def standards(self) -> None:
        """Calendars and SLA policies, surveys and their rules, as an admin sets them up."""
        session, plan = self.session, self.plan
        have_policies = {p.name for p in await sla.list_policies(session)}
        calendars: dict[Any, int] = {c.name: c.id for c in await sla.list_calendars(session)}
        for policy in sorted(plan.policies, key=lambda p: p.position):
            if policy.name in have_policies:
                continue
            week = {
                str(day): [[f"{start:02d}:00", f"{end:02d}:00" if end < 24 else "24:00"]]
                for day, (start, end) in sorted(policy.business_hours.items())
            }
            name = f"{policy.name} hours"
            if name not in calendars:
                row = await sla.create_calendar(
                    session,
                    name=name,
                    zone=plan.time_zone,
                    week=week,
                    holiday_country=policy.holidays_country,
                    holiday_region=None,
                    closed_days=[],
                    actor=self.admin,
                )
                calendars[name] = row.id
            conditions: dict[str, Any] = {}
            if policy.tiers:
                conditions["tier"] = list(policy.tiers)
            if policy.priorities:
                conditions["priority"] = list(policy.priorities)
            await sla.create_policy(
                session,
                name=policy.name,
                conditions=conditions,
                targets={
                    "first_reply": {"minutes": policy.first_reply_minutes, "business": True},
                    "resolution": {"minutes": policy.resolution_minutes, "business": True},
                },
                calendar_id=calendars[name],
                pause_statuses=["pending", "on-hold"],
                warn_minutes=min(60, max(policy.first_reply_minutes // 4, 0)),
                actor=self.admin,
            )
        have_surveys = {s.name: s for s in await surveys.list_surveys(session)}
        for plan_survey in plan.surveys:
            survey = have_surveys.get(plan_survey.name)
            if survey is None:
                survey = await surveys.create_survey(
                    session,
                    name=plan_survey.name,
                    kind=plan_survey.kind,
                    enabled=True,
                    actor=self.admin,
                )
                await surveys.create_rule(
                    session,
                    survey,
                    # the rule counts whole hours; the plan's minutes are rounded
                    delay_hours=round(plan_survey.delay_minutes / 60),
                    channels=list(plan_survey.channels),
                    throttle_days=plan_survey.throttle_days,
                    actor=self.admin,
                )
            self.survey_kinds[survey.id] = survey.kind

    async def make_customers(self, wanted: list[tuple[datetime, PlanCustomer]]) -> None:
        """The plan's customers (each with the moment they first appear) not yet made, in
        one call (``customers.create_customers``); into a desk that had customers before,
        those whose e-mail it knows are found instead."""
        new: dict[str, tuple[datetime, PlanCustomer]] = {}
        for at, plan_customer in wanted:
            if plan_customer.key not in self.customers:
                new.setdefault(plan_customer.key, (at, plan_customer))
        if new and self.look_up:
            found = await customers.find_many_by_email(
                self.session, [c.email for _, c in new.values()]
            )
            for key, (_, plan_customer) in list(new.items()):
                person = found.get(customers.normalise_identity("email", plan_customer.email))
                if person is not None:
                    self.customers[key] = person
                    del new[key]
        if not new:
            return
        made = await customers.create_customers(
            self.session,
            [
                customers.NewCustomer(
                    name=c.name,
                    emails=[c.email],
                    tier=c.tier,
                    company_id=self.companies.get(c.company or ""),
                    at=at,
                )
                for at, c in new.values()
            ],
            actor=SIMULATION,
        )
        self.customers.update(zip(new, made, strict=True))
        self.summary.customers += len(made)

    # -- the periodic jobs ------------------------------------------------------------------

    def plan_job(self, rank: int, after: datetime, every: timedelta) -> datetime:
        """Run the survey sender at its first time at or after ``after`` (the driver knows
        when it has work: a solve plus a rule's delay); returns that time."""
        at = _ceil(after, self.plan.start, every)
        if (at, rank) not in self.planned_jobs:
            self.planned_jobs.add((at, rank))
            heapq.heappush(self.queue, _Item(at, rank, 0, 0))
        return at

    async def sweep_until(self, moment: datetime) -> None:
        """The SLA sweep as it would have run every minute up to ``moment`` (on the 5-minute
        grid), before the window that starts there: warnings and breaches keep their own
        time (``sla.batch.sweep_history``)."""
        if moment >= self.next_sweep:
            at = _floor(moment, self.plan.start, SWEEP_EVERY)
            self.at(at)
            warned, breached = await sla_batch.sweep_history(self.session, until=at)
            self.summary.sweeps += 1
            self.summary.warned += warned
            self.summary.breached += breached
            self.next_sweep = at + SWEEP_EVERY

    async def send_surveys(self, runs: list[datetime]) -> None:
        """The sender's runs at these times, in one call (and more only for its limit):
        each invitation is sent at the first run at or after its due time, as if the sender
        had run at each of them (``surveys.send_due_invitations``'s ``runs``)."""
        self.at(max(runs))
        while True:
            sent, skipped = await surveys.send_due_invitations(self.session, self.mailer, runs=runs)
            self.summary.surveys_sent += len(sent)
            self.summary.surveys_skipped += skipped
            # which invitation each mail carried: the customer's link is made from it
            for invitation in sent:
                kind = self.survey_kinds.get(invitation.survey_id)
                if kind is not None and invitation.sent_at is not None:
                    self.sent[(invitation.ticket_id, kind)] = (
                        invitation.id,
                        invitation.customer_id,
                        invitation.sent_at,
                    )
            if len(sent) + skipped < 200:
                break

    async def deliver_mail(self, now: datetime) -> None:
        """Settle the mail history queued up to ``now`` as sent to no one (one statement):
        nothing old is mailed when the server starts, and no SMTP is spoken for it."""
        self.at(now)
        started = time.perf_counter()
        self.summary.mails_sent += await outbox.settle_history(
            self.session, until=now, note=HISTORY_NOTE
        )
        self.summary.mail_seconds += time.perf_counter() - started

    # -- the steps ---------------------------------------------------------------------------

    async def answer(self, items: list[_Item]) -> None:
        """The customers click a score in their invitations' mail (one item each of
        different tickets): each link's token is read back as the answer page reads it, and
        the answers recorded as the page records them, in one ``surveys.answer_many``."""
        clicks: list[tuple[_Item, surveys.NewAnswer]] = []
        for item in items:
            step = self.plan.tickets[item.index].steps[item.step]
            assert isinstance(step, SurveyAnswer)
            key = (self.tickets[item.index].id, step.kind)
            if key not in self.sent:  # due but not yet swept up by the sender's cadence
                await self.send_surveys([step.at])
            invitation = self.sent.get(key)
            if invitation is None:
                self.summary.survey_answers_unsent += 1
                continue
            invitation_id, customer_id, sent_at = invitation
            token = surveys.make_token(
                self.mailer.keyring,
                SurveyInvitation(id=invitation_id, customer_id=customer_id),
                sent=sent_at,
            )
            clicks.append(
                (
                    item,
                    surveys.NewAnswer(
                        token=token, score=step.score, at=step.at, comment=step.comment or None
                    ),
                )
            )
        if clicks:
            self.at(max(item.at for item, _ in clicks))
            await self.call(self.answer_many, clicks)
            self.summary.survey_answers += len(clicks)

    async def answer_many(
        self, session: AsyncSession, items: list[surveys.NewAnswer]
    ) -> list[SurveyResponse]:
        return await surveys.answer_many(session, self.mailer.keyring, items)

    async def follow_up(self, items: list[_Item]) -> None:
        """Planned contacts (one step each of different tickets), in one
        ``followups.create_many``, each at its own moment; a ``recovery`` is the one the
        follow-ups domain opened by itself for a detractor's answer, which the agent takes
        on (and completes later)."""
        steps: list[tuple[_Item, FollowUp]] = []
        for item in items:
            step = self.plan.tickets[item.index].steps[item.step]
            assert isinstance(step, FollowUp), f"not a follow-up: {step}"
            steps.append((item, step))
        recoveries = await followups.open_recoveries_of_tickets(
            self.session,
            [self.tickets[item.index].id for item, step in steps if step.kind == "recovery"],
        )
        rows: dict[_Item, FollowUpRow] = {}
        plans: list[tuple[_Item, followups.NewFollowUp]] = []
        for item, step in steps:
            ticket = self.tickets[item.index]
            if step.kind == "recovery":
                row = recoveries.get(ticket.id)
                if row is None:
                    planned = self.plan.tickets[item.index]
                    raise Refused(
                        f"{planned.key} step {item.step} ({step}): No open recovery for this ticket"
                    )
                rows[item] = row
                continue
            user = self.users[step.agent]
            plans.append(
                (
                    item,
                    followups.NewFollowUp(
                        reason=step.reason,
                        due_at=step.due,
                        actor=Actor.user(user.id),
                        at=item.at,
                        ticket_id=ticket.id,
                        owner_id=user.id,
                        kind=step.kind,
                    ),
                )
            )
        if plans:
            self.at(max(item.at for item, _ in plans))
            made = await self.call(followups.create_many, plans)
            rows.update(zip([item for item, _ in plans], made, strict=True))
            self.summary.follow_ups += len(plans)
        for item, step in steps:
            if step.done_at is not None:
                self.follow_ups[(item.index, item.step)] = rows[item]

    async def finish_follow_up(self, items: list[_Item]) -> None:
        """Planned contacts done (``FOLLOW_UP_DONE`` items), in one
        ``followups.complete_many``, each at its own moment."""
        done: list[tuple[_Item, followups.Completion]] = []
        for item in items:
            row = self.follow_ups.pop((item.index, item.step))
            step = self.plan.tickets[item.index].steps[item.step]
            assert isinstance(step, FollowUp)
            known = step.outcome in OUTCOMES
            done.append(
                (
                    item,
                    followups.Completion(
                        row,
                        outcome=step.outcome if known else "other",
                        note=step.note or ("" if known else step.outcome),
                        at=item.at,
                        actor=Actor.user(self.users[step.agent].id),
                    ),
                )
            )
        self.at(max(item.at for item in items))
        await self.call(followups.complete_many, done)
        self.summary.follow_ups_done += len(done)

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Window by window (at most ``WAVE_EVERY``, never across midnight): every item due
        in the window is taken from the queue and replayed in waves (each ticket's next
        item, so its own steps keep their order), each wave through the batched services.
        The SLA sweep runs at each window's start, and for the tickets of a wave as of
        their items' moments just before it; the survey sender's runs go when only items
        waiting for them are left, and after the window's waves."""
        plan, queue = self.plan, self.queue
        queue += [
            _Item(c.since, CUSTOMER, i, -1)
            for i, c in enumerate(plan.customers)
            if c.since is not None
        ]
        queue += [_Item(t.opened_at, STEP, i, -1) for i, t in enumerate(plan.tickets)]
        heapq.heapify(queue)
        self.total = len(plan.tickets) + sum(len(t.steps) for t in plan.tickets)
        while queue:
            start = queue[0].at
            await self.sweep_until(start)
            day = start.replace(hour=0, minute=0, second=0, microsecond=0)
            if self.in_batch >= self.commit_every or (
                self.batch_day is not None and day > self.batch_day
            ):
                await self.commit(start)
            if self.batch_day is None:
                self.batch_day = day
            end = min(start + self.wave_every, day + timedelta(days=1))
            while True:
                wave: list[_Item] = []
                held: list[_Item] = []
                while queue and queue[0].at < end:
                    item = heapq.heappop(queue)
                    if item.rank == SEND_SURVEYS:
                        self.jobs.append(item.at)
                    elif self.waits_for_surveys(item):
                        held.append(item)
                    else:
                        wave.append(item)
                if wave:
                    await self.wave(wave)
                elif held:  # the sender's runs before the first held item, then those items
                    await self.run_jobs(until=self.release(held, end))
                else:
                    break
                for item in held:
                    heapq.heappush(queue, item)
            await self.run_jobs(until=end)
        self.summary.steps = self.done
        await self.sweep_until(plan.end)
        await self.commit(plan.end, last=True)
        if self.progress is not None:
            self.progress(self.done, self.total)

    async def run_jobs(self, *, until: datetime) -> None:
        """The survey sender's runs planned before ``until``, in one call: no step comes
        between them (the steps that must see a run's outcome wait for it,
        ``waits_for_surveys``), so each run sees the tickets as they were at its time."""
        due = sorted(at for at in self.jobs if at < until)
        self.jobs = [at for at in self.jobs if at >= until]
        if due:
            await self.send_surveys(due)
        self.survey_due = {
            i: later
            for i, runs in self.survey_due.items()
            if (later := {at for at in runs if at >= until})
        }

    def release(self, held: list[_Item], end: datetime) -> datetime:
        """How far the sender's runs go before the held items are tried again: past the
        first of them, and on past held survey answers, which change nothing a run reads,
        up to the next held item of another kind, the answering ticket's next run, or the
        earliest that a later step of that ticket (a solve) could make an invitation due.
        So a wave takes the answers of many runs at once; each run still sees the tickets
        it decides as they were at its time."""
        tick = timedelta(microseconds=1)
        first = min(h.at for h in held) + tick
        until = end
        soonest = timedelta(hours=self.survey_delays[0]) if self.survey_delays else None
        for item in held:
            step = self.plan.tickets[item.index].steps[item.step]
            if not isinstance(step, SurveyAnswer) or not soonest:
                until = min(until, item.at + tick)
                continue
            runs = [at for at in self.survey_due.get(item.index, ()) if at > item.at]
            until = min(until, item.at + soonest, *runs)
        return max(until, first)

    def waits_for_surveys(self, item: _Item) -> bool:
        """Whether the item must wait for a survey sender's run planned before it: a step
        of a ticket whose invitation that run sends (or skips), or an answer to a survey
        not yet sent. So each run sees the tickets as they were at its time, and answers
        what it sent, though the window's waves run first."""
        if item.rank != STEP or item.step < 0:
            return False
        if any(at <= item.at for at in self.survey_due.get(item.index, ())):
            return True
        step = self.plan.tickets[item.index].steps[item.step]
        if isinstance(step, SurveyAnswer) and item.index in self.tickets:
            key = (self.tickets[item.index].id, step.kind)
            return key not in self.sent and any(at <= item.at for at in self.jobs)
        return False

    async def wave(self, wave: list[_Item]) -> None:
        """One item of each of several tickets (and the rare others), through the batched
        services: openings, assignments, messages, status changes, survey answers and
        follow-ups in one call each, then the follow-ups done in the wave in one call."""
        steps = [item for item in wave if item.rank == STEP]
        self.summary.waves += 1
        await self.make_customers(
            [(item.at, self.plan.customers[item.index]) for item in wave if item.rank == CUSTOMER]
            + [  # the customer of a first ticket
                (item.at, self.plan_customers[self.plan.tickets[item.index].customer])
                for item in wave
                if item.rank == STEP and item.step == -1
            ]
        )
        moments = {
            self.tickets[item.index].id: item.at
            for item in steps
            if item.step >= 0 and item.index in self.tickets
        }
        warned, breached = await sla_batch.sweep_history(self.session, moments=moments)
        self.summary.warned += warned
        self.summary.breached += breached
        await self.batched(steps)
        finished = [item for item in wave if item.rank == FOLLOW_UP_DONE]
        if finished:
            await self.finish_follow_up(finished)
        for item in steps:
            planned = self.plan.tickets[item.index]
            if item.step >= 0:
                step = planned.steps[item.step]
                if isinstance(step, FollowUp) and (item.index, item.step) in self.follow_ups:
                    assert step.done_at is not None
                    heapq.heappush(
                        self.queue, _Item(step.done_at, FOLLOW_UP_DONE, item.index, item.step)
                    )
            following = item.step + 1
            if following < len(planned.steps):
                heapq.heappush(
                    self.queue, _Item(planned.steps[following].at, STEP, item.index, following)
                )
            else:
                self.tickets.pop(item.index, None)
        self.done += len(steps)
        self.in_batch += len(steps)
        if self.progress is not None and self.done // 500 > (self.done - len(steps)) // 500:
            self.progress(self.done, self.total)

    async def batched(self, steps: list[_Item]) -> None:
        opens: list[tuple[_Item, bulk.NewTicket]] = []
        assigns: list[tuple[_Item, bulk.NewAssignment]] = []
        messages: list[tuple[_Item, bulk.NewMessage]] = []
        statuses: list[tuple[_Item, bulk.NewStatus]] = []
        answers: list[_Item] = []
        follow_ups: list[_Item] = []
        for item in steps:
            planned = self.plan.tickets[item.index]
            if item.step == -1:
                customer = self.customers[planned.customer]
                opens.append(
                    (
                        item,
                        bulk.NewTicket(
                            subject=planned.subject,
                            requester=customer,
                            channel=planned.channel,
                            body_text=planned.body,
                            priority=planned.priority,
                            type=planned.topic,
                            tags=tuple(planned.tags),
                            at=item.at,
                            actor=Actor("customer", str(customer.id)),
                        ),
                    )
                )
                continue
            ticket, step = self.tickets[item.index], planned.steps[item.step]
            if isinstance(step, Assign):
                user = self.users[step.agent]
                team = self.teams[step.team or self.agent_team[step.agent]]
                assigns.append(
                    (
                        item,
                        bulk.NewAssignment(ticket, user.id, team.id, item.at, Actor.user(user.id)),
                    )
                )
            elif isinstance(step, Reply | Note):
                messages.append((item, self.message(ticket, planned, step)))
            elif isinstance(step, Status):
                actor = Actor.user(self.users[step.agent].id) if step.agent else SIMULATION
                if ticket.status != step.status:
                    statuses.append((item, bulk.NewStatus(ticket, step.status, item.at, actor)))
                if step.status == "solved":  # the survey rules' invitations fall due later
                    for hours in self.survey_delays:
                        at = self.plan_job(
                            SEND_SURVEYS, step.at + timedelta(hours=hours), SURVEYS_EVERY
                        )
                        self.survey_due.setdefault(item.index, set()).add(at)
            elif isinstance(step, SurveyAnswer):
                answers.append(item)
            else:
                follow_ups.append(item)
        if opens:
            self.at(opens[-1][0].at)
            made = await self.call(bulk.create_tickets, opens)
            for (item, _), (ticket, _) in zip(opens, made, strict=True):
                self.tickets[item.index] = ticket
            self.summary.tickets += len(opens)
            self.summary.messages += len(opens)
        if assigns:
            self.at(max(item.at for item, _ in assigns))
            await self.call(bulk.assign_many, assigns)
            self.summary.assignments += len(assigns)
        if messages:
            self.at(max(item.at for item, _ in messages))
            await self.call(bulk.add_messages, messages)
            notes = sum(1 for _, m in messages if not m.public)
            self.summary.notes += notes
            self.summary.messages += len(messages) - notes
        if statuses:
            self.at(max(item.at for item, _ in statuses))
            await self.call(bulk.set_statuses, statuses)
            self.summary.status_changes += len(statuses)
        if answers:
            await self.answer(answers)
        if follow_ups:
            await self.follow_up(follow_ups)

    def message(self, ticket: Ticket, planned: PlanTicket, step: Reply | Note) -> bulk.NewMessage:
        if isinstance(step, Note):
            user = self.users[step.agent]
            return bulk.NewMessage(
                ticket=ticket,
                public=False,
                author_type="agent",
                author_user_id=user.id,
                body_text=step.body,
                at=step.at,
                actor=Actor.user(user.id),
            )
        if step.by == "agent":
            user = self.users[step.author]
            return bulk.NewMessage(
                ticket=ticket,
                public=True,
                author_type="agent",
                author_user_id=user.id,
                body_text=step.body,
                at=step.at,
                actor=Actor.user(user.id),
            )
        customer = self.customers[planned.customer]
        return bulk.NewMessage(
            ticket=ticket,
            public=True,
            author_type="customer",
            author_customer_id=customer.id,
            body_text=step.body,
            at=step.at,
            actor=Actor("customer", str(customer.id)),
        )

    async def call(
        self,
        service: Callable[[AsyncSession, list[Any]], Awaitable[Any]],
        items: list[tuple[_Item, Any]],
    ) -> Any:
        """A batched service over the items; a refusal names the plan's step."""
        try:
            return await service(self.session, [batch_item for _, batch_item in items])
        except ServiceError as exc:
            index = exc.extra.get("item")
            if not isinstance(index, int) or not 0 <= index < len(items):
                raise
            item = items[index][0]
            planned = self.plan.tickets[item.index]
            what = "opening" if item.step == -1 else f"{planned.steps[item.step]}"
            message = exc.unnamed if exc.unnamed is not None else exc.message
            raise Refused(f"{planned.key} step {item.step} ({what}): {message}") from exc


class Refused(Exception):
    """The desk refused a step of the plan (the plan breaks one of its rules)."""


async def has_tickets(session: AsyncSession) -> bool:
    """Whether the desk has any ticket (a replay into it would mix two histories)."""
    page = await tickets.list_tickets(session, tickets.TicketFilter(), limit=1)
    return bool(page.items)


def _floor(moment: datetime, origin: datetime, every: timedelta) -> datetime:
    return origin + ((moment - origin) // every) * every


def _ceil(moment: datetime, origin: datetime, every: timedelta) -> datetime:
    floor = _floor(moment, origin, every)
    return floor if floor == moment else floor + every


async def replay(
    url_or_sessionmaker: str | async_sessionmaker[AsyncSession],
    plan: Plan,
    *,
    progress: Progress | None = None,
    staff: Sequence[StaffUser] = (),
    password: str | None = None,
    mailer: surveys.Mailer | None = None,
    keyring: Keyring | None = None,
    commit_every: int = COMMIT_EVERY,
    wave_every: timedelta | None = None,
) -> Summary:
    """Replay ``plan`` into the database; returns what was made. ``staff`` are made first
    (the first admin sets the desk up); ``password`` is every made user's (None: they cannot
    sign in until one is set). Survey links are signed with ``mailer``'s key (default: the
    settings' key and addresses). The clock is the wall clock again afterwards, also on error.
    """
    started = time.perf_counter()
    if mailer is None:
        from servicecycle.config import get_settings

        settings = get_settings()
        base = settings.base_url or f"http://{settings.host}:{settings.port}"
        mailer = surveys.Mailer(
            keyring=keyring or settings.keyring(), base_url=base, sender=settings.mail_from
        )
    engine = None
    if isinstance(url_or_sessionmaker, str):
        # this load's own connections commit without waiting for the disk (a crash mid-load
        # is a failed load either way); the last commit waits
        engine = create_async_engine(
            sqlalchemy_url(url_or_sessionmaker),
            pool_size=2,
            connect_args={
                "application_name": "servicecycle-simulation",
                "options": "-c synchronous_commit=off",
            },
        )
        factory = make_sessionmaker(engine)
    else:
        factory = url_or_sessionmaker
    # the plan and everything made before are long-lived: collections stop scanning them
    # (gc.freeze), and the young generation is collected less often (the batches make and
    # drop many short-lived objects, few of them in cycles): ~10% of the replay's CPU
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 50)
    try:
        async with factory() as session:
            state = _Replay(
                session,
                factory,
                plan,
                mailer=mailer,
                staff=staff,
                password=password,
                progress=progress,
                commit_every=commit_every,
                wave_every=wave_every or WAVE_EVERY,
            )
            await state.set_up()
            await state.run()
            summary = state.summary
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
        clock.set_source(None)
        if engine is not None:
            await engine.dispose()
    summary.seconds = time.perf_counter() - started
    return summary
