"""``servicecycle simulate`` as a user runs it: a bad scenario names its field, a seed gives
the same data every time, and a desk with tickets is not mixed with a simulated one."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from servicecycle.simulation.scenario import default_scenario_path
from tests.cli.test_commands import run
from tests.simulation.test_driver import digest

UNREACHABLE = "postgresql://nobody:pw@127.0.0.1:1/none"


def tiny_scenario(folder: Path) -> Path:
    """The shop's scenario shrunk to a month and a few dozen tickets (same format)."""
    text = default_scenario_path().read_text("utf-8")
    for old, new in (
        ("months = 6 ", "months = 1 "),
        ("expected_tickets = 20000 ", "expected_tickets = 40 "),
        ("count = 9000 ", "count = 30 "),
        ("companies = 150 ", "companies = 3 "),
    ):
        assert old in text, old
        text = text.replace(old, new, 1)
    path = folder / "tiny.toml"
    path.write_text(text, "utf-8")
    return path


def test_a_scenario_with_an_error_names_the_field_and_touches_no_database(
    tmp_path: Path,
) -> None:
    bad = tiny_scenario(tmp_path)
    bad.write_text(
        bad.read_text("utf-8").replace("expected_tickets = 40 ", "expected_tickets = -5 "),
        "utf-8",
    )
    result = run("simulate", str(bad), env={"DATABASE_URL": UNREACHABLE}, timeout=60)
    assert result.returncode == 1
    assert "arrivals.expected_tickets" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Cannot reach the database" not in result.stderr  # refused before connecting

    missing = run("simulate", str(tmp_path / "nope.toml"), env={"DATABASE_URL": UNREACHABLE})
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_the_same_seed_gives_the_same_data_and_a_desk_with_tickets_is_refused(
    tmp_path: Path, fresh_database: Callable[..., str]
) -> None:
    scenario = tiny_scenario(tmp_path)
    first, second = fresh_database(migrate=False), fresh_database(migrate=False)
    outputs = []
    for url, name in ((first, "a.json"), (second, "b.json")):
        result = run(
            "simulate",
            str(scenario),
            "--seed",
            "5",
            "--end",
            "2026-10-31",
            "--answers",
            str(tmp_path / name),
            env={"DATABASE_URL": url, "SERVICECYCLE_DATA_DIR": str(tmp_path / "data")},
            timeout=600,
        )
        assert result.returncode == 0, result.stderr
        outputs.append(json.loads((tmp_path / name).read_text("utf-8")))
    assert outputs[0] == outputs[1] and outputs[0]["seed"] == 5
    assert outputs[0]["tickets"] > 0
    assert digest(first) == digest(second)

    again = run(
        "simulate",
        str(scenario),
        env={"DATABASE_URL": first, "SERVICECYCLE_DATA_DIR": str(tmp_path / "data")},
        timeout=120,
    )
    assert again.returncode == 1
    assert "already has tickets" in again.stderr and "--append" in again.stderr
