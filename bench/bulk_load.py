"""Bulk-load a migrated Servicecycle database with customers, tickets, messages and their events.

Everything is generated deterministically from ``--seed`` (the same arguments give the same
rows) and written with ``COPY``: companies, customers and their identities, tickets, their
messages (on average ``--messages-per-ticket``, the first from the customer) and the events the
API would have written for them (``customer.created``, ``ticket.created``, ``message.added``).
Agents, teams and one admin with a fresh API token are created too.

Message text is built from sentence templates and word lists, so full-text search behaves like
it does on real tickets, and a few *planted* terms appear in a known share of tickets
(``TERMS`` below; ``desk.py`` searches for them). Tags have known shares too (``TAGS``).

While loading, the secondary indexes and foreign keys of the loaded tables are dropped; they
are recreated afterwards from their own definitions, sequences are moved past the new ids and
the tables are vacuumed and analysed. The database may already hold data (new rows get new ids).

    .venv/bin/python bench/bulk_load.py --data-dir /tmp/bench-desk-1m --tickets 1000000
    .venv/bin/python bench/bulk_load.py --database-url postgresql://... --tickets 100000

``--data-dir`` uses the embedded PostgreSQL in that folder (started if no server owns it, and
migrated); the manifest (token, ids, teams, the planted terms) goes to
``<data-dir>/bench-manifest.json`` unless ``--manifest`` says otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import multiprocessing
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parent.parent
CHUNK = 5000  # tickets per generated batch; part of the seed (do not change between runs)
LOADED_TABLES = ("companies", "customers", "customer_identities", "tickets", "messages", "events")
ACTOR_ID = "bulk_load"
DAY = 86400.0

# -- what the text is made of ----------------------------------------------------------------

# Planted terms: the share of tickets whose first message contains the term. None of these
# words appears anywhere else in the generated text, so the share is exact in expectation.
TERMS: dict[str, float] = {
    "quasar": 0.001,  # rare
    "kerberos": 0.01,  # medium
    "printer": 0.10,  # common
    "refund": 0.30,  # very common
}
PHRASE = ("blue screen", 0.005)  # "blue screen" as a phrase in 0.5% of tickets ...
BLUE_ALONE = 0.02  # ... and "blue" without "screen" next to it in another 2%
PLANTED = {
    "quasar": [
        "The quasar module in our account shows an error after the update.",
        "Our quasar integration stopped syncing with the dashboard.",
    ],
    "kerberos": [
        "Single sign-on fails with a kerberos ticket error.",
        "Since the update the kerberos login keeps timing out.",
    ],
    "printer": [
        "The printer in the office stopped printing the labels.",
        "Our label printer shows a paper jam even when it is empty.",
        "The printer driver does not install on the new laptop.",
    ],
    "refund": [
        "I would like a refund for the duplicate charge.",
        "When will the refund reach my card?",
        "Please confirm that the refund was processed.",
    ],
    "blue screen": [
        "The laptop shows a blue screen every time it wakes up.",
        "After the driver update the computer crashes with a blue screen.",
    ],
    "blue": [
        "The blue light on the router keeps flashing.",
        "I clicked the blue button but nothing happened.",
    ],
}
# tag -> share of tickets carrying it
TAGS: dict[str, float] = {
    "billing": 0.20,
    "shipping": 0.15,
    "bug": 0.10,
    "feature-request": 0.05,
    "vip": 0.05,
    "mobile": 0.08,
    "vpn": 0.02,
    "escalated": 0.01,
    "legal": 0.001,
}
STATUS_MIX = {  # status -> share (35% open, like the peer's bulk loader)
    "new": 0.05,
    "open": 0.18,
    "pending": 0.08,
    "on-hold": 0.04,
    "solved": 0.15,
    "closed": 0.50,
}
PRIORITY_MIX = {"low": 0.2, "normal": 0.6, "high": 0.15, "urgent": 0.05}
CHANNEL_MIX = {"email": 0.55, "web": 0.2, "chat": 0.1, "api": 0.05, "phone": 0.05, "portal": 0.05}
TYPES = [None, None, "question", "incident", "problem", "task"]


def _split(text: str, sep: str | None = None) -> list[str]:
    return text.split(sep)


TEAMS = ["Support", "Billing", "Shipping", "Technical", "Returns", "Accounts", "Sales", "Mobile"]

NOUNS = _split(
    "order account password parcel delivery invoice subscription card payment app login email "
    "address screen update browser laptop phone router report export dashboard integration "
    "plan license warranty battery charger package tracking label discount coupon basket "
    "checkout receipt statement transfer profile settings notification tablet keyboard mouse "
    "monitor cable adapter firmware backup calendar contract quote shipment warehouse courier "
    "voucher booking reservation ticket session token upload download file folder sync camera "
    "speaker headset microphone store branch manager team colleague customer website page form "
    "button link code network connection wifi server database certificate domain mailbox"
)
ISSUES = _split(
    (
        "is not working|keeps crashing|is very slow|shows an error|does not load|is missing|"
        "was charged twice|arrived damaged|is stuck|cannot be found|stopped working|is broken|"
        "freezes|times out|looks wrong|was cancelled|never arrived|is locked|is out of date|"
        "disappeared|fails to open|returns a blank page"
    ),
    "|",
)
ACTIONS = _split(
    "update change cancel reset reactivate export import download upload open close transfer "
    "verify confirm check replace return track sync restore delete install configure renew"
)
TIMES = _split(
    (
        "yesterday|this morning|last week|two days ago|on Monday|since the update|for a week|"
        "since last month|today|an hour ago|over the weekend|since Friday"
    ),
    "|",
)
PEOPLE = _split("I|We|My colleague|Our manager|The team|My husband|My wife|Our customer", "|")
FIRST = _split(
    "Ana Ben Carla Dana Eli Femi Gus Hana Ivan Jade Kofi Lena Milo Nia Omar Pia Quinn Rosa Sam "
    "Tara Uma Vik Wen Xan Yara Zed Alex Bea Chen Dev Emma Finn Gia Hugo Iris Jon Kim Leo Mara"
)
LAST = _split(
    "Lima Fox Park Silva Novak Okafor Berg Costa Meyer Tanaka Rossi Dubois Khan Moreau Nagy "
    "Olsen Patel Quist Reyes Sato Torres Ueda Varga Weber Yilmaz Zhou Brandt Garcia Hughes Ito"
)
COMPANY_WORDS = _split(
    "Acme Globex Initech Umbrella Stark Wayne Hooli Vandelay Wonka Tyrell Cyberdyne Soylent "
    "Aperture Nakatomi Oscorp Gringotts Monarch Pied Piper Massive Dynamic Blue Sun"
)
COMPANY_KINDS = _split("Logistics Retail Labs Foods Travel Media Health Energy Systems Bank")

_ALL_WORDS = " ".join(NOUNS + ISSUES + ACTIONS + TIMES + PEOPLE + COMPANY_KINDS).lower().split()
assert not ({*TERMS, "blue", "kerberos"} & set(_ALL_WORDS)), "planted terms must be unique"
COMPANY_WORDS = [w for w in COMPANY_WORDS if w != "Blue"]


def _zipf(values: list[str], s: float = 1.0) -> tuple[list[str], list[float]]:
    """Cumulative Zipf weights for ``values`` (the first is the most frequent)."""
    total, cum = 0.0, []
    for rank in range(1, len(values) + 1):
        total += 1.0 / rank**s
        cum.append(total)
    return values, cum


def _pick(rng: random.Random, table: tuple[list[str], list[float]]) -> str:
    return rng.choices(table[0], cum_weights=table[1])[0]


def _mix(table: dict[str, float]) -> tuple[list[str], list[float]]:
    keys, cum, total = [], [], 0.0
    for key, share in table.items():
        total += share
        keys.append(key)
        cum.append(total)
    return keys, cum


class Text:
    """Pools of sentences, built once from the seed; messages are drawn from the pools."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(f"{seed}:text")
        self.nouns = _zipf(NOUNS, 0.9)
        self.customer = [self._customer_sentence(rng) for _ in range(40000)]
        self.agent = [self._agent_sentence(rng) for _ in range(10000)]
        self.subjects = [self._subject(rng) for _ in range(20000)]

    def _customer_sentence(self, rng: random.Random) -> str:
        n1, n2 = _pick(rng, self.nouns), _pick(rng, self.nouns)
        who, when = rng.choice(PEOPLE), rng.choice(TIMES)
        issue, action = rng.choice(ISSUES), rng.choice(ACTIONS)
        number = rng.randint(10000, 999999)
        templates = (
            f"My {n1} {issue} {when}.",
            f"{who} tried to {action} the {n1} {when} but the {n2} {issue}.",
            f"The {n1} {issue} when I try to {action} my {n2}.",
            f"Could you please {action} the {n1} on order {number}?",
            f"{who} cannot {action} the {n1} because the {n2} {issue}.",
            f"Order {number} was placed {when} and the {n1} {issue}.",
            f"Is there a way to {action} the {n1} without the {n2}?",
            f"This is the third time the {n1} {issue}.",
            f"Reference {number}: the {n1} {issue} again.",
        )
        return rng.choice(templates)

    def _agent_sentence(self, rng: random.Random) -> str:
        n1, n2 = _pick(rng, self.nouns), _pick(rng, self.nouns)
        action, when = rng.choice(ACTIONS), rng.choice(TIMES)
        number = rng.randint(10000, 999999)
        templates = (
            f"I have asked the team to {action} the {n1} for you.",
            f"Could you send us a screenshot of the {n1} page?",
            f"We can {action} the {n1} once the {n2} is confirmed.",
            f"Your case number is {number}; we will {action} the {n1} {when}.",
            f"Please try to {action} the {n1} and let us know if the {n2} still fails.",
            f"I checked the {n1} and everything looks fine on our side.",
            f"The {n1} should be updated within two working days.",
        )
        return rng.choice(templates)

    def _subject(self, rng: random.Random) -> str:
        n1, n2 = _pick(rng, self.nouns), _pick(rng, self.nouns)
        issue, action = rng.choice(ISSUES), rng.choice(ACTIONS)
        templates = (
            f"{n1.capitalize()} {issue}",
            f"Cannot {action} my {n1}",
            f"Question about my {n1}",
            f"{n1.capitalize()} and {n2} {issue}",
            f"Need help to {action} the {n1}",
            f"Problem with {n1} after {n2} {action}",
        )
        return rng.choice(templates)

    def customer_message(self, rng: random.Random, planted: list[str], name: str) -> str:
        sentences = rng.choices(self.customer, k=rng.randint(2, 5))
        for term in planted:
            sentences.insert(rng.randrange(len(sentences) + 1), rng.choice(PLANTED[term]))
        greeting = rng.choice(("Hello,", "Hi there,", "Dear support,", "Good morning,"))
        return f"{greeting}\n\n{' '.join(sentences)}\n\nThanks,\n{name}"

    def agent_message(self, rng: random.Random, name: str) -> str:
        sentences = rng.choices(self.agent, k=rng.randint(1, 4))
        return f"Hi,\n\n{' '.join(sentences)}\n\nBest regards,\n{name}"


