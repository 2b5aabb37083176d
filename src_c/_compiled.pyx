# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: embedsignature=True
# cython: freethreading_compatible = True
"""The compiled frame codec: same API and behaviour as the pure-Python ``wsfast._pure``.

Masking runs in C kernels chosen for the CPU at import. Frames are parsed straight
from the caller's buffer; a payload that arrives in pieces is copied (and unmasked)
piece by piece into the ``bytes`` object the frame will carry. Compressed messages
are inflated with zlib's C API straight into the object they come out as. In
``feed_batch`` whole messages are copied (and unmasked) straight from the caller's
buffer into the one a batch of them shares. ``BlockingReceiver`` and ``Receiver``
(receiver.pxi) hand the clients' messages to ``recv()`` with no Python frame (nor
coroutine) per message; ``StreamCore`` (stream_core.pxi) and ``BlockingCore``
(blocking_core.pxi) read, parse and send a connection's plain messages with none either.

Free-threaded Python: nothing here is shared between objects but constants and the
masking kernel, chosen once at import. A parser, an inflater or a batch builder is used
by one thread at a time; a second thread entering one meanwhile gets a RuntimeError
(see _Busy), never corrupted memory.
"""

cimport cython
from cpython.buffer cimport (
    PyBUF_FULL_RO,
    PyBUF_SIMPLE,
    PyBuffer_IsContiguous,
    PyBuffer_Release,
    PyObject_CheckBuffer,
    PyObject_GetBuffer,
)
from cpython.bytearray cimport (
    PyByteArray_AS_STRING,
    PyByteArray_FromStringAndSize,
    PyByteArray_GET_SIZE,
    PyByteArray_Resize,
)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_RawCalloc, PyMem_RawFree
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM
from libc.stdint cimport INT64_MAX, int64_t, uint64_t
from libc.string cimport memchr, memcpy, memset

from kernels cimport (
    WSFAST_BAD_MASK,
    WSFAST_BAD_OPCODE,
    WSFAST_BAD_RSV,
    WSFAST_FRAGMENTED_CONTROL,
    WSFAST_HEADER_INCOMPLETE,
    WSFAST_HEADER_OK,
    WSFAST_LENGTH_MSB,
    WSFAST_LONG_CONTROL,
    WSFAST_MAX_HEADER,
    wsfast_header,
    wsfast_header_status,
    wsfast_mask,
    wsfast_mask_init,
    wsfast_parse_header,
)

import collections
import math
from operator import index

from wsfast.batch import DEFAULT_MAX_BYTES, Batch
from wsfast.enums import Opcode
from wsfast.exceptions import InvalidUTF8, PayloadTooBig, ProtocolError

__all__ = [
    "DEFAULT_MAX_SIZE",
    "Backlog",
    "BatchBuilder",
    "BlockingCore",
    "BlockingReceiver",
    "Frame",
    "FrameParser",
    "Inflater",
    "Receiver",
    "StreamCore",
    "TLSCore",
    "encode_frame",
    "mask",
    "mask_inplace",
]

DEFAULT_MAX_SIZE = 64 * 1024 * 1024

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX
    # Raw forms for the payload being collected, which the parser owns by hand
    # (NULL and a set exception on failure; the resize needs the only reference).
    PyObject *_new_bytes "PyBytes_FromStringAndSize"(const char *data, Py_ssize_t size)
    char *_bytes_data "PyBytes_AS_STRING"(PyObject *bytes)
    int _PyBytes_Resize(PyObject **bytes, Py_ssize_t size)
    Py_ssize_t Py_SIZE(PyObject *obj)
    Py_ssize_t Py_REFCNT(PyObject *obj)
    int PyBuffer_FillInfo(Py_buffer *view, object exporter, void *buf, Py_ssize_t len, int readonly, int flags) except -1
    # Copies between a buffer of any layout and contiguous memory, in C order ('C').
    int PyBuffer_ToContiguous(void *buf, Py_buffer *view, Py_ssize_t len, char order) except -1
    int PyBuffer_FromContiguous(Py_buffer *view, void *buf, Py_ssize_t len, char order) except -1
    void Py_CLEAR(PyObject *obj)
    # Strict decoding: UnicodeDecodeError on invalid UTF-8.
    str _decode_utf8 "PyUnicode_DecodeUTF8"(const char *data, Py_ssize_t size, const char *errors)

cdef extern from "zlib.h":  # built with ZLIB_CONST: next_in is const
    ctypedef unsigned int uInt
    ctypedef void *(*alloc_func)(void *opaque, uInt items, uInt size) noexcept nogil
    ctypedef void (*free_func)(void *opaque, void *address) noexcept nogil
    ctypedef struct z_stream:
        const unsigned char *next_in
        uInt avail_in
        unsigned char *next_out
        uInt avail_out
        const char *msg
        alloc_func zalloc
        free_func zfree
        void *opaque
    enum:
        Z_OK
        Z_STREAM_END
        Z_BUF_ERROR
        Z_MEM_ERROR
        Z_SYNC_FLUSH
    int inflateInit2(z_stream *strm, int window_bits)
    int inflate(z_stream *strm, int flush)
    int inflateReset(z_stream *strm)
    int inflateEnd(z_stream *strm)

cdef enum:
    FIN = 8
    RSV1 = 4
    RSV2 = 2
    RSV3 = 1
    CONTROL_MAX = 125
    FIRST_CAPACITY = 64 * 1024  # least room taken for a payload still arriving
    WINDOW_FROM = 16 * 1024  # payloads at least this large offer a payload_window()
    WINDOW_ROOM = 256 * 1024  # a window spans at least this much (or the payload's rest)
    KNOWN_OPCODES = 0x0707  # bit n set when opcode n is defined
    UNMASK_ON_STACK = 4096  # a masked compressed message up to this size is unmasked on the stack
    # Below this size, a message's payload and trailer go to zlib as one input, copied
    # on the stack: one zlib call instead of two (the pure twin does the same).
    COPY_TRAILER_BELOW = 4096
    # Inflating starts with room for a few times the input, within these bounds, and
    # doubles it as needed: neither a header nor a small bomb reserves much memory.
    # (zlib decodes fastest while it has room for 258 bytes.)
    INFLATE_ROOM_MIN = 512
    INFLATE_ROOM_MAX = 1024 * 1024
    TEXT_ROOM_KEPT = 64 * 1024  # inflated text goes through a buffer that is kept up to this size
    ZLIB_STEP = 1 << 30  # zlib counts bytes in uInt: hand it at most this many at once
    BATCH_FIRST_ROOM = 4096  # least room a batch's payloads start with
    BATCH_BYTES_PER_OFFSET = 64  # a batch's offsets start with room for one per this many bytes
    # A batch's buffers are kept for reuse unless they hold more than this (or than the
    # batch's size) unused; and those of this many batches at most.
    RECYCLE_SLACK = 64 * 1024
    SPARES_KEPT = 2

# Limit used for max_size=None: no frame length can exceed it.
cdef uint64_t NO_LIMIT = INT64_MAX

_OPCODE_NAMES = {op.value: op.name for op in Opcode}

# Chosen once, here: the import runs before any thread can mask.
wsfast_mask_init()

cdef extern from *:
    """
    #ifdef Py_GIL_DISABLED
    #define WSFAST_FREE_THREADED 1
    #else
    #define WSFAST_FREE_THREADED 0
    #endif
    """
    # True on a free-threaded build, where another thread may resize a bytearray meanwhile.
    const bint FREE_THREADED "WSFAST_FREE_THREADED"


# A parser, an inflater and a batch builder keep C state (raw pointers into buffers they
# own) that two threads at once would corrupt. Each has a busy flag, set for the length
# of every call that touches that state: a second thread gets a RuntimeError instead.
# The critical section (a no-op with the GIL) makes testing and setting the flag one step.

cdef inline int _enter(object owner, bint *busy) except -1:
    """Mark ``owner``, whose flag ``busy`` is, in use; RuntimeError if it already is."""
    cdef bint taken
    with cython.critical_section(owner):
        taken = busy[0]
        busy[0] = True
    if taken:
        raise RuntimeError(f"{type(owner).__name__} used from two threads at once; "
                           "use each from one thread at a time")
    return 0


cdef inline void _leave(object owner, bint *busy) noexcept:
    with cython.critical_section(owner):
        busy[0] = False


cdef inline unsigned char _with_bit(unsigned char bits, unsigned char bit, bint on):
    return (bits | bit) if on else (bits & ~bit)


cdef int _opcode_of(object value) except -1:
    """``value`` as a frame opcode: an integer within 0..15 (four bits on the wire)."""
    value = index(value)
    if not 0 <= value <= 15:
        raise ValueError(f"opcode must be within 0..15, not {value}")
    return value


cdef bytes _bytes_of(object value):
    """The bytes of ``value``, any object with the buffer protocol (C order)."""
    return value if type(value) is bytes else bytes(memoryview(value))


