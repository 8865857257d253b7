"""Search across tickets, messages and customers: PostgreSQL full text plus trigrams.

Tickets rank by where the words appear (subject weighs more than message bodies);
customers by trigram similarity of their name or any identity.
"""

from __future__ import annotations

import html
import time
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
# how many of the newest matching tickets are ranked (see ``_newest_matches``)
RANKED_HITS = 250
# how many of the newest ticket ids are looked at one by one first, and how many more tickets
# walking on may look at before the full-text indexes take over (see ``_newest_matches``)
PROBE = 500
WALK_LIMIT = 10_000
# a word in at least this share of messages (by the planner's statistics) is common: for
# queries of common words only, walking newest-first beats the full-text index
COMMON_SHARE = 0.01
_STATS_SECONDS = 600.0
_shares: tuple[float, dict[str, float]] = (float("-inf"), {})


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
            "NOT (t.search @@ (SELECT nq FROM nq) OR EXISTS (SELECT 1 FROM (SELECT x.search"
            " FROM messages x WHERE x.ticket_id = t.id OFFSET 0) x"
            " WHERE x.search @@ (SELECT nq FROM nq)))"
        )
        params["excluded"] = " OR ".join(query.excluded)
    params |= {"text": query.wanted, "limit": limit}
    conditions = " AND ".join(where)
    # Every per-ticket look at messages below reads that ticket's rows through its index and
    # matches them after an ``OFFSET 0`` fence: left to itself the planner would intersect the
    # full-text index for each ticket, which for a common word means every posting every time.
    negatives = (
        "nq AS (SELECT websearch_to_tsquery('english', :excluded) AS nq)," if query.excluded else ""
    )
    if query.wanted:
        candidates = await _newest_matches(
            session, conditions, negatives, params, filtered=bool(query.filters)
        )
        params["candidates"] = candidates
        sql = f"""
        WITH {negatives} q AS (SELECT websearch_to_tsquery('english', :text) AS query),
        hits AS (
            SELECT t.id AS ticket_id, ts_rank(t.search, q.query) AS rank
            FROM (SELECT id, search FROM tickets WHERE id = ANY(:candidates) OFFSET 0) t, q
            WHERE t.search @@ q.query
            UNION ALL
            SELECT m.ticket_id, ts_rank(m.search, q.query)
            FROM (SELECT ticket_id, search FROM messages WHERE ticket_id = ANY(:candidates)
                  OFFSET 0) m, q
            WHERE m.search @@ q.query
        ),
        best AS (
            SELECT ticket_id, sum(rank) AS rank FROM hits GROUP BY ticket_id
            ORDER BY rank DESC, ticket_id DESC LIMIT :limit
        )
        SELECT t.id, t.subject, t.status, t.priority, t.requester_id, t.assignee_id, best.rank,
               ts_headline('english', t.subject, q.query, '{_SUBJECT}'),
               (SELECT ts_headline('english', m.body_text, q.query, '{_HEADLINE}')
                  FROM (SELECT body_text, search FROM messages WHERE ticket_id = t.id
                        OFFSET 0) m
                  WHERE m.search @@ q.query ORDER BY ts_rank(m.search, q.query) DESC LIMIT 1)
        FROM best JOIN tickets t ON t.id = best.ticket_id, q
        ORDER BY best.rank DESC, t.id DESC
        """  # noqa: S608 - negatives is a fixed fragment; values are bound parameters
    else:
        sql = f"""
        SELECT t.id, t.subject, t.status, t.priority, t.requester_id, t.assignee_id, 0.0,
               t.subject, NULL
        FROM tickets t WHERE {conditions}
        ORDER BY t.updated_at DESC NULLS LAST, t.id DESC LIMIT :limit
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


async def _newest_matches(
    session: AsyncSession,
    conditions: str,
    negatives: str,
    params: dict[str, Any],
    *,
    filtered: bool,
) -> list[int]:
    """The ids of the newest RANKED_HITS tickets whose subject or a message matches.

    Ranking every match of a common word costs seconds (hundreds of thousands of messages),
    and the planner cannot tell a common combination ("printer refund") from a rare one. So the
    newest PROBE ticket ids are looked at first, each ticket through its own few messages. If
    matches are dense enough that at most WALK_LIMIT more tickets need looking at, walking on
    newest first finds the rest; otherwise the full-text (GIN) indexes find the older matches.
    """
    top = await session.scalar(text("SELECT max(id) FROM tickets"))
    if top is None:
        return []
    match = """(t.search @@ q.query OR (
              -- this ticket's few messages, then the match (OFFSET 0 keeps the planner from
              -- consulting the full-text index once per ticket)
              SELECT true FROM (SELECT m.search FROM messages m WHERE m.ticket_id = t.id
                                OFFSET 0) m
              WHERE m.search @@ q.query LIMIT 1))"""
    probe = f"""
        WITH {negatives} q AS (SELECT websearch_to_tsquery('english', :text) AS query)
        SELECT t.id, coalesce({match}, false) FROM tickets t, q
        WHERE t.id > :low AND t.id <= :high AND {conditions}
        ORDER BY t.id DESC
    """  # noqa: S608 - conditions are fixed fragments; values are bound parameters
    walk = f"""
        WITH {negatives} q AS (SELECT websearch_to_tsquery('english', :text) AS query)
        SELECT t.id FROM tickets t, q
        WHERE t.id > :low AND t.id <= :high AND {conditions} AND {match}
        ORDER BY t.id DESC LIMIT :need
    """  # noqa: S608 - as above
    # the newest matching subjects and messages, each branch stopping at its own limit (a range
    # condition on the id here would lead the planner into walking every message); a ticket may
    # bring several messages, so a few fewer tickets may come back
    indexed = f"""
        WITH {negatives} subjects AS (
            SELECT t.id FROM tickets t
            WHERE t.search @@ websearch_to_tsquery('english', :text) AND {conditions}
            ORDER BY t.id DESC LIMIT :need
        ),
        bodies AS (
            SELECT m.ticket_id AS id FROM messages m JOIN tickets t ON t.id = m.ticket_id
            WHERE m.search @@ websearch_to_tsquery('english', :text) AND {conditions}
            ORDER BY m.id DESC LIMIT :need
        )
        SELECT id FROM subjects UNION SELECT id FROM bodies ORDER BY id DESC LIMIT :need
    """  # noqa: S608 - as above
    if not await _walk_pays(session, params["text"], filtered=filtered):
        return list(await session.scalars(text(indexed), params | {"need": RANKED_HITS}))
    low = max(top - PROBE, 0)
    looked = (await session.execute(text(probe), params | {"low": low, "high": top})).all()
    found = [ticket_id for ticket_id, hit in looked if hit][:RANKED_HITS]
    need = RANKED_HITS - len(found)
    if need == 0 or low == 0:
        return found
    # tickets (passing the filters) still to look at, from the share that matched so far
    to_look = need * len(looked) / len(found) if found else None
    if to_look is not None and to_look <= WALK_LIMIT:
        ids_per_ticket = PROBE / max(len(looked), 1)
        span = int(to_look * ids_per_ticket * 1.25) + 1
        high = low
        while high > 0 and need > 0:
            low = max(high - span, 0)
            rows = list(
                await session.scalars(text(walk), params | {"low": low, "high": high, "need": need})
            )
            found.extend(rows)
            need -= len(rows)
            high, span = low, span * 2
        return found
    older = await session.scalars(text(indexed), params | {"need": RANKED_HITS})
    return sorted(set(found).union(older), reverse=True)[:RANKED_HITS]


async def _walk_pays(session: AsyncSession, words: str, *, filtered: bool) -> bool:
    """Whether every word's stem is in at least COMMON_SHARE of messages (by the statistics
    ANALYZE keeps, read again every ten minutes per process) and the words are several or
    narrowed by a field filter. One common word alone is found fast enough by its index."""
    global _shares
    read_at, shares = _shares
    if time.monotonic() - read_at > _STATS_SECONDS:
        row = (
            await session.execute(
                text(
                    "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats"
                    " WHERE schemaname = current_schema() AND tablename = 'messages'"
                    " AND attname = 'search'"
                )
            )
        ).first()
        shares = dict(zip(row[0], row[1], strict=False)) if row and row[0] else {}
        _shares = (time.monotonic(), shares)
    stems = await session.scalars(
        text("SELECT unnest(tsvector_to_array(to_tsvector('english', :words)))"),
        {"words": words},
    )
    found = list(stems)
    common = bool(found) and all(shares.get(stem, 0.0) >= COMMON_SHARE for stem in found)
    return common and (len(found) > 1 or filtered)


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
