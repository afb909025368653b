"""The systemd deployment: deploy/install.sh and uninstall.sh into a staging root, and
the unit's CI checks (deploy/check-unit.sh).

Nothing here touches the real root: every install goes to a temporary DESTDIR. The
install is real (a venv, pip installing the package), so these tests take a while.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

import execd
from tests.helpers import ROOT as REPO

# What install.sh needs from a checkout (it installs the package from its own).
CHECKOUT_PARTS = ("pyproject.toml", "README.md", "execd", "systemd", "deploy")


def need(*tools: str) -> None:
    """Skip unless every tool is installed (CI installs the systemd package)."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install systemd)")


def run(script: Path, root: Path, *args: str) -> str:
    """Run an install script with DESTDIR=root; its output, or a failure that shows it."""
    env = {**os.environ, "DESTDIR": str(root)}
    done = subprocess.run([str(script), *args], env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{script.name} {' '.join(args)} exited {done.returncode}:\n" \
        f"{output}"
    return output


def snapshot(root: Path) -> dict[str, tuple[int, int, int, int, int, str]]:
    """Every path under root: mode, owner, group, size, mtime and link target."""
    entries: dict[str, tuple[int, int, int, int, int, str]] = {}
    for directory, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = Path(directory, name)
            st = path.lstat()
            target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
            entries[str(path.relative_to(root))] = (
                st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, target)
    return entries


def changes(before: dict[str, tuple[int, int, int, int, int, str]],
            after: dict[str, tuple[int, int, int, int, int, str]]) -> list[str]:
    """The paths added, removed or changed between two snapshots."""
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def passwd_entry(root: Path, name: str) -> list[str] | None:
    """The fields of name's line in root/etc/passwd, if there is one."""
    passwd = root / "etc/passwd"
    if not passwd.exists():
        return None
    for line in passwd.read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return fields
    return None


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the parts of the repository install.sh uses, frozen for the test."""
    copy = tmp_path / "checkout"
    copy.mkdir()
    for part in CHECKOUT_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, copy / part,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, copy / part)
    return copy


def test_install_twice_then_uninstall(tmp_path: Path, checkout: Path) -> None:
    need("systemctl", "systemd-sysusers")
    root = tmp_path / "root"
    install, uninstall = checkout / "deploy/install.sh", checkout / "deploy/uninstall.sh"

    started = time.monotonic()
    run(install, root)
    first_install = time.monotonic() - started

    # The venv and its console script, the one the unit starts.
    execd_bin = root / "opt/execd/bin/execd"
    version = subprocess.run([str(execd_bin), "--version"], capture_output=True, text=True,
                             check=True, timeout=60)
    assert version.stdout.strip() == f"execd {execd.__version__}"
    # execd on PATH: a link naming the live venv, as the unit's WantedBy= link does.
    link = root / "usr/local/bin/execd"
    assert link.is_symlink()
    assert os.readlink(link) == "/opt/execd/bin/execd"
    staged = root / os.readlink(link).lstrip("/")
    # From anywhere, with no --config, it reads the installed config (EXECD_ETC stands
    # in for /etc/execd in a staging root), and --help says so.
    env = {**os.environ, "EXECD_ETC": str(root / "etc/execd")}
    env.pop("EXECD_CONFIG", None)
    checked = subprocess.run([str(staged), "config", "check"], capture_output=True, text=True,
                             cwd=tmp_path, env=env, timeout=60, check=False)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"ok: {root / 'etc/execd/execd.toml'} (")
    helped = subprocess.run([str(staged), "ctl", "status", "--help"], capture_output=True,
                            text=True, cwd=tmp_path, env={**env, "COLUMNS": "1000"},
                            timeout=60, check=True)
    assert f"(default: {root / 'etc/execd/execd.toml'} (installed)" in helped.stdout
    # Completion for bash and zsh, generated from the installed grammar.
    completions = {root / "usr/share/bash-completion/completions/execd": "bash",
                   root / "usr/share/zsh/vendor-completions/_execd": "zsh"}
    for path, shell in completions.items():
        printed = subprocess.run([str(execd_bin), "completion", shell], capture_output=True,
                                 text=True, timeout=60, check=True)
        assert path.read_text() == printed.stdout
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    # The unit, enabled offline: the WantedBy= symlink.
    unit = root / "etc/systemd/system/execd.service"
    assert unit.read_bytes() == (checkout / "systemd/execd.service").read_bytes()
    wants = root / "etc/systemd/system/multi-user.target.wants/execd.service"
    assert wants.is_symlink()
    assert os.readlink(wants) == "/etc/systemd/system/execd.service"
    # The daily whole-chain verify: its service and timer, the timer enabled.
    verify_units = [root / "etc/systemd/system" / name
                    for name in ("execd-verify.service", "execd-verify.timer")]
    for path in verify_units:
        assert path.read_bytes() == (checkout / "systemd" / path.name).read_bytes()
    timer_wants = root / "etc/systemd/system/timers.target.wants/execd-verify.timer"
    assert os.readlink(timer_wants) == "/etc/systemd/system/execd-verify.timer"
    # The static user, created in the staging root's passwd by systemd-sysusers.
    sysusers = root / "usr/lib/sysusers.d/execd.conf"
    assert sysusers.read_bytes() == (checkout / "systemd/execd.sysusers.conf").read_bytes()
    user = passwd_entry(root, "execd")
    assert user is not None, (root / "etc/passwd").read_text()
    assert user[5] == "/var/lib/execd"
    # Config, keys and the lakehouse directories producers write into.
    config = root / "etc/execd/execd.toml"
    assert config.read_bytes() == (checkout / "deploy/execd.toml").read_bytes()
    credentials = root / "etc/execd/credentials"
    key = credentials / "intent-key"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o700
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(bytes.fromhex(key.read_text().strip())) == 32
    assert (credentials / "venues").is_dir()
    inbox = root / "var/lib/execd/lakehouse/inbox"
    assert stat.S_IMODE(inbox.stat().st_mode) == 0o2770
    if os.geteuid() == 0:
        assert inbox.stat().st_uid == int(user[2])
        assert key.stat().st_uid == 0

    # A second run changes nothing at all.
    before = snapshot(root)
    started = time.monotonic()
    output = run(install, root)
    second_install = time.monotonic() - started
    assert changes(before, snapshot(root)) == [], output
    assert "already enabled" in output

    # An operator's edits are kept; the shipped config lands beside them.
    edited = config.read_text().replace('level = "info"', 'level = "debug"')
    config.write_text(edited)
    key_before = key.read_bytes()
    # So is another execd on PATH: not ours to replace.
    link.unlink()
    link.symlink_to("/usr/bin/someone-elses-execd")
    output = run(install, root)
    assert os.readlink(link) == "/usr/bin/someone-elses-execd"
    assert f"kept {link} (not a link to /opt/execd/bin/execd)" in output
    link.unlink()
    run(install, root)
    assert os.readlink(link) == "/opt/execd/bin/execd"
    assert config.read_text() == edited
    assert (root / "etc/execd/execd.toml.dist").read_bytes() == \
        (checkout / "deploy/execd.toml").read_bytes()
    assert "differs from the shipped one" in output
    assert key.read_bytes() == key_before
    before = snapshot(root)
    run(install, root)
    assert changes(before, snapshot(root)) == []

    # Uninstall: the service goes, the ledger and the config stay.
    segment = root / "var/lib/execd/ledger/segment-000000000001.jsonl"
    segment.parent.mkdir()
    segment.write_text('{"seq":1}\n')
    output = run(uninstall, root)
    for gone in (unit, wants, *verify_units, timer_wants, sysusers, root / "opt/execd", link,
                 *completions):
        assert not gone.exists() and not gone.is_symlink(), gone
    assert segment.read_text() == '{"seq":1}\n'
    assert config.read_text() == edited
    assert key.read_bytes() == key_before
    assert "kept: " + str(root / "var/lib/execd") in output
    assert passwd_entry(root, "execd") is not None
    # Again: nothing left to do, nothing changed.
    before = snapshot(root)
    run(uninstall, root)
    assert changes(before, snapshot(root)) == []
    # --purge-config takes the config and keys too, never the ledger.
    run(uninstall, root, "--purge-config")
    assert not (root / "etc/execd").exists()
    assert segment.exists()
    # An execd on PATH that install.sh did not put there stays.
    link.symlink_to("/usr/bin/someone-elses-execd")
    output = run(uninstall, root)
    assert os.readlink(link) == "/usr/bin/someone-elses-execd"
    assert f"kept: {link} is not the link" in output

    # One real install (venv + pip) must stay cheap enough to run on every CI job.
    assert first_install < 300, f"first install took {first_install:.0f} s"
    assert second_install < 60, f"second install took {second_install:.0f} s"


def test_the_unit_passes_verify_and_security() -> None:
    need("systemd-analyze", "systemctl", "systemd-sysusers")
    if not os.access("/bin/kill", os.X_OK):
        pytest.skip("/bin/kill (ExecReload=) not installed (apt-get install procps)")
    done = subprocess.run([str(REPO / "deploy/check-unit.sh")], capture_output=True,
                          text=True, timeout=900, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    score = float(output.rsplit("(exposure ", 1)[1].split(")", 1)[0])
    assert score <= 2.0, output
