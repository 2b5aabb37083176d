"""The messages a connection received and has not handed out yet, and the calls that
hand them out one at a time: the pure twin of the compiled codec's ``Receiver`` (asyncio)
and ``BlockingReceiver``.

In the compiled twin these calls run no Python frame when a message is queued, which is
most of the time of a message on a fast feed: there :meth:`Receiver.recv` and
``__anext__`` return an awaitable of their own instead of a coroutine. With a decode
function, each message is decoded as it is handed out.

The receivers are generic over what they hand out (``M``: ``str | bytes``, or what the
decode function returns); ``Generic`` costs nothing per call.
"""

from __future__ import annotations

import collections
from time import monotonic
from typing import TYPE_CHECKING, Any, Generic

from ._typing import M
from .exceptions import ConnectionClosedOK, DecodeError

if TYPE_CHECKING:
    from collections.abc import Callable, Sized

    from typing_extensions import Self

# The most messages one recv_many() decodes: the objects a decoder makes of a whole read
# (thousands of dicts or Structs) would not fit in the CPU's caches; by the hundred they do.
DECODED_AT_ONCE = 256


def _decoded(decode: Callable[[bytes], M], message: Any) -> M:
    """``decode(message)``; a DecodeError carrying ``message`` when it raises."""
    try:
        return decode(message)
    except Exception as exc:
        raise DecodeError(message) from exc


class _MessageQueue(Generic[M]):
    """The queue of received messages of both receivers, and the decoding of what they
    hand out: ``_decode`` is None (messages as received) or a function that each message
    goes through, whose failure is the DecodeError raised for that message."""

    __slots__ = ("_decode", "_decode_failure", "_messages")

    def __init__(self) -> None:
        self._messages: collections.deque[str | bytes] = collections.deque()
        self._decode: Callable[[bytes], M] | None = None
        # What a _take_all() that returned the messages before it met: raised by the next call.
        self._decode_failure: DecodeError | None = None

    def _raise_decode_failure(self) -> None:
        failure = self._decode_failure
        if failure is not None:
            self._decode_failure = None
            raise failure

    def _take_all(self) -> list[M]:
        """Take every queued message; with a decode function, up to
        :data:`DECODED_AT_ONCE` of them, decoded, and up to one that fails, which raises
        when it comes first, else is raised by the next call (the messages after it stay
        queued). Raises that failure first if one is due."""
        self._raise_decode_failure()
        decode = self._decode
        # One message at a time: a recv() in another thread may pop between a copy and a
        # clear, and its message would be handed out twice.
        popleft = self._messages.popleft
        taken: list[Any] = []  # M: as received without decode, else decoded
        count = len(self._messages) if decode is None else min(len(self._messages), DECODED_AT_ONCE)
        try:
            for _ in range(count):
                message = popleft()
                taken.append(message if decode is None else _decoded(decode, message))
        except IndexError:  # another thread took the last ones
            pass
        except DecodeError as failure:
            if not taken:
                raise
            self._decode_failure = failure
        return taken


