"""Which config file a command reads, and reading it for the command line.

Every command that needs the config takes ``--config``/``-c``. Without it, the file
is, in this order (:func:`choose`, a pure function of the option, the environment
and which files exist):

1. ``$EXECD_CONFIG``, when set and not empty;
2. ``/etc/execd/execd.toml``, the file ``deploy/install.sh`` installs, when it exists
   as a directory entry of any kind: a dangling link, a FIFO or a directory there is
   that file, broken, and is reported as such, never passed over for another config;
3. the checkout's ``config/execd.toml`` (what ``make run`` uses): beside the package
   when execd runs from a checkout, else relative to the current directory.

``$EXECD_ETC`` stands in for ``/etc/execd`` (tests and staged installs under a
DESTDIR; nothing else should set it). ``--help`` names the file the command will read
and why. A config problem, a missing file included, is printed one line per problem
(file, key, expected, found) and the command ends with exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from msgspec import Struct

import execd
from execd.config import schema as config
from execd.model.errors import ConfigError

CONFIG_ENV = "EXECD_CONFIG"
ETC_ENV = "EXECD_ETC"
INSTALLED_DIR = "/etc/execd"
CONFIG_NAME = "execd.toml"


def _checkout_config() -> str:
    """The checkout's config: absolute when the package lives in a checkout (so the
    checkout's ``.venv/bin/execd`` finds it from any directory), else relative."""
    checkout = Path(execd.__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return str(checkout / "config" / CONFIG_NAME)
    return f"config/{CONFIG_NAME}"


CHECKOUT_CONFIG = _checkout_config()


class Choice(Struct, frozen=True):
    """The config file a command reads, and why that one."""

    path: str
    why: str  # "from --config", "from EXECD_CONFIG", "installed", "the checkout's"


def installed_path(environ: Mapping[str, str]) -> str:
    """``/etc/execd/execd.toml``, or its stand-in under ``$EXECD_ETC``."""
    return os.path.join(environ.get(ETC_ENV) or INSTALLED_DIR, CONFIG_NAME)


def choose(option: str | None, environ: Mapping[str, str], exists: Callable[[str], bool],
           checkout: str = CHECKOUT_CONFIG) -> Choice:
    """The file to read: ``--config``, else ``$EXECD_CONFIG``, else the installed file
    when ``exists`` says it is there, else the checkout's."""
    if option is not None:
        return Choice(option, "from --config")
    named = environ.get(CONFIG_ENV)
    if named:
        return Choice(named, f"from {CONFIG_ENV}")
    installed = installed_path(environ)
    if exists(installed):
        return Choice(installed, "installed")
    return Choice(checkout, "the checkout's")


def _default() -> Choice:
    # lexists, not isfile: an installed config that is there but unreadable (a dangling
    # or looping link, a FIFO, a directory) is chosen, so the loader names what is wrong
    # with it (exit 2) instead of another file being read in its place.
    return choose(None, os.environ, os.path.lexists, CHECKOUT_CONFIG)


def load(path: str) -> config.LoadedConfig | None:
    """The config at ``path``, or None once its problems are printed on stderr."""
    try:
        return config.load(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        default = _default()
        if path == default.path and default.why in ("installed", "the checkout's") \
                and not os.path.lexists(path):
            # Nobody named this file: say where else the command looked.
            print(f"execd: no --config given, {CONFIG_ENV} not set, "
                  f"{installed_path(os.environ)} absent (see --help)", file=sys.stderr)
        return None  # the caller ends with status(exc), EXIT_CONFIG


# How the default is found; the completion scripts show this without the file of the
# moment (they are generated once, at install).
ORDER = (f"without --config: ${CONFIG_ENV}, else {INSTALLED_DIR}/{CONFIG_NAME} if it exists, "
         f"else the checkout's config/{CONFIG_NAME}")
# What shtab completes a file name with (shtab.FILE, spelt out: importing shtab on
# every command would cost every command its import time).
COMPLETE_FILE = {"bash": "_shtab_compgen_files", "zsh": "_files"}


def with_config(p: argparse.ArgumentParser) -> None:
    """Give a command the ``--config`` option; its help says which file it reads now."""
    default = _default()
    where = f"{default.path} ({default.why})".replace("%", "%%")
    action = p.add_argument("--config", "-c", default=default.path, metavar="FILE",
                            help=f"TOML config file (default: {where}; {ORDER})")
    action.complete = COMPLETE_FILE  # type: ignore[attr-defined]


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
