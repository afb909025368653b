"""Decimals in input lines: exactly JSON number syntax as strings, JSON numbers read exactly."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execd.model import input as input_decoder
from execd.model.input import InputDecoder
from execd.model.messages import InputRecord, encode
from tests.helpers import intent

plain = msgspec.json.Decoder(InputRecord).decode  # how msgspec reads them, leniently
GRAMMAR = r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?"
FIELDS = ["quantity", "limit_price", "reference_price", "constraints.max_leverage", "size_frac"]


def line(field: str, value: Any, **fields: Any) -> bytes:
    body = intent(1, **{"order_type": "limit", "limit_price": "100", "reference_price": "100",
                        "constraints": {"max_leverage": "2"}, **fields})
    if field.startswith("constraints."):
        body["constraints"][field.split(".")[1]] = value
    else:
        body[field] = value
    return json.dumps(body, ensure_ascii=False).encode()


def json_number(text: str) -> bool:
    """An independent reading of the grammar: what Python's json takes as a bare number."""
    if not text.isascii() or text != text.strip() or text.lstrip("-") in ("NaN", "Infinity"):
        return False
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return type(value) in (int, float)


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("text", ["1_000", " 1", "1 ", "\u0661\u0662", "+1", ".5", "-.5", "5.",
                                  "5.e3", "007", "-01", "NaN", "-Infinity", "inf", "sNaN1",
                                  "", "-", "1e", "0x10", "1,5", "\u00a01"])
def test_decimal_strings_outside_json_number_syntax_are_refused(field: str, text: str) -> None:
    with pytest.raises(msgspec.ValidationError) as refused:
        InputDecoder().decode(line(field, text))
    assert str(refused.value) == (f"Expected a decimal in JSON number syntax, found {text!r} "
                                  f"- at `$.{field}`")


def test_a_refused_string_is_quoted_short() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"found '1{40}…' - at `\$.quantity`"):
        InputDecoder().decode(line("quantity", "1" * 100 + "_"))


@pytest.mark.parametrize("field", FIELDS)
def test_wrong_json_types_are_named_as_before(field: str) -> None:
    for value, kind in ((True, "bool"), ([1], "array"), ({}, "object")):
        with pytest.raises(msgspec.ValidationError,
                           match=rf"Expected `decimal`, got `{kind}` - at `\$.{field}`"):
            InputDecoder().decode(line(field, value))


@settings(max_examples=300)
@given(st.sampled_from(FIELDS), st.from_regex(GRAMMAR, fullmatch=True)
       | st.sampled_from(["0E1000000000000000000", "1e999999999999999999", "-0", "0.000"]))
def test_json_number_strings_read_as_msgspec_reads_them(field: str, text: str) -> None:
    raw = line(field, text)
    assert reading(InputDecoder().decode, raw) == reading(plain, raw)


def reading(decode: Any, raw: bytes) -> tuple[str, bytes | str]:
    """What a decoder makes of ``raw``: the encoded record (values, exponents, ids) or why not."""
    try:
        record = decode(raw)
    except msgspec.ValidationError as exc:  # an exponent beyond Decimal's range, for one
        return "refused", str(exc)
    return repr(record).replace("WireConstraints", "Constraints").replace(
        "WireIntent", "OrderIntent"), encode(record)


@settings(max_examples=500)
@given(st.sampled_from(FIELDS), st.text(alphabet="0123456789.eE+-_ \u0661nNaIif", max_size=8))
def test_a_decimal_string_is_accepted_exactly_when_it_is_a_json_number(field: str,
                                                                        text: str) -> None:
    try:
        InputDecoder().decode(line(field, text))
    except msgspec.ValidationError:
        accepted = False
    else:
        accepted = True
    assert accepted == json_number(text)


@settings(max_examples=200)
@given(st.sampled_from(FIELDS), st.one_of(st.integers(-10**30, 10**30),
                                          st.floats(allow_nan=False, allow_infinity=False)))
def test_json_numbers_are_read_exactly_as_before(field: str, number: int | float) -> None:
    raw = line(field, number)
    assert reading(InputDecoder().decode, raw) == reading(plain, raw)


