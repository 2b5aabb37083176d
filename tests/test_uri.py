"""Parsing ws:// and wss:// URLs."""

import pytest

from wsfast.exceptions import InvalidURI
from wsfast.uri import WebSocketURI, parse_uri


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("ws://example.com", WebSocketURI(False, "example.com", 80, "/")),
        ("wss://example.com", WebSocketURI(True, "example.com", 443, "/")),
        ("ws://example.com/", WebSocketURI(False, "example.com", 80, "/")),
        ("WS://Example.com:8765/chat", WebSocketURI(False, "Example.com", 8765, "/chat")),
        ("wss://example.com:443/a/b?x=1&y=2", WebSocketURI(True, "example.com", 443, "/a/b?x=1&y=2")),
        ("ws://example.com?x=1", WebSocketURI(False, "example.com", 80, "/?x=1")),
        ("ws://127.0.0.1:9000/", WebSocketURI(False, "127.0.0.1", 9000, "/")),
        ("ws://[::1]/", WebSocketURI(False, "::1", 80, "/")),
        ("wss://[2001:db8::7]:8443/feed", WebSocketURI(True, "2001:db8::7", 8443, "/feed")),
        ("ws://[fe80::1%25eth0]:80/", WebSocketURI(False, "fe80::1%eth0", 80, "/")),
        ("ws://example.com/caf%C3%A9?q=%20", WebSocketURI(False, "example.com", 80, "/caf%C3%A9?q=%20")),
        ("ws://example.com/café?q=é", WebSocketURI(False, "example.com", 80, "/caf%C3%A9?q=%C3%A9")),
        ("ws://bücher.example/", WebSocketURI(False, "xn--bcher-kva.example", 80, "/")),
        ("ws://user:p%40ss@example.com/", WebSocketURI(False, "example.com", 80, "/", ("user", "p@ss"))),
        ("ws://user@example.com/", WebSocketURI(False, "example.com", 80, "/", ("user", ""))),
    ],
)
def test_valid(uri, expected):
    assert parse_uri(uri) == expected


def test_default_port_flag():
    assert parse_uri("ws://h").default_port
    assert parse_uri("wss://h:443").default_port
    assert not parse_uri("wss://h:80").default_port


@pytest.mark.parametrize(
    "uri",
    [
        "http://example.com/",
        "https://example.com/",
        "example.com",
        "/chat",
        "",
        "ws://",
        "ws:///path",
        "ws://:80/",
        "ws://example.com:0/",
        "ws://example.com:65536/",
        "ws://example.com:port/",
        "ws://example.com:/",
        "ws://example.com/#fragment",
        "ws://example.com/#",
        "ws://exa mple.com/",
        "ws://example.com/a b",
        "ws://example.com/\r\nX: y",
        "ws://example.com\t/",
        "ws://[::1/",
        "ws://[::1]x/",
        "ws://[::1]:x/",
        "ws://[not-ipv6]/",
        "ws://::1/",
        "ws://a@b@c/",
        "ws://ex%2Fample.com/",
    ],
)
def test_invalid(uri):
    with pytest.raises(InvalidURI):
        parse_uri(uri)


def test_invalid_type():
    with pytest.raises(InvalidURI):
        parse_uri(b"ws://example.com")  # type: ignore[arg-type]


def test_invalid_uri_is_a_value_error():
    with pytest.raises(ValueError):
        parse_uri("ftp://example.com")
