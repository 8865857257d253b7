"""Time a simulated business loaded into a fresh embedded database: generation, then the replay
through the services (and, of it, settling the historic mail as sent to no one).

    .venv/bin/python bench/simulation.py                         # the demo: online_shop, 6 months
    .venv/bin/python bench/simulation.py --scenario year_50k     # 12 months, about 50,000 tickets
    .venv/bin/python bench/simulation.py --months 1              # the demo's last month, dense
    .venv/bin/python bench/simulation.py --scale 0.02 --out bench/results/simulation-6m-2pct.json

``--months N`` keeps the scenario's last N months at its own density: a sample whose batches
are as large as the whole run's, so its time per item is the whole run's. ``--scale`` shrinks
the scenario's expected tickets and customers (same months, same shape): a sparse sample,
whose batches hold an item or two. The JSON says which, and gives the time per replayed item
(a ticket's opening or one of its steps) and the whole run's time scaled from the sample.
``--window-hours`` sets the replay's window (default: the driver's, a day). The database is
a new embedded PostgreSQL in a temporary folder (``--data-dir`` to keep it), migrated first.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import platform
import sys
import tempfile
import time
import tomllib
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

from servicecycle.db.embedded import embedded_database
from servicecycle.db.engine import make_sessionmaker, sqlalchemy_url
from servicecycle.db.migrate import upgrade
from servicecycle.demo import DEMO_PASSWORD, DEMO_SEED, STAFF
from servicecycle.simulation.driver import replay
from servicecycle.simulation.generate import generate
from servicecycle.simulation.scenario import parse_scenario, scenarios_folder


def _scenario(name: str, scale: float, months: int | None = None) -> tuple[Any, float]:
    """The scenario, and the share of the whole scenario's items it plans (about)."""
    path = Path(name) if name.endswith(".toml") else scenarios_folder() / f"{name}.toml"
    data = tomllib.loads(path.read_text("utf-8"))
    if months is not None:  # the last months only, at the scenario's own density
        scale *= months / data["business"]["months"]
        data["business"]["months"] = months
    if scale != 1.0:
        data["arrivals"]["expected_tickets"] = round(data["arrivals"]["expected_tickets"] * scale)
        customers = data["customers"]
        customers["count"] = max(50, round(customers["count"] * scale))
        customers["companies"] = max(3, round(customers["companies"] * scale))
    return parse_scenario(data), scale


async def _replay(
    url: str, plan: Any, statements: Counter[str], window: timedelta | None = None
) -> Any:
    # as the driver builds its own engine from a URL, plus a statement counter
    engine = create_async_engine(
        sqlalchemy_url(url),
        pool_size=2,
        connect_args={"options": "-c synchronous_commit=off"},
    )

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def count(*args: Any) -> None:
        statements[args[2].split(None, 1)[0].upper()] += 1

    try:
        return await replay(
            make_sessionmaker(engine), plan, staff=STAFF, password=DEMO_PASSWORD, wave_every=window
        )
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="online_shop", help="a shipped name or a .toml")
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    parser.add_argument("--end", default="2026-11-30", help="last day (fixed: same data)")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument(
        "--months", type=int, help="only the last N months, at full density (a dense sample)"
    )
    parser.add_argument(
        "--window-hours", type=float, help="the replay's window (default: the driver's, a day)"
    )
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--profile", type=Path, help="write a cProfile of the replay (CPU time) to this file"
    )
    args = parser.parse_args()

    load_before = os.getloadavg()
    scenario, share = _scenario(args.scenario, args.scale, args.months)
    started = time.perf_counter()
    plan = generate(scenario, seed=args.seed, end=date.fromisoformat(args.end))
    generate_s = time.perf_counter() - started
    items = len(plan.tickets) + sum(len(t.steps) for t in plan.tickets)
    print(f"generated {len(plan.tickets):,} tickets, {items:,} items in {generate_s:.1f} s")

    folder = args.data_dir or Path(tempfile.mkdtemp(prefix="sc-bench-sim-"))
    statements: Counter[str] = Counter()
    with embedded_database(folder, exclusive=True) as url:
        upgrade(url)
        cpu, wall = time.process_time(), time.perf_counter()
        window = timedelta(hours=args.window_hours) if args.window_hours else None
        if args.profile:
            profiler = cProfile.Profile(time.process_time)
            summary = profiler.runcall(asyncio.run, _replay(url, plan, statements, window))
            profiler.dump_stats(args.profile)
        else:
            summary = asyncio.run(_replay(url, plan, statements, window))
        replay_cpu, replay_s = time.process_time() - cpu, time.perf_counter() - wall
    load_after = os.getloadavg()
    total = sum(statements.values())
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "scenario": args.scenario,
        "scale": args.scale,
        "months": args.months,
        "window_hours": args.window_hours,
        "seed": args.seed,
        "end": args.end,
        "tickets": len(plan.tickets),
        "items": items,
        "generate_s": round(generate_s, 1),
        "replay_s": round(replay_s, 1),
        "replay_cpu_s": round(replay_cpu, 1),
        "mail_s": round(summary.mail_seconds, 1),
        "ms_per_item": round(1000 * replay_s / items, 2),
        "cpu_ms_per_item": round(1000 * replay_cpu / items, 2),
        "statements": total,
        "statements_per_item": round(total / items, 2),
        "statements_by_kind": dict(statements.most_common()),
        "summary": {k: v for k, v in vars(summary).items()},
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
    }
    if share != 1.0:
        result["extrapolated_full_replay_s"] = round(replay_s / share)
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", "utf-8")


if __name__ == "__main__":
    main()