def test_numbers_beside_a_bad_string_still_refuse_the_string() -> None:
    # A JSON number sends the line down the exact path; its strings are checked there.
    raw = line("quantity", 0.5, limit_price="1_0")
    with pytest.raises(msgspec.ValidationError, match=r"found '1_0' - at `\$.limit_price`"):
        InputDecoder().decode(raw)
    raw = line("constraints.max_leverage", " 2", quantity=1)
    with pytest.raises(msgspec.ValidationError, match=r"at `\$.constraints.max_leverage`"):
        InputDecoder().decode(raw)


def test_what_is_remembered_never_changes_a_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(input_decoder, "CACHE_STRINGS", 8)
    decoder = InputDecoder()
    lines = [line("quantity", f"{n}.5", limit_price=str(n % 3 + 1)) for n in range(50)]
    first = [reading(decoder.decode, raw) for raw in lines]
    assert len(decoder._known) <= 8
    assert [reading(decoder.decode, raw) for raw in reversed(lines)] == first[::-1]
    assert first == [reading(plain, raw) for raw in lines]
    with pytest.raises(msgspec.ValidationError):
        decoder.decode(line("quantity", "1_0"))
    assert decoder.decode(line("quantity", "10")).quantity == Decimal(10)  # type: ignore[union-attr]


# Ids derived from lines that give a quantity, as the release before sizing derived them:
# the new optional fields leave the encoding of such a line, and so its id, unchanged.
GOLDEN = [
    (b'{"kind":"intent","source_run":"r","venue":"binance","symbol":"BTC/USDT","side":"buy",'
     b'"quantity":"0.25"}', "17b12044-6f56-5d7f-825f-77fe9c794aaf"),
    (b'{"kind":"intent","source_run":"r","venue":"binance","symbol":"BTC/USDT","action":"ADD",'
     b'"quantity":1.5,"order_type":"limit","limit_price":"64250.50","urgency":"low",'
     b'"priority":7,"constraints":{"max_leverage":"2"},"execution":{"algorithm":"twap",'
     b'"duration":60,"slices":3},"reason_codes":["a"],"context":{"k":1}}',
     "ac115534-ef3f-5736-9804-634e2bb698ad"),
    (b'{"kind":"intent","source_run":"r","route":"btc","symbol":"BTC/USDT","side":"sell",'
     b'"quantity":"3"}', "ebb4b0b1-402c-5f4f-9942-28724faf1217"),
]


@pytest.mark.parametrize(("text", "expected"), GOLDEN)
def test_ids_of_lines_with_a_quantity_are_as_before(text: bytes, expected: str) -> None:
    from execd.model import ids

    assert str(ids.derived_intent_id(encode(InputDecoder().decode(text)))) == expected


def test_seed_001_lines_are_read_with_their_audit_fields() -> None:
    body = {"kind": "intent", "source_run": "pm-1", "venue": "binance", "symbol": "BTC/USDT",
            "action": "emergency_exit", "size_frac": 1.0, "urgency": "critical",
            "priority": 100, "reason_codes": ["s0"], "state": "S0", "prev_state": "",
            "a_final": 0.25, "e_final": 0.9, "position_id": "p-1", "token_contract": "0xab",
            "token_chain": "binance", "book_id": "B1", "timeframe": "1h",
            "risk_reason": None}
    decoded = InputDecoder().decode(json.dumps(body).encode())
    assert decoded.action == "emergency_exit" and decoded.quantity is None  # type: ignore[union-attr]
    assert decoded.size_frac == Decimal("1.0")  # type: ignore[union-attr]
    assert (decoded.state, decoded.prev_state, decoded.a_final) == ("S0", "", 0.25)  # type: ignore[union-attr]
    for bad in ({"action": "Add"}, {"state": "x" * 129}, {"size_of": "book"},
                {"a_final": "0.2"}, {"allocation": ""}):
        with pytest.raises(msgspec.ValidationError):
            InputDecoder().decode(json.dumps({**body, **bad}).encode())
