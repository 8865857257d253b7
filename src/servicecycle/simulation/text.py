"""Varied wording for simulated tickets: per kind of topic (a ``wording``), a bank of cases,
each one customer problem told in several ways, filled with products, order numbers, amounts
and dates, with the odd typo. Deterministic given the random generator. Pure.

A conversation (one ticket) picks its case once, so everything in it belongs to the same
problem. A case's parts: ``subjects`` and ``problems`` (phrasings of the customer's first
message), ``details`` (optional extra sentences that fit it), ``asks`` (what the agent may ask,
each with the customer's possible answers), ``notes`` (internal notes: waiting on someone),
``waits`` (public "we're on it" lines that fit; a generic one otherwise) and ``fixes`` (the
agent's solutions, each with the reopen lines that fit it and the agent's answers to those).
Slots: {product} {a_product} (with "a" or "an") {order} {amount} {fee} {date} (a few days
before the ticket) {soon} (a few days after) {days} {carrier} {code} {error} {last4}
{tracking}. A case about one kind of product (flat-packed furniture, a textile's sizes, ...)
says so in ``needs``: its {product} is one of the business's products of those kinds (any
product when none is)."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from servicecycle.simulation.scenario import Product


@dataclass(frozen=True, slots=True)
class Ask:
    """Something the agent asks, and the customer's possible answers to it."""

    text: str
    answers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Fix:
    """A solution, the customer's reopen lines that fit it (it did not work) and the agent's
    solutions after such a reopen."""

    text: str
    reopens: tuple[str, ...]
    again: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Case:
    """One customer problem with every part of its conversation (see the module's docstring)."""

    subjects: tuple[str, ...]
    problems: tuple[str, ...]
    details: tuple[str, ...]
    asks: tuple[Ask, ...]
    notes: tuple[str, ...]
    waits: tuple[str, ...]
    fixes: tuple[Fix, ...]
    needs: frozenset[str] = frozenset()  # kinds of product it fits, one of them (none: any)


def _case(
    *,
    subjects: tuple[str, ...],
    problems: tuple[str, ...],
    details: tuple[str, ...],
    asks: Mapping[str, tuple[str, ...]],
    notes: tuple[str, ...],
    waits: tuple[str, ...],
    fixes: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]],
    needs: tuple[str, ...] = (),
) -> Case:
    return Case(
        subjects=subjects,
        problems=problems,
        details=details,
        asks=tuple(Ask(text, answers) for text, answers in asks.items()),
        notes=notes,
        waits=waits,
        fixes=tuple(Fix(text, reopens, again) for text, (reopens, again) in fixes.items()),
        needs=frozenset(needs),
    )


