"""``execd run`` and ``execd replay``: the daemon in the foreground, and one-shot runs.

Both build a :class:`execd.app.daemon.Daemon` and turn whatever stopped it into an exit
status (:func:`execd.cli.exits.daemon_stopped`).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

import anyio

from execd.cli.configfile import load as _load
from execd.cli.configfile import with_config
from execd.cli.exits import daemon_stopped
from execd.config import schema as config
from execd.model.errors import EXIT_CONFIG, EXIT_OK
from execd.service import logs

# Stop signals that arrived before the daemon listened for them (see cmd_run).
EARLY_SIGNALS: list[int] = []


def cmd_run(args: argparse.Namespace) -> int:
    # A SIGHUP before the daemon listens for it must not kill it (its default action),
    # and a SIGTERM or SIGINT then is kept for the daemon: it stops as soon as it can.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, frame: EARLY_SIGNALS.append(number))
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    logs.configure(loaded.config.log.level, args.log_format, loaded.config.log.format)
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
    logs.configure(loaded.config.log.level, args.log_format, loaded.config.log.format)
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


def with_log_format(p: argparse.ArgumentParser) -> None:
    """Give a command the ``--log-format`` option (:func:`execd.service.logs.choose`)."""
    p.add_argument("--log-format", choices=logs.FORMATS, default=None,
                   help="how log lines look: auto, console or json (default: auto, unless "
                        "the config's log.format says otherwise; auto is console when stdout "
                        "is a terminal, json under systemd or when stdout is not a terminal)")


def register(sub: Any) -> None:
    """Add ``run`` and ``replay`` to the command line."""
    run = sub.add_parser("run", help="run the daemon in the foreground")
    with_config(run)
    with_log_format(run)
    run.set_defaults(func=cmd_run)

    replay = sub.add_parser("replay", help="one-shot: input files in, a new ledger out")
    with_config(replay)
    with_log_format(replay)
    replay.add_argument("--ledger", required=True,
                        help="directory for the new ledger (required): new, or holding no "
                             "ledger yet")
    replay.add_argument("inputs", nargs="+",
                        help="JSON Lines files of intents and ticks, consumed in this order; "
                             "their names must differ")
    replay.set_defaults(func=cmd_replay)
