"""The realised numbers behind the planted truths, read from a finished desk run. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from servicecycle.simulation.desk import Desk
from servicecycle.simulation.plan import SurveyAnswer


@dataclass(frozen=True)
class Facts:
    """What the run produced, for the answers file."""

    handling_by_topic: dict[str, float]
    first_session_by_topic: dict[str, float]
    tickets_by_topic: dict[str, int]
    bottleneck: dict[str, Any]
    detractor: dict[str, Any]
    training: dict[str, Any]


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 3) if values else 0.0


def facts_of(desk: Desk) -> Facts:
    """The realised numbers behind the planted truths."""
    topics = [t.name for t in desk.topics]
    work: dict[str, list[float]] = {t: [] for t in topics}
    first: dict[str, list[float]] = {t: [] for t in topics}
    pending: dict[str, list[float]] = {t.name: [] for t in desk.s.teams}
    nps: dict[str, list[int]] = {t: [] for t in topics}
    trainee_first: list[float] = []
    others_first: list[float] = []
    trainee_reopen: list[float] = []
    others_reopen: list[float] = []
    for t in desk.tickets:
        name = topics[t.topic]
        if t.first_session is not None:
            work[name].append(t.work)
            if t.first_agent is desk.trainee and t.topic == desk.training_topic:
                trainee_first.append(t.first_session)
            else:
                first[name].append(t.first_session)
                if t.topic == desk.training_topic:
                    others_first.append(t.first_session)
        if t.topic == desk.training_topic and t.solves:
            (trainee_reopen if t.first_agent is desk.trainee else others_reopen).append(
                1.0 if t.reopens else 0.0
            )
        for begin, end in t.pendings:
            if end <= desk.end:
                pending[desk.topics[t.topic].team].append((end - begin) / 3600)
        for at, step in t.steps:
            if isinstance(step, SurveyAnswer) and step.kind == "nps" and at < desk.end:
                nps[name].append(step.score)
    bottleneck: dict[str, Any] = {}
    if desk.bottleneck is not None:
        team = desk.bottleneck.team
        others = [h for k, v in pending.items() if k != team for h in v]
        bottleneck = {
            "team": team,
            "status": "pending",
            "pending_multiplier": desk.bottleneck.pending_multiplier,
            "mean_hours": _mean(pending[team]),
            "others_mean_hours": _mean(others),
            "mean_hours_by_team": {k: _mean(v) for k, v in pending.items()},
        }
    detractor: dict[str, Any] = {}
    planted = desk.s.planted
    if planted.detractor is not None:
        detractor = {
            "topic": planted.detractor.topic,
            "score_drop": planted.detractor.score_drop,
            "nps_by_topic": {k: _nps(v) for k, v in nps.items() if v},
            "nps_answers_by_topic": {k: len(v) for k, v in nps.items()},
        }
    training: dict[str, Any] = {}
    if planted.training is not None and desk.trainee is not None:
        p = planted.training
        training = {
            "agent": p.agent,
            "key": desk.trainee.key,
            "topic": p.topic,
            "slowdown": p.slowdown,
            "extra_reopen_chance": p.extra_reopen_chance,
            "score_drop": p.score_drop,
            "tickets": len(trainee_first),
            "first_session_minutes": _mean(trainee_first),
            "others_first_session_minutes": _mean(others_first),
            "reopen_rate": _mean(trainee_reopen),
            "others_reopen_rate": _mean(others_reopen),
        }
    return Facts(
        handling_by_topic={k: _mean(v) for k, v in work.items()},
        first_session_by_topic={k: _mean(v) for k, v in first.items()},
        tickets_by_topic={k: len(v) for k, v in work.items()},
        bottleneck=bottleneck,
        detractor=detractor,
        training=training,
    )


def _nps(scores: list[int]) -> float:
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    return round(100 * (promoters - detractors) / len(scores), 2)
