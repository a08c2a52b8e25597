"""Polling sessions: theft by another identity or none, and replayed numbers and acks.

A polling session id travels in URLs (proxies log them), so it is not a secret: what
protects a session is that every request on it is authenticated again and must come
from the identity that opened it. Its numbers protect its requests: a replayed send
runs nothing twice, a gap runs nothing, and a replayed acknowledgement brings back
nothing already acknowledged.
"""

from __future__ import annotations

import json

import pytest
from support.attack import debug_logs, secrets_in
from support.polling import RawPolling, request_envelope
from support.users import TwoUsers

from jupyter_http_over_ws.wire.polling import encode_envelope, parse_batch

pytestmark = pytest.mark.timeout(120)

EXTENSION = {"jupyter_http_over_ws": True}


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {"jpserver_extensions": EXTENSION, "identity_provider_class": TwoUsers},
        "HttpOverWebSocketApp": {"poll_timeout": 0.2},
    }


@pytest.fixture
def clients(hows_server_url, jp_asyncio_loop):
    made = []

    def client(token):
        polling = RawPolling(hows_server_url, token)
        made.append(polling)
        return polling

    with debug_logs() as lines:
        yield client
    for polling in made:
        polling.close()
    assert secrets_in(lines, ["alice-token", "bob-token"]) == []


async def test_another_identity_or_none_cannot_touch_a_session(clients, jp_root_dir):
    alice = clients("alice-token")
    assert (await alice.open()).code == 200
    for token, refused in [("bob-token", 404), (None, 403), ("wrong", 403), ("Alice-token", 403)]:
        thief = clients(token)
        thief.session_id = alice.session_id
        body = '{"type": "file"}'
        create = [request_envelope("stolen", "PUT", "/api/contents/stolen.txt", body=body)]
        assert (await thief.send(0, create)).code == refused, token
        assert (await thief.recv(0)).code == refused, token
        assert (await thief.delete()).code == refused, token
    assert not (jp_root_dir / "stolen.txt").exists()
    # Alice's session is intact: nothing was delivered into it, nothing taken from it.
    send = await alice.send(0, [request_envelope(1, "GET", "/api/status")])
    assert json.loads(send.body) == {"ack": 1}
    _, frames = await alice.collect(0, {1})
    assert [f.status for f in frames if f.status is not None] == [200]
    assert (await alice.delete()).code == 204


async def test_a_replayed_send_runs_nothing_twice(clients, jp_root_dir):
    alice = clients("alice-token")
    await alice.open()
    batch = [request_envelope("new", "POST", "/api/contents", body='{"type": "file"}')]
    first = await alice.send(0, batch)
    assert json.loads(first.body) == {"ack": 1}
    for _ in range(3):
        again = await alice.send(0, batch)
        assert (again.code, json.loads(again.body)) == (200, {"ack": 1})
    _, frames = await alice.collect(0, {"new"})
    assert [f.status for f in frames if f.status is not None] == [201]
    assert len(list(jp_root_dir.glob("untitled*"))) == 1


@pytest.mark.parametrize(
    ("seq", "status"),
    [(5, 409), (-1, 400), (2**63, 400), ("0", 400), (0.5, 400), (None, 400)],
)
async def test_a_gap_or_a_bad_number_runs_nothing(clients, jp_root_dir, seq, status):
    alice = clients("alice-token")
    await alice.open()
    envelope = request_envelope("x", "PUT", "/api/contents/x.txt", body='{"type":"file"}')
    body = json.dumps({"seq": seq, "messages": [json.loads(encode_envelope(envelope))]})
    response = await alice.fetch(f"/{alice.session_id}/send", "POST", body.encode())
    assert response.code == status
    if status == 409:
        assert json.loads(response.body) == {"ack": 0}
    assert not (jp_root_dir / "x.txt").exists()


async def test_a_replayed_ack_brings_nothing_back(clients):
    alice = clients("alice-token")
    await alice.open()
    await alice.send(0, [request_envelope(1, "GET", "/api/status")])
    since, _ = await alice.collect(0, {1})
    assert since >= 1
    acknowledged = await alice.recv(since)  # acknowledges everything below ``since``
    assert acknowledged.code == 200
    assert list(parse_batch(acknowledged.body).messages) == []
    for replay in (0, since - 1):
        again = await alice.recv(replay)
        # Either refused, or answered without what was acknowledged (seq moves on).
        if again.code == 200:
            batch = parse_batch(again.body)
            assert list(batch.messages) == [] or batch.seq >= since, replay
        else:
            assert again.code == 400, replay
    ahead = await alice.recv(since + 1)
    assert ahead.code == 400


async def test_a_deleted_session_stays_gone(clients):
    alice = clients("alice-token")
    await alice.open()
    old = alice.session_id
    assert (await alice.delete()).code == 204
    assert (await alice.send(0, [request_envelope(1, "GET", "/api/status")])).code == 404
    assert (await alice.recv(0)).code == 404
    assert (await alice.delete()).code == 404
    await alice.open()
    assert alice.session_id != old
