"""Receive and decode on two cores: batches decoded in a worker thread while the next are read.

A decoder that releases the GIL (polars, pyarrow, msgspec on large inputs) can work on one
batch while the connection parses the next: :func:`decoded_batches` does that for the
blocking clients and connections, :func:`decoded_batches_async` for the asyncio ones. Both
yield ``decode(batch)`` for every batch in the order received, hold at most ``depth``
batches between the connection and the consumer, and raise what ``decode`` raised in the
place of its result.
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol, TypeVar

from .batch import DEFAULT_MAX_BYTES, Batch
from .exceptions import ConnectionClosedOK

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

__all__ = ["decoded_batches", "decoded_batches_async"]

T = TypeVar("T")


class BatchReceiver(Protocol):
    """What :func:`decoded_batches` reads from: a blocking client or server connection."""

    def recv_batch(self, timeout: float | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Batch: ...


class AsyncBatchReceiver(Protocol):
    """What :func:`decoded_batches_async` reads from: an asyncio client or server connection."""

    def recv_batch(self, timeout: float | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Awaitable[Batch]: ...


def _check_depth(depth: int) -> None:
    if depth < 1:
        raise ValueError(f"depth must be >= 1, not {depth}")


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
    ``decode`` is raised in the place of its result, and the batches after it are
    dropped. Leaving the loop early (``break``, an exception) waits for the batch being
    decoded, if any, and drops the others; the connection stays open either way.
    """
    _check_depth(depth)
    pending: deque[Future[T]] = deque()
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
                        pending.append(worker.submit(decode, batch))
                if not pending:
                    break
                yield pending.popleft().result()
            if stopped is not None and not isinstance(stopped, ConnectionClosedOK):
                raise stopped
        finally:
            for future in pending:
                future.cancel()


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
    it) waits for the batch being decoded, if any, and drops the others."""
    _check_depth(depth)
    loop = asyncio.get_running_loop()
    pending: deque[asyncio.Future[T]] = deque()
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
                    pending.append(loop.run_in_executor(worker, decode, batch))
            if not pending:
                break
            yield await pending.popleft()
        if stopped is not None and not isinstance(stopped, ConnectionClosedOK):
            raise stopped
    finally:
        for future in pending:
            future.cancel()
        # The batch being decoded, if any, is not cut short: the thread ends after it.
        await asyncio.shield(loop.run_in_executor(None, worker.shutdown, True))
