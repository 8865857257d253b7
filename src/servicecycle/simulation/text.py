"""Varied wording for simulated tickets: phrase banks per kind of topic, combined and filled
with products, order numbers, amounts and dates, with the odd typo. Deterministic given the
random generator. Pure.

A bank's parts: ``subjects`` and ``problems`` (the customer's first message), ``asks`` (the
agent asks for something), ``answers`` (the customer's answer to the ask in the same place),
``waits`` (an internal note:
waiting on someone), ``solves`` (the agent's solution), ``reopens`` (the customer: still not
right). Slots: {product} {order} {amount} {date} {days} {carrier} {code} {last4}.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

Bank = dict[str, tuple[str, ...]]

BANKS: dict[str, Bank] = {
    "delivery": {
        "subjects": (
            "Where is my order {order}?",
            "Order {order} not arrived",
            "Still waiting for my {product}",
            "Delivery status {order}",
            "Parcel not delivered",
            "Tracking hasn't updated since {date}",
            "{product} - when will it arrive?",
            "late delivery",
            "Order {order}: marked delivered but nothing here",
        ),
        "problems": (
            "I ordered a {product} on {date} and it still hasn't arrived.",
            "My order {order} was supposed to arrive {days} days ago.",
            "The tracking for {order} has said 'in transit' since {date}.",
            "{carrier} says my parcel was delivered but there is nothing at my door.",
            "I paid for express delivery of the {product} and it is now {days} days late.",
            "Can you tell me where order {order} is? The link in the email doesn't work.",
        ),
        "asks": (
            "Could you confirm the delivery address on the order, including the postcode?",
            "Could you check with your neighbours and look around the building once more?",
            "Can you confirm the name on the doorbell so I can pass it to {carrier}?",
        ),
        "answers": (
            "The address is correct, I checked it twice.",
            "Neighbours have nothing. Nothing in the bin store either.",
            "Yes that's the right address, flat number included.",
        ),
        "waits": (
            "Opened a trace with {carrier} for {order}; they answer within 1-2 working days.",
            "Asked {carrier} for the driver's GPS scan of {order}.",
            "Carrier investigation requested for {order}.",
        ),
        "solves": (
            "{carrier} found your parcel at their depot; it will be with you tomorrow.",
            "The parcel was lost in transit, so a replacement {product} is on its way, free.",
            "Your order {order} is on the van today; you'll get a text with a time slot.",
            "I've refunded the express delivery charge of {amount} for the delay.",
        ),
        "reopens": (
            "Still nothing arrived, and the new tracking number doesn't work either.",
            "The time slot came and went and no driver came.",
        ),
    },
    "returns": {
        "subjects": (
            "Return for order {order}",
            "How do I return the {product}?",
            "Exchange {product} for another size",
            "Returns label not working",
            "return request",
            "Sent back the {product} on {date}",
            "Can I swap my {product}?",
        ),
        "problems": (
            "I would like to return the {product} from order {order}.",
            "The {product} doesn't suit our room; how do I send it back?",
            "I sent the {product} back on {date} but haven't heard anything.",
            "The returns label in my account gives an error when I print it.",
            "I'd like to exchange the {product} for a different colour.",
        ),
        "asks": (
            "Could you tell me which item(s) you'd like to return and the reason?",
            "Do you still have the original packaging? It helps us arrange the collection.",
            "Could you send me the tracking number of the return parcel?",
        ),
        "answers": (
            "Just the {product}. It's unused and in the box.",
            "Here's the tracking number: {order}-R. Sent it at the post office.",
            "Yes, original box, never opened.",
        ),
        "waits": (
            "Waiting for the warehouse to confirm the return of {order} was received.",
            "Asked the warehouse to check the returns shelf for {order}.",
        ),
        "solves": (
            "I've emailed you a new prepaid returns label for the {product}.",
            "Your return has arrived and I've started the exchange; the new {product} ships today.",
            "The warehouse received your return; your refund of {amount} is on its way.",
            "I've booked a collection for {date}; the courier brings the label.",
        ),
        "reopens": (
            "The new label has the same error as before.",
            "The courier never came for the collection.",
        ),
    },
    "refund": {
        "subjects": (
            "Refund not received",
            "Where is my refund for {order}?",
            "Refund of {amount}",
            "Still waiting for refund",
            "refund for returned {product}",
            "Partial refund wrong amount",
        ),
        "problems": (
            "I returned the {product} weeks ago and still haven't had my refund of {amount}.",
            "You confirmed my refund on {date} but nothing has reached my card.",
            "I was refunded the wrong amount for order {order}: I expected {amount}.",
            "When will I get my money back for the cancelled order {order}?",
        ),
        "asks": (
            "Could you check your statement for a credit from Northwind around {date}?",
            "Could you confirm the last four digits of the card you paid with?",
        ),
        "answers": (
            "Card ending {last4}. Nothing on the statement.",
            "Checked again this morning, no credit from you.",
        ),
        "waits": (
            "Asked finance to confirm the refund batch for {order}; waiting on the provider.",
            "Refund of {amount} stuck at the provider; ticket raised with them.",
            "Waiting for finance sign-off on the refund of {amount}.",
        ),
        "solves": (
            "The refund of {amount} was sent today; banks take 3-5 working days to show it.",
            "I've corrected the refund and sent the missing {amount}.",
            "Finance confirmed the refund went to your card ending {last4} on {date}.",
        ),
        "reopens": (
            "It's been over a week and the refund still isn't there.",
            "The amount that arrived is still {amount} short.",
        ),
    },
    "payment": {
        "subjects": (
            "Payment failed",
            "Charged twice for {order}",
            "Card declined at checkout",
            "Double payment",
            "Payment taken but no order confirmation",
            "Klarna / instalments question",
        ),
        "problems": (
            "I was charged twice for order {order}, {amount} each time.",
            "My card keeps getting declined, but the bank says it's fine.",
            "The payment of {amount} left my account but I never got a confirmation.",
            "Can I change the payment method on order {order}?",
        ),
        "asks": (
            "Could you send a screenshot of the two payments, with the dates?",
            "Could you tell me which card or wallet you used?",
        ),
        "answers": (
            "Screenshot attached: two payments of {amount} on {date}.",
            "It was Apple Pay, card ending {last4}.",
        ),
        "waits": (
            "Asked the payment provider to investigate the duplicate charge on {order}.",
            "Waiting on the provider's authorisation log for {order}.",
        ),
        "solves": (
            "One of the two payments was only a hold; it drops off within 5 days.",
            "I've refunded the duplicate payment of {amount}.",
            "The payment went through; I've resent your order confirmation for {order}.",
        ),
        "reopens": (
            "The hold is still there after a week.",
            "I've been charged a third time now.",
        ),
    },
    "invoice": {
        "subjects": (
            "Invoice for order {order}",
            "VAT invoice needed",
            "Company name on invoice",
            "Receipt for {product}",
            "invoice copy please",
        ),
        "problems": (
            "Could you send me a VAT invoice for order {order}?",
            "The invoice for {order} needs our company name and address on it.",
            "I need a receipt for the {product} for my expenses.",
            "The invoice total says {amount} but I paid less with a discount.",
        ),
        "asks": ("Which company name and VAT number should the invoice show?",),
        "answers": ("Please use our registered name, VAT number to follow from accounts.",),
        "waits": ("Asked finance to reissue the invoice for {order}.",),
        "solves": (
            "Here is your VAT invoice for {order}; it's also in your account.",
            "I've reissued the invoice with your company details.",
            "The corrected invoice shows the discount and a total of {amount}.",
        ),
        "reopens": ("The VAT number is still missing on the new invoice.",),
    },
    "account": {
        "subjects": (
            "Can't log in",
            "Password reset email not arriving",
            "Change my email address",
            "Delete my account",
            "account locked",
            "Two accounts, please merge",
        ),
        "problems": (
            "I can't log in to my account; it says my password is wrong.",
            "I asked for a password reset three times and no email came.",
            "Please change the email address on my account.",
            "I'd like my account and data deleted.",
            "I have two accounts by mistake and my orders are split between them.",
        ),
        "asks": (
            "Could you confirm the email address you signed up with and your postcode?",
            "For security, could you confirm the last order number on the account?",
        ),
        "answers": (
            "Same email as this one. Last order was {order}.",
            "Postcode is on the order {order}.",
        ),
        "waits": ("Asked the web team to unlock the account manually.",),
        "solves": (
            "I've unlocked your account and sent a fresh reset link (check spam too).",
            "Your email address is changed; please log in with the new one.",
            "Your accounts are merged; all your orders are in one place now.",
            "Your account and data are deleted, as you asked.",
        ),
        "reopens": ("The reset link says it has expired.",),
    },
    "product": {
        "subjects": (
            "Question about the {product}",
            "{product} dimensions?",
            "Is the {product} back in stock?",
            "Care instructions {product}",
            "question",
            "{product} - material?",
        ),
        "problems": (
            "What are the exact dimensions of the {product}?",
            "Will the {product} be back in stock before {date}?",
            "How should I clean the {product}?",
            "Is the {product} suitable for outdoor use?",
            "Does the {product} come assembled?",
        ),
        "asks": ("Which colour or size of the {product} do you mean?",),
        "answers": ("The natural one, the larger size.",),
        "waits": ("Asked the buying team about the restock date of the {product}.",),
        "solves": (
            "The {product} is 45 x 30 x 60 cm; the full spec is on the product page.",
            "The {product} is due back in stock on {date}; I've added you to the alert.",
            "Wipe it with a damp cloth; no harsh cleaners. Care card attached.",
            "It comes flat-packed with the tools; assembly takes about 20 minutes.",
        ),
        "reopens": ("The restock date has passed and it's still not available.",),
    },
    "damaged": {
        "subjects": (
            "Damaged {product}",
            "Item arrived broken",
            "{product} faulty",
            "Broken on arrival - order {order}",
            "Missing parts for {product}",
            "DAMAGED ITEM",
        ),
        "problems": (
            "The {product} arrived broken; the box was crushed.",
            "My {product} stopped working after {days} days.",
            "The {product} from order {order} has a big scratch across the top.",
            "Parts are missing from the {product}, so I can't assemble it.",
            "The {product} was cracked when I unpacked it.",
        ),
        "asks": (
            "I'm sorry about this. Could you send photos of the damage and of the box?",
            "Could you tell me which parts are missing (the letters in the manual)?",
        ),
        "answers": (
            "Photos attached. The box was wet and torn on one corner.",
            "Parts C and F are missing.",
        ),
        "waits": (
            "Claim opened with {carrier} for transit damage on {order}.",
            "Asked the warehouse to pick replacement parts for the {product}.",
        ),
        "solves": (
            "A replacement {product} ships today; no need to send the broken one back.",
            "I've refunded {amount} in full for the damaged {product}.",
            "The missing parts are on their way by first-class post.",
        ),
        "reopens": (
            "The replacement arrived damaged too.",
            "The parts you sent are the wrong ones.",
        ),
    },
    "order_change": {
        "subjects": (
            "Cancel order {order}",
            "Change delivery address",
            "Add item to my order",
            "Change my order {order}",
            "wrong size ordered",
        ),
        "problems": (
            "Please cancel order {order}, I ordered by mistake.",
            "Can I change the delivery address for order {order}?",
            "I ordered the wrong size of the {product}; can you change it before it ships?",
            "Could you add a {product} to my order {order}?",
        ),
        "asks": ("What is the new address, with the postcode?",),
        "answers": ("New address is in the form I filled in; same postcode.",),
        "waits": ("Asked the warehouse to hold {order} before dispatch.",),
        "solves": (
            "Order {order} is cancelled and the {amount} refunded.",
            "The delivery address is updated on {order}.",
            "Done: the {product} is changed before dispatch.",
            "It had already shipped, so I've set up a free return instead.",
        ),
        "reopens": ("I got a dispatch email for the order you cancelled.",),
    },
    "promo_code": {
        "subjects": (
            "Discount code not working",
            "Code {code} invalid",
            "Promo code didn't apply",
            "Forgot to use my discount code",
        ),
        "problems": (
            "The code {code} says it's invalid at checkout.",
            "I forgot to enter {code} on order {order}; can you apply it?",
            "The newsletter code {code} didn't take off the discount.",
        ),
        "asks": ("Could you send a screenshot of the message at checkout?",),
        "answers": ("Screenshot attached, it says 'code not valid for this basket'.",),
        "waits": ("Asked marketing whether {code} is still active.",),
        "solves": (
            "I've refunded the discount of {amount} to your card.",
            "The code {code} doesn't apply to sale items; here's a new one instead.",
        ),
        "reopens": ("The new code doesn't work either.",),
    },
    "website": {
        "subjects": (
            "Checkout error",
            "Can't complete payment on the website",
            "Error at checkout - order not placed",
            "checkout keeps failing",
            "Website error {code}",
            "Basket emptied at checkout",
            "Payment page spins forever",
        ),
        "problems": (
            "When I click 'Pay now' I get an error and the order isn't placed.",
            "Checkout shows 'Something went wrong (error {code})' every time.",
            "My basket empties itself when I go to the payment page.",
            "The payment page just spins; I tried two browsers.",
            "I got an error at checkout but was I charged {amount}?",
        ),
        "asks": (
            "Which browser and device are you using, and roughly what time did it happen?",
            "Could you send a screenshot of the error?",
        ),
        "answers": (
            "Chrome on my phone, around lunchtime on {date}.",
            "Screenshot attached, error {code}.",
        ),
        "waits": (
            "Passed to the web team with the error {code} and the time.",
            "Web team investigating the checkout error; linked to the incident.",
        ),
        "solves": (
            "The web team fixed a checkout bug today; please try again.",
            "I've placed the order for you by phone; no charge was taken earlier.",
            "The failed attempt was not charged; the hold of {amount} drops off shortly.",
        ),
        "reopens": ("Same error again this morning.",),
    },
    "general": {
        "subjects": (
            "Question",
            "Hello",
            "Feedback",
            "A question about my order {order}",
            "help please",
        ),
        "problems": (
            "I have a question about order {order}.",
            "Could someone call me back about my {product}?",
            "Just some feedback about the {product}.",
        ),
        "asks": ("Could you tell me a bit more about what you need?",),
        "answers": ("It's about the {product} I ordered on {date}.",),
        "waits": ("Checking with a colleague.",),
        "solves": ("Thanks for getting in touch; I've answered everything on {order} above.",),
        "reopens": ("That doesn't answer my question.",),
    },
}

_GREETINGS = ("Hi,", "Hello,", "Hi there,", "Good morning,", "Dear Northwind team,", "", "hey", "")
_OPENINGS = (
    "",
    "",
    "Hope you can help.",
    "I'm writing about an order.",
    "Sorry to bother you again.",
    "I need some help please.",
    "This is the second time I'm asking.",
)
_CLOSINGS = (
    "",
    "Thanks.",
    "Thanks in advance.",
    "Please let me know asap.",
    "Many thanks,",
    "Looking forward to hearing from you.",
    "Cheers",
)
_SUBJECT_BEFORE = ("", "", "", "", "", "Re: ", "Help: ", "Urgent: ", "Fwd: ", "Question: ")
_SUBJECT_AFTER = ("", "", "", "", "", "!", "??", " please", " (again)", " - help")
_AGENT_HELLO = ("Hi {customer},", "Hello {customer},", "Hi {customer}, thanks for writing in.")
_AGENT_BYE = ("Best wishes,\n{agent}", "Kind regards,\n{agent}", "Thanks,\n{agent}", "{agent}")
_AGENT_THANKS = ("Thanks for your patience.", "Thanks for the details.", "", "")
_CARRIERS = ("DPD", "Royal Mail", "Evri", "DHL", "UPS")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_COMMENTS = {
    "bad": (
        "Took far too long.",
        "Nobody actually read my message.",
        "Still not sorted properly.",
        "I had to chase you three times.",
        "Very disappointed.",
        "The item was broken and the process was a pain.",
        "Answers were copy-paste.",
        "",
    ),
    "neutral": (
        "OK in the end.",
        "Fine, but slow.",
        "Solved, eventually.",
        "Could have been quicker.",
        "",
    ),
    "good": (
        "Quick and friendly, thanks!",
        "Great help.",
        "Sorted in no time.",
        "Very helpful, thank you.",
        "Excellent service as always.",
        "Thanks {agent}!",
        "",
    ),
}


def _pick(rng: random.Random, options: Sequence[str]) -> str:
    return options[int(rng.random() * len(options))]


def _below(rng: random.Random, low: int, high: int) -> int:
    return low + int(rng.random() * (high - low))


_SLOTS: dict[str, Callable[[random.Random, Sequence[str]], str]] = {
    "product": lambda rng, products: _pick(rng, products),
    "order": lambda rng, _: f"#NW-{_below(rng, 100000, 999999)}",
    "amount": lambda rng, _: f"£{_below(rng, 8, 400)}.{_pick(rng, ('00', '50', '99', '95'))}",
    "date": lambda rng, _: f"{_below(rng, 1, 29)} {_pick(rng, _MONTHS)}",
    "days": lambda rng, _: str(_below(rng, 2, 15)),
    "carrier": lambda rng, _: _pick(rng, _CARRIERS),
    "code": lambda rng, _: (
        _pick(rng, ("SPRING", "WELCOME", "NW", "SAVE")) + str(_below(rng, 10, 99))
    ),
    "last4": lambda rng, _: str(_below(rng, 1000, 9999)),
}


class Slots(dict[str, str]):
    """Slot values made on first use, then the same for the whole conversation (one
    ticket keeps its product, order number and carrier)."""

    def __init__(self, rng: random.Random, products: Sequence[str]) -> None:
        super().__init__()
        self.rng, self.products = rng, products

    def __missing__(self, name: str) -> str:
        value = self[name] = _SLOTS[name](self.rng, self.products)
        return value


def _typo(rng: random.Random, text: str) -> str:
    """Swap two letters of one word, the way fast typing does."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
    if not candidates:
        return text
    i = candidates[int(rng.random() * len(candidates))]
    word = words[i]
    j = _below(rng, 1, len(word) - 2)
    words[i] = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
    return " ".join(words)


