"""The demo: six months of a simulated online shop, replayed through the services.

The first load runs the default scenario (``simulation/scenarios/online_shop.toml``, a fixed
seed, ending today) through the simulation driver, so the demo's tickets, event log, SLA
clocks and survey answers are made exactly as users make them. Later loads only add the
demo sign-ins that are missing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

from servicecycle.auth import service as auth
from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
from servicecycle.events.service import Actor
from servicecycle.simulation.driver import StaffUser, has_tickets, replay

DEMO_PASSWORD = "servicecycle-demo"  # noqa: S105 - published demo credentials
DEMO_LOGINS = [
    ("admin", "admin@demo.servicecycle.test", DEMO_PASSWORD),
    ("agent", "ana@demo.servicecycle.test", DEMO_PASSWORD),
    ("agent", "ben@demo.servicecycle.test", DEMO_PASSWORD),
    ("analyst", "ola@demo.servicecycle.test", DEMO_PASSWORD),
]
DEMO_SEED = 2026
# the people the scenario does not name: it has the agents (ana and ben among them)
STAFF = (
    StaffUser("admin@demo.servicecycle.test", "Alex Admin", "admin"),
    StaffUser("ola@demo.servicecycle.test", "Ola Nordmann", "analyst"),
)
_NAMES = {
    "admin@demo.servicecycle.test": "Alex Admin",
    "ana@demo.servicecycle.test": "Ana Lima",
    "ben@demo.servicecycle.test": "Ben Okafor",
    "ola@demo.servicecycle.test": "Ola Nordmann",
}

Report = Callable[[str, int, int], None]  # (phase, done, total)


async def load(
    url: str,
    *,
    progress: Report | None = None,
    scenario: Path | None = None,
    end: date | None = None,
    tickets: int | None = None,
) -> int:
    """Load the demo business if the desk has no tickets yet, and add any missing demo
    sign-in; returns how many records were added (0 when everything is there). ``scenario``
    and ``end`` replace the default scenario and today (the tests load a small one);
    ``tickets`` shrinks (or grows) the scenario to about that many tickets, same months."""
    engine = make_engine(url, pool_size=1)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            empty = not await has_tickets(session)
    finally:
        await engine.dispose()
    created = 0
    if empty:
        created += await _simulate(url, progress, scenario, end, tickets)
    return created + await _logins(url)


async def _simulate(
    url: str,
    progress: Report | None,
    scenario: Path | None,
    end: date | None,
    tickets: int | None,
) -> int:
    import tomllib

    from servicecycle.simulation.generate import generate
    from servicecycle.simulation.scenario import (
        default_scenario_path,
        load_scenario,
        parse_scenario,
    )

    if progress is not None:
        progress("Simulating", 0, 1)
    path = scenario or default_scenario_path()
    model = load_scenario(path)
    if tickets is not None:
        data = tomllib.loads(path.read_text("utf-8"))
        share = tickets / model.arrivals.expected_tickets
        data["arrivals"]["expected_tickets"] = tickets
        people = data["customers"]
        people["count"] = max(20, round(people["count"] * share))
        people["companies"] = max(2, round(people["companies"] * share))
        model = parse_scenario(data)
    plan = generate(model, seed=DEMO_SEED, end=end)
    if progress is not None:
        progress("Simulating", 1, 1)
    summary = await replay(
        url,
        plan,
        staff=STAFF,
        password=DEMO_PASSWORD,
        progress=None if progress is None else lambda d, t: progress("Replaying", d, t),
    )
    return summary.records


async def _logins(url: str) -> int:
    """The published sign-ins, made if missing (for a desk that had tickets already)."""
    engine = make_engine(url, pool_size=1)
    created = 0
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            for role, email, password in DEMO_LOGINS:
                if await auth.find_user_by_email(session, email) is None:
                    await auth.create_user(
                        session,
                        email=email,
                        name=_NAMES[email],
                        role=role,
                        password=password,
                        actor=Actor.system("demo"),
                    )
                    created += 1
    finally:
        await engine.dispose()
    return created
