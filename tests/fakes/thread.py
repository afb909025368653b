"""Run a fake exchange server on its own event loop in a daemon thread.

For tests whose client lives in another process or is synchronous::

    with FakeBinanceThread(fake) as running:
        ...  # running.url is reachable; use call() to read or change its state

Each fake module names its own subclass (FakeBinanceThread, FakeOkxThread,
FakeBybitThread); the machinery is this one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class Serving(Protocol):
    """What a fake exchange offers its runner."""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None: ...

    async def stop(self) -> None: ...


F = TypeVar("F", bound=Serving)


class FakeThread(Generic[F]):
    """Serve ``fake`` from its own loop in a daemon thread while the context is open."""

    name = "fake-exchange"

    def __init__(self, fake: F, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.fake = fake
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> F:
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.fake.start(self._host, self._port))
            except BaseException as error:
                ready.set_exception(error)
                loop.close()
                return
            ready.set_result(None)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        ready.result(timeout=10)
        return self.fake

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.fake.stop(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            self._loop = self._thread = None

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the fake's event loop and return its result (thread-safe)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        if threading.current_thread() is self._thread:
            return fn()
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(fn())
            except BaseException as error:
                done.set_exception(error)

        loop.call_soon_threadsafe(run)
        return done.result(timeout=10)
