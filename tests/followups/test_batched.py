"""``create_many`` and ``complete_many`` (the simulated history's follow-ups, a wave at a
time) make what ``create`` and ``complete`` make one call at a time, each at its item's
moment: the rows, the events and what subscribers do with them (webhook deliveries). A bad
item refuses the whole batch, naming it, and nothing is written."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import event, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from servicecycle.events.models import Event
from servicecycle.events.service import Actor
from servicecycle.followups import service
from servicecycle.followups.models import FollowUp
from servicecycle.kit import clock
from servicecycle.kit.errors import Conflict, PreconditionFailed, ServiceError, ValidationFailed
from servicecycle.kit.secrets import Keyring
from servicecycle.webhooks import service as webhooks
from servicecycle.webhooks.models import WebhookDelivery
from tests.followups.conftest import NOW, at

Make = Callable[..., Awaitable[Any]]
ADMIN = Actor.system("test")


@pytest.fixture(autouse=True)
def _clock() -> Iterator[None]:
    yield
    clock.set_source(None)


def move(moment: datetime) -> None:
    clock.set_source(lambda: moment)


class World:
    """Three tickets of three customers, a customer without a ticket, and one follow-up
    made before (its cause is planned again below); ``name`` keeps the causes apart."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tickets: list[Any] = []
        self.customers: list[Any] = []

    async def make(self, make_ticket: Make, make_customer: Make, db: AsyncSession) -> None:
        move(at(minutes=-30))
        self.tickets = [await make_ticket(f"{self.name} {n}") for n in range(3)]
        self.customers = [t.requester_id for t in self.tickets] + [(await make_customer()).id]
        await service.create(
            db,
            ticket_id=self.tickets[2].id,
            reason="Made before",
            due_at=at(days=1),
            source=("test", f"{self.name}-before"),
            actor=ADMIN,
        )

    def items(self, agent_id: int) -> list[service.NewFollowUp]:
        t = self.tickets
        by = Actor.user(agent_id)
        return [
            service.NewFollowUp(
                reason="  Check the replacement works  ",
                due_at=at(days=3),
                actor=by,
                at=at(minutes=1),
                ticket_id=t[0].id,
                owner_id=agent_id,
                kind="check_in",
            ),
            service.NewFollowUp(  # about the customer only, due already
                reason="Renewal call",
                due_at=at(minutes=-10),
                actor=by,
                at=at(minutes=2),
                customer_id=self.customers[3],
            ),
            service.NewFollowUp(
                reason="Caused by something",
                due_at=at(hours=5),
                actor=ADMIN,
                at=at(minutes=3),
                ticket_id=t[1].id,
                customer_id=t[1].requester_id,
                owner_id=agent_id,
                source=("test", f"{self.name}-a"),
            ),
            service.NewFollowUp(  # the same cause again: the first one's follow-up
                reason="The same cause",
                due_at=at(hours=6),
                actor=ADMIN,
                at=at(minutes=4),
                ticket_id=t[2].id,
                source=("test", f"{self.name}-a"),
            ),
            service.NewFollowUp(  # a cause that had one before: that one, no event
                reason="Heard again",
                due_at=at(hours=7),
                actor=ADMIN,
                at=at(minutes=4),
                ticket_id=t[2].id,
                source=("test", f"{self.name}-before"),
            ),
        ]

    def completions(self, rows: list[FollowUp], agent_id: int) -> list[service.Completion]:
        by = Actor.user(agent_id)
        return [
            service.Completion(rows[0], "resolved", at(hours=2), by, note="  All good  "),
            service.Completion(rows[1], "no_answer", at(hours=3), by),  # late
            service.Completion(rows[2], "escalated", at(hours=4), ADMIN, expected_version=1),
        ]

    def plain(self, value: Any, key: str = "") -> Any:
        """``value`` with this world's ids and causes as labels."""
        if isinstance(value, dict):
            return {k: self.plain(v, k) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.plain(v, key) for v in value]
        if isinstance(value, str) and value.startswith(f"{self.name}-"):
            return value.removeprefix(f"{self.name}-")
        if key in ("ticket_id", "subject_id") and str(value) in self.labels("T"):
            return self.labels("T")[str(value)]
        if key in ("customer_id", "subject_id") and str(value) in self.labels("C"):
            return self.labels("C")[str(value)]
        if key in ("follow_up_id", "id") and isinstance(value, int):
            return "F"
        return value

    def labels(self, kind: str) -> dict[str, str]:
        ids = [t.id for t in self.tickets] if kind == "T" else self.customers
        return {str(i): f"{kind}{n}" for n, i in enumerate(ids)}

    async def story(self, db: AsyncSession) -> dict[str, Any]:
        """The world's follow-ups, their events since the set-up and their deliveries."""
        rows = (
            await db.scalars(
                select(FollowUp)
                .where(FollowUp.customer_id.in_(self.customers))
                .order_by(FollowUp.id)
            )
        ).all()
        subjects = or_(
            (Event.subject_type == "ticket")
            & Event.subject_id.in_([str(t.id) for t in self.tickets]),
            (Event.subject_type == "customer")
            & Event.subject_id.in_([str(c) for c in self.customers]),
        )
        events = (
            await db.scalars(
                select(Event)
                .where(subjects, Event.kind.like("follow_up.%"), Event.occurred_at >= NOW)
                .order_by(Event.id)
            )
        ).all()
        deliveries = (
            await db.scalars(
                select(WebhookDelivery)
                .join(Event, Event.id == WebhookDelivery.event_id)
                .where(subjects, Event.occurred_at >= NOW)
                .order_by(WebhookDelivery.event_id)
            )
        ).all()
        return self.plain(
            {
                "rows": [
                    {
                        "customer_id": r.customer_id,
                        "ticket_id": r.ticket_id,
                        **{
                            name: getattr(r, name)
                            for name in (
                                "owner_id",
                                "kind",
                                "reason",
                                "due_at",
                                "state",
                                "outcome",
                                "outcome_note",
                                "created_by_type",
                                "created_by_id",
                                "created_at",
                                "updated_at",
                                "done_at",
                                "sent_at",
                                "source_type",
                                "source_id",
                                "version",
                            )
                        },
                    }
                    for r in rows
                ],
                "events": [
                    {
                        "kind": e.kind,
                        "subject_type": e.subject_type,
                        "subject_id": e.subject_id,
                        "actor": [e.actor_type, e.actor_id],
                        "occurred_at": e.occurred_at,
                        "data": e.data,
                    }
                    for e in events
                ],
                "deliveries": [
                    [d.kind, d.status, d.next_attempt_at, d.payload["data"]] for d in deliveries
                ],
            }
        )


