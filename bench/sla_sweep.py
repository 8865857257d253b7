"""The due-clock sweep at scale (issue: 1,000,000 open tickets, 50,000 clocks due: <= 2 s).

Loads an embedded database with COPY: N open tickets, each with a running resolution
clock; D of them fall due in the window. Then times the sweep (batches of 5,000, one
transaction each, in ``--workers`` concurrent loops, as the periodic task runs it) until
nothing is due.

A data folder that already holds exactly this load is reused: the swept clocks are put
back to running and the sweep's events deleted (then VACUUM ANALYZE), so ``--repeat`` runs
and later invocations measure the same work without loading again. Each run notes the
machine's load average (the machine may be shared), and the median run is reported.

    .venv/bin/python bench/sla_sweep.py --tickets 1000000 --due 50000 --repeat 3 \
        --out bench/results/sla_sweep.json
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import importlib.util
import io
import json
import os
import pkgutil
import pstats
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text

import servicecycle
from servicecycle.db.embedded import embedded_database
from servicecycle.db.engine import libpq_url, make_engine, make_sessionmaker
from servicecycle.db.migrate import upgrade
from servicecycle.events import bus
from servicecycle.sla import tasks

SWEPT_KINDS = ("sla.breached", "sla.warning")


def load_subscribers() -> dict[str, str]:
    """Import every domain's subscribers, as a running worker has; a module that does not
    import (another change in progress) is skipped and named in the result."""
    skipped: dict[str, str] = {}
    for module in pkgutil.iter_modules(servicecycle.__path__):
        name = f"servicecycle.{module.name}.subscribers"
        if module.ispkg and importlib.util.find_spec(name):
            try:
                importlib.import_module(name)
            except Exception as exc:
                skipped[name] = f"{type(exc).__name__}: {exc}"
    bus._loaded = True
    return skipped


def load(url: str, tickets: int, due: int, now: datetime) -> float:
    started = time.perf_counter()
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute("INSERT INTO customers (id, name) VALUES (1, 'Bench customer')")
        with conn.cursor().copy(
            "COPY tickets (id, subject, status, priority, channel, requester_id, created_at, "
            "updated_at) FROM STDIN"
        ) as copy:
            for n in range(1, tickets + 1):
                copy.write_row((n, f"Ticket {n}", "open", "normal", "email", 1, now, now))
        with conn.cursor().copy(
            "COPY sla_clocks (id, ticket_id, metric, state, target_minutes, business, "
            "started_at, running_since, used_minutes, due_at, warn_at) FROM STDIN"
        ) as copy:
            for n in range(1, tickets + 1):
                if n <= due:  # due a little before now: breached by the sweep
                    at = now - timedelta(seconds=n % 3600 + 1)
                else:  # due later, spread over a month
                    at = now + timedelta(minutes=60 + n % 43_200)
                warn = at - timedelta(minutes=30)
                copy.write_row((n, n, "resolution", "running", 480, False, now, now, 0.0, at, warn))
        conn.execute("SELECT setval(pg_get_serial_sequence('tickets', 'id'), %s)", (tickets,))
        conn.execute("SELECT setval(pg_get_serial_sequence('sla_clocks', 'id'), %s)", (tickets,))
        conn.commit()
        conn.execute("ANALYZE")
    return time.perf_counter() - started


def prepare(url: str, tickets: int, due: int, now: datetime) -> tuple[str, float]:
    """Load, or reset a folder that holds this load already; returns what was done."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        count = conn.execute("SELECT count(*) FROM sla_clocks").fetchone()
        if not count or count[0] == 0:
            return "loaded", load(url, tickets, due, now)
        if count[0] != tickets:
            raise SystemExit(f"the data folder holds {count[0]} clocks, not {tickets}: remove it")
        started = time.perf_counter()
        # the due clocks are ids 1..due; due_at was set relative to the load's "now"
        conn.execute(
            "UPDATE sla_clocks SET state = 'running', breached_at = NULL, warned_at = NULL "
            "WHERE id <= %s AND state <> 'running'",
            (due,),
        )
        # the event log refuses deletes by trigger; the bench's own folder may skip it
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM events WHERE kind = ANY(%s)", (list(SWEPT_KINDS),))
        conn.execute("RESET session_replication_role")
        conn.execute("VACUUM ANALYZE sla_clocks")
        conn.execute("VACUUM ANALYZE events")
        conn.execute("CHECKPOINT")
        return "reset", time.perf_counter() - started


