"""``execd config …``: the configuration from the command line.

``check`` validates a file; ``show`` prints it as execd resolved it (every default
filled in, secrets ``"***"``; :mod:`execd.config.resolved`); ``diff FILE`` compares a
file with the running daemon's config, asked over the control socket the way
``execd ctl`` asks (:func:`execd.cli.ctl.ask`), and says for each difference whether
``execd ctl reload`` would apply it. ``diff`` exits like diff(1): 0 equal, 1 different,
2 a bad FILE or ``--config``; with no daemon, as ``execd ctl`` does (1, the reason on
stderr). A secret set on both sides (``ccxt.options``) cannot be compared, since its
value never leaves the daemon and no digest of it does either (a digest would let any
socket client test guesses): it is listed as not compared and the exit status is 1,
never "equal".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from execd.cli import ctl
from execd.cli.configfile import load as _load
from execd.cli.configfile import with_config
from execd.config import resolved
from execd.model.errors import EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from execd.service.control import Request

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
        # The path quoted: a newline in it would end the comment and start TOML.
        print(f"# {json.dumps(loaded.path)} as execd resolved it: every key with its default, "
              f'secrets "{resolved.MASK}",\n# decimals as strings (exact); unset keys are left out '
              "(TOML has no null;\n# --format json shows them as null).")
        print(resolved.to_toml(table), end="")
    return EXIT_OK


def cmd_config_diff(args: argparse.Namespace) -> int:
    """Print what differs between the running daemon's config and FILE; 0 equal, 1 not
    (or a secret set on both sides, which cannot be compared)."""
    loaded = _load(args.file)
    if loaded is None:
        return EXIT_CONFIG
    reply = ctl.ask(args, _load, Request("config"))
    if isinstance(reply, int):
        return reply
    running = reply.get("config")
    if not isinstance(running, dict):
        print("execd config diff: the daemon's answer holds no config (an older execd?)",
              file=sys.stderr)
        return EXIT_FAILED
    comparison = resolved.compare(running, resolved.resolved(loaded.config))
    for difference in comparison.differences:
        print(difference.line())
    for key in comparison.not_compared:
        print(f"{key}: not compared (a secret, set on both sides: its value never leaves the "
              "daemon)")
    print(_summary(comparison, str(reply.get("file")), args.file))
    return EXIT_OK if comparison.equal else EXIT_FAILED


def _summary(comparison: resolved.Comparison, running: str, file: str) -> str:
    found = comparison.differences
    lines = []
    if comparison.equal:
        lines.append(f"no differences between the running daemon's config ({running}) "
                     f"and {file}")
    elif not found:
        lines.append(f"no differences in the keys compared between the running daemon's "
                     f"config ({running}) and {file}, but {len(comparison.not_compared)} "
                     "secret(s) could not be compared")
    else:
        fixed = sum(1 for d in found if d.restart is not None)
        lines.append(f"{len(found)} difference(s) from the running daemon's config "
                     f"({running}) to {file}: "
                     + ("a reload applies them all" if not fixed else
                        f"{fixed} need(s) a restart, so a reload would refuse them all "
                        "(a reload is all or nothing)"))
    if found and Path(file).resolve() != Path(running).resolve():
        lines.append(f"(a reload re-reads {running}, not {file})")
    return "\n".join(lines)


def register(sub: Any) -> None:
    """Add ``config check``, ``config show`` and ``config diff`` to the command line."""
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
            'secret (ccxt.options) shown as "***" once set; key files, credential names and '
            "environment prefixes, which only say where a secret is kept, are shown. The "
            "TOML reads back to the same config; "
            "decimals are strings so no digit is lost; unset keys are left out of TOML "
            "and are null in JSON."))
    with_config(show)
    show.add_argument("--format", choices=FORMATS, default="toml",
                      help="toml (default; decimals as strings) or json (unset keys null)")
    show.set_defaults(func=cmd_config_show)

    diff = cfg.add_parser(
        "diff", help="what differs between FILE and the running daemon's config, and "
        "whether a reload applies it; exit 0 equal, 1 different or a secret not compared, "
        "2 bad FILE", description=(
            "Compare FILE, resolved, with the config the running daemon resolved, key by "
            "key (daemon's value -> FILE's), and say for each difference whether `execd ctl "
            "reload` applies it or it needs a restart. The daemon is found as `execd ctl` "
            "finds it: --socket, or control.socket of --config. Secrets (ccxt.options) never "
            "leave the daemon, so one set on both sides is listed as not compared. Exit "
            "status: 0 equal (every key compared), 1 different, or a secret not compared "
            "(or no daemon, as for `execd ctl`), 2 a bad FILE or --config."))
    diff.add_argument("file", metavar="FILE", help="the TOML config file to compare")
    with_config(diff)
    diff.add_argument("--socket", help="the daemon's control socket (default: control.socket "
                      "of --config)")
    diff.add_argument("--timeout", type=ctl.seconds, help="seconds to wait for the daemon, a "
                      "positive number (default: its control.timeout_ms + 2 s)")
    diff.set_defaults(func=cmd_config_diff)
