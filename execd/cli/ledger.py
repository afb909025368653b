"""``execd ledger verify`` and ``execd ledger tail``: reading the ledger from the shell.

Neither writes to the ledger; verify checks the hash chain, and tail prints records
(:mod:`execd.cli.tail`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any, get_args

from execd.cli.configfile import ledger_dir as _ledger_dir
from execd.cli.configfile import with_config
from execd.cli.exits import status
from execd.model.errors import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    LedgerCorrupt,
    UsageError,
    WitnessUnreadable,
)
from execd.model.messages import RecordKind
from execd.model.reasons import STATUSES


def cmd_verify(args: argparse.Namespace) -> int:
    from execd.ledger import head
    from execd.ledger.scan import scan

    expect = None
    if args.expect:
        try:
            expect = head.parse_expect(args.expect)
        except UsageError as exc:
            print(f"--expect: {exc}", file=sys.stderr)
            return status(exc)
    directory = _ledger_dir(args)
    if directory is None:
        return EXIT_CONFIG
    if not directory.is_dir():
        print(f"{directory}: no ledger here", file=sys.stderr)
        return EXIT_FAILED
    try:
        witness = head.read(directory)
        # The chain must reach what the witness beside it and what --expect say: both
        # checked in one pass over the ledger.
        claims = [(claim, source) for claim, source in
                  ((witness, f"{directory / head.NAME}"), (expect, "--expect"))
                  if claim is not None]
        result = scan(directory, repair=False, expect=claims)
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
    checked = [f"{what} {claim.seq}" for what, claim in (("head witness", witness),
                                                           ("--expect", expect)) if claim]
    print(f"ok: {result.records} records, last seq {result.next_seq - 1}, "
          f"last hash {result.last_hash}"
          + (f" (reaches {', '.join(checked)})" if checked else " (no head witness)"))
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
    """Add ``ledger verify`` and ``ledger tail`` to the command line."""
    ledger = sub.add_parser("ledger", help="read the ledger").add_subparsers(
        dest="ledger_command", required=True)
    for name, func, text in (("verify", cmd_verify, "check the hash chain"),
                             ("tail", cmd_tail, "print records")):
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
