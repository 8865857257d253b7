"""bench/simulation.py with the SQL statements and the Python CPU counted per phase of the
replay (the driver's steps and the batched services it calls), printed at the end:

    .venv/bin/python bench/simulation_phases.py --months 1

A phase's CPU excludes the phases it calls; the options are bench/simulation.py's.
"""

from __future__ import annotations

import atexit
import functools
import runpy
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from servicecycle.simulation import driver
from servicecycle.sla import batch as sla_batch
from servicecycle.tickets import bulk

_phase = ["other"]
_statements: Counter[str] = Counter()
_cpu: Counter[str] = Counter()
_calls: Counter[str] = Counter()


@event.listens_for(Engine, "before_cursor_execute")
def _count(*args: Any) -> None:
    _statements[_phase[0]] += 1


def _timed(label: str | None, call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(call)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        outer = _phase[0]
        name = label or (f"{outer}/sweep" if outer != "other" else "wave_sweep")
        _phase[0] = name
        started = time.process_time()
        try:
            return await call(*args, **kwargs)
        finally:
            spent = time.process_time() - started
            _cpu[name] += spent
            _calls[name] += 1
            if outer != "other":
                _cpu[outer] -= spent
            _phase[0] = outer

    return timed


for _name in (
    "make_customers",
    "sweep_until",
    "send_surveys",
    "deliver_mail",
    "answer",
    "follow_up",
    "finish_follow_up",
    "commit",
    "set_up",
):
    if hasattr(driver._Replay, _name):
        setattr(driver._Replay, _name, _timed(_name, getattr(driver._Replay, _name)))
for _name in ("create_tickets", "assign_many", "add_messages", "set_statuses"):
    setattr(bulk, _name, _timed(_name, getattr(bulk, _name)))
driver.sla_batch.sweep_history = _timed(None, sla_batch.sweep_history)  # type: ignore[attr-defined]


@atexit.register
def _report() -> None:
    print(f"{'phase':20} {'calls':>7} {'stmts':>7} {'cpu s':>7}")
    for name in sorted(set(_statements) | set(_cpu), key=lambda n: -_cpu[n]):
        print(f"{name:20} {_calls[name]:7} {_statements[name]:7} {_cpu[name]:7.2f}")
    print("total statements", sum(_statements.values()))


if __name__ == "__main__":
    sys.argv = ["simulation.py", *sys.argv[1:]]
    runpy.run_path(str(Path(__file__).with_name("simulation.py")), run_name="__main__")
