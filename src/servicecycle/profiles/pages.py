"""Profile fragments for the customer page and the ticket side panel."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from servicecycle.auth.deps import Db, PageUser
from servicecycle.profiles import service
from servicecycle.web.templating import render

router = APIRouter(include_in_schema=False)

SEGMENTS = {
    "promoter": ("Promoter", "ok"),
    "passive": ("Passive", ""),
    "detractor": ("Detractor", "warn"),
    "at_risk": ("At risk", "bad"),
    "unknown": ("Unknown", ""),
}


@router.get("/profiles/customers/{customer_id:int}")
async def customer_fragment(
    request: Request, customer_id: int, principal: PageUser, db: Db, compact: int = 0
) -> Response:
    """The health score with its parts and the segment; ``?compact=1`` for the ticket's side
    panel (segment, score bar, parts), else with the lifetime history too."""
    profile = await service.profile(db, customer_id)
    label, tone = SEGMENTS[profile.segment]
    response = render(
        request,
        "profiles/_profile.html",
        {
            "profile": profile,
            "segment_label": label,
            "segment_tone": tone,
            "compact": bool(compact),
            "can_work": principal.role in ("admin", "agent"),
        },
    )
    response.headers["Cache-Control"] = "no-store"
    return response