# -- COPY text format helpers ----------------------------------------------------------------


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "")


def _ts(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat()


def _tsn(epoch: float | None) -> str:
    return "\\N" if epoch is None else _ts(epoch)


def _html(text: str) -> str:
    paragraphs = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").split("\n\n")
    return "".join("<p>" + p.replace("\n", "<br>") + "</p>" for p in paragraphs)


def _nul(value: object) -> str:
    return "\\N" if value is None else str(value)


# -- the plan: how many messages each chunk has, so ids can be assigned in parallel ----------


def message_counts(seed: int, chunk_no: int, n: int, per_ticket: float) -> list[int]:
    rng = random.Random(f"{seed}:counts:{chunk_no}")
    extra = max(0, round(2 * (per_ticket - 1)))
    return [1 + rng.randint(0, extra) for _ in range(n)]


# -- generation of one chunk -------------------------------------------------------------------

_TEXT: Text | None = None


def _text(seed: int) -> Text:
    global _TEXT
    if _TEXT is None:
        _TEXT = Text(seed)
    return _TEXT


def generate_chunk(job: dict[str, Any]) -> tuple[str, str, str, dict[str, int]]:
    """Tickets, messages and events of one chunk, as COPY text; plus planted-term counts."""
    seed, chunk_no = job["seed"], job["chunk_no"]
    text = _text(seed)
    rng = random.Random(f"{seed}:chunk:{chunk_no}")
    counts = message_counts(seed, chunk_no, job["n"], job["per_ticket"])
    statuses, priorities = _mix(STATUS_MIX), _mix(PRIORITY_MIX)
    channels = _mix(CHANNEL_MIX)
    agents: list[tuple[int, int]] = job["agents"]  # (user id, team id)
    teams: list[int] = job["teams"]
    cust_lo, cust_n, hot_n = job["customer_lo"], job["customer_n"], max(1, job["customer_n"] // 5)
    t_start, t_span, now = job["t_start"], job["t_span"], job["now"]
    total = job["total_tickets"]
    msg_id, event_id = job["msg_base"], job["event_base"]
    tickets, messages, events = [], [], []
    planted_count = dict.fromkeys([*TERMS, PHRASE[0], "blue"], 0)
    tag_items = list(TAGS.items())
    for k in range(job["n"]):
        index = job["first_index"] + k  # 0-based over this load
        ticket_id = job["ticket_base"] + index
        created = t_start + (index + rng.random()) * t_span / total
        status = rng.choices(statuses[0], cum_weights=statuses[1])[0]
        open_ = status in ("new", "open", "pending", "on-hold")
        priority = rng.choices(priorities[0], cum_weights=priorities[1])[0]
        channel = rng.choices(channels[0], cum_weights=channels[1])[0]
        if rng.random() < 0.6:  # a fifth of the customers open most tickets
            requester = cust_lo + rng.randrange(hot_n)
        else:
            requester = cust_lo + rng.randrange(cust_n)
        assigned = rng.random() < (0.8 if open_ else 0.98)
        assignee, team = agents[rng.randrange(len(agents))] if assigned else (None, None)
        if team is None and rng.random() < 0.9:
            team = teams[rng.randrange(len(teams))]
        tags = sorted(tag for tag, share in tag_items if rng.random() < share)
        n_msgs = counts[k]
        last = created + rng.uniform(600, (10 if open_ else 15) * DAY)
        if last > now - 60:  # recent tickets: last activity somewhere between creation and now
            last = created + rng.random() * max(0.0, now - 60 - created)
        step = (last - created) / max(1, n_msgs - 1)
        planted = [term for term, share in TERMS.items() if rng.random() < share]
        roll = rng.random()
        if roll < PHRASE[1]:
            planted.append(PHRASE[0])
        elif roll < PHRASE[1] + BLUE_ALONE:
            planted.append("blue")
        for term in planted:
            planted_count[term] += 1
        subject = rng.choice(text.subjects)
        name = f"{FIRST[requester % len(FIRST)]} {LAST[(requester // 7) % len(LAST)]}"
        first_reply = solved = closed = None
        ticket_event = event_id
        event_id += 1
        for j in range(n_msgs):
            at = created + j * step
            if j == 0 or (j % 2 == 0 and rng.random() < 0.8):
                author, public = "customer", True
                body = text.customer_message(rng, planted if j == 0 else [], name)
                user_id, customer_id, actor = None, requester, ("system", ACTOR_ID)
            else:
                author, public = "agent", rng.random() < 0.85
                user_id = assignee if assignee is not None else agents[0][0]
                body = text.agent_message(rng, "Support")
                customer_id, actor = None, ("user", str(user_id))
                if public and first_reply is None:
                    first_reply = at
            messages.append(
                f"{msg_id}\t{ticket_id}\t{'t' if public else 'f'}\t{author}\t{_nul(user_id)}\t"
                f"{_nul(customer_id)}\t{channel}\t{_esc(_html(body))}\t{_esc(body)}\t{_ts(at)}\n"
            )
            data = json.dumps({"message_id": msg_id, "public": public, "author_type": author})
            events.append(
                f"{event_id}\t{_ts(at)}\tmessage.added\tticket\t{ticket_id}\t{actor[0]}\t"
                f"{actor[1]}\t{_esc(data)}\n"
            )
            msg_id += 1
            event_id += 1
        if status in ("solved", "closed"):
            solved = last
        if status == "closed":
            closed = min(now - 30, last + 4 * DAY)
        updated = closed or last
        data = json.dumps(
            {
                "subject": subject,
                "channel": channel,
                "priority": priority,
                "requester_id": requester,
                "assignee_id": assignee,
                "team_id": team,
                "tags": tags,
                "custom": {},
            }
        )
        events.append(
            f"{ticket_event}\t{_ts(created)}\tticket.created\tticket\t{ticket_id}\tsystem\t"
            f"{ACTOR_ID}\t{_esc(data)}\n"
        )
        tickets.append(
            f"{ticket_id}\t{_esc(subject)}\t{status}\t{priority}\t"
            f"{_nul(rng.choice(TYPES))}\t{channel}\t{requester}\t{_nul(assignee)}\t{_nul(team)}\t"
            f"{{{','.join(tags)}}}\t{_ts(created)}\t{_ts(updated)}\t"
            f"{_tsn(first_reply)}\t{_tsn(solved)}\t{_tsn(closed)}\t{n_msgs + 1}\n"
        )
    assert msg_id == job["msg_base"] + sum(counts)
    assert event_id == job["event_base"] + job["n"] + sum(counts)
    return "".join(tickets), "".join(messages), "".join(events), planted_count


TICKET_COLUMNS = (
    "id, subject, status, priority, type, channel, requester_id, assignee_id, team_id, tags, "
    "created_at, updated_at, first_reply_at, solved_at, closed_at, version"
)
MESSAGE_COLUMNS = (
    "id, ticket_id, public, author_type, author_user_id, author_customer_id, channel, "
    "body_html, body_text, created_at"
)
EVENT_COLUMNS = "id, occurred_at, kind, subject_type, subject_id, actor_type, actor_id, data"


def _copy(conn: psycopg.Connection[Any], table: str, columns: str, data: str) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        step = 1 << 22
        for start in range(0, len(data), step):
            copy.write(data[start : start + step])


def load_chunks(args: tuple[str, list[dict[str, Any]]]) -> dict[str, int]:
    """A worker: generate and COPY its chunks, one transaction each."""
    url, jobs = args
    planted: dict[str, int] = {}
    with psycopg.connect(url) as conn:
        conn.execute("SET synchronous_commit = off")
        for job in jobs:
            started = time.perf_counter()
            tickets, messages, events, found = generate_chunk(job)
            generated = time.perf_counter()
            _copy(conn, "tickets", TICKET_COLUMNS, tickets)
            _copy(conn, "messages", MESSAGE_COLUMNS, messages)
            _copy(conn, "events", EVENT_COLUMNS, events)
            conn.commit()
            for key, value in found.items():
                planted[key] = planted.get(key, 0) + value
            print(
                f"  chunk {job['chunk_no']:>4}: {job['n']} tickets, generate "
                f"{generated - started:.1f}s, copy {time.perf_counter() - generated:.1f}s",
                file=sys.stderr,
                flush=True,
            )
    return planted


# -- people, customers, schema work ------------------------------------------------------------


def _people(conn: psycopg.Connection[Any], n_agents: int) -> dict[str, Any]:
    """Teams, agents (with memberships) and the bench admin with a new API token."""
    from servicecycle.auth.passwords import hash_token, new_token

    teams: list[int] = []
    for name in TEAMS:
        row = conn.execute("SELECT id FROM teams WHERE lower(name) = lower(%s)", (name,)).fetchone()
        if row is None:
            row = conn.execute(
                "INSERT INTO teams (name, description) VALUES (%s, %s) RETURNING id",
                (name, f"{name} (bench)"),
            ).fetchone()
        assert row is not None
        teams.append(row[0])

    def user(email: str, name: str, role: str) -> int:
        row = conn.execute("SELECT id FROM users WHERE lower(email) = %s", (email,)).fetchone()
        if row is None:
            row = conn.execute(
                "INSERT INTO users (email, name, role) VALUES (%s, %s, %s) RETURNING id",
                (email, name, role),
            ).fetchone()
        assert row is not None
        return int(row[0])

    admin = user("bench-admin@bench.servicecycle.test", "Bench Admin", "admin")
    agents = [(admin, teams[0])]
    for n in range(1, n_agents):
        uid = user(f"agent{n}@bench.servicecycle.test", f"Agent {n}", "agent")
        agents.append((uid, teams[n % len(teams)]))
    for uid, team in agents:
        conn.execute(
            "INSERT INTO team_members (team_id, user_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (team, uid),
        )
    token = new_token("sc_")
    conn.execute(
        "INSERT INTO api_tokens (user_id, name, prefix, token_hash, scopes) "
        "VALUES (%s, 'bench', %s, %s, %s)",
        (admin, token[:10], hash_token(token), ["admin", "read", "write"]),
    )
    return {
        "token": token,
        "admin_id": admin,
        "agents": agents,
        "teams": dict(zip(TEAMS, teams, strict=True)),
    }


def _next_id(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()  # noqa: S608
    assert row is not None
    return int(row[0])


def customer_email(cid: int) -> str:
    """The e-mail identity of bulk-loaded customer ``cid``."""
    first, last = FIRST[cid % len(FIRST)], LAST[(cid // 7) % len(LAST)]
    return f"{first.lower()}.{last.lower()}.{cid}@customers.example"


def _customers(
    conn: psycopg.Connection[Any], n: int, seed: int, t_start: float
) -> tuple[int, int, int]:
    """Companies, customers and identities; returns (first customer id, count, events)."""
    rng = random.Random(f"{seed}:customers")
    company_lo, customer_lo = _next_id(conn, "companies"), _next_id(conn, "customers")
    identity_lo, event_lo = _next_id(conn, "customer_identities"), _next_id(conn, "events")
    n_companies = n // 40
    companies, customers, identities, events = [], [], [], []
    at = _ts(t_start - 30 * DAY)
    for c in range(n_companies):
        cid = company_lo + c
        name = f"{COMPANY_WORDS[c % len(COMPANY_WORDS)]} {COMPANY_KINDS[c % 10]} {cid}"
        domain = f"{name.split()[0].lower()}{cid}.example"
        tier = rng.choice(("standard", "standard", "premium", "enterprise"))
        companies.append(f"{cid}\t{name}\t{domain}\t{tier}\t\t1\t{at}\t{at}\n")
    identity = identity_lo
    for k in range(n):
        cid = customer_lo + k
        first, last = FIRST[cid % len(FIRST)], LAST[(cid // 7) % len(LAST)]
        company = company_lo + rng.randrange(n_companies) if rng.random() < 0.6 else None
        company = company if n_companies else None
        segment = rng.choice((None, "smb", "consumer", "enterprise"))
        customers.append(
            f"{cid}\t{first} {last}\t{_nul(company)}\tstandard\t{_nul(segment)}\t{{}}\t\t{{}}\t"
            f"1\t{at}\t{at}\n"
        )
        email = customer_email(cid)
        values = [("email", email)]
        identities.append(f"{identity}\t{cid}\temail\t{email}\t{at}\n")
        identity += 1
        if rng.random() < 0.15:
            phone = f"+44{7000000000 + cid}"
            values.append(("phone", phone))
            identities.append(f"{identity}\t{cid}\tphone\t{phone}\t{at}\n")
            identity += 1
        data = json.dumps({"name": f"{first} {last}", "identities": [v for _, v in values]})
        events.append(
            f"{event_lo + k}\t{at}\tcustomer.created\tcustomer\t{cid}\tsystem\t{ACTOR_ID}\t"
            f"{_esc(data)}\n"
        )
    company_cols = "id, name, domain, tier, notes, version, created_at, updated_at"
    _copy(conn, "companies", company_cols, "".join(companies))
    customer_cols = (
        "id, name, company_id, tier, segment, tags, notes, attributes, version, "
        "created_at, updated_at"
    )
    _copy(conn, "customers", customer_cols, "".join(customers))
    identity_cols = "id, customer_id, kind, value, created_at"
    _copy(conn, "customer_identities", identity_cols, "".join(identities))
    _copy(conn, "events", EVENT_COLUMNS, "".join(events))
    return customer_lo, n, len(events)


def _drop_secondary(conn: psycopg.Connection[Any]) -> tuple[list[str], list[str]]:
    """Drop the loaded tables' secondary indexes and foreign keys; return how to recreate them."""
    tables = list(LOADED_TABLES)
    indexes = conn.execute(
        """
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
        WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY(%s)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
        """,
        (tables,),
    ).fetchall()
    fks = conn.execute(
        """
        SELECT conname, conrelid::regclass::text, pg_get_constraintdef(oid)
        FROM pg_constraint
        WHERE contype = 'f' AND connamespace = 'public'::regnamespace
          AND conrelid::regclass::text = ANY(%s)
        """,
        (tables,),
    ).fetchall()
    for name, table, _ in fks:
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    return (
        [definition for _, definition in indexes],
        [f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {rest}' for name, table, rest in fks],
    )


@contextlib.contextmanager
def _database(args: argparse.Namespace) -> Iterator[str]:
    if args.database_url:
        yield args.database_url
        return
    from servicecycle.db.embedded import embedded_database

    with embedded_database(Path(args.data_dir), exclusive=False) as url:
        yield url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--database-url", help="a migrated PostgreSQL database")
    where.add_argument("--data-dir", help="the embedded PostgreSQL's data folder (migrated here)")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--messages-per-ticket", type=float, default=5.0, help="average")
    parser.add_argument("--customers", type=int, help="default: tickets / 5")
    parser.add_argument("--agents", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2, help="generating/copying processes")
    parser.add_argument("--days", type=float, default=730, help="history the tickets span")
    parser.add_argument("--manifest", help="where to write the JSON manifest (token, ids, terms)")
    parser.add_argument("--no-vacuum", action="store_true", help="ANALYZE only, no VACUUM")
    args = parser.parse_args(argv)
    n_customers = max(100, args.tickets // 5) if args.customers is None else args.customers
    if args.tickets and not n_customers:
        parser.error("tickets need customers (--customers > 0)")
    manifest_path = Path(
        args.manifest or (Path(args.data_dir) / "bench-manifest.json" if args.data_dir else "")
    )
    if not args.manifest and not args.data_dir:
        manifest_path = REPO / "bench" / "results" / "bulk-manifest.json"

    with _database(args) as url:
        if args.data_dir:
            from servicecycle.db.migrate import upgrade

            upgrade(url)
        url = url.replace("postgresql+psycopg://", "postgresql://")
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        now = time.time()
        t_start, t_span = now - args.days * DAY, args.days * DAY - 3600
        with psycopg.connect(url) as conn:
            conn.execute("SET synchronous_commit = off")
            people = _people(conn, args.agents)
            ticket_base = _next_id(conn, "tickets")
            if ticket_base < 1001:
                ticket_base = 1001
            index_defs, fk_defs = _drop_secondary(conn)
            conn.commit()
            customer_lo, _, customer_events = _customers(conn, n_customers, args.seed, t_start)
            conn.commit()
            msg_base, event_base = _next_id(conn, "messages"), _next_id(conn, "events")
        timings["customers_s"] = time.perf_counter() - t0

        # ids of every chunk, from the per-chunk message counts (cheap; same seed, same counts)
        jobs: list[dict[str, Any]] = []
        shared = {
            "seed": args.seed,
            "per_ticket": args.messages_per_ticket,
            "agents": people["agents"],
            "teams": list(people["teams"].values()),
            "customer_lo": customer_lo,
            "customer_n": n_customers,
            "t_start": t_start,
            "t_span": t_span,
            "now": now,
            "total_tickets": args.tickets,
            "ticket_base": ticket_base,
        }
        n_messages = 0
        for chunk_no, first in enumerate(range(0, args.tickets, CHUNK)):
            n = min(CHUNK, args.tickets - first)
            msgs = sum(message_counts(args.seed, chunk_no, n, args.messages_per_ticket))
            jobs.append(
                shared
                | {
                    "chunk_no": chunk_no,
                    "first_index": first,
                    "n": n,
                    "msg_base": msg_base + n_messages,
                    "event_base": event_base + n_messages + first,
                }
            )
            n_messages += msgs
        t1 = time.perf_counter()
        work = [(url, jobs[k :: args.jobs]) for k in range(args.jobs)]
        if args.jobs == 1:
            results = [load_chunks(work[0])]
        else:
            with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
                results = pool.map(load_chunks, work)
        planted: dict[str, int] = {}
        for found in results:
            for key, value in found.items():
                planted[key] = planted.get(key, 0) + value
        timings["copy_s"] = time.perf_counter() - t1

        t2 = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET maintenance_work_mem = '1GB'")
            for definition in index_defs:
                started = time.perf_counter()
                conn.execute(definition)
                print(f"  {time.perf_counter() - started:6.1f}s {definition}", file=sys.stderr)
            timings["indexes_s"] = time.perf_counter() - t2
            t3 = time.perf_counter()
            for definition in fk_defs:
                conn.execute(definition)
            timings["foreign_keys_s"] = time.perf_counter() - t3
            for table in (*LOADED_TABLES, "users", "teams", "api_tokens"):
                sql = (
                    f"SELECT setval(s, (SELECT coalesce(max(id), 1) FROM {table}))"  # noqa: S608
                    " FROM pg_get_serial_sequence(%s, 'id') AS s WHERE s IS NOT NULL"
                )
                conn.execute(sql, (table,))
            t4 = time.perf_counter()
            verb = "ANALYZE" if args.no_vacuum else "VACUUM (ANALYZE)"
            for table in LOADED_TABLES:
                conn.execute(f"{verb} {table}")
            timings["vacuum_analyze_s"] = time.perf_counter() - t4
            sizes = dict(
                conn.execute(
                    "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
                    "WHERE relname = ANY(%s) AND relkind = 'r'",
                    (list(LOADED_TABLES),),
                ).fetchall()
            )
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            assert row is not None
            db_size = int(row[0])
        total = time.perf_counter() - t0
        events_total = customer_events + args.tickets + n_messages
        manifest = {
            "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "args": {k: v for k, v in vars(args).items() if k != "manifest"},
            "token": people["token"],
            "admin_id": people["admin_id"],
            "agent_ids": [uid for uid, _ in people["agents"]],
            "teams": people["teams"],
            "tickets": {"first_id": ticket_base, "last_id": ticket_base + args.tickets - 1},
            "customers": {"first_id": customer_lo, "count": n_customers},
            "counts": {
                "customers": n_customers,
                "tickets": args.tickets,
                "messages": n_messages,
                "events": events_total,
            },
            "terms": TERMS,
            "phrase": {"text": PHRASE[0], "share": PHRASE[1]},
            "planted_tickets": planted,
            "tags": TAGS,
            "status_mix": STATUS_MIX,
            "timings_s": {k: round(v, 1) for k, v in timings.items()} | {"total": round(total, 1)},
            "rows_per_s": round((args.tickets + n_messages + events_total) / total),
            "sizes_mb": {k: round(v / 2**20) for k, v in sizes.items()},
            "database_mb": round(db_size / 2**20),
        }
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(
        f"loaded {args.tickets:,} tickets, {n_messages:,} messages, {events_total:,} events, "
        f"{n_customers:,} customers in {total:.0f}s "
        f"({args.tickets / total:,.0f} tickets/s, {manifest['rows_per_s']:,} rows/s); "
        f"copy {timings['copy_s']:.0f}s, indexes {timings['indexes_s']:.0f}s, "
        f"vacuum/analyze {timings['vacuum_analyze_s']:.0f}s; database {db_size / 2**30:.2f} GiB"
    )
    print(f"manifest: {manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
