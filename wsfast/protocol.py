"""The WebSocket protocol after the handshake (RFC 6455 §5-7), without any I/O.

A :class:`Connection` turns received bytes into messages and control events, and the
calls you make into bytes to send (:meth:`Connection.receive_batch` collects the
messages into :class:`~wsfast.batch.Batch` objects instead). The I/O layer's loop is::

    events = conn.receive_data(sock.recv(65536))   # or conn.receive_eof() on EOF
    ...                                            # the application handles the events
    if conn.error:
        conn.fail()                                # the peer broke the protocol: close now
    sock.sendall(conn.data_to_send())              # pongs and close replies are queued here
    if conn.close_transport:
        sock.close()
"""

from __future__ import annotations

import codecs
import collections
import enum
import os
from typing import TYPE_CHECKING, Any, overload

from . import _codec
from .enums import Opcode, is_valid_close_code
from .exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidUTF8,
    PayloadTooBig,
    ProtocolError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from types import ModuleType
    from typing import Literal, Protocol, TypeAlias, TypeVar

    from typing_extensions import Buffer

    from ._codec import Frame, FrameParser
    from ._compiled import BatchBuilder
    from .batch import Batch
    from .deflate import PerMessageDeflate

    _T = TypeVar("_T")
    _Control: TypeAlias = "Ping | Pong | Close"
    # What receive_data() returns: messages (str for text, bytes for binary) and control events.
    _Event: TypeAlias = "str | bytes | Ping | Pong | Close"

    class _EncodeFrame(Protocol):
        """A codec's ``encode_frame``."""

        def __call__(
            self, opcode: int, payload: Buffer = ..., *, fin: bool = ..., rsv: int = ..., mask_key: Buffer | None = ...
        ) -> bytes: ...


__all__ = ["Close", "Connection", "Ping", "Pong", "State"]

_CONTINUATION = Opcode.CONTINUATION.value
_TEXT = Opcode.TEXT.value
_BINARY = Opcode.BINARY.value
_CLOSE = Opcode.CLOSE.value
_PING = Opcode.PING.value
_PONG = Opcode.PONG.value

_MAX_REASON = 123  # a close payload is at most 125 bytes, two of them the code
_CLEAN_CODES = (1000, 1001, 1005)
_NEW_UTF8_DECODER = codecs.getincrementaldecoder("utf-8")
_KEY_POOL_SIZE = 4096  # mask keys come from one urandom call per 1024 frames
_MAX_PENDING_PONGS = 16  # answers to pings kept while the I/O layer takes none
# The second byte of a UTF-8 character is 80..BF, except after these first bytes
# (RFC 3629 §4): no overlong forms, surrogates or code points past U+10FFFF.
_SECOND_BYTE_RANGES = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}


def _check_unfinished(decoder: codecs.IncrementalDecoder) -> None:
    """Raise UnicodeDecodeError when the start of a character that an incremental UTF-8
    ``decoder`` holds cannot begin a valid one: CPython's lets ED A0..BF through (a
    surrogate), which only the next byte would reject."""
    held = decoder.getstate()[0]
    if len(held) >= 2:
        low, high = _SECOND_BYTE_RANGES.get(held[0], (0x80, 0xBF))
        if not low <= held[1] <= high:
            raise UnicodeDecodeError("utf-8", held, 0, 1, "invalid continuation byte")


class State(enum.IntEnum):
    """Where a connection is in its life.

    A :class:`Connection` starts OPEN; CONNECTING is for I/O layers still in the handshake.
    """

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


# Enum member lookups are slow on the hot path; these are the same objects.
_OPEN = State.OPEN
_CLOSING = State.CLOSING
_CLOSED = State.CLOSED


class _ControlEvent:
    __slots__ = ("payload",)

    def __init__(self, payload: bytes = b"") -> None:
        self.payload = payload

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.payload == other.payload

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.payload))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.payload!r})"


class Ping(_ControlEvent):
    """A ping arrived (it is answered automatically)."""

    __slots__ = ()


class Pong(_ControlEvent):
    """A pong arrived."""

    __slots__ = ()


