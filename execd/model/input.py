"""The strict decoder of input lines: msgspec, plus exact JSON number syntax for decimals.

msgspec reads a decimal *string* with Python's ``Decimal()``, which also takes
underscores (``"1_000"``), surrounding whitespace (``" 1"``), any Unicode digits
(``"١٢"``), a plus sign, ``".5"``, ``"5."``, leading zeros and ``"NaN"``. A decimal
string here must be exactly a JSON number (``-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?``);
anything else is a schema violation naming the field. Plain JSON numbers are read
exactly, as msgspec always read them.

How, at little cost per intent: the reader decodes into wire twins of
:class:`~execd.model.messages.OrderIntent` and :class:`~execd.model.messages.Constraints` whose
decimal fields have a type msgspec hands to a hook with the string as written. The
hook checks each distinct string once and remembers its Decimal, so a string seen
before costs a dict lookup, less than the ``Decimal()`` call msgspec would make; a
new one costs that call plus printing the Decimal back (about 0.5 µs more). A
decimal given as a JSON number makes the hook give up on the fast path, and the
line is decoded again the way msgspec always did, its decimal strings checked one by
one (rare: the wire format is strings).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import Raw, Struct

from execd.model.errors import ExecdError
from execd.model.messages import (
    ClockTick,
    Constraints,
    DriftOrder,
    DriftTarget,
    Execution,
    InputRecord,
    OrderIntent,
    Target,
    TargetLeg,
)

# How many distinct decimal strings are remembered; past it the memory starts over.
# It bounds memory only: what a line decodes to never depends on it.
CACHE_STRINGS = 4096

_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_SHOWN = 40  # characters of a refused string quoted in the detail

if TYPE_CHECKING:
    JsonDecimal = Decimal
else:

    class _DecimalsAreInstances(type):
        # msgspec accepts what the hook returns for a type it does not know only if
        # it is an instance. The check is Decimal's own, in C: an ABC with Decimal
        # registered would run a Python-level check for every decimal of every intent.
        __instancecheck__ = Decimal.__instancecheck__

    class JsonDecimal(metaclass=_DecimalsAreInstances):
        """A decimal written in JSON number syntax; its values are plain Decimals."""


class WireConstraints(Constraints, frozen=True, forbid_unknown_fields=True, omit_defaults=True,
                      gc=False):
    """:class:`~execd.model.messages.Constraints` as read from a line (strict decimals)."""

    max_leverage: JsonDecimal | None = None


class WireExecution(Execution, frozen=True, forbid_unknown_fields=True, omit_defaults=True,
                    gc=False):
    """:class:`~execd.model.messages.Execution` as read from a line (strict decimals)."""

    visible: JsonDecimal | None = None
    participation: JsonDecimal | None = None


class WireIntent(OrderIntent, frozen=True, forbid_unknown_fields=True, omit_defaults=True,
                 tag="intent", tag_field="kind", gc=False, kw_only=True):
    """:class:`~execd.model.messages.OrderIntent` as read from a line (strict decimals).

    The same fields in the same order, so it encodes (and derives ids) exactly as
    an OrderIntent does; only the decimal fields' decoding differs.
    """

    quantity: JsonDecimal | None = None
    limit_price: JsonDecimal | None = None
    reference_price: JsonDecimal | None = None
    constraints: WireConstraints | None = None
    execution: WireExecution | None = None
    size_frac: JsonDecimal | None = None


class WireLeg(TargetLeg, frozen=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """:class:`~execd.model.messages.TargetLeg` as read from a line (strict decimals)."""

    quantity: JsonDecimal | None = None
    weight: JsonDecimal | None = None
    price: JsonDecimal | None = None


class WireDriftOrder(DriftOrder, frozen=True, forbid_unknown_fields=True, gc=False):
    """:class:`~execd.model.messages.DriftOrder` as read from a line (strict decimals)."""

    target_quantity: JsonDecimal


class WireTarget(Target, frozen=True, forbid_unknown_fields=True, omit_defaults=True,
                 tag="target", tag_field="kind", gc=False, kw_only=True):
    """:class:`~execd.model.messages.Target` as read from a line (strict decimals)."""

    targets: tuple[WireLeg, ...]
    capital: JsonDecimal | None = None
    execution: WireExecution | None = None


class WireDriftTarget(DriftTarget, frozen=True, forbid_unknown_fields=True,
                      omit_defaults=True, tag="drift_target", tag_field="kind", gc=False,
                      kw_only=True):
    """:class:`~execd.model.messages.DriftTarget` as read from a line (strict decimals)."""

    orders: tuple[WireDriftOrder, ...]


class _NumberGiven(ExecdError):
    """A decimal field holds a JSON number: the line is decoded on the exact path."""


_ABSENT = Raw(b"")


class _ConstraintTexts(Struct):
    max_leverage: Raw = _ABSENT


class _ExecutionTexts(Struct):
    visible: Raw = _ABSENT
    participation: Raw = _ABSENT


class _DecimalTexts(Struct):
    """The decimal fields of an intent line as written (everything else skipped)."""

    quantity: Raw = _ABSENT
    limit_price: Raw = _ABSENT
    reference_price: Raw = _ABSENT
    constraints: _ConstraintTexts | None = None
    execution: _ExecutionTexts | None = None
    size_frac: Raw = _ABSENT


class _LegTexts(Struct):
    quantity: Raw = _ABSENT
    weight: Raw = _ABSENT
    price: Raw = _ABSENT
    target_quantity: Raw = _ABSENT


class _TargetTexts(Struct):
    """The decimal fields of a target line as written."""

    capital: Raw = _ABSENT
    targets: list[_LegTexts] = []
    orders: list[_LegTexts] = []
    execution: _ExecutionTexts | None = None


_JSON_KINDS = {bool: "bool", type(None): "null", list: "array", dict: "object"}


def _refusal(text: str) -> str:
    shown = text if len(text) <= _SHOWN else text[:_SHOWN] + "…"
    return f"Expected a decimal in JSON number syntax, found {shown!r}"


class InputDecoder:
    """Decodes one input line into an intent or a tick; raises msgspec's errors."""

    def __init__(self) -> None:
        self._known: dict[str, Decimal] = {}
        self._fast: Callable[[bytes], InputRecord] = msgspec.json.Decoder(
            WireIntent | ClockTick | WireTarget | WireDriftTarget, dec_hook=self._decimal).decode
        self._exact: Callable[[bytes], InputRecord] = msgspec.json.Decoder(
            InputRecord).decode
        self._texts = msgspec.json.Decoder(_DecimalTexts).decode
        self._target_texts = msgspec.json.Decoder(_TargetTexts).decode

    def decode(self, line: bytes) -> InputRecord:
        """The record on ``line``: ValidationError, DecodeError and others as msgspec raises."""
        try:
            return self._fast(line)
        except _NumberGiven:
            return self._numbers(line)

    def _decimal(self, kind: type, value: Any) -> Decimal:
        if type(value) is str:
            # .get, not [] and KeyError: a raised exception costs more than a miss.
            decimal = self._known.get(value)
            return decimal if decimal is not None else self._learn(value)
        if type(value) in (int, float):
            raise _NumberGiven
        raise ValueError(f"Expected `decimal`, got `{_JSON_KINDS.get(type(value), 'value')}`")

    def _learn(self, value: str) -> Decimal:
        """Check a decimal string seen for the first time (lately), and remember it."""
        try:
            decimal: Decimal | None = Decimal(value)
        except ArithmeticError:
            decimal = None
        # A string exactly as Decimal prints a finite number is JSON number syntax
        # (no '+', no '_', no leading zero, ASCII digits): one C call decides most
        # strings; the others (1e5, 0.0000001, 1_000, NaN) go to the grammar itself.
        if decimal is None or not (decimal.is_finite() and str(decimal) == value):
            if _JSON_NUMBER.fullmatch(value) is None:
                raise ValueError(_refusal(value))
            if decimal is None:  # an exponent beyond what Decimal can hold
                raise ValueError("Invalid decimal string")  # msgspec's own words
        known = self._known
        if len(known) >= CACHE_STRINGS:
            known.clear()
        known[value] = decimal
        return decimal

    def _numbers(self, line: bytes) -> InputRecord:
        """A line with a decimal as a JSON number: decoded exactly, strings checked."""
        record = self._exact(line)
        if type(record) in (Target, DriftTarget):
            return self._target_numbers(line, record)
        texts = self._texts(line)
        fields = [("quantity", texts.quantity), ("limit_price", texts.limit_price),
                  ("reference_price", texts.reference_price), ("size_frac", texts.size_frac)]
        if texts.constraints is not None:
            fields.append(("constraints.max_leverage", texts.constraints.max_leverage))
        if texts.execution is not None:
            fields.append(("execution.visible", texts.execution.visible))
            fields.append(("execution.participation", texts.execution.participation))
        _strict(fields)
        return record

    def _target_numbers(self, line: bytes, record: InputRecord) -> InputRecord:
        texts = self._target_texts(line)
        fields = [("capital", texts.capital)]
        if texts.execution is not None:
            fields += [("execution.visible", texts.execution.visible),
                       ("execution.participation", texts.execution.participation)]
        for name, legs in (("targets", texts.targets), ("orders", texts.orders)):
            for i, leg in enumerate(legs):
                fields += [(f"{name}[{i}].{key}", getattr(leg, key)) for key in
                           ("quantity", "weight", "price", "target_quantity")]
        _strict(fields)
        return record


def _strict(fields: list[tuple[str, Raw]]) -> None:
    """Each decimal written as a string must be in JSON number syntax."""
    for path, raw in fields:
        written = bytes(raw)
        if written[:1] == b'"':
            text = msgspec.json.decode(written, type=str)
            if _JSON_NUMBER.fullmatch(text) is None:
                raise msgspec.ValidationError(f"{_refusal(text)} - at `$.{path}`")
