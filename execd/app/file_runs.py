"""The consumed-file tables while the daemon runs: a run per checkpoint, merges aside.

The checkpointer's shadow fold keeps its own
:class:`~execd.ledger.index.files.FileTables` (``ledger/file_index.py``
``OpenFiles.shadow``), whose entries changed since the last run are in memory. At a
checkpoint through X (docs/ARCHITECTURE.md, "Checkpoints"), :func:`write` (the
checkpointer's worker thread, the shadow has folded exactly through X) makes them a
run covering X, durable before the snapshot and so before the ``checkpoint`` record,
and the shadow forgets them.

Merges (size-tiered, ``IndexStore.merge_due`` then ``adopt``) never run there: the
encoder waits for the snapshot, so a merge of a million entries would stall every
ledger write for seconds. When one is due, :func:`write` starts it in a thread of its
own (``merge_due`` writes the merged run, which no manifest names yet), and the next
:func:`write` makes a finished one live (``adopt``) and swaps the shadow's runs. The
entries' seqs decide between a key's entries (``ledger/index/files.py``), so a run
written while a merge was under way is right whatever the runs' order.

The inbox's tables are not handed the runs: it asks about a file once, and what it
changed during this run stays in its own memory (one entry per file claimed in this
run, as before). Runs a merge removed stay readable to it through its descriptors.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

from execd.ledger.index.files import VALUE, FileTables
from execd.ledger.index.store import IndexStore, Merged, plan_compaction
from execd.model.errors import IndexDamaged, RunDamaged


def write(tables: FileTables, through: int, through_hash: str, log: Any) -> None:
    """Make ``tables``' recent entries a run covering ``through`` (whose record's hash is
    ``through_hash``), durably; make a merge
    finished since live, and start the next one due. Blocking (the run's two fsyncs).
    OSError when the run cannot be written (the snapshot must then not be written
    either); a merge that fails is logged and changes nothing, but one that met a
    damaged block raises its RunDamaged."""
    store = tables.store
    if store is None or through <= store.through_seq:
        # A restart folded records the tables already cover: nothing is new.
        return
    adopt(tables, log)
    run = store.write_run(tables.pending(), through, VALUE, through_hash=through_hash)
    tables.attach(run)
    if tables.merging is None and plan_compaction(store.manifest.runs):
        tables.merging = _merge(store)


def adopt(tables: FileTables, log: Any) -> None:
    """If a merge of ``tables``' store finished, make it live and swap ``tables``' runs."""
    merging, store = tables.merging, tables.store
    if merging is None or store is None or not merging.done():
        return
    tables.merging = None
    try:
        merged = merging.result()
        if merged is not None:
            tables.replace(store.adopt(merged))
    except RunDamaged:
        # A block of a run being merged failed its check: the tables cannot be trusted
        # to answer, so the daemon stops and the restart rebuilds them (cli/serve.py).
        raise
    except (OSError, ValueError, IndexDamaged) as exc:
        # The index stays as it was: the merged run, never named, is an orphan the next
        # open removes.
        log.warning("index.uncompacted", index="files",
                    error=getattr(exc, "strerror", None) or str(exc))


def _merge(store: IndexStore) -> Future[Merged | None]:
    future: Future[Merged | None] = Future()

    def run() -> None:
        try:
            future.set_result(store.merge_due())
        except BaseException as exc:  # noqa: BLE001 - the future must always end
            future.set_exception(exc)  # adopt logs what it knows, close just waits

    threading.Thread(target=run, name="file-index-merge", daemon=True).start()
    return future
