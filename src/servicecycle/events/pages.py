"""The activity page: the event log, filterable, for admins and analysts."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from servicecycle.auth.deps import Db, PageAnalyst
from servicecycle.events import service
from servicecycle.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/activity")
async def activity(
    request: Request,
    principal: PageAnalyst,
    db: Db,
    kind: str | None = None,
    subject_type: str | None = None,
    cursor: str | None = None,
) -> Response:
    page = await service.query(
        db,
        kinds=[kind] if kind else None,
        subject_type=subject_type or None,
        limit=50,
        cursor=cursor,
    )
    return render(
        request,
        "events/activity.html",
        {
            "events": page.items,
            "next_cursor": page.next_cursor,
            "kind": kind or "",
            "subject_type": subject_type or "",
        },
    )
