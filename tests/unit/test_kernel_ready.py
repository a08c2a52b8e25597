"""KernelSocket.wait_ready under a slow round trip: any late answer counts.

The kernel tests wait for a kernel's iopub before their first execute. Under load (the
load test, or a loaded CI machine) a kernel_info round trip through the tunnel, the
relay and the server can take longer than the pause between two requests. The wait
used to accept only the answer to its newest request, so every answer arrived for a
request it had already given up on, and it failed after 60 s with a healthy kernel.
A fake socket with a fixed delay shows it without a server or a kernel.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from support.kernels import KernelSocket


class SlowKernelConnection:
    """Stands for a proxied kernel socket: answers each kernel_info_request ``delay`` later."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.requests = 0
        self.frames: asyncio.Queue[str] = asyncio.Queue()
        self.close_code = None
        self.close_reason = None

    async def write_message(self, frame: str, binary: bool = False) -> None:
        request = json.loads(frame)
        assert request["header"]["msg_type"] == "kernel_info_request"
        self.requests += 1
        asyncio.get_running_loop().call_later(self.delay, self._answer, request)

    def _answer(self, request: dict[str, Any]) -> None:
        for channel, msg_type, content in [
            ("iopub", "status", {"execution_state": "busy"}),
            ("shell", "kernel_info_reply", {"status": "ok"}),
            ("iopub", "status", {"execution_state": "idle"}),
        ]:
            header = {"msg_id": f"{msg_type}-{self.requests}", "msg_type": msg_type}
            reply = {
                "channel": channel,
                "header": header,
                "parent_header": request["header"],
                "metadata": {},
                "content": content,
            }
            self.frames.put_nowait(json.dumps(reply))

    async def read_message(self) -> str:
        return await self.frames.get()


async def test_a_round_trip_longer_than_the_pause_still_counts():
    connection = SlowKernelConnection(delay=1.2)  # more than the first pause (0.5 s)
    ks = KernelSocket(connection, "session", None)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    started = loop.time()
    await ks.wait_ready(timeout=10)
    # The first answer is taken when it arrives, after a second request at most.
    assert loop.time() - started < 2.5
    assert connection.requests <= 2


async def test_a_kernel_that_never_answers_times_out_with_few_requests():
    connection = SlowKernelConnection(delay=3600)
    ks = KernelSocket(connection, "session", None)  # type: ignore[arg-type]
    with pytest.raises(asyncio.TimeoutError, match="kernel_info requests in 4 s"):
        await ks.wait_ready(timeout=4)
    # The pause doubles (0.5, 1, 2, then the rest): the requests do not become the load.
    assert connection.requests == 4
