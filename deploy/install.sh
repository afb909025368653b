#!/usr/bin/env bash
# Install execd as a systemd service on a Debian/Ubuntu host, from the repository
# checkout this script lives in. Idempotent: a second run changes nothing.
#
#   sudo deploy/install.sh [--start]
#
# Environment:
#   DESTDIR         install into this staging root instead of / (empty: the real
#                   root). Nothing is started there; the unit is enabled offline
#                   with systemctl --root. The venv's scripts point at
#                   $DESTDIR/opt/execd (venvs cannot be moved), so a staged tree is
#                   for checking the install, not for copying onto another host.
#   PYTHON          the interpreter the venv is made from (default python3, >= 3.11)
#   EXECD_PIP_ARGS  extra pip arguments, e.g. "--no-index --find-links /srv/wheels"
#
# Options:
#   --start         also start (or restart, when something changed) the service;
#                   by default the next steps are printed instead
#
# What it writes (all under $DESTDIR):
#   /opt/execd                            venv with the execd package (bin/execd)
#   /usr/local/bin/execd                  a link to /opt/execd/bin/execd (execd on PATH);
#                                         a file or other link already there is kept
#   /usr/share/bash-completion/completions/execd   bash completion (execd completion bash)
#   /usr/share/zsh/vendor-completions/_execd       zsh completion (execd completion zsh)
#   /etc/systemd/system/execd.service     the unit (plus the WantedBy= symlink)
#   /etc/systemd/system/execd-verify.{service,timer}  the daily whole-chain ledger
#                                         verify, the timer enabled (README, "Checkpoints")
#   /usr/lib/sysusers.d/execd.conf        the static user and group execd
#   /etc/execd/execd.toml                 the config, only when absent
#   /etc/execd/credentials/intent-key     the intent-signing key, only when absent
#   /etc/execd/credentials/venues/        exchange API keys go here (empty)
#   /var/lib/execd/lakehouse/{inbox,audit,market,control}  written by producers
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

START=0
for arg in "$@"; do
    case "$arg" in
        --start) START=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "install.sh: unknown argument: $arg (see --help)" >&2; exit 2 ;;
    esac
done

DESTDIR="${DESTDIR:-}"
if [[ -n "$DESTDIR" ]]; then   # absolute, as systemctl --root and the venv need it
    mkdir -p "$DESTDIR"
    DESTDIR="$(cd "$DESTDIR" && pwd)"
    [[ "$DESTDIR" != / ]] || DESTDIR=""
fi
PYTHON="${PYTHON:-python3}"
PIP_ARGS=()
read -r -a PIP_ARGS <<<"${EXECD_PIP_ARGS:-}"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$DESTDIR/opt/execd"
UNIT_DIR="$DESTDIR/etc/systemd/system"
UNIT="$UNIT_DIR/execd.service"
VERIFY_UNITS=(execd-verify.service execd-verify.timer)
SYSUSERS="$DESTDIR/usr/lib/sysusers.d/execd.conf"
# The link names the live path, as the unit's WantedBy= link does, also in a staging root.
LINK="$DESTDIR/usr/local/bin/execd"
LINK_TARGET="/opt/execd/bin/execd"
BASH_COMPLETION="$DESTDIR/usr/share/bash-completion/completions/execd"
ZSH_COMPLETION="$DESTDIR/usr/share/zsh/vendor-completions/_execd"
ETC="$DESTDIR/etc/execd"
CONFIG="$ETC/execd.toml"
CREDS="$ETC/credentials"
STATE="$DESTDIR/var/lib/execd"

