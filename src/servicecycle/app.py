"""The FastAPI application factory. Engines and the job queue are built in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from servicecycle import __version__
from servicecycle.auth import api as auth_api
from servicecycle.auth import pages as auth_pages
from servicecycle.auth.deps import Db, Public, signed_in
from servicecycle.automation import api as automation_api
from servicecycle.automation import macros as automation_macros
from servicecycle.automation import pages as automation_pages
from servicecycle.channels import api as channels_api
from servicecycle.channels import pages as channels_pages
from servicecycle.chat import api as chat_api
from servicecycle.config import Settings
from servicecycle.customers import api as customers_api
from servicecycle.customers import pages as customers_pages
from servicecycle.dashboard import pages as dashboard_pages
from servicecycle.db.engine import make_engine, make_sessionmaker
from servicecycle.events import api as events_api
from servicecycle.events import pages as events_pages
from servicecycle.followups import api as followups_api
from servicecycle.followups import pages as followups_pages
from servicecycle.jobs import service as job_service
from servicecycle.jobs.queue import bind_sessions, make_job_app
from servicecycle.notifications import api as notifications_api
from servicecycle.portal import api as portal_api
from servicecycle.portal import pages as portal_pages
from servicecycle.profiles import api as profiles_api
from servicecycle.profiles import pages as profiles_pages
from servicecycle.runtime import Runtime
from servicecycle.sla import api as sla_api
from servicecycle.sla import pages as sla_pages
from servicecycle.sla import service as sla_service
from servicecycle.surveys import api as surveys_api
from servicecycle.surveys import pages as surveys_pages
from servicecycle.tickets import api as tickets_api
from servicecycle.tickets import pages as tickets_pages
from servicecycle.tickets import search_pages as tickets_search_pages
from servicecycle.tickets import workspace as tickets_workspace
from servicecycle.web import errors
from servicecycle.web.observability import RequestContext, SecurityHeaders
from servicecycle.web.templating import STATIC_DIR, render
from servicecycle.webhooks import api as webhooks_api
from servicecycle.webhooks import pages as webhooks_pages

log = structlog.get_logger(__name__)

API_DESCRIPTION = """
The Servicecycle REST API. Authenticate with an API token (`Authorization: Bearer sc_...`,
made under *Account → API tokens*) or a browser session (then send `X-CSRF-Token` on writes).

