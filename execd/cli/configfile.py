"""Which config file a command reads, and reading it for the command line.

Every command that needs the config takes ``--config``/``-c``; a config problem is
printed one line per problem (file, key, expected, found) and the command ends with
exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from execd.config import schema as config
from execd.model.errors import ConfigError

DEFAULT_CONFIG = "config/execd.toml"


def load(path: str) -> config.LoadedConfig | None:
    """The config at ``path``, or None once its problems are printed on stderr."""
    try:
        return config.load(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None  # the caller ends with status(exc), EXIT_CONFIG


def with_config(p: argparse.ArgumentParser) -> None:
    """Give a command the ``--config`` option."""
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="TOML config file")


def ledger_dir(args: argparse.Namespace) -> Path | None:
    """``--ledger``, or the config's ``daemon.ledger_dir``."""
    if args.ledger:
        return Path(args.ledger)
    loaded = load(args.config)
    return None if loaded is None else Path(loaded.config.daemon.ledger_dir)


def plan_ledger_dir(args: argparse.Namespace) -> Path | None:
    """``--ledger``, or the config's ``governance.ledger_dir``."""
    if args.ledger:
        return Path(args.ledger)
    loaded = load(args.config)
    return None if loaded is None else Path(loaded.config.governance.ledger_dir)
