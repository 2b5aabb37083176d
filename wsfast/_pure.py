"""The pure-Python frame codec: same API and behaviour as the compiled ``wsfast._compiled``.

Used when the extension is missing or ``WSFAST_NO_EXTENSIONS=1`` is set. Written for
CPython speed: whole-buffer integer XOR for masking, one slice per payload, and no
per-byte loops.
"""

from __future__ import annotations

from .enums import Opcode
from .exceptions import PayloadTooBig, ProtocolError

__all__ = ["DEFAULT_MAX_SIZE", "Frame", "FrameParser", "encode_frame", "mask", "mask_inplace"]

DEFAULT_MAX_SIZE = 64 * 1024 * 1024

_CONTROL_MAX = 125
_KNOWN_OPCODES = frozenset(Opcode)
_OPCODE_NAMES = {op.value: op.name for op in Opcode}


class Frame:
    """One WebSocket frame. ``payload`` is always ``bytes`` (already unmasked).

    ``len(frame)`` is the payload size and ``frame[i]`` indexes its bytes.
    """

    __slots__ = ("opcode", "fin", "rsv1", "rsv2", "rsv3", "payload")

    def __init__(
        self,
        opcode: int,
        payload: bytes = b"",
        fin: bool = True,
        rsv1: bool = False,
        rsv2: bool = False,
        rsv3: bool = False,
    ) -> None:
        self.opcode = int(opcode)
        self.payload = bytes(payload)
        self.fin = bool(fin)
        self.rsv1 = bool(rsv1)
        self.rsv2 = bool(rsv2)
        self.rsv3 = bool(rsv3)

    @property
    def is_control(self) -> bool:
        """True for close, ping and pong frames."""
        return self.opcode >= 8

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8; for a close frame, the reason after the code."""
        if self.opcode == Opcode.CLOSE:
            return self.payload[2:].decode()
        return self.payload.decode()

    @property
    def close_code(self) -> int | None:
        """A close frame's status code (1005 when it carries none); None for other frames."""
        if self.opcode != Opcode.CLOSE:
            return None
        if len(self.payload) < 2:
            return 1005
        return int.from_bytes(self.payload[:2], "big")

    def __len__(self) -> int:
        return len(self.payload)

    def __getitem__(self, index):
        return self.payload[index]

    def _key(self) -> tuple:
        return (self.opcode, self.fin, self.rsv1, self.rsv2, self.rsv3, self.payload)

    def __eq__(self, other: object):
        try:
            return self._key() == other._key()  # type: ignore[attr-defined]
        except AttributeError:
            return NotImplemented

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        name = _OPCODE_NAMES.get(self.opcode, str(self.opcode))
        flags = "".join(f" rsv{i}" for i, bit in enumerate((self.rsv1, self.rsv2, self.rsv3), 1) if bit)
        payload = self.payload if len(self.payload) <= 32 else self.payload[:32] + b"..."
        return f"<Frame {name} fin={self.fin}{flags} {len(self.payload)} bytes {payload!r}>"


def _check_key(key) -> bytes:
    key = bytes(key)
    if len(key) != 4:
        raise ValueError(f"mask key must be 4 bytes, not {len(key)}")
    return key


