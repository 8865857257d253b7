"""The due-clock sweep at scale (issue: 1,000,000 open tickets, 50,000 clocks due: <= 2 s).

Loads a fresh embedded database with COPY: N open tickets, each with a running resolution
clock; D of them fall due in the window. Then times the sweep (batches of 5,000, one
transaction each, as the periodic task runs it) until nothing is due.

    .venv/bin/python bench/sla_sweep.py --tickets 1000000 --due 50000 \
        --out bench/results/sla_sweep.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from servicecycle.db.embedded import embedded_database
from servicecycle.db.engine import libpq_url, make_engine, make_sessionmaker, unit_of_work
from servicecycle.db.migrate import upgrade
from servicecycle.events.bus import load_all
from servicecycle.sla import service


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
            "COPY sla_clocks (ticket_id, metric, state, target_minutes, business, started_at, "
            "running_since, used_minutes, due_at, warn_at) FROM STDIN"
        ) as copy:
            for n in range(1, tickets + 1):
                if n <= due:  # due a little before now: breached by the sweep
                    at = now - timedelta(seconds=n % 3600 + 1)
                else:  # due later, spread over a month
                    at = now + timedelta(minutes=60 + n % 43_200)
                copy.write_row(
                    (
                        n,
                        "resolution",
                        "running",
                        480,
                        False,
                        now,
                        now,
                        0.0,
                        at,
                        at - timedelta(minutes=30),
                    )
                )
        conn.execute("SELECT setval(pg_get_serial_sequence('tickets', 'id'), %s)", (tickets,))
        conn.commit()
        conn.execute("ANALYZE")
    return time.perf_counter() - started


async def sweep_all(url: str, now: datetime, batch: int) -> tuple[float, int, int, int]:
    load_all()  # a running worker has imported every subscriber long before
    engine = make_engine(url, pool_size=1)
    factory = make_sessionmaker(engine)
    warned = breached = rounds = 0
    started = time.perf_counter()
    while True:
        async with unit_of_work(factory) as session:
            w, b = await service.sweep(session, now=now, batch=batch)
        warned, breached, rounds = warned + w, breached + b, rounds + 1
        if w + b < batch:
            break
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return elapsed, warned, breached, rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=50_000)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/bench-sla-sweep"))
    parser.add_argument("--batch", type=int, default=5000, help="clocks per transaction")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    with embedded_database(args.data_dir, exclusive=True) as url:
        upgrade(url)
        load_s = load(url, args.tickets, args.due, now)
        elapsed, warned, breached, rounds = asyncio.run(sweep_all(url, now, args.batch))
        again, *_ = asyncio.run(sweep_all(url, now, args.batch))
    result = {
        "date": now.isoformat(),
        "tickets": args.tickets,
        "due": args.due,
        "load_s": round(load_s, 1),
        "batch": args.batch,
        "sweep_s": round(elapsed, 3),
        "breached": breached,
        "warned": warned,
        "transactions": rounds,
        "per_second": round(breached / elapsed) if elapsed else None,
        "empty_sweep_s": round(again, 4),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
