"""Latency and throughput of the ticket desk through the REST API, on a bulk-loaded database.

Measures, one request at a time over a keep-alive connection on loopback: the first page of
each built-in view, filtered lists (tag, team, assignee, ...), the ticket page (the ticket and
its messages), search for terms of known frequency; then ticket creation (with its first
message) by ``--concurrency`` clients for ``--create-seconds``. Each request carries its own
``X-Request-ID``; when the server's JSON request log is readable (always with ``--data-dir``),
the server's own time for each request (``ms``, from request start to response end inside the
app) is reported next to the client's.

    # start `servicecycle serve` on a data folder loaded by bulk_load.py, measure, stop it:
    .venv/bin/python bench/desk.py --data-dir /tmp/bench-desk-1m --port 8410 --label 1M \\
        --out bench/results/desk-1m.json
    # or against a server that is already running:
    .venv/bin/python bench/desk.py --base-url http://127.0.0.1:8410 \\
        --manifest /tmp/bench-desk-1m/bench-manifest.json --server-log /tmp/.../server.log

Ports 8400-8499 and data folders /tmp/bench-desk-* are the convention; the server started
here is stopped with SIGINT, and the script exits 1 if it does not stop.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bulk_load  # the generator of the loaded data: terms, tags, e-mails, text

REPO = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "servicecycle"
Json = dict[str, Any]

GOALS = {  # group -> (what, limit): the targets, server-side
    "view": ("p95 server ms", 50.0),
    "ticket page": ("p95 server ms", 50.0),
    "search": ("p95 server ms", 150.0),
    "create": ("tickets per second", 300.0),
}


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    f = int(k)
    c = min(f + 1, len(s) - 1)
    return s[f] + (s[c] - s[f]) * (k - f)


def summary(values: list[float]) -> Json:
    r = lambda x: None if x is None else round(x, 1)  # noqa: E731
    return {
        "n": len(values),
        "p50": r(pct(values, 50)),
        "p95": r(pct(values, 95)),
        "p99": r(pct(values, 99)),
        "max": r(max(values)) if values else None,
    }


# -- the server ---------------------------------------------------------------------------------


class Server:
    """``servicecycle serve`` on a data folder, JSON request log to a file; stopped with SIGINT."""

    def __init__(
        self, data_dir: Path, port: int, log: Path, extra: list[str] | None = None
    ) -> None:
        self.data_dir, self.port, self.log = data_dir, port, log
        self.extra = extra or []
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 600) -> float:
        env = os.environ | {
            "SERVICECYCLE_DATA_DIR": str(self.data_dir),
            "SERVICECYCLE_LOG_FORMAT": "json",
            "SERVICECYCLE_LOG_LEVEL": "INFO",
        }
        env.pop("DATABASE_URL", None)
        env.pop("SERVICECYCLE_DATABASE_URL", None)
        started = time.perf_counter()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(CLI), "serve", "--host", "127.0.0.1", "--port", str(self.port), *self.extra],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; see {self.log}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"server did not answer /healthz within {timeout}s")

    def stop(self) -> bool:
        """SIGINT and wait; True if it stopped by itself."""
        if self.process is None or self.process.poll() is not None:
            return True
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=90)
            return True
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return False


def server_times(log: Path | None) -> dict[str, float]:
    """request id -> the server's own milliseconds, from its JSON request log."""
    found: dict[str, float] = {}
    if log is None or not log.exists():
        return found
    with log.open(errors="replace") as lines:
        for line in lines:
            if '"request"' not in line or '"desk-' not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") == "request" and "ms" in entry:
                found[entry.get("request_id", "")] = float(entry["ms"])
    return found


def database_facts(data_dir: Path) -> Json:
    """Version, settings and sizes of the embedded database (read directly, not over HTTP)."""
    import psycopg

    from servicecycle.db.embedded import EmbeddedServer

    facts: Json = {}
    try:
        with psycopg.connect(EmbeddedServer(data_dir).url(), connect_timeout=5) as conn:
            facts["version"] = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
            for name in ("shared_buffers", "work_mem", "effective_cache_size", "max_wal_size"):
                facts[name] = conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            facts["database_mb"] = round(
                conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]  # type: ignore[index]
                / 2**20
            )
            rows = conn.execute(
                "SELECT relname, reltuples::bigint FROM pg_class WHERE relname = ANY(%s)",
                (["tickets", "messages", "events", "customers"],),
            ).fetchall()
            facts["rows_estimate"] = dict(rows)
    except Exception as exc:  # the facts are a courtesy; the measurement does not need them
        facts["error"] = str(exc)[:200]
    return facts


