"""The scenario file: the shipped ones load, and every mistake is named by its field."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from servicecycle.simulation.scenario import (
    ScenarioError,
    default_scenario_path,
    load_scenario,
    parse_scenario,
    scenarios_folder,
)


def _default() -> dict[str, Any]:
    return tomllib.loads(default_scenario_path().read_text("utf-8"))


def _errors(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(data)
    return caught.value.lines


def test_the_shipped_scenarios_load_with_the_demo_agents() -> None:
    shop = load_scenario(default_scenario_path())
    emails = {a.email: (a.name, a.team) for a in shop.agents}
    assert emails["ana@demo.servicecycle.test"] == ("Ana Lima", "Support")
    assert emails["ben@demo.servicecycle.test"] == ("Ben Okafor", "Billing")
    assert {"Support", "Billing"} <= {t.name for t in shop.teams}
    assert shop.business.months == 6 and shop.arrivals.expected_tickets == 20_000
    year = load_scenario(scenarios_folder() / "year_50k.toml")
    assert year.business.months == 12 and year.arrivals.expected_tickets == 50_000


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["topics"][2].update(handling_minutes=0),
            "topics[2].handling_minutes: must be greater than 0",
        ),
        (lambda d: d["topics"][0].update(wording="poetry"), "topics[0].wording: unknown wording"),
        (
            lambda d: d["topics"][1].update(distribution="normal"),
            "topics[1].distribution: must be 'lognormal' or 'gamma'",
        ),
        (lambda d: d["topics"][0].update(colour="red"), "topics[0].colour: unknown field"),
        (lambda d: d["topics"][0].pop("team"), "topics[0].team: required"),
        (
            lambda d: d["topics"][3].update(priorities={"normal": 0}),
            "topics[3].priorities: weights must be 0 or more and sum to more than 0",
        ),
        (lambda d: d["arrivals"].update(hourly=[1.0] * 23), "arrivals.hourly: List should have"),
        (
            lambda d: d["arrivals"].update(weekly=[0.0] * 7),
            "arrivals.weekly: at least one weight must be greater than 0",
        ),
        (
            lambda d: d["business"].update(time_zone="Mars/Olympus"),
            "business.time_zone: unknown time zone 'Mars/Olympus'",
        ),
        (lambda d: d["business"].update(country="XX"), "business.country: no public holidays"),
        (lambda d: d["agents"][4].update(shift=[18, 9]), "agents[4].shift: must be [start, end)"),
        (lambda d: d["agents"][0].update(workdays=[0, 0]), "agents[0].workdays: each weekday"),
        (
            lambda d: d["agents"][0]["skills"].update(returns=7),
            "agents[0].skills: level of 'returns' must be 1 to 5",
        ),
        (lambda d: d["agents"][1].update(email="tom"), "agents[1].email: String should match"),
        (lambda d: d["channels"].update(fax=0.1), "channels.fax: must be 'email'"),
        (lambda d: d["surveys"][0].update(kind="stars"), "surveys[0].kind: must be 'csat'"),
        (
            lambda d: d["planted"]["bottleneck"].update(pending_multiplier=1),
            "planted.bottleneck.pending_multiplier: must be greater than 1",
        ),
        (lambda d: d.pop("customers"), "customers: required"),
        (
            lambda d: d["surveys"][1].update(delay_minutes=90),
            "surveys[1].delay_minutes: must be whole hours",
        ),
        (
            lambda d: d["business"]["products"][2].update(kinds=["furniture", "poetry"]),
            "business.products[2].kinds[1]: must be 'furniture', 'assembly', 'textile'",
        ),
        (
            lambda d: d["business"]["products"][3].update(kinds="textile"),
            "business.products[3].kinds: must be a valid list",
        ),
        (lambda d: d["business"]["products"][0].pop("name"), "business.products[0].name: required"),
        (
            lambda d: d["business"]["products"][1].update(colour="red"),
            "business.products[1].colour: unknown field",
        ),
        (
            lambda d: d["business"]["products"].append(5),
            "business.products[16]: must be a name or a table with name and kinds",
        ),
        (lambda d: d["business"].update(products=[]), "business.products: List should have"),
    ],
)
def test_a_field_error_names_the_field_and_the_problem(change: Any, expected: str) -> None:
    data = _default()
    change(data)
    lines = _errors(data)
    assert any(line.startswith(expected) for line in lines), lines


def test_a_product_is_a_plain_name_or_a_table_with_its_kinds() -> None:
    data = _default()
    tables = data["business"]["products"]
    assert all(p["kinds"] for p in tables)  # the shipped products all say what they are
    data["business"]["products"] = ["Oak dining chair", {"name": "Wool rug"}, *tables[:2]]
    products = parse_scenario(data).business.products
    assert [(p.name, p.kinds) for p in products] == [
        ("Oak dining chair", None),  # kinds not known: fits every case
        ("Wool rug", None),
        (tables[0]["name"], tables[0]["kinds"]),
        (tables[1]["name"], tables[1]["kinds"]),
    ]
    data["business"]["products"] = [{"name": "Gift card", "kinds": []}]  # fits no special case
    assert parse_scenario(data).business.products[0].kinds == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["agents"][3].update(team="Sales"), "agents[3].team: no team named 'Sales'"),
        (
            lambda d: d["agents"][0]["skills"].update(poetry=3),
            "agents[0].skills.poetry: no topic named 'poetry'",
        ),
        (lambda d: d["topics"][1].update(team="Sales"), "topics[1].team: no team named 'Sales'"),
        (
            lambda d: d["topics"][1].update(name="delivery"),
            "topics[1].name: 'delivery' appears twice",
        ),
        (
            lambda d: d.update(channels={"email": 0.0, "web": 0.0}),
            "channels: shares must be 0 or more and sum to more than 0",
        ),
        (
            lambda d: d["planted"]["bottleneck"].update(team="Sales"),
            "planted.bottleneck.team: no team named 'Sales'",
        ),
        (
            lambda d: d["planted"]["detractor"].update(topic="weather"),
            "planted.detractor.topic: no topic named 'weather'",
        ),
        (
            lambda d: d["planted"]["emerging"].update(topic="weather"),
            "planted.emerging.topic: no topic named 'weather'",
        ),
        (
            lambda d: d["planted"]["training"].update(agent="nobody@x.test"),
            "planted.training.agent: no agent with email 'nobody@x.test'",
        ),
        (
            lambda d: d["planted"]["training"].update(topic="refund"),
            "planted.training.topic: the agent must have the skill",
        ),
        (
            lambda d: d["arrivals"]["bursts"][0].update(topic="weather"),
            "arrivals.bursts[0].topic: no topic named 'weather'",
        ),
        (
            lambda d: d["policies"][0].update(tiers=["gold"]),
            "policies[0].tiers: no customer tier named 'gold'",
        ),
        (
            lambda d: d["teams"].append({"name": "Empty"}) or d["topics"][0].update(team="Empty"),
            "topics[0].team: team 'Empty' has no agents",
        ),
    ],
)
def test_a_cross_field_error_names_the_field(change: Any, expected: str) -> None:
    data = _default()
    change(data)
    lines = _errors(data)
    assert any(line.startswith(expected) for line in lines), lines


def test_every_error_is_reported_at_once() -> None:
    data = copy.deepcopy(_default())
    data["topics"][0]["handling_minutes"] = -1
    data["customers"]["count"] = 0
    lines = _errors(data)
    assert "topics[0].handling_minutes: must be greater than 0" in lines
    assert "customers.count: must be greater than 0" in lines


def test_a_missing_file_and_a_syntax_error_are_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as missing:
        load_scenario(tmp_path / "nope.toml")
    assert missing.value.lines == [f"{tmp_path / 'nope.toml'}: no such file"]
    broken = tmp_path / "broken.toml"
    broken.write_text('[business]\nname = "Shop"\nmonths = = 6\n', "utf-8")
    with pytest.raises(ScenarioError) as syntax:
        load_scenario(broken)
    assert len(syntax.value.lines) == 1
    assert "TOML syntax error" in syntax.value.lines[0]
    assert "line 3" in syntax.value.lines[0]


def test_a_yaml_scenario_reads_like_its_toml_twin(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    twin = tmp_path / "shop.yaml"
    twin.write_text(yaml.safe_dump(_default()), "utf-8")
    assert load_scenario(twin) == load_scenario(default_scenario_path())
    broken = tmp_path / "broken.yml"
    broken.write_text("business:\n  name: [unclosed\n", "utf-8")
    with pytest.raises(ScenarioError) as syntax:
        load_scenario(broken)
    assert syntax.value.lines[0].startswith(f"{broken}: YAML syntax error at line")
