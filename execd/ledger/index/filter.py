"""A blocked Bloom filter over intent ids: "surely new" in about a microsecond. Pure.

One 64-bit word per id (chosen by the id's mixed high bits) with up to six bits set
in it (three lookups into a fixed table of two-bit masks), so a check touches one
cache line. At the default 12 bits an id it holds 1.5 bytes an id and answers "maybe
seen" for about 1% of new ids (docs/ARCHITECTURE.md, "Hot-path choices"): the filter
only ever decides "surely new"; a "maybe" is settled by the exact structures behind it
(:class:`execd.ledger.index.ids.IdIndex`), so a false positive costs a lookup, never an
intent. Bits are only ever set, so a copy taken while ids are being added holds at
least the ids added before the copy began.

:class:`RunFilter` is the same filter made once for one run's keys and saved inside the
run file (:mod:`execd.ledger.index.runs`): a duplicate that passed this one asks each
run's filter, largest run first, and reads a block only from a run that says "maybe",
so it reads one block (plus the runs' false positives) however many runs there are.
Both share one hash (:func:`probe`, computed once per lookup); a run's filter picks
its word from a second mix of it, so its false positives do not follow this filter's.

The filter is sized for ``capacity`` ids; past that its false-positive rate rises
smoothly (correctness is unchanged), and the owner grows it by building a bigger one
from the runs (:meth:`IdIndex.grow`). The hash is fixed (not Python's per-process
``hash``), so a filter saved to a file means the same thing in the next process.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

from execd.model.errors import IndexDamaged

_M64 = M64 = (1 << 64) - 1
_MIX = 0xD6E8FEB86659FD93  # an odd 64-bit multiplier (a splitmix64 constant)


def _masks() -> tuple[int, ...]:
    # 4,096 words with two bits each, from splitmix64 over 0..4095: fixed forever, since
    # a saved filter must mean the same in every process.
    out = []
    state = 0
    for _ in range(4096):
        state = (state + 0x9E3779B97F4A7C15) & _M64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        z ^= z >> 31
        out.append((1 << (z & 63)) | (1 << ((z >> 6) & 63)))
    return tuple(out)


MASKS = _masks()
BITS_PER_ID = 12
#: A run's filter: fewer bits, since only a duplicate (or this filter's 1%) asks it,
#: and a false positive costs one block read, not an intent (about 4% at 8 bits).
RUN_BITS_PER_ID = 8
#: An odd multiplier: a run filter's word is ``((x * SPREAD) & M64) * words >> 64``
#: for :func:`probe`'s ``x``, so it does not follow the word this filter picks.
SPREAD = 0x9E3779B97F4A7C15
MAGIC = b"EXIDBLM\x00"
VERSION = 1
# magic, version, bits per id, capacity, ids added, through_seq, and the SHA-256 of
# all of it (the digest field zeroed) and the words
HEADER = struct.Struct(">8sHHQQQ32s")


def words_for(capacity: int, bits_per_id: int = BITS_PER_ID) -> int:
    """How many 64-bit words hold ``capacity`` ids at ``bits_per_id`` (at least one)."""
    return max(1, -(-capacity * bits_per_id // 64))


def probe(key: int) -> tuple[int, int]:
    """(hash, mask) of a 128-bit key: what :meth:`BlockedBloom.add` computes, for
    asking several :class:`RunFilter` s about one key without hashing it again."""
    folded = ((key >> 64) ^ key) & _M64
    x = (folded * _MIX) & _M64
    x ^= x >> 29
    return x, MASKS[x & 0xFFF] | MASKS[(x >> 12) & 0xFFF] | MASKS[(x >> 24) & 0xFFF]


class BlockedBloom:
    """The filter: ``add`` an id's 128-bit integer, ask ``may_contain`` about one."""

    __slots__ = ("_buf", "_view", "_words", "bits_per_id", "capacity", "count")

    def __init__(self, capacity: int, bits_per_id: int = BITS_PER_ID,
                 data: bytes | bytearray | None = None) -> None:
        """An empty filter for ``capacity`` ids, or one of ``data``'s words (a bytearray
        is kept as it is, not copied: a saved filter is read straight into it)."""
        self._words = words_for(capacity, bits_per_id)
        if data is None:
            data = bytearray(self._words * 8)
        self._buf = data if isinstance(data, bytearray) else bytearray(data)
        if len(self._buf) != self._words * 8:
            raise ValueError(f"a filter for {capacity} ids is {self._words * 8} bytes, "
                             f"found {len(self._buf)}")
        self._view = memoryview(self._buf).cast("Q")
        self.capacity = capacity
        self.bits_per_id = bits_per_id
        #: Ids added (a repeat counts again): how full the filter is, for growing it.
        self.count = 0

    @property
    def nbytes(self) -> int:
        """The filter's size in bytes (its memory, less a few dozen bytes of object)."""
        return len(self._buf)

    def add(self, key: int) -> bool:
        """Set ``key``'s bits; True if they were all set already ("maybe seen before")."""
        return self.admit(key) is not None

    def admit(self, key: int) -> tuple[int, int] | None:
        """:meth:`add` for a lookup that goes on to the runs: None when ``key`` was
        surely new (its bits are set now), else its :func:`probe`, to ask them with."""
        folded = ((key >> 64) ^ key) & _M64
        x = (folded * _MIX) & _M64
        x ^= x >> 29
        m = MASKS[x & 0xFFF] | MASKS[(x >> 12) & 0xFFF] | MASKS[(x >> 24) & 0xFFF]
        at = (x * self._words) >> 64
        word = self._view[at]
        self.count += 1
        if word & m == m:
            return x, m
        self._view[at] = word | m
        return None

    def may_contain(self, key: int) -> bool:
        """False when ``key`` was surely never added; True when it may have been."""
        folded = ((key >> 64) ^ key) & _M64
        x = (folded * _MIX) & _M64
        x ^= x >> 29
        m = MASKS[x & 0xFFF] | MASKS[(x >> 12) & 0xFFF] | MASKS[(x >> 24) & 0xFFF]
        return self._view[(x * self._words) >> 64] & m == m

    def update(self, keys: Iterable[int]) -> None:
        """Add every key (a bulk :meth:`add`, for building from runs)."""
        view, words, masks = self._view, self._words, MASKS
        added = 0
        for key in keys:
            folded = ((key >> 64) ^ key) & _M64
            x = (folded * _MIX) & _M64
            x ^= x >> 29
            view[(x * words) >> 64] |= (masks[x & 0xFFF] | masks[(x >> 12) & 0xFFF]
                                        | masks[(x >> 24) & 0xFFF])
            added += 1
        self.count += added

    def to_bytes(self) -> bytes:
        """The filter's words (little-endian on this machine), to save with its capacity."""
        return bytes(self._buf)

    def copy(self) -> BlockedBloom:
        """A copy another owner may add to (one copy of the words)."""
        twin = BlockedBloom(self.capacity, self.bits_per_id, bytearray(self._buf))
        twin.count = self.count
        return twin


