"""Help that teaches: every option of the real grammar (execd.cli.main.parser) says what
it is, its default when it has one, and the values it allows when they are a list."""

from __future__ import annotations

import argparse

from execd.cli.main import parser

# Actions that are argparse's own or only hold subcommands.
_SKIPPED = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)


Commands = list[tuple[str, argparse.ArgumentParser]]


def commands(p: argparse.ArgumentParser, name: str = "execd") -> Commands:
    """Every (command line, parser) of the grammar, subcommands at any depth."""
    found = [(name, p)]
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                found += commands(child, f"{name} {sub}")
    return found


def problems(top: argparse.ArgumentParser) -> list[str]:
    """What an option's help leaves out, one line per option."""
    missing = []
    for name, p in commands(top):
        formatter = p._get_formatter()
        for action in p._actions:
            if isinstance(action, _SKIPPED):
                continue
            option = f"{name} {'/'.join(action.option_strings) or action.dest}"
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{option}: no help")
                continue
            text = formatter._expand_help(action)
            default = action.default
            if default not in (None, False, "", argparse.SUPPRESS) and str(default) not in text:
                missing.append(f"{option}: help does not name its default {default!r}")
            for choice in action.choices or ():
                if str(choice) not in text:
                    missing.append(f"{option}: help does not name the choice {choice!r}")
    return missing


def test_every_option_names_its_default_and_its_choices() -> None:
    assert problems(parser()) == []


def test_the_check_finds_an_option_that_hides_its_default_or_choices() -> None:
    top = argparse.ArgumentParser(prog="execd")
    sub = top.add_subparsers().add_parser("x")
    sub.add_argument("--n", type=int, default=10, help="how many")
    sub.add_argument("--mode", choices=["a", "b"], help="the mode: a")
    sub.add_argument("--quiet", action="store_true")
    sub.add_argument("--fine", default=3, help="this many (default: %(default)s)")
    assert problems(top) == [
        "execd x --n: help does not name its default 10",
        "execd x --mode: help does not name the choice 'b'",
        "execd x --quiet: no help",
    ]


def test_plan_create_explains_what_a_plan_is_made_of() -> None:
    create = dict(commands(parser()))["execd plan create"]
    helps = {a.dest: a.help or "" for a in create._actions}
    assert "frozen" in helps["season"]
    assert "risk" in helps["risk_profile"] and "plan id" in helps["risk_profile"]
    assert "repeat" in helps["item"]
    assert "UNKNOWN" in helps["snapshot_ref"]