def _casual(rng: random.Random, text: str) -> str:
    if rng.random() < 0.12:
        text = _typo(rng, text)
    if rng.random() < 0.06:
        text = text.lower()
    return text


def _join(*parts: str) -> str:
    return "\n\n".join([p for p in parts if p])


class Writer:
    """Writes the messages of one business, drawing from ``rng`` (deterministic)."""

    def __init__(self, rng: random.Random, products: Sequence[str]) -> None:
        self.rng = rng
        self.products = tuple(products)

    def slots(self) -> Slots:
        """The slot values of a new conversation."""
        return Slots(self.rng, self.products)

    def _fill(self, template: str, slots: Slots | None) -> str:
        return template.format_map(slots if slots is not None else self.slots())

    def ticket(self, wording: str, customer: str, slots: Slots | None = None) -> tuple[str, str]:
        """The subject and first message of a new ticket, signed by ``customer``."""
        rng, bank = self.rng, BANKS[wording]
        slots = slots if slots is not None else self.slots()
        subject = _pick(rng, bank["subjects"]).format_map(slots)
        problems = bank["problems"]
        first = _pick(rng, problems).format_map(slots)
        second = ""
        if rng.random() < 0.35:
            second = _pick(rng, problems).format_map(slots)
            second = "" if second == first else "Also: " + second[0].lower() + second[1:]
        name = customer.split(" ")[0] if rng.random() < 0.7 else customer
        body = _join(
            _pick(rng, _GREETINGS),
            " ".join(p for p in (_pick(rng, _OPENINGS), first, second) if p),
            _pick(rng, _CLOSINGS),
            name,
        )
        subject = _pick(rng, _SUBJECT_BEFORE) + subject + _pick(rng, _SUBJECT_AFTER)
        if rng.random() < 0.1:
            subject = subject.lower()
        return subject[:200], _casual(rng, body)

    def question(self, wording: str) -> int:
        """Which of the bank's questions the agent asks (its answer has the same place)."""
        return int(self.rng.random() * len(BANKS[wording]["asks"]))

    def agent(
        self,
        wording: str,
        stage: str,
        *,
        agent: str,
        customer: str,
        question: int = 0,
        slots: Slots | None = None,
    ) -> str:
        """An agent's public reply: ``stage`` is "ask" (asks ``question``), "wait" (we are on
        it) or "solve"."""
        rng, bank = self.rng, BANKS[wording]
        if stage == "ask":
            middle = self._fill(bank["asks"][question], slots)
        elif stage == "wait":
            middle = _pick(
                rng,
                (
                    "I've passed this to the right team and will update you as soon as I hear.",
                    "We're checking this with our partner; I'll come back to you.",
                    "I'm looking into this with a colleague and will get back to you shortly.",
                ),
            )
        else:
            middle = self._fill(_pick(rng, bank["solves"]), slots)
        return _join(
            _pick(rng, _AGENT_HELLO).format(customer=customer.split(" ")[0]),
            " ".join(p for p in (_pick(rng, _AGENT_THANKS), middle) if p),
            _pick(rng, _AGENT_BYE).format(agent=agent.split(" ")[0]),
        )

    def note(self, wording: str, slots: Slots | None = None) -> str:
        """An internal note: what the ticket is waiting on."""
        return self._fill(_pick(self.rng, BANKS[wording]["waits"]), slots)

    def customer(
        self,
        wording: str,
        stage: str,
        *,
        customer: str,
        question: int = 0,
        slots: Slots | None = None,
    ) -> str:
        """The customer's reply: ``stage`` "answer" (to ``question``) or "reopen"."""
        rng, bank = self.rng, BANKS[wording]
        if stage == "answer":
            text = self._fill(bank["answers"][question], slots)
        else:
            text = self._fill(_pick(rng, bank["reopens"]), slots)
        lead = _pick(rng, ("", "", "Hi,", "Hello again,", "Thanks for getting back to me."))
        return _casual(rng, _join(lead, text, customer.split(" ")[0]))

    def comment(self, kind: str, score: int, *, agent: str) -> str:
        """A survey comment that fits the score (0..10 NPS, 1..5 CSAT, 1..7 CES)."""
        if kind == "nps":
            mood = "bad" if score <= 6 else "neutral" if score <= 8 else "good"
        elif kind == "csat":
            mood = "bad" if score <= 2 else "neutral" if score == 3 else "good"
        else:
            mood = "bad" if score <= 3 else "neutral" if score <= 5 else "good"
        text = _pick(self.rng, _COMMENTS[mood]).format(agent=agent.split(" ")[0])
        return _casual(self.rng, text)
