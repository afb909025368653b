"""Reading a file that another program controls: a regular file only, of bounded size.

The daemon reads files it does not own: the lakehouse context, its config, key and
credential files. A path can name anything, and some things hang or flood a plain
``open().read()``: a FIFO blocks ``open`` until a writer appears (forever, if none
does, and a blocked worker thread cannot be cancelled, so a stop waits for it too);
a device can be endless (``/dev/zero``); a regular file can be larger than memory.

So these files are opened only after ``stat`` says they are regular, with
``O_NONBLOCK`` (opening a FIFO that replaced the file since then returns at once)
and ``O_NOCTTY``, then checked again with ``fstat`` on the open descriptor, which is
what is actually read. Symbolic links are followed: a link to a regular file is a
regular file; a link to a FIFO is refused like the FIFO. At most the bound is read,
so a file that grows while it is read is refused, not read without end.

Every refusal is one exception, :class:`FileRefused`, in the house style of
``expected …, found …``, and the same file always gives the same text.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from execd.model.errors import FileRefused

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC

_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symlink"),  # seen only by callers that do not follow links
)


def kind_of(mode: int) -> str | None:
    """What a non-regular file is ("a FIFO", ...), or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a special file"


def open_regular(path: str | Path, max_bytes: int, what: str = "file") -> BinaryIO:
    """``path`` opened for reading at offset 0, once it is known to be a regular file of
    at most ``max_bytes`` bytes; never blocks on the open.

    ``what`` names the file in messages ("TOML file", "key file"). Raises
    :class:`FileRefused`. The caller should still read at most ``max_bytes + 1``
    bytes: the size is only what it was at the check.
    """
    try:
        # stat before opening: opening a device can have effects of its own.
        before = os.stat(path)
        refusal = _refusal(path, before, max_bytes, what)
        if refusal is not None:
            raise refusal
        fd = os.open(path, _FLAGS)
    except FileRefused:
        raise
    except OSError as exc:
        raise _os_refusal(path, exc, what) from None
    try:
        # fstat what was opened: the path may have been replaced since the stat.
        refusal = _refusal(path, os.fstat(fd), max_bytes, what)
        if refusal is not None:
            raise refusal  # noqa: TRY301 - the handler closes the descriptor
        # Regular files ignore O_NONBLOCK; clear it so the handle is an ordinary one.
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | Path, max_bytes: int, what: str = "file") -> bytes:
    """The whole content of ``path``, a regular file of at most ``max_bytes`` bytes.

    Raises :class:`FileRefused` (see :func:`open_regular`), also when the file grew
    past the bound while it was read.
    """
    try:
        with open_regular(path, max_bytes, what) as handle:
            data = handle.read(max_bytes + 1)
    except FileRefused:
        raise
    except OSError as exc:
        raise _os_refusal(path, exc, what) from None
    if len(data) > max_bytes:
        raise FileRefused(path, f"a {what} of at most {max_bytes} bytes",
                          "more (it grew while it was read)")
    return data


def _refusal(path: str | Path, st: os.stat_result, max_bytes: int,
             what: str) -> FileRefused | None:
    kind = kind_of(st.st_mode)
    if kind is not None:
        return FileRefused(path, f"a regular {what}", kind)
    if st.st_size > max_bytes:
        return FileRefused(path, f"a {what} of at most {max_bytes} bytes",
                           f"{st.st_size} bytes")
    return None


def _os_refusal(path: str | Path, exc: OSError, what: str) -> FileRefused:
    missing = exc.errno == errno.ENOENT
    return FileRefused(path, f"a readable {what}", exc.strerror or type(exc).__name__,
                       missing=missing)
