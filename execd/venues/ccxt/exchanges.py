"""What execd knows about each exchange it trades on through ccxt, and what a reply means.

Pure: a table, read from each venue's own API documentation and from how ccxt 4.5
calls it, and the rules that turn a failed send into a verdict. execd trades only on
exchanges this table declares safe: an order whose reply is lost must be findable by
its client order id, or a crash could double it or lose it.

For each exchange: how a client order id is set and looked up (length and charset),
whether the lookup needs the symbol, the venue-side acceptance window (Binance's
``recvWindow``), and which of the venue's error codes mean refused, unknown (the
venue may have taken the order), not found, or duplicate client id.

ccxt's exception classes are not enough to decide: for a code missing from its
tables ccxt raises a bare ``ExchangeError``, and Binance's tables depend on the host
(behind a proxy even its documented 5xx codes fall through). So the HTTP status and
the venue's own code decide first (:func:`verdict`); ccxt's class is the fallback.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from msgspec import Struct

# What an error from the venue means for an order that was being sent.
Verdict = Literal["rejected", "unreachable", "unknown", "exists"]

# Refusals ccxt raises only from a venue's documented answer: the order was not taken.
_REFUSALS = ("InsufficientFunds", "InvalidOrder", "BadSymbol", "BadRequest",
             "AuthenticationError", "PermissionDenied", "AccountSuspended",
             "AccountNotEnabled", "ArgumentsRequired", "NotSupported", "MarginModeAlreadySet")


class Codes(Struct, frozen=True):
    """The venue's documented error codes, as strings, by what they say about an order."""

    # The venue answered and did not take the order.
    refused: frozenset[str] = frozenset()
    # The venue says the order's fate is unknown (timeouts, busy, internal errors).
    unknown: frozenset[str] = frozenset()
    # The client order id is in use: the venue has (or had) an order with it.
    duplicate: frozenset[str] = frozenset()
    # Codes that carry a duplicate only with one of these (lowercase) messages.
    duplicate_messages: tuple[str, ...] = ()
    # A lookup found no order with the id.
    not_found: frozenset[str] = frozenset()


class LookupCall(Struct, frozen=True):
    """One ccxt call that looks an order up by client order id.

    ``order``: called as ``method(None, symbol, {param: client_order_id, **extra})``,
    an ``OrderNotFound`` meaning "not by this call". ``list``: called as
    ``method(symbol, None, None, {param: client_order_id, **extra})``, an empty list
    meaning the same (for venues where ccxt's single-order call sends an empty venue
    id that the venue reads before the client id). Either way the next call is tried.
    """

    method: str
    param: str
    kind: Literal["order", "list"] = "order"
    extra: dict[str, Any] = {}


class Exchange(Struct, frozen=True):
    """What execd needs to know to trade safely on one exchange."""

    name: str
    # Why execd cannot trade on it safely (None: it can).
    unsafe: str | None = None
    # The venue's limit on a client order id and the characters it allows.
    client_id_max: int = 0
    client_id_charset: str = ""
    # The param create_order takes the client order id in.
    client_id_param: str = "clientOrderId"
    # The venue signs every private request with a passphrase besides key and secret
    # (ccxt's ``password``): without one the venue can never start.
    needs_password: bool = False
    # Tried in turn; the first that finds the order wins, none: no such order.
    lookup: tuple[LookupCall, ...] = ()
    # The venue's own acceptance window option in ccxt (None: it has none).
    window_option: str | None = None
    # Or a request header carrying a deadline (ms since the epoch) past which the
    # venue does not process an order request, which execd sets itself (ccxt does not).
    deadline_header: str | None = None
    deadline_paths: tuple[str, ...] = ()
    codes: Codes = Codes()
    # Where the venue's own code sits in an error body: keys tried in turn; a list
    # under ``data``/``result`` is searched too (OKX puts per-order codes there).
    code_keys: tuple[str, ...] = ("code",)
    # Codes meaning success in ``code_keys`` (a body may carry a per-order one).
    ok_codes: frozenset[str] = frozenset({"0"})
    # What the venue's own codes look like; anything else in a code key is another
    # hop's (a gateway's), and is read as no code at all.
    code_pattern: str = r"-?\d+"
    # On this venue any HTTP 4xx other than 429/418 is a refusal (Binance: "malformed
    # request; the issue is on the sender's side").
    refuses_with_4xx: bool = False
    # ccxt options, and ``has`` entries to switch off (load_markets reads ``has``).
    options: dict[str, Any] = {}
    has_off: tuple[str, ...] = ()
    # Why execd does not follow its orders by the private order stream (ccxt.pro's
    # watchOrders) though ccxt offers it: not proved against a fake of the venue's
    # stream yet, so its orders are polled (None: the stream is used).
    stream_unproved: str | None = None