@cython.freelist(256)
@cython.no_gc  # fields hold only ints, bools and bytes: no reference cycle is possible
cdef class Frame:
    """One WebSocket frame. ``payload`` is always ``bytes`` (already unmasked).

    ``opcode`` is an integer within 0..15; ``payload`` takes any bytes-like object and
    keeps its bytes. ``len(frame)`` is the payload size and ``frame[i]`` indexes its bytes.
    """

    cdef bytes _payload
    cdef unsigned char _opcode
    # FIN, RSV1, RSV2, RSV3 as the bits 8, 4, 2, 1, like the high half of the wire's
    # first byte: one byte keeps the object small, which matters at millions per second.
    cdef unsigned char _bits

    def __init__(self, opcode, payload=b"", fin=True, rsv1=False, rsv2=False, rsv3=False):
        self._opcode = _opcode_of(opcode)
        self._set_payload(_bytes_of(payload))
        self._bits = (FIN if fin else 0) | (RSV1 if rsv1 else 0) | (RSV2 if rsv2 else 0) | (RSV3 if rsv3 else 0)

    @property
    def opcode(self):
        """The frame's opcode (1 text, 2 binary, 0 continuation, 8 close, 9 ping, 10 pong)."""
        return self._opcode

    @opcode.setter
    def opcode(self, value):
        self._opcode = _opcode_of(value)

    # The payload is the one reference a frame holds: one thread replacing it while
    # another reads it would free it under the reader, so both happen in the frame's
    # critical section (a no-op with the GIL). The other fields are single bytes.

    cdef inline bytes _get_payload(self):
        with cython.critical_section(self):
            return self._payload

    cdef inline void _set_payload(self, bytes payload) noexcept:
        with cython.critical_section(self):
            self._payload = payload

    @property
    def payload(self):
        """The payload, unmasked."""
        return self._get_payload()

    @payload.setter
    def payload(self, value):
        self._set_payload(_bytes_of(value))

    @property
    def fin(self):
        """True on the last frame of a message."""
        return self._bits & FIN != 0

    @fin.setter
    def fin(self, value):
        self._bits = _with_bit(self._bits, FIN, value)

    @property
    def rsv1(self):
        """The first reserved bit (per-message compression uses it)."""
        return self._bits & RSV1 != 0

    @rsv1.setter
    def rsv1(self, value):
        self._bits = _with_bit(self._bits, RSV1, value)

    @property
    def rsv2(self):
        """The second reserved bit."""
        return self._bits & RSV2 != 0

    @rsv2.setter
    def rsv2(self, value):
        self._bits = _with_bit(self._bits, RSV2, value)

    @property
    def rsv3(self):
        """The third reserved bit."""
        return self._bits & RSV3 != 0

    @rsv3.setter
    def rsv3(self, value):
        self._bits = _with_bit(self._bits, RSV3, value)

    @property
    def is_control(self):
        """True for close, ping and pong frames."""
        return self._opcode >= 8

    @property
    def text(self):
        """The payload decoded as UTF-8; for a close frame, the reason after the code."""
        cdef object payload = self._get_payload()
        if self._opcode == 8:
            return payload[2:].decode()
        return payload.decode()

    @property
    def close_code(self):
        """A close frame's status code (1005 when it carries none); None for other frames."""
        cdef object payload = self._get_payload()
        if self._opcode != 8:
            return None
        if len(payload) < 2:
            return 1005
        return int.from_bytes(payload[:2], "big")

    def __len__(self):
        return len(<object>self._get_payload())

    def __getitem__(self, index):
        return (<object>self._get_payload())[index]

    def __eq__(self, other):
        # Compares public attributes only, so frames of both codec twins compare equal.
        if type(other) is Frame:
            return (self._opcode == (<Frame>other)._opcode and self._bits == (<Frame>other)._bits
                    and <object>self._get_payload() == <object>(<Frame>other)._get_payload())
        try:
            return (
                self.opcode == other.opcode
                and self.payload == other.payload
                and self.fin == other.fin
                and self.rsv1 == other.rsv1
                and self.rsv2 == other.rsv2
                and self.rsv3 == other.rsv3
            )
        except AttributeError:
            return NotImplemented

    def __hash__(self):
        return hash((self.opcode, self.fin, self.rsv1, self.rsv2, self.rsv3, self._get_payload()))

    def __repr__(self):
        cdef object payload = self._get_payload()
        name = _OPCODE_NAMES.get(self._opcode, str(self._opcode))
        flags = "".join(f" rsv{i}" for i, bit in enumerate((self.rsv1, self.rsv2, self.rsv3), 1) if bit)
        shown = payload if len(payload) <= 32 else payload[:32] + b"..."
        return f"<Frame {name} fin={self.fin}{flags} {len(payload)} bytes {shown!r}>"


cdef inline int _append_frame(list frames, const wsfast_header *h, bytes payload) except -1:
    cdef Frame frame = Frame.__new__(Frame)
    frame._opcode = h.opcode
    frame._bits = (h.fin << 3) | h.rsv
    frame._payload = payload
    frames.append(frame)
    return 0


cdef int _get_bytes(object data, Py_buffer *view) except -1:
    """Fill ``view`` with the bytes of ``data``, any object with the buffer protocol, in
    C order: a C-contiguous buffer of any shape is used in place, any other is copied.

    These are the bytes the pure twin takes (``memoryview(data).tobytes()``), and a
    bad argument fails as it does there: in memoryview's words.
    """
    if not PyObject_CheckBuffer(data):
        memoryview(data)  # raises the TypeError
    PyObject_GetBuffer(data, view, PyBUF_FULL_RO)
    if PyBuffer_IsContiguous(view, b"C"):
        return 0
    try:
        copy = PyBytes_FromStringAndSize(NULL, view.len)
        PyBuffer_ToContiguous(PyBytes_AS_STRING(copy), view, view.len, b"C")
    finally:
        PyBuffer_Release(view)
    PyObject_GetBuffer(copy, view, PyBUF_SIMPLE)
    return 0


cdef int _load_key(object key, unsigned char *out) except -1:
    if type(key) is not bytes:
        key = bytes(memoryview(key))
    if len(<bytes>key) != 4:
        raise ValueError(f"mask key must be 4 bytes, not {len(<bytes>key)}")
    memcpy(out, PyBytes_AS_STRING(key), 4)
    return 0


def mask(data, key):
    """Return ``data`` XOR-ed with the 4-byte ``key`` (masking and unmasking are the same)."""
    cdef Py_buffer view
    cdef unsigned char k[4]
    _load_key(key, k)
    if type(data) is bytes:  # the common case, without the buffer protocol's cost
        out = PyBytes_FromStringAndSize(NULL, PyBytes_GET_SIZE(data))
        wsfast_mask(<unsigned char *>PyBytes_AS_STRING(out),
                    <const unsigned char *>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), k, 0)
        return out
    _get_bytes(data, &view)
    try:
        out = PyBytes_FromStringAndSize(NULL, view.len)
        wsfast_mask(<unsigned char *>PyBytes_AS_STRING(out), <const unsigned char *>view.buf,
                    view.len, k, 0)
    finally:
        PyBuffer_Release(&view)
    return out


def mask_inplace(buffer, key):
    """XOR a writable buffer (bytearray, memoryview, ...) with the 4-byte ``key`` in place.

    Its bytes are taken in C order, as :func:`mask` takes them, whatever its layout.
    """
    cdef Py_buffer view
    cdef unsigned char k[4]
    cdef unsigned char *scratch
    # The common case, without the buffer protocol's cost; on a free-threaded build the
    # buffer protocol keeps another thread from resizing the bytearray meanwhile.
    if not FREE_THREADED and type(buffer) is bytearray:
        _load_key(key, k)
        wsfast_mask(<unsigned char *>PyByteArray_AS_STRING(buffer),
                    <const unsigned char *>PyByteArray_AS_STRING(buffer),
                    PyByteArray_GET_SIZE(buffer), k, 0)
        return
    if not PyObject_CheckBuffer(buffer):
        memoryview(buffer)  # raises the pure twin's TypeError
    PyObject_GetBuffer(buffer, &view, PyBUF_FULL_RO)
    try:
        if view.readonly:
            raise TypeError("mask_inplace needs a writable buffer")
        _load_key(key, k)
        if PyBuffer_IsContiguous(&view, b"C"):
            wsfast_mask(<unsigned char *>view.buf, <const unsigned char *>view.buf, view.len, k, 0)
            return
        # Scattered items: masked in a contiguous copy, then written back in place.
        copy = PyBytes_FromStringAndSize(NULL, view.len)
        scratch = <unsigned char *>PyBytes_AS_STRING(copy)
        PyBuffer_ToContiguous(scratch, &view, view.len, b"C")
        wsfast_mask(scratch, scratch, view.len, k, 0)
        PyBuffer_FromContiguous(&view, scratch, view.len, b"C")
    finally:
        PyBuffer_Release(&view)