def due_now(url: str) -> datetime:
    """The sweep's "now": just after the latest due clock of the load (ids are in order)."""
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute("SELECT max(started_at) FROM sla_clocks").fetchone()
    assert row is not None and row[0] is not None
    moment: datetime = row[0]
    return moment


async def drop_broken_handlers(url: str, skipped: dict[str, str]) -> None:
    """Ask each sweep-event handler's ``wants`` once; one that fails (its domain's tables are
    not migrated yet, work in progress) is left out and named in the result."""
    engine = make_engine(url, pool_size=1)
    factory = make_sessionmaker(engine)
    for kind in SWEPT_KINDS:
        for handler in list(bus._handlers.get(kind, [])):
            wants = getattr(handler, "wants", None)
            if wants is None:
                continue
            async with factory() as session:
                try:
                    await wants(session, kind)
                except Exception as exc:
                    bus._handlers[kind].remove(handler)
                    name = f"{handler.__module__}.{handler.__qualname__} ({kind})"
                    skipped[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    await engine.dispose()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc; Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def sweep_all(url: str, now: datetime, batch: int, workers: int) -> dict[str, Any]:
    """Sweep until nothing is due, as the periodic task does. Besides the wall time, the CPU
    time of this process and of its PostgreSQL backends: on a busy machine wall time waits
    for a core, CPU time does not (much)."""
    engine = make_engine(url, pool_size=workers)
    factory = make_sessionmaker(engine)
    backends: set[int] = set()

    async def open_one() -> None:  # a running worker has its connections open
        async with factory() as warm, warm.begin():
            backends.add((await warm.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            await asyncio.sleep(0.2)  # hold it, so the next one opens another

    await asyncio.gather(*(open_one() for _ in range(workers)))
    server_cpu, client_cpu = sum(map(cpu_seconds, backends)), time.process_time()
    started = time.perf_counter()
    warned, breached = await tasks.sweep_until_done(factory, now=now, batch=batch, workers=workers)
    elapsed = time.perf_counter() - started
    client_cpu = time.process_time() - client_cpu
    server_cpu = sum(map(cpu_seconds, backends)) - server_cpu
    await engine.dispose()
    return {
        "sweep_s": round(elapsed, 3),
        "client_cpu_s": round(client_cpu, 3),
        "server_cpu_s": round(server_cpu, 3),
        "backends": len(backends),
        "breached": breached,
        "warned": warned,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=50_000)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/bench-sla-sweep"))
    parser.add_argument("--batch", type=int, default=5000, help="clocks per transaction")
    parser.add_argument("--workers", type=int, default=tasks.WORKERS, help="concurrent loops")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print the Python profile")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    skipped = load_subscribers()
    runs: list[dict[str, Any]] = []
    with embedded_database(args.data_dir, exclusive=True) as url:
        upgrade(url)
        asyncio.run(drop_broken_handlers(url, skipped))
        for _ in range(args.repeat):
            done, prepare_s = prepare(url, args.tickets, args.due, datetime.now(UTC))
            now = due_now(url)
            load_before = os.getloadavg()[0]
            profile = cProfile.Profile() if args.profile else None
            if profile:
                profile.enable()
            swept = asyncio.run(sweep_all(url, now, args.batch, args.workers))
            if profile:
                profile.disable()
                out = io.StringIO()
                pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(30)
                print(out.getvalue())
            again = asyncio.run(sweep_all(url, now, args.batch, args.workers))
            runs.append(
                {
                    "prepared": done,
                    "prepare_s": round(prepare_s, 1),
                    **swept,
                    "per_second": round(swept["breached"] / swept["sweep_s"]),
                    "empty_sweep_s": again["sweep_s"],
                    "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                }
            )
            print(json.dumps(runs[-1]))
    median = statistics.median(run["sweep_s"] for run in runs)
    median_cpu = statistics.median(run["client_cpu_s"] + run["server_cpu_s"] for run in runs)
    result = {
        "date": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "tickets": args.tickets,
        "due": args.due,
        "batch": args.batch,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "median_sweep_s": median,
        "median_cpu_s": round(median_cpu, 3),
        "runs": runs,
        "subscribers_skipped": skipped,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
