# The hot paths of the blocking connection, as wsfast._blocking_core (the pure twin)
# describes them: the base of wsfast._io.WebSocket. A recv() that finds no message reads
# here (the GIL let go while the socket waits; over TLS, records decrypted by the ssl
# module's own object) and parses plain frames with the Connection's own parser, and a
# send() frames the message and hands it to the socket (or the TLS object), neither with a
# Python frame on the way. What they cannot finish (a control frame, a
# fragment, a frame in pieces, a violation, a socket that takes only part of a frame, a
# keepalive or closing deadline near) goes to the subclass's Python methods.
# Included by _compiled.pyx, after fast_paths.pxi.

from cpython.exc cimport PyErr_CheckSignals

import logging
import os
from ssl import SSLEOFError, SSLWantReadError, SSLWantWriteError, SSLZeroReturnError

from wsfast._blocking_core import SEND_TIMEOUT as _SEND_TIMEOUT
from wsfast._stream import _TLS_BATCH, READ_SLICE

cdef double _READ_SLICE = READ_SLICE
cdef int _READ_SLICE_MS = <int>(READ_SLICE * 1000)
cdef Py_ssize_t _TLS_READ_MAX = _TLS_BATCH
_logger = logging.getLogger("wsfast")


@cython.auto_pickle(False)  # a live connection
cdef class BlockingCore(BlockingReceiver):
    """The read and send paths of a blocking connection (see wsfast._blocking_core)."""

    cdef public object _conn
    cdef public object _buffer
    cdef public bint _full
    cdef public bint _reader_busy
    cdef public Py_ssize_t _readers_waiting
    cdef public double _last_read
    cdef public double _due
    cdef public bint _settled
    cdef public long _fd
    cdef FrameParser _parser  # the Connection's, fed here; None: reads take the Python way
    cdef _MessageFramer _framer  # None: sends take the Python way
    cdef object _unsent  # the stream's queue of bytes waiting to be sent
    cdef object _tls  # over TLS, the ssl socket's own TLS object (its read() and write()); else None
    cdef object _tls_lock  # the stream's lock, which guards the TLS object
    cdef bint _tls_ended  # a TLS read met the end of the stream (or a failure): the next reads return 0
    cdef object _conn_locked  # the bound locked() of the subclass's _conn_lock
    cdef object _extend  # the queue's bound extend

    def __cinit__(self):  # takes no arguments: it ignores the subclass's
        self._fd = -1
        self._extend = self._messages.extend

    def _start_core(self):
        """Set up the fast paths once the subclass has its connection, stream and locks:
        plain TCP whose reads may wait in recv(), or TLS through the ssl socket's TLS
        object, with the GIL to guard them."""
        stream = self._stream
        conn = self._conn
        if not (GIL_GUARDS and DIRECT_SEND):
            return
        if stream.tls:
            tls = getattr(stream.sock, "_sslobj", None)
            if tls is None:
                return
            self._tls = tls
            self._tls_lock = stream._lock
        elif not stream.waits_in_read:
            return
        self._fd = stream.fileno()
        self._unsent = stream._queue
        self._conn_locked = self._conn_lock.locked
        self._parser = _plain_parser(conn)
        self._framer = _plain_framer(conn)

    def _claim_reading(self):
        """Become the reading thread if none is (see _start_reading); atomic here, as the
        fast path claims it without the lock."""
        if self._reader_busy:
            return False
        self._reader_busy = True
        return True

    # Receiving ---------------------------------------------------------------------

    cdef int _read_now(self) except -1:
        """For a recv() with no timeout that found no message: one read (over TLS, the
        records ready then), waiting a slice (READ_SLICE) at most, parsed here when it holds only whole
        messages; 1 when it read something (or found the connection gone), 0 when the
        Python way must take over (it then waits on, with its deadlines)."""
        cdef Py_ssize_t size, got
        cdef int error = 0
        cdef char *data
        cdef long fd = self._fd
        if fd < 0 or self._parser is None or self._full or len(self._unsent):
            return 0
        if monotonic_now() + _READ_SLICE > self._due:
            return 0  # a keepalive ping or pong timeout is near (or nothing was read yet)
        if not self._settled and not self._settle():
            return 0
        if self._reader_busy:
            return 0  # another thread reads: wait for it the Python way
        self._reader_busy = True
        try:
            buffer = self._buffer  # kept alive here while the GIL is let go
            size = PyByteArray_GET_SIZE(buffer)
            data = PyByteArray_AS_STRING(buffer)
            if self._tls is not None:
                got = self._tls_read(buffer, size)
            else:
                with nogil:
                    got = direct_recv(fd, data, size, &error)
            if got == RECV_NOTHING:
                return 0
            if got == RECV_SIGNAL:
                PyErr_CheckSignals()  # a signal handler's exception goes to the caller
                return 0
            if got < 0:  # a reset, or another failure: the connection is gone
                _logger.debug("read failed: %r", OSError(error, os.strerror(error)))
                self._connection_lost()
                return 1
            if got == 0:
                self._connection_lost()
                return 1
            self._last_read = monotonic_now()
            self._receive_plain(<const unsigned char *>data, got)
            if got == size:
                self._full = True  # more is likely waiting: the next read must not wait
                self._grow_if_filled(got)
            return 1
        finally:
            self._reader_busy = False
            if self._readers_waiting:
                self._wake_readers()

    cdef Py_ssize_t _tls_read(self, object buffer, Py_ssize_t size) except? -9:
        """Decrypt the TLS records that are ready into ``buffer`` (256 KiB at most, as
        TLSStream.read_into), after waiting a slice at most for the first: the byte count,
        0 at the end of the stream (or after a failure), RECV_NOTHING or RECV_SIGNAL."""
        cdef Py_ssize_t ready, filled = 0
        cdef long fd = self._fd
        if self._tls_ended:
            return 0
        tls = self._tls
        if not tls.pending() and not bytes_waiting(fd):
            with nogil:
                ready = wait_readable(fd, _READ_SLICE_MS)
            if ready != 1:
                return ready
        size = min(size, _TLS_READ_MAX)
        view = None
        lock = self._tls_lock
        lock.acquire()  # held only around reads of a non-blocking socket
        try:
            while True:
                try:
                    if filled:
                        if view is None:
                            view = memoryview(buffer)
                        filled += tls.read(size - filled, view[filled:])
                    else:
                        filled = tls.read(size, buffer)
                except SSLWantReadError:
                    break  # nothing more, or a record that arrived in part
                except SSLWantWriteError:
                    # A renegotiation: the TLS object must write first. Rare: from here
                    # on this connection reads the Python way, which handles it.
                    self._parser = None
                    break
                except (SSLZeroReturnError, SSLEOFError):
                    self._tls_ended = True
                    break
                except OSError as exc:  # a reset, or a TLS failure: the connection is gone
                    _logger.debug("read failed: %r", exc)
                    self._tls_ended = True
                    break
                # More records are likely ready only when bytes wait in the kernel (or in
                # the TLS object): asking once more would cost an SSLWantReadError.
                if filled >= size or not (tls.pending() or bytes_waiting(fd)):
                    break
        finally:
            lock.release()
        if filled:
            return filled
        return 0 if self._tls_ended else RECV_NOTHING

    cdef bint _settle(self) except -1:
        """Whether reads may take the fast path: receiving messages (not frames, not
        batches), no fragmented message open, no text frame half checked, no violation,
        not closing. It stays so while reads bring only whole messages."""
        conn = self._conn
        if (
            self._frame_mode
            or self._batching
            or self._leftover
            or self._closing_deadline is not None
            or conn._batches is not None
            or conn.error is not None
            or not _between_messages(conn)
        ):
            return False
        self._settled = True
        return True

    cdef int _receive_plain(self, const unsigned char *data, Py_ssize_t size) except -1:
        parser = self._parser
        try:
            items = parser._feed_messages_at(data, size)
        except ProtocolError as exc:
            self._settled = False
            self._parsed_read(None, exc)
            return 0
        if not _whole_messages_only(parser):
            self._settled = False
            self._parsed_read(items, None)
        elif items:
            self._extend(items)
        return 0

    # Sending -----------------------------------------------------------------------

    def send(self, message, timeout=_SEND_TIMEOUT):
        """Send a message: text for a ``str``, binary for any bytes-like object.

        Returns once the kernel took the whole message. ``timeout`` (by default the
        connection's ``send_timeout``; None: no limit) bounds that wait: past it, part of
        the message may be on the wire already, so the connection is dropped and
        TimeoutError raised. Raises :class:`~wsfast.ConnectionClosed` once closing has
        begun or the connection dropped, and TypeError for anything but str or a
        bytes-like object.
        """
        if (timeout is _SEND_TIMEOUT or timeout is None) and self._send_now(message, timeout):
            return
        self._send(self._conn.send, message, timeout)

    cdef bint _send_now(self, message, timeout) except -1:
        """Frame ``message`` and write it to the socket while nothing else waits to be sent;
        False when the Python way must send it."""
        cdef Py_ssize_t size, sent
        framer = self._framer
        if framer is None or self._fd < 0 or len(self._unsent):
            return False
        conn = self._conn
        if conn.state is not _open_state() or conn._outgoing or conn._pongs:
            return False
        framer._fill_keys()  # may let the GIL go: before the lock is looked at
        if self._conn_locked():
            return False  # another thread is inside the Connection
        # From here on the GIL is held and no Python code runs: no other thread can take
        # the lock, so this frame leaves whole, in order.
        frame = framer.message(message)
        if frame is None:
            return False
        if self._tls is not None:
            return self._send_tls(frame, timeout)
        size = PyBytes_GET_SIZE(frame)
        sent = direct_send(self._fd, PyBytes_AS_STRING(frame), size)
        if sent == size:
            return True
        # The socket took part of it, or none: the rest is queued, still inside the
        # lock (free until now, so taken at once), and waited for the Python way.
        lock = self._conn_lock
        lock.acquire()
        try:
            end = self._stream.write(frame[sent:] if sent > 0 else frame)
        finally:
            lock.release()
        self._wait_sent(end, timeout)
        return True

    cdef bint _send_tls(self, bytes frame, timeout) except -1:
        """The TLS half of _send_now(): ``frame`` encrypted and written while the TLS
        object is free; what the socket does not take yet is queued, and the very same
        bytes retried by the stream (as TLS requires) while this waits."""
        lock = self._tls_lock
        if not lock.acquire(False):
            return False  # another thread is in the TLS object (a flush, a read): queue it the Python way
        try:
            try:
                self._tls.write(frame)  # the whole frame, or it raises
                return True
            except SSLWantReadError:
                self._stream.write_needs_read = True  # a renegotiation: the peer speaks first
                end = self._stream._enqueue(frame)
            except SSLWantWriteError:
                end = self._stream._enqueue(frame)
            except OSError as exc:
                raise self._send_failure(exc) from exc
        finally:
            lock.release()
        self._wait_sent(end, timeout)
        return True

    # What the subclass provides ----------------------------------------------------

    def _send(self, action, argument, timeout):
        raise NotImplementedError

    def _wait_sent(self, end, timeout):
        raise NotImplementedError

    def _send_failure(self, exc):
        raise NotImplementedError

    def _parsed_read(self, items, failure):
        raise NotImplementedError

    def _connection_lost(self):
        raise NotImplementedError

    def _grow_if_filled(self, size):
        raise NotImplementedError

    def _wake_readers(self):
        raise NotImplementedError
