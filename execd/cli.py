"""The ``execd`` command.

Exit status: 0 success; 1 verification failed or the daemon stopped on an error;
2 bad config or bad command line; 3 the ledger cannot be used (corrupt, or not
empty for a replay).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import anyio

from execd import __version__, config, logs

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_LEDGER = 0, 1, 2, 3


def _load(path: str) -> config.LoadedConfig | None:
    try:
        return config.load(path)
    except config.ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def _ledger_dir(args: argparse.Namespace) -> Path | None:
    if args.ledger:
        return Path(args.ledger)
    loaded = _load(args.config)
    return None if loaded is None else Path(loaded.config.daemon.ledger_dir)


def _plan_ledger_dir(args: argparse.Namespace) -> Path | None:
    if args.ledger:
        return Path(args.ledger)
    loaded = _load(args.config)
    return None if loaded is None else Path(loaded.config.governance.ledger_dir)


def cmd_run(args: argparse.Namespace) -> int:
    # A SIGHUP before the daemon listens for it must not kill it (its default action).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    logs.configure(loaded.config.log.level)
    return _serve(loaded, "run", [], None)


def cmd_replay(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    inputs = [Path(p) for p in args.inputs]
    names = [p.name for p in inputs]
    problems = [f"{p}: expected a readable file, found nothing" for p in inputs if not p.is_file()]
    problems += [f"{n}: expected unique file names, found it twice" for n in set(names)
                 if names.count(n) > 1]
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return EXIT_CONFIG
    logs.configure(loaded.config.log.level)
    return _serve(loaded, "replay", inputs, Path(args.ledger))


def _serve(loaded: config.LoadedConfig, mode: str, inputs: list[Path],
           ledger: Path | None) -> int:
    from execd.control import ControlInUse
    from execd.daemon import Daemon, LedgerNotEmpty, MetricsUnavailable, UnresolvedOrders
    from execd.ledger.scan import LedgerCorrupt
    from execd.ledger.segments import LedgerInUse, LedgerIOError

    log = logs.get("daemon")
    daemon = Daemon(loaded, mode=mode, inputs=inputs, ledger_dir=ledger)  # type: ignore[arg-type]
    try:
        anyio.run(daemon.run)
    except BaseException as raised:  # every way out gets its exit status
        exc = root_cause(raised)
        if isinstance(exc, config.ConfigError):
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            return EXIT_CONFIG
        if isinstance(exc, MetricsUnavailable):
            log.error("metrics.unavailable", error=str(exc))
            return EXIT_FAILED
        if isinstance(exc, ControlInUse | LedgerInUse):
            log.error("daemon.in_use", error=str(exc))
            return EXIT_FAILED
        if isinstance(exc, LedgerCorrupt | LedgerNotEmpty | UnresolvedOrders):
            log.error("ledger.refused", error=str(exc))
            return EXIT_LEDGER
        if isinstance(exc, LedgerIOError):
            log.error("ledger.io_failed", error=str(exc))
            return EXIT_FAILED
        if isinstance(exc, KeyboardInterrupt):
            return EXIT_FAILED
        log.exception("daemon.crashed", error=repr(exc))
        return EXIT_FAILED
    return EXIT_OK


def root_cause(exc: BaseException) -> BaseException:
    """The exception that stopped the actors, out of the task groups' exception groups.

    When one actor fails, its neighbours then fail to send to it or receive from it
    (broken or closed streams); those are consequences, not the cause.
    """
    leaves: list[BaseException] = []
    pending = [exc]
    while pending:
        current = pending.pop(0)
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        else:
            leaves.append(current)
    consequences = (anyio.BrokenResourceError, anyio.ClosedResourceError)
    causes = [leaf for leaf in leaves if not isinstance(leaf, consequences)]
    return (causes or leaves or [exc])[0]


def cmd_verify(args: argparse.Namespace) -> int:
    from execd.ledger.scan import LedgerCorrupt, scan

    directory = _ledger_dir(args)
    if directory is None:
        return EXIT_CONFIG
    if not directory.is_dir():
        print(f"{directory}: no ledger here", file=sys.stderr)
        return EXIT_FAILED
    try:
        result = scan(directory, repair=False)
    except LedgerCorrupt as exc:
        print(f"FAILED: {exc}")
        return EXIT_FAILED
    if result.torn is not None:
        torn = result.torn
        print(f"FAILED: {torn.segment} at byte {torn.offset}: {torn.problem} "
              f"({torn.length} bytes after {result.records} valid records; "
              "a torn tail that `execd run` would cut off)")
        return EXIT_FAILED
    print(f"ok: {result.records} records, last seq {result.next_seq - 1}, "
          f"last hash {result.last_hash}")
    return EXIT_OK


def cmd_tail(args: argparse.Namespace) -> int:
    from execd.tail import check_filters, tail

    # A filter no record can match would print nothing and look like an empty ledger.
    try:
        filters = check_filters(args.kind or "", args.venue or "", args.status or "",
                                args.intent or "")
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
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
    try:
        tail(directory, sys.stdout, last=args.lines, follow=args.follow, as_json=args.json,
             filters=filters)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        pass
    return EXIT_OK


def cmd_config_check(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    planes = ", ".join(f"{v}={p}" for v, p in loaded.config.planes().items())
    print(f"ok: {args.config} ({planes})")
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    top = argparse.ArgumentParser(prog="execd", description="Execution daemon for trading systems.")
    top.add_argument("--version", action="version", version=f"execd {__version__}")
    sub = top.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", "-c", default="config/execd.toml", help="TOML config file")

    run = sub.add_parser("run", help="run the daemon in the foreground")
    with_config(run)
    run.set_defaults(func=cmd_run)

    replay = sub.add_parser("replay", help="one-shot: input files in, a new ledger out")
    with_config(replay)
    replay.add_argument("--ledger", required=True, help="directory for the new ledger")
    replay.add_argument("inputs", nargs="+", help="intent files, consumed in this order")
    replay.set_defaults(func=cmd_replay)

    ledger = sub.add_parser("ledger", help="read the ledger").add_subparsers(
        dest="ledger_command", required=True)
    for name, func, text in (("verify", cmd_verify, "check the hash chain"),
                             ("tail", cmd_tail, "print records")):
        p = ledger.add_parser(name, help=text)
        with_config(p)
        p.add_argument("--ledger", help="ledger directory (default: daemon.ledger_dir)")
        p.set_defaults(func=func)
        if name == "tail":
            p.add_argument("-n", "--lines", type=int, default=10, help="last N records (0: all)")
            p.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
            p.add_argument("--json", action="store_true", help="the stored JSON lines")
            p.add_argument("--kind", help="only this record kind")
            p.add_argument("--venue", help="only outcomes of this venue")
            p.add_argument("--status", help="only outcomes with this status")
            p.add_argument("--intent", help="only outcomes of this intent id")

    from execd import plan_commands

    plan_commands.register(sub, with_config, _plan_ledger_dir)

    from execd import ctl_commands

    ctl_commands.register(sub, with_config, _load)

    cfg = sub.add_parser("config", help="configuration").add_subparsers(
        dest="config_command", required=True)
    check = cfg.add_parser("check", help="validate a config file")
    with_config(check)
    check.set_defaults(func=cmd_config_check)
    return top


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``execd`` console script."""
    args = parser().parse_args(argv)
    return int(args.func(args))
