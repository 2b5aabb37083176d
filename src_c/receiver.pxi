# The bases of the blocking and the asyncio WebSocket (same API and behaviour as
# wsfast._receiver): a message already queued is taken with no Python frame run. The
# asyncio Receiver's recv() and __anext__ return an awaitable of their own, not a
# coroutine, so that none is made and torn down. With a decode function, each message is
# decoded as it is handed out, by a call from here. Included by _compiled.pyx.

cdef extern from "subclass_slots.h":
    void inherit_iteration "wsfast_inherit_iteration"(object type, object base)

cdef extern from "receiving.h":
    ctypedef object (*step_func "wsfast_step")(object self, object arg, bint *yielded)
    int install_send "wsfast_install_send"(object type, step_func step) except -1
    int coro_send "wsfast_coro_send"(object coro, object arg, PyObject **result) except -1

from cpython.exc cimport PyErr_Clear, PyErr_ExceptionMatches
from cpython.ref cimport Py_DECREF, Py_XDECREF
from libc.math cimport INFINITY

cdef extern from "Python.h":
    # Raw: NULL with the exception set, which _popped() looks at without a try block's cost.
    PyObject *_call_no_args "PyObject_CallNoArgs"(object callable)

import collections.abc
from time import monotonic

from wsfast.exceptions import ConnectionClosedOK, DecodeError

cdef enum:
    # The most messages one recv_many() decodes: the objects a decoder makes of a whole
    # read (thousands of dicts or Structs) would not fit in the CPU's caches, and handing
    # them out by the hundred made recv_many() 5-10% faster with orjson and msgspec.
    DECODED_AT_ONCE = 256

cdef enum:
    # The states of a _Receiving, as of a coroutine: not started, waiting in the
    # subclass's _wait_for_messages(), waiting on a future of its own, finished.
    RECEIVING_FRESH
    RECEIVING_WAITING
    RECEIVING_PARKED
    RECEIVING_DONE


cdef inline int _popped(PyObject *message) except -1:
    """1 when a popleft() returned ``message``; 0 when it found the queue empty because
    another thread took the message between the length check and the popleft (wait
    again); raises what else it raised."""
    if message != NULL:
        return 1
    if not PyErr_ExceptionMatches(IndexError):
        return -1
    PyErr_Clear()
    return 0


cdef inline object _owned(PyObject *reference):
    """The object of a new ``reference``, which it takes over."""
    value = <object>reference
    Py_DECREF(<object>reference)
    return value


cdef inline list _copied_and_cleared(object messages):
    """Every message of the deque ``messages``, which is left empty: copied and cleared at
    once (no other thread's recv() or append() can come in between: with the GIL, nothing
    here lets it go), so that no message is handed out twice or lost."""
    cdef list taken
    with cython.critical_section(messages):
        taken = list(messages)
        messages.clear()
    return taken


def _inherit_iteration(cls):
    """Give ``cls``, a class made in Python from a compiled receiver (the connections
    are), that receiver's iteration slot (see subclass_slots.h): `for` and `async for`
    then call no Python method per message."""
    for compiled in (BlockingReceiver, Receiver):
        if issubclass(cls, compiled):
            inherit_iteration(cls, compiled)


cdef object _decoded(object decode, object message):
    """``decode(message)``; a DecodeError carrying ``message`` when it raises."""
    try:
        return decode(message)
    except Exception as exc:
        raise DecodeError(message) from exc


cdef class _Receiving  # the awaitable of the asyncio Receiver's recv(), defined below


