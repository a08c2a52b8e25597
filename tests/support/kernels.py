"""Building, encoding and reading Jupyter kernel messages on a kernel's WebSocket.

Two wire formats exist on ``/api/kernels/<id>/channels``:

- the legacy one (no subprotocol): a message is one JSON text frame with a
  ``channel`` key, or, when it has buffers, one binary frame in jupyter_server's
  offset-table format (``serialize_binary_message``);
- ``v1.kernel.websocket.jupyter.org``: every message is one binary frame holding the
  channel and the header, parent header, metadata, content and buffers as separate
  parts (``serialize_msg_to_ws_v1``).

The encoders and decoders here call jupyter_server's own serializers, so the tests
speak exactly what the server speaks.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    deserialize_msg_from_ws_v1,
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from tornado.websocket import WebSocketClientConnection

V1 = "v1.kernel.websocket.jupyter.org"
PROTOCOL_VERSION = "5.3"


def make_msg(
    msg_type: str,
    content: dict[str, Any],
    *,
    session: str,
    channel: str = "shell",
    metadata: dict[str, Any] | None = None,
    buffers: list[bytes] | None = None,
) -> dict[str, Any]:
    """A kernel message as a frontend builds it (``channel`` and ``buffers`` included)."""
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "username": "test",
            "session": session,
            "date": datetime.now(timezone.utc).isoformat(),
            "version": PROTOCOL_VERSION,
        },
        "parent_header": {},
        "metadata": metadata or {},
        "content": content,
        "channel": channel,
        "buffers": list(buffers or []),
    }


def encode(msg: dict[str, Any], protocol: str | None) -> str | bytes:
    """The frame a frontend sends for ``msg``: text or binary as the protocol says."""
    if protocol == V1:
        parts = [
            json.dumps(msg[key]).encode("utf-8")
            for key in ("header", "parent_header", "metadata", "content")
        ]
        return serialize_msg_to_ws_v1([*parts, *msg["buffers"]], msg["channel"])
    if protocol is not None:
        raise ValueError(f"unknown kernel protocol {protocol!r}")
    if msg["buffers"]:
        return serialize_binary_message(msg)
    return json.dumps({k: v for k, v in msg.items() if k != "buffers"})


def decode(frame: str | bytes, protocol: str | None) -> dict[str, Any]:
    """A received frame as a message dict with ``channel`` and ``buffers`` (as bytes)."""
    if protocol == V1:
        if not isinstance(frame, bytes):
            raise TypeError(f"v1 frames are binary, got text: {frame[:200]!r}")
        channel, parts = deserialize_msg_from_ws_v1(frame)
        header, parent, metadata, content = (json.loads(p) for p in parts[:4])
        return {
            "channel": channel,
            "header": header,
            "parent_header": parent,
            "metadata": metadata,
            "content": content,
            "buffers": [bytes(b) for b in parts[4:]],
        }
    if isinstance(frame, bytes):
        msg = deserialize_binary_message(frame)
        msg["buffers"] = [bytes(b) for b in msg["buffers"]]
        return msg
    msg = json.loads(frame)
    msg.setdefault("buffers", [])
    return msg


@dataclass
class Received:
    """One message as it arrived, with the type of the frame that carried it."""

    msg: dict[str, Any]
    #: The frame as received: ``bytes`` for a binary frame, ``str`` for a text frame.
    frame: str | bytes = field(repr=False)

    @property
    def binary(self) -> bool:
        """Whether the message came in a binary frame."""
        return isinstance(self.frame, bytes)

    @property
    def msg_type(self) -> str:
        """The message's ``header.msg_type``."""
        return str(self.msg["header"]["msg_type"])

    @property
    def channel(self) -> str:
        """The channel the message came on."""
        return str(self.msg["channel"])

    @property
    def content(self) -> dict[str, Any]:
        """The message's content."""
        return dict(self.msg["content"])

    def replies_to(self, msg_id: str) -> bool:
        """Whether this message's parent is ``msg_id``."""
        return bool(self.msg.get("parent_header", {}).get("msg_id") == msg_id)


