"""The simulated tickets read like one conversation each: a ticket's subject, first message,
questions and answers, internal notes, solution and reopen all come from one case (one customer
problem) of its topic's bank, filled with the conversation's own slots; the same seed gives the
same text, and there is enough variety that no two tickets read alike.

A text "fits" a template when the filled template is in it: subjects and the agent's texts
exactly (ignoring case: some subjects are lower-cased), the customer's texts word by word
ignoring case and the order of letters inside a word (a typo swaps two of them)."""

from __future__ import annotations

import random
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from string import Formatter

import pytest

from servicecycle.simulation import text
from servicecycle.simulation.generate import generate
from servicecycle.simulation.plan import Note, Reply
from servicecycle.simulation.scenario import (
    KINDS,
    WORDINGS,
    Product,
    load_scenario,
    parse_scenario,
    scenarios_folder,
)
from servicecycle.simulation.text import Case, Catalogue, Slots, Writer

PRODUCTS = ("Oak dining chair", "Copper kettle", "Wool rug", "Velvet cushion")
SLOT_NAMES = {
    "product",
    "a_product",
    "order",
    "amount",
    "fee",
    "date",
    "soon",
    "days",
    "carrier",
    "code",
    "error",
    "last4",
    "tracking",
}
CUSTOMER, AGENT = "Ada Lovelace", "Ben Okafor"
TODAY = date(2026, 5, 4)


@dataclass
class Talk:
    """One simulated conversation, every part the desk can write."""

    slots: Slots
    subject: str
    body: str
    ask: str
    answer: str
    note: str
    wait: str
    solve: str
    reopen: str
    again: str
    follow_ask: str  # after the reopen: about what went wrong
    follow_answer: str
    follow_note: str


def _talk(writer: Writer, wording: str) -> Talk:
    slots = writer.slots(TODAY)
    subject, body = writer.ticket(wording, CUSTOMER, slots)
    q = writer.question(wording, slots)
    ask = writer.agent(wording, "ask", agent=AGENT, customer=CUSTOMER, question=q, slots=slots)
    answer = writer.customer(wording, "answer", customer=CUSTOMER, question=q, slots=slots)
    note = writer.note(wording, slots)
    wait = writer.agent(wording, "wait", agent=AGENT, customer=CUSTOMER, slots=slots)
    solve = writer.agent(wording, "solve", agent=AGENT, customer=CUSTOMER, slots=slots)
    reopen = writer.customer(wording, "reopen", customer=CUSTOMER, slots=slots)
    q = writer.question(wording, slots)
    follow_ask = writer.agent(
        wording, "ask", agent=AGENT, customer=CUSTOMER, question=q, slots=slots
    )
    follow_answer = writer.customer(wording, "answer", customer=CUSTOMER, question=q, slots=slots)
    follow_note = writer.note(wording, slots)
    again = writer.agent(wording, "solve", agent=AGENT, customer=CUSTOMER, slots=slots)
    return Talk(
        slots,
        subject,
        body,
        ask,
        answer,
        note,
        wait,
        solve,
        reopen,
        again,
        follow_ask,
        follow_answer,
        follow_note,
    )


class _Known(dict[str, str]):
    """The conversation's slot values; a slot it never used fills in as something no text has
    (filling must not draw new values)."""

    def __missing__(self, name: str) -> str:
        return "\x00" + name


def _fill(template: str, slots: Slots) -> str:
    return template.format_map(_Known(slots))


def _words(value: str) -> tuple[str, ...]:
    return tuple("".join(sorted(w)) for w in value.lower().split())


def _said(template: str, slots: Slots, message: str) -> bool:
    """The customer's ``message`` holds the filled template (typos and lower case allowed)."""
    part, words = _words(_fill(template, slots)), _words(message)
    return any(words[i : i + len(part)] == part for i in range(len(words) - len(part) + 1))


def _wrote(template: str, slots: Slots, message: str) -> bool:
    return _fill(template, slots).lower() in message.lower()


def _cases(cases: Iterable[Case], fits: Callable[[Case], bool]) -> set[int]:
    return {i for i, case in enumerate(cases) if fits(case)}


def _fitting_cases(wording: str, talk: Talk) -> set[int]:
    """The cases of ``wording`` every part of ``talk`` fits (asks with their own answers,
    solutions with their own reopens and second solutions)."""
    cases, s = text.CASES[wording], talk.slots
    return (
        _cases(cases, lambda c: any(_wrote(t, s, talk.subject) for t in c.subjects))
        & _cases(cases, lambda c: any(_said(t, s, talk.body) for t in c.problems))
        & _cases(
            cases,
            lambda c: any(
                _wrote(a.text, s, talk.ask) and any(_said(t, s, talk.answer) for t in a.answers)
                for a in c.asks
            ),
        )
        & _cases(cases, lambda c: any(_wrote(t, s, talk.note) for t in c.notes))
        & _cases(
            cases,
            lambda c: any(
                _wrote(f.text, s, talk.solve)
                and any(_said(t, s, talk.reopen) for t in f.reopens)
                and any(_wrote(t, s, talk.again) for t in f.again)
                for f in c.fixes
            ),
        )
    )


