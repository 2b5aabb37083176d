"""Keepalive: periodic pings that measure latency and find a peer that silently died.

:class:`Keepalive` holds the policy and its state, without I/O and without a clock of its
own: the I/O layers tell it the time. Every ``interval`` seconds it asks for a ping; the
connection fails when, after a ping, nothing at all arrives for ``timeout`` seconds —
neither the pong nor anything else. Data still arriving proves the peer alive, so a fast
feed whose pong waits behind many messages is not dropped, while TCP that died without a
FIN (a cable pulled, a NAT entry expired) is found within ``interval + timeout``.
"""

from __future__ import annotations

import math
import os

__all__ = ["DEFAULT_PING_INTERVAL", "DEFAULT_PING_TIMEOUT", "Keepalive"]

DEFAULT_PING_INTERVAL = 20.0
DEFAULT_PING_TIMEOUT = 20.0


def check_keepalive_options(ping_interval: float | None, ping_timeout: float | None) -> None:
    """Raise ValueError for a ``ping_interval`` or ``ping_timeout`` that is not > 0 or None."""
    for name, value in (("ping_interval", ping_interval), ("ping_timeout", ping_timeout)):
        if value is not None and not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a number > 0 or None, not {value!r}")


class Keepalive:
    """When to ping, and when the peer counts as dead.

    ``interval`` (seconds between pings) None means no keepalive at all; ``timeout``
    None means pings only measure :attr:`latency` and never fail the connection.
    """

    __slots__ = ("_next_ping", "_ping_payload", "_ping_sent", "interval", "last_received", "latency", "timeout")

    def __init__(self, interval: float | None, timeout: float | None, now: float) -> None:
        check_keepalive_options(interval, timeout)
        self.interval = interval
        self.timeout = timeout
        self.latency: float | None = None
        """Seconds the last keepalive ping took to be answered; None before the first pong."""
        self._next_ping = math.inf if interval is None else now + interval
        self._ping_payload: bytes | None = None  # of the ping waiting for its pong
        self._ping_sent = 0.0
        self.last_received = now
        """When bytes last arrived from the peer: the I/O layer sets it on every read (an
        attribute, not a method, as reads are the hot path)."""

    @property
    def deadline(self) -> float:
        """The time of the next thing to do: a ping to send, or a pong overdue."""
        if self._ping_payload is not None and self.timeout is not None:
            return min(self._next_ping, max(self._ping_sent, self.last_received) + self.timeout)
        return self._next_ping

    def ping_due(self, now: float) -> bytes | None:
        """The payload of a ping to send now, or None. Call it once :attr:`deadline` has
        passed (earlier calls return None)."""
        interval = self.interval
        if now < self._next_ping or interval is None:  # no interval: _next_ping is inf
            return None
        self._next_ping = now + interval
        if self._ping_payload is not None:
            return None  # the last one is still unanswered: sending more would not help
        self._ping_payload = os.urandom(4)
        self._ping_sent = now
        return self._ping_payload

    def expired(self, now: float) -> bool:
        """True once a ping went unanswered and nothing else came for ``timeout`` seconds."""
        return (
            self._ping_payload is not None
            and self.timeout is not None
            and now >= max(self._ping_sent, self.last_received) + self.timeout
        )

    def pong_received(self, payload: bytes, now: float) -> bool:
        """A pong arrived; True (and :attr:`latency` updated) if it answers the keepalive ping."""
        self.last_received = now
        if payload != self._ping_payload:
            return False
        self._ping_payload = None
        self.latency = now - self._ping_sent
        return True
