"""Routes of live chat: the widget's files, the two WebSockets, the visitor's rating of an
ended chat over HTTP, and the chat pages.

The pages live on this router too (``include_in_schema=False``), so the one router wired
in ``app.py`` serves everything under ``/chat`` and ``/admin/chat``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, RedirectResponse, Response

from servicecycle.auth import service as auth
from servicecycle.auth.deps import Db, PageAdmin, PageUser, Principal, Public, page_access
from servicecycle.auth.models import Role
from servicecycle.chat import service, sockets
from servicecycle.chat.hub import Hub
from servicecycle.chat.schemas import ChatRated, ChatRating
from servicecycle.kit.errors import NotFound, ServiceError, Unauthenticated
from servicecycle.kit.secrets import BadToken
from servicecycle.surveys import in_place
from servicecycle.web.templating import STATIC_DIR, WEB_DIR, render


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Stop this process's chat hub (started by the first socket) when the app stops."""
    yield
    hub: Hub | None = getattr(app.state, "chat_hub", None)
    if hub is not None:
        await hub.stop()
        app.state.chat_hub = None


router = APIRouter(tags=["chat"], lifespan=_lifespan)

PageAgent = Annotated[Principal, Depends(page_access(Role.admin, Role.agent))]
ASSETS = {"widget.js": "chat-widget.js", "widget.css": "chat-widget.css"}
MEDIA = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}


def _asset(name: str) -> Response:
    """One of the widget's files: from the npm build's static folder, else from the source
    assets (our own files, so a checkout without a build still embeds)."""
    filename = ASSETS[name]
    path = STATIC_DIR / filename
    if not path.exists():
        path = WEB_DIR / "assets" / filename
    if not path.exists():
        raise NotFound(f"No {name}; run the asset build")
    return FileResponse(
        path,
        media_type=MEDIA[name.rsplit(".", 1)[1]],
        # other sites load it: short caching, and no referrer restriction on its requests
        headers={
            "cache-control": "public, max-age=300",
            "cross-origin-resource-policy": "cross-origin",
        },
    )


@router.get("/chat/widget.js", dependencies=[Public], include_in_schema=False)
async def widget_js() -> Response:
    """The embeddable widget: ``<script src=".../chat/widget.js" async></script>``."""
    return _asset("widget.js")


@router.get("/chat/widget.css", dependencies=[Public], include_in_schema=False)
async def widget_css() -> Response:
    return _asset("widget.css")


@router.websocket("/chat/ws/visitor")
async def visitor_socket(websocket: WebSocket) -> None:
    """A visitor's socket: only ever their own chat, bound by their signed token."""
    await sockets.visitor(websocket)


@router.websocket("/chat/ws/agent")
async def agent_socket(websocket: WebSocket) -> None:
    """An agent's socket: a signed-in agent or admin on one of our own pages."""
    await sockets.agent(websocket)


async def chat_visitor(request: Request) -> str:
    """The visitor id in the widget's signed token (``Authorization: Bearer <token>``, the
    token of the ``welcome`` frame); 401 without a valid one."""
    authorization = request.headers.get("authorization", "")
    token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
    try:
        return service.read_token(request.app.state.runtime.settings.keyring(), token)
    except BadToken:
        raise Unauthenticated("Send the chat's visitor token (Authorization: Bearer ...)") from None


chat_visitor.access = ("visitor", ())  # type: ignore[attr-defined]
ChatVisitor = Annotated[str, Depends(chat_visitor)]


@router.post(
    "/api/v1/chat/rating",
    response_model=ChatRated,
    summary="Rate my ended chat (again: changes the rating)",
    responses={
        401: {"description": "No valid visitor token"},
        404: {"description": "No chat, or the desk asks no CSAT"},
        409: {"description": "The chat has not ended"},
        422: {"description": "A score off the 1-5 scale; `fields` names it"},
    },
)
async def rate_chat(body: ChatRating, visitor_id: ChatVisitor, db: Db) -> ChatRated:
    """The same as the widget's ``rate`` frame: the visitor's latest chat, once ended, gets
    a CSAT answer through the surveys service (source ``chat``)."""
    chat = service.check_rateable(await service.last_chat(db, visitor_id))
    ticket = await service.rated_ticket(db, chat)
    response = await in_place.rate(
        db,
        ticket,
        kind="csat",
        score=body.score,
        comment=body.comment,
        source="chat",
        kinds=sockets.CHAT_RATING,
    )
    return ChatRated(kind=response.kind, score=response.score, comment=response.comment)


# -- pages ----------------------------------------------------------------------------------


def desk_url(request: Request) -> str:
    base = getattr(request.app.state.runtime.settings, "base_url", None)
    return (base or str(request.base_url)).rstrip("/")


@router.get("/chat", include_in_schema=False)
async def chat_page(request: Request, principal: PageAgent, db: Db) -> Response:
    """Agents answer chats here: waiting and active chats, live."""
    me = await auth.get_user(db, principal.identity.id)
    return render(
        request,
        "chat/agent.html",
        {
            "live": await service.list_chats(db, live=True),
            "recent": await service.list_chats(db, live=False, limit=15),
            "availability": me.availability,
            "max_chars": service.MAX_LINE_CHARS,
        },
    )


@router.get("/chat/demo", include_in_schema=False)
async def demo_page(request: Request, principal: PageUser, db: Db) -> Response:
    """A page embedding the widget exactly as a customer's site would."""
    return render(request, "chat/demo.html", {"desk": desk_url(request)})


def _snippet(desk: str) -> str:
    return f'<script src="{desk}/chat/widget.js" data-desk="{desk}" async></script>'


async def _admin(request: Request, db: Db, **extra: Any) -> Response:
    texts = await service.texts(db)
    desk = desk_url(request)
    context: dict[str, Any] = {
        "snippet": _snippet(desk),
        "desk": desk,
        "origins": request.app.state.runtime.settings.chat_allowed_origins,
        "greeting": texts.greeting,
        "offline_text": texts.offline_text,
        "error": None,
        "fields": {},
        "online": await service.agents_online(db),
    }
    context.update(extra)
    return render(request, "chat/admin.html", context, status_code=422 if extra else 200)


@router.get("/admin/chat", include_in_schema=False)
async def admin_page(request: Request, principal: PageAdmin, db: Db) -> Response:
    """The snippet to embed, allowed origins, and what the widget says."""
    return await _admin(request, db)


@router.post("/admin/chat", include_in_schema=False)
async def admin_save(request: Request, principal: PageAdmin, db: Db) -> Response:
    form = await request.form()
    greeting, offline_text = str(form.get("greeting", "")), str(form.get("offline_text", ""))
    try:
        async with db.begin_nested():
            await service.update_texts(
                db, greeting=greeting, offline_text=offline_text, actor=principal.actor
            )
    except ServiceError as exc:
        return await _admin(
            request,
            db,
            error=exc.message,
            fields=exc.fields,
            greeting=greeting,
            offline_text=offline_text,
        )
    if principal.web_session is not None:
        auth.add_flash(principal.web_session, "success", "Chat texts saved.")
    return RedirectResponse("/admin/chat", status_code=303)
