"""The search page of the workspace: tickets (ranked, highlighted) and customers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from servicecycle.auth.deps import Db
from servicecycle.kit.errors import ValidationFailed
from servicecycle.tickets import search, workspace
from servicecycle.tickets.pages import PageAgent
from servicecycle.tickets.query_syntax import FIELDS
from servicecycle.web.templating import render

router = APIRouter(include_in_schema=False)

LIMIT = 50


@router.get("/search")
async def search_page(
    request: Request,
    principal: PageAgent,
    db: Db,
    q: Annotated[str, Query(max_length=500)] = "",
) -> Response:
    """Search as the API does; an empty box shows the syntax, a bad query says what is wrong."""
    found: search.Results | None = None
    error = None
    requesters: dict[int, str] = {}
    assignees: dict[int, str] = {}
    if q.strip():
        try:
            found = await search.search(db, q, me=principal.identity.id, limit=LIMIT)
        except ValidationFailed as exc:
            error = exc.message + "".join(f" ({text})" for text in exc.fields.values())
        else:
            requesters = await workspace.customer_names(db, (t.requester_id for t in found.tickets))
            assignees = await workspace.user_names(db, (t.assignee_id for t in found.tickets))
    return render(
        request,
        "tickets/search.html",
        {
            "q": q,
            "found": found,
            "error": error,
            "limit": LIMIT,
            "requesters": requesters,
            "assignees": assignees,
            "fields": FIELDS,
        },
        status_code=422 if error else 200,
    )
