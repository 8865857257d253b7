"""EXPLAIN (ANALYZE, BUFFERS) of the SQL behind each desk endpoint, before and after a change.

The SQL is not copied here: each case calls the service functions the API routes call
(``tickets.service``, ``tickets.search``, ...) with a SQLAlchemy hook that records every
statement and its parameters; each recorded SELECT is then explained on a separate
connection, twice (the second, warm run is reported). With ``--apply`` the proposed indexes
(``PROPOSALS``) are created first in that connection's transaction, which is rolled back at
the end, so the database is left as it was (``--keep`` commits them instead).

    .venv/bin/python bench/explain.py --data-dir /tmp/bench-desk-1m --out bench/results/x.md
    .venv/bin/python bench/explain.py --data-dir /tmp/bench-desk-1m --apply views,search ...

The data folder's server must be running or free (it is started for the run if free).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bulk_load  # the generator of the loaded data: terms and tags

Case = Callable[[AsyncSession, dict[str, Any]], Awaitable[object]]

OPEN = "('new', 'open', 'pending', 'on-hold')"
# Proposed changes, by name; each is a list of statements run before explaining.
PROPOSALS: dict[str, list[str]] = {
    # one ordered, partial index per built-in view: the first page is the first 26 entries.
    # NULLS LAST as in the services' ORDER BY (a plain DESC index is NULLS FIRST: unusable)
    "views": [
        "CREATE INDEX ix_tickets_open_updated ON tickets (updated_at DESC NULLS LAST, id DESC)"
        f" WHERE status IN {OPEN} AND merged_into_id IS NULL",
        "CREATE INDEX ix_tickets_open_assignee_updated ON tickets"
        " (assignee_id, updated_at DESC NULLS LAST, id DESC)"
        f" WHERE status IN {OPEN} AND merged_into_id IS NULL",
        "CREATE INDEX ix_tickets_open_team_updated ON tickets"
        " (team_id, updated_at DESC NULLS LAST, id DESC)"
        f" WHERE status IN {OPEN} AND merged_into_id IS NULL",
        "CREATE INDEX ix_tickets_solved_solved_at ON tickets (solved_at DESC NULLS LAST, id DESC)"
        " WHERE status = 'solved' AND merged_into_id IS NULL",
    ],
    # lists by other filters: the same order, by everything / team / assignee / status
    "lists": [
        "CREATE INDEX ix_tickets_updated ON tickets (updated_at DESC NULLS LAST, id DESC)",
        "CREATE INDEX ix_tickets_team_updated ON tickets"
        " (team_id, updated_at DESC NULLS LAST, id DESC)",
        "CREATE INDEX ix_tickets_assignee_updated ON tickets"
        " (assignee_id, updated_at DESC NULLS LAST, id DESC)",
        "CREATE INDEX ix_tickets_status_updated ON tickets"
        " (status, updated_at DESC NULLS LAST, id DESC)",
    ],
}


Rewrite = Callable[[str, Any], "tuple[str, Any] | None"]


def _search_cap(statement: str, parameters: Any) -> tuple[str, Any] | None:
    """Rank only the newest CAP matching messages (of tickets passing the filters).

    The tsquery is written out, not read from the ``q`` CTE, so the planner can estimate how
    many messages match and choose between the GIN index (rare words) and walking messages
    newest first (common words); only ids are sorted, the ranked rows are read afterwards."""
    pattern = re.compile(
        r"SELECT m\.ticket_id, ts_rank\(m\.search, q\.query\)\s+FROM messages m JOIN tickets t"
        r" ON t\.id = m\.ticket_id, q\s+WHERE m\.search @@ q\.query AND (?P<cond>.*?)\n\s*\)",
        re.S,
    )
    found = pattern.search(statement)
    if found is None:
        return None
    capped = (
        "SELECT c.ticket_id, ts_rank(r.search, q.query) FROM ("  # noqa: S608 - our own SQL
        " SELECT m.id, m.ticket_id FROM messages m JOIN tickets t ON t.id = m.ticket_id"
        " WHERE m.search @@ websearch_to_tsquery('english', %(text)s)"
        f" AND {found['cond']} ORDER BY m.id DESC LIMIT {search_cap}"
        ") c JOIN messages r ON r.id = c.id, q\n)"
    )
    return statement[: found.start()] + capped + statement[found.end() :], parameters


def _customers_union(statement: str, parameters: Any) -> tuple[str, Any] | None:
    """Find the candidate customers through the trigram indexes, then score only those."""
    if "FROM customers c" not in statement:
        return None
    sql = """
        WITH candidates AS (
            SELECT id FROM customers WHERE name %% %(term)s
            UNION SELECT customer_id FROM customer_identities WHERE value %% %(term)s
            UNION SELECT customer_id FROM customer_identities WHERE value ILIKE %(like)s
        )
        SELECT c.id, c.name, i.value, greatest(similarity(lower(c.name), %(term)s),
                                              coalesce(similarity(i.value, %(term)s), 0)) AS score
        FROM candidates JOIN customers c ON c.id = candidates.id
        LEFT JOIN LATERAL (
            SELECT value FROM customer_identities
            WHERE customer_id = c.id AND value %% %(term)s
            ORDER BY similarity(value, %(term)s) DESC LIMIT 1
        ) i ON true
        WHERE c.merged_into_id IS NULL
        ORDER BY score DESC, c.id LIMIT %(limit)s
    """
    return sql, parameters


def _counts_split(statement: str, parameters: Any) -> tuple[str, Any] | None:
    """One count per view, each answered by that view's partial index."""
    if "count(*) FILTER" not in statement:
        return None
    me = next(v for k, v in parameters.items() if k.startswith("assignee_id"))
    base = f"SELECT count(*) FROM tickets WHERE merged_into_id IS NULL AND status IN {OPEN}"  # noqa: S608
    sql = (
        f"SELECT ({base} AND assignee_id = %(me)s), ({base} AND assignee_id IS NULL), ({base}),"  # noqa: S608
        " (SELECT count(*) FROM tickets WHERE merged_into_id IS NULL AND status = 'solved')"
    )
    return sql, {"me": me}


