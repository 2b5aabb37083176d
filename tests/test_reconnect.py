"""The reconnection policy on its own: what is retried and how long to wait."""

import random
import ssl

import pytest

from wsfast.exceptions import (
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidHeader,
    InvalidStatus,
    InvalidURI,
)
from wsfast.reconnect import Backoff, is_retryable


def test_backoff_grows_to_its_maximum_with_jitter():
    backoff = Backoff(initial=1, factor=2, maximum=10, jitter=0.5)
    rng = random.Random(7)
    for failures, base in [(0, 1), (1, 2), (2, 4), (3, 8), (4, 10), (50, 10), (10**6, 10)]:
        delays = [backoff.delay(failures, rng) for _ in range(200)]
        assert base * 0.5 <= min(delays) and max(delays) <= base
        assert max(delays) - min(delays) > base * 0.3  # really spread


def test_backoff_without_jitter_is_exact():
    backoff = Backoff(initial=0.5, factor=3, maximum=100, jitter=0)
    assert [backoff.delay(n) for n in range(4)] == [0.5, 1.5, 4.5, 13.5]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": -1},
        {"factor": 0.5},
        {"maximum": float("inf")},
        {"jitter": 1.5},
        {"initial": 5, "maximum": 1},
        {"reset_after": float("nan")},
        {"initial": "1"},
    ],
)
def test_bad_backoff(kwargs):
    with pytest.raises(ValueError):
        Backoff(**kwargs)


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(),
        ConnectionResetError(),
        TimeoutError(),
        OSError("network unreachable"),
        InvalidStatus(503),
        InvalidStatus(502),
        InvalidStatus(429),
        InvalidHandshake("connection closed before the handshake response arrived"),
        ConnectionClosedError(1006),
        ConnectionClosedError(1011),
        ConnectionClosedError(1012),
        ConnectionClosedError(1013),
        ConnectionClosedOK(1001),
    ],
)
def test_retryable(exc):
    assert is_retryable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        InvalidStatus(400),
        InvalidStatus(401),
        InvalidStatus(403),
        InvalidStatus(404),
        InvalidHeader("wrong Sec-WebSocket-Accept"),
        InvalidURI("nope"),
        ssl.SSLCertVerificationError("bad certificate"),
        ConnectionClosedOK(1000),
        ConnectionClosedError(1002),
        ConnectionClosedError(1008),
        ConnectionClosedError(4000),
        ValueError("bad option"),
        RuntimeError("a bug"),
    ],
)
def test_not_retryable(exc):
    assert not is_retryable(exc)
