from __future__ import annotations

import pytest

from servicecycle.tickets.content import body, fold_quoted, sanitise_html


@pytest.mark.parametrize(
    ("markup", "new", "quoted"),
    [
        (  # a plain-text reply with "On ... wrote:" and ">" lines
            body(
                text="Worked, thanks!\n\nOn Mon, 30 Nov 2026, Desk <d@x.test> wrote:\n> Try again"
            )[0],
            "Worked, thanks!",
            "&gt; Try again",
        ),
        (  # Gmail's HTML
            sanitise_html(
                "<div dir=ltr>New answer</div><div class=gmail_quote><div class=gmail_attr>"
                "On Mon, Nov 30, 2026 at 9:12 AM Desk &lt;d@x.test&gt; wrote:<br></div>"
                "<blockquote>old text</blockquote></div>"
            ),
            "New answer",
            "old text",
        ),
        (  # Outlook's header block
            sanitise_html(
                "<div>See below.</div><div><b>From:</b> Desk &lt;d@x.test&gt;<br>"
                "<b>Sent:</b> Monday<br>Subject: Re: order</div><div>old text</div>"
            ),
            "See below.",
            "old text",
        ),
        (  # a French client
            body(text="Merci !\n\nLe lun. 30 nov. 2026, Desk a écrit :\n> Bonjour")[0],
            "Merci !",
            "Bonjour",
        ),
        (  # the signature delimiter
            body(text="Invoice attached.\n\n-- \nBen Okafor\nAcme Ltd")[0],
            "Invoice attached.",
            "Acme Ltd",
        ),
        (
            body(text="Forwarding.\n\n-----Original Message-----\nFrom: x")[0],
            "Forwarding.",
            "From: x",
        ),
    ],
)
def test_quoted_history_and_signatures_fold_after_the_new_text(
    markup: str, new: str, quoted: str
) -> None:
    head, tail = fold_quoted(markup)
    assert new in head and quoted not in head
    assert quoted in tail


@pytest.mark.parametrize(
    "markup",
    [
        "<p>Nothing quoted here; the word wrote: alone is not a quote.</p>",
        "<blockquote><p>A message that is all quote stays as it is.</p></blockquote>",
        body(text="Order 12 > order 11, and 3 > 2.")[0],
    ],
)
def test_messages_without_a_quote_are_left_whole(markup: str) -> None:
    assert fold_quoted(markup) == (markup, "")


def test_both_parts_are_balanced_html() -> None:
    head, tail = fold_quoted("<div><p>New</p><blockquote><p>old <b>bold</b></p></blockquote></div>")
    assert head == "<div><p>New</p></div>"
    assert tail.startswith("<blockquote>") and tail.endswith("</blockquote>")