CASES: dict[str, tuple[Case, ...]] = {
    "delivery": (
        _case(  # not arrived yet
            subjects=(
                "Where is my order {order}?",
                "Order {order} not arrived",
                "Still waiting for my {product}",
                "{product} - when will it arrive?",
                "late delivery",
            ),
            problems=(
                "I ordered {a_product} on {date} and it still hasn't arrived.",
                "My order {order} was supposed to arrive {days} days ago and there's no sign of "
                "it.",
                "Can you tell me where my {product} is? I ordered it on {date}.",
            ),
            details=(
                "The order number is {order}.",
                "The confirmation email said 3-5 working days.",
                "It's a birthday present, so I need it soon.",
                "The link in the dispatch email doesn't work.",
            ),
            asks={
                "Could you confirm the delivery address on the order, including the postcode?": (
                    "The address is correct, I checked it twice.",
                    "Yes that's the right address, flat number included.",
                ),
                "Have you had a card through the door or a text from {carrier}?": (
                    "No card, no text, nothing.",
                    "I had one text from {carrier} on {date} and nothing since.",
                ),
            },
            notes=(
                "Opened a trace with {carrier} for {order}; they answer within 1-2 working days.",
                "Asked the warehouse whether {order} actually left on time.",
            ),
            waits=(
                "I've asked {carrier} where your parcel is and will update you as soon as they "
                "reply.",
                "I'm checking with our warehouse and {carrier} and will come back to you shortly.",
            ),
            fixes={
                "Your order {order} is on the van today; {carrier} will text you a time slot.": (
                    ("The time slot came and went and no driver came.", "No text, no parcel."),
                    (
                        "{carrier} has rebooked the delivery for {soon}, first drop of the day.",
                        "The driver couldn't get access; {carrier} will bring it on {soon} "
                        "instead.",
                    ),
                ),
                "{carrier} found your parcel at their depot; it will be with you tomorrow.": (
                    ("It didn't come yesterday either.",),
                    ("I've sent a replacement {product} by next-day delivery, free of charge.",),
                ),
                "The parcel was lost in transit, so a replacement {product} is on its way, free.": (
                    ("The replacement hasn't arrived either.",),
                    (
                        "The replacement is at the local {carrier} depot and out for delivery "
                        "tomorrow.",
                    ),
                ),
            },
        ),
        _case(  # marked delivered, not here
            subjects=(
                "Order {order}: marked delivered but nothing here",
                "Parcel says delivered - it isn't",
                "{carrier} says delivered, I have nothing",
                "Missing parcel {order}",
            ),
            problems=(
                "{carrier} says my parcel was delivered but there is nothing at my door.",
                "The tracking for {order} says delivered on {date}, but I never got it.",
                "According to {carrier} my {product} was delivered yesterday. It wasn't.",
            ),
            details=(
                "I was at home all day.",
                "There's no photo of the delivery on the tracking page.",
                "No card through the door either.",
                "I've already asked next door.",
            ),
            asks={
                "Could you check with your neighbours and look around the building once more?": (
                    "Neighbours have nothing. Nothing in the bin store either.",
                    "Asked next door and across the road, nobody took it in.",
                ),
                "Can you confirm the name on the doorbell so I can pass it to {carrier}?": (
                    "It's the same name as on the order, flat 2.",
                    "The name on the bell is the one on my account.",
                ),
            },
            notes=(
                "Asked {carrier} for the driver's GPS scan of {order}.",
                "Opened a trace with {carrier} for {order}; they answer within 1-2 working days.",
            ),
            waits=(
                "I've asked {carrier} where exactly the driver left your parcel; I'll let you know "
                "what they say.",
            ),
            fixes={
                "{carrier} says the driver left it with a neighbour at number 12; they'll collect "
                "it and bring it to you tomorrow.": (
                    ("Nobody brought it, and number 12 says they never had it.",),
                    (
                        "{carrier} couldn't find it, so a replacement {product} is on its way, "
                        "free.",
                    ),
                ),
                "The GPS scan shows the wrong street, so I've sent a replacement {product}; it "
                "arrives in 1-2 days.": (
                    ("The replacement hasn't come.", "Tracking for the replacement hasn't moved."),
                    (
                        "The replacement is out for delivery today; I've asked {carrier} to call "
                        "you first.",
                    ),
                ),
                "{carrier} couldn't find the parcel, so I've refunded {amount} in full.": (
                    ("I can't see the refund on my card.",),
                    (
                        "The refund of {amount} was sent on {date}; it can take 3-5 working days "
                        "to show.",
                    ),
                ),
            },
        ),
        _case(  # tracking stuck
            subjects=(
                "Tracking hasn't updated since {date}",
                "Delivery status {order}",
                "Tracking stuck on 'in transit'",
                "Is my parcel lost?",
            ),
            problems=(
                "The tracking for {order} has said 'in transit' since {date}.",
                "My tracking hasn't changed for {days} days. Is the parcel lost?",
                "The {carrier} tracking page for {order} just says 'awaiting update'.",
            ),
            details=(
                "I ordered {a_product}.",
                "Nobody from {carrier} answers the phone.",
                "I need it before the weekend.",
            ),
            asks={
                "Could you send me the tracking number from your dispatch email?": (
                    "Here it is: {tracking}.",
                    "It's {tracking}, from the email of {date}.",
                ),
                "Could you confirm the delivery address, including the postcode?": (
                    "The address on the order is right.",
                    "Yes, correct address and postcode.",
                ),
            },
            notes=(
                "Asked {carrier} why {order} has had no scan since {date}.",
                "Carrier investigation requested for {order}.",
            ),
            waits=(
                "I've asked {carrier} to look for your parcel; they usually answer within a day.",
            ),
            fixes={
                "{carrier} had a backlog at their hub; your parcel is moving again and due on "
                "{soon}.": (
                    ("It's {soon} and still no parcel.", "The tracking is stuck again."),
                    (
                        "{carrier} has now declared it lost, so a replacement {product} ships "
                        "today.",
                    ),
                ),
                "{carrier} says the label was damaged; I've sent a replacement {product} today.": (
                    ("The replacement has the same problem, no tracking updates.",),
                    ("I've refunded the order in full, {amount}; sorry for all the trouble.",),
                ),
            },
        ),
        _case(  # express delivery late
            subjects=(
                "Paid for express, still waiting",
                "Express delivery late - order {order}",
                "Next-day delivery didn't happen",
            ),
            problems=(
                "I paid for express delivery of the {product} and it is now {days} days late.",
                "I chose next-day delivery for order {order} and it still hasn't come.",
                "I paid {fee} extra for express and the {product} is nowhere to be seen.",
            ),
            details=(
                "I'd like the delivery charge back.",
                "I stayed in all day to wait for it.",
            ),
            asks={
                "Could you confirm whether you'd still like the parcel, or a refund instead?": (
                    "I still want the {product}, but please refund the express charge.",
                    "Yes, I still want it.",
                ),
            },
            notes=("Asked {carrier} why the express parcel {order} missed its day.",),
            waits=("I'm checking with {carrier} what happened to the express service.",),
            fixes={
                "I've refunded the express charge of {fee}; the parcel arrives tomorrow.": (
                    ("It didn't arrive tomorrow either.",),
                    (
                        "{carrier} has it on the first van of the day on {soon}; I've also added "
                        "a £10 voucher.",
                    ),
                ),
                "Your parcel is out for delivery today and I've refunded the {fee} delivery "
                "charge.": (
                    ("I can't see the {fee} on my statement.",),
                    (
                        "The {fee} refund was sent on {date}; it shows on your statement within "
                        "3-5 days.",
                    ),
                ),
            },
        ),
    ),
    "returns": (
        _case(  # wants to return
            subjects=(
                "Return for order {order}",
                "How do I return the {product}?",
                "return request",
                "Returning the {product}",
            ),
            problems=(
                "I would like to return the {product} from order {order}.",
                "The {product} doesn't suit our room; how do I send it back?",
                "I'd like to send back the {product}, it isn't what I expected.",
            ),
            details=(
                "It arrived on {date} and hasn't been used.",
                "I still have the box.",
                "Do I have to pay for the return?",
            ),
            asks={
                "Could you tell me the reason for the return? It helps us choose the right way "
                "back.": (
                    "It's smaller than it looked in the photos.",
                    "The colour doesn't match our room.",
                ),
                "Do you still have the original packaging? It helps us arrange the collection.": (
                    "Yes, original box, never opened.",
                    "I have the box, but the inner packaging went in the recycling.",
                ),
            },
            notes=("Asked the warehouse to book a collection for {order}.",),
            waits=(),
            fixes={
                "I've emailed you a prepaid returns label for the {product}; drop it at any "
                "{carrier} point within 30 days.": (
                    (
                        "The label didn't arrive in my inbox.",
                        "The drop-off point won't accept the label.",
                    ),
                    ("I've resent the label to your email and attached it here as well.",),
                ),
                "I've booked a collection for {soon}; the courier brings the label with them.": (
                    ("The courier never came for the collection.",),
                    (
                        "I've rebooked the collection with {carrier} for {soon}, between 8am and "
                        "6pm.",
                    ),
                ),
            },
        ),
        _case(  # label error
            subjects=(
                "Returns label not working",
                "Can't print my return label",
                "Error on returns page",
            ),
            problems=(
                "The returns label in my account gives an error when I print it.",
                "I'm trying to return the {product} but the returns page says 'label unavailable'.",
                "When I click 'print label' for order {order} nothing happens.",
            ),
            details=("I've tried on my phone and my laptop.", "The return is for the {product}."),
            asks={
                "Could you send a screenshot of the error you see?": (
                    "Screenshot attached, it just says 'label unavailable'.",
                    "Attached. It's a blank page with an error at the top.",
                ),
            },
            notes=("Asked the web team why the returns label for {order} won't generate.",),
            waits=("I've asked our web team to look at the returns page; I'll be in touch soon.",),
            fixes={
                "I've attached a prepaid returns label for the {product} to this email; you can "
                "print it or show it on your phone.": (
                    ("The new label has the same error as before.",),
                    (
                        "I've booked a collection for {soon} instead, so you don't need a label "
                        "at all.",
                    ),
                ),
                "The label page is working again; you can print the label from your account now.": (
                    ("Still getting the error.",),
                    ("I've attached the label here so you can print it straight away.",),
                ),
            },
        ),
        _case(  # sent back, no news
            subjects=(
                "Sent back the {product} on {date}",
                "Return received?",
                "No update on my return {order}",
            ),
            problems=(
                "I sent the {product} back on {date} but haven't heard anything.",
                "My return for order {order} went back on {date}. Has it arrived?",
                "I returned the {product} almost two weeks ago and there's been no confirmation.",
            ),
            details=(
                "I have the proof of postage.",
                "The return tracking says delivered to you.",
                "I'd like the refund to go back to my card.",
            ),
            asks={
                "Could you send me the tracking number of the return parcel?": (
                    "Here's the tracking number: {tracking}.",
                    "It's {tracking}, sent from the post office on {date}.",
                ),
            },
            notes=(
                "Waiting for the warehouse to confirm the return of {order} was received.",
                "Asked the warehouse to check the returns shelf for {order}.",
            ),
            waits=(
                "I've asked our warehouse to find your return; I'll let you know as soon as they "
                "do.",
            ),
            fixes={
                "The warehouse received your return; your refund of {amount} is on its way.": (
                    ("The refund still isn't on my card.",),
                    (
                        "Finance confirms the {amount} went to your card on {date}; banks take "
                        "3-5 days.",
                    ),
                ),
                "Your return was checked in today and the refund of {amount} is issued.": (
                    ("I got {amount} back but the delivery charge is missing.",),
                    ("I've refunded the original delivery charge of {fee} as well.",),
                ),
            },
        ),
        _case(  # exchange
            needs=("textile",),
            subjects=(
                "Exchange {product}",
                "Can I swap my {product}?",
                "Exchange request - order {order}",
            ),
            problems=(
                "I'd like to exchange the {product} for a different colour.",
                "The {product} is the wrong size for us, can I swap it for the larger one?",
                "Could I exchange the {product} from order {order} for the other size?",
            ),
            details=("It's unused and in the box.", "Happy to pay the difference."),
            asks={
                "Which size or colour would you like instead?": (
                    "The larger one, please.",
                    "The natural colour, same size.",
                ),
            },
            notes=(
                "Checked stock for the exchange on {order}; asked the warehouse to reserve one.",
            ),
            waits=(),
            fixes={
                "I've started the exchange: a returns label is in your inbox and the new "
                "{product} ships as soon as we scan the return.": (
                    ("I sent it back on {date} and the new one hasn't shipped.",),
                    ("Your return is scanned and the new {product} left our warehouse today.",),
                ),
                "The new {product} ships today, and the courier takes the old one back when "
                "they deliver it.": (
                    ("The courier didn't take the old one back.",),
                    ("I've booked a separate collection for {soon}; just leave it by the door.",),
                ),
            },
        ),
    ),
    "refund": (
        _case(  # refund after return not received
            subjects=(
                "Refund not received",
                "Where is my refund for {order}?",
                "Still waiting for refund",
                "refund for returned {product}",
            ),
            problems=(
                "I returned the {product} weeks ago and still haven't had my refund of {amount}.",
                "You confirmed my refund on {date} but nothing has reached my card.",
                "My return for order {order} was accepted but I haven't been refunded.",
            ),
            details=(
                "I paid by card.",
                "The email said it would take 5 days.",
                "I have the proof of postage.",
            ),
            asks={
                "Could you check your statement for a credit from Northwind around {date}?": (
                    "Checked again this morning, no credit from you.",
                    "Nothing from Northwind on my statement.",
                ),
                "Could you confirm the last four digits of the card you paid with?": (
                    "Card ending {last4}. Nothing on the statement.",
                    "It ends in {last4}.",
                ),
            },
            notes=(
                "Asked finance to confirm the refund batch for {order}; waiting on the provider.",
                "Refund of {amount} stuck at the provider; ticket raised with them.",
            ),
            waits=(
                "I've asked our finance team to trace the refund; I'll let you know what they "
                "find.",
            ),
            fixes={
                "The refund of {amount} was sent today; banks take 3-5 working days to show it.": (
                    ("It's been over a week and the refund still isn't there.",),
                    (
                        "Our payment provider confirms the {amount} reached your bank; its "
                        "reference is {tracking}.",
                    ),
                ),
                "Finance confirmed the refund went to your card ending {last4} on {date}; it "
                "should show any day.": (
                    ("My bank says nothing came in.",),
                    (
                        "I've asked the provider for proof of payment and sent it to you: "
                        "reference {tracking}.",
                    ),
                ),
            },
        ),
        _case(  # wrong amount
            subjects=(
                "Partial refund wrong amount",
                "Refund short for {order}",
                "Wrong refund amount for {order}",
            ),
            problems=(
                "I was refunded the wrong amount for order {order}: I expected {amount}.",
                "The refund for the {product} is less than I paid. It should be {amount}.",
                "You only refunded part of order {order}; I returned everything.",
            ),
            details=("The delivery charge wasn't refunded either.", "I returned it unused."),
            asks={
                "Could you tell me what you received, so I can compare it with our records?": (
                    "I got less than {amount}; the difference is what I paid for delivery.",
                    "Only part of it; the email said {amount}.",
                ),
            },
            notes=("Asked finance to check the refund calculation for {order}.",),
            waits=(),
            fixes={
                "You're right, the delivery charge was left off; I've refunded the missing "
                "{fee}.": (
                    ("The amount that arrived is still short.",),
                    (
                        "I've checked it line by line and sent the remaining difference; sorry "
                        "for the muddle.",
                    ),
                ),
                "I've corrected the refund and sent the rest, so you've had {amount} in total.": (
                    ("I can't see the second payment.",),
                    ("The second payment went out on {date}; the reference is {tracking}.",),
                ),
            },
        ),
        _case(  # cancelled order money back
            subjects=(
                "Refund for cancelled order {order}",
                "Cancelled but still charged",
                "Money back for cancelled order?",
            ),
            problems=(
                "When will I get my money back for the cancelled order {order}?",
                "I cancelled order {order} on {date} but I was still charged {amount}.",
                "You cancelled my {product} because it was out of stock, but I haven't had the "
                "money back.",
            ),
            details=("I have the cancellation email.", "It was {amount}."),
            asks={
                "Could you confirm the last four digits of the card you paid with?": (
                    "Card ending {last4}.",
                    "It's the card ending {last4}.",
                ),
            },
            notes=("Asked finance whether the refund for the cancelled {order} went out.",),
            waits=("I'm checking with our finance team and will come back to you today.",),
            fixes={
                "The refund of {amount} for the cancelled order was sent on {date}; it shows "
                "within "
                "3-5 working days.": (
                    ("Still nothing on my card.",),
                    (
                        "The provider confirms the refund; the reference for your bank is "
                        "{tracking}.",
                    ),
                ),
                "The payment was only a hold and has now been released; it drops off your card "
                "within a few days.": (
                    ("The hold is still there.",),
                    (
                        "I've asked the provider to release it again; your bank can also clear it "
                        "with reference {tracking}.",
                    ),
                ),
            },
        ),
    ),
    "payment": (
        _case(  # charged twice
            subjects=("Charged twice for {order}", "Double payment", "Two payments taken"),
            problems=(
                "I was charged twice for order {order}, {amount} each time.",
                "Two payments of {amount} have left my account for one order.",
                "My card shows two charges for the {product}.",
            ),
            details=("I only clicked pay once.", "I only got one confirmation email."),
            asks={
                "Could you send a screenshot of the two payments, with the dates?": (
                    "Screenshot attached: two payments of {amount} on {date}.",
                    "Attached. Both on {date}.",
                ),
            },
            notes=(
                "Asked the payment provider to investigate the duplicate charge on {order}.",
                "Waiting on the provider's authorisation log for {order}.",
            ),
            waits=(
                "I've asked our payment provider to check both payments; I'll update you soon.",
            ),
            fixes={
                "One of the two payments was only a hold; it drops off within 5 days.": (
                    ("The hold is still there after a week.",),
                    (
                        "I've asked the provider to release the hold by hand; it's gone within 24 "
                        "hours.",
                    ),
                ),
                "I've refunded the duplicate payment of {amount}.": (
                    ("I've been charged a third time now.",),
                    (
                        "The third charge is a hold from the refund check; it's released and "
                        "won't come back.",
                    ),
                ),
            },
        ),
        _case(  # card declined
            subjects=("Card declined at checkout", "Payment failed", "Why is my card declined?"),
            problems=(
                "My card keeps getting declined, but the bank says it's fine.",
                "I tried three times to pay for the {product} and the payment fails every time.",
                "Payment failed at checkout even though there's money on the card.",
            ),
            details=("It's a Visa debit card.", "I tried another card too."),
            asks={
                "Could you tell me which card or wallet you used?": (
                    "It was Apple Pay, card ending {last4}.",
                    "A Visa card ending {last4}.",
                ),
                "Does the billing address on the order match the one your bank has?": (
                    "I think so, it's my home address.",
                    "Ah, my bank may still have my old address.",
                ),
            },
            notes=("Asked the payment provider why the card ending {last4} is declined.",),
            waits=(),
            fixes={
                "The provider's fraud check blocked the card; I've cleared it, so please try "
                "again.": (
                    ("Still declined.",),
                    (
                        "I've reserved the {product} and sent you a payment link that bypasses "
                        "the check.",
                    ),
                ),
                "The billing address didn't match your bank's; once it's updated the payment goes "
                "through.": (
                    ("I changed it and it still fails.",),
                    ("I've placed the order for you and sent a secure payment link for {amount}.",),
                ),
            },
        ),
        _case(  # paid, no confirmation
            subjects=(
                "Payment taken but no order confirmation",
                "Paid but no order?",
                "No confirmation for my payment of {amount}",
            ),
            problems=(
                "The payment of {amount} left my account but I never got a confirmation.",
                "I paid for {a_product} on {date} but there's no order in my account.",
                "Money gone, no order confirmation. Did my order go through?",
            ),
            details=("I checked my spam folder.",),
            asks={
                "Could you tell me the time of the payment and the last four digits of the card?": (
                    "Around lunchtime on {date}, card ending {last4}.",
                    "Card ending {last4}, in the evening of {date}.",
                ),
            },
            notes=("Asked the web team to match the payment of {amount} to an order.",),
            waits=(),
            fixes={
                "The payment went through; I've resent your order confirmation for {order}.": (
                    ("I still don't have the confirmation.",),
                    (
                        "I've attached the confirmation for {order} here; it's also under Orders "
                        "in your account.",
                    ),
                ),
                "The order didn't complete, so the {amount} is only a hold and drops off in a few "
                "days.": (
                    ("The money hasn't come back.",),
                    (
                        "I've asked the provider to release the hold now; it shows as returned "
                        "within a day.",
                    ),
                ),
            },
        ),
    ),
    "invoice": (
        _case(  # VAT invoice
            subjects=("VAT invoice needed", "Invoice for order {order}", "invoice copy please"),
            problems=(
                "Could you send me a VAT invoice for order {order}?",
                "I need a proper VAT invoice for the {product}, the order confirmation isn't "
                "enough.",
                "Please email me an invoice for order {order}.",
            ),
            details=("It's for my accountant.", "I need it by the end of the month."),
            asks={
                "Should the invoice be in your name or a company's?": (
                    "My name is fine.",
                    "In my own name, please.",
                ),
            },
            notes=("Asked finance to issue the VAT invoice for {order}.",),
            waits=(),
            fixes={
                "I've attached the VAT invoice for {order}; you can also download it from Orders "
                "in your account.": (
                    ("I can't find it under Orders.",),
                    (
                        "It's under Orders, then {order}, then 'Download invoice'; it's attached "
                        "here again too.",
                    ),
                ),
                "Here is your VAT invoice for {order}; it's also in your account under Orders.": (
                    ("The attachment won't open.",),
                    (
                        "I've sent the invoice again as a PDF; it's also under Orders in your "
                        "account.",
                    ),
                ),
            },
        ),
        _case(  # company details
            subjects=("Company name on invoice", "Invoice needs our company details"),
            problems=(
                "The invoice for {order} needs our company name and address on it (details below).",
                "Could you reissue the invoice for {order} with our company details? They're in "
                "my signature.",
                "Our accounts team can't accept the invoice for {order} without our VAT number, "
                "which is below.",
            ),
            details=("We buy for the office.",),
            asks={
                "Should the invoice show the address in your signature, or your registered "
                "office?": (
                    "The address in my signature, please.",
                    "Our registered office; it's on the attached letter.",
                ),
            },
            notes=("Asked finance to reissue the invoice for {order} with company details.",),
            waits=("I've asked our finance team to reissue the invoice; it takes about a day.",),
            fixes={
                "Done: the new invoice for {order} shows your company name, address and VAT "
                "number.": (
                    ("The company address is wrong on it.",),
                    ("I've corrected the address and attached the new invoice.",),
                ),
                "I've reissued the invoice with your company details.": (
                    ("The VAT number is still missing on the new invoice.",),
                    ("The corrected invoice, with your VAT number, is attached.",),
                ),
            },
        ),
        _case(  # wrong total
            subjects=("Invoice total wrong", "Discount missing on invoice {order}"),
            problems=(
                "The invoice total says {amount} but I paid less with a discount.",
                "The discount I had on order {order} isn't on the invoice.",
            ),
            details=("I need the invoice to match my card statement.",),
            asks={
                "Could you tell me which discount code you used?": (
                    "It was {code}.",
                    "The {code} code from your newsletter.",
                ),
            },
            notes=("Asked finance to correct the invoice total for {order}.",),
            waits=(),
            fixes={
                "I've reissued the invoice for {order} with the discount {code} shown as its own "
                "line.": (
                    ("The VAT is still worked out on the full price.",),
                    (
                        "Finance has recalculated the VAT on the discounted price; the new "
                        "invoice is attached.",
                    ),
                ),
                "The corrected invoice shows the discount and the amount you paid.": (
                    ("The new invoice still shows {amount}.",),
                    ("Finance has reissued it by hand; it now matches your card payment exactly.",),
                ),
            },
        ),
    ),
    "account": (
        _case(  # can't log in
            subjects=(
                "Can't log in",
                "Password reset email not arriving",
                "account locked",
            ),
            problems=(
                "I can't log in to my account; it says my password is wrong.",
                "I asked for a password reset three times and no email came.",
                "My account is locked after too many tries.",
            ),
            details=("I've checked my spam folder.", "I want to see my order {order}."),
            asks={
                "Could you confirm the email address you signed up with and your postcode?": (
                    "Same email as this one. The postcode is on order {order}.",
                    "This email address, and the postcode is on my last order.",
                ),
                "For security, could you confirm the last order number on the account?": (
                    "Last order was {order}.",
                    "It was {order}, on {date}.",
                ),
            },
            notes=("Asked the web team to unlock the account manually.",),
            waits=(),
            fixes={
                "I've unlocked your account and sent a fresh reset link (check spam too).": (
                    ("The reset link says it has expired.",),
                    ("I've sent a new link; it stays valid for 24 hours this time.",),
                ),
                "Our emails were blocked by your mail provider; I've set a temporary password and "
                "sent it by text.": (
                    ("The temporary password doesn't work.",),
                    ("I've reset it again; please copy it without the space at the end.",),
                ),
            },
        ),
        _case(  # change email
            subjects=("Change my email address", "New email for my account"),
            problems=(
                "Please change the email address on my account to this one.",
                "I have a new email address (this one); how do I update my account?",
                "I can't change my email to this one in the account settings, it gives an error.",
            ),
            details=("The old address will stop working soon.",),
            asks={
                "For security, could you confirm the last order number on the account?": (
                    "Last order was {order}.",
                    "It's {order}.",
                ),
            },
            notes=("Asked the web team to change the login email.",),
            waits=(),
            fixes={
                "I've changed the login email; a confirmation link is on its way to the new "
                "address.": (
                    ("The confirmation link never came.",),
                    (
                        "I've confirmed the change from our side, so you can log in with the new "
                        "address now.",
                    ),
                ),
                "Your email address is changed; please log in with the new one.": (
                    ("I still get emails at the old address.",),
                    ("The newsletter list had the old address too; I've updated that as well.",),
                ),
            },
        ),
        _case(  # delete account
            subjects=("Delete my account", "Please remove my data"),
            problems=(
                "I'd like my account and data deleted.",
                "Please close my account and delete my personal data.",
            ),
            details=("And please take me off the mailing list.",),
            asks={
                "For security, could you confirm the last order number on the account?": (
                    "Last order was {order}.",
                    "It was {order}.",
                ),
            },
            notes=(
                "Deletion request logged; waiting for the open return on {order} to close first.",
            ),
            waits=(),
            fixes={
                "I've closed your account; the data is deleted within 30 days, as our privacy "
                "policy says.": (
                    ("Why 30 days? I want it gone now.",),
                    (
                        "I've asked our data team to delete it today and will confirm when it's "
                        "done.",
                    ),
                ),
                "Your account and data are deleted, as you asked.": (
                    ("I got another marketing email today.",),
                    ("That email was already queued; your address is now off every list.",),
                ),
            },
        ),
        _case(  # merge accounts
            subjects=("Two accounts, please merge", "Orders split between two accounts"),
            problems=(
                "I have two accounts by mistake and my orders are split between them.",
                "I made a second account by accident; can you merge them?",
            ),
            details=("I'd like to keep this email address.",),
            asks={
                "Which email address should the merged account keep?": (
                    "This one, please.",
                    "The one I'm writing from.",
                ),
            },
            notes=("Asked the web team to merge the two customer accounts.",),
            waits=(),
            fixes={
                "I've moved all your orders to the account you're writing from and closed the "
                "other one.": (
                    ("My loyalty points didn't move over.",),
                    ("I've moved the loyalty points across as well.",),
                ),
                "Your accounts are merged; all your orders are in one place now.": (
                    ("Order {order} is still missing from the list.",),
                    ("Order {order} was on a guest checkout; I've moved it to your account too.",),
                ),
            },
        ),
    ),
    "product": (
        _case(  # dimensions
            needs=("furniture", "lighting"),
            subjects=(
                "{product} dimensions?",
                "Size of the {product}",
                "Question about the {product}",
            ),
            problems=(
                "What are the exact dimensions of the {product}?",
                "How big is the {product}? The product page doesn't say.",
                "Will the {product} fit a space 40 cm wide?",
            ),
            details=("I'm thinking of ordering two.", "It's for a small flat."),
            asks={
                "Which colour or size of the {product} do you mean?": (
                    "The natural one, the larger size.",
                    "The smaller one.",
                ),
            },
            notes=("Asked the buying team for the measured size of the {product}.",),
            waits=(),
            fixes={
                "The {product} is 52 cm high and 38 cm wide, and weighs about 4 kg.": (
                    ("Sorry, I meant the packed size, for my car.",),
                    ("Packed, it's 60 x 45 x 20 cm, so it fits in most car boots.",),
                ),
                "The {product} is 45 x 30 x 60 cm; the full spec is on the product page.": (
                    ("The product page says something different.",),
                    (
                        "You're right, the page was wrong; the buying team measured it again and "
                        "corrected it.",
                    ),
                ),
            },
        ),
        _case(  # restock
            subjects=("Is the {product} back in stock?", "{product} out of stock", "Restock date?"),
            problems=(
                "Will the {product} be back in stock soon?",
                "The {product} has been out of stock for weeks. Is it coming back?",
                "I'd like to buy the {product} but it says sold out.",
            ),
            details=("I need it before {soon}.", "I'd buy two."),
            asks={
                "Which colour or size of the {product} do you mean?": (
                    "The natural one, the larger size.",
                    "The grey one.",
                ),
            },
            notes=("Asked the buying team about the restock date of the {product}.",),
            waits=(
                "I've asked our buying team when the {product} is due back; I'll let you know.",
            ),
            fixes={
                "The {product} is back in stock now; I've reserved one for you for 48 hours.": (
                    ("The reservation link doesn't work.",),
                    (
                        "I've placed the order for you at the same price; just pay through the "
                        "link in the email.",
                    ),
                ),
                "The {product} is due back in stock on {soon}; I've added you to the alert.": (
                    ("The restock date has passed and it's still not available.",),
                    (
                        "The delivery was delayed; the buying team now expects it in two weeks. "
                        "You're still on the alert.",
                    ),
                ),
            },
        ),
        _case(  # care
            needs=("furniture", "kitchen", "decor", "lighting"),
            subjects=("Care instructions {product}", "How to clean the {product}?"),
            problems=(
                "How should I clean the {product}?",
                "Can I use a cleaning spray on the {product}?",
                "There were no care instructions with the {product}; how do I look after it?",
            ),
            details=("I don't want to damage it.",),
            asks={
                "Which colour or finish of the {product} do you have?": (
                    "The natural one.",
                    "The dark one.",
                ),
            },
            notes=("Asked the buying team for the supplier's care sheet for the {product}.",),
            waits=(),
            fixes={
                "Use a soft dry cloth; for marks, a little mild soap and water. Full care details "
                "are on the product page.": (
                    ("The marks won't come off.",),
                    (
                        "For stubborn marks a little white vinegar works; if they still won't "
                        "shift, I'll send a replacement.",
                    ),
                ),
                "Wipe it with a damp cloth; no harsh cleaners. The care card is attached.": (
                    ("The care card isn't attached.",),
                    ("Sorry, here it is; it's also on the product page under 'Details'.",),
                ),
            },
        ),
        _case(  # suitability / assembly
            needs=("assembly",),
            subjects=(
                "{product} - outdoor use?",
                "Does the {product} need assembling?",
                "question",
            ),
            problems=(
                "Is the {product} suitable for outdoor use?",
                "Does the {product} come assembled?",
                "Is the {product} sturdy enough for everyday use?",
            ),
            details=("I'm deciding between this and another one.",),
            asks={
                "Which colour or size of the {product} do you mean?": (
                    "The larger size.",
                    "The natural colour.",
                ),
            },
            notes=("Checking the {product}'s spec with the buying team.",),
            waits=(),
            fixes={
                "It's for indoor use only, and it arrives fully assembled.": (
                    ("It arrived flat-packed, not assembled.",),
                    (
                        "Sorry, the page was wrong there; I've sent you the assembly guide and a "
                        "£10 voucher.",
                    ),
                ),
                "It's made for indoor use, and it comes flat-packed with the tools; assembly takes "
                "about 20 minutes.": (
                    ("The instructions in the box are in another language.",),
                    ("I've attached the English instructions; they're on the product page too.",),
                ),
            },
        ),
    ),
    "damaged": (
        _case(  # arrived broken
            needs=("fragile", "furniture"),
            subjects=(
                "Damaged {product}",
                "Item arrived broken",
                "Broken on arrival - order {order}",
                "DAMAGED ITEM",
            ),
            problems=(
                "The {product} arrived broken; the box was crushed.",
                "The {product} was cracked when I unpacked it.",
                "My {product} from order {order} came in pieces.",
            ),
            details=("The outer box was wet and torn.", "I have photos.", "It was a present."),
            asks={
                "I'm sorry about this. Could you send photos of the damage and of the box?": (
                    "Photos attached. The box was wet and torn on one corner.",
                    "Attached, you can see the crack clearly.",
                ),
            },
            notes=("Claim opened with {carrier} for transit damage on {order}.",),
            waits=(),
            fixes={
                "A replacement {product} ships today; no need to send the broken one back.": (
                    ("The replacement arrived damaged too.",),
                    ("I've refunded {amount} in full instead; please keep or recycle both.",),
                ),
                "I've refunded {amount} in full for the damaged {product}.": (
                    ("I'd rather have a new one than the money.",),
                    (
                        "No problem: I've placed a new order for the {product} at no charge; it "
                        "ships today.",
                    ),
                ),
            },
        ),
        _case(  # faulty, wearing out
            needs=("textile", "furniture"),
            subjects=("{product} faulty", "{product} falling apart", "Fault with my {product}"),
            problems=(
                "My {product} started coming apart after {days} days.",
                "The {product} I bought on {date} has developed a fault.",
                "The {product} isn't holding up: after {days} days it already looks worn out.",
            ),
            details=("I've only used it a few times.", "I followed the instructions."),
            asks={
                "Could you describe what has happened, or send a few photos?": (
                    "Photos attached. It's coming loose at one edge.",
                    "It's worn through in one spot already, see the photo.",
                ),
            },
            notes=("Asked the supplier whether the {product} has a known fault.",),
            waits=("I've asked the supplier about this fault and will come back to you.",),
            fixes={
                "I've refunded {amount} in full; no need to return the faulty {product}.": (
                    ("I can't see the refund yet.",),
                    ("The refund went out on {date}; it takes 3-5 working days to show.",),
                ),
                "That's a known fault in one batch; a replacement {product} is on its way.": (
                    ("The replacement has the same fault.",),
                    ("I've refunded {amount} in full; the supplier is taking the batch off sale.",),
                ),
            },
        ),
        _case(  # missing parts
            needs=("assembly",),
            subjects=("Missing parts for {product}", "Parts missing", "Can't assemble {product}"),
            problems=(
                "Parts are missing from the {product}, so I can't assemble it.",
                "The screws for the {product} weren't in the box.",
                "Half the fittings for my {product} are missing.",
            ),
            details=("I checked all the packaging twice.",),
            asks={
                "Could you tell me which parts are missing (the letters in the manual)?": (
                    "Parts C and F are missing.",
                    "The bag with the screws, part D.",
                ),
            },
            notes=("Asked the warehouse to pick replacement parts for the {product}.",),
            waits=(),
            fixes={
                "I've sent a complete new fittings pack by courier; it arrives tomorrow.": (
                    ("The fittings pack hasn't arrived.",),
                    ("{carrier} had it at the depot; it's out for delivery today.",),
                ),
                "The missing parts are on their way by first-class post.": (
                    ("The parts you sent are the wrong ones.",),
                    (
                        "The right parts went out by courier today; the tracking number is "
                        "{tracking}.",
                    ),
                ),
            },
        ),
        _case(  # cosmetic
            needs=("furniture", "lighting"),
            subjects=("Scratch on my {product}", "{product} damaged finish"),
            problems=(
                "The {product} from order {order} has a big scratch across the top.",
                "There's a dent in the {product}, right at the front.",
            ),
            details=("It's very visible.", "Otherwise it's lovely."),
            asks={
                "Could you send a photo of the mark? Then I can offer the right option.": (
                    "Photo attached.",
                    "Attached, it's about 5 cm long.",
                ),
            },
            notes=("Asked the warehouse whether a replacement {product} is in stock.",),
            waits=(),
            fixes={
                "If you'd like to keep it, I've refunded {fee} as a goodwill gesture; otherwise a "
                "replacement is ready to go.": (
                    ("I'd rather have a replacement after all.",),
                    ("A new {product} ships today, and the courier collects the scratched one.",),
                ),
                "A replacement {product} ships today; the courier collects the damaged one.": (
                    ("Nobody came to collect the damaged one.",),
                    ("I've rebooked the collection for {soon}.",),
                ),
            },
        ),
    ),
    "order_change": (
        _case(  # cancel
            subjects=("Cancel order {order}", "Please cancel my order", "Cancellation {order}"),
            problems=(
                "Please cancel order {order}, I ordered by mistake.",
                "I'd like to cancel my order for the {product}.",
                "Can I still cancel order {order}? I found it cheaper elsewhere.",
            ),
            details=("I only placed it this morning.", "Please refund it to the same card."),
            asks={
                "Is it the whole order you'd like to cancel, or just the {product}?": (
                    "The whole order, please.",
                    "Just the {product}.",
                ),
            },
            notes=("Asked the warehouse to hold {order} before dispatch.",),
            waits=("I've asked the warehouse to stop the order; I'll confirm once they have.",),
            fixes={
                "Order {order} is cancelled and the {amount} refunded.": (
                    ("I got a dispatch email for the order you cancelled.",),
                    (
                        "It slipped out before the hold; a free collection is booked for {soon} "
                        "and the refund stands.",
                    ),
                ),
                "It had already shipped, so I've set up a free return instead; the label is in "
                "your inbox.": (
                    ("The label didn't come.",),
                    (
                        "I've attached the returns label here; you can also refuse the parcel at "
                        "the door.",
                    ),
                ),
            },
        ),
        _case(  # change address
            subjects=("Change delivery address", "Wrong address on order {order}"),
            problems=(
                "Can I change the delivery address for order {order}? The new one is below.",
                "I put my old address on order {order} by mistake; the right one is in my "
                "signature.",
                "Could the {product} go to my work address instead? It's below.",
            ),
            details=("It hasn't shipped yet as far as I can see.",),
            asks={
                "Could you confirm the postcode of the new address, so the courier has it "
                "exactly?": (
                    "Yes, the postcode is the one below.",
                    "It's the postcode in my signature, same as before.",
                ),
            },
            notes=("Asked the warehouse to hold {order} before dispatch.",),
            waits=(),
            fixes={
                "The delivery address is updated on {order}.": (
                    ("The tracking still shows the old address.",),
                    (
                        "{carrier} has now updated the address too; the parcel comes to the new "
                        "one on {soon}.",
                    ),
                ),
                "It had already left, so I've asked {carrier} to redirect it to your new "
                "address.": (
                    ("{carrier} tried to deliver to the old address.",),
                    (
                        "{carrier} has it back at the depot and delivers to the new address on "
                        "{soon}.",
                    ),
                ),
            },
        ),
        _case(  # wrong size/colour
            needs=("textile",),
            subjects=("wrong size ordered", "Change my order {order}", "Wrong colour ordered"),
            problems=(
                "I ordered the wrong size of the {product}; can you change it before it ships?",
                "I picked the wrong colour for the {product} on order {order}.",
            ),
            details=("Happy to pay the difference.",),
            asks={
                "Which size or colour would you like instead?": (
                    "The larger one, please.",
                    "The natural colour.",
                ),
            },
            notes=("Asked the warehouse to swap the {product} on {order} before it's packed.",),
            waits=(),
            fixes={
                "It had already shipped, so I've set up a free exchange: send the {product} back "
                "with the label in your inbox and the right one ships at once.": (
                    ("The label isn't in my inbox.",),
                    ("I've attached the returns label here as well.",),
                ),
                "Done: the {product} is changed before dispatch.": (
                    ("The dispatch email still shows the old size.",),
                    (
                        "The warehouse confirms the right one is packed; the email was sent "
                        "before the change.",
                    ),
                ),
            },
        ),
        _case(  # add item
            subjects=("Add item to my order", "Can I add to order {order}?"),
            problems=(
                "Could you add {a_product} to my order {order}?",
                "I forgot the {product}; can it go in the same parcel as {order}?",
            ),
            details=("I'd like to save on delivery.",),
            asks={
                "Which colour or size of the {product} would you like?": (
                    "The natural one.",
                    "Same as the one on the product page.",
                ),
            },
            notes=("Asked the warehouse whether {order} can still take another item.",),
            waits=(),
            fixes={
                "I've added the {product} to {order} and sent you a payment link for the "
                "difference.": (
                    ("The payment link doesn't work.",),
                    ("I've sent a fresh payment link; it's valid for 48 hours.",),
                ),
                "{order} had already been packed, so I've placed the {product} as a new order "
                "with free delivery.": (
                    ("I was charged for delivery on the new order.",),
                    ("I've refunded the {fee} delivery charge.",),
                ),
            },
        ),
    ),
    "promo_code": (
        _case(  # code invalid
            subjects=(
                "Discount code not working",
                "Code {code} invalid",
                "Promo code didn't apply",
            ),
            problems=(
                "The code {code} says it's invalid at checkout.",
                "The newsletter code {code} didn't take off the discount.",
                "I tried {code} on the {product} and it says it isn't valid.",
            ),
            details=("The email says it's valid until the end of the month.",),
            asks={
                "Could you send a screenshot of the message at checkout?": (
                    "Screenshot attached, it says 'code not valid for this basket'.",
                    "Attached. It says the code has expired.",
                ),
            },
            notes=("Asked marketing whether {code} is still active.",),
            waits=(),
            fixes={
                "The code {code} doesn't apply to sale items; here's a new one that does.": (
                    ("The new code doesn't work either.",),
                    ("I've placed the order at the discounted price for you; no code needed.",),
                ),
                "The code had expired early by mistake; it's working again now.": (
                    ("Still says invalid.",),
                    ("I've applied the discount to your order by hand.",),
                ),
            },
        ),
        _case(  # forgot code
            subjects=("Forgot to use my discount code", "Apply code {code} after ordering?"),
            problems=(
                "I forgot to enter {code} on order {order}; can you apply it?",
                "I placed order {order} and only then remembered my code {code}.",
            ),
            details=("It was the welcome code.",),
            asks={
                "Could you confirm the code and the order number?": (
                    "Code {code}, order {order}.",
                    "It's {code}, and the order is {order}.",
                ),
            },
            notes=("Asked finance to refund the {code} discount on {order}.",),
            waits=(),
            fixes={
                "I've applied {code} to {order} and refunded the difference to your card.": (
                    ("The difference hasn't come through.",),
                    ("It went out on {date}; it takes 3-5 working days to show.",),
                ),
                "I've refunded the discount of {fee} to your card.": (
                    ("I can't see the refund.",),
                    ("The {fee} went out on {date}; it takes 3-5 working days to show.",),
                ),
            },
        ),
    ),
    "website": (
        _case(  # checkout error
            subjects=(
                "Checkout error",
                "Error at checkout - order not placed",
                "checkout keeps failing",
                "Website error {error}",
            ),
            problems=(
                "When I click 'Pay now' I get an error and the order isn't placed.",
                "Checkout shows 'Something went wrong (error {error})' every time.",
                "I can't finish my order for the {product}; checkout fails at the last step.",
            ),
            details=("I tried two browsers.", "It worked fine last month."),
            asks={
                "Which browser and device are you using, and roughly what time did it happen?": (
                    "Chrome on my phone, around lunchtime on {date}.",
                    "Safari on an iPad, yesterday evening.",
                ),
                "Could you send a screenshot of the error?": (
                    "Screenshot attached, error {error}.",
                    "Attached.",
                ),
            },
            notes=(
                "Passed to the web team with the error {error} and the time.",
                "Web team investigating the checkout error; linked to the incident.",
            ),
            waits=(
                "Our web team is looking into the checkout error; I'll let you know when it's "
                "fixed.",
            ),
            fixes={
                "The web team fixed a checkout bug today; please try again.": (
                    ("Same error again this morning.",),
                    (
                        "I've placed the order for you by phone; you'll get the confirmation by "
                        "email.",
                    ),
                ),
                "I've placed the order for you by phone; no charge was taken earlier.": (
                    ("I didn't get a confirmation email.",),
                    ("The confirmation for {order} is attached here.",),
                ),
            },
        ),
        _case(  # basket empties
            subjects=("Basket emptied at checkout", "My basket keeps emptying"),
            problems=(
                "My basket empties itself when I go to the payment page.",
                "Every time I log in to pay, my basket is empty again.",
            ),
            details=("I had the {product} in it.",),
            asks={
                "Which browser and device are you using?": (
                    "Firefox on a laptop.",
                    "The app on my phone.",
                ),
            },
            notes=("Passed the basket problem to the web team.",),
            waits=(),
            fixes={
                "The web team fixed a bug with saved baskets today; please try again.": (
                    ("Basket still empties.",),
                    ("I've put the order together for you and sent a payment link.",),
                ),
                "Clearing the site's cookies fixes it; the web team is fixing the cause this "
                "week.": (
                    ("Cleared cookies, basket still empties.",),
                    ("I've put the order together for you and sent a payment link.",),
                ),
            },
        ),
        _case(  # charged after error
            subjects=("Payment page spins forever", "Error at checkout - was I charged?"),
            problems=(
                "I got an error at checkout but was I charged {amount}?",
                "The payment page just spins, and now there's {amount} missing from my account.",
            ),
            details=("There's no order in my account.",),
            asks={
                "Could you tell me the time of the attempt and the last four digits of the card?": (
                    "Around 8pm on {date}, card ending {last4}.",
                    "Card ending {last4}, this morning.",
                ),
            },
            notes=("Asked the payment provider about the failed checkout attempt.",),
            waits=(),
            fixes={
                "The payment did go through, so I've created the order for you as {order}; the "
                "confirmation is attached.": (
                    ("I still don't see the order in my account.",),
                    ("It was saved as a guest order; I've moved {order} into your account.",),
                ),
                "The failed attempt was not charged; the hold of {amount} drops off shortly.": (
                    ("The hold is still there.",),
                    ("I've asked the provider to release it by hand; it's gone within 24 hours.",),
                ),
            },
        ),
    ),
    "general": (
        _case(  # feedback
            subjects=("Feedback", "Some feedback", "Hello"),
            problems=(
                "Just some feedback about the {product}.",
                "I wanted to say how much I like the {product}.",
            ),
            details=("The packaging could use less plastic, though.",),
            asks={
                "Could you tell me a bit more about what you liked or didn't?": (
                    "The quality is great, but delivery was slow.",
                    "It looks lovely, just smaller than I expected.",
                ),
            },
            notes=("Passed the feedback on the {product} to the buying team.",),
            waits=(),
            fixes={
                "Thanks so much for this; I've shared it with the team and added a £5 voucher to "
                "your account.": (
                    ("The voucher isn't in my account.",),
                    ("It's there now, under 'My vouchers'.",),
                ),
                "Thank you, I've passed your feedback on to the team.": (
                    ("Did anyone actually read it?",),
                    (
                        "Yes: the buying team read it and will use less plastic in the next "
                        "delivery.",
                    ),
                ),
            },
        ),
        _case(  # callback
            subjects=("help please", "Please call me"),
            problems=(
                "Could someone call me back about my {product}?",
                "Please phone me about order {order}, it's easier to explain.",
            ),
            details=("I'm free after 5pm.",),
            asks={
                "Which number should we call, and when suits you?": (
                    "My mobile, after 5pm.",
                    "The number on my account, any morning.",
                ),
            },
            notes=("Callback booked with the phone team.",),
            waits=(),
            fixes={
                "I tried to call you twice today and left a voicemail; I'll try again tomorrow "
                "morning.": (
                    ("I didn't get a call or a voicemail.",),
                    ("Sorry, we had the wrong number; I've called you on the new one.",),
                ),
                "I called you and we went through it together; the notes are on your order.": (
                    ("Nobody called me.",),
                    ("Sorry, we had the wrong number; I've called you on the new one.",),
                ),
            },
        ),
        _case(  # general order question
            subjects=("Question", "A question about my order {order}"),
            problems=(
                "I have a question about order {order}.",
                "Quick question about the {product} I ordered.",
            ),
            details=("Nothing urgent.",),
            asks={
                "Could you tell me a bit more about what you need?": (
                    "It's about the {product} I ordered on {date}.",
                    "I wanted to know when order {order} ships.",
                ),
            },
            notes=("Checking with a colleague.",),
            waits=(),
            fixes={
                "Order {order} is packed and leaves the warehouse tomorrow.": (
                    ("It's still showing as 'processing'.",),
                    ("It's left the warehouse now; the tracking number is {tracking}.",),
                ),
                "Order {order} ships on {soon}; you'll get the tracking by email.": (
                    ("It didn't ship on {soon}.",),
                    ("It left our warehouse this morning; the tracking number is {tracking}.",),
                ),
            },
        ),
    ),
}

