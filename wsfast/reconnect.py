"""Automatic reconnection: which failures deserve another try, and how long to wait.

Both clients use it (``async for ws in wsfast.asyncio.connect(url)`` and
``for ws in wsfast.reconnecting(url)``): a connection that could not be opened because of
the network, or that closed with a code saying the server went away or will be back, is
opened again after an exponentially growing, randomised delay. A handshake the server
rejected (a 4xx status), a certificate that fails verification, a bad URL or option, and
a connection the server closed normally end the loop instead: trying again would only
repeat them.
"""

from __future__ import annotations

import dataclasses
import math
import random
import ssl

from .exceptions import (
    ConnectionClosed,
    HTTPProxyError,
    InvalidHandshake,
    InvalidHeader,
    InvalidStatus,
    InvalidURI,
    SOCKSProxyError,
)

__all__ = ["RECONNECT_CODES", "Backoff", "after_close", "is_retryable"]

# Close codes after which the server expects clients back: going away (a restart or a
# load balancer draining), abnormal closure (TCP dropped), internal error, service
# restart, try again later.
RECONNECT_CODES = frozenset((1001, 1006, 1011, 1012, 1013))


@dataclasses.dataclass(frozen=True)
class Backoff:
    """The delays between attempts: ``initial`` seconds, times ``factor`` after each
    failure, at most ``maximum``; each delay is drawn uniformly from
    ``[delay * (1 - jitter), delay]`` so that clients dropped together do not all come
    back at once. After a connection stayed open for ``reset_after`` seconds, the next
    failure starts again from ``initial``. The first attempt after a connection closes
    waits too (a server that just restarted is not hit at once by every client).
    """

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 60.0
    jitter: float = 0.5
    reset_after: float = 60.0

    def __post_init__(self) -> None:
        for name in ("initial", "maximum", "reset_after"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value < math.inf):
                raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
        if not (isinstance(self.factor, (int, float)) and 1 <= self.factor < math.inf):
            raise ValueError(f"factor must be a finite number >= 1, not {self.factor!r}")
        if not (isinstance(self.jitter, (int, float)) and 0 <= self.jitter <= 1):
            raise ValueError(f"jitter must be within 0..1, not {self.jitter!r}")
        if self.maximum < self.initial:
            raise ValueError("maximum must be >= initial")

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before the next attempt, after ``failures`` failures in a row
        (0 for the attempt right after a connection closed)."""
        base = min(self.initial * self.factor ** min(failures, 64), self.maximum)
        low = base * (1 - self.jitter)
        return (rng or random).uniform(low, base)


def after_close(closed: ConnectionClosed, closed_here: bool) -> bool:
    """Whether a reconnecting loop opens a new connection after one ended: True for a code
    of :data:`RECONNECT_CODES`, and when the loop's body moved on while the connection was
    still open (``closed_here``); False after a normal close (1000, or no code). Other
    codes raise ``closed``: the server refused something, and would again."""
    if closed_here or closed.code in RECONNECT_CODES:
        return True
    if closed.code in (1000, 1005):
        return False
    raise closed


def is_retryable(exc: BaseException) -> bool:
    """True when opening a connection failed, or an open one ended, in a way that another
    attempt may fix."""
    if isinstance(exc, ConnectionClosed):
        return exc.code in RECONNECT_CODES
    # A proxy that refused the tunnel for a reason that would not change: credentials
    # (407), a target it forbids (403, any 4xx), a SOCKS rule (2), a command or address
    # type it does not support (7, 8), or its authentication. One that could not reach
    # the server (5xx, SOCKS 1, 3-6) may do better on the next attempt.
    if isinstance(exc, HTTPProxyError):
        return exc.status >= 500
    if isinstance(exc, SOCKSProxyError):
        return exc.reply not in (None, 2, 7, 8)
    if isinstance(exc, InvalidStatus):
        # 5xx: the server (or a gateway in front of it) is in trouble; 429: too many
        # clients right now. Any other refusal would be repeated.
        return exc.status >= 500 or exc.status == 429
    if isinstance(exc, (InvalidHeader, InvalidURI, ssl.SSLCertVerificationError, ValueError, TypeError)):
        return False  # a misconfiguration on one side or the other: it would happen again
    # A server that hung up or answered garbage mid-handshake is often just restarting.
    return isinstance(exc, (InvalidHandshake, OSError, TimeoutError, EOFError))
