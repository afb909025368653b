"""How deeply a JSON text nests, judged from its bytes before anything recursive reads it.

msgspec's decoder, Python's ``json`` and the encoders all recurse once per level of
nesting and give up with RecursionError near the interpreter's recursion limit, at
a depth that depends on how deep the call stack already is. So a line nested about
1,000 deep would be decoded in one place and crash another (``execd run`` and
``execd replay``, or a signature check further down the stack). Judging the depth
from the bytes against :data:`MAX_JSON_DEPTH`, far below that limit, makes every
line's fate the same wherever it is read.
"""

from __future__ import annotations

import re

# Levels of arrays and objects, the line's own object being level 1. Audit context
# nests a few levels; 64 leaves room for any honest producer, and keeps every
# recursive reader of an accepted line (decode, canonical form, encode, the ledger
# scan) more than 800 frames from the recursion limit.
MAX_JSON_DEPTH = 64

# Escapes go first, so that what remains of a string is a plain run between two
# quotes; both patterns match without backtracking, so the pass is linear even for
# hostile text (a pattern for strings with escapes inside can take quadratic time).
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_OPENING = frozenset(b"[{")


def exceeds(text: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``text`` nests arrays and objects deeper than ``limit`` levels.

    Exact for valid JSON. For text that is not JSON, brackets outside complete
    strings count, so the answer is still a pure function of the bytes.
    """
    # Each level needs its own opening bracket: few brackets cannot nest deep, and
    # counting them is one pass in C. Only texts with many go through the walk.
    if text.count(b"{") + text.count(b"[") <= limit:
        return False
    level = 0
    brackets = _STRING.sub(b"", _ESCAPE.sub(b"", text)).translate(None, _NOT_A_BRACKET)
    for byte in brackets:
        if byte in _OPENING:
            level += 1
            if level > limit:
                return True
        elif level:
            level -= 1
    return False
