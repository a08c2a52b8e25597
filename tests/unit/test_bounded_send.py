"""BoundedSend: a socket's write buffer held to a byte budget, frames in order."""

from __future__ import annotations

import asyncio

import pytest
from support.recording_send import RecordingSend, settle, until

from jupyter_http_over_ws.replies import BoundedSend

pytestmark = pytest.mark.timeout(10)


async def test_frames_past_the_budget_wait_until_earlier_ones_are_flushed():
    write = RecordingSend(gated=True)  # a client that does not read: nothing is flushed
    send = BoundedSend(write, budget=10)
    senders = [asyncio.ensure_future(send(bytes([i]) * 4, False)) for i in range(6)]
    await settle()
    assert write.entered == 2  # 8 bytes written; a third frame would pass the budget
    assert send.unflushed == 8
    write.release(1)
    await until(lambda: write.entered == 3)
    assert send.unflushed == 8
    write.release(5)
    await asyncio.gather(*senders)
    assert [frame for frame, _ in write.sent] == [bytes([i]) * 4 for i in range(6)]  # in order
    assert send.unflushed == 0


async def test_one_frame_larger_than_the_budget_still_goes():
    write = RecordingSend()
    send = BoundedSend(write, budget=10)
    await asyncio.wait_for(send(b"x" * 100, True), 1)
    assert write.sent == [(b"x" * 100, True)]


async def test_a_cancelled_waiter_passes_its_turn_on():
    write = RecordingSend(gated=True)
    send = BoundedSend(write, budget=4)
    first = asyncio.ensure_future(send(b"aaaa", False))
    second = asyncio.ensure_future(send(b"bbbb", False))
    third = asyncio.ensure_future(send(b"cccc", False))
    await settle()
    assert write.entered == 1
    second.cancel()
    write.release(2)
    await asyncio.wait_for(asyncio.gather(first, third), 1)
    assert [frame for frame, _ in write.sent] == [b"aaaa", b"cccc"]
    assert send.unflushed == 0


async def test_a_failed_write_frees_its_bytes():
    send = BoundedSend(RecordingSend(fail=OSError("gone")), budget=4)
    with pytest.raises(OSError):
        await send(b"aaaa", False)
    assert send.unflushed == 0
