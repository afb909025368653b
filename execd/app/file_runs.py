"""The consumed-file tables while the daemon runs: a run per checkpoint, then compaction.

The checkpointer's shadow fold keeps its own
:class:`~execd.ledger.index.files.FileTables` (``ledger/file_index.py``
``OpenFiles.shadow``), whose entries changed since the last run are in memory. At a
checkpoint through X (docs/ARCHITECTURE.md, "Checkpoints"), :func:`write` (the
checkpointer's worker thread, the shadow has folded exactly through X) makes them a
run covering X, durable before the snapshot and so before the ``checkpoint`` record,
and the shadow forgets them; then it merges what is due, in the same thread, since
a run holds a few entries per checkpoint and a merge streams at most a few bytes a
file (unlike the id index's, no one waits on the loop for these runs).

The inbox's tables are not handed the runs: it asks about a file once, and what it
changed during this run stays in its own memory (one entry per file claimed in this
run, as before). Runs a merge removed stay readable to it through its descriptors.
"""

from __future__ import annotations

from typing import Any

from execd.ledger.index.files import VALUE, FileTables


def write(tables: FileTables, through: int, log: Any) -> None:
    """Make ``tables``' recent entries a run covering ``through``, durably, then merge
    the runs due. Blocking. OSError when the run cannot be written (the snapshot must
    then not be written either); a merge that fails is logged and changes nothing."""
    store = tables.store
    if store is None or through <= store.through_seq:
        # A restart folded records the tables already cover: nothing is new.
        return
    run = store.write_run(tables.pending(), through, VALUE)
    tables.attach(run)
    try:
        while (done := store.compact()) is not None:
            tables.replace(done)
    except OSError as exc:
        log.warning("index.uncompacted", index="files", through_seq=through,
                    error=exc.strerror or str(exc))
