"""Nesting judged from the bytes: exact for JSON, linear for anything."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from execd.model.json_depth import MAX_JSON_DEPTH, exceeds


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


# Strings full of what could be mistaken for structure: brackets, quotes, escapes.
tricky = st.text(alphabet='[]{}"\\ax\u00e9\n', max_size=8)
values = st.recursive(
    st.none() | st.integers() | tricky,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky, inner, max_size=3),
    max_leaves=40,
)


@settings(max_examples=300)
@given(values, st.integers(0, 12), st.booleans())
def test_exact_for_json_whatever_the_strings_hold(value: Any, limit: int, ascii: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii).encode()
    assert exceeds(text, limit) == (depth(value) > limit)


def test_the_limit_itself_is_allowed() -> None:
    for n in (MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 1000, 100_000):
        text = b'{"a":' * (n - 1) + b"{}" + b"}" * (n - 1)
        assert exceeds(text) == (n > MAX_JSON_DEPTH), n
        assert exceeds(b"[" * n + b"]" * n) == (n > MAX_JSON_DEPTH), n


def test_brackets_inside_strings_are_text() -> None:
    assert not exceeds(json.dumps({"note": "[" * 5000 + '\\"{' * 500}).encode())


def test_unclosed_brackets_count_as_levels() -> None:
    assert exceeds(b'{"context":{"a":' + b"[" * 200)
    # Not JSON either way; an unterminated string is not a string, so its brackets count.
    assert exceeds(b'{"a":"' + b"[" * 200)


def test_hostile_escapes_take_linear_time() -> None:
    # An unterminated string of escaped quotes: a pattern for strings with escapes
    # inside would retry from every quote (quadratic); this returns at once.
    text = b"[" * 100 + b'"' + b'\\"' * 500_000
    assert exceeds(text)
    assert not exceeds(b"[]" * 100 + b'"' + b'\\"' * 500_000)
