"""A small hand-made seed for the demo (until the simulated business replaces it)."""

from __future__ import annotations

from sqlalchemy import select

from servicecycle.auth import service as auth
from servicecycle.auth.models import Team
from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
from servicecycle.events.service import Actor

DEMO_PASSWORD = "servicecycle-demo"  # noqa: S105 - published demo credentials
DEMO_LOGINS = [
    ("admin", "admin@demo.servicecycle.test", DEMO_PASSWORD),
    ("agent", "ana@demo.servicecycle.test", DEMO_PASSWORD),
    ("agent", "ben@demo.servicecycle.test", DEMO_PASSWORD),
    ("analyst", "ola@demo.servicecycle.test", DEMO_PASSWORD),
]
_NAMES = {
    "admin@demo.servicecycle.test": "Alex Admin",
    "ana@demo.servicecycle.test": "Ana Lima",
    "ben@demo.servicecycle.test": "Ben Okafor",
    "ola@demo.servicecycle.test": "Ola Nordmann",
}
_TEAMS = {
    "Support": ("First line: orders, delivery, accounts", ["ana@demo.servicecycle.test"]),
    "Billing": ("Invoices, refunds and payments", ["ben@demo.servicecycle.test"]),
}


async def load(url: str) -> int:
    """Add the demo users and teams that are missing; returns how many records were added."""
    engine = make_engine(url, pool_size=1)
    actor = Actor.system("demo")
    created = 0
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            users = {}
            for role, email, password in DEMO_LOGINS:
                user = await auth.find_user_by_email(session, email)
                if user is None:
                    user = await auth.create_user(
                        session,
                        email=email,
                        name=_NAMES[email],
                        role=role,
                        password=password,
                        actor=actor,
                    )
                    created += 1
                users[email] = user
            for name, (description, members) in _TEAMS.items():
                team = await session.scalar(select(Team).where(Team.name == name))
                if team is None:
                    team = await auth.create_team(
                        session, name=name, description=description, actor=actor
                    )
                    created += 1
                for email in members:
                    await auth.add_team_member(session, team, users[email], actor=actor)
    finally:
        await engine.dispose()
    return created
