"""A polling send from a client that does not read: taken in order, only while there is room.

The tunnel session of channel 0 is a fake whose room the test sets; the refusals of
``open`` envelopes are real (they wait for the session's bounded outgoing buffer).
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from jupyter_http_over_ws.polling.session import (
    MAX_PENDING_REFUSALS,
    PollingSession,
    SendBusyError,
)
from jupyter_http_over_ws.wire.polling import OpenEnvelope, SendBatch, TextEnvelope, parse_batch

pytestmark = pytest.mark.timeout(10)

LOG = logging.getLogger("test_polling_send_bound")


class RoomyTunnel:
    """Channel 0: takes messages while ``has_room``; the test gives room back."""

    def __init__(self, send):
        self.received: list[str | bytes] = []
        self.has_room = True
        self._room = asyncio.Event()

    def receive(self, message):
        self.received.append(message)

    def set_room(self, room):
        self.has_room = room
        if room:
            self._room.set()
        else:
            self._room.clear()

    async def wait_for_room(self):
        await self._room.wait()

    def close(self):
        self.set_room(True)


async def never_dial(path, protocols):
    raise AssertionError("nothing is dialled in these tests")


def new_session(buffer_size=1 << 20):
    return PollingSession(
        "alice", RoomyTunnel, never_dial, buffer_size=buffer_size, log=LOG, max_channels=0
    )


def texts(*words, first=0):
    return SendBatch(first, tuple(TextEnvelope(0, w) for w in words))


async def test_a_send_is_taken_only_while_there_is_room():
    session = new_session()
    session.tunnel.set_room(False)
    assert session.deliver(texts("a", "b")) == 0  # nothing taken, nothing lost
    session.tunnel.set_room(True)
    assert session.deliver(texts("a", "b", "c")) == 3
    assert session.tunnel.received == ["a", "b", "c"]


async def test_a_send_waits_for_room_and_goes_on_in_order():
    session = new_session()
    tunnel = session.tunnel

    def receive(message):  # runs out of room after "b"
        tunnel.received.append(message)
        if message == "b":
            tunnel.set_room(False)

    tunnel.receive = receive
    sending = asyncio.ensure_future(session.deliver_within(texts("a", "b", "c", "d"), 5))
    await asyncio.sleep(0.05)
    assert not sending.done()
    assert tunnel.received == ["a", "b"]
    assert session.ack == 2
    # A second send meanwhile is not queued: it is refused at once, holding nothing.
    with pytest.raises(SendBusyError) as busy:
        await session.deliver_within(texts("a", "b", "c", "d"), 5)
    assert busy.value.ack == 2
    tunnel.set_room(True)
    assert await asyncio.wait_for(sending, 1) == 4
    assert tunnel.received == ["a", "b", "c", "d"]


async def test_a_send_left_without_room_answers_how_far_it_got():
    session = new_session()
    session.tunnel.set_room(False)
    assert await session.deliver_within(texts("a", "b"), 0.05) == 0
    session.tunnel.set_room(True)
    assert await session.deliver_within(texts("a", "b"), 0.05) == 2  # sent again, taken once
    assert session.tunnel.received == ["a", "b"]


async def test_closing_ends_a_send_waiting_for_room():
    session = new_session()
    session.tunnel.set_room(False)
    sending = asyncio.ensure_future(session.deliver_within(texts("a"), 5))
    await asyncio.sleep(0.01)
    session.close()
    assert await asyncio.wait_for(sending, 1) == 1  # taken, and dropped: the session ended
    assert session.tunnel.received == []


async def test_refused_opens_are_bounded_while_the_client_does_not_read():
    session = new_session(buffer_size=1024)  # full after a dozen refusals
    session.channels = {1: object()}  # channel 1 in use: every open of 1 is refused
    opens = SendBatch(0, tuple(OpenEnvelope(1, "/api/x") for _ in range(10_000)))
    ack = await session.deliver_within(opens, 0.05)
    assert MAX_PENDING_REFUSALS <= ack < MAX_PENDING_REFUSALS + 20
    # The client reads: the refusals arrive, in order, and the rest of the batch goes on.
    batch = parse_batch(await session.receive(0, 1))
    assert batch.messages
    assert all(m.channel == 1 for m in batch.messages)
    session.channels = {}
    session.close()