@dataclass
class KernelSocket:
    """A kernel channels WebSocket speaking ``protocol`` (``None`` is the legacy one)."""

    connection: WebSocketClientConnection
    session: str
    protocol: str | None
    timeout: float = 15.0
    #: Messages read but not yet consumed by a ``wait_for``/``collect`` call.
    backlog: list[Received] = field(default_factory=list)

    def msg(self, msg_type: str, content: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """A new message of this socket's session."""
        return make_msg(msg_type, content, session=self.session, **kwargs)

    async def send(self, msg: dict[str, Any]) -> str:
        """Send ``msg``; returns its ``msg_id``."""
        frame = encode(msg, self.protocol)
        await self.connection.write_message(frame, binary=isinstance(frame, bytes))
        return str(msg["header"]["msg_id"])

    async def execute(self, code: str, *, allow_stdin: bool = False) -> str:
        """Send an ``execute_request``; returns its ``msg_id``."""
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": allow_stdin,
            "stop_on_error": True,
        }
        return await self.send(self.msg("execute_request", content))

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the kernel answers on shell and its iopub messages reach us.

        After a restart, iopub may drop the first messages while it reconnects, so
        this asks for ``kernel_info`` until a status message answering one of its
        requests arrives, as jupyter_server itself does when a socket connects. Any
        of the requests counts, however late its answer: under load a round trip
        can take longer than the pause between two requests, and waiting only for
        the newest one would turn every answer away. The pause doubles (0.5 s up to
        4 s) so that the requests do not themselves become the load.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        asked: set[str] = set()
        pause = 0.5

        def answers_one(m: Received) -> bool:
            return m.channel == "iopub" and m.msg.get("parent_header", {}).get("msg_id") in asked

        while (remaining := deadline - loop.time()) > 0:
            asked.add(await self.send(self.msg("kernel_info_request", {})))
            try:
                await self.wait_for(answers_one, min(pause, remaining))
            except asyncio.TimeoutError:
                pause = min(2 * pause, 4.0)
                continue
            return
        raise asyncio.TimeoutError(
            f"the kernel's iopub messages never arrived ({len(asked)} kernel_info "
            f"requests in {timeout:g} s)"
        )

    async def recv(self, timeout: float | None = None) -> Received:
        """The next message; fails if the socket closes or nothing comes in time."""
        frame = await asyncio.wait_for(self.connection.read_message(), timeout or self.timeout)
        if frame is None:
            raise ConnectionError(
                f"socket closed (code {self.connection.close_code}, "
                f"reason {self.connection.close_reason!r})"
            )
        return Received(decode(frame, self.protocol), frame)

    async def collect(self, msg_id: str, timeout: float | None = None) -> list[Received]:
        """Every message answering ``msg_id`` until both its shell reply and idle status came.

        Messages for other requests (the server's own ``kernel_info`` nudges, for
        example) are kept in ``backlog``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout or self.timeout)
        result: list[Received] = []
        got_reply = got_idle = False
        while not (got_reply and got_idle):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError(f"incomplete reply to {msg_id}: {result!r}")
            received = await self.recv(remaining)
            if not received.replies_to(msg_id):
                self.backlog.append(received)
                continue
            result.append(received)
            if received.channel == "shell" and received.msg_type.endswith("_reply"):
                got_reply = True
            if received.msg_type == "status" and received.content["execution_state"] == "idle":
                got_idle = True
        return result

    async def wait_for(
        self, predicate: Any, timeout: float | None = None, *, keep: list[Received] | None = None
    ) -> Received:
        """The first message (backlog first) for which ``predicate(received)`` is true.

        Messages passed over are appended to ``keep`` when given, else dropped.
        """
        for i, received in enumerate(self.backlog):
            if predicate(received):
                del self.backlog[i]
                return received
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout or self.timeout)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError("no matching message")
            received = await self.recv(remaining)
            if predicate(received):
                return received
            if keep is not None:
                keep.append(received)


def by_type(messages: list[Received], msg_type: str) -> list[Received]:
    """The messages of one ``msg_type``."""
    return [m for m in messages if m.msg_type == msg_type]


def stdout_text(messages: list[Received]) -> str:
    """Everything the kernel printed on stdout in these messages."""
    return "".join(
        m.content["text"]
        for m in messages
        if m.msg_type == "stream" and m.content.get("name") == "stdout"
    )


def server_kernel_handler(kernel_id: str, session_id: str) -> Any:
    """The in-process server's own kernel WebSocket handler for a kernel socket's session.

    For a proxied socket, the upstream half; ``None`` once it has unregistered.
    """
    return ZMQChannelsWebsocketConnection._open_sessions.get(f"{kernel_id}:{session_id}")
