"""Orders followed by push: the exchange's private order stream through ccxt.pro.

Where the exchange offers it (``has['watchOrders']`` on its ccxt.pro class) and the
venue's ``stream`` key is on, a task beside the workers keeps ccxt.pro's
``watch_orders`` pending. An update for an order a worker follows wakes that
worker at once; the worker then reads the order by REST (``fetch_order``), so the
outcome always comes from the one REST source: a pushed state is a wake-up, never
an outcome. Updates can be lost across a reconnect, so each time the stream
listens again every followed order is read by REST at once (a sweep). Polling at
``poll_interval_ms`` goes on beside it all along: with the stream down, nothing
changes from polling alone.

The decisions (which followed order an update wakes, what a failure or a new
subscription means, how long to wait before the next try) are in
:class:`StreamCore`, with no I/O; :class:`OrderStream` is the shell that talks to
ccxt.pro and sleeps.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import anyio

from execd.config.schema import CcxtConfig
from execd.service import logs
from execd.venues.ccxt import exchanges

# The longest wait between two tries to open the stream.
MAX_RETRY_S = 30.0
# How often the shell looks whether ccxt.pro listens yet, while it subscribes.
_LISTEN_CHECK_S = 0.005
# How long a stop waits for ccxt.pro to close its sockets.
_CLOSE_S = 2.0
_QUERY = re.compile(r"\?\S*")


def _amount(value: Any) -> Decimal | None:
    try:
        return None if value is None else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


class StreamCore:
    """What the order stream's events mean for the orders being followed (no I/O).

    Orders are keyed by client order id; an update matches by the venue's order id
    or by the client order id. An update wakes its order only when it shows a state
    other than the last one read by REST (so an order's own "new" event, pushed
    right after the create reply, costs no read).
    """

    def __init__(self, retry_s: float, max_retry_s: float = MAX_RETRY_S) -> None:
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self.state = "starting"
        self.failures = 0
        self._venue_ids: dict[str, str] = {}
        self._known: dict[str, tuple[str | None, Decimal | None]] = {}

    # ------------------------------------------------------------ followed orders

    def follow(self, key: str, venue_order_id: str | None) -> None:
        """Start following the order ``key`` (its client order id)."""
        self._known[key] = (None, None)
        if venue_order_id:
            self._venue_ids[venue_order_id] = key

    def known(self, key: str, order: Mapping[str, Any]) -> None:
        """The venue's state of ``key`` as REST last gave it."""
        if key in self._known:
            self._known[key] = (order.get("status"), _amount(order.get("filled")))
            venue_id = order.get("id")
            if venue_id:
                self._venue_ids[str(venue_id)] = key

    def unfollow(self, key: str) -> None:
        """Stop following ``key``."""
        self._known.pop(key, None)
        for venue_id in [v for v, k in self._venue_ids.items() if k == key]:
            del self._venue_ids[venue_id]

    def followed(self) -> list[str]:
        """Every order followed now."""
        return list(self._known)

    def pushed(self, orders: Iterable[Mapping[str, Any]]) -> list[str]:
        """The followed orders that ``orders`` (updates from the stream) wake, in order."""
        woken: list[str] = []
        for order in orders:
            venue_id = order.get("id")
            key = self._venue_ids.get(str(venue_id)) if venue_id else None
            if key is None:
                client_id = order.get("clientOrderId")
                key = client_id if client_id in self._known else None
            if key is None or key in woken:
                continue
            status, filled = self._known[key]
            pushed = (order.get("status"), _amount(order.get("filled")))
            # Anything unreadable in the update wakes too: a read costs one request.
            if pushed[0] is None or pushed[1] is None or pushed != (status, filled):
                woken.append(key)
        return woken

    # ------------------------------------------------------------ the stream's state

    def off(self, why: str) -> None:
        """The venue follows orders by polling alone."""
        self.state = f"off: {why}"

    def connecting(self) -> None:
        """A try to open (or reopen) the stream begins."""
        self.state = "connecting" if not self.failures else f"reconnecting ({self.failures})"

    def listening(self) -> list[str]:
        """The stream listens again: every followed order is to be read by REST now.

        Updates pushed while it did not listen are lost, so each order's state is
        read once; the failure count starts again.
        """
        self.state = "listening"
        self.failures = 0
        return self.followed()

    def failed(self, error: str) -> float:
        """The stream failed with ``error``: seconds to wait before the next try."""
        self.failures += 1
        wait = min(self.retry_s * 2.0 ** (self.failures - 1), self.max_retry_s)
        self.state = f"down: {error}"
        return wait

    def closed(self) -> None:
        """The venue stopped; so did its stream."""
        self.state = "closed"


