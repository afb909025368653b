"""``execd ctl status`` for people: the daemon's answer as an aligned block, and ``--watch``.

The daemon answers with raw values (nanoseconds, seconds, counts; ``--json`` prints
them as they are). Here wall-clock times become ISO 8601 UTC and ages short durations
(:mod:`execd.model.times`); logical times are shown as they are, since they are not
wall-clock times. :func:`render` is pure: the reply and the time it is shown at in,
text out.

Every value shown is passed through :func:`execd.model.text.printable`: venue and
symbol names come from intents (positions keep them in the ledger), the state note
from an operator, so an ESC in any of them is shown as ``\\u001b``, never sent to
the terminal.
"""

from __future__ import annotations

import argparse
import math
import signal
import time
from collections.abc import Callable
from typing import Any, TextIO

from execd.model.clock import WallClock
from execd.model.text import printable
from execd.model.times import duration, iso_utc

# Home, then clear to the end of the screen: each refresh redraws the same screen.
CLEAR = "\x1b[H\x1b[J"
# Labels are padded to this width so that the values line up.
_LABEL = 13
# --watch's bounds: below a tenth of a second a watch only loads the daemon's control
# socket, and a day is past what anyone watches (time.sleep overflows on 1e10).
WATCH_MIN = 0.1
WATCH_MAX = 86_400.0


