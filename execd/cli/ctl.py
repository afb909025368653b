"""``execd ctl``: operator commands to the running daemon, and ``execd sign``.

``ctl`` talks to the daemon's control socket (see :mod:`execd.service.control`) and prints
its answer. Exit status: 0 done; 1 refused by the daemon (including "busy"), no
daemon listening, or no answer to ``status``; 2 bad config or arguments; 4 *not
confirmed*: a command that changes something was sent but no answer came within the
timeout (the daemon's ``control.timeout_ms``, or the client's ``--timeout``) or the
connection broke first. It was not refused and may still take effect (a halt during
a frozen disk is applied once the disk thaws), so do not repeat it blindly: the
message says how to check (``execd ctl status``, ``execd ledger tail --kind …``).
``execd ctl status --watch`` (:mod:`execd.cli.status`) ends 0 on Ctrl-C and 1 once
the daemon stops answering.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from execd.cli import status as status_view
from execd.cli.exits import status
from execd.config import schema as config
from execd.model.clock import WallClock
from execd.model.errors import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, FileRefused, Unconfirmed
from execd.model.text import printable, printable_lines
from execd.service.control import CHECK, Request, call

LoadConfig = Callable[[str], config.LoadedConfig | None]


def _socket(args: argparse.Namespace, load: LoadConfig) -> tuple[Path, float] | None:
    if args.socket:
        # Without the config, wait longer than the daemon's default command timeout.
        return Path(args.socket), args.timeout or 12.0
    loaded = load(args.config)
    if loaded is None:
        return None
    control = loaded.config.control
    # The daemon answers within control.timeout_ms, error or not: wait a little longer.
    return Path(control.socket), args.timeout or control.timeout_ms / 1000 + 2


def _schedules_json(reply: dict[str, Any], _now: int) -> str:
    return msgspec.json.encode(reply.get("schedules") or []).decode()


def _render(reply: dict[str, Any], only_schedules: bool = False) -> str:
    command = reply.get("command")
    if command == "status" and only_schedules:
        return status_view.schedules(reply)
    if command == "status":
        return status_view.render(reply, WallClock().now())
    seq = reply.get("ledger_seq")
    at = f" (ledger seq {seq})" if seq is not None else ""
    if command == "tick":
        return f"logical time {reply['logical_time']}{at}"
    if command == "reload":
        changed = reply.get("changed") or []
        if not changed:
            return "config reloaded: nothing changed"
        return f"config reloaded{at}: " + ", ".join(changed)
    if command == "cancel":
        return f"schedule of {reply['intent']} ended{at}" + (
            f": {reply['note']}" if reply.get("note") else "")
    if command == "resume-schedule":
        return f"schedule of {reply['intent']} resumed{at}: {reply['released']} child(ren) released"
    if command == "safety-sell":
        orders = reply.get("orders") or []
        basis = (f" (what the venue holds, holdings record {reply['holdings']})"
                 if reply.get("holdings") is not None else "")
        lines = [f"safety sell on {reply['venue']}: {len(orders)} exit order(s){at}{basis}"]
        lines += [f"  {o['side']} {o['quantity']} {o['symbol']} intent={o['intent_id']}"
                  for o in orders]
        return "\n".join(lines)
    if not reply.get("changed", True):
        return f"already {reply['state']}; nothing recorded"
    return f"trading state {reply['state']}{at}"


def _unconfirmed(request: Request, path: Path, exc: Unconfirmed) -> int:
    """No answer: for ``status`` a failure; for a change, unknown (exit 4) and how to check."""
    if not request.changes:
        # Nothing can have changed: a question without an answer has simply failed.
        print(f"execd ctl: no answer from {path}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"not confirmed: {exc}\ncheck with {CHECK[request.command]}", file=sys.stderr)
    return status(exc)


def cmd_ctl(args: argparse.Namespace, load: LoadConfig) -> int:
    # ``schedules`` is the status's open schedules alone: the same question asked.
    only = args.ctl_command == "schedules"
    request = Request(
        "status" if only else args.ctl_command, reason=getattr(args, "reason", None),
        actor=getattr(args, "actor", None),
        time=getattr(args, "time", None), venue=getattr(args, "venue", None),
        symbol=getattr(args, "symbol", None), intent=getattr(args, "intent", None),
        basis=None if getattr(args, "basis", "ledger") == "ledger" else args.basis,
        max_age=getattr(args, "max_age", None))
    target = _target(args, load, request)
    if isinstance(target, int):
        return target
    path, timeout = target
    if getattr(args, "watch", None) is not None:
        show = (_schedules_json if only else _raw) if args.json else (
            status_view.schedules if only else status_view.render)
        return status_view.watch(lambda: _ask(path, request, timeout), args.watch, sys.stdout,
                                 show)
    reply = _ask(path, request, timeout)
    if isinstance(reply, int):
        return reply
    if args.json:
        print(_schedules_json(reply, 0) if only else _raw(reply, 0))
    else:
        print(printable_lines(_render(reply, only)))
    return EXIT_OK


def _target(args: argparse.Namespace, load: LoadConfig,
            request: Request) -> tuple[Path, float] | int:
    """The socket and timeout to ask on, or the exit status once the problem is printed."""
    target = _socket(args, load)
    if target is None:
        return EXIT_CONFIG
    problem = request.problem()
    if problem:
        print(f"execd ctl: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    return target


def ask(args: argparse.Namespace, load: LoadConfig, request: Request) -> dict[str, Any] | int:
    """The daemon's answer to ``request`` (``--config``, ``--socket``, ``--timeout`` say
    where and how long), or the exit status once the problem is printed on stderr."""
    target = _target(args, load, request)
    if isinstance(target, int):
        return target
    path, timeout = target
    return _ask(path, request, timeout)


def _raw(reply: dict[str, Any], _now: int) -> str:
    return msgspec.json.encode(reply).decode()


def _ask(path: Path, request: Request, timeout: float) -> dict[str, Any] | int:
    """The daemon's answer to ``request``, or the exit status once the reason is printed."""
    try:
        reply = call(path, request, timeout)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        print(f"execd ctl: no daemon is listening on {path}", file=sys.stderr)
        return status(exc)
    except Unconfirmed as exc:
        return _unconfirmed(request, path, Unconfirmed(
            f"{request.command}: {exc}; it was not refused and may still take effect"))
    except TimeoutError as exc:
        print(f"execd ctl: no connection to {path} within {timeout:g}s; nothing was sent",
              file=sys.stderr)
        return status(exc)
    except OSError as exc:
        print(f"execd ctl: {path}: {exc.strerror or exc}", file=sys.stderr)
        return status(exc)
    if reply.get("unconfirmed"):
        # The daemon's own "not confirmed within control.timeout_ms".
        return _unconfirmed(request, path, Unconfirmed(str(reply.get("error"))))
    if not reply.get("ok"):
        print(f"refused: {printable(str(reply.get('error')))}", file=sys.stderr)
        return EXIT_FAILED
    return reply


