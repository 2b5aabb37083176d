"""The pure-Python frame codec: same API and behaviour as the compiled ``wsfast._compiled``.

Used when the extension is missing or ``WSFAST_NO_EXTENSIONS=1`` is set. Written for
CPython speed: masking runs in C loops of ``int`` and ``bytes`` methods, the parser
looks frame headers up in tables, and nothing loops over single payload bytes.
"""

from __future__ import annotations

import collections
import functools
import math
import operator
import sys
import zlib
from array import array
from itertools import pairwise
from operator import index
from struct import Struct
from typing import TYPE_CHECKING, overload

from ._backlog import Backlog
from ._blocking_core import BlockingCore
from ._receiver import BlockingReceiver, Receiver
from ._stream_core import StreamCore
from ._tls_core import TLSCore
from .batch import DEFAULT_MAX_BYTES, Batch
from .enums import Opcode
from .exceptions import InvalidUTF8, PayloadTooBig, ProtocolError

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Literal, NoReturn, SupportsIndex

    from typing_extensions import Buffer

    # A frame's first byte looked up: (opcode, fin, bits, message, compressed).
    _Head = tuple[int, bool, int, bool, bool]

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

_CONTROL_MAX = 125
_KNOWN_OPCODES = frozenset(Opcode)
_OPCODE_NAMES = {op.value: op.name for op in Opcode}


def _opcode_of(value: SupportsIndex) -> int:
    """``value`` as a frame opcode: an integer within 0..15 (four bits on the wire)."""
    value = index(value)
    if not 0 <= value <= 15:
        raise ValueError(f"opcode must be within 0..15, not {value}")
    return value


def _bytes_of(value: Buffer) -> bytes:
    """The bytes of ``value``, any object with the buffer protocol (C order)."""
    return value if type(value) is bytes else bytes(memoryview(value))


_FIN, _RSV1, _RSV2, _RSV3 = 8, 4, 2, 1


def _with_bit(bits: int, bit: int, on: object) -> int:
    return (bits | bit) if on else (bits & ~bit)


class Frame:
    """One WebSocket frame. ``payload`` is always ``bytes`` (already unmasked).

    ``opcode`` is an integer within 0..15; ``payload`` takes any bytes-like object and
    keeps its bytes. ``len(frame)`` is the payload size and ``frame[i]`` indexes its bytes.
    """

    # FIN, RSV1, RSV2, RSV3 as the bits 8, 4, 2, 1 of _bits, as in the compiled twin.
    __slots__ = ("_bits", "_opcode", "_payload")

    def __init__(
        self,
        opcode: int,
        payload: Buffer = b"",
        fin: bool = True,
        rsv1: bool = False,
        rsv2: bool = False,
        rsv3: bool = False,
    ) -> None:
        self._opcode = _opcode_of(opcode)
        self._payload = _bytes_of(payload)
        self._bits = (_FIN if fin else 0) | (_RSV1 if rsv1 else 0) | (_RSV2 if rsv2 else 0) | (_RSV3 if rsv3 else 0)

    @property
    def opcode(self) -> int:
        """The frame's opcode (1 text, 2 binary, 0 continuation, 8 close, 9 ping, 10 pong)."""
        return self._opcode

    @opcode.setter
    def opcode(self, value: int) -> None:
        self._opcode = _opcode_of(value)

    @property
    def payload(self) -> bytes:
        """The payload, unmasked."""
        return self._payload

    @payload.setter
    def payload(self, value: Buffer) -> None:
        self._payload = _bytes_of(value)

    @property
    def fin(self) -> bool:
        """True on the last frame of a message."""
        return self._bits & _FIN != 0

    @fin.setter
    def fin(self, value: bool) -> None:
        self._bits = _with_bit(self._bits, _FIN, value)

    @property
    def rsv1(self) -> bool:
        """The first reserved bit (per-message compression uses it)."""
        return self._bits & _RSV1 != 0

    @rsv1.setter
    def rsv1(self, value: bool) -> None:
        self._bits = _with_bit(self._bits, _RSV1, value)

    @property
    def rsv2(self) -> bool:
        """The second reserved bit."""
        return self._bits & _RSV2 != 0

    @rsv2.setter
    def rsv2(self, value: bool) -> None:
        self._bits = _with_bit(self._bits, _RSV2, value)

    @property
    def rsv3(self) -> bool:
        """The third reserved bit."""
        return self._bits & _RSV3 != 0

    @rsv3.setter
    def rsv3(self, value: bool) -> None:
        self._bits = _with_bit(self._bits, _RSV3, value)

    @property
    def is_control(self) -> bool:
        """True for close, ping and pong frames."""
        return self._opcode >= 8

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8; for a close frame, the reason after the code."""
        if self._opcode == Opcode.CLOSE:
            return self._payload[2:].decode()
        return self._payload.decode()

    @property
    def close_code(self) -> int | None:
        """A close frame's status code (1005 when it carries none); None for other frames."""
        if self._opcode != Opcode.CLOSE:
            return None
        if len(self._payload) < 2:
            return 1005
        return int.from_bytes(self._payload[:2], "big")

    def __len__(self) -> int:
        return len(self._payload)

    @overload
    def __getitem__(self, item: int) -> int: ...
    @overload
    def __getitem__(self, item: slice) -> bytes: ...
    def __getitem__(self, item: int | slice) -> int | bytes:
        return self._payload[item]

    def __eq__(self, other: object) -> bool:
        # Compares public attributes only, so frames of both codec twins compare equal.
        try:
            same: bool = (
                self.opcode == other.opcode  # type: ignore[attr-defined]
                and self.payload == other.payload  # type: ignore[attr-defined]
                and self.fin == other.fin  # type: ignore[attr-defined]
                and self.rsv1 == other.rsv1  # type: ignore[attr-defined]
                and self.rsv2 == other.rsv2  # type: ignore[attr-defined]
                and self.rsv3 == other.rsv3  # type: ignore[attr-defined]
            )
        except AttributeError:
            return NotImplemented
        return same

    def __hash__(self) -> int:
        return hash((self.opcode, self.fin, self.rsv1, self.rsv2, self.rsv3, self._payload))

    def __repr__(self) -> str:
        name = _OPCODE_NAMES.get(self._opcode, str(self._opcode))
        flags = "".join(f" rsv{i}" for i, bit in enumerate((self.rsv1, self.rsv2, self.rsv3), 1) if bit)
        payload = self._payload if len(self._payload) <= 32 else self._payload[:32] + b"..."
        return f"<Frame {name} fin={self.fin}{flags} {len(self._payload)} bytes {payload!r}>"