@pytest.mark.parametrize("wording", WORDINGS)
def test_every_part_of_a_conversation_comes_from_one_case(wording: str) -> None:
    writer = Writer(random.Random(2026), PRODUCTS)
    cases = text.CASES[wording]
    seen: Counter[int] = Counter()
    for _ in range(200):
        talk = _talk(writer, wording)
        fitting = _fitting_cases(wording, talk)
        assert fitting, talk
        assert talk.slots.case is not None and cases.index(talk.slots.case) in fitting
        seen[cases.index(talk.slots.case)] += 1
        # nothing from another case in the first message (no unrelated "Also: ..." problem)
        own = {t for i in fitting for t in (*cases[i].problems, *cases[i].details)}
        foreign = {t for c in cases for t in (*c.problems, *c.details)} - own
        assert not [t for t in foreign if _said(t, talk.slots, talk.body)], talk.body
        # a "we're on it" reply is the case's own or a generic one
        waits = {*cases[cases.index(talk.slots.case)].waits, *text._WAITS}
        assert any(_wrote(t, talk.slots, talk.wait) for t in waits), talk.wait
        # after the reopen: questions and notes about what went wrong
        after = text._REOPENED
        assert any(
            _wrote(a.text, talk.slots, talk.follow_ask)
            and any(_said(t, talk.slots, talk.follow_answer) for t in a.answers)
            for a in after.asks
        ), (talk.follow_ask, talk.follow_answer)
        assert any(_wrote(t, talk.slots, talk.follow_note) for t in after.notes)
    assert set(seen) == set(range(len(cases)))  # every case is used


def test_the_same_seed_gives_the_same_text() -> None:
    def run(seed: int) -> list[Talk]:
        writer = Writer(random.Random(seed), PRODUCTS)
        return [_talk(writer, wording) for wording in WORDINGS for _ in range(20)]

    def texts(talks: list[Talk]) -> list[tuple[str, ...]]:
        return [(t.subject, t.body, t.ask, t.answer, t.solve, t.reopen, t.again) for t in talks]

    assert texts(run(5)) == texts(run(5))
    assert texts(run(5)) != texts(run(6))


@pytest.mark.parametrize("wording", WORDINGS)
def test_the_wording_varies_within_a_topic(wording: str) -> None:
    writer = Writer(random.Random(7), PRODUCTS)
    talks = [_talk(writer, wording) for _ in range(200)]
    assert len({t.subject for t in talks}) >= 100
    assert len({t.body for t in talks}) >= 190
    assert len({t.solve for t in talks}) >= 100  # with the same customer and agent names
    problems = {p for c in text.CASES[wording] for p in c.problems}
    used = {p for p in problems for t in talks if _said(p, t.slots, t.body)}
    assert len(used) >= 0.8 * len(problems)


def test_every_case_has_every_part_and_known_slots_only() -> None:
    assert set(text.CASES) == set(WORDINGS)
    for wording, cases in text.CASES.items():
        assert len(cases) >= 2, wording
        for case in cases:
            assert case.subjects and case.problems and case.notes and case.asks and case.fixes
            assert all(a.answers for a in case.asks)
            assert all(f.reopens and f.again for f in case.fixes)
            templates = [
                *case.subjects,
                *case.problems,
                *case.details,
                *case.notes,
                *case.waits,
                *(t for a in case.asks for t in (a.text, *a.answers)),
                *(t for f in case.fixes for t in (f.text, *f.reopens, *f.again)),
            ]
            for template in templates:
                names = {name for _, name, _, _ in Formatter().parse(template) if name}
                assert names <= SLOT_NAMES, template


def test_dates_fall_around_the_day_of_the_conversation() -> None:
    writer = Writer(random.Random(1), PRODUCTS)
    before = {writer.slots(date(2026, 11, 20))["date"] for _ in range(100)}
    after = {writer.slots(date(2026, 11, 20))["soon"] for _ in range(100)}
    assert all(d.endswith(("October", "November")) for d in before), before
    assert all(d.endswith(("November", "December")) for d in after), after


