"""``execd config …``: the configuration from the command line."""

from __future__ import annotations

import argparse
from typing import Any

from execd.cli.configfile import load as _load
from execd.cli.configfile import with_config
from execd.model.errors import EXIT_CONFIG, EXIT_OK


def cmd_config_check(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    planes = ", ".join(f"{v}={p}" for v, p in loaded.config.planes().items())
    print(f"ok: {args.config} ({planes})")
    return EXIT_OK


def register(sub: Any) -> None:
    """Add ``config check`` to the command line."""
    cfg = sub.add_parser("config", help="configuration").add_subparsers(
        dest="config_command", required=True)
    check = cfg.add_parser("check", help="validate a config file")
    with_config(check)
    check.set_defaults(func=cmd_config_check)
