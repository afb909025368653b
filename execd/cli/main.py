"""The ``execd`` command.

Exit status: 0 success; 1 verification failed, the daemon stopped on an error, an
OS error (``execd: FILE: what``), or stdout closed by its reader; 2 bad config or
bad command line; 3 the ledger cannot be used (corrupt, or not empty for a replay);
4 an ``execd ctl`` command not confirmed (see :mod:`execd.cli.ctl`); 130
interrupted (Ctrl-C). Which exception means which status is declared with the
exception (:mod:`execd.model.errors`) and read in one place (:mod:`execd.cli.exits`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from pathlib import Path

import anyio

from execd import __version__
from execd.cli.exits import daemon_stopped, status
from execd.config import schema as config
from execd.model.errors import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    ConfigError,
    FileRefused,
    LedgerCorrupt,
    SubmitError,
    UsageError,
    WitnessUnreadable,
)
from execd.service import logs

# Stop signals that arrived before the daemon listened for them (see cmd_run).
EARLY_SIGNALS: list[int] = []


def _load(path: str) -> config.LoadedConfig | None:
    try:
        return config.load(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None  # the caller ends with status(exc), EXIT_CONFIG


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
    # A SIGHUP before the daemon listens for it must not kill it (its default action),
    # and a SIGTERM or SIGINT then is kept for the daemon: it stops as soon as it can.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, frame: EARLY_SIGNALS.append(number))
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    logs.configure(loaded.config.log.level)
    return _leave(_serve(loaded, "run", [], None))


def _leave(code: int) -> int:
    """Exit now if a worker thread is still stuck in a call the daemon gave up on.

    A read on a hung mount never returns, and the interpreter would wait for that
    thread at exit: the drain is done and the ledger flushed, so a stop must stop.
    """
    import os
    import threading

    stuck = [t.name for t in threading.enumerate()
             if t is not threading.main_thread() and t.is_alive() and not t.daemon]
    if stuck:
        logs.get("daemon").warning("daemon.threads_abandoned", threads=len(stuck))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


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
    from execd.app.daemon import Daemon

    daemon = Daemon(loaded, mode=mode, inputs=inputs, ledger_dir=ledger,  # type: ignore[arg-type]
                    early_signals=EARLY_SIGNALS)
    try:
        anyio.run(daemon.run)
    except BaseException as raised:  # noqa: BLE001 - every way out gets its exit status
        return daemon_stopped(root_cause(raised))
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
        # The chain must reach what the witness beside it and what --expect say.
        for claim, source in ((witness, f"{directory / head.NAME}"), (expect, "--expect")):
            if claim is not None:
                result = scan(directory, repair=False, expect=claim, expect_source=source)
        if witness is None and expect is None:
            result = scan(directory, repair=False)
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
        tail(directory, sys.stdout, last=args.lines, follow=args.follow, as_json=args.json,
             filters=filters)
    return EXIT_OK


def cmd_submit(args: argparse.Namespace) -> int:
    from execd.cli.submit import check, default_name, read_source, signed, submit

    loaded = _load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    source = Path(args.file)
    try:
        data = read_source(source)
        problems = check(data, loaded.config.input.max_line_bytes)
        if problems and not args.no_check:
            for problem in problems[:20]:
                print(f"{source}: {problem}", file=sys.stderr)
            more = f" ({len(problems)} lines)" if len(problems) > 20 else ""
            print(f"{source}: not submitted: the daemon would quarantine these lines{more}; "
                  "fix them, or submit anyway with --no-check", file=sys.stderr)
            return EXIT_FAILED
        if args.key_file:
            from execd.sentinel.signatures import read_key_file

            try:
                key = read_key_file(args.key_file)
            except FileRefused as exc:
                print(exc, file=sys.stderr)
                return status(exc)
            data = signed(data, key)
        target = submit(loaded.config.lakehouse, data, args.name or default_name(source, data))
    except SubmitError as exc:
        print(f"execd submit: {exc}", file=sys.stderr)
        return status(exc)
    print(target.name)
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
        if name == "verify":
            p.add_argument("--expect", metavar="SEQ:HASH",
                           help="the chain must reach record SEQ with hash HASH (a head "
                                "kept elsewhere: the ledger.head log line, an earlier verify)")
        if name == "tail":
            p.add_argument("-n", "--lines", type=int, default=10, help="last N records (0: all)")
            p.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
            p.add_argument("--json", action="store_true", help="the stored JSON lines")
            p.add_argument("--kind", help="only this record kind")
            p.add_argument("--venue", help="only outcomes of this venue")
            p.add_argument("--status", help="only outcomes with this status")
            p.add_argument("--intent", help="only outcomes of this intent id")

    from execd.cli import plan as plan_commands

    plan_commands.register(sub, with_config, _plan_ledger_dir)

    from execd.cli import ctl as ctl_commands

    ctl_commands.register(sub, with_config, _load)

    submit = sub.add_parser("submit", help="put a file into the inbox safely (checked, "
                            "optionally signed, written then renamed)")
    with_config(submit)
    submit.add_argument("file", help="a JSON Lines file of intents and ticks")
    submit.add_argument("--name", help="its name in the inbox (default: STEM-SHA16.jsonl "
                        "from its content)")
    submit.add_argument("--key-file", help="sign its intent lines with this key")
    submit.add_argument("--no-check", action="store_true",
                        help="submit even if some lines would be quarantined")
    submit.set_defaults(func=cmd_submit)

    cfg = sub.add_parser("config", help="configuration").add_subparsers(
        dest="config_command", required=True)
    check = cfg.add_parser("check", help="validate a config file")
    with_config(check)
    check.set_defaults(func=cmd_config_check)
    return top


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``execd`` console script.

    Ordinary trouble ends in a message, not a traceback: output cut short by its
    reader (``execd ctl status | head -1``) exits 1 without a word, Ctrl-C exits 130,
    and an OS error no command handled itself prints ``execd: FILE: what`` and exits 1.
    """
    try:
        args = parser().parse_args(argv)
        code = int(args.func(args))
        # Flushed here rather than at interpreter exit, where a closed pipe could only
        # be reported as "Exception ignored ...".
        sys.stdout.flush()
    except BrokenPipeError as exc:
        # The reader has gone: stdout points at devnull for the final flush, and the
        # status says the output was not all delivered, as Python's own EPIPE exit does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return status(exc)
    except KeyboardInterrupt as exc:
        return status(exc)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"execd: {where}{exc.strerror or exc}", file=sys.stderr)
        return status(exc)
    return code
