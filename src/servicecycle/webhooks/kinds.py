"""Which event kinds a subscription may ask for, and how a pattern matches a kind. Pure.

The catalogue is what a subscription may name exactly (and what the admin page lists); a
``*`` or ``prefix.*`` subscription also hears kinds recorded later. Never sent, whatever a
subscription asks (``private``): sign-ins, sessions and API tokens (security), and
``webhook.*`` about deliveries (a failing delivery must not cause more deliveries).
"""

from __future__ import annotations

CATALOGUE: tuple[str, ...] = (
    "ticket.created",
    "ticket.updated",
    "ticket.merged",
    "ticket.absorbed",
    "ticket.split",
    "ticket.linked",
    "ticket.followed",
    "ticket.unfollowed",
    "ticket.requester_changed",
    "ticket.routed",
    "message.added",
    "status.changed",
    "assigned",
    "attachment.added",
    "attachment.refused",
    "sla.warning",
    "sla.breached",
    "sla.met",
    "sla.stopped",
    "sla.policy_applied",
    "sla.policy_changed",
    "sla_policy.created",
    "sla_policy.updated",
    "sla_policy.deleted",
    "calendar.created",
    "calendar.updated",
    "calendar.deleted",
    "customer.created",
    "customer.updated",
    "customer.identity_added",
    "customer.merged",
    "customer.absorbed",
    "company.created",
    "mail.queued",
    "mail.sent",
    "mail.failed",
    "mailbox.failed",
    "mailbox.recovered",
    "chat.started",
    "chat.taken",
    "chat.ended",
    "chat.missed",
    "rule.created",
    "rule.updated",
    "rule.disabled",
    "rule.skipped",
    "rule.email_queued",
    "rule.webhook_called",
    "macro.created",
    "macro.updated",
    "macro.deleted",
    "macro.applied",
    "user.created",
    "user.updated",
    "user.availability_changed",
    "custom_field.created",
    "custom_field.updated",
    "team.created",
    "team.member_added",
    "team.member_removed",
    "notification.sent",
    "webhook.received",
    "survey.created",
    "survey.updated",
    "survey.rule_created",
    "survey.rule_updated",
    "survey.rule_deleted",
    "survey.scheduled",
    "survey.sent",
    "survey.skipped",
    "survey.answered",
    "follow_up.created",
    "follow_up.updated",
    "follow_up.check_in_sent",
    "follow_up.done",
    "follow_up.cancelled",
    "follow_up.refused",
)


PRIVATE_PREFIXES = ("webhook.", "api_token.", "portal.", "user.logged_")


def private(kind: str) -> bool:
    """Kinds kept to the desk: never delivered to a webhook."""
    return kind != "webhook.received" and kind.startswith(PRIVATE_PREFIXES)


def problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a kind one can subscribe to, or None: an exact kind of the
    catalogue, ``*`` (every kind), or a prefix such as ``ticket.*``."""
    if pattern == "*":
        return None
    if pattern.endswith(".*"):
        prefix = pattern[:-1]
        if any(kind.startswith(prefix) for kind in CATALOGUE):
            return None
        return f"no event kind starts with {prefix}"
    if pattern in CATALOGUE:
        return None
    return "not an event kind (see the list), * or a prefix such as ticket.*"


def matches(patterns: list[str], kind: str) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == kind:
            return True
        if pattern.endswith(".*") and kind.startswith(pattern[:-1]):
            return True
    return False
