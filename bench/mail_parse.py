"""Inbound mail: parse throughput alone, and full intake (parse, threading, store) into the
embedded PostgreSQL, one transaction per mail as the SMTP listener does.

The corpus is generated deterministically from ``--seed``: plain text, multipart/alternative,
HTML only, replies with quoted history that thread on earlier mails of the corpus (by
In-Reply-To / References, by a [#ticket] subject, or by nothing but a quoted body), files
(PDF- and PNG-like bytes, a few tens of KB), and bodies in utf-8, iso-8859-1, windows-1252,
koi8-r and shift_jis with quoted-printable, base64 or 8-bit transfer encodings.

    .venv/bin/python bench/mail_parse.py --mails 2000 --data-dir /tmp/bench-mail-parse

Figures are per core: the full intake reports the benchmark process's CPU seconds too (the
database server runs beside it in its own processes), so msgs / CPU-second is what one core
of Python does; wall-clock rates depend on the machine's other load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event

WORDS = [
    "order",
    "parcel",
    "invoice",
    "refund",
    "delivery",
    "account",
    "password",
    "login",
    "printer",
    "screen",
    "update",
    "payment",
    "card",
    "subscription",
    "plan",
    "upgrade",
    "error",
    "crash",
    "slow",
    "email",
    "address",
    "contract",
    "broken",
    "missing",
    "late",
    "damaged",
    "replacement",
    "warranty",
    "return",
    "label",
    "courier",
    "tracking",
    "number",
    "today",
    "tomorrow",
    "please",
    "help",
    "urgent",
    "thanks",
    "again",
    "still",
    "waiting",
    "since",
    "monday",
    "week",
    "month",
]
ACCENTED = "café naïve résumé Grüße Ærøskøbing señor façade déjà"
CYRILLIC = "Здравствуйте заказ не пришёл спасибо"
JAPANESE = "注文が届きません よろしくお願いします"
CHARSETS = (
    ("utf-8", ACCENTED + " " + CYRILLIC + " " + JAPANESE),
    ("iso-8859-1", ACCENTED),
    ("windows-1252", ACCENTED + " \u201cquoted\u201d \u2013 dash"),
    ("koi8-r", CYRILLIC),
    ("shift_jis", JAPANESE),
)


@dataclass
class Thread:
    sender: str
    name: str
    subject: str
    ids: list[str]
    quoted: list[str]


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(sentence(rng, rng.randint(6, 16)) for _ in range(sentences))


def corpus(n: int, seed: int) -> list[bytes]:
    """``n`` raw mails; about a third are replies on earlier threads of the same corpus."""
    rng = random.Random(seed)
    people = [(f"customer{i}@example{i % 37}.com", f"Customer {i}") for i in range(max(n // 6, 10))]
    threads: list[Thread] = []
    start = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    out = []
    for i in range(n):
        message = EmailMessage()
        reply = threads and rng.random() < 0.35
        if reply:
            thread = rng.choice(threads)
            sender, name = thread.sender, thread.name
            subject = "Re: " + thread.subject
        else:
            sender, name = rng.choice(people)
            subject = sentence(rng, rng.randint(3, 8)).rstrip(".")
            thread = Thread(sender, name, subject, [], [])
            threads.append(thread)
        message_id = f"<bench-{seed}-{i}@{sender.partition('@')[2]}>"
        message["From"] = f'"{name}" <{sender}>'
        message["To"] = "help@desk.example"
        message["Subject"] = subject
        message["Message-ID"] = message_id
        message["Date"] = format_datetime(start + timedelta(minutes=7 * i))
        if reply and thread.ids and rng.random() < 0.8:  # most clients keep the headers
            message["In-Reply-To"] = thread.ids[-1]
            message["References"] = " ".join(thread.ids[-10:])
        charset, flavour = rng.choice(CHARSETS)
        body = paragraph(rng, rng.randint(2, 8))
        if rng.random() < 0.3:
            body += "\n\n" + flavour
        if reply and thread.quoted:  # quoted history, as mail clients add it
            history = "\n".join(
                "> " + line for line in "\n\n".join(thread.quoted[-3:]).splitlines()
            )
            body += f"\n\nOn Monday, {name} wrote:\n{history}"
        body = body.encode(charset, errors="replace").decode(charset)  # what it can carry
        kind = rng.random()
        cte = rng.choice(("quoted-printable", "base64", "8bit"))
        if kind < 0.30:
            message.set_content(body, charset=charset, cte=cte if cte != "8bit" else None)
        elif kind < 0.60:
            message.set_content(body, charset=charset)
            html = "".join(f"<p>{p}</p>" for p in body.split("\n\n"))
            message.add_alternative(
                f"<html><body><div style='font-family:Arial'>{html}</div>"
                "<img src='cid:logo@x'></body></html>",
                subtype="html",
            )
        elif kind < 0.75:
            html = "".join(f"<p>{p}</p>" for p in body.split("\n\n"))
            message.set_content(
                f"<html><head><style>p{{color:red}}</style></head><body>{html}"
                "<script>alert(1)</script></body></html>",
                subtype="html",
            )
        else:
            message.set_content(body, charset=charset)
            size = rng.randint(5_000, 60_000)
            if rng.random() < 0.5:
                data = b"%PDF-1.4\n" + rng.randbytes(size)
                message.add_attachment(
                    data, maintype="application", subtype="pdf", filename=f"invoice-{i}.pdf"
                )
            else:
                data = b"\x89PNG\r\n\x1a\n" + rng.randbytes(size)
                message.add_attachment(
                    data, maintype="image", subtype="png", filename=f"shot{i}.png"
                )
        thread.ids.append(message_id)
        thread.quoted.append(body[:600])
        out.append(message.as_bytes())
    return out


def bench_parse(mails: list[bytes], rounds: int) -> dict[str, Any]:
    from servicecycle.channels.email.parse import parse

    best = None
    for _ in range(rounds):
        cpu, wall = time.process_time(), time.perf_counter()
        for raw in mails:
            parse(raw)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if best is None or cpu < best["cpu_s"]:
            best = {"cpu_s": cpu, "wall_s": wall}
    assert best is not None
    return {
        **best,
        "msgs_per_cpu_s": len(mails) / best["cpu_s"],
        "msgs_per_wall_s": len(mails) / best["wall_s"],
    }


async def bench_intake(url: str, mails: list[bytes], batch: int = 1) -> dict[str, Any]:
    from sqlalchemy import func, select

    from servicecycle.channels.email import intake
    from servicecycle.channels.models import InboundMail
    from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
    from servicecycle.events.models import Event
    from servicecycle.tickets.storage import DatabaseStorage

    engine = make_engine(url, pool_size=2)
    sessions = make_sessionmaker(engine)
    storage = DatabaseStorage()
    outcomes: dict[str, int] = {}
    # warm the connection pool and the subscribers' imports on a mail outside the corpus
    warm = b"From: warm@example.com\r\nSubject: warm\r\nMessage-ID: <warm@x>\r\n\r\nhello\r\n"
    async with unit_of_work(sessions) as session:
        await intake.receive(session, warm, storage=storage, max_file_bytes=20_000_000)
    statements = [0]

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def count(*args: Any) -> None:
        statements[0] += 1

    cpu, wall = time.process_time(), time.perf_counter()
    if batch <= 1:  # one transaction per mail, as the SMTP listener does
        for raw in mails:
            async with unit_of_work(sessions) as session:
                outcome = await intake.receive(
                    session, raw, storage=storage, max_file_bytes=20_000_000
                )
            outcomes[outcome.outcome] = outcomes.get(outcome.outcome, 0) + 1
    else:  # ``batch`` mails per transaction, as the IMAP poll does
        from servicecycle.channels.email.batch import receive_many

        for start in range(0, len(mails), batch):
            async with unit_of_work(sessions) as session:
                got = await receive_many(
                    session,
                    mails[start : start + batch],
                    storage=storage,
                    max_file_bytes=20_000_000,
                )
            for outcome in got:
                outcomes[outcome.outcome] = outcomes.get(outcome.outcome, 0) + 1
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    async with unit_of_work(sessions) as session:
        stored = await session.scalar(select(func.count()).select_from(InboundMail))
        # what was written, to compare one path with another (the same work, not less)
        kinds = await session.execute(
            select(Event.kind, func.count()).group_by(Event.kind).order_by(Event.kind)
        )
        events = {kind: n for kind, n in kinds}
    await engine.dispose()
    return {
        "batch": batch,
        "cpu_s": cpu,
        "wall_s": wall,
        "cpu_ms_per_mail": round(cpu / len(mails) * 1000, 2),
        "statements_per_mail": round(statements[0] / len(mails), 2),
        "msgs_per_cpu_s": len(mails) / cpu,
        "msgs_per_wall_s": len(mails) / wall,
        "outcomes": outcomes,
        "stored": stored,
        "events": events,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3, help="parse-only rounds (best kept)")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/bench-mail-parse"))
    parser.add_argument("--database-url", help="an external, empty database instead")
    parser.add_argument("--skip-intake", action="store_true")
    parser.add_argument(
        "--batch", type=int, default=1, help="mails per transaction (batch.receive_many)"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/mail_parse.json"))
    args = parser.parse_args()

    generated = time.perf_counter()
    mails = corpus(args.mails, args.seed)
    sizes = sorted(len(m) for m in mails)
    result: dict[str, Any] = {
        "mails": len(mails),
        "seed": args.seed,
        "corpus_mb": round(sum(sizes) / 1e6, 2),
        "median_bytes": sizes[len(sizes) // 2],
        "generate_s": round(time.perf_counter() - generated, 2),
        "nproc": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
    }
    result["parse"] = bench_parse(mails, args.rounds)
    print(
        f"parse only: {result['parse']['msgs_per_cpu_s']:.0f} msgs per CPU-second "
        f"({result['parse']['msgs_per_wall_s']:.0f}/s wall)"
    )
    if not args.skip_intake:
        from servicecycle.db.embedded import embedded_database
        from servicecycle.db.migrate import upgrade

        if args.database_url:
            upgrade(args.database_url)
            result["intake"] = asyncio.run(bench_intake(args.database_url, mails, args.batch))
        else:
            shutil.rmtree(args.data_dir, ignore_errors=True)
            with embedded_database(args.data_dir, exclusive=True) as url:
                upgrade(url)
                result["intake"] = asyncio.run(bench_intake(url, mails, args.batch))
            shutil.rmtree(args.data_dir, ignore_errors=True)
        intake = result["intake"]
        print(
            f"full intake: {intake['msgs_per_cpu_s']:.0f} msgs per CPU-second of this process, "
            f"{intake['msgs_per_wall_s']:.0f}/s wall; outcomes {intake['outcomes']}"
        )
    result["loadavg_after"] = os.getloadavg()
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