BINANCE = Exchange(
    name="binance",
    client_id_max=36, client_id_charset=r"[.A-Z:/a-z0-9_-]",
    lookup=(LookupCall("fetch_order", "clientOrderId"),),
    window_option="recvWindow",
    codes=Codes(
        # -1000 UNKNOWN, -1001 DISCONNECTED, -1006 UNEXPECTED_RESP ("execution status
        # unknown"), -1007 TIMEOUT ("send status unknown"), -1008 SERVER_BUSY.
        unknown=frozenset({"-1000", "-1001", "-1006", "-1007", "-1008"}),
        # -1013 filter failure, -1021 timestamp outside recvWindow, -1022 signature,
        # -2010 NEW_ORDER_REJECTED (balance, duplicate, ...), -2014/-2015 API key.
        refused=frozenset({"-1013", "-1021", "-1022", "-2010", "-2014", "-2015", "-1100",
                           "-1101", "-1102", "-1103", "-1104", "-1105", "-1106", "-1111",
                           "-1112", "-1114", "-1115", "-1116", "-1117", "-1121"}),
        duplicate=frozenset({"-2010"}), duplicate_messages=("duplicate order",),
        not_found=frozenset({"-2013"})),
    # Binance's own codes are negative; a gateway's {"code": 400} is not one of them.
    code_keys=("code",), code_pattern=r"-\d+", refuses_with_4xx=True,
    options={"fetchCurrencies": False, "fetchMargins": False,
             "fetchMarkets": {"types": ["spot"]}},
    has_off=("fetchCurrencies",),
)

OKX = Exchange(
    name="okx",
    # clOrdId: "case-sensitive alphanumerics ... up to 32 characters".
    client_id_max=32, client_id_charset=r"[A-Za-z0-9]",
    # OK-ACCESS-PASSPHRASE: "the passphrase you specified when creating the API key".
    needs_password=True,
    lookup=(LookupCall("fetch_order", "clientOrderId"),),
    codes=Codes(
        # 50001 service unavailable, 50004 endpoint timeout ("does not indicate success
        # or failure", at HTTP 400), 50013 system busy, 50026 system error, 51149 order
        # timed out; 50011 rate limit.
        unknown=frozenset({"50001", "50004", "50011", "50013", "50026", "51149"}),
        # 50102 timestamp expired, 50105/50111/50113 passphrase/key/sign, 51000 parameter
        # error, 51001 instrument, 51005/51020/51121 size, 51008/51119/51131 balance,
        # 51137/51138 price limits.
        refused=frozenset({"50102", "50105", "50111", "50113", "51000", "51001", "51005",
                           "51008", "51020", "51119", "51121", "51131", "51137", "51138"}),
        duplicate=frozenset({"51016"}),
        # 51603 no such order (lookup), 51400 cancel of an order that is not there.
        not_found=frozenset({"51603", "51400"})),
    # "Transaction timeouts": with expTime, a place-order request is not processed
    # once the server's time is past it. Without it only the 30 s timestamp expiry
    # bounds how late OKX may act, far beyond a typical acceptance window.
    # The deadline is on OKX's clock: ccxt measures the difference at start-up
    # (adjustForTimeDifference, one request to public/time), so a local clock that
    # runs fast cannot stretch it.
    deadline_header="expTime",
    deadline_paths=("/api/v5/trade/order", "/api/v5/trade/batch-orders"),
    code_keys=("sCode", "code"), code_pattern=r"\d+",
    options={"fetchMarkets": {"types": ["spot"]}, "adjustForTimeDifference": True},
    has_off=("fetchCurrencies",),
    stream_unproved="its order stream is not proved here yet: orders are polled",
)

