"""The shared helpdesk workload, with a Servicecycle adapter, for the side-by-side with the peer.

``helpdesk_workload.py`` lives outside this repository (``../shared/bench`` from the repository
root, or ``$HELPDESK_WORKLOAD_DIR``) and is imported at run time; this file only adds the
``servicecycle`` adapter (API token as ``Authorization: Bearer``) and runs the workload's own
command line, so every option (``--phases``, ``--tickets``, ...) is the workload's:

    .venv/bin/python bench/peer_workload.py --system servicecycle \\
        --base-url http://127.0.0.1:8420 --token sc_... --queue support \\
        --phases seed,replies,status --tickets 4000 --customers 200 --out sc_writes.json

``--queue`` is a team (name or id): tickets are created in it and the open-ticket list is the
``all-open`` view narrowed to it, as the peer's list is its queue's open tickets.
``bench/peer_compare.sh`` runs the whole sequence the peer's ``run_all.sh`` runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
WORKLOAD_DIR = Path(os.environ.get("HELPDESK_WORKLOAD_DIR", REPO.parent / "shared" / "bench"))
sys.path.insert(0, str(WORKLOAD_DIR))
import helpdesk_workload as wl  # noqa: E402 - found through the path above

Endpoint = wl.Endpoint
PRIORITIES = ["urgent", "high", "normal", "normal", "low"]  # the peer's 1 + i % 5, 1 = critical


def _ticket(i: int, customer: str, queue: Any) -> dict[str, Any]:
    subject, description = wl.ticket_text(i)
    return {
        "subject": subject,
        "body": description,
        "requester": {"email": customer},
        "team_id": queue,
        "priority": PRIORITIES[i % 5],
        "channel": "api",
    }


class ServicecycleAdapter(wl.Adapter):  # type: ignore[misc]
    name = "servicecycle"
    ENDPOINTS = {
        "create_customer": Endpoint(
            "POST",
            "/api/v1/customers",
            body=lambda c: {"name": f"Cust{c} Bench", "emails": [wl.customer_email(c)]},
            ok=(201,),
            result=lambda r: r.json()["id"],
            note="a customer record with one e-mail identity (no login account)",
        ),
        "create_ticket": Endpoint(
            "POST",
            "/api/v1/tickets",
            body=_ticket,
            ok=(201,),
            result=lambda r: r.json()["id"],
            note="ticket + first message + events; requester found by e-mail",
        ),
        "add_reply": Endpoint(
            "POST",
            "/api/v1/tickets/{ticket}/messages",
            body=lambda ticket, i: {"kind": "reply", "body": wl.reply_text(i)},
            ok=(201,),
        ),
        "status:resolve_via_reply": Endpoint(
            "POST",
            "/api/v1/tickets/{ticket}/messages",
            body=lambda ticket, i: {
                "kind": "reply",
                "body": "Resolving: " + wl.reply_text(i),
                "status": "solved",
            },
            ok=(201,),
            note="public reply that sets status solved (message + status events, SLA clocks)",
        ),
        "status:close_via_patch": Endpoint(
            "PATCH",
            "/api/v1/tickets/{ticket}",
            body=lambda ticket, i: {"status": "closed"},
            ok=(200,),
            note="GET for the ETag, then PATCH with If-Match (two requests per operation)",
        ),
        "list_open:view_all_open_team": Endpoint(
            "GET",
            "/api/v1/tickets?view=all-open&team_id={queue}",
            ok=(200,),
            result=lambda r: len(r.json()["items"]),
            note="the team's open tickets, first page of 25 (the peer's queue list)",
        ),
        "list_open:view_all_open": Endpoint(
            "GET",
            "/api/v1/tickets?view=all-open",
            ok=(200,),
            result=lambda r: len(r.json()["items"]),
            note="every open ticket, first page of 25 (the peer's REST status list)",
        ),
        "search:api_search": Endpoint(
            "GET",
            "/api/v1/search?q={term}",
            ok=(200,),
            result=lambda r: len(r.json()["tickets"]),
            note="full text, ranked, first 25 tickets + matching customers (no total count)",
        ),
    }
    REPORTS: list[tuple[str, str]] = []
    UNSUPPORTED = {
        "reports": "no report pages yet (analytics come in a later issue)",
        "count_tickets": "no total-count endpoint (lists are cursor-paged without totals)",
    }

    def setup(self, http: wl.HTTP) -> dict[str, Any]:
        queue = str(self.args.queue)
        if queue.isdigit():
            self.queue_id = int(queue)
        else:
            teams = wl.expect(
                http.request("GET", "/api/v1/teams", headers=self.headers("api")), 200
            )
            found = {t["name"].lower(): t["id"] for t in teams.json()}
            if queue.lower() not in found:
                raise wl.OpError(f"team {queue!r} not found among {sorted(found)}")
            self.queue_id = found[queue.lower()]
        return {"queue_id": self.queue_id}

    def headers(self, kind: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.args.token}", "Accept": "application/json"}

    def call(self, http: wl.HTTP, op: str, **kw: Any) -> Any:
        if op == "status:close_via_patch":
            path = f"/api/v1/tickets/{kw['ticket']}"
            current = wl.expect(http.request("GET", path, headers=self.headers("api")), 200)
            headers = self.headers("api") | {"If-Match": current.header("etag") or ""}
            wl.expect(
                http.request("PATCH", path, headers=headers, json_body={"status": "closed"}), 200
            )
            return None
        return super().call(http, op, **kw)


wl.ADAPTERS["servicecycle"] = ServicecycleAdapter

if __name__ == "__main__":
    sys.exit(wl.main())