@cython.auto_pickle(False)  # a connection's queue
cdef class _MessageQueue:
    """The queue of received messages of both receivers, and the decoding of what they
    hand out: ``_decode`` is None (messages as received) or a function that each message
    goes through, whose failure is the DecodeError raised for that message."""

    cdef readonly object _messages
    cdef object _popleft  # the queue's bound popleft, called once per message
    cdef object _decode_function  # _decode
    cdef bint _decoding  # _decode is not None: the receivers' one test per message
    # What a _take_all() that returned the messages before it met: raised by the next call.
    cdef readonly object _decode_failure

    def __cinit__(self):  # takes no arguments: it ignores the subclass's
        self._messages = collections.deque()
        self._popleft = self._messages.popleft

    @property
    def _decode(self):
        return self._decode_function

    @_decode.setter
    def _decode(self, decode):
        self._decode_function = decode
        self._decoding = decode is not None

    cdef int _raise_decode_failure(self) except -1:
        """Raise the failure a _take_all() left, if another thread has not taken it."""
        with cython.critical_section(self):
            failure = self._decode_failure
            self._decode_failure = None
        if failure is not None:
            raise failure
        return 0

    def _take_all(self):
        """Take every queued message; with a decode function, up to 256 of them,
        decoded, and up to one that fails, which raises when it comes first, else is
        raised by the next call (the messages after it stay queued). Raises that failure
        first if one is due."""
        return self._take()

    cdef list _take(self):
        """_take_all(), for the receivers' own calls: no attribute lookup."""
        if self._decode_failure is not None:
            self._raise_decode_failure()
        if self._decoding:
            return self._take_decoded()
        return _copied_and_cleared(self._messages)

    cdef list _take_decoded(self):
        cdef list taken = []
        cdef PyObject *message
        decode = self._decode_function
        for _ in range(min(len(self._messages), DECODED_AT_ONCE)):
            # One at a time, so that what follows a failure stays queued.
            message = _call_no_args(self._popleft)
            if not _popped(message):
                break  # another thread took the rest
            try:
                taken.append(_decoded(decode, _owned(message)))
            except DecodeError as failure:
                if not taken:
                    raise
                self._decode_failure = failure
                break
        return taken


@cython.auto_pickle(False)  # a connection's queue
cdef class BlockingReceiver(_MessageQueue):
    """Base of the connections of the blocking client and server: the queue of received
    messages.

    Subclasses queue messages in ``_messages`` and provide ``_fill(queue, timeout)``,
    which reads until ``queue`` holds something, or raises. Threads may call recv() at
    once: the deque is thread-safe, and one that finds its message taken waits again.
    """

    def recv(self, timeout=None):
        """Return the next message: ``str`` for text, ``bytes`` for binary; with a
        ``decode`` function, what it returns (it raising raises :class:`~wsfast.DecodeError`).

        Waits at most ``timeout`` seconds (None: no limit), then raises TimeoutError; the
        connection stays usable. Once the connection has closed and every message received
        before has been returned, raises :class:`~wsfast.ConnectionClosedOK` after a normal
        close, else :class:`~wsfast.ConnectionClosedError` (whose ``__cause__`` is the
        :class:`~wsfast.ProtocolError` when the peer broke the protocol).
        """
        if self._decoding:  # without, the one test more of every message
            return self._recv_decoded(timeout)
        return _next_message(self, timeout)

    cdef object _recv_decoded(self, timeout):
        if self._decode_failure is not None:
            self._raise_decode_failure()
        return _decoded(self._decode_function, _next_message(self, timeout))

    def recv_many(self, timeout=None):
        """Return every message received so far as a list, waiting (like :meth:`recv`)
        only if there is none: the fastest way to consume a high-rate feed. With
        ``decode``, at most 256 messages, decoded (the next call returns the rest without
        reading: a read's worth of decoded objects would not fit in the CPU's caches),
        and a message it fails on ends the list: the next call raises its
        :class:`~wsfast.DecodeError` (at once when it comes first)."""
        cdef double deadline = INFINITY  # set on the first wait with a timeout
        messages = self._messages
        while True:
            # A failure left by the last call is raised without waiting.
            if not len(messages) and self._decode_failure is None:
                if timeout is None:
                    if self._read_now():
                        continue
                elif deadline == INFINITY:
                    deadline = monotonic() + timeout
                self._fill(messages, timeout)
            taken = self._take()
            if taken:  # else another thread took them first
                return taken
            if deadline != INFINITY:
                timeout = max(0.0, deadline - monotonic())

    def __iter__(self):
        return self

    def __next__(self):
        """The next message; iteration ends when the peer closes normally."""
        if self._decoding:
            return self._next_decoded()
        return _iterated_message(self)

    cdef object _next_decoded(self):
        if self._decode_failure is not None:
            self._raise_decode_failure()
        return _decoded(self._decode_function, _iterated_message(self))

    def _fill(self, queue, timeout):
        raise NotImplementedError

    # A subclass may read without _fill()'s Python frames when no timeout is given:
    # _read_now() returns 1 once it read (messages may or may not have come), 0 to let
    # _fill() do it.

    cdef int _read_now(self) except -1:
        return 0


cdef inline object _next_message(BlockingReceiver self, timeout):
    """The next message of ``self`` as received, waiting as recv() does."""
    cdef PyObject *message
    cdef double deadline = INFINITY  # set on the first wait with a timeout
    while True:
        if not len(self._messages):
            if timeout is None:
                if self._read_now():
                    continue
            elif deadline == INFINITY:
                deadline = monotonic() + timeout
            self._fill(self._messages, timeout)
        message = _call_no_args(self._popleft)
        if _popped(message):
            return _owned(message)
        if deadline != INFINITY:  # wait again, for what is left of the timeout
            timeout = max(0.0, deadline - monotonic())