async def _worlds(
    db: AsyncSession, make_ticket: Make, make_customer: Make, make_user: Make
) -> tuple[int, World, World]:
    move(at(minutes=-60))
    await webhooks.create_subscription(
        db,
        name="follow-ups",
        url="https://hooks.example.com/in",
        kinds=["follow_up.*"],
        sending=webhooks.Sending(keyring=Keyring(b"w" * 32)),
        actor=ADMIN,
    )
    agent = await make_user("agent")
    one, many = World("one"), World("many")
    await one.make(make_ticket, make_customer, db)
    await many.make(make_ticket, make_customer, db)
    return agent.id, one, many


async def test_batches_make_what_the_single_services_make_one_call_at_a_time(
    db: AsyncSession, make_ticket: Make, make_customer: Make, make_user: Make
) -> None:
    agent_id, one, many = await _worlds(db, make_ticket, make_customer, make_user)

    singles = []
    for item in one.items(agent_id):
        move(item.at)
        singles.append(
            await service.create(
                db,
                reason=item.reason,
                due_at=item.due_at,
                actor=item.actor,
                ticket_id=item.ticket_id,
                customer_id=item.customer_id,
                owner_id=item.owner_id,
                kind=item.kind,
                source=item.source,
            )
        )
    for done in one.completions(singles, agent_id):
        move(done.at)
        await service.complete(
            db,
            done.follow_up,
            outcome=done.outcome,
            note=done.note,
            actor=done.actor,
            expected_version=done.expected_version,
        )

    move(at(days=9))  # the batches take each item's moment, not the clock's
    made = await service.create_many(db, many.items(agent_id))
    await service.complete_many(db, many.completions(made, agent_id))

    assert made[3] is made[2]  # the same cause twice: one follow-up
    assert made[4].reason == "Made before"  # the cause's earlier one
    assert [f.state for f in made] == ["done", "done", "done", "done", "open"]
    assert made[0].version == 2 and made[0].done_at == at(hours=2)
    single, batch = await one.story(db), await many.story(db)
    for part in ("rows", "events", "deliveries"):
        assert batch[part] == single[part], part
    kinds = [e["kind"] for e in batch["events"]]
    assert kinds == ["follow_up.created"] * 3 + ["follow_up.done"] * 3
    assert [e["data"]["late"] for e in batch["events"][3:]] == [False, True, False]
    assert len(batch["deliveries"]) == 6
    # the loaded rows are what was written (nothing left for the next flush to write)
    for follow_up in made:
        await db.refresh(follow_up)
    assert [f.state for f in made] == ["done", "done", "done", "done", "open"]
    assert made[0].version == 2 and made[0].outcome_note == "All good"


