# The hot paths of the TLS the asyncio connection runs itself over the loop's plain TCP
# transport, as wsfast._tls_core (the pure twin) describes them: the base of
# wsfast.asyncio._tls.TLSTransport. Records received are decrypted straight into the
# connection's read buffer, and what it writes is encrypted and written to the socket
# while the loop's transport holds nothing, with no Python frame run on the way.
# Included by _compiled.pyx, after stream_core.pxi.

from ssl import MemoryBIO, SSLError, SSLWantReadError


@cython.auto_pickle(False)  # a live connection
cdef class TLSCore:
    """Decrypts what the loop's transport reads into the connection's buffer, and
    encrypts what the connection writes (see wsfast._tls_core)."""

    cdef public object _raw
    cdef object _tls_object
    cdef readonly object _incoming
    cdef readonly object _outgoing
    cdef public object _view
    cdef public object _get_buffer
    cdef public object _buffer_updated
    cdef public bint _handshaking
    cdef public bint _closing
    cdef public bint _reading_paused
    cdef long _fd  # the TCP socket written to while the loop's transport holds nothing, or -1
    cdef object _buffered  # the loop's transport's get_write_buffer_size
    # Bound methods, called once or more per read or write.
    cdef object _feed  # _incoming.write
    cdef object _take  # _outgoing.read
    cdef object _decrypt_into  # the TLS object's read
    cdef object _encrypt  # its write
    cdef object _decrypted_pending  # its pending

    def __cinit__(self):  # takes no arguments: it ignores the subclass's
        self._incoming = MemoryBIO()
        self._outgoing = MemoryBIO()
        self._view = memoryview(b"")  # where the loop's transport reads, set by the subclass
        self._handshaking = True
        self._fd = -1
        self._feed = self._incoming.write
        self._take = self._outgoing.read

    @property
    def _tls(self):
        """The ssl module's TLS object behind the SSLObject, once connected."""
        return self._tls_object

    @_tls.setter
    def _tls(self, tls):
        self._tls_object = tls
        self._decrypt_into = tls.read
        self._encrypt = tls.write
        self._decrypted_pending = tls.pending

    def _attach_socket(self, transport):
        """The loop's transport connected: records go to its socket while it holds nothing."""
        self._fd = _direct_socket(transport)
        if self._fd >= 0:
            self._buffered = transport.get_write_buffer_size

    def _detach_socket(self):
        """The loop's transport is gone: its socket may be closed, and its number reused."""
        self._fd = -1
        self._buffered = None

    # The loop's transport reads ----------------------------------------------------

    def get_buffer(self, sizehint):
        return self._view

    def buffer_updated(self, Py_ssize_t nbytes):
        self._feed(self._view[:nbytes])
        if self._handshaking:
            self._handshake_step()
        else:
            self._decrypt_received()

    def _decrypt(self):
        """Hand the connection what the records received so far hold."""
        self._decrypt_received()

    def _decrypt_all(self):
        """Hand the connection every record received, paused or not (see wsfast._tls_core)."""
        while not self._handshaking and not self._closing and self._undecrypted():
            self._reading_paused = False
            self._decrypt_received()

    cdef int _decrypt_received(self) except -1:
        cdef Py_ssize_t filled
        while not self._closing and not self._reading_paused and self._undecrypted():
            target = self._get_buffer(-1)
            filled = self._fill(target, len(target))
            if filled > 0:
                self._buffer_updated(filled)
            elif filled < 0:
                return 0
        if not self._closing and self._outgoing.pending:  # e.g. the answer to a key update
            self._flush()
        return 0

    cdef bint _undecrypted(self) except -1:
        """Records received are not all decrypted, or their bytes not all handed out."""
        return bool(self._incoming.pending) or bool(self._decrypted_pending())

    cdef Py_ssize_t _fill(self, target, Py_ssize_t size) except -2:
        """Decrypt records into ``target`` (``size`` bytes) until it is full or they are
        used up: one call of the connection for many records, and frames that cross
        records arrive whole. How many bytes it holds; -1 when the connection is done
        (the peer's close_notify, or a TLS error), once the bytes before are handed out."""
        cdef Py_ssize_t filled = 0
        cdef Py_ssize_t nbytes
        try:
            while filled < size:
                nbytes = self._decrypt_into(size - filled, target if not filled else target[filled:])
                if not nbytes:  # the peer's close_notify: it sends no more
                    break
                filled += nbytes
                if not self._undecrypted():
                    return filled
        except SSLWantReadError:
            return filled  # the rest of a record has not arrived
        except SSLError as exc:
            self._end(exc, filled)
            return -1
        if filled < size:
            self._end(None, filled)
            return -1
        return filled

    cdef int _end(self, exc, Py_ssize_t filled) except -1:
        """The TLS stream ended (``exc`` None: the peer's close_notify) after ``filled``
        bytes, which the connection gets first."""
        if filled:
            self._buffer_updated(filled)
        if exc is None:
            self.close()
        else:
            self._failed(exc)
        return 0

    # The connection writes ---------------------------------------------------------

    def write(self, data):
        """Encrypt ``data`` and write the records (see wsfast._tls_core)."""
        if self._closing or not len(data):
            return
        try:
            self._encrypt(data)
        except SSLError as exc:
            self._failed(exc)
            return
        self._send(self._take())

    def _flush(self):
        """Write the records OpenSSL made on its own."""
        self._send(self._take())

    cdef int _send(self, bytes records) except -1:
        cdef Py_ssize_t size = PyBytes_GET_SIZE(records)
        cdef Py_ssize_t sent
        if not size:
            return 0
        if self._fd >= 0 and not self._buffered():
            sent = direct_send(self._fd, PyBytes_AS_STRING(records), size)
            if sent == size:
                return 0
            if sent > 0:
                records = records[sent:]
        self._raw.write(records)
        return 0

    # What the subclass provides ----------------------------------------------------

    def _handshake_step(self):
        raise NotImplementedError

    def _failed(self, exc):
        raise NotImplementedError

    def close(self):
        raise NotImplementedError
