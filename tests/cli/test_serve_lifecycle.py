"""`servicecycle serve` on the embedded database: owns it, survives SIGKILL, stops clean."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from tests.cli.test_commands import run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_serve(data_dir: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SERVICECYCLE_", "DATABASE_URL"))
    }
    env["SERVICECYCLE_DATA_DIR"] = str(data_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "servicecycle", "serve", "--port", str(port), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_healthy(
    port: int, process: subprocess.Popen[str], timeout: float = 90
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"serve exited early:\n{process.stdout.read() if process.stdout else ''}"
            )
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            if response.status_code == 200:
                return response.json()  # type: ignore[no-any-return]
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("serve did not become healthy")


def postgres_pids(data_dir: Path) -> list[int]:
    """Live postgres processes serving this data folder."""
    pids = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] == "postgres" and str(data_dir / "pgdata") in cmdline:
            pids.append(proc.pid)
    return pids


def test_serve_owns_restarts_after_sigkill_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    first = start_serve(data_dir, port)
    try:
        health = wait_healthy(port, first)
        assert health["database"] == "ok"

        twin = run(
            "serve", "--port", str(free_port()), env={"SERVICECYCLE_DATA_DIR": str(data_dir)}
        )
        assert twin.returncode == 1
        assert (
            f"already using the data folder {data_dir}" in twin.stderr
            and "Traceback" not in twin.stderr
        )

        created = run(
            "user",
            "create",
            "--email",
            "kept@example.com",
            "--name",
            "Kept",
            env={
                "SERVICECYCLE_DATA_DIR": str(data_dir),
                "SERVICECYCLE_NEW_PASSWORD": "a long enough password",
            },
        )
        assert created.returncode == 0, created.stderr

        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = start_serve(data_dir, port)
        try:
            wait_healthy(port, second)
            twice = run(
                "user",
                "create",
                "--email",
                "kept@example.com",
                "--name",
                "Kept",
                env={
                    "SERVICECYCLE_DATA_DIR": str(data_dir),
                    "SERVICECYCLE_NEW_PASSWORD": "a long enough password",
                },
            )
            assert twice.returncode == 1 and "already exists" in twice.stderr  # the data survived
            assert postgres_pids(data_dir)
            second.send_signal(signal.SIGINT)
            assert second.wait(60) == 0
        finally:
            if second.poll() is None:
                second.kill()
    finally:
        if first.poll() is None:
            first.kill()
    deadline = time.monotonic() + 10
    while postgres_pids(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert postgres_pids(data_dir) == []


def test_sigterm_stops_the_server_and_its_database(tmp_path: Path) -> None:
    """What systemd, `timeout` or a container runtime sends."""
    data_dir = tmp_path / "data"
    port = free_port()
    server = start_serve(data_dir, port)
    try:
        wait_healthy(port, server)
        assert postgres_pids(data_dir)
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0
    finally:
        if server.poll() is None:
            server.kill()
    deadline = time.monotonic() + 10
    while postgres_pids(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert postgres_pids(data_dir) == []


def test_serve_with_two_worker_processes_answers_and_stops_them_all(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    server = start_serve(data_dir, port, "--workers", "2")
    try:
        health = wait_healthy(port, server)
        assert health["database"] == "ok"
        children = psutil.Process(server.pid).children(recursive=False)
        servers = [c for c in children if "postgres" not in c.name()]
        assert len(servers) >= 2, children
        # the shared socket answers, whichever process takes each connection
        for _ in range(20):
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        # each process ran its own job worker
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and health["worker"]["alive"] < 2:  # type: ignore[index]
            time.sleep(0.5)
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
        assert health["worker"]["alive"] == 2  # type: ignore[index]
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
        assert server.returncode == 0, output
        assert "Servicecycle stopped." in output
        # the server processes are gone; multiprocessing's resource tracker leaves once it
        # reads the end of its pipe, a moment after the parent exits
        _, alive = psutil.wait_procs(servers, timeout=10)
        assert not [c for c in alive if c.status() != psutil.STATUS_ZOMBIE], alive
        assert postgres_pids(data_dir) == []
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
