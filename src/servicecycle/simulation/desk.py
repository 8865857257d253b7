"""The service desk as a discrete-event simulation: tickets meet agents. Pure.

Routing: a ticket goes to a free agent of its topic's team who has the skill and is on shift
(higher skill levels more often); with nobody free it waits in the team's queue, most urgent
first, so waiting comes from capacity. A ticket coming back (the customer answered, a wait on
the team ended, a reopen) waits ``handover_hours`` for its assignee before anyone else may take
it. Agents finish the session they started even past the end of their shift.

Each work session ends in a public reply and then either solved or pending (on the customer,
who answers after a delay or never, or on the team: a third party, finance, the carrier; the
planted bottleneck team's waits last ``pending_multiplier`` times longer). Surveys go out at
solved + delay with the throttle the surveys domain applies (any survey sent to the customer
within ``throttle_days``), and only while the ticket is still solved.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any, Literal, cast

from servicecycle.simulation.people import Crowd, Person
from servicecycle.simulation.plan import (
    Assign,
    Channel,
    FollowUp,
    Note,
    PlanTicket,
    Priority,
    Reply,
    Status,
    Step,
    SurveyAnswer,
)
from servicecycle.simulation.scenario import Agent, Scenario, Topic
from servicecycle.simulation.text import Slots, Writer

_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
_ARRIVE, _CUSTOMER, _READY, _FREE, _SHIFT, _HANDOVER, _SURVEY, _CLOSE = range(8)
_OUTCOMES = (("resolved", 0.6), ("no_answer", 0.3), ("escalated", 0.1))


@dataclass(frozen=True)
class Shift:
    start: float  # seconds after the run's start
    end: float


class DeskAgent:
    """An agent during the run: shifts (in order) and whether they are working a ticket."""

    def __init__(self, key: str, spec: Agent, shifts: list[Shift]) -> None:
        self.key, self.spec, self.shifts = key, spec, shifts
        self.index = 0
        self.busy = False
        self.topics: set[int] = set()

    def on_shift(self, at: float) -> bool:
        shifts = self.shifts
        while self.index < len(shifts) and shifts[self.index].end <= at:
            self.index += 1
        return self.index < len(shifts) and shifts[self.index].start <= at


@dataclass(eq=False)
class _Ticket:
    index: int
    opened: float
    topic: int
    customer: Person
    channel: str
    priority: str
    subject: str
    body: str
    slots: Slots
    steps: list[tuple[float, Step]] = field(default_factory=list)
    agent: DeskAgent | None = None
    first_agent: DeskAgent | None = None
    status: str = "new"
    reopens: int = 0
    rounds: int = 0
    work: float = 0.0  # agent minutes
    first_session: float | None = None
    customer_wait: float = 0.0  # seconds pending on the customer
    pendings: list[tuple[float, float]] = field(default_factory=list)  # (start, end), ended
    solves: int = 0
    solved_at: float = 0.0
    final: bool = False
    sent: set[int] = field(default_factory=set)
    question: int = 0  # the last thing the agent asked (text.Writer.question)


@dataclass(eq=False)
class _Item:
    ticket: _Ticket
    kind: Literal["new", "customer", "team", "reopen"]
    ready: float
    preferred: DeskAgent | None
    queued: bool = False


def _weights(values: Mapping[Any, float]) -> tuple[list[str], list[float]]:
    return [str(k) for k in values], list(accumulate(values.values()))


def _pick(rng: random.Random, names: list[str], cumulative: list[float]) -> str:
    i = bisect_right(cumulative, rng.random() * cumulative[-1])
    return names[min(i, len(names) - 1)]


class Desk:
    """Runs the tickets of one scenario through its agents (see the module's docstring)."""

    def __init__(
        self,
        scenario: Scenario,
        start: datetime,
        end: datetime,
        agents: list[DeskAgent],
        crowd: Crowd,
        writer: Writer,
        rng: random.Random,
    ) -> None:
        self.s, self.t0, self.rng = scenario, start, rng
        self.epoch = int(start.timestamp())  # whole local hours: exact in a float
        self.end = (end - start).total_seconds()
        self.agents, self.crowd, self.writer = agents, crowd, writer
        self.topics = scenario.topics
        self.teams = {t.name: t for t in scenario.teams}
        self.queues: dict[str, list[_Item]] = {t.name: [] for t in scenario.teams}
        self.eligible: list[list[DeskAgent]] = []
        for i, topic in enumerate(self.topics):
            team = [a for a in agents if a.spec.team == topic.team]
            skilled = [a for a in team if topic.name in a.spec.skills] or team
            for a in skilled:
                a.topics.add(i)
            self.eligible.append(skilled)
        channels = _weights(dict(scenario.channels))
        self.channel_of = [
            _weights(dict(t.channels)) if t.channels else channels for t in self.topics
        ]
        self.priority_of = [_weights(dict(t.priorities)) for t in self.topics]
        p = scenario.planted
        self.training = p.training
        self.trainee = next(
            (a for a in agents if p.training is not None and a.spec.email == p.training.agent), None
        )
        self.training_topic = (
            [t.name for t in self.topics].index(p.training.topic) if p.training else -1
        )
        self.bottleneck = p.bottleneck
        self.heap: list[tuple[float, int, int, Any]] = []
        self.seq = 0
        self.tickets: list[_Ticket] = []
        self.last_sent: dict[str, float] = {}
        self.handover = scenario.service.handover_hours * 3600

    # -- the event loop -------------------------------------------------------------------

    def _push(self, at: float, kind: int, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, kind, payload))

    def run(self, arrivals: list[tuple[float, int]]) -> tuple[PlanTicket, ...]:
        for agent in self.agents:
            for shift in agent.shifts:
                self._push(shift.start, _SHIFT, agent)
        heap, n, i = self.heap, len(arrivals), 0
        while True:
            if i < n and (not heap or arrivals[i][0] <= heap[0][0]):
                at, topic = arrivals[i]
                self._arrive(at, topic)
                i += 1
                continue
            if not heap or heap[0][0] >= self.end:
                break
            at, _, kind, payload = heapq.heappop(heap)
            if kind == _CUSTOMER:
                self._customer(at, payload)
            elif kind == _READY:
                self._route(payload, at)
            elif kind == _FREE:
                self._finish(at, *payload)
            elif kind == _SHIFT:
                if not payload.busy and payload.on_shift(at):
                    self._pick(payload, at)
            elif kind == _HANDOVER:
                if payload.queued:
                    self._route(payload, at, queued=True)
            elif kind == _SURVEY:
                self._survey(at, *payload)
            elif kind == _CLOSE:
                ticket, solves = payload
                if ticket.solves == solves and ticket.status == "solved":
                    ticket.status = "closed"
                    self._step(ticket, at, Status(self._dt(at), "closed", None))
        return tuple(self._plan_ticket(t) for t in self.tickets)

    def _dt(self, at: float) -> datetime:
        return datetime.fromtimestamp(self.epoch + int(at), UTC)

    def _step(self, ticket: _Ticket, at: float, step: Step) -> None:
        ticket.steps.append((at, step))

    # -- tickets come in and go to agents --------------------------------------------------

    def _arrive(self, at: float, topic_index: int) -> None:
        topic, rng = self.topics[topic_index], self.rng
        person = self.crowd.pick()
        channel = _pick(rng, *self.channel_of[topic_index])
        slots = self.writer.slots(self._dt(at).date())
        subject, body = self.writer.ticket(topic.wording, person.name, slots, channel=channel)
        ticket = _Ticket(
            index=len(self.tickets),
            opened=at,
            topic=topic_index,
            customer=person,
            channel=channel,
            priority=_pick(rng, *self.priority_of[topic_index]),
            subject=subject,
            body=body,
            slots=slots,
        )
        self.tickets.append(ticket)
        self._route(_Item(ticket, "new", at, None), at)

    def _route(self, item: _Item, at: float, *, queued: bool = False) -> None:
        """Give the item to a free agent now, else queue it (once)."""
        free = [a for a in self.eligible[item.ticket.topic] if not a.busy and a.on_shift(at)]
        chosen: DeskAgent | None = None
        if item.preferred is not None and item.preferred in free:
            chosen = item.preferred
        elif free and (item.preferred is None or at - item.ready >= self.handover):
            levels = list(
                accumulate(a.spec.skills.get(self.topics[item.ticket.topic].name, 1) for a in free)
            )
            chosen = free[min(bisect_right(levels, self.rng.random() * levels[-1]), len(free) - 1)]
        if chosen is not None:
            if queued:
                self.queues[self.topics[item.ticket.topic].team].remove(item)
                item.queued = False
            self._start(chosen, item, at)
        elif not queued:
            item.queued = True
            self.queues[self.topics[item.ticket.topic].team].append(item)
            if item.preferred is not None:
                self._push(item.ready + self.handover, _HANDOVER, item)

    def _pick(self, agent: DeskAgent, at: float) -> None:
        """A free agent on shift takes the most urgent, oldest item they may take."""
        best: _Item | None = None
        best_key = (9, 0.0)
        for item in self.queues[agent.spec.team]:
            if item.ticket.topic not in agent.topics:
                continue
            if item.preferred not in (None, agent) and at - item.ready < self.handover:
                continue
            key = (_RANK[item.ticket.priority], item.ready)
            if key < best_key:
                best, best_key = item, key
        if best is not None:
            self.queues[agent.spec.team].remove(best)
            best.queued = False
            self._start(agent, best, at)

    def _slowdown(self, agent: DeskAgent, ticket: _Ticket) -> float:
        if agent is self.trainee and ticket.topic == self.training_topic and self.training:
            return self.training.slowdown
        return 1.0

    def _minutes(self, topic: Topic, mean: float) -> float:
        cv = topic.handling_spread
        if topic.distribution == "gamma":
            shape = 1 / (cv * cv)
            value = self.rng.gammavariate(shape, mean / shape)
        else:
            sigma2 = math.log(1 + cv * cv)
            value = self.rng.lognormvariate(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))
        return max(value, 0.5)

    def _start(self, agent: DeskAgent, item: _Item, at: float) -> None:
        ticket, topic = item.ticket, self.topics[item.ticket.topic]
        agent.busy = True
        if ticket.agent is not agent:
            self._step(ticket, at, Assign(self._dt(at), agent.key, topic.team))
            ticket.agent = agent
            if ticket.first_agent is None:
                ticket.first_agent = agent
        if item.kind == "team":
            ticket.pendings[-1] = (ticket.pendings[-1][0], at)
            ticket.status = "open"
            self._step(ticket, at, Status(self._dt(at), "open", agent.key))
        mean = topic.handling_minutes * self._slowdown(agent, ticket)
        if item.kind != "new":
            mean *= self.s.service.followup_work
        minutes = self._minutes(topic, mean)
        if item.kind == "new":
            ticket.first_session = minutes
        ticket.work += minutes
        self._push(at + minutes * 60, _FREE, (agent, item))

    # -- a session ends ---------------------------------------------------------------------

    def _finish(self, at: float, agent: DeskAgent, item: _Item) -> None:
        ticket, topic, rng = item.ticket, self.topics[item.ticket.topic], self.rng
        w, name = self.writer, ticket.customer.name
        chance = topic.pending_chance if item.kind == "new" else topic.pending_chance * 0.25
        if ticket.rounds < 3 and rng.random() < chance:
            ticket.rounds += 1
            ticket.status = "pending"
            if rng.random() < topic.team_wait_share:
                self._step(
                    ticket, at, Note(self._dt(at), agent.key, w.note(topic.wording, ticket.slots))
                )
                body = w.agent(
                    topic.wording, "wait", agent=agent.spec.name, customer=name, slots=ticket.slots
                )
                self._step(ticket, at + 1, Reply(self._dt(at + 1), agent.key, "agent", body))
                self._step(ticket, at + 2, Status(self._dt(at + 2), "pending", agent.key))
                hours = self.teams[topic.team].wait_hours
                if self.bottleneck is not None and self.bottleneck.team == topic.team:
                    hours *= self.bottleneck.pending_multiplier
                back = at + 2 + rng.lognormvariate(math.log(hours * 3600), 0.8)
                ticket.pendings.append((at + 2, math.inf))  # ends when an agent takes it
                self._push(back, _READY, _Item(ticket, "team", back, agent))
            else:
                ticket.question = w.question(topic.wording, ticket.slots)
                body = w.agent(
                    topic.wording,
                    "ask",
                    agent=agent.spec.name,
                    customer=name,
                    question=ticket.question,
                    slots=ticket.slots,
                )
                self._step(ticket, at, Reply(self._dt(at), agent.key, "agent", body))
                self._step(ticket, at + 1, Status(self._dt(at + 1), "pending", agent.key))
                c = self.s.customers
                if rng.random() < c.no_reply_chance:
                    gave_up = at + 1 + self.s.service.close_after_hours * 3600
                    ticket.pendings.append((at + 1, gave_up))
                    ticket.customer_wait += gave_up - at - 1
                    self._push(gave_up, _CUSTOMER, _Item(ticket, "customer", gave_up, None))
                else:
                    back = (
                        at + 1 + rng.lognormvariate(math.log(c.reply_minutes * 60), c.reply_spread)
                    )
                    ticket.pendings.append((at + 1, back))
                    ticket.customer_wait += back - at - 1
                    self._push(back, _CUSTOMER, _Item(ticket, "customer", back, agent))
        else:
            body = w.agent(
                topic.wording, "solve", agent=agent.spec.name, customer=name, slots=ticket.slots
            )
            self._step(ticket, at, Reply(self._dt(at), agent.key, "agent", body))
            self._solved(ticket, at + 1, agent)
        agent.busy = False
        if agent.on_shift(at):
            self._pick(agent, at)

    def _customer(self, at: float, item: _Item) -> None:
        """The customer answers (or reopens); without a ``preferred`` agent: never answered,
        the assignee solves it."""
        ticket, topic = item.ticket, self.topics[item.ticket.topic]
        if item.preferred is None and item.kind == "customer":
            agent = ticket.agent
            assert agent is not None
            self._solved(ticket, at, agent)
            return
        stage = "reopen" if item.kind == "reopen" else "answer"
        body = self.writer.customer(
            topic.wording,
            stage,
            customer=ticket.customer.name,
            question=ticket.question,
            slots=ticket.slots,
        )
        self._step(ticket, at, Reply(self._dt(at), ticket.customer.key, "customer", body))
        ticket.status = "open"
        if item.kind == "reopen":
            ticket.reopens += 1
        item.ready = at
        self._route(item, at)

    def _solved(self, ticket: _Ticket, at: float, agent: DeskAgent) -> None:
        topic, rng, service = self.topics[ticket.topic], self.rng, self.s.service
        self._step(ticket, at, Status(self._dt(at), "solved", agent.key))
        ticket.status, ticket.solved_at = "solved", at
        ticket.solves += 1
        level = agent.spec.skills.get(topic.name, 1)
        chance = topic.reopen_chance * (1 + 0.2 * (3 - level))
        if agent is self.trainee and ticket.topic == self.training_topic and self.training:
            chance += self.training.extra_reopen_chance
        close = service.close_after_hours * 3600
        reopen_after = None
        if ticket.reopens < 2 and rng.random() < min(chance, 0.9):
            delay = rng.lognormvariate(math.log(self.s.customers.reopen_minutes * 60), 1.0)
            if delay < close - 60:
                reopen_after = delay
        ticket.final = reopen_after is None
        if reopen_after is not None:
            self._push(at + reopen_after, _CUSTOMER, _Item(ticket, "reopen", at, agent))
        else:
            self._push(at + close, _CLOSE, (ticket, ticket.solves))
        for i, survey in enumerate(self.s.surveys):
            if i not in ticket.sent and (not survey.channels or ticket.channel in survey.channels):
                self._push(at + survey.delay_minutes * 60, _SURVEY, (ticket, i, ticket.solves))
        if ticket.final and rng.random() < topic.followup_chance:
            due = at + 3 * 86400
            # nine in ten on the day; the rest slip by up to LATE_DAYS (still open at the end
            # only if that is still to come)
            on_time = rng.random() < 0.9
            finished = due + rng.uniform(0, 8 * 3600 if on_time else LATE_DAYS * 86400)
            done = finished if finished < self.end else None
            self._step(
                ticket,
                at + 60,
                FollowUp(
                    at=self._dt(at + 60),
                    agent=agent.key,
                    due=self._dt(due),
                    reason=f"Check in: is the {topic.label.lower()} matter settled?",
                    done_at=None if done is None else self._dt(done),
                    outcome="resolved" if done is not None else "",
                    kind="check_in",
                    note="The customer confirmed all is well." if done is not None else "",
                ),
            )

    # -- surveys ----------------------------------------------------------------------------

    def _survey(self, at: float, ticket: _Ticket, index: int, solves: int) -> None:
        if solves != ticket.solves or ticket.status not in ("solved", "closed"):
            return  # solved again later (that solve scheduled its own) or reopened: skipped
        if index in ticket.sent:
            return
        survey = self.s.surveys[index]
        last = self.last_sent.get(ticket.customer.key)
        if (
            survey.throttle_days > 0
            and last is not None
            and at - last < survey.throttle_days * 86400
        ):
            return
        self.last_sent[ticket.customer.key] = at
        ticket.sent.add(index)
        rng = self.rng
        if not ticket.final or rng.random() >= survey.response_rate:
            return
        answered = at + max(60.0, rng.lognormvariate(math.log(3 * 3600), 1.2))
        score = self._score(ticket, survey.kind)
        comment = ""
        if rng.random() < survey.comment_chance:
            agent = ticket.agent.spec.name if ticket.agent else ""
            comment = self.writer.comment(survey.kind, score, agent=agent)
        self._step(ticket, answered, SurveyAnswer(self._dt(answered), survey.kind, score, comment))

    def _score(self, ticket: _Ticket, kind: str) -> int:
        s, topic, rng = self.s.service, self.topics[ticket.topic], self.rng
        agent = ticket.agent
        level = agent.spec.skills.get(topic.name, 1) if agent else 3
        waited = max(0.0, ticket.solved_at - ticket.opened - ticket.customer_wait) / 3600
        value = s.base_score + topic.satisfaction - s.wait_penalty * math.log2(1 + waited)
        value += s.skill_effect * (level - 3) - s.reopen_penalty * ticket.reopens
        planted = self.s.planted
        if planted.detractor is not None and planted.detractor.topic == topic.name:
            value -= planted.detractor.score_drop
        if agent is self.trainee and ticket.topic == self.training_topic and self.training:
            value -= self.training.score_drop
        value += rng.gauss(0, s.score_noise)
        if kind == "nps":
            return min(10, max(0, round(value)))
        if kind == "csat":
            return min(5, max(1, round(1 + 0.4 * value + rng.gauss(0, 0.3))))
        return min(7, max(1, round(1 + 0.6 * value + rng.gauss(0, 0.4))))

    # -- the plan ---------------------------------------------------------------------------

    def _plan_ticket(self, ticket: _Ticket) -> PlanTicket:
        steps = sorted((s for s in ticket.steps if s[0] < self.end), key=lambda s: s[0])
        out: list[Step] = []
        recovered = False
        for at, step in steps:
            if isinstance(step, FollowUp) and step.done_at and step.done_at >= self._dt(self.end):
                step = FollowUp(step.at, step.agent, step.due, step.reason, kind=step.kind)
            out.append(step)
            if isinstance(step, SurveyAnswer) and not recovered and _detractor(step):
                recovered = True
                recovery = self._recovery(ticket, at, step)
                if recovery is not None:
                    out.append(recovery)
        topic = self.topics[ticket.topic]
        return PlanTicket(
            key=f"t{ticket.index + 1:06d}",
            opened_at=self._dt(ticket.opened),
            customer=ticket.customer.key,
            channel=cast(Channel, ticket.channel),
            topic=topic.name,
            subject=ticket.subject,
            body=ticket.body,
            priority=cast(Priority, ticket.priority),
            tags=(topic.name,),
            steps=tuple(out),
        )

    def _recovery(self, ticket: _Ticket, at: float, answer: SurveyAnswer) -> FollowUp | None:
        """The recovery the follow-ups domain opens for the first unhappy answer, and how the
        ticket's owner closes it."""
        if ticket.agent is None:
            return None
        rng = self.rng
        due = at + self.s.service.recovery_hours * 3600
        done = at + rng.uniform(3600, self.s.service.recovery_hours * 3600 * 1.2)
        outcome = _OUTCOMES[-1][0]
        roll = rng.random()
        for name, share in _OUTCOMES:
            if roll < share:
                outcome = name
                break
            roll -= share
        if rng.random() >= 0.85:  # slips: done days after it was due, the customer gone quiet
            done = due + rng.uniform(86400, LATE_DAYS * 86400)
            outcome = "no_answer"
        finished = done < self.end
        return FollowUp(
            at=self._dt(at),
            agent=ticket.agent.key,
            due=self._dt(due),
            reason=f"{answer.kind.upper()} {answer.score}",
            done_at=self._dt(done) if finished else None,
            outcome=outcome if finished else "",
            kind="recovery",
            note=_RECOVERY_NOTES[outcome] if finished else "",
        )


LATE_DAYS = 21  # how late a follow-up that slips is done, at most (so the open ones are recent)

_RECOVERY_NOTES = {
    "resolved": "Called the customer, apologised and put it right.",
    "no_answer": "Tried twice by phone and once by email; no answer.",
    "escalated": "Passed to the team lead with a goodwill credit request.",
}


def _detractor(answer: SurveyAnswer) -> bool:
    return (answer.kind == "nps" and answer.score <= 6) or (
        answer.kind == "csat" and answer.score <= 2
    )