BYBIT = Exchange(
    name="bybit",
    # orderLinkId: up to 36 numbers, letters, dashes and underscores.
    client_id_max=36, client_id_charset=r"[A-Za-z0-9_-]",
    # /v5/order/realtime serves open orders and the 500 latest ended ones,
    # /v5/order/history older ones. ccxt maps the unified client id on create only,
    # and its single-order lookups send orderId=None, which Bybit reads first (a
    # false "not found"): the list calls, filtered by orderLinkId, are used instead.
    lookup=(LookupCall("fetch_open_orders", "orderLinkId", "list"),
            LookupCall("fetch_canceled_and_closed_orders", "orderLinkId", "list")),
    window_option="recvWindow",
    codes=Codes(
        # 10000 server timeout, 10016 server error, 10006 too many visits, 170007
        # backend timeout, 170146 order creation timeout, 170147 cancel timeout.
        unknown=frozenset({"10000", "10006", "10016", "170007", "170146", "170147"}),
        # 10001 parameter error, 10002 outside recv_window, 10003-10005 key/sign/permission,
        # 110007/170131 insufficient balance, 170136/170137 quantity/decimals, 170140
        # order value, 170121 symbol, 170134 price decimals, 170381 quantity too large.
        refused=frozenset({"10001", "10002", "10003", "10004", "10005", "110007", "170121",
                           "170131", "170134", "170136", "170137", "170140", "170381"}),
        # 110072 (derivatives) and 170141 (spot): the orderLinkId was used already.
        duplicate=frozenset({"110072", "170141"}),
        not_found=frozenset({"110001", "170213"})),
    code_keys=("retCode",), code_pattern=r"\d+",
    # On a unified account ccxt's fetch_order (how an order is followed by its venue
    # id) raises ArgumentsRequired unless "acknowledged": it reads /v5/order/realtime,
    # which holds open orders and the 500 latest ended ones: an order followed from
    # its send is among them.
    options={"fetchMarkets": ["spot"], "enableUnifiedAccount": True,
             "enableUnifiedMargin": False, "fetchOrder": {"acknowledged": True}},
    has_off=("fetchCurrencies",),
    stream_unproved="its order stream is not proved here yet: orders are polled",
)

# Exchanges ccxt offers whose client-order-id path execd cannot make safe.
_UNSAFE = {
    "kraken": "ccxt looks an order up by client id through Kraken's integer userref "
              "(the cl_ord_id execd sets is text), so after a lost reply the order "
              "cannot be found by its client order id",
    "coinbase": "ccxt drops the client order id it is given and always sends a random "
                "one, so a lost reply cannot be resolved by lookup and a resend would be "
                "a second order",
}
_UNSAFE["coinbaseadvanced"] = _UNSAFE["coinbase"]

SUPPORTED: dict[str, Exchange] = {e.name: e for e in (BINANCE, BYBIT, OKX)}


def exchange(name: str) -> Exchange:
    """The declared capability of ``name``; ``unsafe`` says why execd will not trade there."""
    known = SUPPORTED.get(name)
    if known is not None:
        return known
    why = _UNSAFE.get(name) or (
        f"execd declares no capability for it (how its client order ids are set and "
        f"looked up, which error codes mean refused or unknown); supported: "
        f"{', '.join(sorted(SUPPORTED))}")
    return Exchange(name=name, unsafe=why)