Errors always have one shape: `{"error": {"code": "...", "message": "...", "fields": {...}}}`.
Lists are paged by cursor: pass `next_cursor` back as `cursor`. Updates need the record's
`version` (in the body or as `If-Match`); a stale version is refused with 412, never lost.
"""


def create_app(settings: Settings, database_url: str, *, run_worker: bool = True) -> FastAPI:
    """Build the app for one database. ``run_worker`` runs a job worker inside the server."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(database_url, pool_size=settings.db_pool_size)
        sessions = make_sessionmaker(engine)
        bind_sessions(sessions)
        job_app = make_job_app(database_url)
        app.state.runtime = Runtime(
            settings=settings,
            database_url=database_url,
            engine=engine,
            sessions=sessions,
            jobs=job_app,
            run_worker=run_worker,
        )
        worker: asyncio.Task[None] | None = None
        async with job_app.open_async():
            if run_worker:
                worker = asyncio.create_task(
                    job_app.run_worker_async(
                        install_signal_handlers=False,
                        concurrency=settings.worker_concurrency,
                        shutdown_graceful_timeout=10,
                        name="in-process",
                    )
                )
                log.info("worker.started", mode="in-process")
            try:
                yield
            finally:
                if worker is not None:
                    worker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker
                await engine.dispose()

    app = FastAPI(
        title="Servicecycle",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # served below from npm-built assets, not a CDN
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    errors.install(app)
    # the workspace shows SLA clocks and macros from domains above tickets, handed in here
    app.state.workspace = tickets_workspace.Sources(sla=sla_service, macros=automation_macros)
    app.include_router(_system_router())
    # API routers carry their own /api/v1 prefix, so a route's path is its full template
    # (the metrics label it by that); they come first: a request is matched against the
    # routes in order, and API clients send the most requests
    app.include_router(auth_api.router)
    app.include_router(customers_api.router)
    app.include_router(tickets_api.router)
    app.include_router(events_api.router)
    app.include_router(sla_api.router)
    app.include_router(automation_api.router)
    app.include_router(notifications_api.router)
    app.include_router(channels_api.router)
    app.include_router(portal_api.router)
    app.include_router(webhooks_api.router)
    app.include_router(chat_api.router)
    app.include_router(surveys_api.router)
    app.include_router(followups_api.router)
    app.include_router(profiles_api.router)
    app.include_router(auth_pages.router)
    app.include_router(dashboard_pages.router)
    app.include_router(events_pages.router)
    app.include_router(tickets_pages.router)
    app.include_router(tickets_search_pages.router)
    app.include_router(customers_pages.router)
    app.include_router(sla_pages.router)
    app.include_router(automation_pages.router)
    app.include_router(channels_pages.router)
    app.include_router(webhooks_pages.router)
    app.include_router(portal_pages.router)
    app.include_router(surveys_pages.router)
    app.include_router(followups_pages.router)
    app.include_router(profiles_pages.router)
    STATIC_DIR.mkdir(exist_ok=True)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(SecurityHeaders, max_body=settings.max_request_bytes)
    app.add_middleware(RequestContext)
    return app


# what `serve --workers N` hands each worker process (it builds its own app from them)
SERVE_URL_ENV = "SERVICECYCLE_SERVE_DATABASE_URL"
SERVE_JOBS_ENV = "SERVICECYCLE_SERVE_RUN_WORKER"


def from_environment() -> FastAPI:
    """The app of one of several server processes (``serve --workers N``): the parent
    found the database and migrated it, and passes its URL in the environment."""
    from servicecycle.config import get_settings
    from servicecycle.web.observability import configure_logging

    settings = get_settings()
    configure_logging(json=settings.log_format == "json", level=settings.log_level)
    return create_app(
        settings, os.environ[SERVE_URL_ENV], run_worker=os.environ.get(SERVE_JOBS_ENV) == "1"
    )


def _system_router() -> APIRouter:
    router = APIRouter(tags=["system"])

    @router.get("/healthz", dependencies=[Public], summary="Database and worker state")
    async def healthz(request: Request) -> JSONResponse:
        rt: Runtime = request.app.state.runtime
        body: dict[str, Any] = {"status": "ok", "version": __version__}
        try:
            async with rt.sessions() as session:
                await session.execute(text("SELECT 1"))
                state = await job_service.worker_state(session)
            body["database"] = "ok"
            body["worker"] = {
                "state": "ok" if state.healthy else "no worker",
                "alive": state.workers_alive,
                "last_heartbeat": state.last_heartbeat.isoformat()
                if state.last_heartbeat
                else None,
                "queued": state.queued,
                "failed": state.failed,
            }
            if not state.healthy:
                body["status"] = "degraded"
        except Exception as exc:  # health must answer even when the database does not
            log.warning("healthz.database_unreachable", error=type(exc).__name__)
            body.update(status="error", database="unreachable")
            return JSONResponse(body, status_code=503)
        return JSONResponse(body)

    @router.get(
        "/metrics", dependencies=[Public], summary="Prometheus metrics", response_class=Response
    )
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @router.get("/api/v1/docs", dependencies=[Public], include_in_schema=False)
    async def api_docs(request: Request, db: Db) -> Response:
        """The interactive API reference (Swagger UI from npm-built assets).

        A signed-in browser's CSRF token goes on the page, so "Try it out" can write too."""
        await signed_in(request, db)
        return render(request, "api_docs.html", in_transaction=False)

    return router
