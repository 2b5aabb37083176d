"""The Autobahn agent for wsfast as uvicorn's WebSocket implementation: an ASGI app that
echoes every message, served by uvicorn (HTTP by h11) with ``wsfast.uvicorn``, its
other settings uvicorn's defaults but for keepalive.

    python autobahn/uvicorn_echo.py PORT AGENT

``AGENT`` is sent as the ``Server`` header, which names the agent in kosoku's reports.
"""

from __future__ import annotations

import sys

import uvicorn


async def echo(scope, receive, send) -> None:
    if scope["type"] != "websocket":
        return
    while True:
        event = await receive()
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif event["type"] == "websocket.receive":
            await send({"type": "websocket.send", "bytes": event.get("bytes"), "text": event.get("text")})
        else:
            return


def main() -> None:
    port, agent = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(
        echo,
        host="127.0.0.1",
        port=port,
        ws="wsfast.uvicorn:WebSocketProtocol",
        http="h11",
        lifespan="off",
        log_level="warning",
        ws_ping_interval=None,  # the fuzzing client fails a case on an unsolicited ping
        server_header=False,
        headers=[("Server", agent)],
    )


if __name__ == "__main__":
    main()