# --- masking ---------------------------------------------------------------------------

# _XOR_TABLES[k] is the bytes.translate() table that XORs every byte with k.
_IDENTITY = int.from_bytes(bytes(range(256)), "big")
_XOR_TABLES = [(_IDENTITY ^ int.from_bytes(bytes((k,)) * 256, "big")).to_bytes(256, "big") for k in range(256)]
del _IDENTITY

# Below this size one big-integer XOR beats four strided translates; above it the
# integer conversions cost more per byte than translate does.
_TRANSLATE_FROM = 512
# Larger data is translated in blocks of this size (a multiple of 4, so each block starts
# at key[0]): the temporaries stay small and in cache instead of costing fresh memory.
_BLOCK = 64 * 1024


def _check_key(key: Buffer) -> bytes:
    if type(key) is not bytes:
        key = bytes(memoryview(key))
    if len(key) != 4:
        raise ValueError(f"mask key must be 4 bytes, not {len(key)}")
    return key


def _flat(data: Buffer) -> bytes | memoryview:
    """The bytes of ``data``, any object with the buffer protocol, in C order: a flat
    view of them for a C-contiguous buffer of any shape, else a copy."""
    view = memoryview(data)
    if not view.c_contiguous or not view.nbytes:  # no view with a zero in its shape casts
        return view.tobytes()
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    return view


