"""The canonical form that signatures cover: what it refuses, and that it never overflows."""

from __future__ import annotations

import pytest

from execd.model.json_depth import MAX_JSON_DEPTH
from execd.sentinel.signatures import canonical, sign, verify


def test_canonical_form_sorts_keys_and_drops_the_signature() -> None:
    line = b'{"b": 1, "a": {"d": [1, 2], "c": "\xc3\xa9"}, "signature": "00"}'
    assert canonical(line) == '{"a":{"c":"é","d":[1,2]},"b":1}'.encode()
    assert verify(b"k" * 16, line, sign(b"k" * 16, line.replace(b"00", b"11")))


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 960, 1_000, 100_000])
def test_deep_lines_are_a_value_error_not_a_recursion_error(levels: int) -> None:
    line = b'{"kind":"intent","context":' + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"
    with pytest.raises(ValueError, match="nested more than 64 levels deep"):
        canonical(line)


def test_the_reader_s_limit_is_accepted() -> None:
    line = b'{"context":' + b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1) + b"}"
    assert canonical(line) == line