class Waker:
    """Wakes one worker that follows one order; a wake is kept until it is waited for."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = anyio.Event()

    def wake(self) -> None:
        """Make the next (or current) :meth:`wait` return at once."""
        self._event.set()

    async def wait(self, seconds: float, also: anyio.Event | None = None) -> bool:
        """Wait ``seconds``, or less once woken or once ``also`` is set; True if woken."""
        with anyio.move_on_after(seconds):
            if also is None:
                await self._event.wait()
            else:
                async with anyio.create_task_group() as tg:
                    async def until(event: anyio.Event) -> None:
                        await event.wait()
                        tg.cancel_scope.cancel()
                    tg.start_soon(until, self._event)
                    tg.start_soon(until, also)
        woken = self._event.is_set()
        if woken:
            self._event = anyio.Event()
        return woken


def offers_push(exchange_id: str) -> bool:
    """Whether ccxt.pro has a class for ``exchange_id`` that offers ``watchOrders``."""
    import ccxt.pro  # imported here: only live venues that stream pay for it

    cls = getattr(ccxt.pro, exchange_id, None)
    if cls is None:
        return False
    return bool(cls().has.get("watchOrders"))


def ws_base(base_url: str) -> str:
    """The websocket form of ``base_url``: http becomes ws, https becomes wss."""
    return "ws" + base_url[len("http"):] if base_url.startswith("http") else base_url


def rewrite_urls(urls: Any, base_url: str) -> Any:
    """Every URL in ccxt's ``urls['api']`` moved to ``base_url``, keeping its path."""
    if isinstance(urls, dict):
        return {key: rewrite_urls(value, base_url) for key, value in urls.items()}
    if isinstance(urls, str) and "://" in urls:
        rest = urls.split("://", 1)[1]
        return base_url + (rest[rest.index("/"):] if "/" in rest else "")
    return urls


def pro_twin(rest: Any, base_url: str | None) -> Any:
    """A ccxt.pro exchange like ``rest`` (same class, keys and options) for its stream.

    It has its own sockets and session, and takes ``rest``'s markets, so opening
    the stream costs no REST request. With ``base_url``, the REST URLs move there
    and the websocket URLs to its ws/wss form.
    """
    import ccxt.pro

    settings: dict[str, Any] = {
        "apiKey": rest.apiKey, "secret": rest.secret, "timeout": rest.timeout,
        "enableRateLimit": rest.enableRateLimit, "rateLimit": rest.rateLimit,
        "options": copy.deepcopy(rest.options)}
    for key in ("password", "uid"):
        if getattr(rest, key, None):
            settings[key] = getattr(rest, key)
    pro = getattr(ccxt.pro, rest.id)(settings)
    if base_url is not None:
        ws = pro.urls["api"].get("ws")
        pro.urls["api"] = rewrite_urls(pro.urls["api"], base_url)
        if ws is not None:
            pro.urls["api"]["ws"] = rewrite_urls(ws, ws_base(base_url))
    if rest.markets:
        pro.set_markets(rest.markets, rest.currencies)
    return pro


def listening(pro: Any) -> bool:
    """Whether ccxt.pro waits for order updates on a connected socket.

    ccxt.pro's watch_orders first authenticates (Binance spot: until the venue
    acknowledges the subscription), then waits on an "orders" future of the
    socket's client; that future is the only sign, short of an update, that the
    subscription is in place.
    """
    for client in list((getattr(pro, "clients", None) or {}).values()):
        connected = client.connected
        if connected is None or not connected.done() or connected.cancelled() \
                or connected.exception() is not None:
            continue
        if any(h == "orders" or str(h).startswith("orders:") for h in list(client.futures)):
            return True
    return False


