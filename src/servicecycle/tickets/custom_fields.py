"""Admin-defined ticket fields: define, change, list. Flushes; the caller commits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.events import versions
from servicecycle.events.service import Actor, record
from servicecycle.kit.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from servicecycle.tickets.fields import FieldSpec, check_definition
from servicecycle.tickets.models import FIELD_KINDS, CustomField


async def list_fields(
    session: AsyncSession, *, include_inactive: bool = False
) -> list[CustomField]:
    stmt = select(CustomField).order_by(CustomField.position, CustomField.id)
    if not include_inactive:
        stmt = stmt.where(CustomField.active.is_(True))
    return list((await session.scalars(stmt)).all())


# the fields change only through create_field and update_field, whose events draw a new
# version: every ticket check (a solve, a change of values) reads the process's copy
versions.track("ticket_fields", "custom_field.created", "custom_field.updated")


async def _load_specs(session: AsyncSession) -> dict[str, FieldSpec]:
    return {
        f.key: FieldSpec(
            key=f.key, kind=f.kind, options=tuple(f.options), required=f.required, active=f.active
        )
        for f in await list_fields(session, include_inactive=True)
    }


async def specs(session: AsyncSession) -> dict[str, FieldSpec]:
    """Every field's spec by key (inactive ones too), from the process's current copy."""
    return dict(await versions.cached(session, "ticket_fields", "specs", _load_specs))


async def create_field(
    session: AsyncSession,
    *,
    key: str,
    label: str,
    kind: str,
    options: list[str],
    required: bool,
    public: bool,
    actor: Actor,
) -> CustomField:
    if kind not in FIELD_KINDS:
        raise ValidationFailed("Unknown kind", fields={"kind": f"one of {', '.join(FIELD_KINDS)}"})
    check_definition(key=key, kind=kind, options=options)
    if not label.strip():
        raise ValidationFailed("Label is required", fields={"label": "must not be empty"})
    if await session.scalar(select(CustomField.id).where(CustomField.key == key)) is not None:
        raise Conflict("A field with this key exists", fields={"key": "already taken"})
    position = len(await list_fields(session, include_inactive=True))
    field = CustomField(
        key=key,
        label=label.strip(),
        kind=kind,
        options=options,
        required=required,
        public=public,
        position=position,
    )
    session.add(field)
    await session.flush()
    await record(
        session,
        "custom_field.created",
        subject_type="custom_field",
        subject_id=field.id,
        actor=actor,
        data={"key": key, "kind": kind},
    )
    return field


async def get_field(session: AsyncSession, field_id: int) -> CustomField:
    field = await session.get(CustomField, field_id)
    if field is None:
        raise NotFound(f"No custom field {field_id}")
    return field


async def update_field(
    session: AsyncSession,
    field: CustomField,
    *,
    expected_version: int,
    changes: dict[str, Any],
    actor: Actor,
) -> CustomField:
    """Change label, options, required, public or active (key and kind are fixed)."""
    if field.version != expected_version:
        raise PreconditionFailed(
            "This field was changed by someone else; reload and try again",
            extra={"current_version": field.version},
        )
    if "options" in changes:
        check_definition(key=field.key, kind=field.kind, options=changes["options"])
    changed = {k: v for k, v in changes.items() if getattr(field, k) != v}
    for key, value in changed.items():
        setattr(field, key, value)
    if changed:
        await session.flush()
        await record(
            session,
            "custom_field.updated",
            subject_type="custom_field",
            subject_id=field.id,
            actor=actor,
            data={"changes": changed},
        )
    return field
