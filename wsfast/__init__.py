"""wsfast: a fast, correct WebSocket (RFC 6455) library."""

from ._codec import (
    DEFAULT_MAX_SIZE,
    IMPLEMENTATION,
    CodecInfo,
    Frame,
    FrameParser,
    codec_info,
    encode_frame,
    mask,
    mask_inplace,
)
from .batch import Batch
from .client import CertificateInfo, Client, connect, reconnecting
from .deflate import DeflateOptions
from .enums import CloseCode, Opcode, is_valid_close_code
from .exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    DecodeError,
    HTTPProxyError,
    InvalidHandshake,
    InvalidHeader,
    InvalidStatus,
    InvalidURI,
    InvalidUTF8,
    PayloadTooBig,
    ProtocolError,
    ProxyError,
    SOCKSProxyError,
    WebSocketError,
)
from .protocol import State
from .reconnect import Backoff
from .server import Server, ServerConnection, serve

__all__ = [
    "DEFAULT_MAX_SIZE",
    "IMPLEMENTATION",
    "Backoff",
    "Batch",
    "CertificateInfo",
    "Client",
    "CloseCode",
    "CodecInfo",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "DecodeError",
    "DeflateOptions",
    "Frame",
    "FrameParser",
    "HTTPProxyError",
    "InvalidHandshake",
    "InvalidHeader",
    "InvalidStatus",
    "InvalidURI",
    "InvalidUTF8",
    "Opcode",
    "PayloadTooBig",
    "ProtocolError",
    "ProxyError",
    "SOCKSProxyError",
    "Server",
    "ServerConnection",
    "State",
    "WebSocketError",
    "codec_info",
    "connect",
    "encode_frame",
    "is_valid_close_code",
    "mask",
    "mask_inplace",
    "reconnecting",
    "serve",
]

__version__ = "0.1.0"
