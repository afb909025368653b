#!/usr/bin/env bash
# Remove what deploy/install.sh installed. Idempotent.
#
#   sudo deploy/uninstall.sh [--purge-config]
#
# Removes: the service (stopped and disabled), its unit file, the daily verify's
# service and timer (stopped and disabled), the sysusers file,
# the venv /opt/execd, the link /usr/local/bin/execd (only if it is the link
# install.sh made, to /opt/execd/bin/execd) and the bash and zsh completion files.
# Keeps:   /var/lib/execd, the ledger and the lakehouse (the audit trail: remove it
#          by hand once it is archived elsewhere);
#          /etc/execd, the config and the keys, unless --purge-config is given;
#          drop-ins in /etc/systemd/system/execd.service.d, unless --purge-config;
#          the user and group execd (files they own remain).
# DESTDIR: as for install.sh, work on a staging root (systemctl --root, nothing stopped).
set -euo pipefail

PURGE=0
for arg in "$@"; do
    case "$arg" in
        --purge-config) PURGE=1 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "uninstall.sh: unknown argument: $arg (see --help)" >&2; exit 2 ;;
    esac
done

DESTDIR="${DESTDIR:-}"
if [[ -n "$DESTDIR" && -d "$DESTDIR" ]]; then   # absolute, as systemctl --root needs it
    DESTDIR="$(cd "$DESTDIR" && pwd)"
    [[ "$DESTDIR" != / ]] || DESTDIR=""
fi
VENV="$DESTDIR/opt/execd"
UNIT="$DESTDIR/etc/systemd/system/execd.service"
DROPINS="$DESTDIR/etc/systemd/system/execd.service.d"
SYSUSERS="$DESTDIR/usr/lib/sysusers.d/execd.conf"
LINK="$DESTDIR/usr/local/bin/execd"
LINK_TARGET="/opt/execd/bin/execd"
COMPLETIONS=("$DESTDIR/usr/share/bash-completion/completions/execd"
             "$DESTDIR/usr/share/zsh/vendor-completions/_execd")
ETC="$DESTDIR/etc/execd"
STATE="$DESTDIR/var/lib/execd"

step() { printf '==> %s\n' "$*"; }
say() { printf '    %s\n' "$*"; }

if [[ -z "$DESTDIR" && $EUID -ne 0 ]]; then
    echo "uninstall.sh: removing from the real root needs root (or set DESTDIR)" >&2
    exit 1
fi

# remove PATH...: delete files or directories, saying what was there.
remove() {
    local path
    for path in "$@"; do
        if [[ -e "$path" || -L "$path" ]]; then
            rm -rf -- "$path"
            say "removed: $path"
        else
            say "absent: $path"
        fi
    done
}

step "stop and disable execd.service"
SYSTEMCTL=(systemctl)
[[ -n "$DESTDIR" ]] && SYSTEMCTL+=(--root="$DESTDIR")
if [[ -z "$DESTDIR" && -d /run/systemd/system ]] && systemctl is-active --quiet execd.service; then
    # The daemon drains on SIGTERM: every intent already read gets its outcome.
    systemctl stop execd.service
    say "stopped"
fi
if ! command -v systemctl >/dev/null; then
    say "systemctl not found: removing the unit file only"
elif [[ -f "$UNIT" ]]; then
    # Disabled while the unit file still exists: its [Install] section names the links.
    if [[ "$("${SYSTEMCTL[@]}" is-enabled execd.service 2>/dev/null || true)" == enabled ]]; then
        "${SYSTEMCTL[@]}" disable execd.service
    else
        say "not enabled"
    fi
else
    say "no unit installed"
fi
# A link left by hand, or by an enable whose unit file has gone since.
WANTS="$DESTDIR/etc/systemd/system/multi-user.target.wants/execd.service"
if [[ -L "$WANTS" ]]; then remove "$WANTS"; fi

step "stop and disable execd-verify.timer"
TIMER="$DESTDIR/etc/systemd/system/execd-verify.timer"
VERIFY="$DESTDIR/etc/systemd/system/execd-verify.service"
if [[ -z "$DESTDIR" && -d /run/systemd/system ]]; then
    systemctl stop execd-verify.timer execd-verify.service 2>/dev/null || true
fi
if command -v systemctl >/dev/null && [[ -f "$TIMER" ]] \
        && [[ "$("${SYSTEMCTL[@]}" is-enabled execd-verify.timer 2>/dev/null || true)" == enabled ]]
then
    "${SYSTEMCTL[@]}" disable execd-verify.timer
else
    say "not enabled"
fi
TIMER_WANTS="$DESTDIR/etc/systemd/system/timers.target.wants/execd-verify.timer"
if [[ -L "$TIMER_WANTS" ]]; then remove "$TIMER_WANTS"; fi

step "unit, user declaration, venv, command and completion"
remove "$UNIT" "$VERIFY" "$TIMER" "$SYSUSERS" "${COMPLETIONS[@]}"
if [[ -L "$LINK" && "$(readlink "$LINK")" == "$LINK_TARGET" ]]; then
    remove "$LINK"
elif [[ -e "$LINK" || -L "$LINK" ]]; then
    say "kept: $LINK is not the link to $LINK_TARGET: not removing it"
else
    say "absent: $LINK"
fi
if [[ -e "$VENV" && ! -f "$VENV/pyvenv.cfg" ]]; then
    say "kept: $VENV is not a venv (no pyvenv.cfg): not removing it"
else
    remove "$VENV"
fi
if [[ -z "$DESTDIR" && -d /run/systemd/system ]]; then
    systemctl daemon-reload
    systemctl reset-failed execd.service execd-verify.service 2>/dev/null || true
    say "systemd reloaded"
fi

step "config and state"
if [[ $PURGE -eq 1 ]]; then
    remove "$ETC" "$DROPINS"
else
    if [[ -e "$ETC" ]]; then say "kept: $ETC (config and keys; --purge-config removes it)"; fi
    if [[ -e "$DROPINS" ]]; then say "kept: $DROPINS (drop-ins; --purge-config removes it)"; fi
fi
if [[ -e "$STATE" ]]; then
    say "kept: $STATE (the ledger and the lakehouse: the audit trail; remove it by hand)"
fi
say "kept: the user and group execd (if any)"
echo "done."