def client_id_problem(spec: Exchange, client_id: str) -> str | None:
    """Why ``client_id`` does not fit the venue's rule (None: it does)."""
    if len(client_id) > spec.client_id_max:
        return f"{len(client_id)} characters > {spec.client_id_max}"
    if not re.fullmatch(f"{spec.client_id_charset}+", client_id):
        return f"characters outside {spec.client_id_charset}"
    return None


class Reply(Struct, frozen=True):
    """The venue's answer behind a ccxt error: HTTP status and the venue's own code."""

    status: int | None
    code: str | None
    message: str


def read_reply(spec: Exchange, status: int | None, body: Any) -> Reply:
    """The venue's code and message in an error ``body`` (parsed JSON, or text)."""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return Reply(status, None, body[:200])
    code = message = None
    for item in _candidates(body):
        for key in spec.code_keys:
            value = item.get(key)
            if (value is not None and str(value) not in spec.ok_codes
                    and re.fullmatch(spec.code_pattern, str(value))):
                code = str(value)
                message = next((str(item[k]) for k in ("sMsg", "msg", "retMsg", "message")
                                if item.get(k)), "")
                break
        if code is not None:
            break
    return Reply(status, code, message or "")


def _candidates(body: Any) -> list[dict[str, Any]]:
    """Where codes sit: per-order entries first (they are the specific ones), then the top."""
    if not isinstance(body, dict):
        return []
    nested: list[dict[str, Any]] = []
    for key in ("data", "result"):
        value = body.get(key)
        if isinstance(value, list):
            nested.extend(v for v in value if isinstance(v, dict))
    return [*nested, body]


def verdict(spec: Exchange, reply: Reply | None, error: str) -> Verdict:
    """What a failed send says about the order: from the venue's reply, then ccxt's class.

    ``reply`` is what the venue answered in the call that failed (None: nothing was
    read, and the caller has already ruled out transport failures); ``error`` is the
    name of the ccxt exception class raised.
    """
    if reply is None:
        # ccxt refused before sending (a local check), or failed without a reply.
        return "rejected" if error in _REFUSALS else "unknown"
    code = reply.code
    if code is not None and code in spec.codes.duplicate and (
            not spec.codes.duplicate_messages
            or any(m in reply.message.lower() for m in spec.codes.duplicate_messages)):
        return "exists"
    status = reply.status or 0
    if status >= 500 or status in (408, 418, 429):
        return "unknown"
    if code is not None and code in spec.codes.unknown:
        return "unknown"
    if code is not None and code in spec.codes.refused:
        return "rejected"
    if spec.refuses_with_4xx and 400 <= status < 500 and code is not None:
        # Only the venue's own 4xx: a page from a hop in between (a WAF, a proxy)
        # says nothing about whether the venue got the order.
        return "rejected"
    if error == "DuplicateOrderId":
        return "exists"
    # A code execd does not know: only a refusal ccxt mapped from the venue's own
    # table is taken as one; a bare ExchangeError may hide a fill. Without the venue's
    # code (a 401 or 407 page from a hop, which ccxt maps to AuthenticationError by
    # status alone) nothing says the venue refused.
    return "rejected" if error in _REFUSALS and code is not None else "unknown"


def readable_order(order: Any, client_order_id: str) -> str | None:
    """Why a reply cannot be taken as the venue's order ``client_order_id`` (None: it can).

    An order is known by its venue id: a 200 whose body is an HTML page or an error
    envelope parses into an order with no id, and that order's fate is unknown. A
    reply that names another client order id (a proxy answering with another
    request's reply) is not this order either.
    """
    if not isinstance(order, dict):
        return f"the reply is not an order: {type(order).__name__}"
    venue_id = order.get("id")
    if venue_id is None or str(venue_id) == "":
        return "the reply is not an order: it has no order id"
    named = order.get("clientOrderId")
    if isinstance(named, str) and named and named != client_order_id:
        return f"the reply is another order's: client order id {named[:64]}"
    return None
