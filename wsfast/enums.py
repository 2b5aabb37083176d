"""Opcodes and close codes of RFC 6455, shared by both codec twins."""

from __future__ import annotations

import enum

__all__ = ["Opcode", "CloseCode", "is_valid_close_code"]


class Opcode(enum.IntEnum):
    """Frame types (RFC 6455 §5.2). Frames carry plain ints; compare them with these."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class CloseCode(enum.IntEnum):
    """Close status codes (RFC 6455 §7.4.1 and the IANA registry)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005  # never sent on the wire
    ABNORMAL_CLOSURE = 1006  # never sent on the wire
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015  # never sent on the wire


# Codes a peer may put in a close frame: the registered ones that are not
# reserved for local use, and the private/registered ranges 3000-4999.
_SENDABLE = frozenset(range(1000, 1004)) | frozenset(range(1007, 1015))


def is_valid_close_code(code: int) -> bool:
    """True if ``code`` may appear in a close frame on the wire."""
    return code in _SENDABLE or 3000 <= code <= 4999