class Close:
    """The peer's close frame: ``code`` (1005 when it had none) and ``reason``."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str = "") -> None:
        self.code = code
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Close):
            return NotImplemented
        return (self.code, self.reason) == (other.code, other.reason)

    def __hash__(self) -> int:
        return hash((self.code, self.reason))

    def __repr__(self) -> str:
        return f"Close({self.code!r}, {self.reason!r})"


def _no_window() -> None:
    return None


def _mask_keys() -> Iterator[bytes]:
    """Fresh random mask keys, from a pool refilled by one urandom call at a time:
    resuming a generator costs a frame less than a method per message sent."""
    while True:
        pool = os.urandom(_KEY_POOL_SIZE)
        for pos in range(0, _KEY_POOL_SIZE, 4):
            yield pool[pos : pos + 4]


class Connection:
    """One side of an open WebSocket connection.

    ``client`` selects the role: a client masks what it sends and expects unmasked
    frames, a server the reverse. Messages larger than ``max_message_size`` bytes (None
    for no limit) fail the connection with 1009. Outgoing messages longer than
    ``max_frame_size`` are split into fragments of at most that size. ``codec`` is the
    frame codec module, by default the compiled one when available. ``deflate`` is the
    :class:`~wsfast.deflate.PerMessageDeflate` of a connection that negotiated
    compression, built for the same codec. With ``text_as_bytes``, :meth:`receive_data`
    returns text messages as their payload ``bytes``, checked as UTF-8 all the same, for
    a consumer that decodes them from bytes (:meth:`receive_batch` is then not available).

    Nothing here raises because of what the peer sent: a violation sets :attr:`error`
    and stops receiving, and :meth:`fail` then queues the close frame with the matching
    code and sets :attr:`close_transport`. The events returned before it still count:
    an application may answer the messages that arrived before the violation first.
    Text must be valid UTF-8, and fails as soon as the bytes received so far cannot
    begin valid UTF-8, also in the middle of a frame.
    """

    def __init__(
        self,
        *,
        client: bool,
        max_message_size: int | None = _codec.DEFAULT_MAX_SIZE,
        max_frame_size: int | None = None,
        codec: ModuleType | None = None,
        deflate: PerMessageDeflate | None = None,
        text_as_bytes: bool = False,
    ) -> None:
        if max_message_size is not None and not max_message_size >= 0:  # NaN fails too
            raise ValueError("max_message_size must be >= 0 or None")
        if max_frame_size is not None and max_frame_size < 1:
            raise ValueError("max_frame_size must be >= 1 or None")
        codec = _codec.codec if codec is None else codec
        inflater = None if deflate is None else deflate.inflater
        if inflater is not None and type(inflater) is not codec.Inflater:
            raise ValueError(f"deflate must be built for the codec {codec.__name__}: PerMessageDeflate(..., codec=...)")
        self.client = bool(client)
        self.max_message_size = max_message_size
        self.max_frame_size = max_frame_size
        self.text_as_bytes = bool(text_as_bytes)
        self.state = _OPEN
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.close_sent_code: int | None = None
        self.error: ProtocolError | None = None
        """How the peer broke the protocol, once it did; :meth:`fail` closes the connection."""
        self.close_transport = False

        # Control frames may carry 125 bytes whatever the message limit; a smaller
        # limit is then enforced here per data frame, on the slow path.
        frame_limit = None if max_message_size is None else max(max_message_size, 125)
        self._deflate = deflate
        # The parser inflates whole compressed messages itself, with the inflater that
        # _handle uses for the fragments of the others.
        self._parser: FrameParser = codec.FrameParser(
            client=self.client,
            max_size=frame_limit,
            allowed_rsv=0 if deflate is None else 4,
            inflater=inflater,
            text_as_bytes=self.text_as_bytes,
        )
        # Then the parser's limit is the message limit: a whole message it delivers (an
        # inflated one too) needs no further check.
        self._fast_ok = max_message_size is None or max_message_size >= 125
        self._inflating = False  # the message being received is compressed
        self._inflated: bytes | None = None  # the last frame's decompressed payload, for receive_frames
        self._new_frame: type[Frame] = codec.Frame
        self._new_batches: type[BatchBuilder] = codec.BatchBuilder
        self._batches: BatchBuilder | None = None  # the BatchBuilder of receive_batch(), made on first use
        self._encode_frame: _EncodeFrame = codec.encode_frame
        self._outgoing: list[bytes] = []
        self._pongs: collections.deque[bytes] = collections.deque(maxlen=_MAX_PENDING_PONGS)
        self.last_controls = 0
        """How many control frames (pings, pongs, the close) the last :meth:`receive_data`
        or :meth:`receive_frames` call processed: with none, its events are all messages."""
        self._close_sent = False
        self._receiving = True  # False once a close frame arrived or the connection failed
        self._mask_keys = _mask_keys()
        self.payload_window: Callable[[], memoryview | None] = self._parser.payload_window
        """A function returning a writable memoryview to read the next bytes of a large
        incoming payload into, or None; pass what was read to :meth:`receive_data` as
        usual (``window[:n]``), which then skips copying it. See
        ``FrameParser.payload_window``. The parser's own method (one call less on every
        read) until receiving stops, then one that returns None."""
        # The fragmented message being received: its opcode, parts, size, text decoder.
        self._message_opcode: int | None = None
        self._parts: list[Any] = []  # all str (decoded text) or all bytes
        self._message_size = 0
        self._decoder: codecs.IncrementalDecoder | None = None
        # The text frame still arriving, checked as its bytes come: the decoder checking
        # it (False for a frame that is not text to check, None before its header is
        # seen) and how many payload bytes it checked.
        self._arriving_text: codecs.IncrementalDecoder | Literal[False] | None = None
        self._arriving_checked = 0

    # Receiving ---------------------------------------------------------------------

    def receive_data(self, data: Buffer) -> list[_Event]:
        """Process received bytes; return the complete messages and control events.

        Text messages come as ``str``, binary ones as ``bytes``, control frames as
        :class:`Ping`, :class:`Pong` and :class:`Close`. Bytes arriving after the peer's
        close frame or after a violation are ignored.
        """
        self.last_controls = 0
        if not self._receiving:
            return []
        if not self._fast_ok:
            return self._receive(data, self._parser.feed, self._events)
        parser = self._parser
        try:
            items = parser.feed_messages(data)
        except ProtocolError as exc:
            return self._failed(exc, self._events)
        return self._parsed(items)

    def _parsed(self, items: list[Frame | bytes | str]) -> list[_Event]:
        """The events of what the parser's feed_messages() returned: the second half of
        :meth:`receive_data`, for the compiled asyncio connection, which feeds the parser
        itself while only whole messages come (see wsfast._stream_core)."""
        parser = self._parser
        # The parser delivered every unfragmented message itself: when nothing else came
        # and no fragmented message is open, its list is already the events.
        events = self._events(items) if parser.last_frame_count or self._message_opcode is not None else items
        if parser.buffered or self._arriving_text is not None:
            self._check_arriving(items)
        return events  # type: ignore[return-value]  # items holds only messages when no frame came

    def receive_batch(self, data: Buffer) -> list[_Control]:
        """Like :meth:`receive_data`, but collect the messages in :attr:`batches`
        instead of returning them; return the control events (:class:`Ping`,
        :class:`Pong`, :class:`Close`).

        Take the messages with :meth:`take_batch`, as :class:`~wsfast.batch.Batch`
        objects of at most ``batches.max_bytes`` payload bytes (unless one message alone
        is larger), in order. Whole messages go into a batch straight from ``data``, one
        copy each and no Python object; fragmented and compressed ones arrive whole too.
        Messages received before a violation are kept.
        """
        if self.text_as_bytes:
            raise RuntimeError("receive_batch() keeps text as text: not with text_as_bytes")
        self.last_controls = 0
        batches = self.batches
        if not self._receiving:
            return []
        if not self._fast_ok:
            return self._receive(data, self._parser.feed, self._batch_events)
        parser = self._parser
        try:
            if self._message_opcode is None:
                items = parser.feed_batch(data, batches)
            else:  # a fragmented message is open: a whole message now would be a violation
                items = parser.feed_messages(data)
        except ProtocolError as exc:
            return self._failed(exc, self._batch_events)
        events = self._events(items, batches) if items else []
        if parser.buffered or self._arriving_text is not None:
            self._check_arriving(items or parser.last_batch_count)
        return events

    @property
    def batches(self) -> BatchBuilder:
        """Where :meth:`receive_batch` collects messages: the codec's ``BatchBuilder``
        (``len()`` counts the messages it holds, ``nbytes`` their payload bytes; set
        ``max_bytes`` to bound the batches begun from then on)."""
        batches = self._batches
        if batches is None:
            batches = self._batches = self._new_batches()
        return batches

    @property
    def batched(self) -> int:
        """How many messages :meth:`receive_batch` collected and :meth:`take_batch` did
        not return yet."""
        return 0 if self._batches is None else len(self._batches)

    def take_batch(self, max_bytes: int | None = None) -> Batch | None:
        """The oldest batch of messages collected by :meth:`receive_batch`, or None.

        With ``max_bytes`` it holds at most that many payload bytes (or one message):
        a larger batch received before is split.
        """
        return None if self._batches is None else self._batches.take(max_bytes)

    def receive_frames(self, data: Buffer) -> list[Frame]:
        """Like :meth:`receive_data`, but return the validated frames themselves."""
        self.last_controls = 0
        if not self._receiving:
            return []
        return self._receive(data, self._parser.feed, self._validate)

    def _receive(
        self, data: Buffer, feed: Callable[[Buffer], list[Frame]], process: Callable[[list[Frame]], list[_T]]
    ) -> list[_T]:
        try:
            frames = feed(data)
        except ProtocolError as exc:
            return self._failed(exc, process)
        results = process(frames)
        if self._parser.buffered or self._arriving_text is not None:
            self._check_arriving(frames)
        return results

    def _failed(self, exc: ProtocolError, process: Callable[[list[Any]], list[_T]]) -> list[_T]:
        """Process what the parser completed before ``exc``, then fail with ``exc``."""
        results = process(exc.frames)
        if self._receiving:
            if isinstance(exc, InvalidUTF8) and self._message_opcode is not None:
                # The invalid text frame started a message while another was open.
                exc = ProtocolError("new message started before the previous one finished")
            self._fail(exc)
        return results

    def _check_arriving(self, parsed: Sequence[object] | int) -> None:
        """Fail now if the text frame still arriving holds bytes that cannot begin valid
        UTF-8: the rest of it could not make them valid (Autobahn case 6.4.3). ``parsed``
        is what the parser completed in this call. Only frames that arrive in pieces cost
        anything here, each byte once."""
        if parsed or not self._parser.buffered:  # the frame checked so far is complete
            self._arriving_text = None
            self._arriving_checked = 0
        if self._arriving_text is False or not self._receiving:
            return
        frame = self._parser.partial_frame(self._arriving_checked)
        if frame is None:
            return
        decoder: codecs.IncrementalDecoder | Literal[False] | None
        decoder = self._arriving_text
        if decoder is None:
            decoder = self._arriving_text = self._text_decoder(frame)
            if decoder is False:
                return
        try:
            decoder.decode(frame.payload)
            _check_unfinished(decoder)
        except UnicodeDecodeError as exc:
            self._fail(InvalidUTF8(f"invalid UTF-8 in text message: {exc.reason}"))
            return
        self._arriving_checked += len(frame.payload)

    def _text_decoder(self, frame: Frame) -> codecs.IncrementalDecoder | Literal[False]:
        """A decoder to check ``frame``, still arriving, as UTF-8 text; False when it is
        not text to check: binary, compressed (checked once inflated), or out of sequence
        (which fails once it is complete)."""
        if frame.opcode == _TEXT and not frame.rsv1 and self._message_opcode is None:
            return _NEW_UTF8_DECODER()
        if frame.opcode == _CONTINUATION and self._decoder is not None and not self._inflating:
            decoder = _NEW_UTF8_DECODER()
            decoder.setstate(self._decoder.getstate())
            return decoder
        return False

    def _batch_events(self, items: Sequence[Frame | bytes | str]) -> list[_Control]:
        return self._events(items, self.batches)

    @overload
    def _events(self, items: Sequence[Frame | bytes | str]) -> list[_Event]: ...
    @overload
    def _events(self, items: Sequence[Frame | bytes | str], batches: BatchBuilder) -> list[_Control]: ...
    def _events(
        self, items: Sequence[Frame | bytes | str], batches: BatchBuilder | None = None
    ) -> list[_Event] | list[_Control]:
        """Act on parsed items: whole messages (from feed_messages) pass through, frames
        go through :meth:`_handle`. With ``batches``, every message goes there instead
        and only the control events are returned."""
        events: list[_Event] = []
        append = events.append
        deliver = append if batches is None else batches.append
        # Told apart by type(), through `kind`, which mypy does not follow.
        item: Any
        event: Any
        try:
            for item in items:
                kind = type(item)
                if kind is bytes or kind is str:
                    if self._message_opcode is not None:
                        raise ProtocolError("new message started before the previous one finished")
                    deliver(item)
                    continue
                event = self._handle(item)
                if event is not None:
                    kind = type(event)
                    if kind is bytes or kind is str:
                        deliver(event)
                    else:
                        append(event)
                if not self._receiving:
                    break  # nothing after a close frame counts
        except UnicodeDecodeError as exc:
            self._fail(InvalidUTF8(f"invalid UTF-8 in text message: {exc.reason}"))
        except ProtocolError as exc:
            self._fail(exc)
        except MemoryError:
            self._fail(PayloadTooBig("not enough memory for the message received"))
        return events

    def _validate(self, frames: list[Frame]) -> list[Frame]:
        valid: list[Frame] = []
        try:
            for frame in frames:
                self._inflated = None  # receive_data may have left one behind
                self._handle(frame)
                if self._inflated is not None:
                    frame = self._new_frame(frame.opcode, self._inflated, frame.fin)
                valid.append(frame)
                if not self._receiving:
                    break
        except UnicodeDecodeError as exc:
            self._fail(InvalidUTF8(f"invalid UTF-8 in text message: {exc.reason}"))
        except ProtocolError as exc:
            self._fail(exc)
        except MemoryError:
            self._fail(PayloadTooBig("not enough memory for the message received"))
        return valid

    def _handle(self, frame: Frame) -> str | bytes | _Control | None:
        """Validate one frame and act on it; return its event, or None for a fragment."""
        opcode = frame.opcode
        if frame.rsv1 and (opcode >= _CLOSE or opcode == _CONTINUATION):
            # Only reachable with deflate: RSV1 marks the first frame of a compressed message.
            raise ProtocolError("RSV1 set on a control or continuation frame")
        if opcode >= _CLOSE:
            return self._handle_control(frame)
        payload = frame.payload
        if opcode == _CONTINUATION:
            if self._message_opcode is None:
                raise ProtocolError("continuation frame without a message to continue")
        else:
            if self._message_opcode is not None:
                raise ProtocolError("new message started before the previous one finished")
            if frame.fin and self._fast_ok and not frame.rsv1:
                if opcode != _TEXT:
                    return payload
                text = payload.decode("utf-8")
                return payload if self.text_as_bytes else text
            self._message_opcode = opcode
            self._decoder = _NEW_UTF8_DECODER() if opcode == _TEXT else None
            self._inflating = frame.rsv1
        if self._inflating:
            limit = self.max_message_size
            payload = self._inflated = self._deflate.decompress_frame(  # type: ignore[union-attr]  # set with rsv1
                payload, frame.fin, None if limit is None else limit - self._message_size
            )
        size = self._message_size + len(payload)
        if self.max_message_size is not None and size > self.max_message_size:
            raise PayloadTooBig(f"message of more than {self.max_message_size} bytes")
        self._message_size = size
        # Text is decoded fragment by fragment so invalid UTF-8 fails at once.
        decoder = self._decoder
        if decoder is None:
            self._parts.append(payload)
        else:
            text = decoder.decode(payload, frame.fin)
            self._parts.append(payload if self.text_as_bytes else text)
        if not frame.fin:
            if decoder is not None:
                _check_unfinished(decoder)
            return None
        parts = self._parts
        message = "".join(parts) if decoder is not None and not self.text_as_bytes else b"".join(parts)
        self._message_opcode = None
        self._inflating = False
        self._parts = []
        self._message_size = 0
        self._decoder = None
        return message

    def _handle_control(self, frame: Frame) -> _Control:
        self.last_controls += 1
        opcode = frame.opcode
        payload = frame.payload
        if opcode == _PING:
            if not self._close_sent:
                self._pongs.append(payload)  # the oldest goes once too many wait
            return Ping(payload)
        if opcode == _PONG:
            return Pong(payload)
        if len(payload) == 1:
            raise ProtocolError("close frame with a 1-byte payload")
        code = int.from_bytes(payload[:2], "big") if payload else 1005
        if payload and not is_valid_close_code(code):
            raise ProtocolError(f"invalid close code {code}")
        try:
            reason = payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidUTF8("close reason is not valid UTF-8") from None
        self.close_code = code
        self.close_reason = reason
        self._stop_receiving()
        if not self._close_sent:
            # Echo the close (RFC 6455 §5.5.1); an empty close is answered with an empty one.
            self._queue_close(None if code == 1005 else code, reason)
        self.state = _CLOSING
        if not self.client:
            self.close_transport = True  # the server closes TCP first (RFC 6455 §7.1.1)
        return Close(code, reason)

    def receive_eof(self) -> None:
        """The TCP connection ended (the peer closed it, or it was closed here).

        Without a received close frame, :attr:`close_code` becomes 1006.
        """
        if self.close_code is None:
            self.close_code = 1006
            self.close_reason = ""
        self._stop_receiving()
        self.state = _CLOSED
        self.close_transport = True

    def _fail(self, exc: ProtocolError) -> None:
        """The peer broke the protocol: stop receiving; :meth:`fail` sends the close."""
        self.error = exc
        self._stop_receiving()
        if self._close_sent:
            self.fail()  # no close frame to wait for

    def _stop_receiving(self) -> None:
        self._receiving = False
        self.payload_window = _no_window

    def fail(self) -> None:
        """Fail the connection after the peer broke the protocol (RFC 6455 §7.1.7): queue
        a close frame with the code of :attr:`error` and set :attr:`close_transport`.

        Receiving stops at the violation, but the close waits for this call so that the
        application can still answer the messages received before it (Autobahn expects
        their echoes first): call it once they are handled. The I/O layers do when the
        application asks for a message and none is left. Until then sending works. Does
        nothing without an error, or when the transport is to close already.
        """
        if self.error is None or self.close_transport:
            return
        if not self._close_sent:
            self._queue_close(self.error.code, str(self.error))
        if self.state is not _CLOSED:
            self.state = _CLOSING
        self.close_transport = True

    # Sending -----------------------------------------------------------------------

    def send(self, message: str | Buffer) -> None:
        """Send a message: text for a ``str``, binary for any bytes-like object."""
        if type(message) is bytes:
            self._send_message(_BINARY, message)
        elif isinstance(message, str):
            self._send_message(_TEXT, message.encode())
        else:
            try:
                view = memoryview(message)
            except TypeError:
                raise TypeError(f"send() needs a str or a bytes-like object, not {type(message).__name__}") from None
            self._send_message(_BINARY, view.cast("B"))  # lengths in bytes, whatever the item type

    def send_text(self, text: str) -> None:
        """Send a text message."""
        if not isinstance(text, str):
            raise TypeError(f"send_text needs a str, not {type(text).__name__}")
        self._send_message(_TEXT, text.encode())

    def send_binary(self, data: Buffer) -> None:
        """Send a binary message from any bytes-like object."""
        if isinstance(data, str):
            raise TypeError("send_binary needs a bytes-like object, not str; use send_text")
        self.send(data)

    def _send_message(self, opcode: int, payload: bytes | memoryview) -> None:
        if self.state is not _OPEN:
            raise self.closed_exception()
        rsv = 0
        deflate = self._deflate
        if deflate is not None and len(payload) >= deflate.min_size:
            payload = deflate.compress(payload)
            rsv = 4  # RSV1 on the first frame only
        limit = self.max_frame_size
        if limit is None or len(payload) <= limit:
            # One frame, encoded right here: this is the hot path.
            if self.client:
                frame = self._encode_frame(opcode, payload, rsv=rsv, mask_key=next(self._mask_keys))
            else:
                frame = self._encode_frame(opcode, payload, rsv=rsv)
            self._outgoing.append(frame)
            return
        view = memoryview(payload)
        size = len(view)
        for start in range(0, size, limit):
            self._send_frame(opcode, view[start : start + limit], start + limit >= size, rsv)
            opcode = _CONTINUATION
            rsv = 0

    def send_ping(self, payload: str | Buffer = b"") -> None:
        """Send a ping (at most 125 bytes; a str is sent as UTF-8)."""
        self._send_control(_PING, payload)

    def send_pong(self, payload: str | Buffer = b"") -> None:
        """Send an unsolicited pong (at most 125 bytes; a str is sent as UTF-8)."""
        self._send_control(_PONG, payload)

    def _send_control(self, opcode: int, payload: str | Buffer) -> None:
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        if memoryview(payload).nbytes > 125:
            raise ValueError("ping and pong payloads are limited to 125 bytes")
        if self.state is not _OPEN:
            raise self.closed_exception()
        self._send_frame(opcode, payload)

    def send_close(self, code: int | None = 1000, reason: str = "") -> None:
        """Start the closing handshake; the connection then stops sending data.

        ``code`` must be valid on the wire (see :func:`wsfast.is_valid_close_code`), or None
        for a close frame without a code (and then without a reason). ``reason`` is cut to
        123 UTF-8 bytes. Once a close frame has been sent, further calls do nothing. After
        the peer broke the protocol this is :meth:`fail`: the close carries its code.
        """
        if code is None:
            if reason:
                raise ValueError("a close frame without a code cannot carry a reason")
        elif not isinstance(code, int) or not is_valid_close_code(code):
            raise ValueError(f"close code {code!r} cannot be sent")
        if not isinstance(reason, str):
            raise TypeError(f"reason must be a str, not {type(reason).__name__}")
        if self.error is not None:
            self.fail()  # the close says how the peer broke the protocol
            return
        if self._close_sent or self.state is _CLOSED:
            return
        self._queue_close(code, reason)
        self.state = _CLOSING

    def _queue_close(self, code: int | None, reason: str) -> None:
        if code is None:
            payload = b""
        else:
            encoded = reason.encode("utf-8")
            if len(encoded) > _MAX_REASON:
                # Dropping the bytes of a cut-off character keeps the reason valid UTF-8.
                encoded = encoded[:_MAX_REASON].decode("utf-8", "ignore").encode("utf-8")
            payload = code.to_bytes(2, "big") + encoded
        self._send_frame(_CLOSE, payload)
        self._close_sent = True
        self.close_sent_code = None if code is None else int(code)

    def _encode_control(self, opcode: int, payload: Buffer) -> bytes:
        if self.client:
            return self._encode_frame(opcode, payload, mask_key=next(self._mask_keys))
        return self._encode_frame(opcode, payload)

    def _send_frame(self, opcode: int, payload: Buffer, fin: bool = True, rsv: int = 0) -> None:
        if self.client:
            frame = self._encode_frame(opcode, payload, fin=fin, rsv=rsv, mask_key=next(self._mask_keys))
        else:
            frame = self._encode_frame(opcode, payload, fin=fin, rsv=rsv)
        self._outgoing.append(frame)

    def data_to_send(self) -> bytes:
        """Return and forget the bytes queued for sending (b"" when there are none).

        The answers to the peer's pings come first. While they are not taken (an I/O
        layer waits for a peer that reads nothing), only the latest few wait: answering
        the most recent ping is enough (RFC 6455 §5.5.3), and a ping flood cannot grow
        memory.
        """
        outgoing = self._outgoing
        if self._pongs:
            pongs = [self._encode_control(_PONG, payload) for payload in self._pongs]
            self._pongs.clear()
            outgoing = pongs + outgoing
        elif not outgoing:
            return b""
        self._outgoing = []
        return outgoing[0] if len(outgoing) == 1 else b"".join(outgoing)

    # Closing -----------------------------------------------------------------------

    def closed_exception(self) -> ConnectionClosed:
        """The exception describing how the connection closed, for the I/O layer to raise.

        :class:`ConnectionClosedOK` when close frames with 1000, 1001 or no code were
        exchanged both ways, else :class:`ConnectionClosedError`.
        """
        code = 1006 if self.close_code is None else self.close_code
        reason = self.close_reason or ""
        sent = 1005 if self.close_sent_code is None else self.close_sent_code
        clean = self.error is None and self._close_sent and code in _CLEAN_CODES and sent in _CLEAN_CODES
        cls = ConnectionClosedOK if clean else ConnectionClosedError
        return cls(code, reason, self.close_sent_code)

    def __repr__(self) -> str:
        role = "client" if self.client else "server"
        return f"<Connection {role} {self.state.name}>"
