# The hot paths of the asyncio connection, as wsfast._stream_core (the pure twin) describes
# them: the base of wsfast.asyncio.WebSocket. Here a read is parsed, and its messages
# queued or handed to on_message, with no Python frame run on the way, and a message is
# framed and written with none either. Plain frames skip the sans-I/O Connection: its own
# parser is fed here, and anything else (control frames, fragments, a frame arriving in
# pieces, a violation) goes back to the Connection's methods, as receive_data() would.
# Included by _compiled.pyx, after receiver.pxi.

from cpython.mem cimport PyMem_Free, PyMem_Malloc

cdef extern from "Python.h":
    Py_buffer *PyMemoryView_GET_BUFFER(object view)

from asyncio import get_running_loop

from wsfast._stream_core import BURST_BYTES, MAX_READ_SIZE, MESSAGE_OVERHEAD, SEND_TIMEOUT, deliver, log_decode_failure
from wsfast.exceptions import ConnectionClosed

cdef Py_ssize_t _MAX_READ_SIZE = MAX_READ_SIZE
cdef Py_ssize_t _MESSAGE_OVERHEAD = MESSAGE_OVERHEAD
cdef double _BURST_BYTES = BURST_BYTES

cdef enum:
    SMALL_RING = 64  # charges a Backlog keeps room for once its queue is empty
    # The most messages of one read handed to on_message from here: more go through
    # wsfast._stream_core.deliver(), whose calls, from Python, cost less each.
    DELIVERED_FROM_C = 4

# Transports whose sends may go to their socket directly while they hold nothing: TCP as
# asyncio's selector loop and uvloop make it (not TLS, not the proactor loop, not a
# transport of another kind, which may buffer or frame on its own).
_DIRECT_TRANSPORTS = frozenset({
    ("asyncio.selector_events", "_SelectorSocketTransport"),
    ("uvloop.loop", "TCPTransport"),
    ("uvloop.loop", "UnixTransport"),
})

cdef long _direct_socket(transport) except -2:
    """The number of the TCP socket under ``transport``, for writes while the transport
    holds nothing; -1 when it must take every byte itself."""
    kind = type(transport)
    if (
        DIRECT_SEND
        and (kind.__module__, kind.__qualname__) in _DIRECT_TRANSPORTS
        and transport.get_extra_info("sslcontext") is None
    ):
        sock = transport.get_extra_info("socket")
        if sock is not None:
            return sock.fileno()
    return -1


cdef struct _Charge:
    Py_ssize_t messages
    Py_ssize_t nbytes