def cmd_sign(args: argparse.Namespace) -> int:
    """Print the input files with every intent line signed; exit 1 on the first bad input."""
    from execd.sentinel.signatures import read_key_file

    try:
        key = read_key_file(args.key_file)
    except FileRefused as exc:
        print(exc, file=sys.stderr)
        return status(exc)
    with contextlib.ExitStack() as stack:
        handles = []
        # Every file is opened before anything is printed: a missing one is not found
        # after the others' lines went out.
        for name in args.inputs:
            try:
                handles.append((name, stack.enter_context(open(name, "rb"))))
            except OSError as exc:
                print(f"{name}: expected a readable file, found {exc.strerror}",
                      file=sys.stderr)
                return EXIT_FAILED
        for name, handle in handles:
            try:
                problem = _sign_file(key, handle, name)
            except OSError as exc:
                problem = f"{name}: reading failed: {exc.strerror}"
            if problem is not None:
                print(problem, file=sys.stderr)
                return EXIT_FAILED
    return EXIT_OK


def _sign_file(key: bytes, handle: BinaryIO, name: str) -> str | None:
    """Write ``handle``'s lines, intents and targets signed, to stdout (a target file,
    ``.json``, as one object); the first problem, or None."""
    from execd.sentinel.signatures import signed_line

    if name.endswith(".json"):
        whole = handle.read().strip()
        if not (whole.startswith(b"{") and whole.endswith(b"}")):
            return f"{name}: not a JSON object"
        try:
            sys.stdout.buffer.write(signed_line(key, whole, whole=True) + b"\n")
        except ValueError as exc:
            return f"{name}: {exc}"
        sys.stdout.flush()
        return None
    for number, line in enumerate(handle, 1):
        text = line.strip()
        if not text:
            continue
        if not (text.startswith(b"{") and text.endswith(b"}")):
            return f"{name}:{number}: not a JSON object"
        try:
            # The signature is added as text: every other byte of the line is kept.
            out = signed_line(key, text)
        except ValueError as exc:
            return f"{name}:{number}: {exc}"
        sys.stdout.buffer.write(out + b"\n")
    sys.stdout.flush()
    return None