def _xor(data, key: bytes) -> bytes:
    """XOR ``data`` with ``key`` repeated, as one big-integer operation."""
    n = len(data)
    if not n:
        return b""
    stream = key * (n // 4 + 1)
    if len(stream) != n:
        stream = stream[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def mask(data, key) -> bytes:
    """Return ``data`` XOR-ed with the 4-byte ``key`` (masking and unmasking are the same)."""
    view = memoryview(data)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    return _xor(view, _check_key(key))


def mask_inplace(buffer, key) -> None:
    """XOR a writable buffer (bytearray, memoryview, ...) with the 4-byte ``key`` in place."""
    view = memoryview(buffer)
    if view.readonly:
        raise TypeError("mask_inplace needs a writable buffer")
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    view[:] = _xor(view, _check_key(key))


def encode_frame(opcode: int, payload=b"", *, fin: bool = True, rsv: int = 0, mask_key=None) -> bytes:
    """Return the wire bytes of one frame.

    ``rsv`` holds the three reserved bits as a number: 4 is RSV1, 2 is RSV2, 1 is RSV3.
    With ``mask_key`` (4 bytes) the frame is masked, as a client must; the length uses the
    shortest of the 7, 16 and 64-bit encodings.
    """
    opcode = int(opcode)
    if opcode not in _KNOWN_OPCODES:
        raise ValueError(f"unknown opcode {opcode:#x}")
    if not 0 <= rsv <= 7:
        raise ValueError(f"rsv must be within 0..7, not {rsv}")
    if isinstance(payload, str):
        raise TypeError("payload must be bytes-like, not str")
    view = memoryview(payload)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    n = len(view)
    if opcode >= 8:
        if n > _CONTROL_MAX:
            raise ValueError(f"control frame payload is {n} bytes; at most 125 allowed")
        if not fin:
            raise ValueError("control frames cannot be fragmented")
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    masked = 0x80 if mask_key is not None else 0
    if n < 126:
        header = bytes((first, masked | n))
    elif n < 65536:
        header = bytes((first, masked | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((first, masked | 127)) + n.to_bytes(8, "big")
    if mask_key is None:
        return header + view
    key = _check_key(mask_key)
    return header + key + _xor(view, key)


class FrameParser:
    """Streaming frame parser: feed it bytes in any chunking, get complete frames back.

    ``client=True`` parses what a server sends (frames must be unmasked); ``client=False``
    parses what a client sends (frames must be masked, and are unmasked here). A frame whose
    header announces more than ``max_size`` payload bytes (None for no limit) is rejected
    before its payload is buffered. ``allowed_rsv`` lists the reserved bits an extension
    negotiated (4 for RSV1). A violation raises :class:`ProtocolError` carrying the close
    code, with the frames completed before it in ``error.frames``; the parser then stays failed.
    """

    def __init__(self, *, client: bool = True, max_size: int | None = DEFAULT_MAX_SIZE, allowed_rsv: int = 0) -> None:
        if max_size is not None and max_size < 0:
            raise ValueError("max_size must be >= 0 or None")
        if not 0 <= allowed_rsv <= 7:
            raise ValueError("allowed_rsv must be within 0..7")
        self.client = bool(client)
        self.max_size = max_size
        self.allowed_rsv = allowed_rsv
        self._limit = (1 << 63) - 1 if max_size is None else max_size
        # Masked-bit value a valid frame carries in direction we parse.
        self._mask_bit = 0 if client else 0x80
        self._pending = bytearray()
        self._need = 2  # bytes _pending must hold before parsing can progress
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for a frame that has not fully arrived."""
        return len(self._pending)

    def feed(self, data) -> list:
        """Parse ``data`` (any bytes-like) and return the frames it completed, in order."""
        if self._error is not None:
            raise self._error
        pending = self._pending
        if pending:
            pending += data
            if len(pending) < self._need:
                return []
            buf = bytes(pending)
            pending.clear()
        else:
            buf = data if type(data) is bytes else bytes(data)
        frames: list = []
        try:
            pos = self._parse(buf, frames)
        except ProtocolError as exc:
            exc.frames = frames
            self._error = exc
            self._need = 0
            raise
        if pos < len(buf):
            pending += memoryview(buf)[pos:]
        return frames

    def _parse(self, buf: bytes, frames: list) -> int:
        """Append every complete frame in ``buf`` to ``frames``; return where parsing stopped."""
        end = len(buf)
        pos = 0
        append = frames.append
        new_frame = Frame.__new__
        while True:
            if end - pos < 2:
                self._need = 2
                return pos
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            opcode = b0 & 0x0F
            rsv = (b0 >> 4) & 7
            if rsv & ~self.allowed_rsv:
                raise ProtocolError("reserved bits set without a negotiated extension")
            if opcode not in _KNOWN_OPCODES:
                raise ProtocolError(f"unknown opcode {opcode:#x}")
            if opcode >= 8:
                if not b0 & 0x80:
                    raise ProtocolError("fragmented control frame")
                if length > _CONTROL_MAX:
                    raise ProtocolError("control frame payload longer than 125 bytes")
            if b1 & 0x80 != self._mask_bit:
                raise ProtocolError("masked frame from server" if self.client else "unmasked frame from client")
            start = pos + 2
            if length == 126:
                start += 2
                if end < start:
                    self._need = start - pos
                    return pos
                length = (buf[pos + 2] << 8) | buf[pos + 3]
            elif length == 127:
                start += 8
                if end < start:
                    self._need = start - pos
                    return pos
                length = int.from_bytes(buf[pos + 2 : start], "big")
                if length >> 63:
                    raise ProtocolError("payload length has its most significant bit set")
            if length > self._limit:
                raise PayloadTooBig(f"frame of {length} bytes exceeds max_size of {self.max_size}")
            if self._mask_bit:
                key = buf[start : start + 4]
                start += 4
            stop = start + length
            if end < stop:
                self._need = stop - pos
                return pos
            payload = buf[start:stop]
            if self._mask_bit:
                payload = _xor(payload, key)
            frame = new_frame(Frame)
            frame.opcode = opcode
            frame.payload = payload
            frame.fin = b0 >= 0x80
            frame.rsv1 = rsv >= 4
            frame.rsv2 = rsv & 2 == 2
            frame.rsv3 = rsv & 1 == 1
            append(frame)
            pos = stop
