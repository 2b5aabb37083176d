"""A FastAPI application whose WebSockets run on wsfast, under uvicorn.

    pip install 'wsfast[uvicorn]' fastapi
    python examples/fastapi_app.py [--port 8000] [--duration S]

The same as ``uvicorn fastapi_app:app --ws wsfast.uvicorn:WebSocketProtocol``: the
application code does not change. Two endpoints: ``/echo`` sends every text message back,
``/ticks?count=N`` sends N JSON messages and closes.
"""

import argparse
import socket
import threading

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()


@app.websocket("/echo")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass


@app.websocket("/ticks")
async def ticks(websocket: WebSocket, count: int = 100) -> None:
    await websocket.accept()
    for seq in range(1, count + 1):
        await websocket.send_json({"seq": seq})
    await websocket.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a FastAPI app with wsfast's WebSockets.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    args = parser.parse_args(argv)

    config = uvicorn.Config(app, ws="wsfast.uvicorn:WebSocketProtocol", log_level="warning")
    server = uvicorn.Server(config)
    # A socket of our own, so that --port 0 can tell which port it got.
    sock = socket.create_server((args.host, args.port))
    if args.duration is not None:
        timer = threading.Timer(args.duration, lambda: setattr(server, "should_exit", True))
        timer.daemon = True  # not to outlive the server
        timer.start()
    print(f"FastAPI app listening on ws://{args.host}:{sock.getsockname()[1]}/echo", flush=True)
    server.run(sockets=[sock])  # until Ctrl-C, SIGTERM or --duration
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
