"""Byte-global offsets: located in the present segments, archived bytes counted first."""

from __future__ import annotations

from pathlib import Path

from execd.ledger.places import Layout, LineReader, Place


def _segments(directory: Path, contents: list[bytes]) -> list[tuple[Path, int]]:
    directory.mkdir(exist_ok=True)
    out = []
    for number, data in enumerate(contents, start=3):
        path = directory / f"segment-{number:08d}.jsonl"
        path.write_bytes(data)
        out.append((path, len(data)))
    return out


def test_offsets_are_found_in_their_segment_and_archived_ones_are_not(tmp_path: Path) -> None:
    segments = _segments(tmp_path, [b"ab\ncd\n", b"efg\n", b"h\n"])
    layout = Layout(100, segments)
    assert layout.end == 112
    assert layout.locate(99) is None and layout.locate(113) is None
    assert layout.locate(100) == Place(segments[0][0], 0)
    assert layout.locate(106) == Place(segments[1][0], 0)
    assert layout.locate(112) == Place(segments[2][0], 2)
    assert layout.positions_before(Place(segments[1][0], 2)) == {
        segments[0][0]: 6, segments[1][0]: 2}
    assert [(at, line.data) for at, line in layout.lines(103, 110)] == [
        (103, b"cd"), (106, b"efg")]
    assert [at for at, _ in layout.lines(106, 111)] == [106, 110]
    assert [line.data for _, line in layout.lines(100, 112, chunk=1)] == [
        b"ab", b"cd", b"efg", b"h"]
    reader = LineReader(layout)
    assert [reader.line_at(at) for at in (100, 103, 106, 110, 99)] == [
        b"ab", b"cd", b"efg", b"h", None]
    reader.close()


def test_a_layout_is_read_from_the_ledger_directory(tmp_path: Path) -> None:
    segments = _segments(tmp_path, [b"one\n", b"two\n"])
    layout = Layout.read(tmp_path)
    assert (layout.archived, layout.segments, layout.end) == (0, segments, 8)


def test_a_line_longer_than_the_limit_is_not_read(tmp_path: Path) -> None:
    segments = _segments(tmp_path, [b"x" * 10000 + b"\n"])
    reader = LineReader(Layout(0, segments))
    assert reader.line_at(0, limit=9000) is None
    assert reader.line_at(0) == b"x" * 10000
    reader.close()
