"""Typed, validated conditions and actions, and how conditions are evaluated. Pure.

A condition: ``{"field": "ticket.priority", "op": "in", "value": ["high", "urgent"]}``.
An action: ``{"type": "set_priority", "value": "urgent"}``.
A time rule's wait: ``{"field": "ticket.hours_since_update", "op": "gte", "value": 72}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from servicecycle.kit.errors import ValidationFailed

STATUSES = ("new", "open", "pending", "on-hold", "solved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")

# field -> (type, allowed values or None)
FIELDS: dict[str, tuple[type, tuple[str, ...] | None]] = {
    "ticket.status": (str, STATUSES),
    "ticket.priority": (str, PRIORITIES),
    "ticket.channel": (str, None),
    "ticket.tags": (list, None),
    "ticket.team_id": (int, None),
    "ticket.assignee_id": (int, None),
    "ticket.subject": (str, None),
    "ticket.hours_since_update": (float, None),
    "ticket.hours_since_created": (float, None),
    "customer.tier": (str, None),
    "message.author_type": (str, ("agent", "customer", "system")),
    "message.public": (bool, None),
    "message.body": (str, None),
    "event.kind": (str, None),
    "sla.metric": (str, ("first_reply", "next_reply", "periodic_update", "resolution")),
}
OPS = {
    str: ("is", "is_not", "in", "not_in", "contains", "not_contains"),
    int: ("is", "is_not", "in", "not_in", "present", "absent"),
    float: ("gte", "lte"),
    bool: ("is",),
    list: ("contains", "not_contains", "contains_any", "is_empty"),
}
ACTIONS: dict[str, tuple[type, tuple[str, ...] | None]] = {
    "set_status": (str, STATUSES),
    "set_priority": (str, PRIORITIES),
    "assign_agent": (int, None),
    "assign_team": (int, None),
    "unassign": (type(None), None),
    "add_tags": (list, None),
    "remove_tags": (list, None),
    "add_note": (str, None),
    "notify": (dict, None),  # {"to": "assignee" | "team" | <user id>, "text": "..."}
    # {"to": "requester" | <address>, "subject": "...", "body": "..."} with placeholders
    "send_email": (dict, None),
    # {"webhook_id": <id>, "payload": {...}}: a signed POST to that webhook's URL
    "call_webhook": (dict, None),
    # {"reason": "...", "due_in_hours": 168, "owner": "assignee" | <user id> | null,
    #  "kind": "check_in" | "recovery" | "other"}: a follow-up (planned by the follow-ups part)
    "add_follow_up": (dict, None),
}
FOLLOW_UP_KINDS = ("check_in", "recovery", "other")
PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+\.[a-z_]+)\s*\}\}")
PLACEHOLDERS = (
    "customer.name",
    "customer.first_name",
    "ticket.number",
    "ticket.subject",
    "ticket.status",
    "agent.name",
    "agent.first_name",
)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_EMAIL_BODY = 20_000
MAX_PAYLOAD = 10_000
EVENT_KINDS = (
    "ticket.created",
    "message.added",
    "status.changed",
    "assigned",
    "ticket.updated",
    "sla.warning",
    "sla.breached",
)


def _fail(path: str, problem: str) -> ValidationFailed:
    return ValidationFailed(f"Invalid rule: {path} {problem}", fields={path: problem})


def unknown_placeholders(text: str) -> list[str]:
    return sorted({p for p in PLACEHOLDER.findall(text) if p not in PLACEHOLDERS})


def fill(text: str, values: dict[str, str]) -> str:
    """Fill the placeholders; the values are plain text (escaped when the text becomes HTML)."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), text)


def fill_all(value: Any, values: dict[str, str]) -> Any:
    """Fill the placeholders in every string of a JSON value."""
    if isinstance(value, str):
        return fill(value, values)
    if isinstance(value, list):
        return [fill_all(v, values) for v in value]
    if isinstance(value, dict):
        return {k: fill_all(v, values) for k, v in value.items()}
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


