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
import os
import sys

from execd import __version__
from execd.cli.early import hold_stop_signals


def parser() -> argparse.ArgumentParser:
    """The command-line grammar: each command's module adds its own part."""
    # Imported here, not at the top: main() holds the stop signals of ``execd run``
    # before this half second of imports (execd.cli.early).
    from execd.cli import (
        completion,
        config_cmd,
        ctl,
        lakehouse,
        ledger,
        plan,
        policy_cmd,
        serve,
        submit,
    )
    from execd.cli.configfile import load, plan_ledger_dir, with_config

    top = argparse.ArgumentParser(prog="execd", description="Execution daemon for trading systems.")
    top.add_argument("--version", action="version", version=f"execd {__version__}")
    sub = top.add_subparsers(dest="command", required=True)
    serve.register(sub)
    ledger.register(sub)
    plan.register(sub, with_config, plan_ledger_dir)
    ctl.register(sub, with_config, load)
    submit.register(sub)
    config_cmd.register(sub)
    policy_cmd.register(sub)
    lakehouse.register(sub)
    completion.register(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``execd`` console script.

    Ordinary trouble ends in a message, not a traceback: output cut short by its
    reader (``execd ctl status | head -1``) exits 1 without a word, Ctrl-C exits 130,
    and an OS error no command handled itself prints ``execd: FILE: what`` and exits 1.
    """
    if (sys.argv[1:] if argv is None else argv)[:1] == ["run"]:
        hold_stop_signals()
    from execd.cli.exits import status

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
