"""A real WebSocket backend (Debian's python3-websockets), run as a subprocess by the tests:

    /usr/bin/python3 ws_backend.py [HOST]

It listens on an ephemeral port, prints "READY <port>" and serves until killed. What it does
depends on the request path:

  /echo                 sends every message back as it came (text or binary)
  /close?code=N         after the first message, closes with code N and reason "server bye"
  /hello                sends "hello" right after the handshake, then echoes
  /flood?bytes=N        after the first message, sends N bytes of the helpers.pattern_bytes stream
                        in 64 KiB binary messages as fast as the connection takes them
  /reject               refuses the handshake: 418 with a body, as a plain HTTP response
  /stats                (plain GET) JSON: handshakes per path, messages and bytes received,
                        close codes received, bytes sent by /flood so far

Every handler records what the client did, so tests can check what reached the backend.
"""
import asyncio
import http
import json
import os
import sys
import urllib.parse

import websockets
import websockets.exceptions
from websockets.datastructures import Headers

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from helpers import pattern_chunks  # noqa: E402

STATS = {"handshakes": {}, "requests": {}, "messages": 0, "bytes": 0, "close_codes": [], "flood_sent": 0,
         "headers": []}


def count(key, path):
    STATS[key][path] = STATS[key].get(path, 0) + 1


async def process_request(path, headers):
    route = urllib.parse.urlparse(path).path
    count("requests", route)
    if route == "/stats":
        body = json.dumps(STATS).encode()
        return http.HTTPStatus.OK, Headers([("Content-Type", "application/json")]), body
    if route == "/reject":
        body = b"no websocket here\n"
        return http.HTTPStatus(418), Headers([("Content-Type", "text/plain"), ("X-Backend", "ws")]), body
    STATS["headers"].append(list(headers.raw_items()))
    return None


async def handler(ws, path):
    url = urllib.parse.urlparse(path)
    query = urllib.parse.parse_qs(url.query)
    count("handshakes", url.path)
    try:
        if url.path == "/hello":
            await ws.send("hello")
        if url.path == "/close":
            msg = await ws.recv()
            STATS["messages"] += 1
            await ws.close(code=int(query["code"][0]), reason="server bye")
            return
        if url.path == "/flood":
            await ws.recv()
            STATS["messages"] += 1
            for piece in pattern_chunks(int(query["bytes"][0]), chunk=65536):
                await ws.send(piece)
                STATS["flood_sent"] += len(piece)
        async for msg in ws:
            STATS["messages"] += 1
            STATS["bytes"] += len(msg)
            await ws.send(msg)
    except websockets.exceptions.ConnectionClosed:
        pass
    finally:
        if ws.close_code is not None:
            STATS["close_codes"].append(ws.close_code)


async def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    async with websockets.serve(handler, host, 0, process_request=process_request, max_size=None,
                                ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        print("READY %d" % port, flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
