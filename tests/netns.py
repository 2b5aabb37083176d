"""A peer in a network namespace of its own, behind a veth link the test can take down:
the peer then goes silent with no FIN and no reset, as when a cable is pulled or a NAT
entry expires. Needs root and iproute2 (``ip netns``); tests skip without them, unless
``WSFAST_REQUIRE_NETNS=1`` (``.ci/pythons`` sets it), which makes that a failure."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import sys

import pytest

_COUNTER = itertools.count()


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def available() -> str | None:
    """None when namespaces can be made here, else why not."""
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    return None


class Link:
    """A namespace holding ``peer_address``, linked to this host's ``host_address``."""

    def __init__(self, index: int) -> None:
        tag = f"{os.getpid() % 10000}x{index}"
        self.namespace = f"wsfast-{tag}"
        self.host_end = f"wsh{tag}"[:15]
        self.peer_end = f"wsp{tag}"[:15]
        subnet = f"10.{200 + index % 50}.{os.getpid() % 250}"
        self.host_address = f"{subnet}.1"
        self.peer_address = f"{subnet}.2"

    def up(self) -> None:
        _ip("netns", "add", self.namespace)
        _ip("link", "add", self.host_end, "type", "veth", "peer", "name", self.peer_end)
        _ip("link", "set", self.peer_end, "netns", self.namespace)
        _ip("addr", "add", f"{self.host_address}/30", "dev", self.host_end)
        _ip("link", "set", self.host_end, "up")
        _ip("-n", self.namespace, "addr", "add", f"{self.peer_address}/30", "dev", self.peer_end)
        _ip("-n", self.namespace, "link", "set", self.peer_end, "up")
        _ip("-n", self.namespace, "link", "set", "lo", "up")

    def cut(self) -> None:
        """Take the link down: from now on every packet is lost, silently."""
        _ip("link", "set", self.host_end, "down")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            _ip("link", "del", self.host_end)
        with contextlib.suppress(subprocess.SubprocessError):
            _ip("netns", "del", self.namespace)

    def run(self, *command: str, **popen) -> subprocess.Popen:
        """Start ``command`` inside the namespace."""
        return subprocess.Popen(["ip", "netns", "exec", self.namespace, *command], **popen)


def _skip(reason: str) -> None:
    if os.environ.get("WSFAST_REQUIRE_NETNS"):
        pytest.fail(f"WSFAST_REQUIRE_NETNS is set but {reason}", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def isolated_link():
    """A fresh :class:`Link`, removed afterwards; skips the test when none can be made."""
    reason = available()
    if reason is not None:
        _skip(reason)
    link = Link(next(_COUNTER))
    try:
        link.up()
    except subprocess.SubprocessError as exc:
        link.remove()
        _skip(f"cannot make a network namespace here: {exc}")
    try:
        yield link
    finally:
        link.remove()


@contextlib.contextmanager
def echo_server_in(link: Link, *arguments: str):
    """``python -m wsfast echo`` inside the namespace; yields its ws:// URL."""
    process = link.run(
        sys.executable,
        "-m",
        "wsfast",
        "echo",
        "--host",
        link.peer_address,
        "--port",
        "0",
        *arguments,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = process.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"the echo server did not start: {line!r}")
        url = line.split("listening on ")[1].split()[0]
        yield url
    finally:
        process.kill()
        process.wait(10)
