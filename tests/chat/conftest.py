"""A real server on a fresh database, in this test's event loop, for WebSocket tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from websockets.asyncio.client import ClientConnection, connect

from servicecycle.app import create_app
from servicecycle.auth import service as auth
from servicecycle.auth.models import User
from servicecycle.config import Settings
from servicecycle.db.engine import make_engine, make_sessionmaker
from servicecycle.events.service import Actor
from tests.cli.test_serve_lifecycle import free_port
from tests.factories import PASSWORD, sign_in

SEEDER = Actor.system("test")


class DeskSettings(Settings):
    """The settings with the chat's origin allow-list (proposed for config.py)."""

    chat_allowed_origins: str = "*"


@dataclass
class Desk:
    url: str
    ws: str
    sessions: async_sessionmaker[AsyncSession]
    engine: AsyncEngine
    settings: DeskSettings
    database_url: str

    async def user(self, role: str = "agent", *, online: bool = True, name: str = "Ana") -> User:
        async with self.sessions() as session, session.begin():
            user = await auth.create_user(
                session,
                email=f"{name.lower()}-{role}@example.com",
                name=name,
                role=role,
                password=PASSWORD,
                actor=SEEDER,
            )
            if online:
                await auth.set_availability(session, user, "online", actor=SEEDER)
            return user

    async def visitor(self, origin: str = "https://shop.example") -> Visitor:
        socket = await connect(self.ws + "/chat/ws/visitor", origin=origin)  # type: ignore[arg-type]
        return Visitor(socket)

    async def agent(self, email: str) -> Visitor:
        async with AsyncClient(base_url=self.url) as http:
            await sign_in(http, email)
            cookie = http.cookies["sc_session"]
        socket = await connect(
            self.ws + "/chat/ws/agent",
            origin=self.url,  # type: ignore[arg-type]
            additional_headers={"Cookie": f"sc_session={cookie}"},
        )
        return Visitor(socket)

    async def api(self, email: str) -> AsyncClient:
        http = AsyncClient(base_url=self.url)
        csrf = await sign_in(http, email)
        http.headers["X-CSRF-Token"] = csrf
        return http


@dataclass
class Visitor:
    """A socket with helpers that wait for a frame of a given type."""

    socket: ClientConnection

    async def send(self, **frame: Any) -> None:
        await self.socket.send(json.dumps(frame))

    async def receive(self) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(self.socket.recv(), 10))
        return frame

    async def until(self, kind: str, **match: Any) -> dict[str, Any]:
        """The next frame of ``kind`` whose fields equal ``match`` (others are skipped)."""
        while True:
            frame = await self.receive()
            if frame["type"] == kind and all(frame.get(k) == v for k, v in match.items()):
                return frame

    async def hello(self, token: str | None = None) -> dict[str, Any]:
        await self.send(type="hello", token=token)
        return await self.until("welcome")

    async def close(self) -> None:
        await self.socket.close()


@asynccontextmanager
async def serve(settings: Settings, database_url: str) -> AsyncIterator[str]:
    """The app under uvicorn on a free port, in this event loop; yields its address."""
    app = create_app(settings, database_url, run_worker=False)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def desk(fresh_database: Callable[..., str], tmp_path: Path) -> AsyncIterator[Desk]:
    database_url = fresh_database()
    settings = DeskSettings(data_dir=tmp_path / "data")
    engine = make_engine(database_url, pool_size=2)
    try:
        async with serve(settings, database_url) as address:
            yield Desk(
                url=f"http://{address}",
                ws=f"ws://{address}",
                sessions=make_sessionmaker(engine),
                engine=engine,
                settings=settings,
                database_url=database_url,
            )
    finally:
        await engine.dispose()


@pytest.fixture
async def second_desk(desk: Desk) -> AsyncIterator[Desk]:
    """Another server process's worth of app on the same database and key (its own hub)."""
    async with serve(desk.settings, desk.database_url) as address:
        yield replace(desk, url=f"http://{address}", ws=f"ws://{address}")
