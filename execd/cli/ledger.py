"""``execd ledger verify``, ``tail`` and ``archive``: the ledger from the shell.

verify checks the hash chain (archived segments included, or from the newest checkpoint
the chain vouches for), tail prints records (:mod:`execd.cli.tail`), and archive moves
segments a checkpoint covers into the archive (:mod:`execd.ledger.retention`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any, get_args

from execd.cli.configfile import ledger_dir as _ledger_dir
from execd.cli.configfile import with_config
from execd.cli.exits import status
from execd.model.errors import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    InUse,
    LedgerCorrupt,
    UsageError,
    WitnessUnreadable,
)
from execd.model.messages import RecordKind
from execd.model.reasons import STATUSES


def _claims(args: argparse.Namespace,
            directory: Path) -> tuple[list[Any], list[tuple[str, int]]]:
    """The heads the chain must reach (the witness beside it, --expect), and each one's
    name and seq."""
    from execd.ledger import head

    expect = head.parse_expect(args.expect) if args.expect else None
    witness = head.read(directory)
    pairs = ((witness, f"{directory / head.NAME}", "head witness"),
             (expect, "--expect", "--expect"))
    claims = [(claim, source) for claim, source, _ in pairs if claim is not None]
    return claims, [(f"{what} {claim.seq}", claim.seq) for claim, _, what in pairs
                    if claim is not None]


def _newest_checkpoint(directory: Path, claims: list[Any]) -> tuple[Any, list[str]]:
    """The newest checkpoint the chain vouches for, by start-up's own checks (its record,
    sha256, size and head hash; any config), as (name, Resume), or None; and the reasons
    for each one passed over."""
    from execd.ledger import checkpoints
    from execd.ledger.recovery import vouched

    witness = next((claim for claim, source in claims if source != "--expect"), None)
    passed = []
    for path in checkpoints.listed(directory):
        found = vouched(directory, path, None, witness)
        if isinstance(found, str):
            passed.append(f"{path.name}: {found}")
            continue
        _, resume = found
        for claim, source in claims:
            if claim.seq == resume.seq and claim.hash != resume.hash:
                passed.append(f"{path.name}: {source} names another hash for its last record")
                break
        else:
            return (path.name, resume), passed
    return None, passed


def cmd_verify(args: argparse.Namespace) -> int:
    from execd.ledger import retention
    from execd.ledger.scan import scan

    directory = _ledger_dir(args)
    if directory is None:
        return EXIT_CONFIG
    if not directory.is_dir():
        print(f"{directory}: no ledger here", file=sys.stderr)
        return EXIT_FAILED
    try:
        # The chain must reach what the witness beside it and what --expect say: both
        # checked in one pass over the ledger.
        claims, checked = _claims(args, directory)
    except UsageError as exc:
        print(f"--expect: {exc}", file=sys.stderr)
        return status(exc)
    except WitnessUnreadable as exc:
        print(f"FAILED: {exc}")
        return EXIT_FAILED
    began = ""
    try:
        if args.from_checkpoint:
            found, passed = _newest_checkpoint(directory, claims)
            for reason in passed:
                print(f"checkpoint passed over: {reason}")
            if found is None:
                print(f"FAILED: no checkpoint in {directory} that the chain vouches for")
                return EXIT_FAILED
            began = f", from checkpoint {found[0]} (after record {found[1].seq})"
            start = found[1]
            early = [claim for claim, source in claims
                     if source == "--expect" and claim.seq < start.seq]
            if early:
                # Saying nothing would read as checked: the scan starts after it.
                print(f"FAILED: --expect {early[0].seq}: before checkpoint {found[0]} (after "
                      f"record {start.seq}), which --from-checkpoint starts after; not "
                      "checked (verify without --from-checkpoint checks it)")
                return EXIT_FAILED
            # Claims before it are plain verify's: not said to be reached.
            claims = [claim for claim in claims if claim[0].seq >= start.seq]
            checked = [(name, seq) for name, seq in checked if seq >= start.seq]
        else:
            start, segments = retention.verify_archived(directory, claims)
            if segments:
                began = f", {segments} archived segments included"
        result = scan(directory, repair=False, expect=claims, start=start)
    except (LedgerCorrupt, WitnessUnreadable) as exc:
        # A damaged ledger is what verify exists to find: its answer, not its error,
        # so verify fails (1) where a start on this ledger is refused (3).
        print(f"FAILED: {exc}")
        return EXIT_FAILED
    if result.torn is not None:
        torn = result.torn
        print(f"FAILED: {torn.segment} at byte {torn.offset}: {torn.problem} "
              f"({torn.length} bytes after {result.records} valid records; "
              "a torn tail that `execd run` would cut off)")
        return EXIT_FAILED
    print(f"ok: {result.records} records, last seq {result.next_seq - 1}, "
          f"last hash {result.last_hash}"
          + (f" (reaches {', '.join(name for name, _ in checked)})" if checked
             else " (no head witness)") + began)
    return EXIT_OK


def cmd_archive(args: argparse.Namespace) -> int:
    from execd.ledger import retention

    directory = _ledger_dir(args)
    if directory is None:
        return EXIT_CONFIG
    if not directory.is_dir():
        print(f"{directory}: no ledger here", file=sys.stderr)
        return EXIT_FAILED
    try:
        moved = retention.archive(directory, Path(args.to) if args.to else None)
    except InUse as exc:
        print(f"{exc}: archive only while the daemon is stopped", file=sys.stderr)
        return status(exc)
    except LedgerCorrupt as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if not moved:
        print("nothing to archive: no segment but the newest lies wholly at or before the "
              "oldest kept checkpoint")
        return EXIT_OK
    where = retention.archive_dir(directory, retention.read_manifest(
        directory / retention.ARCHIVED))
    print(f"archived {len(moved)} segments (records {moved[0].first_seq}.."
          f"{moved[-1].last_seq}) to {where}")
    return EXIT_OK


def cmd_tail(args: argparse.Namespace) -> int:
    from execd.cli.tail import check_filters, tail

    # A filter no record can match would print nothing and look like an empty ledger.
    try:
        filters = check_filters(args.kind or "", args.venue or "", args.status or "",
                                args.intent or "")
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return status(exc)
    if args.lines < 0:
        print(f"-n: expected a number of records >= 0 (0: all), found {args.lines}",
              file=sys.stderr)
        return EXIT_CONFIG
    directory = _ledger_dir(args)
    if directory is None:
        return EXIT_CONFIG
    if not directory.is_dir():
        print(f"{directory}: no ledger here", file=sys.stderr)
        return EXIT_FAILED
    with contextlib.suppress(KeyboardInterrupt):  # the way to stop `tail -f`
        sys.stdout.flush()  # tail writes bytes, under the text layer
        tail(directory, sys.stdout.buffer, last=args.lines, follow=args.follow,
             as_json=args.json, filters=filters, encoding=sys.stdout.encoding or "utf-8")
    return EXIT_OK


def register(sub: Any) -> None:
    """Add ``ledger verify``, ``ledger tail`` and ``ledger archive`` to the command line."""
    ledger = sub.add_parser("ledger", help="read the ledger, archive old segments"
                            ).add_subparsers(dest="ledger_command", required=True)
    for name, func, text in (("verify", cmd_verify, "check the hash chain"),
                             ("tail", cmd_tail, "print records"),
                             ("archive", cmd_archive, "move segments a checkpoint covers into "
                              "the archive, gzip-compressed (the daemon stopped)")):
        p = ledger.add_parser(name, help=text)
        with_config(p)
        p.add_argument("--ledger",
                       help="ledger directory (default: the config's daemon.ledger_dir)")
        p.set_defaults(func=func)
        if name == "verify":
            p.add_argument("--expect", metavar="SEQ:HASH",
                           help="the chain must reach record SEQ with hash HASH, 64 hex "
                                "digits (a head kept elsewhere: the ledger.head log line, an "
                                "earlier verify; default: only the head.json beside the "
                                "ledger)")
            p.add_argument("--from-checkpoint", action="store_true",
                           help="check from the newest checkpoint the chain vouches for to "
                                "the end, as start-up does (default: the whole chain, "
                                "archived segments included)")
        if name == "archive":
            p.add_argument("--to", metavar="DIR",
                           help="the archive directory, relative to the ledger's unless "
                                "absolute (default: <ledger_dir>/archive, or the one an "
                                "earlier archive used)")
        if name == "tail":
            p.add_argument("-n", "--lines", type=int, default=10,
                           help="print the last N records, 0 for all (default: 10)")
            p.add_argument("-f", "--follow", action="store_true",
                           help="then keep printing records as they are appended, until "
                                "Ctrl-C (default: stop after the last)")
            p.add_argument("--json", action="store_true",
                           help="print the stored lines exactly, byte for byte, for jq "
                                "(a line that is not a record included, one longer than "
                                "16 MiB as a note; default: one readable line per record)")
            p.add_argument("--kind", help="only records of this kind: one of "
                           f"{', '.join(get_args(RecordKind))} (default: every kind)")
            p.add_argument("--venue", help="only outcomes of this venue, a name from the "
                           "config's [venues] (default: every venue)")
            p.add_argument("--status", help="only outcomes with this status, in any case: one "
                           f"of {', '.join(STATUSES)} (default: every status)")
            p.add_argument("--intent", help="only outcomes of this intent: its id or the first "
                           "characters of it (default: every intent)")