def test_a_second_reopen_and_a_repeated_question_still_read_right() -> None:
    writer = Writer(random.Random(3), PRODUCTS)
    slots = writer.slots(TODAY)
    writer.ticket("invoice", CUSTOMER, slots)
    assert slots.case is not None
    asks = len(slots.case.asks)
    questions = [writer.question("invoice", slots) for _ in range(asks)]
    for q in questions:
        writer.agent("invoice", "ask", agent=AGENT, customer=CUSTOMER, question=q, slots=slots)
    assert sorted(questions) == list(range(asks))  # no question twice while others are left
    again = writer.agent("invoice", "ask", agent=AGENT, customer=CUSTOMER, slots=slots)
    assert "Just to double-check: " in again
    first = writer.customer("invoice", "answer", customer=CUSTOMER, slots=slots)
    second = writer.customer("invoice", "answer", customer=CUSTOMER, slots=slots)
    said = [a for a in slots.case.asks[0].answers if _said(a, slots, first)]
    assert said and _said(said[0], slots, second)  # asked twice, answered the same
    solves, reopens = [], []
    for _ in range(3):
        solves.append(writer.agent("invoice", "solve", agent=AGENT, customer=CUSTOMER, slots=slots))
        reopens.append(writer.customer("invoice", "reopen", customer=CUSTOMER, slots=slots))
    assert len(set(solves)) == 3
    assert any(_said(t, slots, reopens[1]) for t in text._STILL)


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{[a-z0-9]+\}", template)
    return re.compile(".+?".join(re.escape(p) for p in parts), re.IGNORECASE)


def test_the_generated_tickets_keep_to_one_case() -> None:
    """Through the desk: each ticket's subject, agent replies and notes fit one case of its
    topic's bank (the agent's texts have no typos, so templates match as patterns)."""
    data = tomllib.loads((scenarios_folder() / "online_shop.toml").read_text("utf-8"))
    data["business"]["months"] = 1
    data["arrivals"]["expected_tickets"] = 800
    data["planted"]["emerging"]["days"] = 7
    scenario = parse_scenario(data)
    wording = {t.name: t.wording for t in scenario.topics}
    plan = generate(scenario, seed=11, end=date(2026, 6, 1))
    assert len(plan.tickets) > 300
    after = text._REOPENED
    patterns = {
        name: [
            (
                [_pattern(t) for t in c.subjects],
                [_pattern(t) for t in (*c.notes, *text._CHASES, *after.notes)],
                [_pattern(a.text) for a in (*c.asks, *after.asks)]
                + [_pattern(t) for t in (*c.waits, *after.waits, *text._WAITS, *text._LAST)]
                + [_pattern(t) for f in c.fixes for t in (f.text, *f.again)],
            )
            for c in cases
        ]
        for name, cases in text.CASES.items()
    }
    for ticket in plan.tickets:
        notes = [s.body for s in ticket.steps if isinstance(s, Note)]
        replies = [s.body for s in ticket.steps if isinstance(s, Reply) and s.by == "agent"]
        fitting = [
            i
            for i, (subjects, note_patterns, reply_patterns) in enumerate(
                patterns[wording[ticket.topic]]
            )
            if any(p.search(ticket.subject) for p in subjects)
            and all(any(p.search(n) for p in note_patterns) for n in notes)
            and all(any(p.search(r) for p in reply_patterns) for r in replies)
        ]
        assert fitting, (ticket.subject, notes, replies)


def test_every_scenario_writes_with_known_banks() -> None:
    for path in sorted(scenarios_folder().glob("*.toml")):
        for topic in load_scenario(path).topics:
            assert topic.wording in text.CASES, (path.name, topic.name)


def _shipped() -> dict[str, list[Product]]:
    return {
        path.name: load_scenario(path).business.products
        for path in sorted(scenarios_folder().glob("*.toml"))
    }


def _kinds(products: Iterable[Product]) -> dict[str, frozenset[str] | None]:
    return {p.name: None if p.kinds is None else frozenset(p.kinds) for p in products}


def test_the_cases_need_known_kinds_and_the_shipped_products_have_each() -> None:
    needs = {case.needs for cases in text.CASES.values() for case in cases} - {frozenset()}
    assert needs and all(need <= set(KINDS) for need in needs)
    for name, products in _shipped().items():
        kinds = _kinds(products)
        for need in needs:  # never the fall-back to any product
            assert [p for p, k in kinds.items() if k and k & need], (name, need)


@pytest.mark.parametrize("wording", WORDINGS)
def test_each_conversation_is_about_a_product_that_fits_its_case(wording: str) -> None:
    products = load_scenario(scenarios_folder() / "online_shop.toml").business.products
    kinds = _kinds(products)
    writer = Writer(random.Random(31), products)
    used: dict[int, set[str]] = {}
    for _ in range(400):
        talk = _talk(writer, wording)
        case = talk.slots.case
        assert case is not None
        if "product" in talk.slots:
            product = talk.slots["product"]
            known = kinds[product]
            assert not case.needs or (known is not None and known & case.needs), (
                product,
                case.needs,
                talk.subject,
            )
            used.setdefault(text.CASES[wording].index(case), set()).add(product)
    for i, case in enumerate(text.CASES[wording]):
        if i in used and case.needs:  # every fitting product turns up, not just one
            fitting = {p for p, k in kinds.items() if k is not None and k & case.needs}
            assert used[i] == fitting, (wording, i)


