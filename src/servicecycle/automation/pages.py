"""Admin pages for service rules: the overview, automations (triggers and time rules) and
macros. Calendars and SLA policies are in ``sla.pages``; this higher domain may read them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from servicecycle.auth import service as auth
from servicecycle.auth.deps import Db, PageAdmin, Principal
from servicecycle.auth.flash import flash
from servicecycle.automation import macros, service
from servicecycle.automation.models import Macro, Rule
from servicecycle.automation.rules import ACTIONS, EVENT_KINDS, FIELDS, OPS, PLACEHOLDERS
from servicecycle.kit.errors import ServiceError, ValidationFailed
from servicecycle.sla import service as sla
from servicecycle.web.forms import form_text, form_version, problem
from servicecycle.web.templating import render
from servicecycle.webhooks import service as webhooks

router = APIRouter(include_in_schema=False)

NAME_MAX = 120
BODY_MAX = 20_000
JSON_MAX = 50_000
KINDS = {"trigger": "Trigger", "time": "Time rule"}
ACTION_WORDS = {
    "set_status": "Set status to",
    "set_priority": "Set priority to",
    "assign_agent": "Assign to agent",
    "assign_team": "Assign to team",
    "unassign": "Unassign the agent",
    "add_tags": "Add tags",
    "remove_tags": "Remove tags",
    "add_note": "Add an internal note:",
    "notify": "Notify",
    "send_email": "E-mail",
    "call_webhook": "Call the webhook",
}
FIELD_KINDS = {str: "Text", int: "Ids", float: "Hours", bool: "Yes or no", list: "Tags"}
EXAMPLES = {
    "Escalate a first-reply breach (trigger on sla.breached)": (
        ["sla.breached"],
        [{"field": "sla.metric", "op": "is", "value": "first_reply"}],
        [{"type": "set_priority", "value": "urgent"}, {"type": "add_tags", "value": ["escalated"]}],
    ),
    "Remind after three days pending (time rule)": (
        [],
        [
            {"field": "ticket.status", "op": "is", "value": "pending"},
            {"field": "ticket.hours_since_update", "op": "gte", "value": 72},
        ],
        [{"type": "add_note", "value": "Pending for 3 days: chase the customer."}],
    ),
    "Tell the customer and another system about a breach (trigger on sla.breached)": (
        ["sla.breached"],
        [{"field": "sla.metric", "op": "is", "value": "resolution"}],
        [
            {
                "type": "send_email",
                "value": {
                    "to": "requester",
                    "subject": "An update on #{{ticket.number}}",
                    "body": "Hi {{customer.first_name}}, this takes longer than we promised; "
                    "{{agent.first_name}} is on it.",
                },
            },
            {"type": "call_webhook", "value": {"webhook_id": 1, "payload": {"alert": "breach"}}},
        ],
    ),
}


def pretty(value: Any, order: tuple[str, ...] = ()) -> str:
    """Indented JSON; each object's keys in ``order`` first (jsonb keeps its own key order)."""
    if order and isinstance(value, list):
        value = [
            {**{k: item[k] for k in order if k in item}, **item} if isinstance(item, dict) else item
            for item in value
        ]
    return json.dumps(value, indent=2, ensure_ascii=False)


def shown(value: Any) -> str:
    """A condition's or action's value as plain words."""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _json(text: str, path: str) -> Any:
    """The textarea's JSON, or a refusal naming the line and column."""
    if len(text) > JSON_MAX:
        raise ValidationFailed("Too long", fields={path: f"at most {JSON_MAX} characters"})
    try:
        return json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise ValidationFailed(
            f"Invalid rule: {path} is not valid JSON",
            fields={path: f"{exc.msg} at line {exc.lineno}, column {exc.colno}"},
        ) from None


def _check_name(name: str) -> str:
    if len(name) > NAME_MAX:
        raise ValidationFailed(
            "Name is too long", fields={"name": f"at most {NAME_MAX} characters"}
        )
    return name


async def _names(db: Db, rules: list[Rule], macro_list: list[Macro]) -> dict[str, dict[int, str]]:
    """Team and agent names for the actions that assign, so lists read as words."""
    actions = [a for r in rules for a in r.actions] + [a for m in macro_list for a in m.actions]
    values = [
        a["value"].get("to") if a.get("type") == "notify" else a.get("value")
        for a in actions
        if a.get("type") in ("assign_agent", "notify") and a.get("value") is not None
    ]
    agent_ids = {v for v in values if isinstance(v, int) and not isinstance(v, bool)}
    agents = await auth.users_by_id(db, sorted(agent_ids)) if agent_ids else []
    return {
        "team": {team.id: team.name for team, _ in await auth.list_teams(db)},
        "agent": {user.id: user.name for user in agents},
        "webhook": {sub.id: sub.name for sub in await webhooks.list_subscriptions(db)},
    }


