"""permessage-deflate (RFC 7692): DEFLATE compression of WebSocket messages.

A connection uses it in two steps:

1. The handshake negotiates parameters. :class:`DeflateOptions` says what to offer
   or accept. A client sends ``options.client_offer()`` in ``Sec-WebSocket-Extensions``
   and passes the server's answer to ``options.client_accept(...)``; a server passes the
   client's header to ``options.server_accept(...)`` and sends the header value it
   returns. Both sides end up with the same :class:`DeflateParams`.
2. The connection builds one :class:`PerMessageDeflate` from those parameters and
   compresses the payload of each outgoing data message, setting RSV1 on its first
   frame, and decompresses each incoming message whose first frame has RSV1 set.
   Control frames are never compressed, and a message may always be sent uncompressed:
   messages shorter than ``DeflateOptions.min_size`` are.
"""

from __future__ import annotations

import dataclasses
import re
import zlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

from . import _codec
from .exceptions import InvalidHeader

if TYPE_CHECKING:
    from types import ModuleType
    from typing import TypedDict

    from typing_extensions import Buffer

    from ._codec import Inflater

    class _Parameters(TypedDict, total=False):
        """The checked parameters of one offer or answer (see :func:`_parameters`)."""

        server_no_context_takeover: bool
        client_no_context_takeover: bool
        server_max_window_bits: int
        client_max_window_bits: int | None  # None only in an offer


__all__ = ["DeflateOptions", "DeflateParams", "PerMessageDeflate", "deflate_options", "parse_extensions"]

NAME = "permessage-deflate"

# RFC 6455 §9.1 extension header grammar, with RFC 7230 tokens and quoted strings.
_OWS = re.compile(r"[ \t]*")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_QUOTED = re.compile(r'"((?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*)"')
_QUOTED_PAIR = re.compile(r"\\(.)")
# RFC 7692 §7.1.2: window bits are a decimal 8..15 without leading zeros.
_WINDOW_BITS = re.compile(r"[89]|1[0-5]")

# A Sec-WebSocket-Extensions header: its value, the values of repeated ones, or None.
ExtensionsHeader = str | Iterable[str] | None
Extension = tuple[str, list[tuple[str, str | None]]]
"""One extension of a Sec-WebSocket-Extensions header: its name and (param, value) pairs."""


def _skip_ows(text: str, pos: int) -> int:
    """The position after the optional whitespace at ``pos``."""
    match = _OWS.match(text, pos)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _check_bits(name: str, bits: object, optional: bool = True) -> None:
    if bits is None and optional:
        return
    if type(bits) is not int or not 8 <= bits <= 15:
        raise ValueError(f"{name} must be an int within 8..15{' or None' if optional else ''}, not {bits!r}")