def _check_text(value: Any, path: str, *, limit: int) -> None:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, "must not be empty")
    if len(value) > limit:
        raise _fail(path, f"at most {limit} characters")
    unknown = unknown_placeholders(value)
    if unknown:
        raise _fail(path, f"unknown {', '.join(unknown)}; use {', '.join(PLACEHOLDERS)}")


def _check_send_email(value: dict[str, Any], where: str) -> None:
    if set(value) - {"to", "subject", "body"}:
        raise _fail(f"{where}.value", "must be {to, subject, body}")
    to = value.get("to")
    if not isinstance(to, str) or not (to == "requester" or EMAIL.match(to.strip())):
        raise _fail(f"{where}.value.to", '"requester" or an e-mail address')
    _check_text(value.get("subject"), f"{where}.value.subject", limit=300)
    _check_text(value.get("body"), f"{where}.value.body", limit=MAX_EMAIL_BODY)


def _check_add_follow_up(value: dict[str, Any], where: str) -> None:
    if set(value) - {"reason", "due_in_hours", "owner", "kind"}:
        raise _fail(f"{where}.value", "must be {reason, due_in_hours, owner, kind}")
    reason = value.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise _fail(f"{where}.value.reason", "must not be empty")
    if len(reason) > 500:
        raise _fail(f"{where}.value.reason", "at most 500 characters")
    hours = value.get("due_in_hours")
    if not isinstance(hours, int) or isinstance(hours, bool) or not 1 <= hours <= 8760:
        raise _fail(f"{where}.value.due_in_hours", "whole hours from 1 to 8760")
    owner = value.get("owner")
    if (
        owner is not None
        and owner != "assignee"
        and (not isinstance(owner, int) or isinstance(owner, bool))
    ):
        raise _fail(f"{where}.value.owner", '"assignee", a user id or null')
    if value.get("kind", "check_in") not in FOLLOW_UP_KINDS:
        raise _fail(f"{where}.value.kind", f"one of {', '.join(FOLLOW_UP_KINDS)}")


def _check_call_webhook(value: dict[str, Any], where: str) -> None:
    if set(value) - {"webhook_id", "payload"}:
        raise _fail(f"{where}.value", "must be {webhook_id, payload}")
    webhook = value.get("webhook_id")
    if not isinstance(webhook, int) or isinstance(webhook, bool):
        raise _fail(f"{where}.value.webhook_id", "the id of a webhook (Admin → Webhooks)")
    payload = value.get("payload", {})
    if not isinstance(payload, dict):
        raise _fail(f"{where}.value.payload", "a JSON object")
    if len(json.dumps(payload)) > MAX_PAYLOAD:
        raise _fail(f"{where}.value.payload", f"at most {MAX_PAYLOAD} characters of JSON")
    unknown = sorted({p for text in _strings(payload) for p in unknown_placeholders(text)})
    if unknown:
        raise _fail(
            f"{where}.value.payload",
            f"unknown {', '.join(unknown)}; use {', '.join(PLACEHOLDERS)}",
        )


def check_conditions(conditions: Any, *, path: str = "conditions") -> list[dict[str, Any]]:
    if not isinstance(conditions, list):
        raise _fail(path, "must be a list")
    for index, condition in enumerate(conditions):
        where = f"{path}[{index}]"
        if not isinstance(condition, dict) or set(condition) - {"field", "op", "value"}:
            raise _fail(where, "must be {field, op, value}")
        field = condition.get("field")
        if field not in FIELDS:
            raise _fail(f"{where}.field", f"one of {', '.join(FIELDS)}")
        kind, choices = FIELDS[field]
        op = condition.get("op")
        if op not in OPS[kind]:
            raise _fail(f"{where}.op", f"one of {', '.join(OPS[kind])} for {field}")
        value = condition.get("value")
        if op in ("present", "absent", "is_empty"):
            continue
        values = value if op in ("in", "not_in", "contains_any") else [value]
        if not isinstance(values, list) or not values:
            raise _fail(f"{where}.value", "a non-empty list")
        expected = str if kind is list else kind
        for item in values:
            ok = isinstance(item, expected) and not (
                expected is not bool and isinstance(item, bool)
            )
            if expected is float:
                ok = isinstance(item, int | float) and not isinstance(item, bool)
            if not ok:
                raise _fail(f"{where}.value", f"must be {expected.__name__}")
            if choices and item not in choices and op not in ("contains", "not_contains"):
                raise _fail(f"{where}.value", f"one of {', '.join(choices)}")
    return conditions