def source_facts() -> Json:
    """Which Servicecycle code is measured: the imported package and its git state."""
    import servicecycle

    where = Path(servicecycle.__file__).resolve().parent
    facts: Json = {"package": str(where), "pythonpath": os.environ.get("PYTHONPATH", "")}
    git = ["git", "-C", str(where)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "src"], capture_output=True, text=True
        )
        facts["git_head"] = head.stdout.strip()
        facts["uncommitted_src_files"] = len(dirty.stdout.splitlines())
    return facts


# -- measuring ----------------------------------------------------------------------------------


class Probe:
    def __init__(self, base_url: str, token: str, run_id: str) -> None:
        self.base_url, self.token, self.run_id = base_url, token, run_id
        self.counter = 0
        self.lock = threading.Lock()
        self.records: list[Json] = []  # {op, group, id, client_ms, status}

    def client(self, base_url: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=base_url or self.base_url,
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
            timeout=180,
        )

    def next_id(self) -> str:
        with self.lock:
            self.counter += 1
            return f"desk-{self.run_id}-{self.counter}"

    def note(self, group: str, op: str, request_id: str, client_ms: float, status: int) -> None:
        with self.lock:
            self.records.append(
                {
                    "group": group,
                    "op": op,
                    "id": request_id,
                    "client_ms": client_ms,
                    "status": status,
                }
            )

    def request(
        self, http: httpx.Client, group: str, op: str, method: str, path: str, **kw: Any
    ) -> httpx.Response:
        with self.lock:
            self.counter += 1
            request_id = f"desk-{self.run_id}-{self.counter}"
        started = time.perf_counter()
        response = http.request(method, path, headers={"X-Request-ID": request_id}, **kw)
        elapsed = (time.perf_counter() - started) * 1000
        with self.lock:
            self.records.append(
                {
                    "group": group,
                    "op": op,
                    "id": request_id,
                    "client_ms": elapsed,
                    "status": response.status_code,
                }
            )
        return response


