"""``execd config …``: the configuration from the command line.

``check`` validates a file; ``show`` prints it as execd resolved it (every default
filled in, secrets ``"***"``; :mod:`execd.config.resolved`).
"""

from __future__ import annotations

import argparse
from typing import Any

from execd.cli.configfile import load as _load
from execd.cli.configfile import with_config
from execd.config import resolved
from execd.model.errors import EXIT_CONFIG, EXIT_OK

FORMATS = ("toml", "json")


def cmd_config_check(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    planes = ", ".join(f"{v}={p}" for v, p in loaded.config.planes().items())
    print(f"ok: {args.config} ({planes})")
    return EXIT_OK


def cmd_config_show(args: argparse.Namespace) -> int:
    """Print the config at ``--config`` resolved, as TOML or JSON."""
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    table = resolved.resolved(loaded.config)
    if args.format == "json":
        print(resolved.to_json(table))
    else:
        print(f"# {loaded.path} as execd resolved it: every key with its default, secrets "
              f'"{resolved.MASK}",\n# decimals as strings (exact); unset keys are left out '
              "(TOML has no null;\n# --format json shows them as null).")
        print(resolved.to_toml(table), end="")
    return EXIT_OK


def register(sub: Any) -> None:
    """Add ``config check`` and ``config show`` to the command line."""
    cfg = sub.add_parser("config", help="configuration").add_subparsers(
        dest="config_command", required=True)
    check = cfg.add_parser("check", help="validate a config file")
    with_config(check)
    check.set_defaults(func=cmd_config_check)

    show = cfg.add_parser(
        "show", help="the config as execd resolved it: every key with its default, "
        'in schema order, secrets "***"', description=(
            "Print the config file execd would read (--config), as execd resolved it: every "
            "key with its default filled in, in schema order, and every key that may hold a "
            'secret shown as "***" once set. The TOML reads back to the same config; '
            "decimals are strings so no digit is lost; unset keys are left out of TOML "
            "and are null in JSON."))
    with_config(show)
    show.add_argument("--format", choices=FORMATS, default="toml",
                      help="toml (default; decimals as strings) or json (unset keys null)")
    show.set_defaults(func=cmd_config_show)