@cython.final
@cython.auto_pickle(False)  # a connection's state
cdef class Backlog:
    """How many bytes the queued messages of a connection hold (see wsfast._backlog).
    The charges of the reads wait in a ring of C structs: no tuple per read."""

    cdef _Charge *_ring  # the charges, oldest at _head; NULL while there are none
    cdef Py_ssize_t _capacity
    cdef Py_ssize_t _head
    cdef Py_ssize_t _count
    cdef Py_ssize_t _messages  # messages charged and not yet forgotten
    cdef readonly Py_ssize_t nbytes

    def __dealloc__(self):
        PyMem_Free(self._ring)

    @property
    def _charges(self):
        """The charges, oldest first, as (messages, bytes)."""
        return [
            (self._ring[(self._head + k) % self._capacity].messages, self._ring[(self._head + k) % self._capacity].nbytes)
            for k in range(self._count)
        ]

    def charge(self, Py_ssize_t messages, Py_ssize_t nbytes):
        """``messages`` joined the end of the queue, holding ``nbytes`` in all."""
        self._charge(messages, nbytes)

    cdef int _charge(self, Py_ssize_t messages, Py_ssize_t nbytes) except -1:
        cdef _Charge *slot
        if self._count == self._capacity:
            self._grow()
        slot = &self._ring[(self._head + self._count) % self._capacity]
        slot.messages = messages
        slot.nbytes = nbytes
        self._count += 1
        self._messages += messages
        self.nbytes += nbytes
        return 0

    cdef int _grow(self) except -1:
        cdef Py_ssize_t capacity = max(8, 2 * self._capacity)
        cdef _Charge *ring = <_Charge *>PyMem_Malloc(capacity * sizeof(_Charge))
        if ring == NULL:
            raise MemoryError()
        for k in range(self._count):
            ring[k] = self._ring[(self._head + k) % self._capacity]
        PyMem_Free(self._ring)
        self._ring = ring
        self._capacity = capacity
        self._head = 0
        return 0

    def settle(self, Py_ssize_t queued):
        """Forget the reads whose messages have all left a queue now ``queued`` long;
        return ``nbytes``."""
        return self._settle(queued)

    cdef Py_ssize_t _settle(self, Py_ssize_t queued) except -1:
        cdef Py_ssize_t taken = self._messages - queued
        cdef _Charge *oldest
        while self._count:
            oldest = &self._ring[self._head]
            if oldest.messages > taken:
                break
            taken -= oldest.messages
            self._messages -= oldest.messages
            self.nbytes -= oldest.nbytes
            self._head = (self._head + 1) % self._capacity
            self._count -= 1
        if not self._count and self._capacity > SMALL_RING:
            self._forget_ring()  # a burst of reads is over: give its memory back
        return self.nbytes

    cdef void _forget_ring(self) noexcept:
        PyMem_Free(self._ring)
        self._ring = NULL
        self._capacity = self._head = self._count = 0

    def reset(self, Py_ssize_t messages=0, Py_ssize_t nbytes=0):
        """The queue holds ``messages`` holding ``nbytes``, from now on one charge."""
        self._head = self._count = 0
        self._messages = self.nbytes = 0
        if self._capacity > SMALL_RING:
            self._forget_ring()
        if messages:
            self._charge(messages, nbytes)


