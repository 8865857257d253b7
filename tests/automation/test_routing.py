from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth import service as auth
from servicecycle.automation.routing import Candidate, pick
from servicecycle.events.service import Actor
from servicecycle.tickets import service as tickets
from tests.factories import Token

ADMIN = Actor.user(1)
Make = Callable[..., Awaitable[Any]]


async def _team(
    db: AsyncSession, make_user: Make, mode: str, n: int, **user: Any
) -> tuple[Any, list[Any]]:
    team = await auth.create_team(db, name=f"Team {mode}", description="", actor=ADMIN)
    await auth.set_team_routing(db, team, mode, actor=ADMIN)
    agents = []
    for _ in range(n):
        agent = await auth.get_user(db, (await make_user("agent")).id)
        await auth.add_team_member(db, team, agent, actor=ADMIN)
        await auth.update_user(
            db, agent, expected_version=agent.version, changes=user, actor=ADMIN
        ) if user else None
        await auth.set_availability(db, agent, "online", actor=ADMIN)
        agents.append(agent)
    return team, agents


@pytest.mark.parametrize(("agents", "tickets_count"), [(3, 10), (4, 17), (5, 5)])
async def test_round_robin_stays_within_one_ticket(
    db: AsyncSession, make_user: Make, make_ticket: Make, agents: int, tickets_count: int
) -> None:
    team, members = await _team(db, make_user, "round_robin", agents)
    for _ in range(tickets_count):
        await make_ticket(team_id=team.id)
    counts = await tickets.open_counts(db, [m.id for m in members])
    assert sum(counts.values()) == tickets_count
    assert max(counts.values()) - min(counts.values()) <= 1


async def test_least_loaded_and_capacity(
    db: AsyncSession, make_user: Make, make_ticket: Make
) -> None:
    team, (busy, free) = await _team(db, make_user, "least_loaded", 2, capacity=2)
    for _ in range(2):
        await make_ticket(assignee_id=busy.id)
    routed = await make_ticket(team_id=team.id)
    assert (await tickets.get_ticket(db, routed.id)).assignee_id == free.id
    await make_ticket(team_id=team.id)
    waiting = await make_ticket(team_id=team.id)  # both at capacity: it waits
    assert (await tickets.get_ticket(db, waiting.id)).assignee_id is None


def test_skills_pick_the_best_level_then_the_least_loaded() -> None:
    class U:
        def __init__(self, id: int, skills: dict[str, int], capacity: int = 10) -> None:
            self.id, self.skills, self.capacity = id, skills, capacity

    ana, ben, cy = U(1, {"billing": 2}), U(2, {"billing": 5}), U(3, {"billing": 5})
    people = [Candidate(ana, 0), Candidate(ben, 4), Candidate(cy, 1)]  # type: ignore[arg-type]
    assert pick("skills", people, last_id=None, skill="billing") is cy
    assert (
        pick("skills", people, last_id=None, skill="returns") is ana
    )  # nobody skilled: least loaded
    assert pick("round_robin", people, last_id=2, skill=None) is cy
    assert pick("round_robin", people, last_id=3, skill=None) is ana
    assert pick("manual", people, last_id=None, skill=None) is None


async def test_waiting_tickets_go_to_an_agent_who_comes_online(
    client: AsyncClient,
    make_token: Callable[..., Awaitable[Token]],
    make_ticket: Make,
    db: AsyncSession,
) -> None:
    admin = await make_token("admin")
    agent = await make_token("agent")
    team = (
        await client.post("/api/v1/teams", headers=admin.headers, json={"name": "Night"})
    ).json()
    await client.post(
        f"/api/v1/teams/{team['id']}/members",
        headers=admin.headers,
        json={"user_id": agent.user.id},
    )
    routed = await client.patch(
        f"/api/v1/teams/{team['id']}", headers=admin.headers, json={"routing": "round_robin"}
    )
    assert routed.json()["routing"] == "round_robin"
    first, second = await make_ticket(team_id=team["id"]), await make_ticket(team_id=team["id"])
    assert (await tickets.get_ticket(db, first.id)).assignee_id is None  # nobody online yet
    online = await client.put(
        "/api/v1/me/availability", headers=agent.headers, json={"status": "online"}
    )
    assert online.status_code == 200 and online.json()["availability"] == "online"
    assigned = [
        (await client.get(f"/api/v1/tickets/{t.id}", headers=agent.headers)).json()["assignee_id"]
        for t in (first, second)
    ]
    assert assigned == [agent.user.id, agent.user.id]
    bad = await client.put(
        "/api/v1/me/availability", headers=agent.headers, json={"status": "asleep"}
    )
    assert bad.status_code == 422
    skills = await client.patch(
        f"/api/v1/users/{agent.user.id}",
        headers=admin.headers,
        json={"skills": {"billing": 9}, "version": agent.user.version},
    )
    assert skills.status_code == 422 and "skills" in skills.json()["error"]["fields"]
