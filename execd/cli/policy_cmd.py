"""``execd policy …``: execution policy files from the command line.

``check FILE`` validates a policy file: ``ok`` with its rules and digest (exit 0), or
one ``FILE: KEY: expected WHAT, found WHAT`` line per problem (exit 2), as ``execd
config check`` does for the config. ``explain FILE LINE`` prints which rule would apply
to an intent line and the execution it would get: the intent's own, or the rule's
default for its urgency, and, for a schedule, its plan on the paper plane.
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal
from typing import Any

import msgspec

from execd.model import ids
from execd.model.errors import EXIT_CONFIG, EXIT_OK, ConfigError
from execd.model.input import InputDecoder
from execd.model.messages import OrderIntent, ScheduleRecord, encode, normal
from execd.model.refusal import Refusal
from execd.policy import file as policy_file
from execd.policy.apply import Applied, govern, judge
from execd.policy.orders import paper_plan
from execd.policy.rules import Match
from execd.schedule.core import slices_of
from execd.schedule.intake import schedule_of
from execd.sentinel.checks import own_price
from execd.sentinel.core import numbers_refused


def _load(path: str) -> policy_file.Policy | None:
    try:
        return policy_file.load(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def cmd_policy_check(args: argparse.Namespace) -> int:
    policy = _load(args.file)
    if policy is None:
        return EXIT_CONFIG
    names = ", ".join(sorted(policy.file.rules))
    print(f"ok: {args.file}: {len(policy.file.rules)} rule(s) ({names}); sha256 "
          f"{policy.sha256}")
    return EXIT_OK


def explain(policy: policy_file.Policy, intent: OrderIntent, plane: Any,
            now: int) -> list[str]:
    """What ``explain`` prints for ``intent`` on ``plane`` at clock time ``now``: the
    daemon's own decision (:mod:`execd.policy.apply`), with no lakehouse price."""
    lines = [f"policy {policy.path} (sha256 {policy.sha256[:12]}…)"]
    intent_id = intent.intent_id or ids.derived_intent_id(encode(intent))
    intent = normal(intent)  # as the sentinel judges it: upper-case action, exits critical
    refused = numbers_refused(intent)
    if refused is not None:  # the daemon refuses it before any rule is asked
        lines.append(f"decision: refused, {refused.reason}: {refused.detail}")
        return lines
    applied = judge(policy, intent, plane)
    name = applied.rule if isinstance(applied, Applied) else policy.applies(Match(
        plane, intent.venue, intent.symbol, intent.urgency, intent.action, intent.source_run))
    if name is None:
        lines.append("rule: none applies (the intent executes as written)")
    else:
        rule = policy.file.rules[name]
        lines.append(f"rule: {name} (match {msgspec.json.encode(rule.match).decode()})")
        if rule.order_types is not None:
            lines.append(f"order types allowed: {', '.join(rule.order_types)}")
        if rule.times_in_force is not None:
            lines.append(f"times in force allowed: {', '.join(rule.times_in_force)}")
        if rule.pacing is not None:
            lines.append(f"pacing: {msgspec.json.encode(rule.pacing).decode()}")
        if rule.slippage is not None:
            lines.append(f"slippage: {msgspec.json.encode(rule.slippage).decode()} against "
                         "the arrival price (a schedule's)")
    if isinstance(applied, Refusal):
        lines.append(f"decision: refused, {applied.reason}: {applied.detail}")
        return lines
    if applied.defaulted:
        lines.append(f"default: the rule's for urgency {intent.urgency}")
    planned = applied.intent
    execution = planned.execution
    shown = msgspec.json.encode(execution).decode() if execution is not None else "immediate"
    lines.append(f"execution: {shown}")
    if planned.quantity is None:
        lines.append("plan: the quantity is sized when the daemon reads the line, from the "
                     "position or an allocation (README, Sizing); give a quantity to see "
                     "the plan")
        return lines
    got = schedule_of(planned, intent_id, intent.side or "buy", "paper", now, encode(intent),
                      None)
    if isinstance(got, Refusal):
        lines.append(f"plan: refused, {got.reason}: {got.detail}")
        return lines
    if name is not None:
        governed = govern(policy, name, intent, planned, got, now, own_price(planned))
        if isinstance(governed, Refusal):
            lines.append(f"decision: refused, {governed.reason}: {governed.detail}")
            return lines
    if isinstance(got, ScheduleRecord):
        slices = slices_of(got.slices)
        lots = [n for _, n in slices]
        lines.append(
            f"plan (paper): {got.algorithm}, {len(slices)} slice(s) in lots of {got.lot}"
            + (f", first at {slices[0][0]} for {Decimal(lots[0]) * got.lot}, last at "
               f"{slices[-1][0]}" if slices else ""))
    else:
        lines.append(f"plan (paper): {encode(paper_plan(planned, name)).decode()}")
    return lines


def cmd_policy_explain(args: argparse.Namespace) -> int:
    policy = _load(args.file)
    if policy is None:
        return EXIT_CONFIG
    try:
        # As the reader decodes it: decimals in JSON number syntax ("NaN" is refused).
        intent = InputDecoder().decode(args.line.encode())
    except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:
        print(f"execd policy explain: LINE: expected an intent line, found {exc}",
              file=sys.stderr)
        return EXIT_CONFIG
    if not isinstance(intent, OrderIntent):
        print(f"execd policy explain: LINE: expected an intent line, found a "
              f"{type(intent).__name__}", file=sys.stderr)
        return EXIT_CONFIG
    print("\n".join(explain(policy, intent, args.plane, args.time)))
    return EXIT_OK


def register(sub: Any) -> None:
    """Add ``policy check`` and ``policy explain`` to the command line."""
    policy = sub.add_parser("policy", help="execution policy files").add_subparsers(
        dest="policy_command", required=True)
    check = policy.add_parser("check", help="validate a policy file: one line per problem, "
                              "exit 2; or ok, exit 0")
    check.add_argument("file", metavar="FILE", help="the TOML policy file")
    check.set_defaults(func=cmd_policy_check)
    explain_ = policy.add_parser("explain", help="which rule applies to an intent line, and "
                                 "the execution and plan it gets")
    explain_.add_argument("file", metavar="FILE", help="the TOML policy file")
    explain_.add_argument("line", metavar="LINE", help="one intent line (JSON)")
    explain_.add_argument("--plane", choices=("paper", "live"), default="paper",
                          help="the plane of the intent's venue: paper (default) or live")
    explain_.add_argument("--time", type=int, default=0,
                          help="the clock time the intent is read at (default 0)")
    explain_.set_defaults(func=cmd_policy_explain)