class OrderStream:
    """The shell: one ccxt.pro order stream for one venue, beside its workers."""

    def __init__(self, venue: str, rest: Any, table: CcxtConfig) -> None:
        self.venue = venue
        self.rest = rest
        self.table = table
        self.core = StreamCore(table.stream_retry_ms / 1000)
        self.log = logs.get("venue", venue=venue)
        self._wakers: dict[str, Waker] = {}
        # Words a failure's text could carry that must never reach a log.
        self._secrets = [s for s in (rest.apiKey, rest.secret,
                                     getattr(rest, "password", None)) if s]

    @property
    def state(self) -> str:
        """What ``execd ctl status`` shows: off, connecting, listening, down: why."""
        return self.core.state

    @contextlib.contextmanager
    def follow(self, client_order_id: str, venue_order_id: Any) -> Iterator[Waker]:
        """Follow one order while the block runs; its waker wakes on its updates."""
        waker = self._wakers[client_order_id] = Waker()
        self.core.follow(client_order_id, str(venue_order_id) if venue_order_id else None)
        try:
            yield waker
        finally:
            self.core.unfollow(client_order_id)
            if self._wakers.get(client_order_id) is waker:
                del self._wakers[client_order_id]

    def known(self, client_order_id: str, order: Mapping[str, Any]) -> None:
        """The order's state as REST just read it."""
        self.core.known(client_order_id, order)

    def wake(self, client_order_id: str) -> None:
        """Wake the worker that follows this order now (a cancel was asked for)."""
        self._wake((client_order_id,))

    def _wake(self, keys: Iterable[str]) -> None:
        for key in keys:
            waker = self._wakers.get(key)
            if waker is not None:
                waker.wake()

    def _message(self, exc: BaseException) -> str:
        text = _QUERY.sub("", str(exc)) or type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return f"{type(exc).__name__}: {text}"[:300]

    async def run(self, ready: anyio.Event) -> None:
        """Open the stream once the venue is ready and keep it open until cancelled.

        Never raises (but cancellation): a failure is logged, reported in the
        state and tried again after a backoff; polling goes on meanwhile.
        """
        if not self.table.stream:
            self.core.off("stream = false")
            self.log.info("stream.off", why=self.core.state)
            return
        unproved = exchanges.exchange(self.table.exchange).stream_unproved
        if unproved is not None:
            self.core.off(unproved)
            self.log.info("stream.off", why=self.core.state)
            return
        try:
            offered = offers_push(self.table.exchange)
        except Exception as exc:  # noqa: BLE001 - a broken ccxt.pro must not stop the venue
            self.core.off(f"ccxt.pro cannot be loaded: {self._message(exc)}")
            self.log.error("stream.off", why=self.core.state)
            return
        if not offered:
            self.core.off(f"ccxt.pro offers no watchOrders for {self.table.exchange}")
            self.log.info("stream.off", why=self.core.state)
            return
        await ready.wait()
        try:
            while True:
                self.core.connecting()
                # A new ccxt.pro instance for each try: after a refused subscription
                # ccxt 4.5 keeps a future that makes every later watch on the same
                # instance wait for ever (see tests/fakes/test_binance.py).
                pro: Any = None
                try:
                    pro = pro_twin(self.rest, self.table.base_url)
                    await self._session(pro)
                except Exception as exc:  # noqa: BLE001 - any stream failure is a retry
                    wait = self.core.failed(self._message(exc))
                    self.log.warning("stream.failed", error=self.core.state[len("down: "):],
                                     failures=self.core.failures, retry_in_s=wait)
                    await self._close(pro)
                    await anyio.sleep(wait)
                finally:
                    await self._close(pro)
        finally:
            self.core.closed()
            self.log.info("stream.closed")

    @staticmethod
    async def _close(pro: Any) -> None:
        """Close ``pro``'s sockets and session (bounded, and also while cancelled)."""
        if pro is None or getattr(pro, "closed_by_user", False):
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_S):
            pro.timeout_on_exit = 0  # ccxt sleeps this long on close, for TLS
            with contextlib.suppress(Exception):
                await pro.close()

    async def _session(self, pro: Any) -> None:
        """One subscription, until it fails: wake followed orders as updates come."""
        failure: list[Exception] = []
        heard = anyio.Event()

        async def listen() -> None:
            try:
                while True:
                    orders = await pro.watch_orders()
                    # No await from here to the next watch: ccxt.pro resolves a watch
                    # only for updates that arrive while one is pending.
                    if not heard.is_set():
                        heard.set()
                    self._wake(self.core.pushed(orders))
            except Exception as exc:  # noqa: BLE001 - any stream failure is a retry
                failure.append(exc)
                tg.cancel_scope.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(listen)
            # Listening once ccxt.pro waits for updates (or one arrived); with no sign
            # of it within timeout_ms the try has failed.
            with anyio.move_on_after(self.table.timeout_ms / 1000) as waiting:
                while not (heard.is_set() or listening(pro)):  # noqa: ASYNC110 - ccxt.pro offers no event for it
                    await anyio.sleep(_LISTEN_CHECK_S)
            if failure:
                pass  # listen() failed and is cancelling this group
            elif waiting.cancelled_caught:
                failure.append(TimeoutError(
                    f"not subscribed within timeout_ms={self.table.timeout_ms}"))
                tg.cancel_scope.cancel()
            else:
                swept = self.core.listening()
                self.log.info("stream.listening", swept=len(swept))
                self._wake(swept)
        if failure:
            raise failure[0]
