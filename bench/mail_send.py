"""Outbound mail: how fast the outbox hands queued mail to a local SMTP server.

Queues ``--mails`` mails (acknowledgements of ``--tickets`` tickets made from mail, and agent
replies on them) in the embedded PostgreSQL, then times ``outbox.deliver``: claim a batch and
commit, send each mail over one SMTP connection, settle each in its own transaction (the
crash-safe protocol). The receiving server (aiosmtpd) runs in a separate process and counts
what it got, and how many distinct Message-IDs.

    .venv/bin/python bench/mail_send.py --mails 2000 --data-dir /tmp/bench-mail-send
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

RECEIVER = """
import sys, time
from aiosmtpd.controller import Controller
from email.parser import BytesHeaderParser
ids = []
class Count:
    async def handle_DATA(self, server, session, envelope):
        ids.append(BytesHeaderParser().parsebytes(envelope.content)["Message-ID"])
        return "250 OK"
controller = Controller(Count(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
controller.stop()
print(len(ids), len(set(ids)), flush=True)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def queue_mails(url: str, tickets: int, mails: int) -> int:
    from sqlalchemy import func, select

    from servicecycle.channels.email import intake, outbox
    from servicecycle.channels.models import OutboundMail
    from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work
    from servicecycle.tickets import service as ticket_service
    from servicecycle.tickets.storage import DatabaseStorage

    engine = make_engine(url, pool_size=2)
    sessions = make_sessionmaker(engine)
    ids = []
    for i in range(tickets):
        message = EmailMessage()
        message["From"], message["To"] = f"customer{i}@example.com", "help@desk.example"
        message["Subject"], message["Message-ID"] = f"Order {i} is late", f"<q{i}@example.com>"
        message.set_content("Where is my order? It was due last week.")
        async with unit_of_work(sessions) as session:
            outcome = await intake.receive(
                session, message.as_bytes(), storage=DatabaseStorage(), max_file_bytes=10**7
            )
            assert outcome.ticket_id is not None
            ids.append(outcome.ticket_id)
    left = mails - tickets
    async with unit_of_work(sessions) as session:
        for n in range(left):
            ticket = await ticket_service.get_ticket(session, ids[n % len(ids)])
            await outbox.queue(
                session,
                ticket,
                kind="reply",
                body=f"Hello,\n\nyour parcel left our warehouse today (reply {n}).\n\nRegards",
                sender="help@desk.example",
            )
    async with unit_of_work(sessions) as session:
        queued = int(
            await session.scalar(
                select(func.count())
                .select_from(OutboundMail)
                .where(OutboundMail.status == "queued")
            )
            or 0
        )
    await engine.dispose()
    return queued


async def deliver(url: str, port: int, mails: int, batch: int) -> dict[str, Any]:
    from sqlalchemy import func, select

    from servicecycle.channels.email import outbox
    from servicecycle.channels.models import OutboundMail
    from servicecycle.db.engine import make_engine, make_sessionmaker, unit_of_work

    engine = make_engine(url, pool_size=2)
    sessions = make_sessionmaker(engine)
    smtp = outbox.SmtpSettings(
        host="127.0.0.1",
        port=port,
        username=None,
        password=None,
        starttls=False,
        sender="help@desk.example",
    )
    cpu, wall = time.process_time(), time.perf_counter()
    sent, failed = await outbox.deliver(sessions, smtp, limit=mails, batch=batch)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    async with unit_of_work(sessions) as session:
        states = dict(
            (
                await session.execute(
                    select(OutboundMail.status, func.count()).group_by(OutboundMail.status)
                )
            ).all()
        )
    await engine.dispose()
    return {
        "sent": sent,
        "failed": failed,
        "cpu_s": cpu,
        "wall_s": wall,
        "mails_per_cpu_s": sent / cpu,
        "mails_per_wall_s": sent / wall,
        "states": states,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--tickets", type=int, default=100)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/bench-mail-send"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/mail_send.json"))
    args = parser.parse_args()

    from servicecycle.db.embedded import embedded_database
    from servicecycle.db.migrate import upgrade

    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
    result: dict[str, Any] = {
        "mails": args.mails,
        "batch": args.batch,
        "nproc": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
    }
    shutil.rmtree(args.data_dir, ignore_errors=True)
    try:
        with embedded_database(args.data_dir, exclusive=True) as url:
            upgrade(url)
            result["queued"] = asyncio.run(queue_mails(url, args.tickets, args.mails))
            result["deliver"] = asyncio.run(deliver(url, port, args.mails, args.batch))
    finally:
        got, distinct = receiver.communicate("", timeout=120)[0].split()
        shutil.rmtree(args.data_dir, ignore_errors=True)
    result["received"], result["distinct_message_ids"] = int(got), int(distinct)
    result["loadavg_after"] = os.getloadavg()
    d = result["deliver"]
    print(
        f"sent {d['sent']} (failed {d['failed']}): {d['mails_per_wall_s']:.0f} mails/s wall, "
        f"{d['mails_per_cpu_s']:.0f} per CPU-second of this process; the receiver got "
        f"{got} mails, {distinct} distinct Message-IDs"
    )
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