CHANGED=0   # set when something the running service uses was changed
step() { printf '==> %s\n' "$*"; }
say() { printf '    %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

[[ -f "$REPO/pyproject.toml" && -d "$REPO/execd" ]] || die "no execd checkout at $REPO"
if [[ -z "$DESTDIR" && $EUID -ne 0 ]]; then
    die "installing onto the real root needs root (or set DESTDIR to stage it)"
fi
if [[ -n "$DESTDIR" && $START -eq 1 ]]; then
    die "--start cannot be used with DESTDIR (nothing runs in a staging root)"
fi
if [[ $START -eq 1 && ! -d /run/systemd/system ]]; then
    die "--start needs a running systemd (this system was not booted with it)"
fi

# install_file SRC DEST MODE: copy when DEST is missing or differs.
install_file() {
    if [[ -f "$2" ]] && cmp -s "$1" "$2"; then
        say "unchanged: $2"
        return 1
    fi
    install -D -m "$3" "$1" "$2"
    say "installed: $2"
}

# ensure_dir PATH MODE: create PATH or fix its mode. Modes are octal, 4 digits.
ensure_dir() {
    if [[ ! -d "$1" ]]; then
        mkdir -p "$1"
        chmod "$2" "$1"
        say "created: $1 ($2)"
    elif [[ "$(stat -c '%04a' "$1")" != "$2" ]]; then
        chmod "$2" "$1"
        say "mode set: $1 ($2)"
    else
        say "ok: $1"
    fi
}

# lookup NAME FILE: the numeric id of NAME in a passwd or group file.
lookup() { awk -F: -v n="$1" '$1 == n { print $3; exit }' "$2" 2>/dev/null || true; }

# --- 1. the venv ----------------------------------------------------------------
step "venv at $VENV"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || die "$PYTHON is missing or older than Python 3.11 (set PYTHON=...)"
if [[ -x "$VENV/bin/python" ]]; then
    say "reusing: $VENV"
else
    "$PYTHON" -m venv "$VENV" \
        || die "$PYTHON -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
    say "created: $VENV"
fi

# The package is re-installed whenever the checkout's sources differ from what was
# installed last (a digest of them is kept in the venv), and never otherwise.
SOURCES=(pyproject.toml README.md execd)
digest="$(cd "$REPO" && find "${SOURCES[@]}" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' \
    -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
if [[ -x "$VENV/bin/execd" && "$(cat "$VENV/.execd-source" 2>/dev/null)" == "$digest" ]]; then
    say "execd up to date: $("$VENV/bin/execd" --version)"
else
    # Build from a clean copy: an in-tree setuptools build would leave build/ in
    # the checkout, and a stale build/lib can carry modules deleted since.
    build="$(mktemp -d)"
    trap 'rm -rf "$build"' EXIT
    (cd "$REPO" && tar -c --exclude=__pycache__ --exclude='*.pyc' "${SOURCES[@]}") | tar -x -C "$build"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        ${PIP_ARGS[@]+"${PIP_ARGS[@]}"} "$build"
    rm -rf "$build"
    trap - EXIT
    printf '%s\n' "$digest" >"$VENV/.execd-source"
    install -m 0644 "$REPO/README.md" "$VENV/README.md"   # the unit's Documentation=
    say "installed: $("$VENV/bin/execd" --version) from $REPO"
    CHANGED=1
fi

# --- 2. the command on PATH, and its shell completion ----------------------------
step "execd on PATH: $LINK"
if [[ -L "$LINK" && "$(readlink "$LINK")" == "$LINK_TARGET" ]]; then
    say "unchanged: $LINK -> $LINK_TARGET"
elif [[ -e "$LINK" || -L "$LINK" ]]; then
    # Someone else's execd (another install, a wrapper): not ours to replace.
    say "warning: kept $LINK (not a link to $LINK_TARGET): run $LINK_TARGET by its path"
else
    mkdir -p "$(dirname "$LINK")"
    ln -s "$LINK_TARGET" "$LINK"
    say "linked: $LINK -> $LINK_TARGET"
fi
# Generated from the installed grammar (shtab), so they complete what is installed.
completions="$(mktemp -d)"
trap 'rm -rf "$completions"' EXIT
"$VENV/bin/execd" completion bash >"$completions/bash"
"$VENV/bin/execd" completion zsh >"$completions/zsh"
install_file "$completions/bash" "$BASH_COMPLETION" 0644 || true
install_file "$completions/zsh" "$ZSH_COMPLETION" 0644 || true
rm -rf "$completions"
trap - EXIT

# --- 3. the system user ---------------------------------------------------------
step "system user execd"
install_file "$REPO/systemd/execd.sysusers.conf" "$SYSUSERS" 0644 || true
mkdir -p "$DESTDIR/etc"
if command -v systemd-sysusers >/dev/null; then
    # With --root an absolute file argument is read from the host: this works for
    # both the real root (DESTDIR empty) and a staging root, offline.
    if [[ -n "$DESTDIR" ]]; then
        systemd-sysusers --root="$DESTDIR" "$SYSUSERS"
    else
        systemd-sysusers "$SYSUSERS"
    fi
elif [[ -z "$DESTDIR" ]]; then
    if ! getent passwd execd >/dev/null; then
        useradd --system --user-group --home-dir /var/lib/execd --no-create-home \
            --shell /usr/sbin/nologin --comment "execd execution daemon" execd
    fi
else
    say "warning: systemd-sysusers not found: no user created in $DESTDIR"
fi
EXECD_UID="$(lookup execd "$DESTDIR/etc/passwd")"
EXECD_GID="$(lookup execd "$DESTDIR/etc/group")"
if [[ -n "$EXECD_UID" && -n "$EXECD_GID" ]]; then
    say "ok: execd is uid $EXECD_UID, gid $EXECD_GID"
else
    say "warning: no user execd in $DESTDIR/etc/passwd: state directories stay root's"
fi

# chown_execd PATH...: give PATH to execd, when that user exists and we may chown.
chown_execd() {
    [[ -n "$EXECD_UID" && -n "$EXECD_GID" ]] || return 0
    local path
    for path in "$@"; do
        [[ "$(stat -c '%u:%g' "$path")" == "$EXECD_UID:$EXECD_GID" ]] && continue
        if chown "$EXECD_UID:$EXECD_GID" "$path" 2>/dev/null; then
            say "owner set: $path (execd)"
        else
            say "warning: cannot chown $path to execd (not root?): left as is"
        fi
    done
}

# --- 4. config and credentials ---------------------------------------------------
step "config in $ETC"
ensure_dir "$ETC" 0755
if [[ ! -f "$CONFIG" ]]; then
    install -m 0644 "$REPO/deploy/execd.toml" "$CONFIG"
    say "installed: $CONFIG"
    CHANGED=1
elif cmp -s "$REPO/deploy/execd.toml" "$CONFIG"; then
    say "unchanged: $CONFIG"
else
    # Never overwrite an operator's config: ship the new default beside it.
    say "kept: $CONFIG (differs from the shipped one: compare with execd.toml.dist)"
    install_file "$REPO/deploy/execd.toml" "$CONFIG.dist" 0644 || true
fi

step "credentials in $CREDS"
ensure_dir "$CREDS" 0700
# Exchange API keys, one JSON file per venue; the unit loads them all (may be empty).
ensure_dir "$CREDS/venues" 0700
if [[ -f "$CREDS/intent-key" ]]; then
    say "kept: $CREDS/intent-key"
else
    # 32 random bytes as hex, written under a private name and renamed into place.
    (umask 077 && "$PYTHON" -c 'import secrets; print(secrets.token_hex(32))' >"$CREDS/.intent-key.new")
    mv "$CREDS/.intent-key.new" "$CREDS/intent-key"
    say "created: $CREDS/intent-key (0600; producers sign intents with a copy of it)"
    CHANGED=1
fi
if [[ "$(stat -c '%04a' "$CREDS/intent-key")" != 0600 ]]; then
    chmod 0600 "$CREDS/intent-key"
    say "mode set: $CREDS/intent-key (0600)"
fi

# --- 5. state --------------------------------------------------------------------
# systemd creates /var/lib/execd itself (StateDirectory=) and the daemon creates
# ledger/, governance/ and the lakehouse's work/, archive/ and rejected/ (owner
# only). Made here: the lakehouse directories that research and operators write
# into, shared through group execd. They are setgid, so files dropped in get group
# execd, which the daemon can still read under PrivateUsers= (writers need a umask
# that leaves group read, e.g. 027; an unreadable context file fails closed). Not
# sticky: the daemon renames producers' files out of the inbox.
step "state in $STATE"
ensure_dir "$STATE" 0750
ensure_dir "$STATE/lakehouse" 0750
LAKE_DIRS=()
for sub in inbox audit market control; do   # intents; runs.jsonl; regime and prices; overrides
    ensure_dir "$STATE/lakehouse/$sub" 2770
    LAKE_DIRS+=("$STATE/lakehouse/$sub")
done
chown_execd "$STATE" "$STATE/lakehouse" "${LAKE_DIRS[@]}"

# --- 6. the unit -----------------------------------------------------------------
step "unit $UNIT"
if install_file "$REPO/systemd/execd.service" "$UNIT" 0644; then
    CHANGED=1
    if [[ -z "$DESTDIR" && -d /run/systemd/system ]]; then
        systemctl daemon-reload
        say "systemd reloaded"
    fi
fi

# The daily verify: start-up folds from a checkpoint and does not re-check the records
# before it, so the whole chain is checked here. A change to it needs no restart.
for name in "${VERIFY_UNITS[@]}"; do
    if install_file "$REPO/systemd/$name" "$UNIT_DIR/$name" 0644 \
            && [[ -z "$DESTDIR" && -d /run/systemd/system ]]; then
        systemctl daemon-reload
    fi
done

# --- 7. check the config ---------------------------------------------------------
# The staged file is checked in DESTDIR mode: the check reads only the file, and
# the paths it names are the live ones (/var/lib/execd...), which is right.
step "config check"
if ! "$VENV/bin/execd" config check --config "$CONFIG"; then
    die "$CONFIG has problems (above): fix it and run install.sh again; the unit is not enabled"
fi

# --- 8. enable (and start) -------------------------------------------------------
step "enable execd.service"
SYSTEMCTL=(systemctl)
[[ -n "$DESTDIR" ]] && SYSTEMCTL+=(--root="$DESTDIR")
if [[ "$("${SYSTEMCTL[@]}" is-enabled execd.service 2>/dev/null || true)" == enabled ]]; then
    say "already enabled"
else
    "${SYSTEMCTL[@]}" enable execd.service
fi

step "enable execd-verify.timer"
if [[ "$("${SYSTEMCTL[@]}" is-enabled execd-verify.timer 2>/dev/null || true)" == enabled ]]; then
    say "already enabled"
else
    "${SYSTEMCTL[@]}" enable execd-verify.timer
fi

if [[ $START -eq 1 ]]; then
    step "start execd-verify.timer"
    if systemctl is-active --quiet execd-verify.timer; then
        say "already active"
    else
        systemctl start execd-verify.timer
        say "started (the first verify runs within a day: systemctl list-timers execd-verify)"
    fi
    step "start execd.service"
    if systemctl is-active --quiet execd.service; then
        if [[ $CHANGED -eq 1 ]]; then
            # Restarting is safe: the daemon drains, and resumes from its ledger.
            systemctl restart execd.service
            say "restarted (something changed)"
        else
            say "already running, nothing changed"
        fi
    else
        systemctl start execd.service
        say "started"
    fi
    systemctl --no-pager status execd.service | head -n 5 || true
else
    step "done. Next:"
    if [[ -n "$DESTDIR" ]]; then
        say "staged in $DESTDIR; check the unit: deploy/check-unit.sh --root $DESTDIR"
    else
        if [[ $CHANGED -eq 1 ]] && systemctl is-active --quiet execd.service 2>/dev/null; then
            say "systemctl restart execd          # it still runs what was there before"
        else
            say "systemctl start execd            # or run install.sh --start"
        fi
        say "journalctl -u execd -f           # its JSON log"
        say "usermod -aG execd OPERATOR       # may use execd ctl and write the lakehouse inbox"
        say "execd ctl status                 # every command reads /etc/execd/execd.toml"
        say "execd ledger verify              # ledger reads open it read-only, root's too"
        say "systemctl start execd-verify.timer   # the daily verify (enabled: starts at boot)"
        say "sudo -u execd execd plan create ...  # changes to plans run as execd"
    fi
fi