def seconds(text: str) -> float:
    """A ``--timeout`` value: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, found {text!r}")
    return value


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], None],
             load: LoadConfig) -> None:
    """Add ``ctl`` and ``sign`` to the command line."""
    ctl = sub.add_parser("ctl", help="operator commands to the running daemon")
    commands = ctl.add_subparsers(dest="ctl_command", required=True)

    def command(name: str, text: str, *, changes: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = commands.add_parser(name, help=text)
        with_config(p)
        p.add_argument("--socket",
                       help="the daemon's control socket (default: the config's "
                            "control.socket; with --socket the config is not read)")
        p.add_argument("--timeout", type=seconds,
                       help="seconds to wait for the answer, a positive number (default: the "
                            "daemon's control.timeout_ms + 2 s; 12 s with --socket)")
        p.add_argument("--json", action="store_true",
                       help="print the daemon's answer as raw JSON (default: readable lines)")
        if changes:
            p.add_argument("--actor", required=True,
                           help="who is doing this, e.g. your name (required; recorded in "
                                "the ledger)")
        p.set_defaults(func=lambda args: cmd_ctl(args, load))
        return p

    status = command("status", "version, uptime, config, inbox backlog, outcomes, venues, "
                     "positions, trading state", changes=False)
    status.add_argument(
        "--watch", nargs="?", const=2.0, type=status_view.watch_seconds, metavar="SECONDS",
        help="redraw every SECONDS (a number from 0.1 to 86400; default 2 when given "
             "without one; default: print once): in place on a terminal, otherwise one "
             "block per refresh; Ctrl-C stops (exit 0), a daemon that goes away exits 1")
    listing = command("schedules", "open parent orders: filled against planned, slices "
                      "released, the next slice's time, the child each waits for",
                      changes=False)
    listing.add_argument(
        "--watch", nargs="?", const=2.0, type=status_view.watch_seconds, metavar="SECONDS",
        help="redraw every SECONDS, as status --watch does")
    for name, text in (("halt", "HALTED: nothing but Safety Sell executes"),
                       ("reduce", "REDUCING: only intents that shrink a position"),
                       ("resume", "back to ACTIVE")):
        command(name, text).add_argument(
            "--reason", required=True, help="why, in words (required; recorded in the ledger)")
    tick = command("tick", "advance the logical clock")
    tick.add_argument("time", type=int,
                      help="the new logical time: an integer from 0 to 2**63-1, not before "
                           "the current one")
    command("reload", "re-read the config file (as SIGHUP does); the answer says what "
            "changed or why nothing was applied").add_argument(
        "--reason", required=True, help="why, in words (required; recorded in the ledger)")
    cancel = command("cancel", "end a parent order's schedule: no more children; its "
                     "outcome sums those sent")
    cancel.add_argument("--intent", required=True,
                        help="the parent intent's id, a UUID (required; `execd ctl status` "
                             "lists open schedules)")
    cancel.add_argument("--reason", required=True,
                        help="why, in words (required; recorded in the parent's outcome)")
    resume = command("resume-schedule", "release a parent order's children again after its "
                     "slippage response paused it; slices that fell due go out as one child")
    resume.add_argument("--intent", required=True,
                        help="the parent intent's id, a UUID (required; `execd ctl status` "
                             "shows paused schedules)")
    resume.add_argument("--reason", required=True,
                        help="why, in words (required; recorded in the ledger)")
    sell = command("safety-sell", "emergency exit of a venue's open positions")
    sell.add_argument("--venue", required=True,
                      help="the venue whose open positions are exited: a name from the "
                           "config's [venues] (required)")
    sell.add_argument("--symbol", help="only this symbol, as the venue names it (default: "
                      "every open position on the venue)")
    sell.add_argument("--basis", choices=("ledger", "venue"), default="ledger",
                      help="what is exited: `ledger` (default), the positions execd's own "
                           "fills add up to; `venue`, the free amount of each symbol's base "
                           "asset that the venue's last holdings record says the account "
                           "holds (a live ccxt venue; its symbols that execd has traded, "
                           "or --symbol)")
    sell.add_argument("--max-age", type=seconds, metavar="SECONDS",
                      help="with --basis venue: the oldest holdings read to sell from "
                           "(default: three ccxt.holdings_ms; 300 s if holdings are read at "
                           "start-up only); an older one refuses the sell")
    sell.add_argument("--reason", required=True,
                      help="why, in words (required; recorded in the ledger)")

    signer = sub.add_parser("sign", help="add HMAC-SHA256 signatures to intent and target lines")
    signer.add_argument("--key-file", required=True,
                        help="the HMAC key, a file of at least 16 bytes: the one the "
                             "daemon's risk.key_file names (required)")
    signer.add_argument("inputs", nargs="+",
                        help="JSON Lines files of intents, targets and ticks, or target "
                             "files (NAME.json, one object); the signed lines go to stdout")
    signer.set_defaults(func=cmd_sign)
