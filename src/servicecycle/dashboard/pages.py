"""The start page after sign-in."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from servicecycle.auth.deps import Db, PageUser
from servicecycle.auth.models import Role
from servicecycle.events import service as events
from servicecycle.jobs import service as jobs
from servicecycle.web.templating import render

router = APIRouter(include_in_schema=False)
READERS = (Role.admin, Role.analyst)


@router.get("/")
async def home(request: Request, principal: PageUser, db: Db) -> Response:
    state = await jobs.worker_state(db)
    # the event log names people and addresses: only roles that may read it see it here
    recent = (await events.query(db, limit=8)).items if principal.role in READERS else []
    return render(request, "dashboard/home.html", {"worker": state, "recent": recent})
