"""The on-disk duplicate-id index (issue 15, item 2): a Bloom filter in memory in front
of sorted run files, so memory per id and the cost of a check stay flat with history.

:mod:`~execd.ledger.index.filter` (the filter, pure), :mod:`~execd.ledger.index.runs`
(the run format, lookup and merge), :mod:`~execd.ledger.index.store` (the directory,
manifest and compaction) and :mod:`~execd.ledger.index.ids` (``IdIndex``, the
``add(id) -> bool`` the sentinel asks). Each module's docstring says its part of the
seam with checkpoints.
"""
