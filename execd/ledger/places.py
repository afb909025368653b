"""Byte-global offsets in the ledger, and the segment file each one falls in.

An offset counts every byte of the ledger from its first record: the archived
segments' bytes first (``archived.json``, ledger/retention.py), then each segment of
the ledger directory in order, as a snapshot's ``resume`` counts them
(ledger/snapshot.py). Segment names never change, and archiving moves whole segments,
so an offset written once names the same record for as long as the ledger holds it.
:class:`Layout` is the map for one moment: the archived bytes and the present
segments with their sizes. Reading it is cheap (a stat per segment), never a scan.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from execd.ledger import retention
from execd.ledger.segments import MAX_LINE, READ_CHUNK, Line, list_segments, read_lines


class Place(NamedTuple):
    """An offset inside one present segment."""

    path: Path
    offset: int


class Layout:
    """Where each present segment begins, in byte-global offsets."""

    def __init__(self, archived: int, segments: list[tuple[Path, int]]) -> None:
        #: The bytes before the first present segment (archived segments).
        self.archived = archived
        self.segments = segments
        starts, at = [], archived
        for _, size in segments:
            starts.append(at)
            at += size
        self.starts = starts
        #: Just after the last byte of the ledger as it stands.
        self.end = at

    @classmethod
    def read(cls, ledger: Path) -> Layout:
        """The layout of the ledger in ``ledger`` now. Blocking (a stat per segment)."""
        archived = retention.archived_bytes(ledger)
        return cls(archived, [(path, path.stat().st_size) for path in list_segments(ledger)])

    def locate(self, offset: int) -> Place | None:
        """The segment and local offset of byte ``offset``; the end of the last segment
        for the ledger's very end; None when it is archived or past the end."""
        if offset < self.archived or offset > self.end:
            return None
        for (path, size), start in zip(self.segments, self.starts, strict=True):
            if offset < start + size:
                return Place(path, offset - start)
        if not self.segments:
            return None
        path, size = self.segments[-1]
        return Place(path, size)

    def positions_before(self, place: Place) -> dict[Path, int]:
        """Per present segment, how far a reader stopping at ``place`` has read: whole
        segments before it, ``place.offset`` in its own (``execd ledger tail``'s
        positions)."""
        read: dict[Path, int] = {}
        for path, size in self.segments:
            if path == place.path:
                read[path] = place.offset
                break
            read[path] = size
        return read

    def lines(self, start: int, end: int, chunk: int = READ_CHUNK) -> Iterator[tuple[int, Line]]:
        """Each whole line that starts at or after byte ``start`` (a line's start, in a
        present segment) and before byte ``end``, with its byte-global start, reading
        the segments in chunks."""
        first = self.locate(start)
        if first is None:
            return
        for (path, size), base in zip(self.segments, self.starts, strict=True):
            if base + size <= start and path != first.path:
                continue
            if base >= end:
                return
            offset = first.offset if path == first.path else 0
            for line in read_lines(path, offset, chunk, MAX_LINE):
                if base + line.start >= end:
                    return
                yield base + line.start, line


class LineReader:
    """One line read at a byte-global offset, with a descriptor kept per segment."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._fds: dict[Path, int] = {}

    def line_at(self, offset: int, limit: int = MAX_LINE) -> bytes | None:
        """The line that starts at ``offset`` (without its LF), or None when ``offset``
        is not in a present segment or no LF ends a line within ``limit`` bytes."""
        place = self.layout.locate(offset)
        if place is None:
            return None
        fd = self._fds.get(place.path)
        if fd is None:
            fd = self._fds[place.path] = os.open(place.path, os.O_RDONLY | os.O_CLOEXEC)
        parts: list[bytes] = []
        at, held, step = place.offset, 0, 4096
        while held <= limit:
            data = os.pread(fd, step, at)
            if not data:
                return None
            cut = data.find(b"\n")
            if cut >= 0:
                if held + cut > limit:
                    return None
                parts.append(data[:cut])
                return b"".join(parts)
            parts.append(data)
            held += len(data)
            at += len(data)
            step = min(step * 4, READ_CHUNK)
        return None

    def close(self) -> None:
        """Close every descriptor."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