def _ok(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        raise RuntimeError(
            f"HTTP {response.status_code} {response.request.url}: {response.text[:300]}"
        )
    return response


def sequential(
    probe: Probe,
    http: httpx.Client,
    group: str,
    op: str,
    paths: Callable[[int], str],
    samples: int,
    warmup: int,
) -> None:
    for k in range(warmup):
        _ok(http.get(paths(-1 - k)))
    for k in range(samples):
        _ok(probe.request(http, group, op, "GET", paths(k)))


def measure_reads(
    probe: Probe, manifest: Json, samples: int, warmup: int, search_samples: int, page_samples: int
) -> Json:
    notes: Json = {}
    agents: list[int] = manifest["agent_ids"]
    teams: list[int] = list(manifest["teams"].values())
    rng = random.Random(7)
    with probe.client() as http:
        for view in ("my-open", "unassigned", "all-open", "recently-solved"):
            sequential(
                probe,
                http,
                "view",
                f"view {view}",
                lambda _, v=view: f"/api/v1/tickets?view={v}",
                samples,
                warmup,
            )
        # a deeper page: follow the cursor four times, then time page 5 repeatedly
        path = "/api/v1/tickets?view=all-open"
        cursor = None
        for _ in range(4):
            cursor = _ok(http.get(path + (f"&cursor={cursor}" if cursor else ""))).json()[
                "next_cursor"
            ]
        sequential(
            probe,
            http,
            "view",
            "view all-open, page 5 (cursor)",
            lambda _: f"{path}&cursor={cursor}",
            samples,
            warmup,
        )
        common_tag = max(bulk_load.TAGS, key=bulk_load.TAGS.__getitem__)
        rare_tag = min(bulk_load.TAGS, key=bulk_load.TAGS.__getitem__)
        lists: list[tuple[str, Callable[[int], str]]] = [
            ("all tickets (no filter)", lambda k: "/api/v1/tickets"),
            ("team, any status", lambda k: f"/api/v1/tickets?team_id={teams[k % len(teams)]}"),
            (
                "team, open (all-open + team_id)",
                lambda k: f"/api/v1/tickets?view=all-open&team_id={teams[k % len(teams)]}",
            ),
            (
                f"tag {common_tag} ({bulk_load.TAGS[common_tag]:.0%})",
                lambda k: f"/api/v1/tickets?tag={common_tag}",
            ),
            (
                f"tag {rare_tag} ({bulk_load.TAGS[rare_tag]:.1%})",
                lambda k: f"/api/v1/tickets?tag={rare_tag}",
            ),
            (
                "tag vpn, open",
                lambda k: "/api/v1/tickets?view=all-open&tag=vpn",
            ),
            (
                "assignee, any status",
                lambda k: f"/api/v1/tickets?assignee={agents[1 + k % (len(agents) - 1)]}",
            ),
            (
                "assignee, open",
                lambda k: (
                    f"/api/v1/tickets?view=all-open&assignee={agents[1 + k % (len(agents) - 1)]}"
                ),
            ),
            (
                "status pending + priority urgent",
                lambda k: "/api/v1/tickets?status=pending&priority=urgent",
            ),
            ("view counts (/api/v1/views)", lambda k: "/api/v1/views"),
        ]
        for op, make in lists:
            sequential(probe, http, "list", op, make, samples, warmup)

        first, last = manifest["tickets"]["first_id"], manifest["tickets"]["last_id"]
        ids = [rng.randint(first, last) for _ in range(page_samples + warmup)]
        for k, ticket_id in enumerate(ids):
            if k < warmup:
                _ok(http.get(f"/api/v1/tickets/{ticket_id}"))
                continue
            _ok(probe.request(http, "ticket page", "ticket", "GET", f"/api/v1/tickets/{ticket_id}"))
            _ok(
                probe.request(
                    http, "ticket page", "messages", "GET", f"/api/v1/tickets/{ticket_id}/messages"
                )
            )

        terms = manifest.get("terms", bulk_load.TERMS)
        queries: list[tuple[str, str]] = [
            (f"{term} ({share:.1%} of tickets)", term) for term, share in terms.items()
        ]
        phrase = manifest.get("phrase", {"text": bulk_load.PHRASE[0], "share": bulk_load.PHRASE[1]})
        queries += [
            (f'phrase "{phrase["text"]}" ({phrase["share"]:.1%})', f'"{phrase["text"]}"'),
            ("two words: printer refund (AND)", "printer refund"),
            ("printer + status:open (filter)", "printer status:open"),
            ("kerberos + tag:billing (filter)", "kerberos tag:billing"),
            ("refund + assignee:me (filter)", "refund assignee:me"),
            ("printer -refund (exclusion)", "printer -refund"),
            ("absent word", "zzabsentzz"),
            ("filter only: tag:vpn status:open", "tag:vpn status:open"),
        ]
        found: Json = {}
        for op, q in queries:
            response = _ok(http.get("/api/v1/search", params={"q": q}))
            found[op] = len(response.json()["tickets"])
            sequential(
                probe,
                http,
                "search",
                f"search {op}",
                lambda _, q=q: str(httpx.URL("/api/v1/search", params={"q": q})),
                search_samples,
                warmup,
            )
        notes["search_hits_on_first_page"] = found
    return notes


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) of each named process and its live descendants."""
    import psutil

    used: dict[str, float] = {}
    for name, pid in pids.items():
        total = 0.0
        try:
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    total += times.user + times.system
        except psutil.Error:
            pass
        used[name] = total
    return used


def measure_create(
    probe: Probe,
    manifest: Json,
    concurrency: int,
    seconds: float,
    seed: int,
    pids: dict[str, int] | None = None,
    urls: list[str] | None = None,
    client: str = "stdlib",
) -> Json:
    """``concurrency`` clients create tickets for ``seconds``. Request bodies are made before
    the clock starts, and the generator's own CPU is counted, so that what it costs is seen
    apart from the server's. ``client``: ``stdlib`` (``http.client``, one keep-alive
    connection per client: the lightest Python client, leaving the 2 cores to the server) or
    ``httpx`` (as the read benchmarks and earlier sessions)."""
    text = bulk_load.Text(manifest.get("args", {}).get("seed", 1))
    customers = manifest["counts"]["customers"]
    first_customer = manifest.get("customers", {}).get("first_id", 1)
    created: list[int] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()

    def bodies(n: int, count: int) -> list[Json]:
        rng = random.Random(f"{seed}:create:{n}")
        made = []
        for _ in range(count):
            if rng.random() < 0.1:  # an unknown sender becomes a new customer
                requester = {"email": None}  # a fresh address is drawn when sent
            else:
                cid = first_customer + rng.randrange(customers)
                requester = {"email": bulk_load.customer_email(cid)}
            made.append(
                {
                    "subject": rng.choice(text.subjects),
                    "requester": requester,
                    "body": text.customer_message(rng, [], "A customer"),
                    "channel": "api",
                    "priority": rng.choice(["low", "normal", "normal", "high"]),
                    "tags": rng.sample(sorted(bulk_load.TAGS), k=rng.randint(0, 2)),
                }
            )
        return made

    planned = [bodies(n, 1500) for n in range(concurrency)]

    def fresh(body: Json) -> Json:
        if body["requester"]["email"] is None:
            return {**body, "requester": {"email": f"new-{uuid.uuid4().hex[:12]}@example.org"}}
        return body

    def payload(body: Json) -> bytes:
        return json.dumps(fresh(body)).encode()

    def settle(status: int, text_of: Callable[[], str], id_of: Callable[[], int]) -> None:
        if status == 201:
            ticket_id = id_of()
            with lock:
                created.append(ticket_id)
            return
        try:
            code = json.loads(text_of())["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = text_of()[:60]
        with lock:
            key = f"HTTP {status}: {code}"
            errors[key] = errors.get(key, 0) + 1

    def worker_httpx(n: int) -> None:
        with probe.client(urls[n % len(urls)] if urls else None) as session:
            k = 0
            while time.perf_counter() < stop_at:
                body = planned[n][k % len(planned[n])]
                k += 1
                try:
                    response = probe.request(
                        session,
                        "create",
                        "create ticket + first message",
                        "POST",
                        "/api/v1/tickets",
                        json=fresh(body),
                    )
                    settle(
                        response.status_code,
                        lambda r=response: r.text,
                        lambda r=response: r.json()["id"],
                    )
                except httpx.HTTPError as exc:
                    with lock:
                        errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

    def worker_stdlib(n: int) -> None:
        target = httpx.URL(urls[n % len(urls)] if urls else probe.base_url)
        connection = http.client.HTTPConnection(target.host, target.port, timeout=180)
        k = 0
        try:
            while time.perf_counter() < stop_at:
                body = planned[n][k % len(planned[n])]
                k += 1
                request_id = probe.next_id()
                started = time.perf_counter()
                try:
                    connection.request(
                        "POST",
                        "/api/v1/tickets",
                        body=payload(body),
                        headers={
                            "Authorization": f"Bearer {probe.token}",
                            "Content-Type": "application/json",
                            "Accept": "application/json",
                            "X-Request-ID": request_id,
                        },
                    )
                    response = connection.getresponse()
                    raw = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    with lock:
                        errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    connection.close()
                    continue
                probe.note(
                    "create",
                    "create ticket + first message",
                    request_id,
                    (time.perf_counter() - started) * 1000,
                    response.status,
                )
                settle(
                    response.status,
                    lambda raw=raw: raw.decode("utf-8", "replace"),
                    lambda raw=raw: int(json.loads(raw)["id"]),
                )
        finally:
            connection.close()

    worker = worker_stdlib if client == "stdlib" else worker_httpx
    cpu_before = _cpu(pids or {})
    own_before = time.process_time()
    started = time.perf_counter()
    stop_at = started + seconds
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    own = time.process_time() - own_before
    cpu_after = _cpu(pids or {})
    result: Json = {
        "concurrency": concurrency,
        "client": client,
        "wall_s": round(wall, 2),
        "created": len(created),
        "per_s": round(len(created) / wall, 1),
        "errors": errors,
        "loadavg_after": os.getloadavg(),
    }
    if created:
        result["load_generator_cpu_ms_per_ticket"] = round(own / len(created) * 1000, 2)
        result["load_generator_share_of_wall"] = round(own / wall, 2)
    if pids and created:
        # CPU per created ticket, whatever else the machine was doing meanwhile
        per = {k: (cpu_after[k] - cpu_before[k]) / len(created) * 1000 for k in pids}
        result["cpu_ms_per_ticket"] = {k: round(v, 2) for k, v in per.items()}
        result["cpu_share_of_wall"] = {
            k: round((cpu_after[k] - cpu_before[k]) / wall, 2) for k in pids
        }
    return result


# -- report -------------------------------------------------------------------------------------


def tabulate(records: list[Json], server: dict[str, float]) -> list[Json]:
    rows: dict[tuple[str, str], Json] = {}
    for r in records:
        row = rows.setdefault((r["group"], r["op"]), {"client": [], "server": [], "bad": 0})
        row["client"].append(r["client_ms"])
        if r["id"] in server:
            row["server"].append(server[r["id"]])
        if r["status"] >= 400:
            row["bad"] += 1
    out = []
    for (group, op), row in rows.items():
        out.append(
            {
                "group": group,
                "op": op,
                "client_ms": summary(row["client"]),
                "server_ms": summary(row["server"]),
                "errors": row["bad"],
            }
        )
    # the ticket page as one unit: ticket + messages, paired in order
    page = [r for r in records if r["group"] == "ticket page"]
    if page:
        client = [
            a["client_ms"] + b["client_ms"] for a, b in zip(page[::2], page[1::2], strict=True)
        ]
        both = [
            server[a["id"]] + server[b["id"]]
            for a, b in zip(page[::2], page[1::2], strict=True)
            if a["id"] in server and b["id"] in server
        ]
        where = max(k for k, row in enumerate(out) if row["group"] == "ticket page")
        out.insert(
            where + 1,
            {
                "group": "ticket page",
                "op": "ticket page (ticket + messages)",
                "client_ms": summary(client),
                "server_ms": summary(both),
                "errors": 0,
            },
        )
    return out


def verdict(row: Json) -> str:
    goal = GOALS.get(row["group"])
    if goal is None or row["group"] == "create":
        return ""
    if row["group"] == "ticket page" and not row["op"].startswith("ticket page"):
        return ""
    value = row["server_ms"]["p95"] if row["server_ms"]["n"] else row["client_ms"]["p95"]
    return "ok" if value is not None and value <= goal[1] else f"> {goal[1]:.0f}"


def print_table(rows: list[Json], create: Json | None) -> None:
    head = f"{'operation':<52} {'n':>4} {'client p50/p95/p99 ms':>24} "
    head += f"{'server p50/p95/p99 ms':>24}  goal"
    print(head)
    print("-" * len(head))
    group = None
    for row in rows:
        if row["group"] != group:
            group = row["group"]
            print(f"[{group}]")
        c, s = row["client_ms"], row["server_ms"]
        fmt = lambda x: "-" if x["n"] == 0 else f"{x['p50']:.1f}/{x['p95']:.1f}/{x['p99']:.1f}"  # noqa: E731
        print(f"  {row['op']:<50} {c['n']:>4} {fmt(c):>24} {fmt(s):>24}  {verdict(row)}")
    if create:
        goal = GOALS["create"][1]
        mark = "ok" if create["per_s"] >= goal else f"< {goal:.0f}"
        print(
            f"create: {create['created']} tickets in {create['wall_s']} s with "
            f"{create['concurrency']} clients = {create['per_s']}/s  {mark}"
            + (f"  errors {create['errors']}" if create["errors"] else "")
        )
        if "cpu_ms_per_ticket" in create:
            per = create["cpu_ms_per_ticket"]
            print(
                "  CPU per ticket: "
                + ", ".join(f"{k} {v:.2f} ms" for k, v in per.items())
                + f"; share of wall time: {create['cpu_share_of_wall']}"
            )
        if "load_generator_cpu_ms_per_ticket" in create:
            print(
                f"  load generator ({create['client']}): "
                f"{create['load_generator_cpu_ms_per_ticket']:.2f} ms CPU per ticket, "
                f"{create['load_generator_share_of_wall']} of a core"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--data-dir", help="start `servicecycle serve` on this loaded folder")
    where.add_argument("--base-url", help="a running server")
    parser.add_argument("--port", type=int, default=8410)
    parser.add_argument("--manifest", help="bulk_load.py's manifest (default: <data-dir>/...)")
    parser.add_argument("--server-log", help="the running server's JSON log (with --base-url)")
    parser.add_argument("--samples", type=int, default=60, help="timed requests per read op")
    parser.add_argument("--search-samples", type=int, default=30, help="per search query")
    parser.add_argument("--page-samples", type=int, default=200, help="ticket pages (random ids)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--create-seconds", type=float, default=30)
    parser.add_argument(
        "--create-urls", default="", help="comma list of servers to spread creation over"
    )
    parser.add_argument(
        "--create-pids", default="", help="name=pid,... processes whose CPU to count (base-url)"
    )
    parser.add_argument("--skip", default="", help="comma list: reads, create")
    parser.add_argument(
        "--create-client",
        choices=["stdlib", "httpx"],
        default="stdlib",
        help="the creating clients' HTTP library (stdlib: lighter, leaves the CPU to the server)",
    )
    parser.add_argument(
        "--serve-args", default="", help='extra `servicecycle serve` arguments, e.g. "--workers 2"'
    )
    parser.add_argument("--label", default="")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="JSON results (default bench/results/desk-<label>.json)")
    args = parser.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    data_dir = Path(args.data_dir) if args.data_dir else None
    manifest_path = Path(args.manifest or (data_dir / "bench-manifest.json" if data_dir else ""))
    manifest = json.loads(manifest_path.read_text())
    server: Server | None = None
    log: Path | None = Path(args.server_log) if args.server_log else None
    result: Json = {
        "label": args.label,
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_before": os.getloadavg(),
        },
        "data": {k: manifest.get(k) for k in ("counts", "tickets", "args")},
        "servicecycle": source_facts(),
    }
    if not 8400 <= args.port <= 8499:
        parser.error("use a port in 8400-8499")
    stopped_cleanly = True
    try:
        if data_dir is not None:
            log = data_dir / "desk-server.log"
            server = Server(data_dir, args.port, log, args.serve_args.split())
            result["server_start_s"] = round(server.start(), 1)
            base_url = f"http://127.0.0.1:{args.port}"
            result["database"] = database_facts(data_dir)
        else:
            base_url = args.base_url
        probe = Probe(base_url, manifest["token"], uuid.uuid4().hex[:8])
        if "reads" not in skip:
            result["notes"] = measure_reads(
                probe, manifest, args.samples, args.warmup, args.search_samples, args.page_samples
            )
        create = None
        if "create" not in skip:
            pids = {}
            if server is not None and server.process is not None and data_dir is not None:
                pids["server"] = server.process.pid
                with contextlib.suppress(OSError, ValueError, IndexError):
                    pid_file = data_dir / "pgdata" / "postmaster.pid"
                    pids["postgres"] = int(pid_file.read_text().splitlines()[0])
            for item in filter(None, args.create_pids.split(",")):
                name, _, pid = item.partition("=")
                pids[name] = int(pid)
            urls = [u for u in args.create_urls.split(",") if u]
            create = measure_create(
                probe,
                manifest,
                args.concurrency,
                args.create_seconds,
                args.seed,
                pids,
                urls,
                client=args.create_client,
            )
            result["create"] = create
        time.sleep(0.5)  # let the last log lines land
        rows = tabulate(probe.records, server_times(log))
        result["rows"] = rows
        result["machine"]["loadavg_after"] = os.getloadavg()
        print_table(rows, create)
    finally:
        if server is not None:
            stopped_cleanly = server.stop()
            result["server_stopped_cleanly"] = stopped_cleanly
    label = args.label.lower().replace("/", "-").replace(" ", "-") or "run"
    out = Path(args.out or REPO / "bench" / "results" / f"desk-{label}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if stopped_cleanly else 1


if __name__ == "__main__":
    sys.exit(main())
