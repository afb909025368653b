"""``execd lakehouse rebuild``: the lakehouse's derived files, from the ledger
(README, "The audit files")."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from execd.app.audit_files import rebuild
from execd.cli.configfile import ledger_dir, load, with_config
from execd.ledger.segments import exclusive
from execd.model.errors import EXIT_CONFIG, EXIT_OK, LakehouseInUse


def register(sub: Any) -> None:
    """Add ``lakehouse rebuild`` to the command line."""
    house = sub.add_parser("lakehouse", help="the lakehouse's files derived from the ledger")
    cmds = house.add_subparsers(dest="lakehouse_command", required=True)
    build = cmds.add_parser(
        "rebuild", help="write execution_logs.jsonl, audit/audit.jsonl and "
        "portfolio_actual_state.json again from the whole ledger", description=(
            "Derive the three files from every record of the ledger and replace them "
            "atomically: what `execd run` keeps up to date as records become durable, "
            "byte for byte. Into the lakehouse only while no daemon runs on it (its lock "
            "is taken); --into writes them under another directory."))
    with_config(build)
    build.add_argument("--ledger", help="the ledger directory (default: the config's "
                       "daemon.ledger_dir)")
    build.add_argument("--into", help="write the files under this directory (default: the "
                       "config's lakehouse, which needs no daemon running on it)")
    build.set_defaults(func=cmd_lakehouse_rebuild)


def cmd_lakehouse_rebuild(args: argparse.Namespace) -> int:
    loaded = load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    ledger = ledger_dir(args) or Path(loaded.config.daemon.ledger_dir)
    lakehouse = loaded.config.lakehouse.root
    if args.into:
        done = rebuild(Path(args.into), ledger)
        where = args.into
    else:
        with exclusive(lakehouse, LakehouseInUse, "the lakehouse"):
            done = rebuild(lakehouse, ledger)
        where = str(lakehouse)
    print(f"ok: {done.records} records of {ledger} -> {where}: execution_logs.jsonl, "
          "audit/audit.jsonl, portfolio_actual_state.json")
    if done.first is not None and done.first > 1:
        print(f"note: the ledger begins at seq {done.first} (the records before were "
              "archived): their fills are not in these files", file=sys.stderr)
    return EXIT_OK