def _cursor_row(statement: str, parameters: Any) -> tuple[str, Any] | None:
    """The keyset cursor as one row comparison, which an index can start from."""
    pattern = re.compile(
        r"\(tickets\.updated_at < (?P<a>%\(\w+\)s)(?:::[\w ]+)? OR tickets\.updated_at = "
        r"%\(\w+\)s(?:::[\w ]+)? AND tickets\.id < (?P<b>%\(\w+\)s)(?:::\w+)?\)"
    )
    found = pattern.search(statement)
    if found is None:
        return None
    row = f"(tickets.updated_at, tickets.id) < ({found['a']}, {found['b']})"
    return statement[: found.start()] + row + statement[found.end() :], parameters


search_cap = 1000  # --search-cap
REWRITES: dict[str, Rewrite] = {
    "search_cap": _search_cap,
    "customers_union": _customers_union,
    "counts_split": _counts_split,
    "cursor_row": _cursor_row,
}


def _cases(manifest: dict[str, Any]) -> dict[str, Case]:
    from servicecycle.tickets import attachments, service
    from servicecycle.tickets import search as ticket_search

    me = manifest["admin_id"]
    team = next(iter(manifest["teams"].values()))
    agent = manifest["agent_ids"][1]
    ticket_id = (manifest["tickets"]["first_id"] + manifest["tickets"]["last_id"]) // 2

    def view(name: str) -> Case:
        return lambda s, _: service.list_tickets(s, service.view_filter(name, user_id=me))

    def listing(**kw: Any) -> Case:
        return lambda s, _: service.list_tickets(s, service.TicketFilter(**kw))

    async def page5(s: AsyncSession, _: dict[str, Any]) -> object:
        flt = service.view_filter("all-open", user_id=me)
        cursor = None
        for _k in range(5):
            page = await service.list_tickets(s, flt, cursor=cursor)
            cursor = page.next_cursor
        return page

    async def ticket_page(s: AsyncSession, _: dict[str, Any]) -> object:
        ticket = await service.get_ticket(s, ticket_id)
        messages = await service.thread(s, ticket)
        return await attachments.of_messages(s, [m.id for m in messages])

    def search(q: str) -> Case:
        return lambda s, _: ticket_search.search(s, q, me=me)

    open_ = ("new", "open", "pending", "on-hold")
    cases: dict[str, Case] = {
        "view my-open": view("my-open"),
        "view unassigned": view("unassigned"),
        "view all-open": view("all-open"),
        "view recently-solved": view("recently-solved"),
        "view all-open, page 5": page5,
        "all tickets": listing(),
        "team, any status": listing(team_id=team),
        "team, open": listing(statuses=open_, team_id=team),
        "tag billing (20%)": listing(tag="billing"),
        "tag legal (0.1%)": listing(tag="legal"),
        "assignee, any status": listing(assignee_id=agent),
        "status pending + priority urgent": listing(statuses=("pending",), priority="urgent"),
        "view counts": lambda s, _: service.count_views(s, user_id=me),
        "ticket page": ticket_page,
    }
    for term in bulk_load.TERMS:
        cases[f"search {term}"] = search(term)
    for q in (
        f'"{bulk_load.PHRASE[0]}"',
        "printer refund",
        "printer status:open",
        "printer -refund",
        "zzabsentzz",
    ):
        cases[f"search {q}"] = search(q)
    return cases