# -- overview -------------------------------------------------------------------------------


@router.get("/admin/service")
async def overview(request: Request, principal: PageAdmin, db: Db) -> Response:
    policies = await sla.list_policies(db)
    rules = await service.list_rules(db)
    mine = await macros.macros_for(db, principal.identity.id)
    counts = {
        "calendars": len(await sla.list_calendars(db)),
        "policies": len(policies),
        "policies_active": sum(p.active for p in policies),
        "triggers": sum(r.kind == "trigger" for r in rules),
        "time_rules": sum(r.kind == "time" for r in rules),
        "rules_active": sum(r.active for r in rules),
        "macros_shared": sum(m.owner_id is None for m in mine),
        "macros_own": sum(m.owner_id is not None for m in mine),
    }
    return render(
        request,
        "automation/service.html",
        {
            "section": "overview",
            "counts": counts,
            "switched_off": [r for r in rules if not r.active and r.disabled_reason],
            "kinds": KINDS,
        },
    )


# -- rules ----------------------------------------------------------------------------------


@dataclass
class RuleDraft:
    """The rule form as typed: JSON kept as text, so a refusal shows exactly what was sent."""

    name: str = ""
    kind: str = "trigger"
    events: str = '[\n  "ticket.created"\n]'
    conditions: str = "[]"
    actions: str = "[]"
    version: str = ""

    @classmethod
    def from_form(cls, form: FormData, *, kind: str | None = None) -> RuleDraft:
        return cls(
            name=form_text(form, "name"),
            kind=kind or form_text(form, "kind"),
            events=form_text(form, "events", strip=False),
            conditions=form_text(form, "conditions", strip=False),
            actions=form_text(form, "actions", strip=False),
            version=form_text(form, "version"),
        )

    @classmethod
    def of(cls, rule: Rule) -> RuleDraft:
        return cls(
            name=rule.name,
            kind=rule.kind,
            events=pretty(rule.events),
            conditions=pretty(rule.conditions, ("field", "op", "value")),
            actions=pretty(rule.actions, ("type", "value")),
            version=str(rule.version),
        )

    def fields(self) -> dict[str, Any]:
        """The service's arguments; JSON that does not parse is refused here, naming its box."""
        return {
            "name": _check_name(self.name),
            "events": _json(self.events, "events") if self.kind == "trigger" else [],
            "conditions": _json(self.conditions, "conditions"),
            "actions": _json(self.actions, "actions"),
        }


def _reference() -> dict[str, Any]:
    """What rules can say, read from automation.rules so it never drifts from the checks."""
    return {
        "groups": [
            (
                FIELD_KINDS[kind],
                ops,
                [(name, choices) for name, (of, choices) in FIELDS.items() if of is kind],
            )
            for kind, ops in OPS.items()
        ],
        "actions": [
            (
                name,
                "no value"
                if kind is type(None)
                else "list of tags"
                if kind is list
                else kind.__name__,
                choices,
            )
            for name, (kind, choices) in ACTIONS.items()
        ],
        "events": EVENT_KINDS,
        "placeholders": PLACEHOLDERS,
        "examples": [
            (title, pretty(events), pretty(conditions), pretty(actions))
            for title, (events, conditions, actions) in EXAMPLES.items()
        ],
    }


async def _rule_page(
    request: Request,
    db: Db,
    draft: RuleDraft,
    *,
    rule: Rule | None = None,
    refusal: dict[str, Any] | None = None,
    matched: list[int] | None = None,
    plan: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "automation/rule.html",
        {
            "section": "rules",
            "rule": rule,
            "draft": draft,
            "kinds": KINDS,
            "ref": _reference(),
            "matched": matched,
            "plan": plan,
            "webhooks": await webhooks.list_subscriptions(db),
            "limit": service.DRY_RUN_LIMIT,
            "error": None,
            "fields": {},
            **(refusal or {}),
        },
        status_code=status_code,
    )


async def _rules_page(
    request: Request, db: Db, *, refusal: dict[str, Any] | None = None, status_code: int = 200
) -> Response:
    rules = await service.list_rules(db)
    return render(
        request,
        "automation/rules.html",
        {
            "section": "rules",
            "groups": [
                ("trigger", "Triggers", "Run when something happens to a ticket.", rules),
                ("time", "Time rules", "Run every five minutes over tickets that waited.", rules),
            ],
            "names": await _names(db, rules, []),
            "action_words": ACTION_WORDS,
            "shown": shown,
            "error": None,
            "fields": {},
            **(refusal or {}),
        },
        status_code=status_code,
    )


