"""Reading files other programs control: regular files only, bounded, never blocking."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from execd.model.errors import FileRefused
from execd.model.files import open_regular, read_regular

SOCKETS: list[socket.socket] = []


def read_in_thread(path: Path, max_bytes: int) -> bytes | FileRefused:
    """read_regular in a thread, so that a read that blocks fails the test, not the run."""
    result: list[bytes | FileRefused] = []

    def run() -> None:
        try:
            result.append(read_regular(path, max_bytes))
        except FileRefused as exc:
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert result, f"read_regular({path}) blocked"
    return result[0]


def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_bytes(b'{"regime": "CALM"}')
    assert read_regular(path, 18) == b'{"regime": "CALM"}'
    # A link to a regular file is a regular file.
    link = tmp_path / "link.json"
    link.symlink_to(path)
    assert read_regular(link, 1 << 20) == b'{"regime": "CALM"}'
    with open_regular(path, 100) as handle:
        assert handle.read(5) == b'{"reg'


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "regime.json"
    os.mkfifo(fifo)
    refused = read_in_thread(fifo, 1 << 20)
    assert isinstance(refused, FileRefused)
    assert str(refused) == f"{fifo}: expected a regular file, found a FIFO"
    assert not refused.missing
    # Through a link too, and the same text every time.
    link = tmp_path / "link.json"
    link.symlink_to(fifo)
    again = read_in_thread(link, 1 << 20)
    assert isinstance(again, FileRefused) and again.found == "a FIFO"
    assert str(read_in_thread(fifo, 1 << 20)) == str(refused)


@pytest.mark.parametrize(("make", "found"), [
    (lambda p: p.mkdir(), "a directory"),
    (lambda p: p.symlink_to("/dev/zero"), "a character device"),
    (lambda p: SOCKETS.append(socket.socket(socket.AF_UNIX)) or SOCKETS[-1].bind(str(p)),
     "a socket"),
], ids=["directory", "device", "socket"])
def test_other_special_files_are_refused(tmp_path: Path, make: object, found: str) -> None:
    path = tmp_path / "x"
    make(path)  # type: ignore[operator]
    refused = read_in_thread(path, 1 << 20)
    while SOCKETS:
        SOCKETS.pop().close()
    assert isinstance(refused, FileRefused)
    assert (refused.expected, refused.found) == ("a regular file", found)


def test_a_file_over_the_bound_is_refused_by_its_size(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    path.write_bytes(b"x" * 101)
    with pytest.raises(FileRefused) as caught:
        read_regular(path, 100, "registry")
    assert str(caught.value) == (f"{path}: expected a registry of at most 100 bytes, "
                                 "found 101 bytes")
    assert read_regular(path, 101) == b"x" * 101


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileRefused) as caught:
        read_regular(tmp_path / "nothing.toml", 100, "TOML file")
    assert caught.value.missing
    assert str(caught.value) == (f"{tmp_path / 'nothing.toml'}: expected a readable TOML file, "
                                 "found No such file or directory")
    # A path through a file is not "missing": something is in the way.
    (tmp_path / "f").write_text("")
    with pytest.raises(FileRefused) as caught:
        read_regular(tmp_path / "f" / "x", 100)
    assert not caught.value.missing and caught.value.found == "Not a directory"
