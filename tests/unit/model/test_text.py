"""Text from outside made printable (execd.model.text): escaped, never obeyed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from execd.model.text import printable, printable_lines


def test_controls_escape_sequences_c1_and_bidi_overrides_are_escaped() -> None:
    assert printable("bin\x1b[2Jance\x07") == "bin\\u001b[2Jance\\u0007"
    assert printable("a\rb\nc\x7f\x9b\u202e\U000e0001") == \
        "a\\u000db\\u000ac\\u007f\\u009b\\u202e\\U000e0001"


def test_printable_text_is_returned_as_it_is() -> None:
    assert printable("BTC/USDT ünïcode 日本 ✓") == "BTC/USDT ünïcode 日本 ✓"


def test_lines_keep_their_line_feeds_and_escape_the_rest() -> None:
    assert printable_lines("Traceback\n  File \"\x1b[2J\"\r\nError: \x07") == \
        "Traceback\n  File \"\\u001b[2J\"\\u000d\nError: \\u0007"


@given(st.text())
def test_any_text_comes_out_printable(text: str) -> None:
    assert printable(text).isprintable()
    assert all(line.isprintable() for line in printable_lines(text).split("\n"))
