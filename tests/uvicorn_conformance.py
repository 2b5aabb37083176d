"""A pytest plugin that runs uvicorn's own WebSocket tests for wsfast's protocol too.

Load it into a run of ``tests/protocols/test_websocket.py`` from uvicorn's source
distribution, from that folder (``.ci/run`` does this)::

    PYTHONPATH=/path/to/wsfast/tests python -m pytest -p uvicorn_conformance \\
        -o addopts="" tests/protocols/test_websocket.py

Every test that takes the ``ws_protocol_cls`` fixture then runs with uvicorn's two
implementations and with :class:`wsfast.uvicorn.WebSocketProtocol`. The few tests that
check what wsfast deliberately does differently are expected to fail for it alone
(strictly: one that passes fails the run), each for the reason given below.
"""

import pytest

IMPLEMENTATIONS = {
    "wsproto": "uvicorn.protocols.websockets.wsproto_impl:WSProtocol",
    "websockets-sansio": "uvicorn.protocols.websockets.websockets_sansio_impl:WebSocketsSansIOProtocol",
    "wsfast": "wsfast.uvicorn:WebSocketProtocol",
}

_UVICORN_CLASSES_ONLY = "asserts that the protocol is an instance of one of uvicorn's own classes"
WSFAST_DIFFERS = {
    "test_server_keepalive_ping_pong": _UVICORN_CLASSES_ONLY,
    "test_server_keepalive_disabled": _UVICORN_CLASSES_ONLY,
    "test_close_resumes_reads_paused_on_an_unconsumed_message": (
        "expects reading to pause after one unread message; wsfast pauses once more than ws_max_queue messages wait"
    ),
}


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc):
    """Parametrize ``ws_protocol_cls`` with every implementation.

    A parametrize mark naming a fixture takes precedence over the fixture's own params;
    ``indirect`` still hands each import string to uvicorn's fixture, which imports it.
    """
    if "ws_protocol_cls" not in metafunc.fixturenames:
        return
    reason = WSFAST_DIFFERS.get(metafunc.function.__name__)
    params = []
    for name, path in IMPLEMENTATIONS.items():
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if name == "wsfast" and reason else []
        params.append(pytest.param(path, id=name, marks=marks))
    metafunc.definition.add_marker(pytest.mark.parametrize("ws_protocol_cls", params, indirect=True))