cdef inline object _iterated_message(BlockingReceiver self):
    """The next message of ``self`` as received, for __next__: StopIteration at a
    normal close."""
    cdef PyObject *message
    while True:
        if not len(self._messages):
            if self._read_now():
                continue
            try:
                self._fill(self._messages, None)
            except ConnectionClosedOK:
                raise StopIteration from None
        message = _call_no_args(self._popleft)
        if _popped(message):
            return _owned(message)


@cython.auto_pickle(False)  # a connection's queue
cdef class Receiver(_MessageQueue):
    """Base of :class:`wsfast.asyncio.WebSocket`: the queue of received messages.

    Subclasses queue messages in ``_messages`` and provide two methods: the coroutine
    ``_wait_for_messages(timeout)``, which returns once a message is queued (or raises),
    and ``_resume_reading()``, called while ``_reading_paused`` once taking a message
    leaves no more than ``_resume_below`` queued.
    """

    cdef public bint _reading_paused
    cdef public Py_ssize_t _resume_below
    # The awaitable of the last recv() or __anext__ that took a queued message, handed
    # out again by the next one while nobody else holds it: no awaitable made and freed
    # per message. It refers to nothing meanwhile (no cycle through this connection).
    cdef _Receiving _spare

    def __cinit__(self):  # takes no arguments: it ignores the subclass's
        self._reading_paused = False
        self._resume_below = 0

    cdef inline _Receiving _new_receiving(self):
        cdef _Receiving receiving = self._spare
        # Two references, this one and _spare's: nobody else can still await or throw
        # into it. (Without a GIL, a count may be stale: a new one each time.)
        if receiving is not None and not FREE_THREADED and Py_REFCNT(<PyObject *>receiving) == 2:
            self._spare = None
            receiving._state = RECEIVING_FRESH
            receiving._iterating = False
        else:
            receiving = _Receiving.__new__(_Receiving)
        receiving._receiver = self
        return receiving

    def recv(self, timeout=None):
        """Return the next message: ``str`` for text, ``bytes`` for binary; with a
        ``decode`` function, what it returns (it raising raises :class:`~wsfast.DecodeError`).

        Waits at most ``timeout`` seconds (None: no limit), then raises TimeoutError.
        Raises :class:`~wsfast.ConnectionClosed` once the connection has closed and every
        message received before has been returned. Cancelling it loses no message. What
        it returns can be awaited or given to ``asyncio.create_task()``, like a coroutine.
        """
        cdef _Receiving receiving = self._new_receiving()
        receiving._timeout = timeout
        return receiving

    def __anext__(self):
        cdef _Receiving receiving = self._new_receiving()
        receiving._iterating = True
        return receiving

    def __aiter__(self):
        return self

    async def _wait_for_messages(self, timeout):
        raise NotImplementedError

    def _resume_reading(self):
        raise NotImplementedError

    # What _wait_for_messages(None) does, in the common case, without a coroutine: a
    # subclass that can returns a future from _park(), woken once a message is queued or
    # none will come (None: take the coroutine's way); _unpark() once it is done, which
    # raises when no message came; _abandon() for a wait given up.

    cdef object _park(self):
        return None

    cdef int _unpark(self) except -1:
        return 0

    cdef int _abandon(self, object future) except -1:
        return 0