@cython.auto_pickle(False)  # a live connection
cdef class StreamCore(Receiver):
    """The receive and send paths of an asyncio connection (see wsfast._stream_core)."""

    cdef public object _conn
    cdef public object _transport
    cdef public object _view
    cdef public object _window
    cdef public bint _handshaking
    cdef public bint _compressed
    cdef public double _last_read
    cdef public Py_ssize_t _unqueued
    cdef public object _waiter
    cdef readonly Backlog _backlog
    cdef public double _high_water
    cdef public bint _batching
    cdef public object _on_message
    cdef public object _callback_error
    cdef public bint _receiving
    cdef public bint _writing_paused
    cdef object _new_future  # the loop's create_future
    cdef object _extend  # the queue's bound extend
    # The Connection's compiled parser, fed here while only plain frames come; else None.
    cdef FrameParser _parser
    cdef _MessageFramer _framer  # while a message goes out as one frame, uncompressed; else None
    cdef bint _stale_controls  # the Connection's last_controls may be left from its last call
    # The last read parsed only whole messages, so the Connection stands where it stood:
    # receiving, no fragmented message open, no text frame half checked.
    cdef bint _settled
    cdef long _fd  # the TCP socket written to while the transport holds nothing, or -1
    cdef object _buffered  # the transport's get_write_buffer_size

    def __cinit__(self):  # takes no arguments: it ignores the subclass's
        self._view = memoryview(b"")
        self._handshaking = True
        self._last_read = monotonic_now()
        self._backlog = Backlog()
        self._high_water = INFINITY
        self._receiving = True
        self._fd = -1
        self._extend = self._messages.extend

    # Set up ------------------------------------------------------------------------

    def _attach(self, transport):
        """The transport connected: reads come through it, and sends go to it."""
        self._transport = transport
        self._new_future = get_running_loop().create_future
        self._fd = _direct_socket(transport)
        if self._fd >= 0:
            self._buffered = transport.get_write_buffer_size

    def _detach(self):
        """The transport is gone: its socket may be closed, and its number reused."""
        self._settled = False
        self._fd = -1
        self._buffered = None

    def _start_frames(self, connection):
        """The handshake succeeded: from now on, bytes are frames for ``connection``."""
        self._conn = connection
        self._settled = False
        self._compressed = connection._deflate is not None
        self._handshaking = False
        self._framer = _plain_framer(connection)
        self._parser = _plain_parser(connection)
        self._stale_controls = True

    # Receiving ---------------------------------------------------------------------

    def _read_buffer(self, sizehint):
        """Where the transport reads next: straight into a large payload arriving (the
        codec's payload window, which saves copying it), else the read buffer."""
        self._window = None  # a window not filled must go before the next one is made
        if self._handshaking or (self._parser is not None and self._parser._payload == NULL):
            return self._view  # no payload arriving: no window
        window = self._conn.payload_window()
        if window is not None:
            self._window = window
            return window
        return self._view

    def _data_received(self, Py_ssize_t nbytes):
        self._last_read = monotonic_now()
        self._unqueued += nbytes
        window = self._window
        if window is not None:
            self._window = None
            self._process_data(window[:nbytes])
            return
        view = self._view
        if self._handshaking:
            self._handshake_received(bytes(view[:nbytes]))
        elif self._parser is not None and not self._batching and type(view) is memoryview:
            self._receive_plain(view, nbytes)
        else:
            self._process_data(view[:nbytes])
        if nbytes == len(view) and nbytes < _MAX_READ_SIZE:
            self._view = memoryview(bytearray(2 * nbytes))

    def _process(self, data):
        """Feed received bytes to the Connection and act on what it returns."""
        self._process_data(data)

    cdef int _process_data(self, data) except -1:
        conn = self._conn
        self._settled = False
        if self._batching:
            self._receive_batch(data)
            self._after_connection()
            return 0
        self._handled(conn.receive_data(data))
        return 0

    cdef int _receive_plain(self, view, Py_ssize_t nbytes) except -1:
        """What receive_data() does with the first ``nbytes`` of the read buffer ``view``,
        without its Python frames while only whole messages come."""
        conn = self._conn
        if not self._settled:
            if not _between_messages(conn):
                return self._handled(conn.receive_data(view[:nbytes]))
            self._settled = True
        parser = self._parser
        try:  # the view keeps the buffer alive meanwhile
            items = parser._feed_messages_at(<const unsigned char *>PyMemoryView_GET_BUFFER(view).buf, nbytes)
        except ProtocolError as exc:
            conn.last_controls = 0
            return self._handled(conn._failed(exc, conn._events))
        if not _whole_messages_only(parser):
            conn.last_controls = 0
            return self._handled(conn._parsed(items))
        if self._stale_controls:
            conn.last_controls = 0
            self._stale_controls = False
        if items:  # only messages: nothing to answer
            self._dispatch(items, False)
        return 0

    cdef int _handled(self, list events) except -1:
        """Act on the events the Connection returned."""
        self._settled = False  # it may have moved
        controls = self._conn.last_controls
        if controls:
            self._stale_controls = True
        if events:
            self._dispatch(events, controls)
        return self._after_connection()

    cdef int _after_connection(self) except -1:
        conn = self._conn
        if conn.last_controls or conn.error is not None:  # else there is nothing to answer
            self._after_receiving()
        return 0

    cdef int _dispatch(self, list events, bint controls) except -1:
        if self._on_message is None:
            return self._queue(events, controls)
        return self._deliver(events, controls)

    cdef int _queue(self, list events, bint controls) except -1:
        cdef list queued = self._messages_only(events) if controls else events
        cdef Py_ssize_t count = len(queued)
        cdef Py_ssize_t nbytes
        cdef double limit = self._high_water
        if not count:
            return 0
        cdef bint woken = False  # by an earlier read, and recv() has not run since
        messages = self._messages
        self._extend(queued)
        # Uncompressed, the bytes read since the last messages bound the payloads they
        # completed: cheaper than adding up lengths.
        nbytes = sum(map(len, queued)) if self._compressed else self._unqueued
        self._unqueued = 0
        self._backlog._charge(count, nbytes + _MESSAGE_OVERHEAD * count)
        waiter = self._waiter
        if waiter is not None:
            woken = waiter.done()
            if woken and _BURST_BYTES < limit:
                limit = _BURST_BYTES
        if self._backlog._settle(len(messages)) > limit and not self._reading_paused:
            self._transport.pause_reading()
            self._reading_paused = True
            self._resume_below = len(messages) // 4
        if waiter is not None and not woken:
            waiter.set_result(None)
        return 0

    cdef int _deliver(self, list events, bint controls) except -1:
        """Hand each message to on_message; a callback that raises closes with 1011."""
        cdef list delivered = self._messages_only(events) if controls else events
        cdef Py_ssize_t index = 0
        if len(delivered) > DELIVERED_FROM_C:
            deliver(self, delivered)
            return 0
        on_message = self._on_message
        decode = self._decode_function
        while self._callback_error is None and index < len(delivered):
            event = delivered[index]
            index += 1
            if decode is not None:
                try:
                    event = decode(event)  # text comes as bytes with decode
                except Exception as exc:
                    log_decode_failure(event, exc)
                    continue
            try:
                on_message(self, event)
            except Exception as exc:  # the application's callback: any failure closes with 1011
                if not (isinstance(exc, ConnectionClosed) and self._conn.state is not _open_state()):
                    self._callback_failed(exc)
                # else it answered a message that came just before the close: go on
        return 0

    def _wake_receiver(self):
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    cdef object _park(self):
        """What _wait_for_messages(None) does when no other coroutine waits, messages go to
        the queue and more may come: a future, woken with the next read that queues."""
        if (
            self._on_message is not None
            or self._batching
            or not self._receiving
            or self._waiter is not None
            or self._new_future is None
        ):
            return None  # the coroutine's way: it raises, or unbatches, or waits for batches
        future = self._waiter = self._new_future()
        return future

    cdef int _unpark(self) except -1:
        self._waiter = None
        if not len(self._messages) and not self._conn.batched:
            raise self._closed_exception()
        return 0

    cdef int _abandon(self, object future) except -1:
        if self._waiter is future:
            self._waiter = None
        return 0

    # Sending -----------------------------------------------------------------------

    def send(self, message, timeout=SEND_TIMEOUT):
        """Send a message: text for a ``str``, binary for any bytes-like object.

        The frame goes whole to the transport at once; then, if the transport's write
        buffer is full, this waits until it drains. ``timeout`` (by default the
        connection's ``send_timeout``; None: no limit) bounds that wait: past it the
        peer counts as gone, the connection is dropped and TimeoutError raised (part of
        the message may have left). Cancelling the wait never leaves a partial frame.
        Raises :class:`~wsfast.ConnectionClosed` once closing has begun. What it returns
        can be awaited or given to ``asyncio.create_task()``, like a coroutine.
        """
        cdef _Sending sending = _Sending.__new__(_Sending)
        sending._core = self
        sending._message = message
        sending._timeout = timeout
        return sending

    def send_nowait(self, message):
        """Send a message as :meth:`send` does, without waiting: what the socket cannot
        take yet waits in the transport's buffer, however much that is.

        For plain functions such as an ``on_message`` callback; elsewhere prefer
        ``await send()``, which lets a full buffer drain first.
        """
        self._send(message)

    cdef int _send(self, message) except -1:
        conn = self._conn
        frame = None
        if self._framer is not None and conn.state is _open_state():
            frame = self._framer.message(message)
        if frame is None:
            conn.send(message)
            frame = conn.data_to_send()
        return self._write(frame)

    cdef int _write(self, bytes frame) except -1:
        """Write ``frame`` to the socket while the transport holds nothing (what the
        socket does not take goes to the transport), else to the transport."""
        cdef Py_ssize_t size = PyBytes_GET_SIZE(frame)
        cdef Py_ssize_t sent
        if self._fd >= 0 and size and not self._buffered():
            sent = direct_send(self._fd, PyBytes_AS_STRING(frame), size)
            if sent == size:
                return 0
            if sent > 0:
                frame = frame[sent:]
        self._transport.write(frame)
        return 0

    # What the subclass provides ----------------------------------------------------

    def _handshake_received(self, data):
        raise NotImplementedError

    def _receive_batch(self, data):
        raise NotImplementedError

    def _messages_only(self, events):
        raise NotImplementedError

    def _after_receiving(self):
        raise NotImplementedError

    def _callback_failed(self, exc):
        raise NotImplementedError

    async def _drain(self, timeout):
        raise NotImplementedError


