"""Routing: who in a team gets an unassigned ticket. Flushes; the caller commits.

Modes per team: ``manual`` (nobody is chosen), ``round_robin`` (the next online member
after the last one chosen), ``least_loaded`` (the online member with the fewest open
tickets, relative to their capacity), ``skills`` (members with the ticket type as a skill,
best level first, then least loaded). Only members who are online and under capacity are
chosen; a ticket nobody can take waits until someone comes online.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth import service as auth
from servicecycle.auth.models import Role, Team, User
from servicecycle.events.service import Actor, record
from servicecycle.tickets import service as tickets
from servicecycle.tickets.models import Ticket

ROUTER = Actor.system("routing")


@dataclass(frozen=True)
class Candidate:
    user: User
    load: int


def pick(
    mode: str, candidates: list[Candidate], *, last_id: int | None, skill: str | None
) -> User | None:
    """The member to give the next ticket to. Pure."""
    if not candidates or mode == "manual":
        return None
    if mode == "round_robin":
        ordered = sorted(candidates, key=lambda c: c.user.id)
        after = [c for c in ordered if last_id is not None and c.user.id > last_id]
        return (after or ordered)[0].user
    if mode == "skills" and skill:
        skilled = [c for c in candidates if c.user.skills.get(skill, 0) > 0]
        if skilled:
            best = max(c.user.skills[skill] for c in skilled)
            candidates = [c for c in skilled if c.user.skills[skill] == best]
    # least loaded (and the tie-break for skills): lowest share of capacity, then fewest tickets
    return min(candidates, key=lambda c: (c.load / max(c.user.capacity, 1), c.load, c.user.id)).user


async def _candidates(session: AsyncSession, team: Team) -> list[Candidate]:
    members = [
        m
        for m in await auth.team_members(session, team.id)
        if m.is_active and m.availability == "online" and m.role in (Role.agent, Role.admin)
    ]
    loads = await tickets.open_counts(session, [m.id for m in members])
    return [Candidate(m, loads[m.id]) for m in members if loads[m.id] < m.capacity]


async def route(session: AsyncSession, ticket: Ticket) -> User | None:
    """Assign an unassigned ticket of a routed team to the member its team's mode picks."""
    if (
        ticket.assignee_id is not None
        or ticket.team_id is None
        or ticket.status in ("solved", "closed")
    ):
        return None
    team = await auth.get_team(session, ticket.team_id)
    if team.routing == "manual":
        return None
    candidates = await _candidates(session, team)
    skill = (ticket.type or "").strip().lower() or None
    chosen = pick(team.routing, candidates, last_id=team.last_assigned_user_id, skill=skill)
    if chosen is None:
        return None
    await tickets.assign(session, ticket, assignee_id=chosen.id, team_id=team.id, actor=ROUTER)
    team.last_assigned_user_id = chosen.id
    await session.flush()
    await record(
        session,
        "ticket.routed",
        subject_type="ticket",
        subject_id=ticket.id,
        actor=ROUTER,
        data={
            "mode": team.routing,
            "assignee_id": chosen.id,
            "candidates": [c.user.id for c in candidates],
        },
    )
    return chosen


async def drain(session: AsyncSession, user: User, *, limit: int = 50) -> int:
    """An agent came online: route the tickets waiting for their teams, oldest first."""
    teams = [t for t in await auth.teams_of(session, user.id) if t.routing != "manual"]
    routed = 0
    for ticket in await tickets.waiting_for_teams(session, [t.id for t in teams], limit=limit):
        if await route(session, ticket) is not None:
            routed += 1
    return routed