def check_actions(actions: Any) -> list[dict[str, Any]]:
    if not isinstance(actions, list) or not actions:
        raise _fail("actions", "a non-empty list")
    for index, action in enumerate(actions):
        where = f"actions[{index}]"
        if not isinstance(action, dict) or set(action) - {"type", "value"}:
            raise _fail(where, "must be {type, value}")
        kind = action.get("type")
        if kind not in ACTIONS:
            raise _fail(f"{where}.type", f"one of {', '.join(ACTIONS)}")
        expected, choices = ACTIONS[kind]
        value = action.get("value")
        if expected is type(None):
            continue
        if expected is list:
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(v, str) and v for v in value)
            ):
                raise _fail(f"{where}.value", "a non-empty list of tags")
        elif not isinstance(value, expected) or isinstance(value, bool):
            raise _fail(f"{where}.value", f"must be {expected.__name__}")
        elif choices and value not in choices:
            raise _fail(f"{where}.value", f"one of {', '.join(choices)}")
        if kind == "add_note" and not str(value).strip():
            raise _fail(f"{where}.value", "must not be empty")
        if kind == "notify" and isinstance(value, dict):
            to, text = value.get("to"), value.get("text")
            if set(value) - {"to", "text"} or not (
                to in ("assignee", "team") or (isinstance(to, int) and not isinstance(to, bool))
            ):
                raise _fail(f"{where}.value.to", 'one of "assignee", "team" or a user id')
            if not isinstance(text, str) or not text.strip():
                raise _fail(f"{where}.value.text", "must not be empty")
        if kind == "send_email" and isinstance(value, dict):
            _check_send_email(value, where)
        if kind == "call_webhook" and isinstance(value, dict):
            _check_call_webhook(value, where)
        if kind == "add_follow_up" and isinstance(value, dict):
            _check_add_follow_up(value, where)
    return actions


def check_events(events: Any) -> list[str]:
    if not isinstance(events, list) or not events or any(e not in EVENT_KINDS for e in events):
        raise _fail("events", f"a non-empty list of {', '.join(EVENT_KINDS)}")
    return events


@dataclass(frozen=True)
class Facts:
    values: dict[str, Any]


def _holds(condition: dict[str, Any], facts: Facts) -> bool:
    actual = facts.values.get(condition["field"])
    op: str = condition["op"]
    value: Any = condition.get("value")
    if op == "present":
        return actual is not None
    if op == "absent":
        return actual is None
    if op == "is_empty":
        return not actual
    if actual is None:
        return op in ("is_not", "not_in", "not_contains")
    if op == "is":
        return bool(actual == value)
    if op == "is_not":
        return bool(actual != value)
    if op == "in":
        return actual in value
    if op == "not_in":
        return actual not in value
    if op == "gte":
        return bool(actual >= value)
    if op == "lte":
        return bool(actual <= value)
    if isinstance(actual, list):  # tags: stored lower-case, compared without case
        have = {str(item).lower() for item in actual}
        if op == "contains":
            return str(value).lower() in have
        if op == "not_contains":
            return str(value).lower() not in have
        if op == "contains_any":
            return bool({str(v).lower() for v in value} & have)
    if op == "contains":
        return str(value).lower() in str(actual).lower()
    if op == "not_contains":
        return str(value).lower() not in str(actual).lower()
    return False


def holds(conditions: list[dict[str, Any]], facts: Facts) -> bool:
    """All conditions hold (an empty list always does)."""
    return all(_holds(c, facts) for c in conditions)
