"""``execd run`` and ``execd replay``: the daemon in the foreground, and one-shot runs.

Both build a :class:`execd.app.daemon.Daemon` and turn whatever stopped it into an exit
status (:func:`execd.cli.exits.daemon_stopped`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from execd.cli import progress, summary
from execd.cli.configfile import load as _load
from execd.cli.configfile import with_config
from execd.cli.early import EARLY_SIGNALS, hold_stop_signals
from execd.cli.exits import daemon_stopped
from execd.config import schema as config
from execd.model.clock import monotonic
from execd.model.errors import EXIT_CONFIG, EXIT_OK, RunDamaged
from execd.service import logs

if TYPE_CHECKING:
    from execd.app.daemon import Daemon

# A task run beside the daemon, given it, cancelled once it stops (the progress display).
Beside = Callable[["Daemon"], Coroutine[Any, Any, None]]

def cmd_run(args: argparse.Namespace) -> int:
    # execd.cli.main held the stop signals before importing this module; held again here
    # for callers of main() in-process.
    hold_stop_signals()
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    logs.configure(loaded.config.log.level, args.log_format, loaded.config.log.format)
    return _leave(_serve(loaded, "run", [], None))


def _leave(code: int, grace: float = 1.0) -> int:
    """Exit now if a worker thread is still stuck in a call the daemon gave up on.

    A read on a hung mount never returns, and the interpreter would wait for that
    thread at exit: the drain is done and the ledger flushed, so a stop must stop.
    Threads finishing their last call (the worker that closed the metrics endpoint)
    get ``grace`` seconds in all to end: only those still alive then are stuck.
    """
    import os
    import threading

    deadline = monotonic() + grace
    stuck = []
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - monotonic()))
        if thread.is_alive():
            stuck.append(thread.name)
    if stuck:
        logs.get("daemon").warning("daemon.threads_abandoned", threads=len(stuck))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def cmd_replay(args: argparse.Namespace) -> int:
    """``execd replay``: the inputs into a new ledger, then the summary of its outcomes.

    What it prints depends on who reads it (README.md, "Replay"). Logs for a person
    (stdout a terminal, or ``--quiet``) keep only warnings and errors, and outcomes are
    not logged one by one: the summary counts them. Logs for a program (stdout not a
    terminal) are the config's JSON lines, ending in one ``replay.summary`` event. The
    progress display (stderr a terminal, not ``--quiet``) and the summary table go to
    stderr, where they never mix into the JSON lines.
    """
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
    for_person = args.quiet or sys.stdout.isatty()
    if for_person:
        loaded = _for_person(loaded)
    logs.configure(loaded.config.log.level, args.log_format, loaded.config.log.format)
    shown = not args.quiet and sys.stderr.isatty()
    started = monotonic()
    code = _serve(loaded, "replay", inputs, Path(args.ledger),
                  beside=_progress(inputs, started) if shown else None)
    if code == EXIT_OK:
        _summarise(Path(args.ledger), monotonic() - started, log=not for_person)
    return code


def _for_person(loaded: config.LoadedConfig) -> config.LoadedConfig:
    """The config with logs at ``warning`` (or ``error``) and outcomes logged per commit.

    Neither key is in the outcome-settings digest (execd.config.keys): the ledger is
    the same byte for byte.
    """
    log = loaded.config.log
    quieter = msgspec.structs.replace(
        log, level="error" if log.level == "error" else "warning", outcomes="summary")
    return msgspec.structs.replace(
        loaded, config=msgspec.structs.replace(loaded.config, log=quieter))


def _progress(inputs: list[Path], started: float) -> Beside:
    """The progress display's task, run beside the daemon (execd.cli.progress)."""
    model = progress.Progress(len(inputs), sum(p.stat().st_size for p in inputs), started)

    async def beside(daemon: Daemon) -> None:
        def read() -> tuple[int, int, int] | None:
            graph = daemon.graph
            reader = graph.reader if graph is not None else None
            return reader.core.consumed if reader is not None else None

        await progress.show(read, model, sys.stderr)

    return beside


def _summarise(ledger: Path, elapsed: float, *, log: bool) -> None:
    """Count the ledger just written; the table on stderr, and for programs one event."""
    counted = summary.count(ledger)
    if log:
        logs.get("replay").info("replay.summary", **summary.fields(counted, elapsed))
    sys.stdout.flush()
    print(summary.table(counted, elapsed), file=sys.stderr)


def _serve(loaded: config.LoadedConfig, mode: str, inputs: list[Path],
           ledger: Path | None, beside: Beside | None = None) -> int:
    """Run the daemon to its end; its exit status. ``beside``: a task that runs next to
    it (the progress display) and is cancelled when it stops."""
    from execd.app.daemon import Daemon

    daemon = Daemon(loaded, mode=mode, inputs=inputs, ledger_dir=ledger,  # type: ignore[arg-type]
                    early_signals=EARLY_SIGNALS)

    async def with_beside() -> None:
        assert beside is not None
        async with anyio.create_task_group() as tg:
            tg.start_soon(beside, daemon)
            await daemon.run()
            tg.cancel_scope.cancel()

    try:
        anyio.run(daemon.run if beside is None else with_beside)
    except BaseException as raised:  # noqa: BLE001 - every way out gets its exit status
        cause = root_cause(raised)
        if isinstance(cause, RunDamaged):
            _condemn(cause)
        return daemon_stopped(cause)
    return EXIT_OK


def _condemn(damaged: RunDamaged) -> None:
    """A run's block failed its check while the daemon asked it: remove that index's
    manifest, so the restart rebuilds the index from the ledger instead of meeting the
    same block again (the intent being decided was never recorded: it is decided again
    then)."""
    from execd.ledger.index.store import condemn

    directory = damaged.path.parent
    try:
        condemn(directory)
    except OSError as exc:
        logs.get("ledger").error("index.uncondemned", directory=str(directory),
                                 error=exc.strerror or str(exc),
                                 note="remove its MANIFEST.json by hand: the next start "
                                      "then rebuilds the index")
        return
    logs.get("ledger").warning("index.condemned", directory=str(directory),
                               note="its manifest was removed: the next start rebuilds "
                                    "the index from the ledger")


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

    replay = sub.add_parser(
        "replay", help="one-shot: input files in, a new ledger out, then a summary",
        description="Run the input files through the pipeline into a new ledger, then print "
                    "its outcomes by status and reason on stderr. When stderr is a "
                    "terminal, a progress line is redrawn there. When stdout is a "
                    "terminal, only warnings and errors are logged (outcomes are counted "
                    "in the summary, not logged one by one); otherwise the logs are the "
                    "config's JSON lines, ending in one replay.summary event.")
    with_config(replay)
    with_log_format(replay)
    replay.add_argument("--ledger", required=True, metavar="DIR",
                        help="directory for the new ledger (required, no default: a new "
                             "or empty directory; one that holds a ledger is refused)")
    replay.add_argument("-q", "--quiet", action="store_true",
                        help="print only the summary, and warnings and errors: no progress "
                             "line, no info log lines (default: off)")
    replay.add_argument("inputs", nargs="+", metavar="FILE",
                        help="intent files (JSON Lines), one or more, consumed in this "
                             "order; their names must differ")
    replay.set_defaults(func=cmd_replay)
