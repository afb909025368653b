"""A stored line must be the bytes execd wrote, not only decode to fields whose hash
matches: a CRLF, a member execd never writes, reordered keys, extra whitespace or an
escaped key is corruption, for ``ledger verify`` and for start-up alike."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from execd.cli.main import main
from execd.ledger.scan import scan
from execd.ledger.segments import list_segments
from execd.model.errors import LedgerCorrupt
from tests.ledgers import build, rewrite


def _reordered(line: bytes) -> bytes:
    cut = line.index(b',"hash":')
    return b'{"hash":' + line[cut + 8:-2] + b"," + line[1:cut] + b"}\n"


EDITS: dict[str, Callable[[bytes], bytes]] = {
    "crlf": lambda line: line[:-1] + b"\r\n",
    "injected": lambda line: line.replace(b'{"v":1', b'{"approved_by":"ceo","v":1', 1),
    "reordered": _reordered,
    "whitespace": lambda line: line.replace(b",", b" ,  ", 3),
    "escaped": lambda line: line.replace(b'"kind":"stop"', b'"kind":"st\\u006fp"'),
}


@pytest.mark.parametrize("edit", EDITS, ids=list(EDITS))
@pytest.mark.parametrize("where", [2, 5], ids=["middle", "last"])
def test_a_line_execd_never_wrote_fails_verify_and_start_up(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: str, where: int) -> None:
    lines = build(tmp_path, 6)
    lines[where] = EDITS[edit](lines[where])
    rewrite(tmp_path, lines)
    before = list_segments(tmp_path)[0].read_bytes()
    assert main(["ledger", "verify", "--ledger", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAILED: ") and (
        f"record seq {where + 1} is not the bytes execd writes" in out), out
    # Readable and whole: never a torn tail to cut, wherever it stands.
    with pytest.raises(LedgerCorrupt, match=f"record seq {where + 1} is not the bytes"):
        scan(tmp_path, repair=True)
    assert list_segments(tmp_path)[0].read_bytes() == before


def test_the_lines_execd_writes_verify(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    build(tmp_path, 6)
    assert main(["ledger", "verify", "--ledger", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("ok: 6 records")
