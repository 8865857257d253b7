"""Search across tickets, messages and customers: PostgreSQL full text plus trigrams.

Tickets rank by where the words appear (subject weighs more than message bodies);
customers by trigram similarity of their name or any identity.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.kit.errors import ValidationFailed
from servicecycle.tickets.models import CHANNELS, PRIORITIES, STATUSES
from servicecycle.tickets.query_syntax import FIELDS, SearchQuery, parse

# ts_headline marks hits with these; they are swapped for <mark> after escaping the text
_START, _STOP = "\x02", "\x03"
_HEADLINE = f"StartSel={_START}, StopSel={_STOP}, MaxFragments=2, MaxWords=18, MinWords=6"
_SUBJECT = f"HighlightAll=true, StartSel={_START}, StopSel={_STOP}"
# how many of the newest matching tickets and messages are ranked (see ``search``)
RANKED_HITS = 250


@dataclass(frozen=True)
class TicketHit:
    id: int
    subject: str
    status: str
    priority: str
    requester_id: int
    assignee_id: int | None
    rank: float
    subject_html: str
    snippet_html: str


@dataclass(frozen=True)
class CustomerHit:
    id: int
    name: str
    identity: str | None
    score: float


@dataclass(frozen=True)
class Results:
    query: SearchQuery
    tickets: list[TicketHit]
    customers: list[CustomerHit]


def marked(fragment: str | None) -> str:
    """Escape a headline, then turn its hit markers into <mark> elements."""
    escaped = html.escape(fragment or "")
    return escaped.replace(_START, "<mark>").replace(_STOP, "</mark>")


def _filters(query: SearchQuery, *, me: int) -> tuple[list[str], dict[str, Any]]:
    where: list[str] = ["t.merged_into_id IS NULL"]
    params: dict[str, Any] = {}
    checks = {"status": STATUSES, "priority": PRIORITIES, "channel": CHANNELS}
    for key, values in query.filters.items():
        values = [v.lower() for v in values]
        if key in checks:
            bad = [v for v in values if v not in checks[key]]
            if bad:
                raise ValidationFailed(
                    f"Unknown {key}: {', '.join(bad)}",
                    fields={"q": f"{key}: one of {', '.join(checks[key])}"},
                )
            where.append(f"t.{key} = ANY(:{key})")
            params[key] = values
        elif key == "assignee":
            conditions = []
            ids = [me if v == "me" else v for v in values if v != "none"]
            if "none" in values:
                conditions.append("t.assignee_id IS NULL")
            if ids:
                if not all(str(v).isdigit() for v in ids):
                    raise ValidationFailed(
                        "Invalid assignee", fields={"q": "assignee: me, none or an id"}
                    )
                conditions.append("t.assignee_id = ANY(:assignees)")
                params["assignees"] = [int(v) for v in ids]
            where.append("(" + " OR ".join(conditions) + ")")
        elif key == "tag":
            where.append("t.tags @> :tags")
            params["tags"] = values
        elif key == "team":
            where.append(
                "t.team_id IN (SELECT id FROM teams WHERE lower(name) = ANY(:teams)"
                " OR id::text = ANY(:teams))"
            )
            params["teams"] = values
        elif key == "requester":
            where.append(
                "t.requester_id IN (SELECT customer_id FROM customer_identities"
                " WHERE value = ANY(:requesters) UNION SELECT id FROM customers"
                " WHERE id::text = ANY(:requesters))"
            )
            params["requesters"] = values
        elif key == "type":
            where.append("lower(t.type) = ANY(:types)")
            params["types"] = values
    return where, params


async def search(session: AsyncSession, raw: str, *, me: int, limit: int = 25) -> Results:
    """Tickets (ranked, highlighted) and customers matching ``raw``."""
    query = parse(raw)
    if not query.text and not query.filters:
        raise ValidationFailed("Type something to search for", fields={"q": "empty"})
    if query.unknown:
        raise ValidationFailed(
            f"Unknown search field: {', '.join(query.unknown)}",
            fields={"q": f"fields are {', '.join(FIELDS)}"},
        )
    where, params = _filters(query, me=me)
    if query.text and not query.wanted:
        raise ValidationFailed(
            "Add a word to look for, not only words to leave out", fields={"q": "only exclusions"}
        )
    if query.excluded:
        # an exclusion applies to the whole ticket: its subject and every message
        where.append(
            "NOT (t.search @@ (SELECT nq FROM nq) OR EXISTS (SELECT 1 FROM messages x"
            " WHERE x.ticket_id = t.id AND x.search @@ (SELECT nq FROM nq)))"
        )
        params["excluded"] = " OR ".join(query.excluded)
    params |= {"text": query.wanted, "limit": limit}
    conditions = " AND ".join(where)
    negatives = (
        "nq AS (SELECT websearch_to_tsquery('english', :excluded) AS nq)," if query.excluded else ""
    )
    if query.wanted:
        # Only the newest RANKED_HITS matching tickets and messages are ranked: a common word
        # matches hundreds of thousands of messages, and ranking them all costs seconds.
        # The tsquery is written out in each WHERE (not read from a CTE) so the planner can
        # estimate how many rows match and pick the GIN index or a newest-first walk.
        params["cap"] = RANKED_HITS
        sql = f"""
        WITH {negatives} q AS (SELECT websearch_to_tsquery('english', :text) AS query),
        subject_hits AS (
            SELECT t.id FROM tickets t
            WHERE t.search @@ websearch_to_tsquery('english', :text) AND {conditions}
            ORDER BY t.id DESC LIMIT :cap
        ),
        message_hits AS (
            SELECT m.id, m.ticket_id FROM messages m JOIN tickets t ON t.id = m.ticket_id
            WHERE m.search @@ websearch_to_tsquery('english', :text) AND {conditions}
            ORDER BY m.id DESC LIMIT :cap
        ),
        hits AS (
            SELECT s.id AS ticket_id, ts_rank(t.search, q.query) AS rank
            FROM subject_hits s JOIN tickets t ON t.id = s.id, q
            UNION ALL
            SELECT h.ticket_id, ts_rank(m.search, q.query)
            FROM message_hits h JOIN messages m ON m.id = h.id, q
        ),
        best AS (
            SELECT ticket_id, sum(rank) AS rank FROM hits GROUP BY ticket_id
            ORDER BY rank DESC, ticket_id DESC LIMIT :limit
        )
        SELECT t.id, t.subject, t.status, t.priority, t.requester_id, t.assignee_id, best.rank,
               ts_headline('english', t.subject, q.query, '{_SUBJECT}'),
               (SELECT ts_headline('english', m.body_text, q.query, '{_HEADLINE}')
                  FROM messages m WHERE m.ticket_id = t.id AND m.search @@ q.query
                  ORDER BY ts_rank(m.search, q.query) DESC LIMIT 1)
        FROM best JOIN tickets t ON t.id = best.ticket_id, q
        ORDER BY best.rank DESC, t.id DESC
        """  # noqa: S608 - conditions are fixed fragments; values are bound parameters
    else:
        sql = f"""
        SELECT t.id, t.subject, t.status, t.priority, t.requester_id, t.assignee_id, 0.0,
               t.subject, NULL
        FROM tickets t WHERE {conditions} ORDER BY t.updated_at DESC, t.id DESC LIMIT :limit
        """  # noqa: S608 - as above
    rows = (await session.execute(text(sql), params)).all()
    tickets = [
        TicketHit(
            id=r[0],
            subject=r[1],
            status=r[2],
            priority=r[3],
            requester_id=r[4],
            assignee_id=r[5],
            rank=float(r[6]),
            subject_html=marked(r[7]) if query.text else html.escape(r[1]),
            snippet_html=marked(r[8]),
        )
        for r in rows
    ]
    customers = (
        await _customers(session, query.text, limit=10) if query.text and not query.filters else []
    )
    return Results(query=query, tickets=tickets, customers=customers)


async def _customers(session: AsyncSession, words: str, *, limit: int) -> list[CustomerHit]:
    term = words.strip().strip('"').lower()
    if len(term) < 3:
        return []
    rows = await session.execute(
        # candidates come from the trigram indexes first; only those are scored
        text("""
        WITH candidates AS (
            SELECT id FROM customers WHERE name % :term
            UNION SELECT customer_id FROM customer_identities WHERE value % :term
            UNION SELECT customer_id FROM customer_identities WHERE value ILIKE :like
        )
        SELECT c.id, c.name, i.value, greatest(similarity(lower(c.name), :term),
                                              coalesce(similarity(i.value, :term), 0)) AS score
        FROM candidates JOIN customers c ON c.id = candidates.id
        LEFT JOIN LATERAL (
            SELECT value FROM customer_identities
            WHERE customer_id = c.id AND value % :term
            ORDER BY similarity(value, :term) DESC LIMIT 1
        ) i ON true
        WHERE c.merged_into_id IS NULL
        ORDER BY score DESC, c.id LIMIT :limit
        """),
        {"term": term, "like": f"%{term}%", "limit": limit},
    )
    return [CustomerHit(id=r[0], name=r[1], identity=r[2], score=float(r[3])) for r in rows]
