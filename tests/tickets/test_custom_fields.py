from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from httpx import AsyncClient

from servicecycle.kit.errors import ValidationFailed
from servicecycle.tickets.fields import FieldSpec, check_definition, clean_values, missing_required
from tests.factories import Token

MakeToken = Callable[..., Awaitable[Token]]
SPECS = {
    "order": FieldSpec("order", "text", required=True),
    "weight": FieldSpec("weight", "number"),
    "due": FieldSpec("due", "date"),
    "size": FieldSpec("size", "dropdown", options=("S", "M", "L")),
    "gift": FieldSpec("gift", "checkbox"),
    "old": FieldSpec("old", "text", active=False),
}


def test_values_are_checked_by_kind_and_named_on_error() -> None:
    values = clean_values(
        SPECS, {"order": " 55 ", "weight": 2.5, "due": "2026-12-01", "size": "M", "gift": True}
    )
    assert values == {"order": "55", "weight": 2.5, "due": "2026-12-01", "size": "M", "gift": True}
    for bad in (
        {"weight": "heavy"},
        {"weight": True},
        {"due": "tomorrow"},
        {"size": "XL"},
        {"gift": "yes"},
        {"nope": 1},
        {"old": "x"},
    ):
        with pytest.raises(ValidationFailed) as caught:
            clean_values(SPECS, bad)
        assert list(caught.value.fields) == [f"custom.{next(iter(bad))}"]
    assert clean_values(SPECS, {"size": None}, current={"size": "S", "gift": True}) == {
        "gift": True
    }
    assert missing_required(SPECS, {"weight": 1}) == ["order"]


def test_definitions_are_checked() -> None:
    check_definition(key="order_no", kind="dropdown", options=["a", "b"])
    for key, kind, options in (
        ("Bad Key", "text", []),
        ("k", "dropdown", []),
        ("k", "dropdown", ["a", "a"]),
        ("k", "text", ["a"]),
    ):
        with pytest.raises(ValidationFailed):
            check_definition(key=key, kind=kind, options=options)


async def test_fields_through_the_api(client: AsyncClient, make_token: MakeToken) -> None:
    admin = await make_token("admin")
    agent = await make_token("agent")
    made = await client.post(
        "/api/v1/custom-fields",
        headers=admin.headers,
        json={"key": "order_number", "label": "Order number", "kind": "text", "required": True},
    )
    assert made.status_code == 201, made.text
    assert (
        await client.post(
            "/api/v1/custom-fields",
            headers=agent.headers,
            json={"key": "x", "label": "X", "kind": "text"},
        )
    ).status_code == 403
    dropdown = await client.post(
        "/api/v1/custom-fields",
        headers=admin.headers,
        json={
            "key": "reason",
            "label": "Reason",
            "kind": "dropdown",
            "options": ["damaged", "late"],
        },
    )
    assert dropdown.status_code == 201
    created = await client.post(
        "/api/v1/tickets",
        headers=agent.headers,
        json={
            "subject": "Broken",
            "requester": {"email": "cf@example.com"},
            "body": "b",
            "custom": {"reason": "damaged"},
        },
    )
    assert created.status_code == 201 and created.json()["custom"] == {"reason": "damaged"}
    url = f"/api/v1/tickets/{created.json()['id']}"
    wrong = await client.post(
        "/api/v1/tickets",
        headers=agent.headers,
        json={
            "subject": "x",
            "requester": {"email": "cf@example.com"},
            "body": "b",
            "custom": {"reason": "bored"},
        },
    )
    assert wrong.status_code == 422 and "custom.reason" in wrong.json()["error"]["fields"]
    unknown = await client.patch(
        url, headers=agent.headers, json={"custom": {"colour": "red"}, "version": 1}
    )
    assert unknown.status_code == 422 and "custom.colour" in unknown.json()["error"]["fields"]
    solve = await client.patch(url, headers=agent.headers, json={"status": "solved", "version": 1})
    assert solve.status_code == 422
    assert solve.json()["error"]["fields"] == {"custom.order_number": "required to solve"}
    solved = await client.patch(
        url,
        headers=agent.headers,
        json={"status": "solved", "custom": {"order_number": "A-77"}, "version": 1},
    )
    assert solved.status_code == 200, solved.text
    assert solved.json()["custom"] == {"reason": "damaged", "order_number": "A-77"}
    retired = await client.patch(
        f"/api/v1/custom-fields/{dropdown.json()['id']}",
        headers=admin.headers,
        json={"active": False, "version": 1},
    )
    assert retired.status_code == 200 and retired.json()["active"] is False
    listed: list[Any] = (await client.get("/api/v1/custom-fields", headers=agent.headers)).json()
    assert [f["key"] for f in listed] == ["order_number", "reason"]


async def test_the_specs_copy_follows_every_change_of_the_fields(db: Any) -> None:
    from servicecycle.events.service import Actor
    from servicecycle.tickets import custom_fields

    admin = Actor.system("test")
    assert "po" not in await custom_fields.specs(db)  # a copy made before the change
    field = await custom_fields.create_field(
        db, key="po", label="PO", kind="text", options=[], required=False, public=True, actor=admin
    )
    assert (await custom_fields.specs(db))["po"] == FieldSpec("po", "text")
    await custom_fields.update_field(
        db, field, expected_version=field.version, changes={"required": True}, actor=admin
    )
    assert (await custom_fields.specs(db))["po"].required
    (await custom_fields.specs(db)).clear()  # each caller gets its own dict
    assert "po" in await custom_fields.specs(db)
