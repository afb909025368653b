"""The inbox's second job: what a stop left in work/, checked against the ledger at start.

Every state a crash can leave is unambiguous (docs/ARCHITECTURE.md, "Durability and
restart"): a file in work/ without an ``input_file`` record resumes at the offset the
ledger gives (or is refused, if it shrank); one with the record is checked against
its recorded size and digest and moved on; a claim name is refused whole or moved on;
a started file gone from work/ is owed its outcome. Blocking (directory listings,
digests, renames): the daemon makes the inbox in a worker thread.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from execd.ledger.index.files import DoneTable, NameTable
from execd.model import reasons
from execd.model.files import kind_of
from execd.model.messages import InputFileRecord
from execd.reader.disposals import Disposals
from execd.reader.lakehouse import (
    CLAIM,
    FileJob,
    Lakehouse,
    claim_base,
    count_claim,
    describe_refused,
    repeat_job,
    size_of,
)


class Leftovers:
    """Jobs for what a stop left in work/, and moves for what was already finished.

    ``seen`` and ``repeats`` are the inbox's, and are filled in as leftovers are found.
    """

    def __init__(self, lakehouse: Lakehouse, *, progress: dict[str, tuple[int, int]],
                 done: DoneTable, refusing: set[str], changed: NameTable,
                 time: int, seen: set[str], repeats: dict[str, int], disposals: Disposals,
                 log: Any) -> None:
        self.work = lakehouse.work
        self.archive = lakehouse.archive
        self.rejected_dir = lakehouse.rejected
        self.progress = progress
        self.done = done
        self.refusing = refusing
        self.changed = changed
        # The logical time at start-up, for what start-up finds changed.
        self.time = time
        self.seen = seen
        self.repeats = repeats
        self.disposals = disposals
        self.move = disposals.move_logged
        self.log = log

    def jobs(self, rejected: NameTable) -> list[FileJob]:
        """Jobs for what a stop left in work/, and moves for what was already finished."""
        jobs = []
        present = set()
        for path in sorted(self.work.iterdir()):
            name = path.name
            present.add(name)
            base, problem = claim_base(name)
            if problem is not None:
                # Only execd writes work/; a name it could not have made is not ours.
                self.log.warning("input.foreign_in_work", file=base, problem=problem)
                continue
            if CLAIM.match(name):
                count_claim(self.repeats, name)
                if name in rejected:
                    self.move(path, self.rejected_dir, "input.leftover_moved")
                else:
                    jobs.append(self._leftover_refusal(path, name))
            elif name in self.done:
                jobs.extend(self._leftover_finished(path, name))
            elif name in rejected:
                # Its input_file record (reject) is durable; only the move was left.
                self.seen.add(name)
                self.move(path, self.rejected_dir, "input.leftover_moved")
            elif name in self.refusing:
                # Its whole-file outcome is recorded (it changed, or became unreadable,
                # while it was read): only its input_file record is owed.
                self.seen.add(name)
                line, offset = self.progress.get(name, (0, 0))
                jobs.append(FileJob(str(path), name, offset, line, resumed=True,
                                    refuse="recorded before the stop",
                                    refuse_reason=reasons.INPUT_FILE_CHANGED,
                                    refusal_recorded=True))
            else:
                self.seen.add(name)
                line, offset = self.progress.get(name, (0, 0))
                size = size_of(path)
                if size is not None and size < offset:
                    jobs.append(FileJob(
                        str(path), name, offset, line, resumed=True,
                        refuse_reason=reasons.INPUT_FILE_CHANGED,
                        refuse=f"truncated while the daemon was down: {offset} bytes were read "
                               f"(to line {line}), it now holds {size}; not read further"))
                    continue
                jobs.append(FileJob(str(path), name, offset, line, resumed=name in self.progress))
        for name in sorted(set(self.progress) - present):
            # Started, not finished, and gone: its remaining lines can never be read.
            line, offset = self.progress[name]
            self.seen.add(name)
            jobs.append(FileJob(
                str(self.work / name), name, offset, line, resumed=True, missing=True,
                refuse_reason=reasons.INPUT_FILE_CHANGED, refusal_recorded=name in self.refusing,
                refuse=f"deleted from work/ after it was claimed: lines after line {line} "
                       f"(byte {offset}) were never read"))
        return jobs

    def _leftover_refusal(self, path: Path, claim: str) -> FileJob:
        match = CLAIM.match(claim)
        assert match is not None
        recorded = claim in self.refusing
        if match["kind"] == "repeat":
            return repeat_job(path, claim, match["name"], self.done.get(match["name"]),
                              recorded=recorded)
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            mode = stat.S_IFREG
        detail = (f"not a regular file ({kind_of(mode)})" if not stat.S_ISREG(mode)
                  else "its name cannot be recorded as it is")
        reason = (reasons.INPUT_FILE_UNREADABLE if not stat.S_ISREG(mode)
                  else reasons.INPUT_FILE_NAME_INVALID)
        return FileJob(str(path), claim, refuse=detail, refuse_reason=reason,
                       refusal_recorded=recorded)

    def _leftover_finished(self, path: Path, name: str) -> list[FileJob]:
        """A file read to its end before the stop: moved on if it is still what was read."""
        if name in self.changed:
            self.move(path, self.rejected_dir, "input.leftover_moved")
            return []
        size, sha = self.done[name]
        now = describe_refused(str(path))
        if now == (size, sha):
            self.move(path, self.archive, "input.leftover_moved")
            return []
        # Recorded when the disposals run (the file then goes to rejected/).
        problem = (f"changed after it was read and recorded (size {size}, sha256 {sha[:12]}…):"
                   f" now size {now[0]}, sha256 {(now[1] or 'unreadable')[:12]}…; nothing "
                   "after the recorded size was read")
        record = InputFileRecord(name, size, sha, 0, "reject")
        self.disposals.found_changed(record, self.time, problem)
        return []