def watch_seconds(text: str) -> float:
    """A ``--watch`` value: seconds from WATCH_MIN to WATCH_MAX."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not WATCH_MIN <= value <= WATCH_MAX:  # NaN fails too
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds from {WATCH_MIN:g} to {WATCH_MAX:g}, "
            f"found {text!r}")
    return value


def _seconds(value: float | None) -> str:
    return duration(value) if value is not None else "-"


def _line(label: str, value: str) -> str:
    return f"{label:<{_LABEL}}{printable(value)}".rstrip()


def _head(reply: dict[str, Any], now_ns: int) -> list[str]:
    """Version, uptime, state, readiness, config."""
    lines = []
    version = reply.get("version")
    if version is not None:
        up = reply.get("uptime_seconds")
        since = reply.get("started_ns")
        started = f" since {iso_utc(since)}" if since is not None else ""
        lines.append(_line("execd", f"{version}, {reply['mode']}, up {_seconds(up)}{started}"))
    else:
        lines.append(_line("mode", str(reply["mode"])))
    state = str(reply["state"])
    if reply.get("state_note"):
        state += f" ({reply['state_note']})"
    if reply.get("stopping"):
        state += "; draining (stopping)"
    lines.append(_line("trading", state))
    if "ready" in reply:
        reloads = reply.get("reloads") or {}
        lines.append(_line("ready", f"{'yes' if reply['ready'] else 'no'}; config reloads "
                           f"{reloads.get('applied', 0)} applied, "
                           f"{reloads.get('refused', 0)} refused"))
    config = reply.get("config")
    if config:
        lines.append(_line("config", str(config["path"])))
        lines.append(_line("", f"file sha256 {config['file_sha256']}"))
        lines.append(_line("", f"outcome settings sha256 {config['outcome_settings_sha256']}"))
        policy = config.get("policy")
        if policy:
            lines.append(_line("policy", f"{policy['path']} ({len(policy['rules'])} rules: "
                               f"{', '.join(policy['rules'])})"))
            lines.append(_line("", f"policy sha256 {policy['sha256']}"))
    return lines


def _work(reply: dict[str, Any], now_ns: int) -> list[str]:
    """Inbox backlog, last outcome, outcomes since start, logical time, ledger, queues."""
    lines = []
    inbox = reply.get("inbox")
    if inbox is not None:
        files = inbox["files"]
        text = f"{files} file{'' if files == 1 else 's'} waiting"
        if files:
            text += f", oldest {_seconds(inbox.get('oldest_age_seconds'))}"
        listed = inbox.get("listed_seconds_ago")
        text += f" (listed {_seconds(listed)} ago)" if listed is not None else " (not listed yet)"
        lines.append(_line("inbox", text))
    if "last_outcome" in reply:
        last = reply["last_outcome"]
        if last is None:
            lines.append(_line("last outcome", "none since start"))
        else:
            age = (now_ns - last["wall_ns"]) / 1e9
            lines.append(_line("last outcome", f"{iso_utc(last['wall_ns'])} ({_seconds(age)} "
                               f"ago), logical time {last['logical_time']}"))
    if "outcomes" in reply:
        counts = reply["outcomes"]
        text = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
        lines.append(_line("outcomes", f"{text or 'none'} (since start)"))
    lines.append(_line("logical time", str(reply["logical_time"])))
    ledger = reply["ledger"]
    lines.append(_line("ledger", f"last seq {ledger['last_seq']}, "
                       f"last hash {ledger['last_hash'] or '-'}"))
    lines.append(_line("queues", ", ".join(f"{k}={v}" for k, v in reply["queues"].items())))
    return lines


def _table(rows: list[list[str]]) -> list[str]:
    """Rows with each column padded to its widest cell, indented under a label."""
    rows = [[printable(cell) for cell in row] for row in rows]  # escaped, then measured
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]


def _venues(reply: dict[str, Any]) -> list[str]:
    venues = reply.get("venues") or {}
    planes = reply.get("planes") or {}
    names = sorted(set(venues) | set(planes))
    lines = [_line("venues", str(len(names)) if names else "none")]
    rows = []
    for name in names:
        state = venues.get(name) or {}
        text = str(state.get("state", "-"))
        if state.get("stream"):
            text += f"; stream {state['stream']}"
        if state.get("venue_status") not in (None, "ok"):
            text += f"; venue status {state['venue_status']}"
        if state.get("inactive"):
            text += f"; {state['inactive']} market(s) not active"
        if state.get("in_flight") or state.get("backlog") or state.get("unresolved"):
            text += (f"; {state.get('in_flight', 0)} in flight, {state.get('backlog', 0)} "
                     f"waiting, {state.get('unresolved', 0)} unresolved")
        rows.append([name, str(state.get("plane") or planes.get(name, "-")),
                     str(state.get("adapter", "")), text])
    return lines + (_table(rows) if rows else [])


def _positions(reply: dict[str, Any]) -> list[str]:
    positions = reply.get("positions") or []
    lines = [_line("positions", f"{len(positions)} open")]
    rows = []
    for p in positions:
        pending = ""
        if p.get("pending_buy") not in (None, "0") or p.get("pending_sell") not in (None, "0"):
            pending = f"pending buy {p.get('pending_buy', '0')} sell {p.get('pending_sell', '0')}"
        rows.append([str(p["venue"]), str(p["symbol"]), str(p["position"]),
                     f"mark {p.get('mark') or '-'}", pending])
    return lines + (_table(rows) if rows else [])


def _schedules(reply: dict[str, Any]) -> list[str]:
    schedules = reply.get("schedules") or []
    if not schedules:
        return []
    lines = [_line("schedules", f"{len(schedules)} open")]
    rows = []
    for p in schedules:
        if p.get("ending"):
            waits = f"ending ({p['ending']}): child {p.get('child')}"
        elif p.get("held") == "paused":
            waits = "PAUSED by its slippage response: `execd ctl resume-schedule`"
        elif p.get("child"):
            waits = f"waits for child {p['child']}"
        elif p.get("until") is not None:
            waits = f"waits for the market's volume, until {p['until']}"
        else:
            waits = f"next slice at {p.get('next_due')}"
        if p.get("held") == "passive":
            waits += " (passive: post-only limits at arrival)"
        rows.append([str(p["intent_id"]), f"{p['algorithm']} {p['side']} {p['venue']} "
                     f"{p['symbol']}", f"filled {p['filled']} of {p['planned']}",
                     f"slices {p['released']}/{p['slices']}", waits])
    return lines + _table(rows)


def schedules(reply: dict[str, Any], _now_ns: int = 0) -> str:
    """The open schedules of a status reply alone (``execd ctl schedules``)."""
    return "\n".join(_schedules(reply)) or "no open schedule"


def render(reply: dict[str, Any], now_ns: int) -> str:
    """The status reply as an aligned block; ``now_ns``: the wall-clock time it is shown at."""
    return "\n".join([*_head(reply, now_ns), *_work(reply, now_ns), *_venues(reply),
                      *_positions(reply), *_schedules(reply)])


def watch(ask: Callable[[], dict[str, Any] | int], every: float, out: TextIO,
          show: Callable[[dict[str, Any], int], str] = render) -> int:
    """Redraw the status every ``every`` seconds until Ctrl-C (exit 0) or a failure (1).

    ``ask`` returns the daemon's reply, or the exit status after it has printed why
    there is none (no daemon, no answer, refused). ``show`` turns a reply into text
    (:func:`render`, or the raw JSON for ``--json``). On a terminal each refresh
    redraws the screen in place; otherwise each is a block, separated by a blank
    line, so a log of it reads in order.
    """
    terminal = out.isatty()
    # SIGINT as KeyboardInterrupt even when started with it ignored (a shell's
    # background job): Ctrl-C must always end the watch.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    first = True
    try:
        while True:
            reply = ask()
            if isinstance(reply, int):
                return reply
            now = WallClock().now()
            head = f"every {duration(every)}, {iso_utc(now, digits=0)} (Ctrl-C to stop)"
            block = f"{head}\n{show(reply, now)}\n"
            if terminal:
                out.write(CLEAR + block)
            else:
                out.write(block if first else "\n" + block)
            out.flush()
            first = False
            time.sleep(every)
    except KeyboardInterrupt:
        if terminal:
            out.write("\n")
            out.flush()
        return 0
