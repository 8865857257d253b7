"""Time ``tickets.search.search`` on a loaded database, beside an earlier revision's search.

The service function the API calls is timed in-process (no HTTP), each query alternating
between this checkout's search and the one in ``--against`` (a git revision), so both see the
same machine load. Queries use the bulk loader's planted terms (``bulk_load.TERMS``).

    .venv/bin/python bench/search_speed.py --database-url postgresql+psycopg://... --against HEAD~1

The database must be running (for an embedded data folder, start it first, e.g. with
``servicecycle serve`` on that folder, or ``pg_ctl``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from servicecycle.db.engine import make_engine, make_sessionmaker
from servicecycle.tickets import search as current

QUERIES = [
    "quasar",
    "kerberos",
    "printer",
    "refund",
    '"blue screen"',
    "printer refund",
    "printer status:open",
    "kerberos tag:billing",
    "refund assignee:me",
    "printer -refund",
    "zzabsentzz",
]


def _revision(rev: str) -> Any:
    """tickets/search.py as it was at ``rev``, imported as its own module."""
    source = subprocess.run(
        ["git", "show", f"{rev}:src/servicecycle/tickets/search.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "search_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("search_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["search_before"] = module  # dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


def _p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[max(0, round(len(ordered) * 0.95) - 1)]


async def main(url: str, against: str | None, rounds: int, me: int) -> dict[str, Any]:
    engines = {"now": current}
    if against:
        engines = {"before": _revision(against), "now": current}
    engine = make_engine(url, pool_size=2)
    results: dict[str, Any] = {}
    try:
        sessions = make_sessionmaker(engine)
        for q in QUERIES:
            times: dict[str, list[float]] = {name: [] for name in engines}
            hits: dict[str, int] = {}
            async with sessions() as session:
                for i in range(rounds + 2):  # two warm-up rounds
                    for name, module in engines.items():
                        start = time.perf_counter()
                        found = await module.search(session, q, me=me)
                        if i >= 2:
                            times[name].append((time.perf_counter() - start) * 1000)
                        hits[name] = len(found.tickets)
            results[q] = {
                name: {
                    "median_ms": round(statistics.median(t), 1),
                    "p95_ms": round(_p95(t), 1),
                    "hits": hits[name],
                }
                for name, t in times.items()
            }
            print(
                f"{q:24s}"
                + "".join(
                    f" | {name} median {r['median_ms']:6.1f} p95 {r['p95_ms']:6.1f} ms"
                    for name, r in results[q].items()
                ),
                flush=True,
            )
    finally:
        await engine.dispose()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--against", help="a git revision to time beside this checkout")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--me", type=int, default=1, help="the user id `assignee:me` means")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    figures = asyncio.run(main(args.database_url, args.against, args.rounds, args.me))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    sys.exit(0)