_GREETINGS = ("Hi,", "Hello,", "Hi there,", "Good morning,", "Dear Northwind team,", "", "hey", "")
_OPENINGS = (
    "",
    "",
    "",
    "",
    "",
    "Hope you can help.",
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
_MAIL_CLIENT = ("Re: ", "Fwd: ")  # what only a mail client puts before a subject
_TYPED_BY_AGENT = ("phone", "chat")  # channels whose subject the agent writes
_AGENT_HELLO_FIRST = (
    "Hi {customer},",
    "Hello {customer},",
    "Dear {customer},",
)
_AGENT_HELLO = ("Hi {customer},", "Hello {customer},", "Hi again {customer},")
_AGENT_BYE = ("Best wishes,\n{agent}", "Kind regards,\n{agent}", "Thanks,\n{agent}", "{agent}")
# the agent's first words, by what happened last in the conversation
_AGENT_LEAD = {
    "": (
        "",
        "",
        "Thanks for getting in touch.",
        "Thanks for your message.",
        "Thanks for writing in.",
    ),
    "answer": ("Thanks for the details.", "Thanks for checking.", "Thanks, that helps.", ""),
    "wait": ("Thanks for your patience.", "Sorry for the wait.", "", ""),
    "reopen": (
        "Sorry it's still not right.",
        "Sorry about that.",
        "Thanks for letting me know.",
        "",
    ),
    "agent": ("", "", "Thanks for your patience."),
}
_WAITS = (
    "I've passed this to the right team and will update you as soon as I hear.",
    "We're checking this with our partner; I'll come back to you.",
    "I'm looking into this with a colleague and will get back to you shortly.",
)
# after a reopen the agent's questions, notes and "we're on it" replies are about what went
# wrong with the solution, not the case's first questions
_REOPENED = _case(
    subjects=(),
    problems=(),
    details=(),
    asks={
        "Could you tell me exactly what happened, so I can put it right this time?": (
            "It's as I said, nothing has changed since.",
            "Nothing more than what I wrote, sorry.",
        ),
        "When did you last check, so I can compare it with what we see here?": (
            "This morning.",
            "Just now, before writing to you.",
        ),
    },
    notes=(
        "Customer came back after the fix; checking what went wrong.",
        "Reopened: asked the team to look at it again.",
        "Reopened; flagged to the team lead.",
    ),
    waits=(
        "I'm sorry about this; I'm checking what went wrong and will update you shortly.",
        "I've asked the team to look at it again and will come back to you as soon as I hear.",
    ),
    fixes={},
)
_CHASES = (  # an internal note when the case's own notes are used up
    "Chased them again; no answer yet.",
    "Still waiting; sent a reminder.",
    "No reply yet, chased by phone.",
)
_STILL = (  # a reopen after the agent already tried again
    "It's still not sorted, I'm afraid.",
    "Sorry, but this still isn't right.",
    "Nothing has changed since your last message.",
)
_LAST = (  # the agent's solution when the case has no fresh one left
    "I'm sorry this has taken so long. I've escalated it to my team lead, who will call you "
    "today to put it right.",
    "Sorry for all the back and forth. I've sorted this out myself and added a £10 voucher to "
    "your account for the trouble.",
)
_AGAIN = ("Yes, as I said: ", "As I said, ", "Same as before: ")
_CUSTOMER_LEAD = {
    "answer": ("", "", "Hi,", "Thanks for getting back to me.", "Sure."),
    "reopen": ("", "", "Hi again,", "Hello,", "Sorry, me again."),
}
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


def _day(slots: Slots, low: int, high: int) -> str:
    """A day ``low``..``high`` days from the conversation's day (a random one without it)."""
    rng = slots.rng
    if slots.today is None:
        return f"{_below(rng, 1, 29)} {_pick(rng, _MONTHS)}"
    day = slots.today + timedelta(days=_below(rng, low, high))
    return f"{day.day} {_MONTHS[day.month - 1]}"


class Catalogue:
    """The business's products, and which of them fit a case's ``needs``: those with one of
    the kinds, or whose kinds are not known (a plain name); every product when none fits."""

    def __init__(self, products: Sequence[str | Product]) -> None:
        self.names = tuple(p if isinstance(p, str) else p.name for p in products)
        self.kinds = tuple(
            None if isinstance(p, str) or p.kinds is None else frozenset(p.kinds) for p in products
        )
        self._fitting: dict[frozenset[str], tuple[str, ...]] = {frozenset(): self.names}

    def fitting(self, needs: frozenset[str]) -> tuple[str, ...]:
        """The products a case with these ``needs`` can be about (worked out once per needs)."""
        names = self._fitting.get(needs)
        if names is None:
            fit = [n for n, k in zip(self.names, self.kinds, strict=True) if k is None or k & needs]
            names = self._fitting[needs] = tuple(fit) or self.names
        return names


class Slots(dict[str, str]):
    """One conversation: slot values made on first use, then the same for the whole
    conversation (one ticket keeps its product, order number and carrier), its case once
    picked, and what happened so far (so the replies follow on). The product fits the case:
    the Writer picks the case before any text is filled in."""

    def __init__(self, rng: random.Random, products: Catalogue, today: date | None = None) -> None:
        super().__init__()
        self.rng = rng
        self.products = products
        self.today = today
        self.case: Case | None = None
        self.fix: Fix | None = None  # the agent's first solution
        self.asked: list[int] = []  # the asks used (since the last reopen), in order
        self.answers: dict[int, str] = {}  # the customer's answer to each of them
        self.used: set[str] = set()  # the notes, waits and solutions used (not said twice)
        self.last = ""  # what happened last: "", "answer", "wait", "reopen" or "agent"
        self.replies = 0  # the agent's public replies so far
        self.reopens = 0

    def __missing__(self, name: str) -> str:
        value = self[name] = _SLOTS[name](self)
        return value


_SLOTS: dict[str, Callable[[Slots], str]] = {
    "product": lambda s: _pick(
        s.rng, s.products.fitting(s.case.needs) if s.case is not None else s.products.names
    ),
    "a_product": lambda s: ("an " if s["product"][0] in "AEIOU" else "a ") + s["product"],
    "order": lambda s: f"#NW-{_below(s.rng, 100000, 999999)}",
    "amount": lambda s: f"£{_below(s.rng, 8, 400)}.{_pick(s.rng, ('00', '50', '99', '95'))}",
    "fee": lambda s: _pick(s.rng, ("£4.95", "£5.99", "£6.95", "£7.99", "£9.95")),
    "date": lambda s: _day(s, -20, -2),
    "soon": lambda s: _day(s, 2, 12),
    "days": lambda s: str(_below(s.rng, 2, 15)),
    "carrier": lambda s: _pick(s.rng, _CARRIERS),
    "code": lambda s: (
        _pick(s.rng, ("SPRING", "WELCOME", "NW", "SAVE")) + str(_below(s.rng, 10, 99))
    ),
    "error": lambda s: _pick(s.rng, ("E-", "PAY-", "CHK-")) + str(_below(s.rng, 100, 999)),
    "last4": lambda s: str(_below(s.rng, 1000, 9999)),
    "tracking": lambda s: f"JD{_below(s.rng, 10**11, 10**12)}GB",
}


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


def _fresh(
    rng: random.Random, options: Sequence[str], slots: Slots, spare: Sequence[str] = ()
) -> str:
    """One of ``options`` not yet used in the conversation; when all are: one of ``spare``, or
    of ``options`` again without ``spare``."""
    used = slots.used
    fresh = [o for o in options if o not in used] or [o for o in spare if o not in used]
    text = _pick(rng, fresh or spare or options)
    used.add(text)
    return text


def _slot_names(template: str) -> set[str]:
    return {part.split("}")[0] for part in template.split("{")[1:]}


class Writer:
    """Writes the messages of one business, drawing from ``rng`` (deterministic)."""

    def __init__(self, rng: random.Random, products: Sequence[str | Product]) -> None:
        self.rng = rng
        self.products = Catalogue(products)

    def slots(self, today: date | None = None) -> Slots:
        """A new conversation, opened on ``today`` (dates in it fall around that day)."""
        return Slots(self.rng, self.products, today)

    def case(self, wording: str, slots: Slots) -> Case:
        """The conversation's case of the ``wording`` bank, picked on first use."""
        if slots.case is None:
            cases = CASES[wording]
            slots.case = cases[int(self.rng.random() * len(cases))]
        return slots.case

    def ticket(
        self, wording: str, customer: str, slots: Slots | None = None, *, channel: str = "email"
    ) -> tuple[str, str]:
        """The subject and first message of a new ticket, signed by ``customer``; the subject
        as its ``channel`` writes it (a mail client's "Re:" or "Fwd:" only on e-mail, the
        agent's plain words on a phone or chat ticket)."""
        rng = self.rng
        slots = slots if slots is not None else self.slots()
        case = self.case(wording, slots)
        subject = _pick(rng, case.subjects).format_map(slots)
        problem = _pick(rng, case.problems)
        told = _slot_names(problem)
        details = [d for d in case.details if rng.random() < 0.3 and not _slot_names(d) & told]
        name = customer.split(" ")[0] if rng.random() < 0.7 else customer
        body = _join(
            _pick(rng, _GREETINGS),
            " ".join(p for p in (_pick(rng, _OPENINGS), problem, *details[:2]) if p),
            _pick(rng, _CLOSINGS),
            name,
        ).format_map(slots)
        before, after, lower = _pick(rng, _SUBJECT_BEFORE), _pick(rng, _SUBJECT_AFTER), rng.random()
        if channel in _TYPED_BY_AGENT:
            subject = subject[:1].upper() + subject[1:]
        else:
            if channel != "email" and before in _MAIL_CLIENT:
                before = ""
            subject = before + subject + after
            if lower < 0.1:
                subject = subject.lower()
        return subject[:200], _casual(rng, body)

    def _now(self, wording: str, slots: Slots) -> Case:
        """Where the questions, notes and waits come from: the case, or after a reopen what
        went wrong with its solution."""
        return self.case(wording, slots) if slots.reopens == 0 else _REOPENED

    def question(self, wording: str, slots: Slots) -> int:
        """Which of the case's asks the agent asks next (one not asked yet, if any)."""
        asks = self._now(wording, slots).asks
        fresh = [i for i in range(len(asks)) if i not in slots.asked] or list(range(len(asks)))
        return fresh[int(self.rng.random() * len(fresh))]

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
        it) or "solve" (the case's solution; after a reopen, one that answers it)."""
        rng = self.rng
        slots = slots if slots is not None else self.slots()
        case, now = self.case(wording, slots), self._now(wording, slots)
        if stage == "ask":
            i = question % len(now.asks)
            middle = now.asks[i].text
            if i in slots.asked:
                middle = "Just to double-check: " + middle[0].lower() + middle[1:]
            slots.asked.append(i)
        elif stage == "wait":
            own = now.waits if now.waits and rng.random() < 0.7 else _WAITS
            middle = _fresh(rng, own, slots, _WAITS)
        elif slots.fix is None:
            slots.fix = case.fixes[int(rng.random() * len(case.fixes))]
            middle = slots.fix.text
        else:
            middle = _fresh(rng, slots.fix.again, slots, _LAST)
        hello = _pick(rng, _AGENT_HELLO if slots.replies else _AGENT_HELLO_FIRST)
        lead = _pick(rng, _AGENT_LEAD[slots.last])
        if middle.startswith(("Sorry", "I'm sorry")):
            lead = ""  # not sorry twice
        slots.replies += 1
        slots.last = "wait" if stage == "wait" else "agent"
        return _join(
            hello.format(customer=customer.split(" ")[0]),
            " ".join(p for p in (lead, middle.format_map(slots)) if p),
            _pick(rng, _AGENT_BYE).format(agent=agent.split(" ")[0]),
        )

    def note(self, wording: str, slots: Slots | None = None) -> str:
        """An internal note: what the ticket is waiting on."""
        slots = slots if slots is not None else self.slots()
        return _fresh(self.rng, self._now(wording, slots).notes, slots, _CHASES).format_map(slots)

    def customer(
        self,
        wording: str,
        stage: str,
        *,
        customer: str,
        question: int = 0,
        slots: Slots | None = None,
    ) -> str:
        """The customer's reply: ``stage`` "answer" (to ``question``) or "reopen" (the solution
        did not work)."""
        rng = self.rng
        slots = slots if slots is not None else self.slots()
        if stage == "answer":
            asks = self._now(wording, slots).asks
            i = question % len(asks)
            if i in slots.answers:  # asked again: the same answer
                said = slots.answers[i]
                text = _pick(rng, _AGAIN) + said[0].lower() + said[1:]
            else:
                text = slots.answers[i] = _pick(rng, asks[i].answers)
            slots.last = "answer"
        else:
            self.case(wording, slots)
            first = slots.fix is not None and slots.reopens == 0
            text = _pick(rng, slots.fix.reopens if first and slots.fix else _STILL)
            slots.reopens += 1
            slots.asked.clear()  # the questions about what went wrong are new
            slots.answers.clear()
            slots.last = "reopen"
        lead = _pick(rng, _CUSTOMER_LEAD[stage])
        return _casual(rng, _join(lead, text.format_map(slots), customer.split(" ")[0]))

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