def pack(bloom: BlockedBloom, through_seq: int) -> bytes:
    """A saved filter: a header naming the ledger seq its ids reach, then its words.

    It copies the words (1.5 bytes an id) on the caller's thread, so take it where
    nothing adds meanwhile, and rarely (every few hundred thousand ids): ids of runs
    through a later seq are re-added when it is loaded (:class:`IdIndex`).
    """
    words = bloom.to_bytes()
    fields = (MAGIC, VERSION, bloom.bits_per_id, bloom.capacity, bloom.count, through_seq)
    return HEADER.pack(*fields, _digest(fields, words)) + words


def _digest(fields: tuple[bytes, int, int, int, int, int], words: bytes | memoryview) -> bytes:
    # Over the header's other fields too: a flipped count or seq is damage as well.
    digest = hashlib.sha256(HEADER.pack(*fields, bytes(32)))
    digest.update(words)
    return digest.digest()


def unpack(data: bytes | bytearray, vouched: bool = False) -> tuple[BlockedBloom, int]:
    """(filter, through_seq) from :func:`pack`'s bytes; IndexDamaged if they are not.

    A bytearray becomes the filter's own buffer (its header deleted in place: no copy
    of tens of megabytes). ``vouched``: its bytes were checked already, against a
    digest of them all (the manifest's), so its own SHA-256 is not computed again.
    """
    if len(data) < HEADER.size:
        raise IndexDamaged("filter: shorter than its header")
    magic, version, bits, capacity, count, through, digest = HEADER.unpack_from(data)
    fields = (magic, version, bits, capacity, count, through)
    if magic != MAGIC or version != VERSION or not (
            vouched or _digest(fields, memoryview(data)[HEADER.size:]) == digest):
        raise IndexDamaged("filter: not a version-1 filter, or its SHA-256 differs")
    if isinstance(data, bytearray):
        del data[:HEADER.size]
        words: bytes | bytearray = data
    else:
        words = data[HEADER.size:]
    try:
        bloom = BlockedBloom(capacity, bits, words)
    except ValueError as exc:
        raise IndexDamaged(f"filter: {exc}") from None
    bloom.count = count
    return bloom, through


class RunFilter:
    """One run's filter (``words`` 64-bit words): written once with the run, then read.

    ``add`` is for the writer; ``may_hold`` takes :func:`probe`'s answer, so asking a
    dozen runs costs one hash and a dozen word reads.
    """

    __slots__ = ("_buf", "view", "words")

    def __init__(self, words: int, data: bytes | bytearray | None = None) -> None:
        """An empty filter of ``words`` words, or one of ``data`` (a bytearray is kept
        as it is, not copied: a run's filter is read straight into it)."""
        self.words = words
        if data is None:
            data = bytearray(words * 8)
        self._buf = data if isinstance(data, bytearray) else bytearray(data)
        if words < 1 or len(self._buf) != words * 8:
            raise ValueError(f"a run filter of {words} words, found {len(self._buf)} bytes")
        #: The words, for a caller asking many runs in one loop (``IdIndex``); read only.
        self.view = memoryview(self._buf).cast("Q")

    def add(self, key: int) -> None:
        """Set ``key``'s bits."""
        x, m = probe(key)
        self.view[(((x * SPREAD) & _M64) * self.words) >> 64] |= m

    def may_hold(self, x: int, m: int) -> bool:
        """False when the key :func:`probe` gave ``(x, m)`` for is surely not in the run."""
        return self.view[(((x * SPREAD) & _M64) * self.words) >> 64] & m == m

    def to_bytes(self) -> bytes:
        """The words (little-endian on this machine, as :class:`BlockedBloom`'s)."""
        return bytes(self._buf)