async def test_the_many_row_statements_are_the_same_text_whatever_the_number_of_rows(
    db: AsyncSession, make_ticket: Make, make_customer: Make, make_user: Make
) -> None:
    agent_id, one, many = await _worlds(db, make_ticket, make_customer, make_user)
    seen: list[str] = []
    engine = db.bind.engine.sync_engine  # type: ignore[union-attr]

    def remember(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    texts = []
    for world, count in ((one, 1), (many, 3)):
        items = world.items(agent_id)[:count]
        event.listen(engine, "before_cursor_execute", remember)
        try:
            made = await service.create_many(db, items)
            await service.complete_many(
                db, [service.Completion(f, "resolved", at(hours=2), ADMIN) for f in made]
            )
        finally:
            event.remove(engine, "before_cursor_execute", remember)
        texts.append(
            [s for s in seen if "follow_ups" in s and s.lstrip().startswith(("INSERT", "UPDATE"))]
        )
        seen.clear()
    assert len(texts[0]) == 2 and texts[0] == texts[1]


async def test_a_bad_item_refuses_the_batch_names_it_and_writes_nothing(
    db: AsyncSession, make_ticket: Make, make_customer: Make, make_user: Make
) -> None:
    agent_id, world, _ = await _worlds(db, make_ticket, make_customer, make_user)
    customer = await make_customer()
    admin_user = await make_user("admin")
    good = world.items(agent_id)[0]
    ticket = world.tickets[0]

    async def written() -> tuple[Any, Any]:
        return (
            await db.scalar(select(func.count()).select_from(FollowUp)),
            await db.scalar(select(func.max(Event.id))),
        )

    before = await written()
    bad_items: list[tuple[dict[str, Any], type[ServiceError], str]] = [
        ({"reason": "   "}, ValidationFailed, "A reason is required"),
        ({"kind": "visit"}, ValidationFailed, "Invalid kind"),
        ({"due_at": datetime(2026, 12, 3, 9)}, ValidationFailed, "Invalid due_at"),
        ({"ticket_id": 999_999_999}, ValidationFailed, "No such ticket"),
        ({"customer_id": customer.id}, ValidationFailed, "The customer is not the ticket's"),
        ({"owner_id": 999_999}, ValidationFailed, "The owner must be an active agent"),
        ({"ticket_id": None, "customer_id": None}, ValidationFailed, "A follow-up needs"),
        ({"ticket_id": None, "customer_id": 999_999_999}, ValidationFailed, "No such customer"),
    ]
    for changes, error, message in bad_items:
        bad = service.NewFollowUp(**{**vars(good), "ticket_id": ticket.id, **changes})
        with pytest.raises(error) as refused:
            await service.create_many(db, [good, bad])
        assert refused.value.extra["item"] == 1, changes
        assert refused.value.message.startswith("Item 1 (follow-up "), changes
        assert message in refused.value.message and "Nothing was written" in refused.value.message
        assert await written() == before, changes
    # an active admin may own one
    [owned] = await service.create_many(
        db, [service.NewFollowUp(**{**vars(good), "owner_id": admin_user.id})]
    )
    assert owned.owner_id == admin_user.id

    first, second = await service.create_many(db, world.items(agent_id)[:2])
    await service.complete_many(db, [service.Completion(second, "resolved", at(hours=1), ADMIN)])
    before = await written()
    bad_completions: list[tuple[service.Completion, type[ServiceError], str]] = [
        (service.Completion(first, None, at(hours=2), ADMIN), ValidationFailed, "Say how"),
        (service.Completion(first, "happy", at(hours=2), ADMIN), ValidationFailed, "outcome"),
        (
            service.Completion(first, "other", at(hours=2), ADMIN, note="x" * 2_001),
            ValidationFailed,
            "Note too long",
        ),
        (service.Completion(second, "resolved", at(hours=2), ADMIN), Conflict, "is done"),
        (
            service.Completion(first, "resolved", at(hours=2), ADMIN, expected_version=7),
            PreconditionFailed,
            "changed by someone else",
        ),
        (service.Completion(owned, "resolved", at(hours=2), ADMIN), ValidationFailed, "once"),
    ]
    for bad_done, error, message in bad_completions:
        good_done = service.Completion(owned, "resolved", at(hours=2), ADMIN)
        with pytest.raises(error) as refused:
            await service.complete_many(db, [good_done, bad_done])
        assert refused.value.extra["item"] == 1, message
        assert refused.value.message.startswith("Item 1 (follow-up "), message
        assert message in refused.value.message, refused.value.message
        assert await written() == before, message
        assert (owned.state, first.state) == ("open", "open")
    await db.refresh(owned)
    await db.refresh(first)
    assert (owned.state, owned.version, first.state) == ("open", 1, "open")


async def test_a_follow_up_changed_behind_the_batch_is_refused(
    db: AsyncSession, sessions: Any, make_ticket: Make, make_customer: Make, make_user: Make
) -> None:
    agent_id, world, _ = await _worlds(db, make_ticket, make_customer, make_user)
    [made] = await service.create_many(db, world.items(agent_id)[:1])
    await db.commit()
    async with sessions() as other, other.begin():
        theirs = await service.get(other, made.id)
        await service.update(other, theirs, changes={"reason": "Theirs"}, actor=ADMIN)
    with pytest.raises(Conflict):
        await service.complete_many(db, [service.Completion(made, "resolved", at(hours=1), ADMIN)])


async def test_open_recoveries_of_tickets_finds_each_tickets_first_open_recovery(
    db: AsyncSession, make_ticket: Make
) -> None:
    move(NOW)
    tickets = [await make_ticket(f"Recover {n}") for n in range(3)]
    made = await service.create_many(
        db,
        [
            service.NewFollowUp(
                "First", at(days=1), ADMIN, at(), ticket_id=tickets[0].id, kind="recovery"
            ),
            service.NewFollowUp(
                "Second", at(days=1), ADMIN, at(), ticket_id=tickets[0].id, kind="recovery"
            ),
            service.NewFollowUp(
                "Check", at(days=1), ADMIN, at(), ticket_id=tickets[1].id, kind="check_in"
            ),
            service.NewFollowUp(
                "Done", at(days=1), ADMIN, at(), ticket_id=tickets[2].id, kind="recovery"
            ),
        ],
    )
    await service.complete(db, made[3], outcome="resolved", actor=ADMIN)
    found = await service.open_recoveries_of_tickets(db, [t.id for t in tickets])
    assert found == {tickets[0].id: made[0]}
    assert await service.open_recovery_of_ticket(db, tickets[0].id) is made[0]
    assert await service.open_recovery_of_ticket(db, tickets[2].id) is None
    assert await service.open_recoveries_of_tickets(db, []) == {}
