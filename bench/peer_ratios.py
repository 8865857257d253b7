"""Servicecycle / peer ratios from the JSON summaries of the shared helpdesk workload.

Reads the peer's ``run_all.sh`` outputs (``pg_writes.json``, ``pg_10k.json``, ``pg_100k.json``,
``pg_100k_writes.json``) and ours from ``bench/peer_compare.sh`` (``sc_*.json``), pairs the
operations that do the same job, and prints a Markdown table: throughput as ours / peer,
latency as peer / ours (so > 1 means Servicecycle is faster either way).

    .venv/bin/python bench/peer_ratios.py --peer /tmp/peer-bench/runs --ours /tmp/bench-desk-sc/runs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

Json = dict[str, Any]

# (stage, our file, peer file)
STAGES = [
    ("writes, empty -> 4k", "sc_writes.json", "pg_writes.json"),
    ("reads at 10k", "sc_10k.json", "pg_10k.json"),
    ("reads at 100k", "sc_100k.json", "pg_100k.json"),
    ("writes at ~100k", "sc_100k_writes.json", "pg_100k_writes.json"),
    ("writes at ~100k, re-run", "sc_100k_writes_recheck.json", "pg_100k_writes_recheck.json"),
]
# (phase, our op, peer op, what)
WRITES = [
    ("seed", "create_customer", "create_customer", "create customer"),
    ("seed", "create_ticket", "create_ticket", "create ticket"),
    ("replies", "add_reply", "add_reply", "add public reply"),
    (
        "status",
        "status:resolve_via_reply",
        "status:resolve_via_followup",
        "resolve (reply + status)",
    ),
    ("status", "status:close_via_patch", "status:close_via_patch", "close via PATCH"),
]
READS = [
    (
        "list",
        "list_open:view_all_open_team",
        "list_open:ui_datatables_queue",
        "open tickets of one queue, first page",
    ),
    (
        "list",
        "list_open:view_all_open",
        "list_open:api_tickets_status",
        "all open tickets, first page",
    ),
]
TERMS = ["printer~10.0%", "kerberos~1.0%", "quasar~0.1%", "zzabsentzz~0.0%"]


def _load(path: Path) -> Json | None:
    return json.loads(path.read_text()) if path.exists() else None


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.1f}x" if a / b < 100 else f"{a / b:,.0f}x"


def _fmt(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    return f"{x:,.2f}{unit}" if abs(x) < 1 else f"{x:,.1f}{unit}"


def rows(ours: Json, peer: Json) -> list[str]:
    out: list[str] = []
    op_: Json = ours["phases"]
    pp: Json = peer["phases"]
    for phase, our_op, peer_op, what in WRITES:
        o, p = op_.get(phase, {}).get(our_op), pp.get(phase, {}).get(peer_op)
        if not o or not p:
            continue
        out.append(
            f"| {what} (per s, {o['concurrency']} clients) | {_fmt(o['per_s'])} "
            f"(p95 {_fmt(o['p95_ms'], ' ms')}) | {_fmt(p['per_s'])} "
            f"(p95 {_fmt(p['p95_ms'], ' ms')}) | **{_ratio(o['per_s'], p['per_s'])}** |"
        )
    for phase, our_op, peer_op, what in READS:
        o, p = op_.get(phase, {}).get(our_op), pp.get(phase, {}).get(peer_op)
        if not o or not p:
            continue
        out.append(
            f"| {what}, p50 / p95 | {_fmt(o['p50_ms'])} / {_fmt(o['p95_ms'])} ms | "
            f"{_fmt(p['p50_ms'])} / {_fmt(p['p95_ms'])} ms | "
            f"**{_ratio(p['p50_ms'], o['p50_ms'])}** / **{_ratio(p['p95_ms'], o['p95_ms'])}** |"
        )
    for term in TERMS:
        o = op_.get("search", {}).get(f"search:api_search[{term}]")
        p = pp.get("search", {}).get(f"search:ui_datatables_search[{term}]")
        if not o or not p:
            continue
        out.append(
            f"| search `{term.split('~')[0]}` ({term.split('~')[1]}), p50 / p95 | "
            f"{_fmt(o['p50_ms'])} / {_fmt(o['p95_ms'])} ms | "
            f"{_fmt(p['p50_ms'])} / {_fmt(p['p95_ms'])} ms | "
            f"**{_ratio(p['p50_ms'], o['p50_ms'])}** / **{_ratio(p['p95_ms'], o['p95_ms'])}** |"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", required=True, help="the peer's runs folder")
    parser.add_argument("--ours", default="/tmp/bench-desk-sc/runs")
    parser.add_argument("--out", help="also write the table (Markdown) here")
    args = parser.parse_args(argv)
    lines = ["| operation | Servicecycle | django-helpdesk | ratio (x = Servicecycle better) |"]
    lines.append("|---|---:|---:|---:|")
    for stage, our_file, peer_file in STAGES:
        ours, peer = _load(Path(args.ours) / our_file), _load(Path(args.peer) / peer_file)
        if ours is None or peer is None:
            lines.append(
                f"| **{stage}**: missing {our_file if ours is None else peer_file} | | | |"
            )
            continue
        lines.append(f"| **{stage}** | | | |")
        lines += rows(ours, peer)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