def _xor_int(data: bytes | memoryview, key: bytes) -> bytes:
    """XOR ``data`` with ``key`` repeated, as one big-integer operation: fastest for small data."""
    n = len(data)
    stream = (key * ((n >> 2) + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def _xor_lanes(data: bytes | memoryview, key: bytes) -> bytearray:
    """XOR ``data`` with ``key`` repeated, one key byte at a time: fastest for large data.

    Byte i is XOR-ed with key[i % 4], so each of the four strided lanes goes through
    ``bytes.translate`` with the table of its key byte.
    """
    out = bytearray(data)
    tables = _XOR_TABLES
    out[0::4] = out[0::4].translate(tables[key[0]])
    out[1::4] = out[1::4].translate(tables[key[1]])
    out[2::4] = out[2::4].translate(tables[key[2]])
    out[3::4] = out[3::4].translate(tables[key[3]])
    return out


def _xor(data: bytes | memoryview, key: bytes) -> bytes:
    """XOR ``data`` with ``key`` repeated, by whichever way is faster for its size."""
    n = len(data)
    if n < _TRANSLATE_FROM:
        return _xor_int(data, key)
    view = memoryview(data)
    return b"".join([_xor_lanes(view[i : i + _BLOCK], key) for i in range(0, n, _BLOCK)])


def mask(data: Buffer, key: Buffer) -> bytes:
    """Return ``data`` XOR-ed with the 4-byte ``key`` (masking and unmasking are the same)."""
    key = _check_key(key)
    if type(data) is not bytes:
        data = _flat(data)
    return _xor(data, key)


def mask_inplace(buffer: Buffer, key: Buffer) -> None:
    """XOR a writable buffer (bytearray, memoryview, ...) with the 4-byte ``key`` in place.

    Its bytes are taken in C order, as :func:`mask` takes them, whatever its layout.
    """
    view = memoryview(buffer)
    if view.readonly:
        raise TypeError("mask_inplace needs a writable buffer")
    key = _check_key(key)
    if not view.nbytes:
        return
    if not view.c_contiguous:
        _scatter(buffer, _xor(view.tobytes(), key))
        return
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    n = len(view)
    if n < _TRANSLATE_FROM:
        view[:] = _xor_int(view, key)
        return
    # Masking a copy and writing it back beats strided writes into a memoryview.
    for i in range(0, n, _BLOCK):
        block = view[i : i + _BLOCK]
        block[:] = _xor_lanes(block, key)


def _scatter(buffer: Buffer, data: bytes) -> None:
    """Write ``data`` (bytes in C order) into ``buffer``, writable but not C-contiguous.

    A memoryview writes such a buffer only item by item, converting values (which
    changes bools and NaNs); CPython's own buffer API copies the bytes as they are.
    """
    _buffer_writer()(buffer, data)


@functools.cache
def _buffer_writer() -> Callable[[Buffer, bytes], None]:
    """``write(buffer, data)`` over CPython's buffer API, through ctypes (imported only
    for this; with functions of its own, so that ``ctypes.pythonapi``'s keep their
    settings)."""
    import ctypes

    class PyBuffer(ctypes.Structure):
        _fields_ = [
            ("buf", ctypes.c_void_p),
            ("obj", ctypes.c_void_p),
            ("len", ctypes.c_ssize_t),
            ("itemsize", ctypes.c_ssize_t),
            ("readonly", ctypes.c_int),
            ("ndim", ctypes.c_int),
            ("format", ctypes.c_char_p),
            ("shape", ctypes.c_void_p),
            ("strides", ctypes.c_void_p),
            ("suboffsets", ctypes.c_void_p),
            ("internal", ctypes.c_void_p),
        ]

    view_pointer = ctypes.POINTER(PyBuffer)
    get_buffer = ctypes.pythonapi["PyObject_GetBuffer"]
    get_buffer.argtypes = [ctypes.py_object, view_pointer, ctypes.c_int]
    from_contiguous = ctypes.pythonapi["PyBuffer_FromContiguous"]
    from_contiguous.argtypes = [view_pointer, ctypes.c_char_p, ctypes.c_ssize_t, ctypes.c_char]
    release = ctypes.pythonapi["PyBuffer_Release"]
    release.argtypes = [view_pointer]
    release.restype = None
    writable_any_layout = 0x011D  # PyBUF_INDIRECT | PyBUF_FORMAT | PyBUF_WRITABLE

    def write(buffer: Buffer, data: bytes) -> None:
        view = PyBuffer()
        get_buffer(buffer, ctypes.byref(view), writable_any_layout)
        try:
            from_contiguous(ctypes.byref(view), data, len(data), b"C")
        finally:
            release(ctypes.byref(view))

    return write


# --- encoding --------------------------------------------------------------------------

_HEADER_7 = Struct("!BB").pack
_HEADER_16 = Struct("!BBH").pack
_HEADER_64 = Struct("!BBQ").pack


def encode_frame(
    opcode: int, payload: Buffer = b"", *, fin: bool = True, rsv: int = 0, mask_key: Buffer | None = None
) -> bytes:
    """Return the wire bytes of one frame.

    ``rsv`` holds the three reserved bits as a number: 4 is RSV1, 2 is RSV2, 1 is RSV3.
    With ``mask_key`` (4 bytes) the frame is masked, as a client must; the length uses the
    shortest of the 7, 16 and 64-bit encodings.
    """
    opcode = int(index(opcode))
    if opcode not in _KNOWN_OPCODES:
        raise ValueError(f"unknown opcode {opcode:#x}")
    rsv = index(rsv)
    if not 0 <= rsv <= 7:
        raise ValueError(f"rsv must be within 0..7, not {rsv}")
    if type(payload) is not bytes:
        if isinstance(payload, str):
            raise TypeError("payload must be bytes-like, not str")
        payload = _flat(payload)
    n = len(payload)
    if opcode >= 8:
        if n > _CONTROL_MAX:
            raise ValueError(f"control frame payload is {n} bytes; at most 125 allowed")
        if not fin:
            raise ValueError("control frames cannot be fragmented")
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    masked = 0x80 if mask_key is not None else 0
    if n < 126:
        header = _HEADER_7(first, masked | n)
    elif n < 65536:
        header = _HEADER_16(first, masked | 126, n)
    else:
        header = _HEADER_64(first, masked | 127, n)
    if mask_key is None:
        return header + payload
    key = _check_key(mask_key)
    return header + key + _xor(payload, key)


# --- inflating (permessage-deflate, RFC 7692) ------------------------------------------

# A compressed message is DEFLATE data that was flushed with an empty stored block
# ending in these four bytes; the sender strips them and the receiver puts them back.
_TRAILER = b"\x00\x00\xff\xff"

# Below this size, adding the trailer with one copy is cheaper than a second zlib call.
_COPY_TRAILER_BELOW = 4096

# Input step after a peer ends a DEFLATE stream inside a message (see _after_stream_end).
_STEP_AFTER_STREAM_END = 1024

_TOO_BIG = "message exceeds the size limit once decompressed"


def _output_limit(max_size: SupportsIndex | None) -> int:
    """How many bytes inflating may produce for a budget of ``max_size`` bytes (None: no
    limit), as zlib's ``max_length`` (0: no limit): producing one byte more than allowed
    proves the excess."""
    if max_size is None:
        return 0
    max_size = index(max_size)
    return 0 if max_size >= sys.maxsize else max(max_size, 0) + 1


def _zlib_reason(exc: zlib.error) -> str:
    """zlib's own words in the module's "Error -3 while decompressing data: <reason>"."""
    message = str(exc)
    return message.partition(": ")[2] or message


class Inflater:
    """Decompresses the messages of one direction of a permessage-deflate connection
    (RFC 7692): raw DEFLATE data with a window of ``2**window_bits`` bytes (8..15).

    Call :meth:`inflate` for every frame of each compressed message, in order: with
    context takeover a message may refer to the ones before it. ``no_context_takeover``
    starts every message afresh, as the peer then promised. Errors are fatal for the
    connection: fail it with the exception's ``code``.
    """

    __slots__ = ("_decompressor", "_unflushed", "no_context_takeover", "window_bits")

    def __init__(self, window_bits: int = 15, *, no_context_takeover: bool = False) -> None:
        if type(window_bits) is not int or not 8 <= window_bits <= 15:
            raise ValueError(f"window_bits must be an int within 8..15, not {window_bits!r}")
        self.window_bits = window_bits
        self.no_context_takeover = bool(no_context_takeover)
        self._decompressor = zlib.decompressobj(-window_bits)
        self._unflushed = False  # the current stream got data that only the trailer completes

    def inflate(self, payload: Buffer, fin: bool = True, max_size: int | None = None) -> bytes:
        """Decompress the payload (any bytes-like) of one frame of a compressed message.

        ``fin`` tells that the frame ends the message. ``max_size`` is how many bytes this
        frame may still add to the message (None: no limit). Raises :class:`PayloadTooBig`
        (1009) as soon as it would add more, having produced at most one byte more; and
        :class:`ProtocolError` with code 1007 when the data is not valid DEFLATE.
        """
        data = _flat(payload)
        limit = _output_limit(max_size)
        try:
            if fin and 0 < len(data) < _COPY_TRAILER_BELOW:
                out = self._inflate(bytes(data) + _TRAILER, limit, True)
            else:
                out = self._inflate(data, limit, False) if data else b""
                # The trailer completes the stored block a sender's flush began. Without
                # data since the last stream end (an empty message, or one ending with a
                # BFINAL block) there is none: a bare trailer would garble the next message.
                if fin and self._unflushed:
                    rest = self._inflate(_TRAILER, limit - len(out) if limit else 0, True)
                    if rest:
                        out += rest
        except zlib.error as exc:
            raise ProtocolError(f"invalid compressed data: {_zlib_reason(exc)}", 1007) from None
        if fin:
            self._unflushed = False
            if self.no_context_takeover:
                self._decompressor = zlib.decompressobj(-self.window_bits)
        return out

    def _inflate(self, data: bytes | memoryview, limit: int, trailer: bool) -> bytes:
        """Inflate ``data``, producing at most ``limit`` bytes (0: no limit).

        ``trailer`` tells that ``data`` ends with the 4-byte trailer the receiver appends.
        """
        decompressor = self._decompressor
        out = decompressor.decompress(data, limit)
        if limit and len(out) == limit:
            raise PayloadTooBig(_TOO_BIG)
        self._unflushed = True
        if decompressor.eof:
            return self._after_stream_end(data, out, limit, trailer)
        return out

    def _after_stream_end(self, data: bytes | memoryview, out: bytes, limit: int, trailer: bool) -> bytes:
        """Go on inflating ``data`` after the peer ended its DEFLATE stream with a BFINAL block.

        RFC 7692 §7.2.3.4 allows it. What follows starts a new stream, which cannot refer
        to the old one. It is fed in small steps, because each further stream end copies
        what is left of its step: whole-buffer steps would make many ends quadratic.
        """
        end = len(data)
        pos = end
        pieces = [out]
        while True:
            if self._decompressor.eof:
                pos -= len(self._decompressor.unused_data)
                self._decompressor = zlib.decompressobj(-self.window_bits)
                if pos == end or (trailer and pos == end - 4):
                    self._unflushed = False  # the trailer would start a stream of its own
                    break
            elif pos == end:
                break
            if limit:
                limit -= len(pieces[-1])
            chunk = memoryview(data)[pos : pos + _STEP_AFTER_STREAM_END]
            out = self._decompressor.decompress(chunk, limit)
            if limit and len(out) == limit:
                raise PayloadTooBig(_TOO_BIG)
            pieces.append(out)
            pos += len(chunk)
        return b"".join(pieces)


# --- batches -------------------------------------------------------------------------


def _max_bytes_of(value: SupportsIndex) -> int:
    value = index(value)
    if value < 1:
        raise ValueError(f"max_bytes must be >= 1, not {value}")
    return value


def _pack_lines(buffer: Buffer, bounds: Buffer) -> tuple[bytes, bytes]:
    """The payloads of a batch whose ``buffer`` holds each one followed by a newline, back
    to back, and their int64 offsets: ``(data, offsets)``, two ``bytes``. ``bounds`` are
    the int64 positions (raw native bytes or an int64 buffer) where each message begins
    in ``buffer``, and where it ends; the byte before each is a newline, as a builder
    writes it. The compiled twin's gives the same. ValueError if the bounds do not fit
    the buffer (a byte at least per message)."""
    view = memoryview(buffer).cast("B")
    raw = memoryview(bounds).cast("B")
    count = len(raw) // 8 - 1
    if len(raw) % 8 or count < 0 or len(view) < count:
        raise ValueError("bounds must be whole int64 values, one more than the messages")
    ends = raw.cast("q")
    if ends[0] != 0 or ends[count] != len(view):
        raise ValueError(f"bounds must run from 0 to len(buffer) ({len(view)})")
    if any(map(operator.ge, ends, ends[1:])):
        raise ValueError("bounds must rise by at least one (a newline) per message")
    whole = view.tobytes()
    if whole.count(b"\n") == count:  # the newlines after the payloads only: drop them at C speed
        data = whole.replace(b"\n", b"")
    else:
        data = b"".join([whole[start : end - 1] for start, end in pairwise(ends)])
    offsets = array("q", map(operator.sub, ends, range(count + 1)))  # a newline fewer per message
    return data, offsets.tobytes()


class BatchBuilder:
    """Collects messages into :class:`~wsfast.batch.Batch` objects of at most
    ``max_bytes`` payload bytes each (a longer message alone in its own).

    :meth:`FrameParser.feed_batch` fills it as it parses; :meth:`append` adds a message
    by hand. :meth:`take` hands the batches out, oldest first. ``len(builder)`` counts
    the messages it holds and :attr:`nbytes` their payload bytes.
    """

    __slots__ = ("_filled", "_flags", "_max_bytes", "_parts", "_sealed", "_sealed_bytes", "_sealed_count")

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._max_bytes = _max_bytes_of(max_bytes)
        self._sealed: collections.deque[Batch] = collections.deque()  # complete batches, oldest first
        self._sealed_count = 0
        self._sealed_bytes = 0
        # The batch being filled: its payloads, one text flag each, their bytes.
        self._parts: list[bytes | memoryview] = []
        self._flags = bytearray()
        self._filled = 0

    @property
    def max_bytes(self) -> int:
        """The payload bytes a batch holds at most; a change applies to batches begun later."""
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        self._max_bytes = _max_bytes_of(value)

    @property
    def nbytes(self) -> int:
        """The payload bytes of the messages held."""
        return self._sealed_bytes + self._filled

    def __len__(self) -> int:
        return self._sealed_count + len(self._flags)

    def append(self, message: str | Buffer) -> None:
        """Add a message: ``str`` for text, any bytes-like object for binary."""
        if isinstance(message, str):
            self._add(message.encode("utf-8"), 1)
        else:
            # A copy: the caller may change or resize its buffer before the batch is sealed.
            self._add(message if isinstance(message, bytes) else bytes(_flat(message)), 0)

    def _add(self, payload: bytes | memoryview, text: int) -> None:
        """Add a message whose payload (bytes, already valid UTF-8 for text) is complete."""
        size = len(payload)
        if self._filled + size > self._max_bytes and self._flags:
            self._seal()
        self._parts.append(payload)
        self._flags.append(text)
        self._filled += size

    def _seal(self) -> None:
        """Close the batch being filled and queue it, a newline after every payload."""
        batch = Batch._join(self._parts, self._flags, lines=True)
        self._sealed.append(batch)
        self._sealed_count += len(self._flags)
        self._sealed_bytes += self._filled
        self._parts = []
        self._flags = bytearray()
        self._filled = 0

    def take(self, max_bytes: int | None = None) -> Batch | None:
        """The oldest batch held (the one being filled, once it is the only one), or None.

        With ``max_bytes`` (less than the batches were filled with, say) a larger batch
        is split first: what is returned holds at most that many payload bytes, or one
        message.
        """
        if max_bytes is not None:
            max_bytes = _max_bytes_of(max_bytes)
        if not self._sealed:
            if not self._flags:
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

    def __repr__(self) -> str:
        return f"<BatchBuilder {len(self)} messages, {self.nbytes} bytes>"


# --- parsing ---------------------------------------------------------------------------


def _first_byte_table(allowed_rsv: int) -> list[_Head | None]:
    """Map each first header byte to (opcode, fin, bits, message, compressed), or None if
    invalid; bits are FIN and RSV1-3 as a Frame keeps them, message is True when
    feed_messages() delivers the frame as a whole message, compressed when the frame is
    a whole compressed message (RSV1 only)."""
    table: list[_Head | None] = []
    for b0 in range(256):
        fin = b0 >= 0x80
        rsv = (b0 >> 4) & 7
        opcode = b0 & 0x0F
        valid = not rsv & ~allowed_rsv and opcode in _KNOWN_OPCODES and (fin or opcode < 8)
        message = fin and not rsv and opcode in (Opcode.TEXT, Opcode.BINARY)
        compressed = fin and rsv == 4 and opcode in (Opcode.TEXT, Opcode.BINARY)
        table.append((opcode, fin, b0 >> 4, message, compressed) if valid else None)
    return table


def _second_byte_table(mask_bit: int) -> list[int]:
    """Map each second header byte to its 7-bit length, or -1 if the mask bit is wrong."""
    return [b1 & 0x7F if b1 & 0x80 == mask_bit else -1 for b1 in range(256)]


# Indexed by allowed_rsv, and by client (True parses unmasked frames from a server).
_FIRST_BYTE_TABLES = [_first_byte_table(allowed_rsv) for allowed_rsv in range(8)]
_SECOND_BYTE_TABLES = {True: _second_byte_table(0), False: _second_byte_table(0x80)}


_NO_LIMIT = (1 << 63) - 1  # no payload length exceeds it
_NO_MEMORY = "not enough memory for the frames received"


def _limit_of(max_size: float | None) -> int:
    """The longest payload ``max_size`` allows: None for no limit, else a number >= 0
    (a length is whole, so a fraction counts as its floor)."""
    if max_size is None:
        return _NO_LIMIT
    if not max_size >= 0:  # NaN fails this too
        raise ValueError("max_size must be >= 0 or None")
    if max_size >= _NO_LIMIT:
        return _NO_LIMIT
    return max_size if type(max_size) is int else math.floor(max_size)


def _protocol_error(exc: BaseException) -> ProtocolError:
    """The ProtocolError that a failure while parsing amounts to."""
    if isinstance(exc, UnicodeDecodeError):
        return InvalidUTF8(f"invalid UTF-8 in text message: {exc.reason}")
    if isinstance(exc, MemoryError):
        return PayloadTooBig(_NO_MEMORY)
    return exc  # type: ignore[return-value]


class FrameParser:
    """Streaming frame parser: feed it bytes in any chunking, get complete frames back.

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

    def __init__(
        self,
        *,
        client: bool = True,
        max_size: int | None = DEFAULT_MAX_SIZE,
        allowed_rsv: int = 0,
        inflater: Inflater | None = None,
        text_as_bytes: bool = False,
    ) -> None:
        limit = _limit_of(max_size)
        rsv = index(allowed_rsv)
        if not 0 <= rsv <= 7:
            raise ValueError("allowed_rsv must be within 0..7")
        if inflater is not None and not isinstance(inflater, Inflater):
            kind = f"{type(inflater).__module__}.{type(inflater).__qualname__}"
            raise TypeError(f"inflater must be a {__name__}.Inflater or None, not {kind}")
        self.client = bool(client)
        self.max_size = max_size
        self.allowed_rsv = rsv
        self.inflater = inflater
        self.text_as_bytes = bool(text_as_bytes)
        self._limit = limit
        # What a whole compressed message may inflate to.
        self._inflate_limit = None if limit >= sys.maxsize else limit
        self._open = False  # a fragmented message began and has not ended (tracked with an inflater)
        self._first_bytes = _FIRST_BYTE_TABLES[rsv]
        self._second_bytes = _SECOND_BYTE_TABLES[self.client]
        self._pending = bytearray()
        self._need = 2  # bytes _pending must hold before parsing can progress
        self._error: ProtocolError | None = None
        self.last_frame_count = 0
        self.last_batch_count = 0

    @property
    def buffered(self) -> int:
        """Bytes held for a frame that has not fully arrived."""
        return len(self._pending)

    def feed(self, data: Buffer) -> list[Frame]:
        """Parse ``data`` (any bytes-like) and return the frames it completed, in order."""
        return self._feed(data, False)

    def payload_window(self) -> None:
        """Always None: this codec offers no window to read a large payload into (the
        compiled codec may; frames come out the same either way)."""

    def partial_frame(self, start: int = 0) -> Frame | None:
        """The frame whose payload is arriving, as a :class:`Frame` holding the payload
        bytes received so far from offset ``start`` on (unmasked); None while no payload
        is arriving (between frames, during a header, once failed).

        It lets a receiver check a frame before it is complete (text for UTF-8, say);
        passing as ``start`` how much it checked already keeps that linear.
        """
        start = index(start)
        if start < 0:
            raise ValueError("start must be >= 0")
        pending = self._pending
        if self._error is not None or len(pending) < 2:
            return None
        # Held bytes begin with a header that _parse checked, of a frame not complete.
        length = pending[1] & 0x7F
        size = 2 if length < 126 else 4 if length == 126 else 10
        if not self.client:
            size += 4  # the masking key
        if len(pending) < size:
            return None
        payload = bytes(memoryview(pending)[size + start :])
        if not self.client:
            key = pending[size - 4 : size]
            phase = start & 3
            payload = _xor(payload, bytes(key[phase:] + key[:phase]))
        frame = Frame.__new__(Frame)
        frame._opcode = pending[0] & 0x0F
        frame._bits = pending[0] >> 4
        frame._payload = payload
        return frame

    def feed_messages(self, data: Buffer) -> list[Frame | bytes | str]:
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
        return self._feed(data, True)

    def feed_batch(self, data: Buffer, batch: BatchBuilder) -> list[Frame | bytes | str]:
        """Like :meth:`feed_messages`, but add the messages to ``batch`` (a
        :class:`BatchBuilder`) instead of returning them, each message's payload
        copied once, straight from ``data`` (unmasked on the way).

        Until the first :class:`Frame` of this call, which ends that fast path: that
        frame and everything after it come back as :meth:`feed_messages` returns them,
        in order, for the caller to handle (and to add the messages among them to the
        batch). The messages added before a violation stay in ``batch``;
        :attr:`last_batch_count` tells how many this call added.
        """
        if not isinstance(batch, BatchBuilder):
            raise TypeError(f"batch must be a {__name__}.BatchBuilder, not {type(batch).__name__}")
        return self._feed(data, True, batch)

    @overload
    def _feed(self, data: Buffer, messages: Literal[False]) -> list[Frame]: ...
    @overload
    def _feed(
        self, data: Buffer, messages: Literal[True], batch: BatchBuilder | None = None
    ) -> list[Frame | bytes | str]: ...
    def _feed(
        self, data: Buffer, messages: bool, batch: BatchBuilder | None = None
    ) -> list[Frame] | list[Frame | bytes | str]:
        if self._error is not None:
            self._raise_again()
        buf = data if type(data) is bytes else _flat(data)  # a bad argument changes nothing
        self.last_frame_count = 0
        self.last_batch_count = 0
        frames: list[Frame | bytes | str] = []
        try:
            pending = self._pending
            if pending:
                pending += buf
                if len(pending) < self._need:
                    return []
                buf = bytes(pending)
                pending.clear()
            elif type(buf) is not bytes:
                buf = bytes(buf)
            pos = self._parse(buf, frames, messages, batch)
            if pos < len(buf):
                pending += memoryview(buf)[pos:]
        except (ProtocolError, UnicodeDecodeError, MemoryError) as exc:
            raise self._fail(exc, frames) from None
        except BaseException:
            # Interrupted (KeyboardInterrupt, ...): what was parsed so far is lost.
            self._fail(ProtocolError("parsing was interrupted", 1011), frames)
            raise
        return frames

    def _fail(self, exc: BaseException, frames: list[Frame | bytes | str]) -> ProtocolError:
        """Fail the parser for good with the ProtocolError ``exc`` amounts to; return it."""
        error = _protocol_error(exc)
        error.frames = frames
        self._error = error
        self._pending = bytearray()
        return error

    def _raise_again(self) -> NoReturn:
        """Raise for a parser that already failed: the same kind of error, no frames."""
        error = self._error
        assert error is not None  # called once failed
        again = type(error)(str(error), error.code)
        again.frames = []
        raise again

    def _parse(self, buf: bytes, frames: list[Frame | bytes | str], messages: bool, batch: BatchBuilder | None) -> int:
        """Append every complete frame in ``buf`` to ``frames`` (whole messages as their
        payload when ``messages`` is true, or to ``batch`` until the first frame when
        there is one); return where parsing stopped."""
        end = len(buf)
        pos = 0
        first_bytes = self._first_bytes
        second_bytes = self._second_bytes
        limit = self._limit
        masked = not self.client
        view = memoryview(buf)
        from_bytes = int.from_bytes
        append = frames.append
        new_frame = Frame.__new__
        framed = 0  # Frame objects appended
        batched = 0  # messages added to batch
        add = None if batch is None else batch._add
        inflater = self.inflater
        inline = messages and inflater is not None and not self._open  # inflate compressed messages here
        text_as_bytes = self.text_as_bytes
        try:
            while end - pos >= 2:
                head = first_bytes[buf[pos]]
                length = second_bytes[buf[pos + 1]]
                if head is None or length < 0:
                    self._reject(buf[pos], buf[pos + 1])
                opcode, fin, bits, message, compressed = head
                start = pos + 2
                if length > 125:
                    if opcode >= 8:
                        raise ProtocolError("control frame payload longer than 125 bytes")
                    if length == 126:
                        start += 2
                        if end < start:
                            self._need = start - pos
                            return pos
                        length = (buf[pos + 2] << 8) | buf[pos + 3]
                    else:
                        start += 8
                        if end < start:
                            self._need = start - pos
                            return pos
                        length = from_bytes(buf[pos + 2 : start], "big")
                        if length >> 63:
                            raise ProtocolError("payload length has its most significant bit set")
                if length > limit:
                    raise PayloadTooBig(f"frame of {length} bytes exceeds max_size of {self.max_size}")
                if masked:
                    stop = start + 4 + length
                    if end < stop:
                        self._need = stop - pos
                        return pos
                    key = buf[start : start + 4]
                    if length < _TRANSLATE_FROM:  # _xor_int, inlined
                        stream = (key * ((length >> 2) + 1))[:length]
                        payload = (from_bytes(buf[start + 4 : stop], "little") ^ from_bytes(stream, "little")).to_bytes(
                            length, "little"
                        )
                    else:
                        payload = _xor(view[start + 4 : stop], key)
                else:
                    stop = start + length
                    if end < stop:
                        self._need = stop - pos
                        return pos
                    payload = buf[start:stop]
                pos = stop
                if messages and message:
                    if add is not None:
                        if opcode == 1 and not payload.isascii():
                            payload.decode()  # UnicodeDecodeError for invalid UTF-8
                        add(payload, opcode & 1)
                        batched += 1
                        continue
                    if opcode == 2 or (text_as_bytes and payload.isascii()):
                        append(payload)
                    else:
                        text = payload.decode()  # UnicodeDecodeError for invalid UTF-8
                        append(payload if text_as_bytes else text)
                    continue
                if compressed and inline:
                    payload = inflater.inflate(payload, True, self._inflate_limit)  # type: ignore[union-attr]  # inline implies one
                    if add is not None:
                        if opcode == 1 and not payload.isascii():
                            payload.decode()
                        add(payload, opcode & 1)
                        batched += 1
                        continue
                    if opcode == 2 or (text_as_bytes and payload.isascii()):
                        append(payload)
                    else:
                        text = payload.decode()  # UnicodeDecodeError for invalid UTF-8
                        append(payload if text_as_bytes else text)
                    continue
                frame = new_frame(Frame)
                frame._opcode = opcode
                frame._payload = payload
                frame._bits = bits
                append(frame)
                framed += 1
                add = None  # the caller handles this frame, and so everything after it
                if opcode < 8 and inflater is not None:
                    # The caller inflates after this call what this data frame needs; to keep
                    # the compressed messages in order, none after it is inflated here.
                    inline = False
                    self._open = not fin and (opcode != 0 or self._open)
            self._need = 2
            return pos
        finally:
            self.last_frame_count = framed
            self.last_batch_count = batched

    def _reject(self, first_byte: int, second_byte: int) -> NoReturn:
        """Raise the error for a header that the lookup tables marked invalid."""
        opcode = first_byte & 0x0F
        if (first_byte >> 4) & 7 & ~self.allowed_rsv:
            raise ProtocolError("reserved bits set without a negotiated extension")
        if opcode not in _KNOWN_OPCODES:
            raise ProtocolError(f"unknown opcode {opcode:#x}")
        if opcode >= 8 and first_byte < 0x80:
            raise ProtocolError("fragmented control frame")
        if opcode >= 8 and second_byte & 0x7F > _CONTROL_MAX:
            raise ProtocolError("control frame payload longer than 125 bytes")
        raise ProtocolError("masked frame from server" if self.client else "unmasked frame from client")


def mask_kernel() -> str:
    """The masking kernel in use: always "python" here (the compiled twin names its SIMD one)."""
    return "python"
