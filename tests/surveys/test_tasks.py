"""The minute job: registered as periodic, and sending what is due."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicecycle.channels.models import OutboundMail
from servicecycle.config import Settings, get_settings
from servicecycle.jobs.queue import bind_sessions, register_all_tasks
from servicecycle.jobs.queue import tasks as blueprint
from servicecycle.surveys import service, tasks
from tests.surveys.conftest import Clock
from tests.surveys.test_flow import _events, _solve, _survey


@pytest.fixture
def own_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SERVICECYCLE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SERVICECYCLE_BASE_URL", "https://help.example.com")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_job_runs_every_minute() -> None:
    register_all_tasks()
    assert "surveys.send_due" in blueprint.tasks
    assert any(
        p.task.name == "surveys.send_due" and p.cron == "* * * * *"
        for p in blueprint.periodic_registry.periodic_tasks.values()
    )


def test_links_point_at_the_public_address(tmp_path: Path) -> None:
    local = tasks.mailer(Settings(data_dir=tmp_path))
    assert local.base_url == "http://127.0.0.1:8000"
    public = tasks.mailer(Settings(data_dir=tmp_path, base_url="https://help.example.com"))
    assert public.base_url == "https://help.example.com"


async def test_the_job_sends_due_invitations(
    sessions: async_sessionmaker[AsyncSession],
    make_ticket: Any,
    frozen: Clock,
    own_settings: None,
) -> None:
    await _survey(sessions, "ces", delay_hours=0)
    ticket = await make_ticket()
    await _solve(sessions, ticket.id)
    bind_sessions(sessions)
    try:
        await tasks.send_due.func(timestamp=int(frozen.at.timestamp()))
    finally:
        bind_sessions(None)
    [sent] = await _events(sessions, "survey.sent")
    assert sent.subject_id == str(ticket.id) and sent.data["kind"] == "ces"
    [queued] = [e for e in await _events(sessions, "mail.queued") if e.data["kind"] == "survey"]
    assert queued.data["invitation_id"] == sent.data["invitation_id"]
    async with sessions() as session:
        mail = await session.get(OutboundMail, sent.data["outbound_id"])
    assert mail is not None and mail.subject.startswith("How did we do?")
    assert "https://help.example.com/surveys/r/" in mail.body_text
    async with sessions() as session:
        [row] = await service.score_table(session, kind="ces", group="channel")
    # sent, not answered yet: no score, a response rate of 0 of 1
    assert (row["key"], row["n"], row["mean"], row["sent"], row["response_rate"]) == (
        "email",
        0,
        None,
        1,
        0.0,
    )
    assert "7  https://" in mail.body_text and "0  https://" not in mail.body_text  # CES: 1-7
