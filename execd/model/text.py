"""Text from outside shown to a person: what a record, a file name or a reply holds can
show on a terminal, never drive it.

A terminal obeys control characters (ESC starts a sequence that clears the screen,
retitles the window or sets colours, BEL rings), C1 controls and bidirectional
overrides (which reorder what is shown). An inbox file name, an intent's venue or
symbol and an operator's name are chosen by someone else, and positions keep theirs in
the ledger, so every place that prints such text to a person passes it through
:func:`printable` first (the ledger tail, the console log lines, ``ctl status``).
"""

from __future__ import annotations


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every character that is not printable (controls, escape sequences,
    bidirectional overrides) written as its ``\\u`` escape: what a record holds can
    show on a terminal, never drive it."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def printable_lines(text: str) -> str:
    """:func:`printable` for each line of a text of several (a traceback): its line
    feeds are kept, everything else that is not printable is escaped."""
    if text.isprintable():
        return text
    return "\n".join(printable(line) for line in text.split("\n"))
