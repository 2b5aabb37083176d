"""The keepalive policy on its own: when it pings, when it gives up, what it measures."""

import math

import pytest

from wsfast.keepalive import Keepalive


def test_pings_every_interval_and_measures_latency():
    keepalive = Keepalive(20, 10, now=100.0)
    assert keepalive.deadline == 120.0
    assert keepalive.ping_due(119.9) is None
    payload = keepalive.ping_due(120.0)
    assert isinstance(payload, bytes) and len(payload) == 4
    assert keepalive.deadline == 130.0  # the pong is due before the next ping
    assert not keepalive.pong_received(b"other", 120.5)  # someone else's ping
    assert keepalive.latency is None
    assert keepalive.pong_received(payload, 120.25)
    assert keepalive.latency == pytest.approx(0.25)
    assert keepalive.deadline == 140.0
    assert keepalive.ping_due(140.0) != payload  # a fresh payload each time


def test_silence_after_a_ping_expires():
    keepalive = Keepalive(20, 10, now=0.0)
    keepalive.ping_due(20.0)
    assert not keepalive.expired(29.9)
    assert keepalive.expired(30.0)


def test_data_arriving_keeps_a_busy_peer_alive():
    """A pong stuck behind a flood of messages is no reason to drop the connection."""
    keepalive = Keepalive(20, 10, now=0.0)
    keepalive.ping_due(20.0)
    keepalive.last_received = 29.0
    assert not keepalive.expired(38.9)
    assert keepalive.deadline == 39.0
    assert keepalive.expired(39.0)


def test_no_second_ping_while_one_is_unanswered():
    keepalive = Keepalive(5, 100, now=0.0)
    first = keepalive.ping_due(5.0)
    assert first is not None
    assert keepalive.ping_due(10.0) is None
    assert keepalive.pong_received(first, 11.0)
    assert keepalive.ping_due(15.0) is not None


def test_timeout_none_only_measures():
    keepalive = Keepalive(1, None, now=0.0)
    keepalive.ping_due(1.0)
    assert not keepalive.expired(1e9)
    assert keepalive.deadline == 2.0


def test_interval_none_is_off():
    keepalive = Keepalive(None, 10, now=0.0)
    assert keepalive.deadline == math.inf
    assert keepalive.ping_due(1e9) is None
    assert not keepalive.expired(1e9)


@pytest.mark.parametrize("value", [0, -1, math.inf, math.nan, "5"])
def test_bad_options(value):
    with pytest.raises(ValueError):
        Keepalive(value, 10, now=0.0)
    with pytest.raises(ValueError):
        Keepalive(10, value, now=0.0)