def encode_frame(opcode, payload=b"", *, fin=True, rsv=0, mask_key=None):
    """Return the wire bytes of one frame.

    ``rsv`` holds the three reserved bits as a number: 4 is RSV1, 2 is RSV2, 1 is RSV3.
    With ``mask_key`` (4 bytes) the frame is masked, as a client must; the length uses the
    shortest of the 7, 16 and 64-bit encodings.
    """
    cdef Py_buffer view
    cdef unsigned char k[4]
    cdef Py_ssize_t n
    cdef int op, first
    cdef bint mask_bit = mask_key is not None
    if type(opcode) is not int:
        opcode = index(opcode)
    if not (0 <= opcode <= 15 and (KNOWN_OPCODES >> <int>opcode) & 1):
        raise ValueError(f"unknown opcode {opcode:#x}")
    op = opcode
    if type(rsv) is not int:
        rsv = index(rsv)
    if not 0 <= rsv <= 7:
        raise ValueError(f"rsv must be within 0..7, not {rsv}")
    if isinstance(payload, str):
        raise TypeError("payload must be bytes-like, not str")
    _get_bytes(payload, &view)
    try:
        n = view.len
        if op >= 8:
            if n > CONTROL_MAX:
                raise ValueError(f"control frame payload is {n} bytes; at most 125 allowed")
            if not fin:
                raise ValueError("control frames cannot be fragmented")
        first = (0x80 if fin else 0) | (<int>rsv << 4) | op
        if mask_bit:
            _load_key(mask_key, k)
        return _frame_bytes(first, <const unsigned char *>view.buf, n, k if mask_bit else NULL)
    finally:
        PyBuffer_Release(&view)


cdef bytes _frame_bytes(int first, const unsigned char *payload, Py_ssize_t n, const unsigned char *key):
    """The frame whose first byte is ``first`` around ``n`` payload bytes; masked with the
    4 bytes at ``key`` unless it is NULL. Lengths take the shortest encoding."""
    cdef uint64_t length
    cdef int i
    cdef unsigned char mask_bit = 0x80 if key != NULL else 0
    cdef Py_ssize_t pos = 2 if n < 126 else 4 if n < 65536 else 10
    out = PyBytes_FromStringAndSize(NULL, pos + (4 if mask_bit else 0) + n)
    cdef unsigned char *out_p = <unsigned char *>PyBytes_AS_STRING(out)
    out_p[0] = first
    if n < 126:
        out_p[1] = mask_bit | n
    elif n < 65536:
        out_p[1] = mask_bit | 126
        out_p[2] = n >> 8
        out_p[3] = n & 0xFF
    else:
        out_p[1] = mask_bit | 127
        length = n
        for i in range(8):
            out_p[2 + i] = (length >> (56 - 8 * i)) & 0xFF
    if mask_bit:
        memcpy(out_p + pos, key, 4)
        wsfast_mask(out_p + pos + 4, payload, n, key, 0)
    elif n:  # an empty buffer may have no memory at all
        memcpy(out_p + pos, payload, n)
    return out


# --- inflating (permessage-deflate, RFC 7692) ------------------------------------------

# A compressed message is DEFLATE data that was flushed with an empty stored block
# ending in these four bytes; the sender strips them and the receiver puts them back.
cdef const unsigned char *TRAILER = <const unsigned char *>b"\x00\x00\xff\xff"

_TOO_BIG = "message exceeds the size limit once decompressed"


# zlib's memory comes from Python's raw allocator, so tracemalloc counts it too.
cdef void *_zalloc(void *opaque, uInt items, uInt size) noexcept nogil:
    return PyMem_RawCalloc(items, size)


cdef void _zfree(void *opaque, void *address) noexcept nogil:
    PyMem_RawFree(address)


cdef struct _Output:
    PyObject **buf  # a bytes object referenced nowhere else, which grows as needed
    Py_ssize_t size  # bytes inflated into it so far
    Py_ssize_t limit  # producing this many is producing too many


cdef int _reserve(PyObject **buf, Py_ssize_t size) except -1:
    """Make ``*buf`` a bytes object of ``size`` bytes: a new one for NULL, else resized."""
    if buf[0] == NULL:
        buf[0] = _new_bytes(NULL, size)
        return 0 if buf[0] != NULL else -1
    return _PyBytes_Resize(buf, size)