@dataclasses.dataclass(frozen=True)
class DeflateParams:
    """The parameters both endpoints agreed on in the handshake.

    ``server_max_window_bits`` and ``client_max_window_bits`` bound the LZ77 window
    (2**bits bytes) each side compresses with; ``*_no_context_takeover`` means that side
    compresses every message on its own, without referring to earlier messages.
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15

    def __post_init__(self) -> None:
        _check_bits("server_max_window_bits", self.server_max_window_bits, optional=False)
        _check_bits("client_max_window_bits", self.client_max_window_bits, optional=False)


@dataclasses.dataclass(frozen=True)
class DeflateOptions:
    """What an endpoint offers (client) or accepts (server), plus local zlib tuning.

    Negotiated settings, as a client's requests or a server's demands:

    - ``server_max_window_bits`` (8..15): the largest window the server may compress
      with. A smaller window saves the receiver memory (2**bits bytes) but compresses
      less. A client requests it; a server applies it to itself.
    - ``client_max_window_bits`` (8..15): the same for the client. A client always offers
      to accept any limit; with a number it also promises to stay within it. A server
      asks for it whenever the client's offer allows.
    - ``server_no_context_takeover`` / ``client_no_context_takeover``: that side
      compresses each message independently: repeated content compresses worse, but
      neither side carries that direction's history from one message to the next.

    Local settings, never sent:

    - ``level`` (0..9, or -1 for zlib's default of 6) and ``mem_level`` (1..9): zlib's
      speed / ratio / memory trade-offs for compressing.
    - ``min_size``: messages shorter than this many bytes are sent uncompressed
      (0 compresses everything). Tiny messages rarely shrink: 5 bytes of text take
      7 bytes compressed, unless an earlier message repeats them.
    """

    server_max_window_bits: int | None = None
    client_max_window_bits: int | None = None
    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    level: int = -1
    mem_level: int = 8
    min_size: int = 0

    def __post_init__(self) -> None:
        _check_bits("server_max_window_bits", self.server_max_window_bits)
        _check_bits("client_max_window_bits", self.client_max_window_bits)
        if type(self.level) is not int or not -1 <= self.level <= 9:
            raise ValueError(f"level must be within -1..9, not {self.level!r}")
        if type(self.mem_level) is not int or not 1 <= self.mem_level <= 9:
            raise ValueError(f"mem_level must be within 1..9, not {self.mem_level!r}")
        if type(self.min_size) is not int or self.min_size < 0:
            raise ValueError(f"min_size must be an int >= 0, not {self.min_size!r}")

    def client_offer(self) -> str:
        """The ``Sec-WebSocket-Extensions`` value a client sends."""
        parts = [NAME]
        if self.server_max_window_bits is not None:
            parts.append(f"server_max_window_bits={self.server_max_window_bits}")
        if self.client_max_window_bits is None:
            parts.append("client_max_window_bits")
        else:
            parts.append(f"client_max_window_bits={self.client_max_window_bits}")
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        return "; ".join(parts)

    def client_accept(self, header: ExtensionsHeader) -> DeflateParams | None:
        """Check the server's ``Sec-WebSocket-Extensions`` answer to :meth:`client_offer`.

        ``header`` is the header's value, a list of its values when it was repeated, or
        None when absent. Returns the agreed parameters, or None when the server declined
        compression. Raises :class:`InvalidHeader` for an answer RFC 7692 forbids: another
        or a second extension, an unknown, repeated or malformed parameter, or a setting
        that contradicts the offer.
        """
        extensions = parse_extensions(header)
        if not extensions:
            return None
        if len(extensions) > 1:
            names = ", ".join(name for name, _ in extensions)
            raise InvalidHeader(f"server enabled several extensions ({names}); only {NAME} was offered")
        name, params = extensions[0]
        if name.lower() != NAME:
            raise InvalidHeader(f"server enabled extension {name!r}, which was not offered")
        values = _parameters(params, offer=False)
        server_no_context_takeover = values.get("server_no_context_takeover", False)
        if self.server_no_context_takeover and not server_no_context_takeover:
            raise InvalidHeader(f"server did not accept server_no_context_takeover in its {NAME} answer")
        server_bits = values.get("server_max_window_bits", 15)
        if self.server_max_window_bits is not None and server_bits > self.server_max_window_bits:
            raise InvalidHeader(
                f"server_max_window_bits={server_bits} in the {NAME} answer exceeds "
                f"the {self.server_max_window_bits} offered"
            )
        client_bits = values.get("client_max_window_bits") or 15  # never None in an answer
        return DeflateParams(
            server_no_context_takeover=server_no_context_takeover,
            client_no_context_takeover=self.client_no_context_takeover
            or values.get("client_no_context_takeover", False),
            server_max_window_bits=server_bits,
            # The client keeps the promise of its offer even if the server asks for less.
            client_max_window_bits=min(client_bits, self.client_max_window_bits or 15),
        )

    def server_accept(self, header: ExtensionsHeader) -> tuple[DeflateParams, str] | None:
        """Pick the first acceptable offer in the client's ``Sec-WebSocket-Extensions``.

        ``header`` is the header's value, a list of its values when it was repeated, or
        None when absent. Returns the agreed parameters and the header value to answer
        with, or None when the client offered no acceptable ``permessage-deflate``
        (offers with unknown, repeated or invalid parameters are declined, as RFC 7692
        requires). Raises :class:`InvalidHeader` when the header is malformed.
        """
        for name, params in parse_extensions(header):
            if name.lower() != NAME:
                continue
            try:
                offer = _parameters(params, offer=True)
            except InvalidHeader:
                continue
            return self._answer(offer)
        return None

    def _answer(self, offer: _Parameters) -> tuple[DeflateParams, str]:
        """Agreed parameters and response header for one valid client offer."""
        parts = [NAME]
        server_no_context_takeover = self.server_no_context_takeover or "server_no_context_takeover" in offer
        if server_no_context_takeover:
            parts.append("server_no_context_takeover")
        client_no_context_takeover = self.client_no_context_takeover or "client_no_context_takeover" in offer
        if client_no_context_takeover:
            parts.append("client_no_context_takeover")
        server_bits = 15
        if "server_max_window_bits" in offer or self.server_max_window_bits is not None:
            server_bits = min(offer.get("server_max_window_bits", 15), self.server_max_window_bits or 15)
            parts.append(f"server_max_window_bits={server_bits}")
        client_bits = 15
        # The server may limit the client's window only when the client said it can comply.
        if "client_max_window_bits" in offer and self.client_max_window_bits is not None:
            client_bits = min(offer["client_max_window_bits"] or 15, self.client_max_window_bits)
            parts.append(f"client_max_window_bits={client_bits}")
        params = DeflateParams(server_no_context_takeover, client_no_context_takeover, server_bits, client_bits)
        return params, "; ".join(parts)


def deflate_options(compression: str | DeflateOptions | None) -> DeflateOptions | None:
    """What a ``compression`` argument of the connect and serve functions asks for.

    ``"deflate"`` means :class:`DeflateOptions` with its defaults, a
    :class:`DeflateOptions` instance is used as it is, and None switches compression off.
    """
    if compression is None or isinstance(compression, DeflateOptions):
        return compression
    if compression == "deflate":
        return DeflateOptions()
    raise ValueError(f'compression must be "deflate", None or a DeflateOptions, not {compression!r}')


def _parameters(params: list[tuple[str, str | None]], *, offer: bool) -> _Parameters:
    """Check the parameters of one ``permessage-deflate`` offer or answer; return them as a dict.

    No-context-takeover flags map to True and window bits to their int; only an offer's
    ``client_max_window_bits`` may lack a value, which maps to None. Raises
    :class:`InvalidHeader` for an unknown, repeated or invalid parameter.
    """
    where = "offer" if offer else "answer"
    values: dict[str, bool | int | None] = {}
    for name, value in params:
        name = name.lower()
        if name in values:
            raise InvalidHeader(f"parameter {name} is repeated in the {NAME} {where}")
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:
                raise InvalidHeader(f"{name} must not have a value, got {value!r} in the {NAME} {where}")
            values[name] = True
        elif name in ("server_max_window_bits", "client_max_window_bits"):
            if value is None:
                if not offer or name == "server_max_window_bits":
                    raise InvalidHeader(f"{name} without a value in the {NAME} {where}")
                values[name] = None
            elif _WINDOW_BITS.fullmatch(value):
                values[name] = int(value)
            else:
                raise InvalidHeader(f"{name}={value!r} is not within 8..15 in the {NAME} {where}")
        else:
            raise InvalidHeader(f"unknown parameter {name} in the {NAME} {where}")
    return cast("_Parameters", values)


def parse_extensions(header: ExtensionsHeader) -> list[Extension]:
    """Parse a ``Sec-WebSocket-Extensions`` value into ``[(name, [(param, value), ...]), ...]``.

    ``header`` is a str, a list of the values of repeated headers, or None. A parameter
    without ``=`` has the value None; quoted values are unescaped; names keep their case.
    Raises :class:`InvalidHeader` when the value does not follow RFC 6455 §9.1.
    """
    if header is None:
        return []
    text = header if isinstance(header, str) else ", ".join(header)
    extensions: list[Extension] = []
    end = len(text)
    pos = 0
    while True:
        pos = _skip_ows(text, pos)
        if pos == end:
            return extensions
        if text[pos] == ",":  # RFC 7230 §7: empty list elements are allowed
            pos += 1
            continue
        match = _TOKEN.match(text, pos)
        if match is None:
            raise InvalidHeader(f"malformed Sec-WebSocket-Extensions {text!r} at {pos}: expected an extension name")
        params: list[tuple[str, str | None]] = []
        extensions.append((match.group(), params))
        pos = _skip_ows(text, match.end())
        while pos < end and text[pos] == ";":
            pos = _skip_ows(text, pos + 1)
            match = _TOKEN.match(text, pos)
            if match is None:
                raise InvalidHeader(f"malformed Sec-WebSocket-Extensions {text!r} at {pos}: expected a parameter name")
            name = match.group()
            value: str | None = None
            pos = _skip_ows(text, match.end())
            if pos < end and text[pos] == "=":
                pos = _skip_ows(text, pos + 1)
                match = _TOKEN.match(text, pos)
                if match is not None:
                    value = match.group()
                else:
                    match = _QUOTED.match(text, pos)
                    if match is None:
                        raise InvalidHeader(f"malformed Sec-WebSocket-Extensions {text!r} at {pos}: expected a value")
                    value = _QUOTED_PAIR.sub(r"\1", match.group(1))
                pos = _skip_ows(text, match.end())
            params.append((name, value))
        if pos < end and text[pos] != ",":
            raise InvalidHeader(f"malformed Sec-WebSocket-Extensions {text!r} at {pos}: expected ',' or ';'")


class PerMessageDeflate:
    """Compressor and decompressor of one connection, built from the negotiated params.

    ``client`` tells which side of ``params`` is ours. ``options`` supplies the local
    zlib settings and ``min_size`` (defaults: :class:`DeflateOptions`). Messages are
    decompressed by :attr:`inflater`, an ``Inflater`` of ``codec`` (the frame codec
    module the connection uses, by default the one wsfast selected), which that codec's
    parser can use to inflate whole messages itself. Errors raised by :meth:`decompress`
    and :meth:`decompress_frame` are fatal for the connection: fail it with the
    exception's ``code``.

    Memory per connection, from zlib: 2**(window bits + 2) + 2**(mem_level + 9) bytes to
    compress (256 KiB with the defaults) and about 2**(window bits) to decompress, plus, in
    the compiled codec, a buffer for inflating text that it keeps up to 64 KiB.
    """

    __slots__ = ("_compressor", "_flush_mode", "client", "inflater", "min_size", "params")

    inflater: Inflater

    def __init__(
        self,
        params: DeflateParams,
        *,
        client: bool,
        options: DeflateOptions | None = None,
        codec: ModuleType | None = None,
    ) -> None:
        if options is None:
            options = DeflateOptions()
        self.params = params
        self.client = bool(client)
        self.min_size = options.min_size
        if client:
            send_bits, send_reset = params.client_max_window_bits, params.client_no_context_takeover
            receive_bits, receive_reset = params.server_max_window_bits, params.server_no_context_takeover
        else:
            send_bits, send_reset = params.server_max_window_bits, params.server_no_context_takeover
            receive_bits, receive_reset = params.client_max_window_bits, params.client_no_context_takeover
        # zlib refuses an 8-bit window for raw deflate. A 9-bit one is safe in its place:
        # zlib never refers further back than the window size minus 262 bytes, 250 here.
        self._compressor = zlib.compressobj(options.level, zlib.DEFLATED, -max(send_bits, 9), options.mem_level)
        # A full flush ends the message like a sync flush does, and also makes zlib forget
        # everything before it: the cheap way to compress each message on its own.
        self._flush_mode = zlib.Z_FULL_FLUSH if send_reset else zlib.Z_SYNC_FLUSH
        self.inflater = (_codec.codec if codec is None else codec).Inflater(
            receive_bits, no_context_takeover=receive_reset
        )

    def __repr__(self) -> str:
        return f"PerMessageDeflate({self.params!r}, client={self.client})"

    def compress(self, message: Buffer) -> bytes:
        """Compress one whole outgoing data message (bytes-like) into its payload.

        Send the result in a text or binary frame with RSV1 set (and in continuation
        frames without it, if you fragment it).
        """
        compressor = self._compressor
        head = compressor.compress(message)
        # The flush always ends with the 4-byte trailer, which the sender strips.
        tail = compressor.flush(self._flush_mode)[:-4]
        return head + tail if head else tail

    def decompress(
        self, message: bytes | bytearray | memoryview | Iterable[Buffer], max_size: int | None = None
    ) -> bytes:
        """Decompress the payload of one whole incoming message whose first frame had RSV1.

        ``message`` is a bytes-like payload, or a list of the payloads of its frames in
        order. Raises :class:`PayloadTooBig` as soon as the message would exceed
        ``max_size`` bytes (None: no limit), without producing more than that; and
        :class:`ProtocolError` with code 1007 when the data is not valid DEFLATE.
        """
        if isinstance(message, (bytes, bytearray, memoryview)):
            return self.decompress_frame(message, True, max_size)
        fragments = list(message)
        if not fragments:
            fragments = [b""]
        last = len(fragments) - 1
        pieces = []
        size = 0
        for index, fragment in enumerate(fragments):
            piece = self.decompress_frame(fragment, index == last, None if max_size is None else max_size - size)
            size += len(piece)
            pieces.append(piece)
        return b"".join(pieces)

    def decompress_frame(self, payload: Buffer, fin: bool, max_size: int | None = None) -> bytes:
        """Decompress the payload of one frame of an incoming compressed message.

        Call it for every frame of the message, in order, with the frame's ``fin`` bit,
        and pass the bytes it returns on as that frame's data. ``max_size`` is how many
        bytes this frame may still add to the message (None: no limit). Raises like
        :meth:`decompress`.
        """
        return self.inflater.inflate(payload, fin, max_size)
