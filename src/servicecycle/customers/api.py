"""REST routes for customers and companies."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.auth.deps import ApiAgent, ApiUser, Db
from servicecycle.customers import service
from servicecycle.customers.models import Customer
from servicecycle.customers.schemas import (
    CompanyCreate,
    CompanyRead,
    CustomerCreate,
    CustomerPage,
    CustomerRead,
    CustomerUpdate,
    IdentityCreate,
    IdentityRead,
)
from servicecycle.web.concurrency import etag, parse_if_match

router = APIRouter(prefix="/api/v1", tags=["customers"])


async def read_many(db: AsyncSession, customers: list[Customer]) -> list[CustomerRead]:
    identities = await service.identities_of(db, [c.id for c in customers])
    return [
        CustomerRead(
            id=c.id,
            name=c.name,
            company_id=c.company_id,
            tier=c.tier,
            segment=c.segment,
            tags=c.tags,
            notes=c.notes,
            attributes=c.attributes,
            merged_into_id=c.merged_into_id,
            created_at=c.created_at,
            version=c.version,
            identities=[IdentityRead.model_validate(i) for i in identities[c.id]],
        )
        for c in customers
    ]


@router.get("/customers", response_model=CustomerPage)
async def list_customers(
    principal: ApiUser,
    db: Db,
    q: Annotated[
        str | None, Query(max_length=200, description="Part of a name or identity")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> CustomerPage:
    page = await service.list_customers(db, query=q, limit=limit, cursor=cursor)
    return CustomerPage(items=await read_many(db, page.items), next_cursor=page.next_cursor)


@router.post("/customers", response_model=CustomerRead, status_code=status.HTTP_201_CREATED)
async def create_customer(
    body: CustomerCreate, principal: ApiAgent, db: Db, response: Response
) -> CustomerRead:
    customer = await service.create_customer(db, actor=principal.actor, **body.model_dump())
    response.headers["Location"] = f"/api/v1/customers/{customer.id}"
    response.headers["ETag"] = etag(customer.version)
    return (await read_many(db, [customer]))[0]


@router.get("/customers/{customer_id}", response_model=CustomerRead)
async def get_customer(
    customer_id: int, principal: ApiUser, db: Db, response: Response
) -> CustomerRead:
    customer = await service.get_customer(db, customer_id)
    response.headers["ETag"] = etag(customer.version)
    return (await read_many(db, [customer]))[0]


@router.patch("/customers/{customer_id}", response_model=CustomerRead)
async def update_customer(
    customer_id: int,
    body: CustomerUpdate,
    principal: ApiAgent,
    db: Db,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> CustomerRead:
    expected = parse_if_match(if_match, body.version)
    customer = await service.get_customer(db, customer_id)
    customer = await service.update_customer(
        db,
        customer,
        expected_version=expected,
        changes=body.model_dump(exclude_unset=True, exclude={"version"}),
        actor=principal.actor,
    )
    response.headers["ETag"] = etag(customer.version)
    return (await read_many(db, [customer]))[0]


@router.post(
    "/customers/{customer_id}/identities",
    response_model=CustomerRead,
    status_code=status.HTTP_201_CREATED,
)
async def add_identity(
    customer_id: int, body: IdentityCreate, principal: ApiAgent, db: Db
) -> CustomerRead:
    customer = await service.get_customer(db, customer_id)
    await service.add_identity(
        db, customer, kind=body.kind, value=body.value, actor=principal.actor
    )
    return (await read_many(db, [customer]))[0]


@router.get("/companies", response_model=list[CompanyRead])
async def list_companies(principal: ApiUser, db: Db) -> list[CompanyRead]:
    return [CompanyRead.model_validate(c) for c in await service.list_companies(db)]


@router.post("/companies", response_model=CompanyRead, status_code=status.HTTP_201_CREATED)
async def create_company(body: CompanyCreate, principal: ApiAgent, db: Db) -> CompanyRead:
    company = await service.create_company(
        db, name=body.name, domain=body.domain, tier=body.tier, actor=principal.actor
    )
    return CompanyRead.model_validate(company)
