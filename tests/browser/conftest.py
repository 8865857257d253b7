"""A real server process and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.test_serve_lifecycle import free_port, wait_healthy

CHROMIUM = Path(os.environ.get("SERVICECYCLE_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Chromium flags for a closed network: no background calls home, no sandbox as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)
            if not CHROMIUM.exists():
                if os.environ.get("SERVICECYCLE_REQUIRE_BROWSER"):
                    item.add_marker(
                        pytest.mark.xfail(reason=f"{CHROMIUM} missing", strict=True, run=False)
                    )
                else:
                    item.add_marker(
                        pytest.mark.skip(
                            reason=f"{CHROMIUM} is not installed (apt-get install chromium)"
                        )
                    )


@dataclass
class LiveServer:
    url: str
    database_url: str


@pytest.fixture
def live_server(fresh_database: Callable[..., str], tmp_path: Path) -> Iterator[LiveServer]:
    """`servicecycle serve` as a separate process on a fresh database."""
    database_url = fresh_database()
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SERVICECYCLE_", "DATABASE_URL"))
    }
    env.update({"DATABASE_URL": database_url, "SERVICECYCLE_DATA_DIR": str(tmp_path / "data")})
    process = subprocess.Popen(
        [sys.executable, "-m", "servicecycle", "serve", "--no-worker", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_healthy(port, process)
        yield LiveServer(url=f"http://127.0.0.1:{port}", database_url=database_url)
    finally:
        process.terminate()
        process.wait(30)


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield instance
        await instance.close()


def shot_path(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{name}.png"


async def in_thread(fn: Callable[[], object]) -> object:
    return await asyncio.to_thread(fn)
