"""The messages an asyncio connection received and has not handed out yet, and the calls
that hand them out one at a time: the pure twin of the compiled codec's ``Receiver``.

In the compiled twin :meth:`Receiver.recv` and ``__anext__`` return an awaitable of their
own instead of a coroutine: taking a message already queued then costs no coroutine
frame, which is most of the time of a message on a fast feed.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING

from .exceptions import ConnectionClosedOK

if TYPE_CHECKING:
    from typing_extensions import Self


class Receiver:
    """Base of :class:`wsfast.asyncio.WebSocket`: the queue of received messages.

    Subclasses queue messages in ``_messages`` and provide two methods: the coroutine
    ``_wait_for_messages(timeout)``, which returns once a message is queued (or raises),
    and ``_resume_reading()``, called while ``_reading_paused`` once taking a message
    leaves no more than ``_resume_below`` queued.
    """

    __slots__ = ("_messages", "_reading_paused", "_resume_below")

    def __init__(self) -> None:
        self._messages: collections.deque[str | bytes] = collections.deque()
        self._reading_paused = False
        self._resume_below = 0  # resume reading once no more messages than this wait

    async def recv(self, timeout: float | None = None) -> str | bytes:
        """Return the next message: ``str`` for text, ``bytes`` for binary.

        Waits at most ``timeout`` seconds (None: no limit), then raises TimeoutError.
        Raises :class:`~wsfast.ConnectionClosed` once the connection has closed and every
        message received before has been returned. Cancelling it loses no message. What
        it returns can be awaited or given to ``asyncio.create_task()``, like a coroutine.
        """
        messages = self._messages
        if not messages:
            await self._wait_for_messages(timeout)
        message = messages.popleft()
        if self._reading_paused and len(messages) <= self._resume_below:
            self._resume_reading()
        return message

    async def __anext__(self) -> str | bytes:
        # recv() inlined: one coroutine per message instead of two.
        messages = self._messages
        if not messages:
            try:
                await self._wait_for_messages(None)
            except ConnectionClosedOK:
                raise StopAsyncIteration from None
        message = messages.popleft()
        if self._reading_paused and len(messages) <= self._resume_below:
            self._resume_reading()
        return message

    def __aiter__(self) -> Self:
        return self

    async def _wait_for_messages(self, timeout: float | None) -> None:
        raise NotImplementedError

    def _resume_reading(self) -> None:
        raise NotImplementedError
