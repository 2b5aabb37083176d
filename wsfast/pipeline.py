"""Receive and decode on two cores: batches decoded in a worker thread while the next are read.

A decoder that releases the GIL (polars, pyarrow, msgspec on large inputs) can work on one
batch while the connection parses the next: :func:`decoded_batches` does that for the
blocking clients and connections, :func:`decoded_batches_async` for the asyncio ones. Both
yield ``decode(batch)`` for every batch in the order received, hold at most ``depth``
batches between the connection and the consumer, and raise what ``decode`` raised in the
place of its result. No message is lost: when the loop ends early, the messages of the
batches received but not handed out go back to the front of the connection's queue.
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .batch import DEFAULT_MAX_BYTES, Batch
from .exceptions import ConnectionClosedOK

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator

__all__ = ["decoded_batches", "decoded_batches_async"]

T = TypeVar("T")


class BatchReceiver(Protocol):
    """What :func:`decoded_batches` reads from: a blocking client or server connection."""

    @property
    def _messages(self) -> deque[Any]: ...  # the queue of received messages, which recv_batch() takes first

    def recv_batch(self, timeout: float | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Batch: ...


class AsyncBatchReceiver(Protocol):
    """What :func:`decoded_batches_async` reads from: an asyncio client or server connection."""

    @property
    def _messages(self) -> deque[Any]: ...

    def recv_batch(self, timeout: float | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Awaitable[Batch]: ...


def _check_depth(depth: int) -> None:
    if depth < 1:
        raise ValueError(f"depth must be >= 1, not {depth}")


def _give_back(ws: BatchReceiver | AsyncBatchReceiver, batches: Iterable[Batch]) -> None:
    """Put the messages of ``batches``, received but not handed out, back at the front of
    the connection's queue: its next recv(), recv_many() or recv_batch() returns them
    first, in order. Everything queued there now came after them."""
    messages = [message for batch in batches for message in batch]
    ws._messages.extendleft(reversed(messages))


def decoded_batches(
    ws: BatchReceiver,
    decode: Callable[[Batch], T],
    *,
    depth: int = 2,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float | None = None,
) -> Iterator[T]:
    """Yield ``decode(batch)`` for every batch ``ws.recv_batch()`` returns, in order.

    ``decode`` runs in one worker thread, so while it works on a batch this thread reads
    and parses the next ones: up to ``depth`` batches wait for it or are being decoded.
    ``max_bytes`` and ``timeout`` go to every ``recv_batch()``.

    When the connection closes cleanly, the batches received before are decoded and
    yielded, then the iteration ends; any other error of ``recv_batch()``
    (``ConnectionClosedError``, ``TimeoutError``) is raised after them. An exception of
    ``decode`` is raised in the place of its result: that batch is the decoder's, and
    the iteration ends there. Leaving the loop early (``break``, an exception, a
    decoder's error) waits for the batch being decoded, if any, and puts the messages
    of every batch received but not handed out back at the front of the connection's
    queue, where the next ``recv()`` or ``recv_batch()`` finds them: nothing is lost,
    and the connection stays open.
    """
    _check_depth(depth)
    pending: deque[tuple[Batch, Future[T]]] = deque()
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="wsfast-decode") as worker:
            try:
                stopped: BaseException | None = None
                while True:
                    while stopped is None and len(pending) < depth:
                        try:
                            batch = ws.recv_batch(timeout, max_bytes=max_bytes)
                        except Exception as exc:  # noqa: BLE001  # raised once the batches before it are out
                            stopped = exc
                        else:
                            pending.append((batch, worker.submit(decode, batch)))
                    if not pending:
                        break
                    yield pending.popleft()[1].result()
                if stopped is not None and not isinstance(stopped, ConnectionClosedOK):
                    raise stopped
            finally:
                for _, future in pending:
                    future.cancel()
    finally:  # the worker is done: no decode runs on what goes back
        _give_back(ws, (batch for batch, _ in pending))


async def decoded_batches_async(
    ws: AsyncBatchReceiver,
    decode: Callable[[Batch], T],
    *,
    depth: int = 2,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float | None = None,
) -> AsyncIterator[T]:
    """:func:`decoded_batches` for an asyncio connection: ``decode`` runs in a worker
    thread while the event loop keeps receiving. Leaving the loop early (or cancelling
    it) waits for the batch being decoded, if any, and puts the messages of the batches
    received but not handed out back at the front of the connection's queue."""
    _check_depth(depth)
    loop = asyncio.get_running_loop()
    pending: deque[tuple[Batch, asyncio.Future[T]]] = deque()
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wsfast-decode")
    try:
        stopped: BaseException | None = None
        while True:
            while stopped is None and len(pending) < depth:
                try:
                    batch = await ws.recv_batch(timeout, max_bytes=max_bytes)
                except Exception as exc:  # noqa: BLE001  # raised once the batches before it are out
                    stopped = exc
                else:
                    pending.append((batch, loop.run_in_executor(worker, decode, batch)))
            if not pending:
                break
            yield await pending.popleft()[1]
        if stopped is not None and not isinstance(stopped, ConnectionClosedOK):
            raise stopped
    finally:
        for _, future in pending:
            future.cancel()
        # Given back at once, before any await: the loop's next recv() must find them.
        _give_back(ws, (batch for batch, _ in pending))
        # The batch being decoded, if any, is not cut short: the thread ends after it.
        await asyncio.shield(loop.run_in_executor(None, worker.shutdown, True))
