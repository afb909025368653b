"""``execd completion bash|zsh``: the scripts load in the real shells and complete the
real grammar (commands, subcommands, options, choices)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import EXECD, ROOT

# Completes the words given as arguments the way bash does on Tab: COMP_WORDS and
# COMP_CWORD set, the function `complete -p execd` names called, COMPREPLY printed.
BASH_DRIVER = r"""
source "$1"; shift
complete -p execd
spec="$(complete -p execd)"; function="${spec#*-F }"; function="${function%% *}"
COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
COMPREPLY=()
"$function" execd "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[*]}"
"""


def script(tmp_path: Path, shell: str) -> Path:
    done = subprocess.run([*EXECD, "completion", shell], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=True)
    path = tmp_path / f"execd.{shell}"
    path.write_text(done.stdout)
    return path


def complete_in_bash(completion: Path, *words: str) -> list[str]:
    """What bash offers for the last of ``words`` (the words of the command line)."""
    driver = completion.with_name("driver.sh")
    driver.write_text(BASH_DRIVER)
    done = subprocess.run(["bash", "--norc", "--noprofile", str(driver), str(completion),
                           *words], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    spec, offered = done.stdout.splitlines()
    assert spec.startswith("complete ") and spec.endswith(" execd")
    return offered.split()


@pytest.mark.parametrize(("words", "offered"), [
    (("execd", ""), ["run", "replay", "ledger", "plan", "season", "ctl", "sign", "submit",
                     "config", "completion"]),
    (("execd", "ledger", ""), ["verify", "tail"]),
    (("execd", "ctl", "s"), ["status", "safety-sell"]),
    (("execd", "ledger", "tail", "--st"), ["--status"]),
    (("execd", "completion", ""), ["bash", "zsh"]),
])
def test_the_bash_script_loads_and_completes_the_grammar(
        tmp_path: Path, words: tuple[str, ...], offered: list[str]) -> None:
    completion = script(tmp_path, "bash")
    got = complete_in_bash(completion, *words)
    # These at least: a command added later is offered too.
    assert set(offered) <= set(got), got
    assert all(word.startswith(words[-1]) for word in got), got


def test_the_zsh_script_loads_in_zsh(tmp_path: Path) -> None:
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed on this machine")
    completion = script(tmp_path, "zsh")
    assert completion.read_text().startswith("#compdef execd")
    functions = tmp_path / "functions"
    functions.mkdir()
    (functions / "_execd").write_text(completion.read_text())
    done = subprocess.run(
        ["zsh", "-f", "-c", f"fpath=({functions} $fpath); autoload -Uz compinit; "
         "compinit -u -D; print -r -- ${_comps[execd]}"],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "_execd"
