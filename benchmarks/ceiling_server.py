"""A bare Tornado WebSocket server: the physical ceiling of a download on this machine.

No Jupyter, no tunnel protocol, no file reading: for each text message ``N`` from the
client it sends ``N`` bytes (64 KiB a frame, waiting on every ``write_message``, i.e.
with backpressure as our tunnel does) and then one small text frame,
``{"message_id":1,"done":true}``. Two endpoints:

* ``/ws/binary``: the bytes as raw binary frames (no per-frame header at all).
* ``/ws/json``: legacy-style text frames ``{"message_id":1,"data":"<base64>","done":false}``,
  built as our extension builds them (pybase64, spliced into the JSON as bytes).

``GET /api/status`` answers 200 so that ``servers.Server`` can wait for start-up. It is
started by ``servers.CeilingServer`` on 127.0.0.1 with the benchmark's interpreter (the
same Python and Tornado as our ``jupyter server``)::

    python benchmarks/ceiling_server.py PORT
"""

from __future__ import annotations

import asyncio
import os
import sys

import tornado.web
import tornado.websocket

try:  # SIMD base64, as our extension uses when installed
    from pybase64 import b64encode
except ImportError:  # pragma: no cover
    from base64 import b64encode

CHUNK = 64 * 1024
#: Random bytes sent in turn (16 MiB, more than the CPU caches hold), so that every
#: frame is copied from memory as a file read from the page cache would be.
SOURCE = os.urandom(16 * 1024 * 1024)
CHUNKS = [SOURCE[i : i + CHUNK] for i in range(0, len(SOURCE), CHUNK)]
DONE = b'{"message_id":1,"done":true}'
JSON_HEAD = b'{"message_id":1,"data":"'
JSON_TAIL = b'","done":false}'


class StatusHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"ok": True})


class CeilingSocket(tornado.websocket.WebSocketHandler):
    def initialize(self, json_frames: bool) -> None:
        self.json_frames = json_frames

    def check_origin(self, origin: str) -> bool:
        return True

    def open(self) -> None:
        self.set_nodelay(True)

    async def on_message(self, message: str | bytes) -> None:
        left = int(message)
        index = 0
        try:
            while left > 0:
                chunk = CHUNKS[index % len(CHUNKS)]
                if left < CHUNK:
                    chunk = chunk[:left]
                index += 1
                left -= len(chunk)
                if self.json_frames:
                    frame = b"".join((JSON_HEAD, b64encode(chunk), JSON_TAIL))
                    await self.write_message(frame, binary=False)
                else:
                    await self.write_message(chunk, binary=True)
            await self.write_message(DONE, binary=False)
        except tornado.websocket.WebSocketClosedError:
            pass


async def main() -> None:
    port = int(sys.argv[1])
    app = tornado.web.Application(
        [
            (r"/api/status", StatusHandler),
            (r"/ws/binary", CeilingSocket, {"json_frames": False}),
            (r"/ws/json", CeilingSocket, {"json_frames": True}),
        ]
    )
    app.listen(port, address="127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