cdef Py_ssize_t _first_room(Py_ssize_t n, Py_ssize_t limit):
    """Room to start inflating ``n`` bytes with: a few times as much, within bounds."""
    return min(limit, max(<Py_ssize_t>INFLATE_ROOM_MIN, min(n, INFLATE_ROOM_MAX // 4) * 4))


cdef Py_ssize_t _room(_Output *out) except -1:
    """Free bytes in ``out`` (which holds less than ``limit``), doubling it when full."""
    cdef Py_ssize_t capacity = min(Py_SIZE(out.buf[0]), out.limit)
    if out.size == capacity:
        capacity = 2 * capacity if capacity < out.limit // 2 else out.limit
        _reserve(out.buf, capacity)
    return capacity - out.size


cdef Py_ssize_t _output_limit(object max_size) except -1:
    """How many bytes inflating may produce for a budget of ``max_size`` bytes (None: no
    limit): producing one byte more than allowed proves the excess."""
    if max_size is None:
        return PY_SSIZE_T_MAX
    max_size = index(max_size)
    if max_size >= PY_SSIZE_T_MAX:
        return PY_SSIZE_T_MAX
    return 1 if max_size <= 0 else <Py_ssize_t>max_size + 1


@cython.final
@cython.auto_pickle(False)  # its zlib state cannot be copied
cdef class Inflater:
    """Decompresses the messages of one direction of a permessage-deflate connection
    (RFC 7692): raw DEFLATE data with a window of ``2**window_bits`` bytes (8..15).

    Call :meth:`inflate` for every frame of each compressed message, in order: with
    context takeover a message may refer to the ones before it. ``no_context_takeover``
    starts every message afresh, as the peer then promised. Errors are fatal for the
    connection: fail it with the exception's ``code``.
    """

    cdef readonly int window_bits
    cdef readonly bint no_context_takeover
    cdef z_stream _stream
    cdef bint _ready  # inflateInit2 succeeded: inflateEnd is due
    cdef bint _unflushed  # the current stream got data that only the trailer completes
    cdef bint _busy  # a call is inflating (see _enter)
    cdef PyObject *_text  # owned: what text is inflated into before decoding; NULL or small

    def __cinit__(self, window_bits=15, *, no_context_takeover=False):
        cdef int status
        if type(window_bits) is not int or not 8 <= window_bits <= 15:
            raise ValueError(f"window_bits must be an int within 8..15, not {window_bits!r}")
        self.window_bits = window_bits
        self.no_context_takeover = no_context_takeover
        self._stream.zalloc = _zalloc
        self._stream.zfree = _zfree
        status = inflateInit2(&self._stream, -self.window_bits)  # negative: raw DEFLATE
        if status == Z_MEM_ERROR:
            raise MemoryError()
        if status != Z_OK:
            raise RuntimeError(f"zlib cannot inflate (error {status}: {self._reason()})")
        self._ready = True

    def __dealloc__(self):
        if self._ready:
            inflateEnd(&self._stream)
        Py_CLEAR(self._text)

    def inflate(self, payload, fin=True, max_size=None):
        """Decompress the payload (any bytes-like) of one frame of a compressed message.

        ``fin`` tells that the frame ends the message. ``max_size`` is how many bytes this
        frame may still add to the message (None: no limit). Raises :class:`PayloadTooBig`
        (1009) as soon as it would add more, having produced at most one byte more; and
        :class:`ProtocolError` with code 1007 when the data is not valid DEFLATE.
        """
        cdef Py_buffer view
        _get_bytes(payload, &view)
        try:
            return self._to_bytes(<const unsigned char *>view.buf, view.len, fin, _output_limit(max_size))
        finally:
            PyBuffer_Release(&view)

    cdef bytes _to_bytes(self, const unsigned char *data, Py_ssize_t n, bint fin, Py_ssize_t limit):
        """Inflate one frame's payload into a new bytes object, producing less than ``limit``."""
        cdef PyObject *buf = NULL
        cdef _Output out = _Output(&buf, 0, limit)
        _enter(self, &self._busy)
        try:
            _reserve(&buf, _first_room(n, limit))
            self._run(data, n, fin, &out)
            if out.size == 0:
                return b""
            _reserve(&buf, out.size)
            return <bytes>buf
        finally:
            Py_CLEAR(buf)
            _leave(self, &self._busy)

    cdef str _to_text(self, const unsigned char *data, Py_ssize_t n, Py_ssize_t limit):
        """Inflate a whole text message's payload and decode it (strict UTF-8): the only
        Python object made is the str."""
        cdef _Output out = _Output(&self._text, 0, limit)
        _enter(self, &self._busy)
        try:
            if self._text == NULL:
                _reserve(&self._text, _first_room(n, limit))
            self._run(data, n, True, &out)
            return _decode_utf8(_bytes_data(self._text), out.size, NULL)
        finally:
            if self._text != NULL and Py_SIZE(self._text) > TEXT_ROOM_KEPT:
                Py_CLEAR(self._text)
            _leave(self, &self._busy)

    cdef int _run(self, const unsigned char *data, Py_ssize_t n, bint fin, _Output *out) except -1:
        """Inflate one frame's payload into ``out``; at the end of a message, the trailer."""
        cdef unsigned char joined[COPY_TRAILER_BELOW + 4]
        if fin and 0 < n < COPY_TRAILER_BELOW:
            memcpy(joined, data, n)
            memcpy(joined + n, TRAILER, 4)
            self._inflate_into(joined, n + 4, out, True)
        else:
            self._inflate_into(data, n, out, False)
            # The trailer completes the stored block a sender's flush began. Without
            # data since the last stream end (an empty message, or one ending with a
            # BFINAL block) there is none: a bare trailer would garble the next message.
            if fin and self._unflushed:
                self._inflate_into(TRAILER, 4, out, True)
        if fin:
            self._unflushed = False
            if self.no_context_takeover:
                inflateReset(&self._stream)
        return 0

    cdef int _inflate_into(self, const unsigned char *data, Py_ssize_t n, _Output *out,
                           bint trailer) except -1:
        """Inflate ``n`` bytes into ``out``; ``trailer`` tells that they end with the trailer.

        A peer may end its DEFLATE stream with a BFINAL block inside a message and go on
        with a new one, which cannot refer to the old (RFC 7692 §7.2.3.4): zlib is reset
        and carries on from where the old stream ended, without copying anything.
        """
        cdef z_stream *stream = &self._stream
        cdef Py_ssize_t unread = n  # bytes not handed to zlib yet
        cdef Py_ssize_t left  # bytes after a stream's end
        cdef unsigned char *start
        cdef int status
        if n == 0:
            return 0
        self._unflushed = True
        stream.next_in = data
        stream.avail_in = 0
        while True:
            if stream.avail_in == 0:
                stream.avail_in = <uInt>min(unread, ZLIB_STEP)
                unread -= stream.avail_in
            stream.avail_out = <uInt>min(_room(out), ZLIB_STEP)
            start = <unsigned char *>_bytes_data(out.buf[0])
            stream.next_out = start + out.size
            status = inflate(stream, Z_SYNC_FLUSH)
            out.size = stream.next_out - start
            if status != Z_OK and status != Z_BUF_ERROR and status != Z_STREAM_END:
                return self._fail(status)
            if out.size == out.limit:
                raise PayloadTooBig(_TOO_BIG)
            if status == Z_STREAM_END:
                inflateReset(stream)
                left = stream.avail_in + unread
                if left == 0 or (trailer and left == 4):
                    self._unflushed = False  # the trailer would start a stream of its own
                    return 0
            elif stream.avail_out and stream.avail_in == 0 and unread == 0:
                return 0  # all input taken, and zlib holds back no output (there was room)

    cdef int _fail(self, int status) except -1:
        if status == Z_MEM_ERROR:
            raise MemoryError()
        raise ProtocolError(f"invalid compressed data: {self._reason()}", 1007)

    cdef str _reason(self):
        """zlib's message for its last error (the zlib module's words when it has none)."""
        if self._stream.msg == NULL:
            return "invalid input data"
        return self._stream.msg.decode("utf-8", "replace")


@cython.final
@cython.auto_pickle(False)
cdef class _PayloadWindow:
    """Exports part of a payload being collected as a writable buffer.

    It holds the payload object, so the memory stays valid as long as any view of it
    lives. Meanwhile the parser never hands that object out nor moves it: it grows or
    delivers a copy instead, so what is written here later reaches no frame.
    """

    cdef object _payload
    cdef char *_start
    cdef Py_ssize_t _len

    def __getbuffer__(self, Py_buffer *view, int flags):
        PyBuffer_FillInfo(view, self, self._start, self._len, 0, flags)


# --- batches ---------------------------------------------------------------------------

cdef inline bint _ascii16(const unsigned char *p) noexcept nogil:
    """True when the 16 bytes at ``p`` are all ASCII."""
    cdef uint64_t a, b
    memcpy(&a, p, 8)
    memcpy(&b, p + 8, 8)
    return (a | b) & 0x8080808080808080ULL == 0


cdef bint _utf8_valid(const unsigned char *s, Py_ssize_t n) noexcept nogil:
    """True when the ``n`` bytes at ``s`` are valid UTF-8 (RFC 3629: no overlong forms,
    no surrogates, nothing past U+10FFFF), as Python's strict decoder decides."""
    cdef Py_ssize_t i = 0
    cdef unsigned char c, d
    while True:
        while i + 16 <= n and _ascii16(s + i):  # ASCII runs, 16 bytes at a time
            i += 16
        if i == n:
            return True
        if i + 16 > n and n >= 16 and _ascii16(s + n - 16):
            return True  # a short ASCII tail, checked in one step that overlaps the last
        c = s[i]
        if c < 0x80:
            i += 1
        elif c < 0xC2:  # a continuation byte, or the start of an overlong form
            return False
        elif c < 0xE0:
            if i + 1 >= n or s[i + 1] & 0xC0 != 0x80:
                return False
            i += 2
        elif c < 0xF0:
            if i + 2 >= n:
                return False
            d = s[i + 1]
            if c == 0xE0:
                if d < 0xA0 or d > 0xBF:
                    return False
            elif c == 0xED:  # ED A0..BF would be a surrogate
                if d < 0x80 or d > 0x9F:
                    return False
            elif d & 0xC0 != 0x80:
                return False
            if s[i + 2] & 0xC0 != 0x80:
                return False
            i += 3
        elif c < 0xF5:
            if i + 3 >= n:
                return False
            d = s[i + 1]
            if c == 0xF0:
                if d < 0x90 or d > 0xBF:
                    return False
            elif c == 0xF4:  # past F4 8F lies U+110000
                if d < 0x80 or d > 0x8F:
                    return False
            elif d & 0xC0 != 0x80:
                return False
            if s[i + 2] & 0xC0 != 0x80 or s[i + 3] & 0xC0 != 0x80:
                return False
            i += 4
        else:
            return False


cdef int _check_utf8(const unsigned char *s, Py_ssize_t n) except -1:
    """Raise UnicodeDecodeError, as Python's decoder words it, unless the bytes are UTF-8."""
    if not _utf8_valid(s, n):
        _decode_utf8(<const char *>s, n, NULL)  # raises, saying where and why
        raise UnicodeDecodeError("utf-8", b"", 0, 0, "invalid UTF-8")  # never reached
    return 0


def _is_utf8(data):
    """True when ``data`` (any bytes-like) is valid UTF-8: the check text messages get
    in a batch (for the test suite, which compares it with Python's decoder)."""
    cdef Py_buffer view
    _get_bytes(data, &view)
    try:
        return _utf8_valid(<const unsigned char *>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)


cdef Py_ssize_t _max_bytes_of(object value) except -1:
    value = index(value)
    if value < 1:
        raise ValueError(f"max_bytes must be >= 1, not {value}")
    return min(value, PY_SSIZE_T_MAX)


cdef bytes _offsets_pair(Py_ssize_t length):
    """The int64 offsets of a batch of one message of ``length`` bytes."""
    cdef int64_t pair[2]
    pair[0] = 0
    pair[1] = length
    return PyBytes_FromStringAndSize(<const char *>pair, sizeof(pair))


def _pack_lines(buffer, bounds):
    """The payloads of a batch whose ``buffer`` holds each one followed by a newline, back
    to back, and their int64 offsets: ``(data, offsets)``, two ``bytes``. ``bounds`` are
    the int64 positions (raw native bytes or an int64 buffer) where each message begins
    in ``buffer``, and where it ends; the byte before each is a newline, as a builder
    writes it. A memcpy per message; the pure twin's gives the same. ValueError if the
    bounds do not fit the buffer (a byte at least per message)."""
    cdef Py_buffer source, ends
    cdef Py_ssize_t count, total, index, length
    cdef int64_t start, end, packed
    cdef const char *src
    cdef const char *bound
    cdef char *out
    cdef char *out_offsets
    PyObject_GetBuffer(buffer, &source, PyBUF_SIMPLE)
    try:
        PyObject_GetBuffer(bounds, &ends, PyBUF_SIMPLE)
        try:
            count = ends.len // 8 - 1
            total = source.len - count
            if ends.len % 8 or count < 0 or total < 0:
                raise ValueError("bounds must be whole int64 values, one more than the messages")
            bound = <const char *>ends.buf
            src = <const char *>source.buf
            memcpy(&start, bound, 8)
            memcpy(&end, bound + 8 * count, 8)
            if start != 0 or end != source.len:
                raise ValueError(f"bounds must run from 0 to len(buffer) ({source.len})")
            data = PyBytes_FromStringAndSize(NULL, total)
            offsets = PyBytes_FromStringAndSize(NULL, 8 * (count + 1))
            out = PyBytes_AS_STRING(data)
            out_offsets = PyBytes_AS_STRING(offsets)
            packed = 0
            memcpy(out_offsets, &packed, 8)
            for index in range(count):
                memcpy(&end, bound + 8 * (index + 1), 8)
                # Each message at least its newline, and never past what data holds: so
                # the reads stay in buffer and the writes in data.
                if end <= start or end - index - 1 > total:
                    raise ValueError("bounds must rise by at least one (a newline) per message")
                length = end - start - 1
                memcpy(out + packed, src + start, length)
                packed += length
                memcpy(out_offsets + 8 * (index + 1), &packed, 8)
                start = end
            return data, offsets
        finally:
            PyBuffer_Release(&ends)
    finally:
        PyBuffer_Release(&source)


cdef inline bint _unseen(tuple buffers):
    """True when nothing but ``buffers`` (a batch's three bytearrays, kept for reuse)
    refers to them any more: no batch, view or array shows their memory."""
    return (Py_REFCNT(PyTuple_GET_ITEM(buffers, 0)) == 1 and Py_REFCNT(PyTuple_GET_ITEM(buffers, 1)) == 1
            and Py_REFCNT(PyTuple_GET_ITEM(buffers, 2)) == 1)


@cython.final
@cython.auto_pickle(False)
cdef class BatchBuilder:
    """Collects messages into :class:`~wsfast.batch.Batch` objects of at most
    ``max_bytes`` payload bytes each (a longer message alone in its own).

    :meth:`FrameParser.feed_batch` fills it as it parses; :meth:`append` adds a message
    by hand. :meth:`take` hands the batches out, oldest first. ``len(builder)`` counts
    the messages it holds and :attr:`nbytes` their payload bytes. A newline follows
    every payload in a batch's buffer (:attr:`~wsfast.batch.Batch.ndjson`).
    """

    cdef Py_ssize_t _max_bytes
    cdef object _sealed  # a deque of complete batches, oldest first
    cdef Py_ssize_t _sealed_count
    cdef Py_ssize_t _sealed_bytes
    # The batch being filled (None between batches): the payloads, each followed by a
    # newline (so the batch is NDJSON as it lies), the int64 offsets where each message
    # begins (offsets[0] is 0), one text flag per message. Each buffer is a bytearray at
    # least as large as its content, which grows as needed.
    cdef bytearray _data
    cdef bytearray _offsets
    cdef bytearray _flags
    cdef Py_ssize_t _count
    cdef Py_ssize_t _filled  # bytes of _data written: the payloads and their newlines
    cdef Py_ssize_t _texts
    cdef Py_ssize_t _size  # the length of every message so far, -1 once two differ
    cdef bint _newline  # a text payload holds a newline of its own
    # Where those buffers' memory is now, and how much of it there is: room for
    # _capacity payload bytes and for _slots messages.
    cdef unsigned char *_out
    cdef char *_ends
    cdef unsigned char *_text_flags
    cdef Py_ssize_t _capacity
    cdef Py_ssize_t _slots
    # The buffers of the last batches handed out, as (data, offsets, flags): a new
    # batch reuses those its consumer dropped. Fresh memory costs the kernel a page
    # fault per 4 KiB, more than copying the messages into it does.
    cdef list _spares
    cdef bint _busy  # a call (or a parser's feed_batch) is filling or taking (see _enter)

    def __cinit__(self):
        self._sealed = collections.deque()
        self._spares = []

    def __init__(self, max_bytes=DEFAULT_MAX_BYTES):
        self._max_bytes = _max_bytes_of(max_bytes)

    @property
    def max_bytes(self):
        """The payload bytes a batch holds at most; a change applies to batches begun later."""
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, value):
        self._max_bytes = _max_bytes_of(value)

    @property
    def nbytes(self):
        """The payload bytes of the messages held."""
        return self._sealed_bytes + self._filled - self._count

    def __len__(self):
        return self._sealed_count + self._count

    def append(self, message):
        """Add a message: ``str`` for text, any bytes-like object for binary."""
        payload = (<str>message).encode("utf-8") if isinstance(message, str) else _bytes_of(message)
        _enter(self, &self._busy)
        try:
            self._add_bytes(payload, isinstance(message, str))
        finally:
            _leave(self, &self._busy)

    def take(self, max_bytes=None):
        """The oldest batch held (the one being filled, once it is the only one), or None.

        With ``max_bytes`` (less than the batches were filled with, say) a larger batch
        is split first: what is returned holds at most that many payload bytes, or one
        message.
        """
        if max_bytes is not None:
            max_bytes = _max_bytes_of(max_bytes)
        _enter(self, &self._busy)
        try:
            return self._take(max_bytes)
        finally:
            _leave(self, &self._busy)

    cdef object _take(self, object max_bytes):
        if not self._sealed:
            if not self._count:
                return None
            self._seal()
        batch = self._sealed.popleft()
        if max_bytes is not None and batch.nbytes > max_bytes and len(batch) > 1:
            pieces = batch._split(max_bytes)
            batch = pieces[0]
            self._sealed.extendleft(reversed(pieces[1:]))
        self._sealed_count -= len(batch)
        self._sealed_bytes -= batch.nbytes
        return batch

    def __repr__(self):
        return f"<BatchBuilder {len(self)} messages, {self.nbytes} bytes>"

    cdef int _add_bytes(self, bytes payload, bint text) except -1:
        """Add a complete message whose payload is an object already (valid UTF-8 for
        text). One that alone fills a batch becomes its batch without a copy."""
        cdef Py_ssize_t length = PyBytes_GET_SIZE(payload)
        cdef unsigned char *dst
        if length >= self._max_bytes:
            if self._count:
                self._seal()
            self._sealed.append(Batch._adopt(payload, _offsets_pair(length), b"\x01" if text else b"\x00",
                                             1 if text else 0, length))
            self._sealed_count += 1
            self._sealed_bytes += length
            return 0
        dst = self._room(length, length)
        if length:
            memcpy(dst, PyBytes_AS_STRING(payload), length)
        self._commit(length, text)
        return 0

    cdef inline unsigned char *_room(self, Py_ssize_t length, Py_ssize_t hint) except NULL:
        """Where the next message's ``length`` payload bytes go (and the newline after
        them): into the batch being filled, sealed first when they would not fit in it.
        ``hint`` is how many bytes are likely to follow (what a read brought), to start a
        batch that large. max_bytes counts payload bytes, the newlines not."""
        cdef Py_ssize_t filled = self._filled
        if (length < self._capacity - filled and self._count < self._slots
                and (length <= self._max_bytes - (filled - self._count) or not self._count)):
            return self._out + filled  # the usual case: room in the batch being filled
        return self._make_room(length, hint)

    cdef unsigned char *_make_room(self, Py_ssize_t length, Py_ssize_t hint) except NULL:
        cdef Py_ssize_t need, size
        if self._count and length > self._max_bytes - (self._filled - self._count):
            self._seal()
        need = self._filled + length + 1
        if self._data is None:
            self._start(max(need, min(self._max_bytes, max(hint, <Py_ssize_t>BATCH_FIRST_ROOM))))
        size = PyByteArray_GET_SIZE(self._data)
        if need > size:
            # Doubling (within max_bytes and a newline per message so far, unless one
            # message needs more) keeps it linear.
            PyByteArray_Resize(self._data, max(need, min(2 * size, self._max_bytes + self._count + 1)))
        size = PyByteArray_GET_SIZE(self._offsets)
        if 8 * (self._count + 2) > size:
            PyByteArray_Resize(self._offsets, 2 * size)
        size = PyByteArray_GET_SIZE(self._flags)
        if self._count + 1 > size:
            PyByteArray_Resize(self._flags, 2 * size)
        self._out = <unsigned char *>PyByteArray_AS_STRING(self._data)
        self._capacity = PyByteArray_GET_SIZE(self._data)
        self._ends = <char *>PyByteArray_AS_STRING(self._offsets)
        self._text_flags = <unsigned char *>PyByteArray_AS_STRING(self._flags)
        self._slots = min(PyByteArray_GET_SIZE(self._offsets) // 8 - 1, PyByteArray_GET_SIZE(self._flags))
        return self._out + self._filled

    cdef int _start(self, Py_ssize_t capacity) except -1:
        """Begin a batch with room for ``capacity`` payload bytes: in the buffers of an
        earlier batch that nothing shows any more, else in new ones."""
        cdef Py_ssize_t i
        cdef tuple spare
        for i in range(len(self._spares)):
            spare = <tuple>self._spares[i]
            if _unseen(spare):
                del self._spares[i]
                self._data, self._offsets, self._flags = spare
                if PyByteArray_GET_SIZE(self._data) < capacity:
                    PyByteArray_Resize(self._data, capacity)
                break
        else:
            self._data = PyByteArray_FromStringAndSize(NULL, capacity)
            self._offsets = PyByteArray_FromStringAndSize(NULL, 8 * (capacity // BATCH_BYTES_PER_OFFSET + 2))
            self._flags = PyByteArray_FromStringAndSize(NULL, capacity // BATCH_BYTES_PER_OFFSET + 1)
        memset(PyByteArray_AS_STRING(self._offsets), 0, 8)
        return 0

    cdef inline void _commit(self, Py_ssize_t length, bint text) noexcept:
        """Count the message whose payload was just written where _room() said, and
        write the newline after it."""
        cdef int64_t end
        cdef unsigned char *payload = self._out + self._filled
        if self._count == 0:
            self._size = length
        elif self._size != length:
            self._size = -1
        if text and not self._newline and memchr(payload, b'\n', length) != NULL:
            self._newline = True  # its lines would not be messages: Batch.ndjson says so
        payload[length] = b'\n'
        self._filled += length + 1
        self._text_flags[self._count] = text
        self._count += 1
        end = self._filled
        memcpy(self._ends + 8 * self._count, &end, 8)
        self._texts += text

    cdef int _seal(self) except -1:
        """Close the batch being filled (which holds a message) and queue it."""
        cdef Py_ssize_t filled = self._filled
        cdef Py_ssize_t count = self._count
        # Buffers mostly empty are cut to size instead of being kept for reuse: a
        # small batch someone keeps must not hold on to a large buffer.
        cdef bint kept = PyByteArray_GET_SIZE(self._data) - filled <= max(filled, <Py_ssize_t>RECYCLE_SLACK)
        if not kept:
            PyByteArray_Resize(self._data, filled)
            PyByteArray_Resize(self._offsets, 8 * (count + 1))
            PyByteArray_Resize(self._flags, count)
        batch = Batch._adopt(memoryview(self._data)[:filled], memoryview(self._offsets)[:8 * (count + 1)],
                             memoryview(self._flags)[:count], self._texts, self._size, 1, self._newline)
        self._sealed.append(batch)
        self._sealed_count += count
        self._sealed_bytes += filled - count
        if kept:
            self._spares.append((self._data, self._offsets, self._flags))
            if len(self._spares) > SPARES_KEPT:
                del self._spares[0]
        self._data = self._offsets = self._flags = None
        self._count = self._filled = self._texts = self._size = 0
        self._newline = False
        self._out = self._text_flags = NULL
        self._ends = NULL
        self._capacity = self._slots = 0
        return 0


_NO_MEMORY = "not enough memory for the frames received"


cdef uint64_t _limit_of(object max_size) except? 0:
    """The longest payload ``max_size`` allows: None for no limit, else a number >= 0
    (a length is whole, so a fraction counts as its floor)."""
    if max_size is None:
        return NO_LIMIT
    if not max_size >= 0:  # NaN fails this too
        raise ValueError("max_size must be >= 0 or None")
    if max_size >= NO_LIMIT:
        return NO_LIMIT
    return max_size if type(max_size) is int else math.floor(max_size)


cdef object _protocol_error(BaseException exc):
    """The ProtocolError that a failure while parsing amounts to."""
    if isinstance(exc, UnicodeDecodeError):
        return InvalidUTF8(f"invalid UTF-8 in text message: {exc.reason}")
    if isinstance(exc, MemoryError):
        return PayloadTooBig(_NO_MEMORY)
    return exc


@cython.auto_pickle(False)  # its C state must never come from outside
@cython.embedsignature(False)  # Cython would show client as positional: the signature is written out
cdef class FrameParser:
    """FrameParser(*, client=True, max_size=DEFAULT_MAX_SIZE, allowed_rsv=0, inflater=None, text_as_bytes=False)
--

Streaming frame parser: feed it bytes in any chunking, get complete frames back.

    ``client=True`` parses what a server sends (frames must be unmasked); ``client=False``
    parses what a client sends (frames must be masked, and are unmasked here). A frame whose
    header announces more than ``max_size`` payload bytes (None for no limit) is rejected
    before its payload is buffered. ``allowed_rsv`` lists the reserved bits an extension
    negotiated (4 for RSV1). With an :class:`Inflater` of this codec as ``inflater``,
    :meth:`feed_messages` also inflates whole compressed messages. With ``text_as_bytes``,
    it delivers text messages as their payload ``bytes`` (checked as UTF-8) instead of
    ``str``. A violation raises :class:`ProtocolError` carrying the close code, with the
    frames completed before it in ``error.frames``; running out of memory raises
    :class:`PayloadTooBig`. The parser then stays failed, and every later ``feed`` raises
    the same kind of error with no frames.
    """

    cdef readonly bint client
    cdef readonly bint text_as_bytes
    cdef readonly object max_size
    cdef readonly object allowed_rsv
    cdef readonly Inflater inflater
    cdef uint64_t _limit
    cdef Py_ssize_t _inflate_limit  # what a whole compressed message may inflate to, plus one
    cdef unsigned _rsv_bits
    cdef int _masked  # 1 when frames must be masked: we parse a client's frames
    cdef bint _text_in_place  # a whole text message becomes a str straight from the buffer
    # Start of a frame whose header has not fully arrived.
    cdef unsigned char _head[WSFAST_MAX_HEADER]
    cdef Py_ssize_t _head_len
    # Frame whose header is known and whose payload is arriving: the payload goes
    # straight into the bytes object the frame will carry. That object grows with the
    # data (never past the announced length), so a header alone reserves no memory.
    cdef wsfast_header _header
    cdef PyObject *_payload  # owned; NULL when no payload is arriving
    cdef Py_ssize_t _filled
    cdef object _error
    # In feed_messages(): whole unfragmented messages are delivered as bytes or str.
    cdef bint _messages
    cdef readonly Py_ssize_t last_frame_count
    # In feed_batch(): whole messages go into this builder, until the call's first Frame.
    cdef BatchBuilder _batch
    cdef readonly Py_ssize_t last_batch_count
    # With an inflater: whole compressed messages are inflated here in this call, and a
    # fragmented message is open (it blocks that).
    cdef bint _inline
    cdef bint _open
    cdef bint _busy  # a call is parsing, or using the payload arriving (see _enter)

    def __init__(self, *, client=True, max_size=DEFAULT_MAX_SIZE, allowed_rsv=0, inflater=None,
                 text_as_bytes=False):
        _enter(self, &self._busy)  # __init__ called again drops the payload arriving
        try:
            self._init(client, max_size, allowed_rsv, inflater, text_as_bytes)
        finally:
            _leave(self, &self._busy)

    cdef int _init(self, client, max_size, allowed_rsv, inflater, text_as_bytes) except -1:
        cdef uint64_t limit = _limit_of(max_size)
        rsv = index(allowed_rsv)
        if not 0 <= rsv <= 7:
            raise ValueError("allowed_rsv must be within 0..7")
        if inflater is not None and not isinstance(inflater, Inflater):
            kind = f"{type(inflater).__module__}.{type(inflater).__qualname__}"
            raise TypeError(f"inflater must be a {__name__}.Inflater or None, not {kind}")
        self.client = client
        self.max_size = max_size
        self.allowed_rsv = rsv
        self.inflater = inflater
        self.text_as_bytes = text_as_bytes
        self._rsv_bits = rsv
        self._limit = limit
        self._inflate_limit = PY_SSIZE_T_MAX if limit >= <uint64_t>PY_SSIZE_T_MAX else <Py_ssize_t>limit + 1
        self._masked = not self.client
        self._text_in_place = not self._masked and not text_as_bytes
        self._reset()
        self._error = None
        return 0

    def __dealloc__(self):
        Py_CLEAR(self._payload)

    @property
    def buffered(self):
        """Bytes held for a frame that has not fully arrived."""
        if self._payload != NULL:
            return self._header.size + self._filled
        return self._head_len

    def feed(self, data):
        """Parse ``data`` (any bytes-like) and return the frames it completed, in order."""
        return self._feed(data, False, None)

    def payload_window(self):
        """A writable memoryview where the next bytes of a large payload now arriving
        will end up, or None.

        Reading from the network straight into it and then feeding what was read
        (``parser.feed(window[:n])``) saves copying those bytes: the parser finds them
        already in place. Feeding anything else works as usual. The window stops short
        of the payload's last byte, which comes with a later feed: once the window is
        dropped by then, the payload is delivered without a copy. A window still held
        costs copies instead (of the payload, when it grows or is delivered), and
        writing into it never reaches a delivered frame. None also when the memory
        cannot be had: the next ``feed`` then raises :class:`PayloadTooBig`.
        """
        _enter(self, &self._busy)
        try:
            return self._payload_window()
        finally:
            _leave(self, &self._busy)

    cdef object _payload_window(self):
        cdef Py_ssize_t length, capacity, end
        cdef _PayloadWindow window
        if self._payload == NULL or self._header.length < WINDOW_FROM:
            return None
        length = <Py_ssize_t>self._header.length
        # Room grows with the data received, so a header alone never reserves its length.
        capacity = min(length, max(2 * self._filled, self._filled + WINDOW_ROOM))
        if capacity > Py_SIZE(self._payload):
            try:
                self._grow(capacity)
            except MemoryError as exc:
                self._fail(exc, [])
                return None
        end = min(Py_SIZE(self._payload), length - 1)
        if end <= self._filled:
            return None
        window = _PayloadWindow.__new__(_PayloadWindow)
        window._payload = <object>self._payload
        window._start = _bytes_data(self._payload) + self._filled
        window._len = end - self._filled
        return memoryview(window)

    def partial_frame(self, start=0):
        """The frame whose payload is arriving, as a :class:`Frame` holding the payload
        bytes received so far from offset ``start`` on (unmasked); None while no payload
        is arriving (between frames, during a header, once failed).

        It lets a receiver check a frame before it is complete (text for UTF-8, say);
        passing as ``start`` how much it checked already keeps that linear.
        """
        start = index(start)
        if start < 0:
            raise ValueError("start must be >= 0")
        _enter(self, &self._busy)
        try:
            return self._partial_frame(start)
        finally:
            _leave(self, &self._busy)

    cdef object _partial_frame(self, object start):
        cdef Frame frame
        cdef Py_ssize_t begin
        if self._payload == NULL:
            return None
        begin = self._filled if start > self._filled else start
        frame = Frame.__new__(Frame)
        frame._opcode = self._header.opcode
        frame._bits = (self._header.fin << 3) | self._header.rsv
        frame._payload = PyBytes_FromStringAndSize(_bytes_data(self._payload) + begin, self._filled - begin)
        return frame

    def feed_messages(self, data):
        """Like :meth:`feed`, but deliver every complete message that came in one frame
        as its payload: ``bytes`` for binary, ``str`` for text (``bytes`` too with
        ``text_as_bytes``).

        With an ``inflater``, a compressed message in one frame (RSV1 alone) comes
        inflated too, its decompressed size limited by ``max_size``. Messages must be
        inflated in order, and the caller inflates what comes as frames: once a data
        frame came as a :class:`Frame`, the compressed messages after it in this call come
        as frames too, and so do those while a fragmented message is open.

        Everything else (control frames, fragments, frames with reserved bits set) comes
        as a :class:`Frame`; :attr:`last_frame_count` tells how many did. Text that is not
        valid UTF-8 raises :class:`InvalidUTF8` like any other violation.
        """
        return self._feed(data, True, None)

    def feed_batch(self, data, BatchBuilder batch not None):
        """Like :meth:`feed_messages`, but add the messages to ``batch`` (a
        :class:`BatchBuilder`) instead of returning them, each message's payload
        copied once, straight from ``data`` (unmasked on the way).

        Until the first :class:`Frame` of this call, which ends that fast path: that
        frame and everything after it come back as :meth:`feed_messages` returns them,
        in order, for the caller to handle (and to add the messages among them to the
        batch). The messages added before a violation stay in ``batch``;
        :attr:`last_batch_count` tells how many this call added.
        """
        return self._feed(data, True, batch)

    cdef list _feed(self, object data, bint messages, BatchBuilder batch):
        """Parse ``data`` with this parser (and ``batch``, if any) marked busy."""
        _enter(self, &self._busy)
        try:
            if batch is None:
                return self._feed_owned(data, messages, None)
            _enter(batch, &batch._busy)
            try:
                return self._feed_owned(data, messages, batch)
            finally:
                _leave(batch, &batch._busy)
        finally:
            _leave(self, &self._busy)

    cdef list _feed_owned(self, object data, bint messages, BatchBuilder batch):
        cdef Py_buffer view
        if self._error is not None:
            self._raise_again()
        _get_bytes(data, &view)  # a bad argument changes nothing
        try:
            return self._feed_bytes(<const unsigned char *>view.buf, view.len, messages, batch)
        finally:
            PyBuffer_Release(&view)

    cdef list _feed_messages_at(self, const unsigned char *buf, Py_ssize_t n):
        """feed_messages() of the ``n`` bytes at ``buf``, which the caller keeps alive:
        for the compiled asyncio connection, which reads into a buffer of its own."""
        _enter(self, &self._busy)
        try:
            if self._error is not None:
                self._raise_again()
            return self._feed_bytes(buf, n, True, None)
        finally:
            _leave(self, &self._busy)

    cdef list _feed_bytes(self, const unsigned char *buf, Py_ssize_t n, bint messages, BatchBuilder batch):
        cdef list frames = []
        self._messages = messages
        self._inline = messages and self.inflater is not None and not self._open
        self._batch = batch
        self.last_frame_count = 0
        self.last_batch_count = 0
        try:
            if n:  # an empty buffer may have no memory at all
                self._parse(buf, n, frames)
        except (ProtocolError, UnicodeDecodeError, MemoryError) as exc:
            raise self._fail(exc, frames) from None
        except BaseException:
            # Interrupted (KeyboardInterrupt, ...): what was parsed so far is lost.
            self._fail(ProtocolError("parsing was interrupted", 1011), frames)
            raise
        finally:
            self._batch = None
        return frames

    cdef object _fail(self, BaseException exc, list frames):
        """Fail the parser for good with the ProtocolError ``exc`` amounts to; return it."""
        error = _protocol_error(exc)
        error.frames = frames
        self._error = error
        self._reset()
        return error

    cdef void _reset(self):
        self._head_len = 0
        self._filled = 0
        Py_CLEAR(self._payload)

    cdef int _raise_again(self) except -1:
        """Raise for a parser that already failed: the same kind of error, no frames."""
        error = self._error
        again = type(error)(str(error), error.code)
        again.frames = []
        raise again

    cdef int _parse(self, const unsigned char *buf, Py_ssize_t n, list frames) except -1:
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t used
        cdef wsfast_header h
        cdef wsfast_header_status status
        if self._payload != NULL:
            pos = self._fill(buf, n, frames)
            if self._payload != NULL:
                return 0
        if self._head_len:
            used = min(n - pos, WSFAST_MAX_HEADER - self._head_len)
            memcpy(&self._head[self._head_len], buf + pos, used)
            status = wsfast_parse_header(self._head, self._head_len + used, self._rsv_bits,
                                         self._masked, self._limit, &h)
            if status == WSFAST_HEADER_INCOMPLETE:
                self._head_len += used
                return 0
            if status != WSFAST_HEADER_OK:
                self._raise(status, &h)
            pos += h.size - self._head_len
            self._head_len = 0
            pos += self._start_payload(&h, buf + pos, n - pos, frames)
        while pos < n:
            if self._batch is not None:
                pos = self._batch_run(buf, pos, n)
                if pos == n:
                    break
            status = wsfast_parse_header(buf + pos, n - pos, self._rsv_bits, self._masked,
                                         self._limit, &h)
            if status == WSFAST_HEADER_INCOMPLETE:
                # Fewer than WSFAST_MAX_HEADER bytes are left: they fit in _head.
                memcpy(self._head, buf + pos, n - pos)
                self._head_len = n - pos
                return 0
            if status != WSFAST_HEADER_OK:
                self._raise(status, &h)
            pos += h.size
            pos += self._start_payload(&h, buf + pos, n - pos, frames)
        return 0

    cdef Py_ssize_t _batch_run(self, const unsigned char *buf, Py_ssize_t pos, Py_ssize_t n) except -1:
        """Add the whole single-frame messages from ``pos`` on straight to the batch, as
        long as their headers are short (7 or 16-bit lengths): feed_batch's hot loop,
        which reads those headers itself. Return where it stopped: at the end, or at a
        frame for the general path (another kind, incomplete, or one to reject)."""
        cdef BatchBuilder batch = self._batch
        cdef unsigned char mask_bit = 0x80 if self._masked else 0
        cdef unsigned char first
        cdef Py_ssize_t length, start
        cdef const unsigned char *key
        cdef unsigned char *dst
        while n - pos >= 2:
            first = buf[pos]
            # 0x82 and 0x81: FIN, no reserved bits, binary or text.
            if (first != 0x82 and first != 0x81) or buf[pos + 1] & 0x80 != mask_bit:
                break
            length = buf[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            elif length == 127:
                break
            if <uint64_t>length > self._limit:
                break
            key = buf + start
            if mask_bit:
                start += 4
            if n - start < length:
                break
            dst = batch._room(length, n - start)
            if mask_bit:
                wsfast_mask(dst, buf + start, length, key, 0)
            else:
                memcpy(dst, buf + start, length)
            if first == 0x81:
                _check_utf8(dst, length)
            batch._commit(length, first == 0x81)
            self.last_batch_count += 1
            pos = start + length
        return pos

    cdef Py_ssize_t _start_payload(self, const wsfast_header *h, const unsigned char *src,
                                   Py_ssize_t avail, list frames) except -1:
        """Deliver the frame of header ``h`` if its payload is all in ``src``, else
        start collecting it; return the bytes of ``src`` used."""
        cdef bytes payload
        cdef Py_ssize_t length
        if h.length > <uint64_t>PY_SSIZE_T_MAX:
            raise PayloadTooBig(f"frame of {h.length} bytes exceeds the addressable memory")
        length = <Py_ssize_t>h.length
        if avail >= length:
            if self._batch is not None and self._is_message(h):
                self._copy_to_batch(h, src, length, avail)
                return length
            if self._inflates(h):
                message = self._inflate_masked(h, src, length) if self._masked else self._inflated(h, src, length)
                if message is not None:
                    frames.append(message)
                return length
            if h.opcode == 1 and self._text_in_place and self._is_message(h):
                frames.append(_decode_utf8(<const char *>src, length, NULL))  # no bytes in between
                return length
            if self._masked:
                payload = PyBytes_FromStringAndSize(NULL, length)
                wsfast_mask(<unsigned char *>PyBytes_AS_STRING(payload), src, length, h.key, 0)
            else:
                payload = PyBytes_FromStringAndSize(<const char *>src, length)
            self._deliver(h, payload, frames)
            return length
        self._payload = _new_bytes(NULL, min(length, max(2 * avail, FIRST_CAPACITY)))
        if self._payload == NULL:
            return -1
        self._header = h[0]
        self._filled = 0
        return self._fill(src, avail, frames)

    cdef Py_ssize_t _fill(self, const unsigned char *src, Py_ssize_t avail, list frames) except -1:
        """Copy (unmasking) up to ``avail`` bytes into the payload being collected,
        deliver the frame once complete; return the bytes used."""
        cdef Py_ssize_t length = <Py_ssize_t>self._header.length
        cdef Py_ssize_t take = min(length - self._filled, avail)
        cdef Py_ssize_t filled = self._filled + take
        cdef unsigned char *dst
        cdef bytes copy
        if filled > Py_SIZE(self._payload):
            # Doubling keeps the copies linear in the payload size.
            self._grow(min(length, max(filled, 2 * Py_SIZE(self._payload))))
        dst = <unsigned char *>_bytes_data(self._payload) + self._filled
        if take:
            if src != dst and src < dst + take and dst < src + take:
                # Part of an earlier payload window fed again: copy it out first.
                copy = PyBytes_FromStringAndSize(<const char *>src, take)
                src = <const unsigned char *>PyBytes_AS_STRING(copy)
            if self._masked:
                wsfast_mask(dst, src, take, self._header.key, self._filled)  # in place when src is dst
            elif src != dst:  # else the bytes were read into a payload_window(): already there
                memcpy(dst, src, take)
        self._filled = filled
        if filled == length:
            self._deliver(&self._header, self._take_payload(), frames)
        return take

    cdef bytes _take_payload(self):
        """The payload just completed, for delivery: the object itself, or a copy of it
        when a payload_window() still shows it."""
        cdef bytes payload
        if Py_REFCNT(self._payload) == 1:
            payload = <bytes>self._payload
        else:
            payload = PyBytes_FromStringAndSize(_bytes_data(self._payload), self._filled)
        Py_CLEAR(self._payload)
        return payload

    cdef int _grow(self, Py_ssize_t size) except -1:
        """Resize the payload being collected to ``size`` bytes; if that fails, the
        payload is gone (and the parser must fail)."""
        cdef PyObject *moved
        if Py_REFCNT(self._payload) == 1:
            return _PyBytes_Resize(&self._payload, size)
        # A payload_window() shows this memory: leave it to the window, move to a copy.
        moved = _new_bytes(NULL, size)
        if moved == NULL:
            return -1
        memcpy(_bytes_data(moved), _bytes_data(self._payload), self._filled)
        Py_CLEAR(self._payload)
        self._payload = moved
        return 0

    cdef inline bint _is_message(self, const wsfast_header *h) noexcept:
        """True when feed_messages() delivers this frame's payload as a message."""
        return self._messages and h.fin and h.rsv == 0 and (h.opcode == 2 or h.opcode == 1)

    cdef inline bint _inflates(self, const wsfast_header *h) noexcept:
        """True when feed_messages() delivers this frame's payload inflated, as a message."""
        return self._inline and h.fin and h.rsv == RSV1 and (h.opcode == 2 or h.opcode == 1)

    cdef object _inflated(self, const wsfast_header *h, const unsigned char *payload, Py_ssize_t length):
        """The message of a compressed frame: str for text, else bytes; None once added
        to the batch instead."""
        if self._batch is not None:
            self._add_to_batch(h, self.inflater._to_bytes(payload, length, True, self._inflate_limit))
            return None
        if h.opcode == 1 and not self.text_as_bytes:
            return self.inflater._to_text(payload, length, self._inflate_limit)
        message = self.inflater._to_bytes(payload, length, True, self._inflate_limit)
        if h.opcode == 1:
            _check_utf8(<const unsigned char *>PyBytes_AS_STRING(message), PyBytes_GET_SIZE(message))
        return message

    cdef object _inflate_masked(self, const wsfast_header *h, const unsigned char *src, Py_ssize_t length):
        """Like _inflated, for a payload still masked: unmasked into scratch memory first."""
        cdef unsigned char small[UNMASK_ON_STACK]
        cdef bytes large
        cdef unsigned char *unmasked = small
        if length > UNMASK_ON_STACK:
            large = PyBytes_FromStringAndSize(NULL, length)
            unmasked = <unsigned char *>PyBytes_AS_STRING(large)
        wsfast_mask(unmasked, src, length, h.key, 0)
        return self._inflated(h, unmasked, length)

    cdef inline int _copy_to_batch(self, const wsfast_header *h, const unsigned char *src, Py_ssize_t length,
                                   Py_ssize_t avail) except -1:
        """Add the message of a whole frame at ``src`` to the batch: copied (unmasked)
        straight into the batch's buffer, then checked there when it is text."""
        cdef BatchBuilder batch = self._batch
        cdef unsigned char *dst = batch._room(length, avail)
        if self._masked:
            wsfast_mask(dst, src, length, h.key, 0)
        elif length:
            memcpy(dst, src, length)
        if h.opcode == 1:
            _check_utf8(dst, length)
        batch._commit(length, h.opcode == 1)
        self.last_batch_count += 1
        return 0

    cdef int _add_to_batch(self, const wsfast_header *h, bytes payload) except -1:
        """Add a message whose payload is an object already (it arrived in pieces, or
        was inflated) to the batch."""
        if h.opcode == 1:
            _check_utf8(<const unsigned char *>PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload))
        self._batch._add_bytes(payload, h.opcode == 1)
        self.last_batch_count += 1
        return 0

    cdef inline int _deliver(self, const wsfast_header *h, bytes payload, list frames) except -1:
        if self._inflates(h):
            message = self._inflated(h, <const unsigned char *>PyBytes_AS_STRING(payload), len(payload))
            if message is not None:
                frames.append(message)
            return 0
        if self._is_message(h):
            if self._batch is not None:
                return self._add_to_batch(h, payload)
            if h.opcode == 1 and not self.text_as_bytes:
                frames.append(_decode_utf8(PyBytes_AS_STRING(payload), len(payload), NULL))
                return 0
            if h.opcode == 1:
                _check_utf8(<const unsigned char *>PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload))
            frames.append(payload)
            return 0
        self.last_frame_count += 1
        self._batch = None  # the caller handles this frame, and so everything after it
        if h.opcode < 8 and self.inflater is not None:
            # The caller inflates after this call what this data frame needs; to keep
            # the compressed messages in order, none after it is inflated here.
            self._inline = False
            self._open = not h.fin and (h.opcode != 0 or self._open)
        return _append_frame(frames, h, payload)

    cdef int _raise(self, wsfast_header_status status, const wsfast_header *h) except -1:
        if status == WSFAST_BAD_RSV:
            raise ProtocolError("reserved bits set without a negotiated extension")
        if status == WSFAST_BAD_OPCODE:
            raise ProtocolError(f"unknown opcode {h.opcode:#x}")
        if status == WSFAST_FRAGMENTED_CONTROL:
            raise ProtocolError("fragmented control frame")
        if status == WSFAST_LONG_CONTROL:
            raise ProtocolError("control frame payload longer than 125 bytes")
        if status == WSFAST_BAD_MASK:
            raise ProtocolError("masked frame from server" if self.client else "unmasked frame from client")
        if status == WSFAST_LENGTH_MSB:
            raise ProtocolError("payload length has its most significant bit set")
        raise PayloadTooBig(f"frame of {h.length} bytes exceeds max_size of {self.max_size}")


cdef extern from "mask.h":
    const char *wsfast_mask_kernel_name()


def mask_kernel():
    """The masking kernel chosen for this CPU at import: "avx2", "sse2", "neon" or "generic"."""
    return wsfast_mask_kernel_name().decode("ascii")


include "receiver.pxi"
include "fast_paths.pxi"
include "stream_core.pxi"
include "tls_core.pxi"
include "blocking_core.pxi"