@router.get("/admin/rules")
async def rules_page(request: Request, principal: PageAdmin, db: Db) -> Response:
    return await _rules_page(request, db)


@router.get("/admin/rules/new")
async def new_rule(
    request: Request, principal: PageAdmin, db: Db, kind: str = "trigger"
) -> Response:
    draft = RuleDraft(kind=kind if kind in KINDS else "trigger")
    if draft.kind == "time":
        draft.events = "[]"
    return await _rule_page(request, db, draft)


@router.post("/admin/rules")
async def create_rule(request: Request, principal: PageAdmin, db: Db) -> Response:
    draft = RuleDraft.from_form(await request.form())
    try:
        async with db.begin_nested():
            rule = await service.create_rule(
                db, kind=draft.kind, actor=principal.actor, **draft.fields()
            )
    except ServiceError as exc:
        return await _rule_page(
            request, db, draft, refusal=problem(exc), status_code=exc.status_code
        )
    flash(principal, f"Rule “{rule.name}” saved. A dry run shows which open tickets it matches.")
    return RedirectResponse(f"/admin/rules/{rule.id}", status_code=303)


@router.get("/admin/rules/{rule_id:int}")
async def rule_page(request: Request, rule_id: int, principal: PageAdmin, db: Db) -> Response:
    rule = await service.get_rule(db, rule_id)
    return await _rule_page(request, db, RuleDraft.of(rule), rule=rule)


@router.post("/admin/rules/{rule_id:int}")
async def update_rule(request: Request, rule_id: int, principal: PageAdmin, db: Db) -> Response:
    rule = await service.get_rule(db, rule_id)
    draft = RuleDraft.from_form(await request.form(), kind=rule.kind)
    try:
        async with db.begin_nested():
            changes = draft.fields()
            if rule.kind == "time":
                del changes["events"]
            await service.update_rule(
                db,
                rule,
                expected_version=form_version(draft.version),
                changes=changes,
                actor=principal.actor,
            )
    except ServiceError as exc:
        rule = await service.get_rule(db, rule_id)  # as stored, after the rollback
        return await _rule_page(
            request, db, draft, rule=rule, refusal=problem(exc), status_code=exc.status_code
        )
    flash(principal, f"Rule “{rule.name}” saved.")
    return RedirectResponse(f"/admin/rules/{rule.id}", status_code=303)


@router.post("/admin/rules/{rule_id:int}/active")
async def set_active(request: Request, rule_id: int, principal: PageAdmin, db: Db) -> Response:
    form = await request.form()
    rule = await service.get_rule(db, rule_id)
    active = form_text(form, "active") == "true"
    try:
        async with db.begin_nested():
            await service.update_rule(
                db,
                rule,
                expected_version=form_version(form_text(form, "version")),
                changes={"active": active},
                actor=principal.actor,
            )
    except ServiceError as exc:
        return await _rules_page(request, db, refusal=problem(exc), status_code=exc.status_code)
    flash(principal, f"Rule “{rule.name}” {'activated' if active else 'deactivated'}.")
    back = form_text(form, "back")
    return RedirectResponse(back if back == f"/admin/rules/{rule.id}" else "/admin/rules", 303)


@router.post("/admin/rules/{rule_id:int}/dry-run")
async def dry_run(request: Request, rule_id: int, principal: PageAdmin, db: Db) -> Response:
    """The open tickets the saved rule's conditions match now: a fragment for htmx, else
    the rule's page with the result."""
    rule = await service.get_rule(db, rule_id)
    matched = await service.dry_run(db, rule)
    plan = await service.plan(db, rule)
    if request.headers.get("hx-request") == "true":
        return render(
            request,
            "automation/_dry_run.html",
            {"rule": rule, "matched": matched, "plan": plan, "limit": service.DRY_RUN_LIMIT},
            in_transaction=False,
        )
    return await _rule_page(request, db, RuleDraft.of(rule), rule=rule, matched=matched, plan=plan)


# -- macros ---------------------------------------------------------------------------------


