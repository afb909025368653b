"""``execd plan …`` and ``execd season …``: governance from the command line.

Every change needs ``--reason`` and ``--actor`` and is refused (exit 1, one line on
stderr saying why) when the state machine or a frozen season does not allow it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import msgspec

from execd.cli.exits import status
from execd.governance.plan_ledger import PlanLedger
from execd.model.clock import utc_now_iso
from execd.model.errors import EXIT_CONFIG, EXIT_OK, GovernanceError
from execd.model.messages import encode

LedgerFor = Callable[[argparse.Namespace], Path | None]


def _plan_line(plan: object) -> str:
    fields = msgspec.structs.asdict(plan)  # type: ignore[arg-type]
    return (f"{fields['plan_id']} {fields['state']} season={fields['season_id']} "
            f"risk_profile={fields['risk_profile_id']} items={len(fields['portfolio_item_ids'])}")


def _run(args: argparse.Namespace, ledger_for: LedgerFor, out: TextIO, err: TextIO) -> int:
    directory = ledger_for(args)
    if directory is None:
        return EXIT_CONFIG
    ledger = PlanLedger(directory)
    try:
        if args.command == "season":
            with ledger.change() as (gov, append):
                event = gov.season(args.season, args.season_command.upper(), reason=args.reason,
                                   actor=args.actor, now_utc=utc_now_iso())
                append(event)
            done = "frozen" if event.action == "FREEZE" else "unfrozen"
            out.write(f"season {event.season_id} {done} by {event.actor}\n")
            return EXIT_OK
        action = args.plan_command
        if action == "create":
            with ledger.change() as (gov, append):
                created = gov.create(args.season, args.item, args.risk_profile,
                                     reason=args.reason, actor=args.actor,
                                     now_utc=utc_now_iso(), snapshot_ref=args.snapshot_ref)
                append(created)
                out.write(_plan_line(gov.plans[created.plan_id]) + "\n")
            return EXIT_OK
        if action in ("show", "list"):
            gov = ledger.load()
            if action == "list":
                for plan in sorted(gov.plans.values(), key=lambda p: (p.season_id, p.plan_id)):
                    if not args.season or plan.season_id == args.season:
                        out.write(_plan_line(plan) + "\n")
                return EXIT_OK
            if args.plan_id not in gov.plans:
                raise GovernanceError(f"no plan {args.plan_id}")  # noqa: TRY301 - one refusal path
            shown = {"plan": gov.plans[args.plan_id], "events": gov.events[args.plan_id]}
            out.write(msgspec.json.format(encode(shown)).decode() + "\n")
            return EXIT_OK
        with ledger.change() as (gov, append):
            moved = gov.transition(args.plan_id, action.upper(), reason=args.reason,
                                   actor=args.actor, now_utc=utc_now_iso())
            append(moved)
            out.write(_plan_line(gov.plans[moved.plan_id]) + "\n")
    except GovernanceError as refused:
        err.write(f"refused: {refused}\n")
        return status(refused)
    return EXIT_OK


def register(sub: argparse._SubParsersAction, with_config: Callable[[argparse.ArgumentParser],  # type: ignore[type-arg]
             None], ledger_for: LedgerFor) -> None:
    """Add the ``plan`` and ``season`` commands to the top-level parser."""

    def handler(args: argparse.Namespace) -> int:
        return _run(args, ledger_for, sys.stdout, sys.stderr)

    def common(p: argparse.ArgumentParser, changes: bool) -> None:
        with_config(p)
        p.add_argument("--ledger", metavar="DIR",
                       help="plan ledger directory (default: the config's "
                            "governance.ledger_dir)")
        if changes:
            p.add_argument("--reason", required=True,
                           help="why, in words (required; recorded in the event)")
            p.add_argument("--actor", required=True,
                           help="who is doing this, e.g. your name (required; recorded in "
                                "the event)")
        p.set_defaults(func=handler)

    plan = sub.add_parser("plan", help="execution plans").add_subparsers(
        dest="plan_command", required=True)
    create = plan.add_parser(
        "create", help="a new DRAFT plan from portfolio items",
        description="Create a DRAFT execution plan: what research's portfolio decided, made "
        "ready to execute. It then moves DRAFT -> REVIEWED -> APPROVED -> COMMITTED (plan "
        "review, approve, commit), and with governance.enforce an intent naming its plan id "
        "runs only while the plan is COMMITTED. The plan id is derived from the season, the "
        "risk profile and the items, so creating the same plan twice is refused.")
    common(create, True)
    create.add_argument("--season", required=True,
                        help="the season the plan belongs to (required): 1-64 letters, "
                             "digits, '.', '_' or '-'. A season groups plans, and a frozen "
                             "one (execd season freeze) refuses new and changed plans")
    create.add_argument("--risk-profile", required=True, metavar="ID",
                        help="the id of the risk profile the plan runs under, any non-empty "
                             "text such as base (required); part of the plan id with the "
                             "season and the items")
    create.add_argument("--item", action="append", required=True, metavar="ID",
                        help="a portfolio item id: one entry of research's portfolio that the "
                             "plan executes, any non-empty text (required; repeat for each "
                             "item, in any order; each becomes a leg with an equal share of "
                             "the risk)")
    create.add_argument("--snapshot-ref", default="UNKNOWN", metavar="REF",
                        help="the research snapshot the plan was made from, any text, "
                             "recorded for audit and not checked (default: UNKNOWN)")
    for action in ("review", "approve", "commit", "cancel"):
        moved = plan.add_parser(action, help=f"{action} a plan")
        common(moved, True)
        moved.add_argument("plan_id", help="the plan's id, as plan create and plan list "
                           "print it")
    show = plan.add_parser("show", help="a plan and its events, as JSON")
    common(show, False)
    show.add_argument("plan_id", help="the plan's id, as plan create and plan list print it")
    listing = plan.add_parser("list", help="one line per plan")
    common(listing, False)
    listing.add_argument("--season", default="",
                         help="only the plans of this season (default: every season)")

    season = sub.add_parser("season", help="freeze or unfreeze a season").add_subparsers(
        dest="season_command", required=True)
    for action in ("freeze", "unfreeze"):
        p = season.add_parser(action, help=f"{action} a season")
        common(p, True)
        p.add_argument("season", help="the season id: 1-64 letters, digits, '.', '_' or '-'")
