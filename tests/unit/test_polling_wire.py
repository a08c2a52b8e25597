"""The polling transport's pure parts: envelopes, batches, sequencing, the outgoing buffer."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jupyter_http_over_ws.polling.buffer import OutgoingBuffer
from jupyter_http_over_ws.wire.polling import (
    BinaryEnvelope,
    ClosedEnvelope,
    CloseEnvelope,
    OpenedEnvelope,
    OpenEnvelope,
    OutOfOrderError,
    SendSequencer,
    TextEnvelope,
    encode_batch,
    encode_envelope,
    parse_batch,
    parse_envelope,
    parse_send,
    parse_send_answer,
)
from jupyter_http_over_ws.wire.protocol import ProtocolError

ENVELOPES = [
    TextEnvelope(0, '{"message_id": 1}'),
    TextEnvelope(7, "ünïcödé"),
    BinaryEnvelope(3, bytes(range(256))),
    OpenEnvelope(2, "/api/kernels/k/channels?session_id=s", ("v1.kernel.websocket.jupyter.org",)),
    CloseEnvelope(2, 4000, "bye"),
    CloseEnvelope(2),
    OpenedEnvelope(2, None),
    OpenedEnvelope(2, "v1.kernel.websocket.jupyter.org"),
    ClosedEnvelope(2, 4404, "upstream refused the WebSocket"),
    ClosedEnvelope(2),
]


@pytest.mark.parametrize("envelope", ENVELOPES)
def test_envelopes_round_trip(envelope):
    assert parse_envelope(json.loads(encode_envelope(envelope))) == envelope


def test_batches_round_trip():
    body = encode_batch(5, [encode_envelope(e) for e in ENVELOPES])
    assert parse_batch(body).seq == 5
    assert parse_batch(body).messages == tuple(ENVELOPES)
    sendable = [e for e in ENVELOPES if not isinstance(e, OpenedEnvelope | ClosedEnvelope)]
    sent = parse_send(encode_batch(5, [encode_envelope(e) for e in sendable]))
    assert (sent.seq, sent.messages) == (5, tuple(sendable))
    closed = parse_batch(encode_batch(9, [], (4408, "Idle for 60 s")))
    assert closed.messages == ()
    assert closed.closed == (4408, "Idle for 60 s")
    assert json.loads(encode_batch(0, [])) == {"seq": 0, "messages": []}


def test_send_answers_with_and_without_a_batch():
    assert parse_send_answer(b'{"ack": 3}') == (3, None)
    carried = encode_batch(4, [encode_envelope(e) for e in ENVELOPES[:3]], ack=9)
    assert json.loads(carried)["ack"] == 9
    ack, batch = parse_send_answer(carried)
    assert ack == 9
    assert batch is not None
    assert (batch.seq, batch.messages, batch.closed) == (4, tuple(ENVELOPES[:3]), None)
    for body in (b"[]", b'{"seq": 1}', b'{"ack": -1}', b'{"ack": 1, "messages": []}', b"x"):
        with pytest.raises(ProtocolError):
            parse_send_answer(body)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"nope",
        b"[]",
        b'{"messages": []}',
        b'{"seq": -1, "messages": []}',
        b'{"seq": true, "messages": []}',
        b'{"seq": 0, "messages": {}}',
        b'{"seq": 0, "messages": [1]}',
        b'{"seq": 0, "messages": [{"channel": -1, "text": "a"}]}',
        b'{"seq": 0, "messages": [{"channel": 2147483648, "text": "a"}]}',
        b'{"seq": 0, "messages": [{"channel": 1, "text": 5}]}',
        b'{"seq": 0, "messages": [{"channel": 1, "binary": "***"}]}',
        b'{"seq": 0, "messages": [{"channel": 1, "open": 5}]}',
        b'{"seq": 0, "messages": [{"channel": 1, "open": "/x", "protocols": "p"}]}',
        b'{"seq": 0, "messages": [{"channel": 1, "open": "/x", "protocols": false}]}',
        b'{"seq": 0, "messages": [{"channel": 1, "open": "/x", "protocols": {}}]}',
        b'{"seq": 0, "messages": [{"channel": 1, "open": "/x", "protocols": ""}]}',
        b'{"seq": 0, "messages": [{"channel": 1, "opened": {}}]}',
        b'{"seq": 0, "messages": [{"channel": 1, "closed": {"code": 1000}}]}',
        b'{"seq": 0, "messages": [{"channel": 1, "close": {"code": 99}}]}',
        b'{"seq": 0, "messages": [{"channel": 1, "close": []}]}',
        b'{"seq": 0, "messages": [{"channel": 1}]}',
    ],
)
def test_malformed_batches_are_400(body):
    with pytest.raises(ProtocolError) as error:
        parse_send(body)
    assert error.value.status == 400


def test_sequencer_skips_duplicates_and_refuses_gaps():
    seq = SendSequencer()
    a, b, c, d = (TextEnvelope(0, x) for x in "abcd")
    assert list(seq.accept(0, [a, b])) == [a, b]
    assert list(seq.accept(0, [a, b])) == []  # a resend after a lost answer
    assert list(seq.accept(1, [b, c])) == [c]
    with pytest.raises(OutOfOrderError) as gap:
        seq.accept(5, [d])
    assert gap.value.ack == 3
    assert seq.ack == 3


@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 6)), max_size=40))
def test_any_delivery_order_gives_each_envelope_once_in_order(attempts):
    # Whatever batches arrive (repeats, overlaps, gaps), what is taken is 0, 1, 2, ...
    stream = [TextEnvelope(0, str(i)) for i in range(20)]
    seq = SendSequencer()
    taken = []
    for start, length in attempts:
        batch = stream[start : start + length]
        if start > seq.ack:
            with pytest.raises(OutOfOrderError):
                seq.accept(start, batch)
        else:
            taken += seq.accept(start, batch)
    assert taken == stream[: len(taken)]
    assert seq.ack == len(taken)


def test_outgoing_buffer_backpressure_and_acknowledgement():
    async def scenario():
        buffer = OutgoingBuffer(limit=10)
        await buffer.put(b"aaaa")
        await buffer.put(b"bbbb")
        third = asyncio.ensure_future(buffer.put(b"cccc"))  # 12 > 10: waits
        await asyncio.sleep(0.01)
        assert not third.done()
        assert buffer.pending(0) == (0, [b"aaaa", b"bbbb"])
        buffer.ack(0)  # acknowledges nothing
        await asyncio.sleep(0.01)
        assert not third.done()
        buffer.ack(1)
        await asyncio.wait_for(third, 1)
        assert buffer.pending(1) == (1, [b"bbbb", b"cccc"])
        assert buffer.pending(0) == (1, [b"bbbb", b"cccc"])  # older than kept: from the oldest
        assert buffer.buffered_bytes == 8
        # One envelope larger than the whole limit still goes in once the buffer is empty.
        buffer.ack(3)
        await asyncio.wait_for(buffer.put(b"x" * 50), 1)
        assert buffer.next_seq == 4
        waiter = asyncio.ensure_future(buffer.wait_beyond(4))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        blocked = asyncio.ensure_future(buffer.put(b"y"))
        buffer.close()
        await asyncio.wait_for(waiter, 1)
        with pytest.raises(ConnectionError):
            await blocked

    asyncio.run(scenario())