@dataclass
class MacroDraft:
    name: str = ""
    body: str = ""
    public: bool = True
    actions: str = ""
    shared: bool = True

    @classmethod
    def from_form(cls, form: FormData) -> MacroDraft:
        return cls(
            name=form_text(form, "name"),
            body=form_text(form, "body", strip=False),
            public=form_text(form, "kind") != "note",
            actions=form_text(form, "actions", strip=False),
            shared=form_text(form, "shared") == "on",
        )

    @classmethod
    def of(cls, macro: Macro) -> MacroDraft:
        return cls(
            name=macro.name,
            body=macro.body,
            public=macro.public,
            actions=pretty(macro.actions, ("type", "value")) if macro.actions else "",
            shared=macro.owner_id is None,
        )

    def fields(self) -> dict[str, Any]:
        if len(self.body) > BODY_MAX:
            raise ValidationFailed("Reply is too long", fields={"body": f"at most {BODY_MAX}"})
        return {
            "name": _check_name(self.name),
            "body": self.body,
            "public": self.public,
            "actions": _json(self.actions.strip() or "[]", "actions"),
            "shared": self.shared,
        }


async def _macros_page(
    request: Request,
    db: Db,
    principal: Principal,
    draft: MacroDraft,
    *,
    refusal: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    found = await macros.macros_for(db, principal.identity.id)
    return render(
        request,
        "automation/macros.html",
        {
            "section": "macros",
            "macros": found,
            "names": await _names(db, [], found),
            "action_words": ACTION_WORDS,
            "shown": shown,
            "draft": draft,
            "placeholders": macros.PLACEHOLDERS,
            "actions_ref": _reference()["actions"],
            "error": None,
            "fields": {},
            **(refusal or {}),
        },
        status_code=status_code,
    )


@router.get("/admin/macros")
async def macros_page(request: Request, principal: PageAdmin, db: Db) -> Response:
    return await _macros_page(request, db, principal, MacroDraft())


@router.post("/admin/macros")
async def create_macro(request: Request, principal: PageAdmin, db: Db) -> Response:
    draft = MacroDraft.from_form(await request.form())
    try:
        async with db.begin_nested():
            macro = await macros.create_macro(
                db,
                owner_id=principal.identity.id,
                is_admin=True,  # PageAdmin let only admins in
                actor=principal.actor,
                **draft.fields(),
            )
    except ServiceError as exc:
        return await _macros_page(
            request, db, principal, draft, refusal=problem(exc), status_code=exc.status_code
        )
    flash(principal, f"Macro “{macro.name}” saved.")
    return RedirectResponse("/admin/macros", status_code=303)


async def _macro_page(
    request: Request,
    db: Db,
    macro: Macro,
    draft: MacroDraft,
    *,
    refusal: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "automation/macro.html",
        {
            "section": "macros",
            "macro": macro,
            "draft": draft,
            "placeholders": macros.PLACEHOLDERS,
            "actions_ref": _reference()["actions"],
            "error": None,
            "fields": {},
            **(refusal or {}),
        },
        status_code=status_code,
    )


@router.get("/admin/macros/{macro_id:int}")
async def macro_page(request: Request, macro_id: int, principal: PageAdmin, db: Db) -> Response:
    macro = await macros.get_macro(db, macro_id, user_id=principal.identity.id)
    return await _macro_page(request, db, macro, MacroDraft.of(macro))


@router.post("/admin/macros/{macro_id:int}")
async def update_macro(request: Request, macro_id: int, principal: PageAdmin, db: Db) -> Response:
    macro = await macros.get_macro(db, macro_id, user_id=principal.identity.id)
    form = await request.form()
    draft = MacroDraft.from_form(form)
    draft.shared = macro.owner_id is None
    try:
        async with db.begin_nested():
            changes = draft.fields()
            del changes["shared"]
            await macros.update_macro(
                db,
                macro,
                changes=changes,
                expected_version=form_version(form_text(form, "version")),
                is_admin=True,
                actor=principal.actor,
            )
    except ServiceError as exc:
        macro = await macros.get_macro(db, macro_id, user_id=principal.identity.id)
        return await _macro_page(
            request, db, macro, draft, refusal=problem(exc), status_code=exc.status_code
        )
    flash(principal, f"Macro “{macro.name}” saved.")
    return RedirectResponse("/admin/macros", status_code=303)


@router.post("/admin/macros/{macro_id:int}/delete")
async def delete_macro(request: Request, macro_id: int, principal: PageAdmin, db: Db) -> Response:
    macro = await macros.get_macro(db, macro_id, user_id=principal.identity.id)
    await macros.delete_macro(db, macro, is_admin=True, actor=principal.actor)
    flash(principal, f"Macro “{macro.name}” deleted.")
    return RedirectResponse("/admin/macros", status_code=303)
