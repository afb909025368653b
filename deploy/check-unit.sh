#!/usr/bin/env bash
# CI checks for systemd/execd.service and the daily execd-verify.{service,timer}, as
# deploy/install.sh installs them:
#   1. systemd-analyze verify --recursive-errors=yes (any warning fails);
#   2. systemd-analyze security --offline=yes: each service's exposure must be <= 2.0.
#
#   deploy/check-unit.sh                 stage an install in a temp dir first (pip: ~15 s)
#   deploy/check-unit.sh --root DIR      check DIR, staged by DESTDIR=DIR install.sh
#
# verify checks that every ExecStart=/ExecReload= binary exists and that every unit
# the service depends on can be loaded, so the unit is checked where it is installed
# rather than from the checkout (/opt/execd/bin/execd exists nowhere else). The
# staging root holds no OS, so the check runs in a scratch root made of the staged
# execd files plus the host's own systemd unit library and kill(1): real files
# from a systemd host, which is what the unit meets when it is installed.
# Needs systemd-analyze (package systemd) and /bin/kill (package procps).
set -euo pipefail

MAX_EXPOSURE=20   # tenths, as --threshold= counts them: 20 means 2.0

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
        --root=*) ROOT="${1#--root=}"; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "check-unit.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

fail() { printf 'check-unit.sh: FAIL: %s\n' "$*" >&2; exit 1; }
command -v systemd-analyze >/dev/null || fail "systemd-analyze not found (apt-get install systemd)"
KILL=/bin/kill
[[ -x $KILL ]] || fail "$KILL not found: ExecReload= needs it (apt-get install procps)"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if [[ -z "$ROOT" ]]; then
    ROOT="$WORK/staged"
    echo "==> staging an install in $ROOT"
    DESTDIR="$ROOT" "$REPO/deploy/install.sh" >"$WORK/install.log" 2>&1 \
        || { cat "$WORK/install.log" >&2; fail "install.sh failed"; }
fi
ROOT="$(cd "$ROOT" && pwd)"

echo "==> the install in $ROOT"
UNIT="$ROOT/etc/systemd/system/execd.service"
[[ -f "$UNIT" ]] || fail "no unit at $UNIT"
cmp -s "$UNIT" "$REPO/systemd/execd.service" || fail "$UNIT differs from systemd/execd.service"
[[ -x "$ROOT/opt/execd/bin/execd" ]] || fail "no executable $ROOT/opt/execd/bin/execd"
[[ -L "$ROOT/etc/systemd/system/multi-user.target.wants/execd.service" ]] \
    || fail "execd.service is not enabled in $ROOT (no multi-user.target.wants symlink)"
# User= and Group= must name accounts that exist where the unit runs.
for db in passwd group; do
    grep -q '^execd:' "$ROOT/etc/$db" 2>/dev/null || fail "no execd in $ROOT/etc/$db"
done
for name in execd-verify.service execd-verify.timer; do
    cmp -s "$ROOT/etc/systemd/system/$name" "$REPO/systemd/$name" \
        || fail "$ROOT/etc/systemd/system/$name differs from systemd/$name (or is missing)"
done
[[ -L "$ROOT/etc/systemd/system/timers.target.wants/execd-verify.timer" ]] \
    || fail "execd-verify.timer is not enabled in $ROOT (no timers.target.wants symlink)"
echo "    ok: units, /opt/execd/bin/execd, WantedBy symlinks, user and group execd"

# The scratch root: the files verify looks at, nothing more.
SCRATCH="$WORK/root"
mkdir -p "$SCRATCH/etc/systemd/system" "$SCRATCH/opt/execd/bin" "$SCRATCH/usr/lib/systemd" \
    "$SCRATCH/usr/bin"
cp -p "$UNIT" "$ROOT/etc/systemd/system/execd-verify.service" \
    "$ROOT/etc/systemd/system/execd-verify.timer" "$SCRATCH/etc/systemd/system/"
cp -p "$ROOT/opt/execd/bin/execd" "$SCRATCH/opt/execd/bin/"
cp -p "$ROOT/etc/passwd" "$ROOT/etc/group" "$SCRATCH/etc/"
for units in /usr/lib/systemd/system /lib/systemd/system; do
    [[ -d $units ]] && { cp -pR "$units" "$SCRATCH/usr/lib/systemd/"; break; }
done
cp -p "$KILL" "$SCRATCH/usr/bin/kill"
ln -s usr/bin "$SCRATCH/bin"   # merged /usr, as on Debian >= 12 and Ubuntu >= 20.04

echo "==> systemd-analyze verify --recursive-errors=yes"
systemd-analyze --root="$SCRATCH" verify --recursive-errors=yes execd.service \
    execd-verify.service execd-verify.timer \
    || fail "systemd-analyze verify reported problems (above)"
echo "    ok"

# security SERVICE: its exposure score, failing above the threshold.
security() {
    local status=0 score
    systemd-analyze --root="$SCRATCH" security --offline=yes --threshold="$MAX_EXPOSURE" \
        --no-pager "$1" >"$WORK/security.txt" 2>&1 || status=$?
    score="$(sed -n "s/.*Overall exposure level for $1: \([0-9.]*\).*/\1/p" "$WORK/security.txt")"
    [[ -n "$score" ]] || { cat "$WORK/security.txt" >&2; fail "no exposure score for $1"; }
    if [[ $status -ne 0 ]]; then
        grep '✗' "$WORK/security.txt" >&2 || true
        fail "$1: exposure $score is above $((MAX_EXPOSURE / 10)).$((MAX_EXPOSURE % 10))"
    fi
    echo "$score"
}

echo "==> systemd-analyze security --offline=yes --threshold=$MAX_EXPOSURE"
verify_score="$(security execd-verify.service)"
echo "    execd-verify.service exposure: $verify_score"
score="$(security execd.service)"
echo "    exposure: $score (at most $((MAX_EXPOSURE / 10)).$((MAX_EXPOSURE % 10)))"
echo "ok: execd.service passes verify and security (exposure $score)"