@contextlib.contextmanager
def _database(args: argparse.Namespace) -> Iterator[str]:
    if args.database_url:
        yield args.database_url
        return
    from servicecycle.db.embedded import embedded_database

    with embedded_database(Path(args.data_dir), exclusive=False) as url:
        yield url


async def capture(url: str, cases: dict[str, Case], only: set[str]) -> dict[str, list[Any]]:
    """Run each case through the services; return its SELECT statements with parameters."""
    from servicecycle.db.engine import make_engine, make_sessionmaker

    engine = make_engine(url, pool_size=1)
    seen: list[tuple[str, Any]] = []

    def hook(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", hook)
    sessions = make_sessionmaker(engine)
    found: dict[str, list[Any]] = {}
    try:
        for name, case in cases.items():
            if only and name not in only:
                continue
            async with sessions() as session, session.begin():
                await session.execute(text("SELECT 1"))  # connect before recording
                seen.clear()
                await case(session, {})
                found[name] = [s for s in seen if "api_tokens" not in s[0]]
    finally:
        await engine.dispose()
    return found


def explain(
    conn: psycopg.Connection[Any], statement: str, parameters: Any
) -> tuple[str, float, float]:
    """The warm plan as text, with the cold and warm execution times (ms)."""
    times = []
    plan = ""
    for _ in range(2):
        rows = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS) " + statement,  # type: ignore[arg-type]
            parameters,
        ).fetchall()
        plan = "\n".join(r[0] for r in rows)
        total = [line for line in plan.splitlines() if line.startswith("Execution Time")]
        times.append(float(total[0].split()[2]) if total else float("nan"))
    return plan, times[0], times[1]


def _short(statement: str, parameters: Any) -> str:
    sql = " ".join(statement.split())
    if isinstance(parameters, dict) and parameters:
        sql += "\n-- parameters: " + json.dumps(parameters, default=str)
    return sql


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--database-url")
    where.add_argument("--data-dir")
    parser.add_argument("--manifest", help="default: <data-dir>/bench-manifest.json")
    parser.add_argument(
        "--apply", default="", help=f"comma list of {', '.join([*PROPOSALS, *REWRITES])}"
    )
    parser.add_argument("--keep", action="store_true", help="commit the applied changes")
    parser.add_argument("--search-cap", type=int, default=1000, help="for search_cap")
    parser.add_argument("--only", default="", help="comma list of case names")
    parser.add_argument("--out", help="Markdown file for the plans (default: stdout)")
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)
    global search_cap
    search_cap = args.search_cap
    manifest_path = Path(args.manifest or Path(args.data_dir) / "bench-manifest.json")
    manifest = json.loads(manifest_path.read_text())
    applied = [p.strip() for p in args.apply.split(",") if p.strip()]
    only = {o.strip() for o in args.only.split(",") if o.strip()}
    out: list[str] = []
    summary: list[tuple[str, float, float]] = []
    with _database(args) as url:
        captured = asyncio.run(capture(url, _cases(manifest), only))
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            title = f"# EXPLAIN (ANALYZE, BUFFERS) {args.label}".rstrip()
            out += [title, "", f"Applied: {', '.join(applied) or 'nothing (as shipped)'}", ""]
            for name in applied:
                for ddl in PROPOSALS.get(name, []):
                    started = time.perf_counter()
                    conn.execute(ddl)  # type: ignore[arg-type]
                    out.append(f"- `{ddl}` ({time.perf_counter() - started:.1f} s)")
            if applied:
                conn.execute("ANALYZE tickets")
                out.append("")
            for name, statements in captured.items():
                total_cold = total_warm = 0.0
                out += [f"## {name}", ""]
                for statement, parameters in statements:
                    for name_ in applied:
                        rewritten = (
                            REWRITES[name_](statement, parameters) if name_ in REWRITES else None
                        )
                        if rewritten is not None:
                            statement, parameters = rewritten
                            out.append(f"(rewritten by `{name_}`)")
                    plan, cold, warm = explain(conn, statement, parameters)
                    total_cold += cold
                    total_warm += warm
                    out += ["```sql", _short(statement, parameters), "```", "```", plan, "```", ""]
                summary.append((name, total_cold, total_warm))
                print(f"{name:<40} cold {total_cold:9.1f} ms   warm {total_warm:9.1f} ms")
            if args.keep:
                conn.commit()
            else:
                conn.rollback()
    table = ["| case | first run ms | second run ms |", "|---|---:|---:|"]
    table += [f"| {n} | {c:.1f} | {w:.1f} |" for n, c, w in summary]
    text = "\n".join(out[:4] + table + [""] + out[4:]) + "\n"
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