def test_plain_names_fit_every_case_and_no_fit_falls_back_to_any_product() -> None:
    assembly = frozenset({"assembly"})
    assert Catalogue(PRODUCTS).fitting(assembly) == PRODUCTS
    mixed = Catalogue(
        [
            "Gift box",
            Product(name="Oak dining chair", kinds=["furniture", "assembly"]),
            Product(name="Wool rug", kinds=["textile"]),
            Product(name="Gift card", kinds=[]),
            Product(name="Copper kettle"),
        ]
    )
    assert mixed.fitting(assembly) == ("Gift box", "Oak dining chair", "Copper kettle")
    assert mixed.fitting(frozenset({"textile", "kitchen"})) == (
        "Gift box",
        "Wool rug",
        "Copper kettle",
    )
    assert mixed.fitting(frozenset()) == mixed.names  # a case that needs nothing: any
    soft = Catalogue([Product(name=n, kinds=["textile"]) for n in ("Wool rug", "Merino throw")])
    assert soft.fitting(assembly) == ("Wool rug", "Merino throw")  # none fits: any product
    # through a conversation: missing parts for a plain-named product is allowed
    writer = Writer(random.Random(5), PRODUCTS)
    missing = next(c for c in text.CASES["damaged"] if "assembly" in c.needs)
    seen = set()
    for _ in range(100):
        slots = writer.slots(TODAY)
        slots.case = missing
        writer.ticket("damaged", CUSTOMER, slots)
        seen.add(slots["product"])
    assert seen == set(PRODUCTS)


def _naming(template: str, names: Iterable[str]) -> re.Pattern[str]:
    """``template`` as a pattern whose group ``p`` is the product it names."""
    out = ""
    for part in re.split(r"(\{[a-z0-9_]+\})", template):
        if part == "{product}":
            out += "(?P<p>" + "|".join(re.escape(n) for n in names) + ")"
        else:
            out += ".+?" if part.startswith("{") else re.escape(part)
    return re.compile(out, re.IGNORECASE)


def test_the_generated_tickets_name_products_that_fit_their_case() -> None:
    """Through generate(): a subject that names a product names one its case fits."""
    data = tomllib.loads((scenarios_folder() / "online_shop.toml").read_text("utf-8"))
    data["business"]["months"] = 1
    data["arrivals"]["expected_tickets"] = 1500
    data["planted"]["emerging"]["days"] = 7
    scenario = parse_scenario(data)
    kinds = {n.lower(): k for n, k in _kinds(scenario.business.products).items()}
    wording = {t.name: t.wording for t in scenario.topics}
    subjects = {
        name: [
            (_naming(t, kinds), case.needs)
            for case in cases
            for t in case.subjects
            if t.count("{product}") == 1
        ]
        for name, cases in text.CASES.items()
    }
    plan = generate(scenario, seed=12, end=date(2026, 6, 1))
    checked: Counter[str] = Counter()
    for ticket in plan.tickets:
        found = [
            (m.group("p").lower(), needs)
            for pattern, needs in subjects[wording[ticket.topic]]
            if (m := pattern.search(ticket.subject)) is not None
        ]
        if found:
            assert any(not n or (kinds[p] or set()) & n for p, n in found), (ticket.subject, found)
            checked[wording[ticket.topic]] += 1
    assert checked["damaged"] > 10 and checked["product"] > 10, checked


def test_a_subject_reads_as_its_channel_writes_it() -> None:
    """A mail client's "Re:" or "Fwd:" only on e-mail; on a phone or chat ticket the agent
    writes the subject: no "Help:" or "!!", not lower-cased."""
    prefixes = ("re:", "fwd:", "help:", "urgent:", "question:")
    suffixes = ("!", "??", " (again)", " - help")  # (a case's own subject may end "please")
    seen: dict[str, list[str]] = {}
    for channel in ("email", "web", "phone", "chat"):
        writer = Writer(random.Random(7), PRODUCTS)
        seen[channel] = [
            writer.ticket(wording, "Ada Lovelace", channel=channel)[0]
            for wording in WORDINGS
            for _ in range(60)
        ]
    assert any(s.lower().startswith(("re:", "fwd:")) for s in seen["email"])
    assert not any(s.lower().startswith(("re:", "fwd:")) for s in seen["web"])
    assert any(s.lower().startswith("help:") or s == s.lower() for s in seen["web"])
    for subject in seen["phone"] + seen["chat"]:
        assert not subject.lower().startswith(prefixes), subject
        assert not subject.endswith(suffixes), subject
        assert subject[0] == subject[0].upper(), subject