@cython.final
@cython.freelist(8)
@cython.auto_pickle(False)
cdef class _Receiving:
    """The awaitable of one Receiver.recv() or __anext__(): a coroutine to asyncio."""

    cdef Receiver _receiver
    cdef object _timeout
    cdef object _waiting  # the coroutine _wait_for_messages() while it runs, or the parked future
    cdef int _state
    cdef bint _iterating  # for __anext__: the end of the messages stops the iteration

    def __dealloc__(self):
        # Dropped while it waited: the wait is over. (The collector may have cleared the
        # receiver first, breaking a cycle: then nobody waits on it any more.)
        if self._state == RECEIVING_PARKED and self._receiver is not None:
            self._state = RECEIVING_DONE
            try:
                self._receiver._abandon(self._waiting)
            except BaseException:
                pass  # it only forgets the future

    def __await__(self):
        return self

    def __next__(self):
        return self.send(None)

    def send(self, value):
        cdef bint yielded = False
        result = receiving_step(self, value, &yielded)
        if yielded:
            return result
        raise StopIteration(result)

    def throw(self, typ, val=None, tb=None):
        if self._state == RECEIVING_PARKED:  # cancelled while parked: give the wait up
            self._receiver._abandon(self._waiting)
            self._waiting = None
            self._state = RECEIVING_FRESH  # raised below, as into a coroutine not started
        if self._state == RECEIVING_WAITING:
            try:
                # The one-argument form where it suffices: the others are deprecated.
                value = self._waiting.throw(typ) if val is None and tb is None else self._waiting.throw(typ, val, tb)
            except StopIteration:
                self._waiting = None
                raise StopIteration(self._take())
            except BaseException as exc:
                self._failed(exc)
                raise
            return value
        self._state = RECEIVING_DONE  # thrown in before it started, or after it finished
        if val is None:
            val = typ() if isinstance(typ, type) else typ
        raise val.with_traceback(tb) if tb is not None else val

    def close(self):
        if self._state == RECEIVING_WAITING:
            self._waiting.close()
        elif self._state == RECEIVING_PARKED:
            self._receiver._abandon(self._waiting)
        self._state = RECEIVING_DONE
        self._waiting = None

    cdef object _resume(self, bint *yielded):
        """Go on once the parked future is done: take the message it woke for."""
        future = self._waiting
        if not future.done():  # stepped before it is: wait on
            future._asyncio_future_blocking = True
            yielded[0] = True
            return future
        self._waiting = None
        try:
            self._receiver._unpark()
        except BaseException as exc:
            self._failed(exc)
            raise
        return self._take()

    cdef object _forward(self, object arg, bint *yielded):
        """Send ``arg`` into the waiting coroutine; take the message once it returns."""
        cdef PyObject *result = NULL
        try:
            if coro_send(self._waiting, arg, &result):
                yielded[0] = True
                value = <object>result
                Py_XDECREF(result)
                return value
        except BaseException as exc:
            self._failed(exc)
            raise
        Py_XDECREF(result)  # the coroutine's None
        self._waiting = None
        return self._take()

    cdef object _take(self):
        """The next message, handed out (decoded with a decode function)."""
        message = self._take_raw()
        if not self._receiver._decoding:
            return message
        return _decoded(self._receiver._decode_function, message)

    cdef inline object _take_raw(self):
        cdef Receiver receiver = self._receiver
        self._state = RECEIVING_DONE
        message = receiver._popleft()
        if receiver._reading_paused and len(receiver._messages) <= receiver._resume_below:
            receiver._resume_reading()
        return message

    cdef _failed(self, BaseException exc):
        """The wait raised ``exc``: finished; the end of the messages ends an iteration."""
        self._state = RECEIVING_DONE
        self._waiting = None
        if self._iterating and isinstance(exc, ConnectionClosedOK):
            raise StopAsyncIteration from None


cdef inline void _spare(_Receiving receiving, Receiver receiver) noexcept:
    """``receiving`` took its message: ``receiver``'s next recv() may hand it out again."""
    receiving._receiver = None
    receiving._timeout = None
    receiver._spare = receiving


cdef object receiving_step(object awaitable, object arg, bint *yielded):
    """One step of a _Receiving, for both send() and the am_send slot."""
    cdef _Receiving receiving = <_Receiving>awaitable
    if receiving._state == RECEIVING_PARKED:
        return receiving._resume(yielded)
    if receiving._state == RECEIVING_WAITING:
        return receiving._forward(arg, yielded)
    if receiving._state == RECEIVING_DONE:
        raise RuntimeError("cannot reuse already awaited coroutine")
    if arg is not None:
        raise TypeError("can't send non-None value to a just-started coroutine")
    cdef Receiver receiver = receiving._receiver
    if not receiver._decoding:  # the path of every message without decode: one test more
        if len(receiver._messages):
            message = receiving._take_raw()
            _spare(receiving, receiver)
            return message
    else:
        if receiver._decode_failure is not None:
            receiving._state = RECEIVING_DONE
            receiver._raise_decode_failure()
            receiving._state = RECEIVING_FRESH  # another thread raised it first
        if len(receiver._messages):
            message = receiving._take()
            _spare(receiving, receiver)
            return message
    if receiving._timeout is None:
        future = receiver._park()
        if future is not None:  # as `await future` would: asyncio's Task waits on it
            receiving._state = RECEIVING_PARKED
            receiving._waiting = future
            future._asyncio_future_blocking = True
            yielded[0] = True
            return future
    receiving._state = RECEIVING_WAITING
    receiving._waiting = receiver._wait_for_messages(receiving._timeout)
    return receiving._forward(None, yielded)


install_send(_Receiving, receiving_step)
collections.abc.Coroutine.register(_Receiving)
