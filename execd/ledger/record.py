"""Ledger record format and the hash chain (sans-I/O).

A record is one JSON line::

    {"v":1,"seq":7,"time":120,"kind":"outcome","prev":"<64 hex>","body":{...},"hash":"<64 hex>"}

``hash`` is the SHA-256 of the same line without its ``hash`` member, i.e. of the
canonical encoding of :class:`RecordHead`; ``prev`` is the previous record's hash
(64 zeros for the first). Editing, removing or reordering any record breaks the chain.
"""

from __future__ import annotations

import hashlib

import msgspec
from msgspec import Raw, Struct

from execd.model.messages import SCHEMA_VERSION

GENESIS = "0" * 64


class RecordHead(Struct, frozen=True):
    """What a record's hash covers, in canonical field order."""

    v: int
    seq: int
    time: int
    kind: str
    prev: str
    body: Raw


class Record(RecordHead, frozen=True):
    """A record as stored: the head plus its own hash (encoded last)."""

    hash: str

    def head_bytes(self) -> bytes:
        """The canonical bytes this record's hash must cover."""
        return _head_encoder.encode(
            RecordHead(self.v, self.seq, self.time, self.kind, self.prev, self.body)
        )

    def hash_ok(self) -> bool:
        """True when ``hash`` matches the record's content."""
        return hashlib.sha256(self.head_bytes()).hexdigest() == self.hash

    def problem(self, line: bytes) -> str:
        """Why ``line``, which this record was decoded from, is not the line execd wrote
        for it ("" when it is): its hash does not match, or its bytes are not the
        canonical ones (:class:`LedgerChain`'s), though they decode to the same fields.

        The hash covers a re-encoding of the decoded fields, so without the second check
        a CRLF, extra whitespace, reordered or escaped keys, or a member execd never
        writes (``"approved_by"``: the decoder skips unknown fields) would pass.
        """
        head = self.head_bytes()
        if hashlib.sha256(head).hexdigest() != self.hash:
            return f"record seq {self.seq} does not match its hash (edited)"
        if line != head[:-1] + b',"hash":"' + self.hash.encode() + b'"}':
            return (f"record seq {self.seq} is not the bytes execd writes (its fields and "
                    "hash agree, but its line was re-encoded or added to)")
        return ""


_head_encoder = msgspec.json.Encoder()
record_decoder = msgspec.json.Decoder(Record)


class LedgerChain:
    """Numbers records and links each to the previous one's hash.

    The line is formatted by hand rather than through msgspec because this runs
    once per record on the writer's hot path; a test holds it byte-equal to the
    msgspec encoding of :class:`RecordHead` that verification uses.
    """

    def __init__(self, next_seq: int = 1, prev_hash: str = GENESIS, last_time: int = 0) -> None:
        self.next_seq = next_seq
        self.prev_hash = prev_hash
        self.last_time = last_time

    def append(self, kind: str, time: int, body: bytes) -> bytes:
        """Chain one record with JSON ``body`` and return its line (newline included)."""
        head = b'{"v":%d,"seq":%d,"time":%d,"kind":"%s","prev":"%s","body":%s}' % (
            SCHEMA_VERSION,
            self.next_seq,
            time,
            kind.encode(),
            self.prev_hash.encode(),
            body,
        )
        digest = hashlib.sha256(head).hexdigest()
        self.prev_hash = digest
        self.next_seq += 1
        self.last_time = time
        return b'%s,"hash":"%s"}\n' % (head[:-1], digest.encode())