class BlockingReceiver(_MessageQueue[M]):
    """Base of the connections of the blocking client and server: the queue of received
    messages.

    Subclasses queue messages in ``_messages`` and provide ``_fill(queue, timeout)``,
    which reads until ``queue`` holds something, or raises. Threads may call recv() at
    once: the deque is thread-safe, and one that finds its message taken waits again.
    """

    __slots__ = ()

    def recv(self, timeout: float | None = None) -> M:
        """Return the next message: ``str`` for text, ``bytes`` for binary; with a
        ``decode`` function, what it returns (it raising raises :class:`~wsfast.DecodeError`).

        Waits at most ``timeout`` seconds (None: no limit), then raises TimeoutError; the
        connection stays usable. Once the connection has closed and every message received
        before has been returned, raises :class:`~wsfast.ConnectionClosedOK` after a normal
        close, else :class:`~wsfast.ConnectionClosedError` (whose ``__cause__`` is the
        :class:`~wsfast.ProtocolError` when the peer broke the protocol).
        """
        messages = self._messages
        message: Any  # str | bytes, which is M without decode
        deadline = None
        if self._decode_failure is not None:
            self._raise_decode_failure()
        while True:
            if not messages:
                if deadline is None and timeout is not None:
                    deadline = monotonic() + timeout
                self._fill(messages, timeout)
            try:
                message = messages.popleft()
            except IndexError:  # a recv() in another thread took it first
                pass
            else:
                return message if self._decode is None else _decoded(self._decode, message)
            if deadline is not None:  # wait again, for what is left of the timeout
                timeout = max(0.0, deadline - monotonic())

    def recv_many(self, timeout: float | None = None) -> list[M]:
        """Return every message received so far as a list, waiting (like :meth:`recv`)
        only if there is none: the fastest way to consume a high-rate feed. With
        ``decode``, at most 256 messages, decoded (the next call returns the rest without
        reading: a read's worth of decoded objects would not fit in the CPU's caches),
        and a message it fails on ends the list: the next call raises its
        :class:`~wsfast.DecodeError` (at once when it comes first)."""
        messages = self._messages
        deadline = None
        while True:
            if not messages and self._decode_failure is None:
                if deadline is None and timeout is not None:
                    deadline = monotonic() + timeout
                self._fill(messages, timeout)
            taken = self._take_all()
            if taken:
                return taken
            if deadline is not None:
                timeout = max(0.0, deadline - monotonic())

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> M:
        """The next message; iteration ends when the peer closes normally."""
        messages = self._messages
        message: Any  # str | bytes, which is M without decode
        if self._decode_failure is not None:
            self._raise_decode_failure()
        while True:
            if not messages:
                try:
                    self._fill(messages, None)
                except ConnectionClosedOK:
                    raise StopIteration from None
            try:
                message = messages.popleft()
            except IndexError:  # another thread took it first
                pass
            else:
                return message if self._decode is None else _decoded(self._decode, message)

    def _fill(self, queue: Sized, timeout: float | None) -> None:
        raise NotImplementedError


class Receiver(_MessageQueue[M]):
    """Base of :class:`wsfast.asyncio.WebSocket`: the queue of received messages.

    Subclasses queue messages in ``_messages`` and provide two methods: the coroutine
    ``_wait_for_messages(timeout)``, which returns once a message is queued (or raises),
    and ``_resume_reading()``, called while ``_reading_paused`` once taking a message
    leaves no more than ``_resume_below`` queued.
    """

    __slots__ = ("_reading_paused", "_resume_below")

    def __init__(self) -> None:
        super().__init__()
        self._reading_paused = False
        self._resume_below = 0  # resume reading once no more messages than this wait

    async def recv(self, timeout: float | None = None) -> M:
        """Return the next message: ``str`` for text, ``bytes`` for binary; with a
        ``decode`` function, what it returns (it raising raises :class:`~wsfast.DecodeError`).

        Waits at most ``timeout`` seconds (None: no limit), then raises TimeoutError.
        Raises :class:`~wsfast.ConnectionClosed` once the connection has closed and every
        message received before has been returned. Cancelling it loses no message. What
        it returns can be awaited or given to ``asyncio.create_task()``, like a coroutine.
        """
        messages = self._messages
        if self._decode_failure is not None:
            self._raise_decode_failure()
        message: Any  # str | bytes, which is M without decode
        if not messages:
            await self._wait_for_messages(timeout)
        message = messages.popleft()
        if self._reading_paused and len(messages) <= self._resume_below:
            self._resume_reading()
        return message if self._decode is None else _decoded(self._decode, message)

    async def __anext__(self) -> M:
        # recv() inlined: one coroutine per message instead of two.
        messages = self._messages
        if self._decode_failure is not None:
            self._raise_decode_failure()
        message: Any  # str | bytes, which is M without decode
        if not messages:
            try:
                await self._wait_for_messages(None)
            except ConnectionClosedOK:
                raise StopAsyncIteration from None
        message = messages.popleft()
        if self._reading_paused and len(messages) <= self._resume_below:
            self._resume_reading()
        return message if self._decode is None else _decoded(self._decode, message)

    def __aiter__(self) -> Self:
        return self

    async def _wait_for_messages(self, timeout: float | None) -> None:
        raise NotImplementedError

    def _resume_reading(self) -> None:
        raise NotImplementedError
