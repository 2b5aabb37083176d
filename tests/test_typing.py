"""The connections are generic over the messages they hand out (``Client[M]``): type
checkers see ``str | bytes`` without ``decode=`` and what the decoder returns with it
(tests/typed_decode.py, checked here with mypy), and at run time the types can be
subscripted, in both codec twins, without costing the connections anything."""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from dataclasses import dataclass
from pathlib import Path

import pytest

import wsfast
import wsfast.asyncio
import wsfast.client
import wsfast.server
from wsfast import _pure

ROOT = Path(__file__).resolve().parent.parent

CONNECTIONS = [
    wsfast.Client,
    wsfast.ServerConnection,
    wsfast.asyncio.WebSocket,
    wsfast.asyncio.Client,
    wsfast.asyncio.ServerConnection,
]


@dataclass
class Tick:
    symbol: str
    px: float


def test_decode_types_check_with_mypy(tmp_path):
    """mypy --strict agrees with every expectation of tests/typed_decode.py."""
    pytest.importorskip("mypy")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "mypy_cache"),
            str(ROOT / "tests" / "typed_decode.py"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("connection", CONNECTIONS, ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_connections_take_a_message_type_at_run_time(connection):
    alias = connection[Tick]
    assert typing.get_origin(alias) is connection
    assert typing.get_args(alias) == (Tick,)
    assert typing.get_args(connection[str | bytes]) == (str | bytes,)
    assert typing.Generic in connection.__mro__
    # Still without a __dict__: Generic brings no slot and no attribute per instance.
    assert connection.__dictoffset__ == 0


def test_annotations_evaluate_at_run_time():
    """Aliases and annotations that runtime tools evaluate (no ``from __future__ import
    annotations`` in the module that writes them)."""
    namespace: dict[str, object] = {}
    exec(
        "import wsfast, wsfast.asyncio\n"
        "TickClient = wsfast.Client[Tick]\n"
        "AsyncTicks = wsfast.asyncio.Client[Tick]\n"
        "def handler(ws: wsfast.ServerConnection[Tick]) -> None: ...\n"
        "async def async_handler(ws: wsfast.asyncio.ServerConnection[Tick]) -> None: ...\n"
        "Handler = wsfast.server.Handler[Tick]\n",
        {"Tick": Tick, "wsfast": wsfast},
        namespace,
    )
    assert typing.get_type_hints(namespace["handler"])["ws"] == wsfast.ServerConnection[Tick]
    assert typing.get_type_hints(namespace["async_handler"])["ws"] == wsfast.asyncio.ServerConnection[Tick]
    assert typing.get_args(namespace["Handler"])[0] == [wsfast.ServerConnection[Tick]]


def test_generic_comes_after_the_codec_receiver():
    """The connections derive from the chosen twin's receivers (a Cython class in the
    compiled twin) and Generic, which comes last: the receivers' own methods run."""
    codec = wsfast._codec.codec
    for connection, receiver in [
        (wsfast.Client, codec.BlockingReceiver),
        (wsfast.asyncio.Client, codec.Receiver),
    ]:
        mro = connection.__mro__
        assert receiver in mro
        assert mro.index(receiver) < mro.index(typing.Generic)
        assert connection.recv is receiver.recv


def test_pure_receivers_are_generic():
    for receiver in (_pure.BlockingReceiver, _pure.Receiver):
        assert typing.get_args(receiver[Tick]) == (Tick,)


def test_pure_twin_connections_take_a_message_type():
    """With WSFAST_NO_EXTENSIONS=1 the connections are generic too."""
    code = (
        "import typing, wsfast, wsfast.asyncio\n"
        "assert wsfast.IMPLEMENTATION == 'python'\n"
        "for cls in (wsfast.Client, wsfast.ServerConnection, wsfast.asyncio.Client, wsfast.asyncio.ServerConnection):\n"
        "    assert typing.get_args(cls[int]) == (int,), cls\n"
        "    assert cls.__dictoffset__ == 0, cls\n"
    )
    env = {**os.environ, "WSFAST_NO_EXTENSIONS": "1"}
    env.pop("WSFAST_REQUIRE_EXTENSION", None)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
