"""Customer pages: find a customer, see their profile and everything that happened with them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from servicecycle.auth.deps import Db, PageUser
from servicecycle.customers import service
from servicecycle.customers.models import Customer
from servicecycle.kit import clock
from servicecycle.kit.errors import ServiceError
from servicecycle.kit.pagination import Page
from servicecycle.tickets import workspace
from servicecycle.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/customers")
async def customer_list(
    request: Request,
    principal: PageUser,
    db: Db,
    q: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> Response:
    query = (q or "").strip()
    error, code = None, 200
    page: Page[Customer] = Page(items=[], next_cursor=None)
    try:
        page = await service.list_customers(db, query=query or None, limit=50, cursor=cursor)
    except ServiceError as exc:
        error, code = exc.message, exc.status_code
    identities = await service.identities_of(db, [c.id for c in page.items])
    return render(
        request,
        "customers/list.html",
        {
            "customers": page.items,
            "identities": identities,
            "q": query,
            "next_cursor": page.next_cursor,
            "error": error,
        },
        status_code=code,
    )


@router.get("/customers/{customer_id}")
async def customer_page(
    request: Request, customer_id: int, principal: PageUser, db: Db
) -> Response:
    customer = await service.get_customer(db, customer_id)
    identities = (await service.identities_of(db, [customer.id]))[customer.id]
    company = await service.get_company(db, customer.company_id) if customer.company_id else None
    tickets, timeline = await workspace.customer_timeline(db, customer)
    return render(
        request,
        "customers/customer.html",
        {
            "customer": customer,
            "identities": identities,
            "company": company,
            "tickets": tickets,
            "timeline": timeline,
            "can_work": principal.identity.role in workspace.ASSIGNABLE,
            "now": clock.now(),
        },
    )