@cython.final
@cython.freelist(8)
@cython.auto_pickle(False)
cdef class _Sending:
    """The awaitable of one StreamCore.send(): a coroutine to asyncio, which sends when
    it starts, and finishes at once unless the transport's buffer is full."""

    cdef StreamCore _core
    cdef object _message
    cdef object _timeout
    cdef object _waiting  # the coroutine _drain(), while the buffer drains
    cdef int _state  # as a _Receiving's: RECEIVING_FRESH, _WAITING or _DONE

    def __await__(self):
        return self

    def __next__(self):
        return self.send(None)

    def send(self, value):
        cdef bint yielded = False
        result = sending_step(self, value, &yielded)
        if yielded:
            return result
        raise StopIteration(result)

    def throw(self, typ, val=None, tb=None):
        if self._state == RECEIVING_WAITING:
            try:
                value = self._waiting.throw(typ) if val is None and tb is None else self._waiting.throw(typ, val, tb)
            except BaseException:
                self._state = RECEIVING_DONE
                self._waiting = None
                raise
            return value
        self._state = RECEIVING_DONE
        self._message = None
        if val is None:
            val = typ() if isinstance(typ, type) else typ
        raise val.with_traceback(tb) if tb is not None else val

    def close(self):
        if self._state == RECEIVING_WAITING:
            self._waiting.close()
        self._state = RECEIVING_DONE
        self._waiting = None
        self._message = None

    cdef object _forward(self, object arg, bint *yielded):
        cdef PyObject *result = NULL
        try:
            if coro_send(self._waiting, arg, &result):
                yielded[0] = True
                value = <object>result
                Py_XDECREF(result)
                return value
        except BaseException:
            self._state = RECEIVING_DONE
            self._waiting = None
            raise
        Py_XDECREF(result)  # the coroutine's None
        self._state = RECEIVING_DONE
        self._waiting = None
        return None


cdef object sending_step(object awaitable, object arg, bint *yielded):
    """One step of a _Sending, for both send() and the am_send slot."""
    cdef _Sending sending = <_Sending>awaitable
    if sending._state == RECEIVING_WAITING:
        return sending._forward(arg, yielded)
    if sending._state == RECEIVING_DONE:
        raise RuntimeError("cannot reuse already awaited coroutine")
    if arg is not None:
        raise TypeError("can't send non-None value to a just-started coroutine")
    cdef StreamCore core = sending._core
    message = sending._message
    sending._message = None
    sending._state = RECEIVING_DONE
    core._send(message)
    if not core._writing_paused:
        return None
    timeout = sending._timeout
    sending._state = RECEIVING_WAITING
    sending._waiting = core._drain(core._send_timeout if timeout is SEND_TIMEOUT else timeout)
    return sending._forward(None, yielded)


install_send(_Sending, sending_step)
collections.abc.Coroutine.register(_Sending)
