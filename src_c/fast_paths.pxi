# What the fast paths of both compiled connections (stream_core.pxi, blocking_core.pxi)
# share: the system calls of direct_io.h, when the Connection's parser may be fed directly
# and what its results say, and the frames of whole messages, made here.
# Included by _compiled.pyx, after receiver.pxi.

cdef extern from "direct_io.h":
    bint DIRECT_SEND "WSFAST_DIRECT_SEND"
    bint GIL_GUARDS "WSFAST_GIL_GUARDS"
    Py_ssize_t direct_send "wsfast_direct_send"(long fd, const char *data, Py_ssize_t size)
    Py_ssize_t direct_recv "wsfast_recv"(long fd, char *data, Py_ssize_t size, int *error) nogil
    Py_ssize_t RECV_NOTHING "WSFAST_RECV_NOTHING"
    Py_ssize_t RECV_SIGNAL "WSFAST_RECV_SIGNAL"
    Py_ssize_t wait_readable "wsfast_wait_readable"(long fd, int milliseconds) nogil
    bint bytes_waiting "wsfast_bytes_waiting"(long fd)
    double monotonic_now "wsfast_monotonic"()

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object text, Py_ssize_t *size) except NULL

from os import urandom

cdef enum:
    KEY_POOL = 512  # random bytes fetched at once for mask keys: 128 messages' worth

cdef object _OPEN = None  # wsfast.protocol.State.OPEN, once a connection starts


cdef object _open_state():
    # wsfast.protocol imports this module: State is looked up once it is needed.
    global _OPEN
    if _OPEN is None:
        from wsfast.protocol import State
        _OPEN = State.OPEN
    return _OPEN


cdef FrameParser _plain_parser(conn):
    """The Connection ``conn``'s compiled parser, for a fast path to feed while only whole
    messages come; None when the Connection must see every frame (it checks a message
    limit below 125 bytes itself, frame by frame) or its parser is the pure one."""
    parser = conn._parser
    return parser if type(parser) is FrameParser and conn._fast_ok else None


cdef bint _between_messages(conn) except -1:
    """The Connection stands where a fast path may feed its parser: receiving, no
    fragmented message open, no text frame half checked."""
    return conn._receiving and conn._message_opcode is None and conn._arriving_text is None


cdef inline bint _whole_messages_only(FrameParser parser) noexcept:
    """The parser's last feed brought only whole messages and kept nothing back: its list
    is the events receive_data() would return, and the Connection has not moved."""
    return not (parser.last_frame_count or parser._payload != NULL or parser._head_len)


cdef _MessageFramer _plain_framer(conn):
    """A framer for the Connection ``conn`` while it sends each message as one frame,
    uncompressed (no extension, no frame size limit); else None."""
    if conn._deflate is None and conn.max_frame_size is None:
        return _MessageFramer(conn.client)
    return None


@cython.final
@cython.auto_pickle(False)  # a connection's state
cdef class _MessageFramer:
    """Frames whole messages as a connection without extensions or a frame size limit
    sends them: one frame each, masked by a client with a fresh key from a pool of random
    bytes (one urandom() call per 128 messages)."""

    cdef bint _masking
    cdef bytes _keys  # used from _key_pos on
    cdef Py_ssize_t _key_pos

    def __cinit__(self, bint masking):
        self._masking = masking
        self._key_pos = KEY_POOL

    cdef int _fill_keys(self) except -1:
        """Have a key ready: a caller that must not let the GIL go meanwhile calls this
        first (urandom() may let it go)."""
        if self._masking and self._key_pos == KEY_POOL:
            self._keys = urandom(KEY_POOL)
            self._key_pos = 0
        return 0

    cdef object message(self, message):
        """The frame of ``message`` (text for a str, binary for bytes); None for any other
        type, which the Connection frames."""
        cdef const char *text
        cdef Py_ssize_t size
        kind = type(message)
        if kind is bytes:
            return self._frame(0x82, PyBytes_AS_STRING(message), PyBytes_GET_SIZE(message))
        if kind is str:
            text = PyUnicode_AsUTF8AndSize(message, &size)
            return self._frame(0x81, text, size)
        return None

    cdef bytes _frame(self, int first, const char *payload, Py_ssize_t size):
        cdef const unsigned char *key = NULL
        if self._masking:
            self._fill_keys()
            key = <const unsigned char *>PyBytes_AS_STRING(self._keys) + self._key_pos
            self._key_pos += 4
        return _frame_bytes(first, <const unsigned char *>payload, size, key)
