"""``execd completion bash|zsh``: the shell completion script, generated from the grammar.

shtab writes the script from the argparse parser itself (:func:`execd.cli.main.parser`),
so every command and option is completed as it is declared, with nothing hand-written
and no hook that runs execd on each Tab. ``deploy/install.sh`` installs both scripts
where bash-completion and zsh look for them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from execd.cli.configfile import ORDER

SHELLS = ("bash", "zsh")


def script(shell: str) -> str:
    """The completion script for ``shell`` (one of SHELLS)."""
    import shtab

    from execd.cli.main import parser  # here: main imports this module

    grammar = parser()
    for action in _actions(grammar):
        if action.dest == "config":
            action.help = f"TOML config file ({ORDER})"
    return shtab.complete(grammar, shell=shell)


def _actions(p: argparse.ArgumentParser) -> list[argparse.Action]:
    """Every action of ``p`` and of its subcommands, at any depth."""
    found = []
    for action in p._actions:
        found.append(action)
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found += _actions(child)
    return found


def cmd_completion(args: argparse.Namespace) -> int:
    """Print the script for ``args.shell``."""
    sys.stdout.write(script(args.shell))
    return 0


def register(sub: Any) -> None:
    """Add ``completion`` to the command line."""
    p = sub.add_parser("completion", help="print the bash or zsh completion script",
                       description="Print the completion script for bash or zsh; try it "
                       "with: source <(execd completion bash). deploy/install.sh installs "
                       "both for every user.")
    p.add_argument("shell", choices=SHELLS, help="the shell: bash or zsh")
    p.set_defaults(func=cmd_completion)
