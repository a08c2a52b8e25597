"""The one kernel message the doctor sends (``kernel_info_request``) and its reply.

Both kernel WebSocket protocols are spoken: the ``v1.kernel.websocket.jupyter.org``
binary protocol JupyterLab offers, and the legacy JSON one, whichever the server picks.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timezone
from typing import Any

#: The kernel WebSocket subprotocol JupyterLab offers (jupyter_server 2 speaks it).
KERNEL_V1 = "v1.kernel.websocket.jupyter.org"


def _kernel_message(session: str, protocol: str | None) -> tuple[str, str | bytes]:
    from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1

    msg_id = uuid.uuid4().hex
    header = {
        "msg_id": msg_id,
        "msg_type": "kernel_info_request",
        "username": "doctor",
        "session": session,
        "date": datetime.now(timezone.utc).isoformat(),
        "version": "5.3",
    }
    if protocol == KERNEL_V1:
        parts = [json.dumps(p).encode("utf-8") for p in (header, {}, {}, {})]
        return msg_id, bytes(serialize_msg_to_ws_v1(parts, "shell"))  # type: ignore[no-untyped-call]
    msg = {"header": header, "parent_header": {}, "metadata": {}, "content": {}}
    return msg_id, json.dumps({**msg, "channel": "shell"})


def _kernel_reply(frame: str | bytes, protocol: str | None) -> tuple[str, dict[str, Any]]:
    """The channel and the message (``header``, ``parent_header``, ``content``) of a frame."""
    from jupyter_server.services.kernels.connection.base import (
        deserialize_binary_message,
        deserialize_msg_from_ws_v1,
    )

    if protocol == KERNEL_V1 and isinstance(frame, bytes):
        channel, parts = deserialize_msg_from_ws_v1(frame)  # type: ignore[no-untyped-call]
        header, parent, _metadata, content = (json.loads(p) for p in parts[:4])
        return str(channel), {"header": header, "parent_header": parent, "content": content}
    if isinstance(frame, bytes):  # a legacy message with buffers
        binary: dict[str, Any] = deserialize_binary_message(frame)  # type: ignore[no-untyped-call]
        return str(binary.get("channel")), binary
    text: dict[str, Any] = json.loads(frame)
    return str(text.get("channel")), text


async def kernel_info(socket_: Any, session: str, timeout: float) -> dict[str, Any]:
    """Ask for ``kernel_info`` until the shell reply comes (a fresh kernel may miss one)."""
    protocol = socket_.selected_subprotocol
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        msg_id, frame = _kernel_message(session, protocol)
        await socket_.write_message(frame, binary=isinstance(frame, bytes))
        resend = min(loop.time() + 5.0, deadline)
        while loop.time() < resend:
            try:
                received = await asyncio.wait_for(socket_.read_message(), resend - loop.time())
            except asyncio.TimeoutError:
                break
            if received is None:
                raise ConnectionError(
                    f"the kernel socket closed (code {socket_.close_code}, "
                    f"reason {socket_.close_reason!r})"
                )
            channel, msg = _kernel_reply(received, protocol)
            if (
                channel == "shell"
                and msg["header"].get("msg_type") == "kernel_info_reply"
                and msg["parent_header"].get("msg_id") == msg_id
            ):
                return dict(msg["content"])
    raise asyncio.TimeoutError(f"no kernel_info_reply in {timeout:g} s")
