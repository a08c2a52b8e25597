"""Property-based fuzzing of the polling endpoints (issues 4 and 6) against a real server.

Each example opens a *worker* session that does real work (a download held back by a
small polling buffer, an upload read back, a proxied socket) while hypothesis throws
hostile requests at the endpoints: arbitrary bodies at open and send, wrong types in
every field of a batch and its envelopes, huge, negative and non-integer numbers, deep
nesting, invalid base64, unknown and reused channels, batches over ``max_message_size``,
bogus session ids and ``since`` values, wrong methods, and a second identity (and no
identity at all) trying the worker's session ids. Asserted: every refusal is a 4xx with
a message and comes back within ``poll_timeout``; nothing of a refused batch is taken
(it poisons itself with requests that must never run); the worker's numbering and
bytes stay exact; a *scratch* session that takes the fuzzed batches acknowledges exactly
what the sequencing rule says; and no session, channel or socket outlives the example.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.hypothesis_strategies import json_values, junk
from support.polling import RawPolling, request_envelope
from support.users import TwoUsers

from jupyter_http_over_ws.polling import PolledChannel, PollingSession
from jupyter_http_over_ws.wire.polling import (
    ClosedEnvelope,
    CloseEnvelope,
    OpenedEnvelope,
    OpenEnvelope,
    TextEnvelope,
    encode_batch,
    encode_envelope,
    parse_batch,
)
from jupyter_http_over_ws.wire.protocol import parse_reply

pytestmark = pytest.mark.timeout(300)

POLL_TIMEOUT = 0.5
#: A refusal, or an empty long poll, must come back within this (poll_timeout + slack).
ANSWER_WITHIN = POLL_TIMEOUT + 5
MAX_MESSAGE = 256 * 1024
ALICE, BOB = "alice-token", "bob-token"
EVENTS = "/api/events/subscribe"


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_http_over_ws": True},
            "identity_provider_class": TwoUsers,
        },
        "HttpOverWebSocketApp": {
            "poll_timeout": POLL_TIMEOUT,
            "polling_buffer_size": 64 * 1024,  # the worker's download waits on the poller
            "max_message_size": MAX_MESSAGE,
            # Fuzzed tunnel messages and channels that parse reach only harmless paths.
            "allowed_paths": ["/api/status$", "/files/", "/api/contents/upload", EVENTS],
        },
    }


# ------------------------------------------------------------------- strategies


def dumps(value: Any) -> bytes:
    """The standard library's JSON, which (unlike orjson) writes integers of any size."""
    return json.dumps(value).encode()


numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**31 - 1, 2**31, 2**53, 2**53 + 1, 2**63, 2**64, 10**400]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([True, False, None, "0", "1", [0], {}]),
)
bad_base64 = st.sampled_from(["QUJ", "@@@", "QU JD", "A", "QUJD\n", "Q===", "QUJD=", "-_-_", "é"])
base64ish = st.sampled_from(["", "AAAA", "QUJD", "AP8="]) | bad_base64 | st.text(max_size=12)
paths = st.sampled_from(["/api/status", EVENTS, "//evil.example/", "/../etc/passwd", "", "x"])
close_objects = st.fixed_dictionaries(
    {}, optional={"code": numbers, "reason": st.text(max_size=8) | json_values}
)
# Envelopes of every kind with fields of the right and the wrong types.
any_envelopes = st.fixed_dictionaries(
    {},
    optional={
        "channel": numbers | st.integers(min_value=0, max_value=4),
        "text": st.text(max_size=30) | json_values,
        "binary": base64ish | json_values,
        "open": paths | json_values,
        "protocols": st.lists(st.text(max_size=5), max_size=3) | json_values,
        "close": close_objects | json_values,
        "opened": json_values,
        "closed": json_values,
    },
)
# Well-formed envelopes: unknown, reused and the largest channel numbers, frames for the
# tunnel that are not tunnel messages, opens of harmless and refused paths, closes.
channels = st.integers(min_value=0, max_value=4) | st.just(2**31 - 1)
good_envelopes = st.one_of(
    st.builds(lambda c, t: {"channel": c, "text": t}, channels, st.text(max_size=20) | junk),
    st.builds(
        lambda c, b: {"channel": c, "binary": base64.b64encode(b).decode()},
        channels,
        st.binary(max_size=20),
    ),
    st.builds(lambda c, p: {"channel": c, "open": p}, channels, paths),
    st.builds(
        lambda c, code: {"channel": c, "close": {"code": code, "reason": "fuzz"}},
        channels,
        st.sampled_from([1000, 1001, 1005, 3000, 4999]),
    ),
)
deep_bodies = st.integers(min_value=1100, max_value=100_000).flatmap(
    lambda n: st.sampled_from(
        [
            b"[" * n + b"]" * n,
            b'{"seq":0,"messages":' + b"[" * n + b"]" * n + b"}",
            b'{"seq":0,"messages":[{"channel":0,"text":"x","x":' + b"[" * n + b"]" * n + b"}]}",
        ]
    )
)
# Any body at all for a send: most are malformed, some are well-formed batches.
send_bodies = st.one_of(
    st.binary(max_size=80),
    junk.map(lambda text: text.encode("utf-8", "surrogatepass")),
    json_values.map(dumps),
    st.fixed_dictionaries(
        {},
        optional={
            "seq": numbers | json_values,
            "messages": st.lists(any_envelopes, max_size=4) | json_values,
            "closed": json_values,
        },
    ).map(dumps),
    st.builds(
        lambda seq, messages: dumps({"seq": seq, "messages": messages}),
        st.integers(min_value=0, max_value=6),
        st.lists(any_envelopes, max_size=4),
    ),
    deep_bodies,
)

# Envelopes that are certainly malformed (each has only the keys shown).
not_a_string = json_values.filter(lambda v: not isinstance(v, str))
bad_channels = st.one_of(
    st.integers(max_value=-1),
    st.integers(min_value=2**31, max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([True, False, None, "0", "1", [0], {}]),
)
bad_codes = st.one_of(
    st.integers(max_value=999),
    st.integers(min_value=5000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([True, "1000", [1000]]),
)
bad_envelopes = st.one_of(
    st.builds(lambda c: {"channel": c, "text": "x"}, bad_channels),
    st.builds(lambda t: {"channel": 0, "text": t}, not_a_string),
    st.builds(lambda b: {"channel": 1, "binary": b}, bad_base64 | not_a_string),
    st.builds(lambda p: {"channel": 2, "open": p}, not_a_string),
    st.builds(
        lambda p: {"channel": 2, "open": EVENTS, "protocols": p},
        st.sampled_from([[1], [""], ["p"] * 33, "v1", {"a": 1}, [None], True, False, 0, "", {}]),
    ),
    # Kinds only the server sends.
    st.builds(lambda c: {"channel": c, "opened": {}}, st.integers(0, 3)),
    st.builds(lambda c: {"channel": c, "closed": {"code": 1000}}, st.integers(0, 3)),
    st.builds(
        lambda c: {"channel": 1, "close": c},
        json_values.filter(lambda v: not isinstance(v, dict) and v is not None),
    ),
    st.builds(lambda c: {"channel": 1, "close": {"code": c}}, bad_codes),
    st.builds(lambda r: {"channel": 1, "close": {"reason": r}}, not_a_string.filter(bool)),
    st.sampled_from([{"channel": 0}, {"channel": 0, "nope": 1}, {}, {"text": "x"}]),
    json_values.filter(lambda v: not isinstance(v, dict)),
)
bad_seqs = st.one_of(
    st.integers(max_value=-1),
    st.integers(min_value=2**53 + 1, max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([True, False, None, "0", [0], {}]),
)


def poisoned(seq: int, tag: int, bad: Any, before: int, after: int) -> bytes:
    """A batch at the right ``seq`` whose valid requests must never run (one envelope is bad)."""
    requests = [
        json.loads(encode_envelope(request_envelope(f"poison-{tag}-{i}", "GET", "/api/status")))
        for i in range(before + after)
    ]
    return dumps({"seq": seq, "messages": [*requests[:before], bad, *requests[before:]]})


@st.composite
def worker_garbage(draw: Any) -> tuple[str, Any]:
    """A certainly malformed send for the worker's own session: (kind, body factory)."""
    kind = draw(st.sampled_from(["envelope", "top", "oversize", "deep"]))
    tag = draw(st.integers(min_value=0, max_value=10**6))
    if kind == "envelope":
        bad = draw(bad_envelopes)
        before, after = draw(st.integers(0, 3)), draw(st.integers(0, 3))
        return kind, lambda seq: poisoned(seq, tag, bad, before, after)
    if kind == "top":
        body = draw(
            st.one_of(
                st.binary(max_size=40).filter(lambda b: b[:1] not in (b"{", b" ", b"\t", b"\n")),
                json_values.filter(lambda v: not isinstance(v, dict)).map(dumps),
                bad_seqs.map(lambda s: dumps({"seq": s, "messages": []})),
                not_a_string.filter(lambda v: not isinstance(v, list)).map(
                    lambda m: dumps({"seq": 0, "messages": m})
                ),
                st.just(b'{"messages":[]}'),
                st.just(b'{"seq":0}'),
            )
        )
        event(f"top-level garbage: {body[:1]!r}")
        return kind, lambda seq: body
    if kind == "oversize":
        extra = draw(st.integers(min_value=1, max_value=MAX_MESSAGE))

        def oversize(seq: int) -> bytes:
            # Well-formed, and poisoned: only its size refuses it.
            head = [request_envelope(f"poison-{tag}-big", "GET", "/api/status")]
            body = encode_batch(seq, [encode_envelope(e) for e in head])
            filler = encode_envelope(TextEnvelope(0, "x" * (MAX_MESSAGE - len(body) + extra)))
            return encode_batch(seq, [encode_envelope(head[0]), filler])

        return kind, oversize
    depth = draw(st.integers(min_value=1100, max_value=50_000))

    def deep(seq: int) -> bytes:
        # A poisoned request, then an envelope nested deeper than any parser goes.
        head = encode_envelope(request_envelope(f"poison-{tag}-deep", "GET", "/api/status"))
        return b'{"seq":%d,"messages":[%s,%s%s]}' % (seq, head, b"[" * depth, b"]" * depth)

    return kind, deep


since_garbage = st.one_of(
    st.integers(max_value=-1).map(str),
    st.integers(min_value=2**40, max_value=2**80).map(str),
    st.sampled_from(["", "abc", "1.5", "1e3", "0x1", "nan", "None", "%ff", "9" * 5000, "1 2", "-"]),
    st.text(alphabet="abcxyz.-é%", min_size=1, max_size=8).filter(lambda s: s != "-0"),
)
since_any = since_garbage | st.sampled_from(["0", "+0", " 0", "\uff10", "1", "3", "00"])
methods = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "FROB"])


@st.composite
def ids(draw: Any) -> tuple[str, str]:
    """(whose, how mangled): an id of the worker's or scratch session, maybe altered."""
    whose = draw(st.sampled_from(["worker", "scratch"]))
    how = draw(
        st.sampled_from(
            ["exact", "exact", "chop", "extend", "upper", "swapcase", "encoded", "dots", "junk"]
        )
    )
    return whose, how


def mangle(session_id: str, how: str, junk_text: str) -> str:
    return {
        "exact": session_id,
        "chop": session_id[:-1],
        "extend": session_id + "A",
        "upper": session_id.upper(),
        "swapcase": session_id.swapcase(),
        "encoded": "".join(f"%{ord(c):02X}" for c in session_id),
        "dots": quote(f"../{session_id}", safe=""),
        "junk": quote(junk_text, safe="") or "x",
    }[how]


actions = st.one_of(
    st.tuples(st.just("scratch_send"), send_bodies),
    st.tuples(st.just("scratch_recv"), since_any),
    # A well-formed batch numbered near what the scratch session expects next:
    # duplicates, overlaps, gaps.
    st.tuples(
        st.just("scratch_batch"),
        st.integers(min_value=-3, max_value=2),
        st.lists(good_envelopes, max_size=8),
    ),
    st.tuples(st.just("worker_send"), worker_garbage()),
    st.tuples(st.just("worker_recv"), since_garbage),
    st.tuples(st.just("open"), st.binary(max_size=40) | send_bodies, st.text(max_size=12)),
    st.tuples(
        st.just("intruder"),
        st.sampled_from(["bob", "nobody"]),
        ids(),
        st.sampled_from(["send", "recv", "delete"]),
        st.text(max_size=12),
    ),
    st.tuples(
        st.just("method"),
        methods,
        st.sampled_from(["open", "send", "recv", "session"]),
    ),
)


# ------------------------------------------------------------------- the check


@dataclass
class Worker:
    """A well-behaved polling client doing real work on its own session."""

    client: RawPolling
    payload: bytes
    upload: bytes
    ack: int = 0
    since: int = 0
    replies: dict[Any, list[Any]] = field(default_factory=dict)
    channel_events: list[Any] = field(default_factory=list)
    numbers_seen: list[int] = field(default_factory=list)

    async def send(self, seq: int, envelopes: list[Any]) -> None:
        response = await self.client.send(seq, envelopes)
        assert response.code == 200, response.body
        self.ack = seq + len(envelopes)
        assert json.loads(response.body) == {"ack": self.ack}

    def done(self, message_id: Any) -> bool:
        return any(f.done for f in self.replies.get(message_id, []))

    async def run(self) -> None:
        """Poll until every request and the channel have finished, checking the numbering."""
        upload_path = "/api/contents/upload.bin"
        model = {"type": "file", "format": "base64", "content": base64.b64encode(self.upload)}
        await self.send(
            0,
            [
                request_envelope("download", "GET", "/files/big.bin"),
                request_envelope(
                    "upload", "PUT", upload_path, body=json.dumps(model, default=bytes.decode)
                ),
                OpenEnvelope(1, EVENTS),
            ],
        )
        second_sent = False
        deadline = time.monotonic() + 60
        while not (
            all(self.done(m) for m in ("download", "upload", "read"))
            and ClosedEnvelope in map(type, self.channel_events[1:])
        ):
            assert time.monotonic() < deadline, (self.replies.keys(), self.channel_events)
            response = await self.client.recv(self.since, request_timeout=ANSWER_WITHIN + 30)
            assert response.code == 200, response.body
            batch = parse_batch(response.body)
            assert batch.closed is None
            assert batch.seq == self.since  # exactly what was asked for, nothing skipped
            for number, envelope in enumerate(batch.messages, batch.seq):
                self.numbers_seen.append(number)
                self.since = number + 1
                if envelope.channel == 0:
                    assert isinstance(envelope, TextEnvelope), envelope
                    frame = parse_reply(envelope.text)
                    assert not str(frame.message_id).startswith("poison"), frame
                    self.replies.setdefault(frame.message_id, []).append(frame)
                else:
                    assert envelope.channel == 1, envelope  # nothing for an unknown channel
                    if isinstance(envelope, OpenedEnvelope | ClosedEnvelope):
                        self.channel_events.append(envelope)
            if self.done("upload") and self.channel_events and not second_sent:
                # A reused channel number (refused, 4409), a frame for a channel that
                # does not exist (dropped), the upload read back, then a clean close.
                second_sent = True
                await self.send(
                    self.ack,
                    [
                        OpenEnvelope(1, EVENTS),
                        TextEnvelope(77, "to nowhere"),
                        request_envelope("read", "GET", "/files/upload.bin"),
                        CloseEnvelope(1, 1000, "done"),
                    ],
                )

    def check(self) -> None:
        assert self.numbers_seen == list(range(len(self.numbers_seen)))
        for message_id, body in (("download", self.payload), ("read", self.upload)):
            frames = self.replies[message_id]
            assert frames[0].status == 200, frames[0]
            assert [f.done for f in frames].count(True) == 1
            assert b"".join(f.data or b"" for f in frames) == body
        assert self.replies["upload"][0].status in (200, 201)
        kinds = [(type(e).__name__, getattr(e, "code", None)) for e in self.channel_events]
        assert kinds[0] == ("OpenedEnvelope", None), kinds
        assert sorted(kinds[1:]) == [("ClosedEnvelope", 1000), ("ClosedEnvelope", 4409)], kinds


def assert_refused(
    response: Any, status: int | tuple[int, ...], method: str = "GET", sent: bytes = b""
) -> None:
    """A 4xx of the expected kind, answered in time, with a message saying why."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.code in statuses, (response.code, response.body[:300], sent[:500])
    if method != "HEAD":
        answer = json.loads(response.body)
        if response.code == 409:
            assert isinstance(answer["ack"], int)
        else:
            assert isinstance(answer["message"], str)
            assert answer["message"].strip(), answer


class Fuzz:
    """Runs the fuzzed actions against the server, with the worker polling meanwhile."""

    def __init__(self, url: str, worker: Worker, scratch: RawPolling) -> None:
        self.url = url
        self.worker = worker
        self.scratch = scratch
        self.scratch_ack = 0
        self.opened: list[str] = []
        self.alice = RawPolling(url, ALICE)
        self.intruders = {"bob": RawPolling(url, BOB), "nobody": RawPolling(url, None)}

    def close(self) -> None:
        self.alice.close()
        for client in self.intruders.values():
            client.close()

    async def timed(self, request: Any) -> Any:
        started = time.monotonic()
        response = await request
        elapsed = time.monotonic() - started
        assert elapsed < ANSWER_WITHIN, f"answered after {elapsed:.1f} s"
        assert response.code < 500, (response.code, response.body[:300])
        return response

    async def fetch(self, client: RawPolling, path: str, method: str, body: bytes | None) -> Any:
        if method in ("POST", "PUT", "PATCH", "FROB") and body is None:
            body = b""
        return await self.timed(client.fetch(path, method, body, request_timeout=ANSWER_WITHIN + 5))

    async def act(self, action: tuple[Any, ...]) -> None:
        kind = action[0]
        event(kind)
        worker_id = self.worker.client.session_id
        if kind == "scratch_send":
            body = action[1]
            path = f"/{self.scratch.session_id}/send"
            response = await self.fetch(self.alice, path, "POST", body)
            self.check_scratch_answer(body, response)
        elif kind == "scratch_batch":
            _, offset, messages = action
            body = dumps({"seq": max(0, self.scratch_ack + offset), "messages": messages})
            response = await self.fetch(
                self.alice, f"/{self.scratch.session_id}/send", "POST", body
            )
            assert response.code in (200, 409), (response.code, response.body, body)
            self.check_scratch_answer(body, response)
        elif kind == "scratch_recv":
            path = f"/{self.scratch.session_id}/recv?since={quote(action[1], safe='')}"
            response = await self.fetch(self.alice, path, "GET", None)
            event(f"scratch recv {response.code}")
            if response.code == 200:
                batch = parse_batch(response.body)
                assert batch.closed is None
                assert batch.seq == int(action[1])  # the server reads since as int() does
            else:
                assert_refused(response, 400)
        elif kind == "worker_send":
            kind_of_garbage, make = action[1]
            body = make(self.worker.ack)
            response = await self.fetch(self.alice, f"/{worker_id}/send", "POST", body)
            expected = 413 if kind_of_garbage == "oversize" else 400
            assert_refused(response, expected, "POST", body)
        elif kind == "worker_recv":
            path = f"/{worker_id}/recv?since={quote(action[1], safe='')}"
            assert_refused(await self.fetch(self.alice, path, "GET", None), 400)
        elif kind == "open":
            _, body, version = action
            query = f"?min_version={quote(version, safe='')}" if version else ""
            response = await self.fetch(self.alice, query, "POST", body)
            if response.code == 200:
                self.opened.append(json.loads(response.body)["session_id"])
            else:
                assert_refused(response, 400, "POST")
        elif kind == "intruder":
            await self.intrude(*action[1:])
        else:
            await self.wrong_method(action[1], action[2])

    def check_scratch_answer(self, body: bytes, response: Any) -> None:
        """The scratch session acknowledges exactly what the sequencing rule says."""
        event(f"scratch send {response.code}")
        if response.code in (200, 409):
            parsed = json.loads(body)
            seq, count = parsed["seq"], len(parsed["messages"])
            ack = json.loads(response.body)["ack"]
            if response.code == 200:
                assert seq <= self.scratch_ack, (seq, self.scratch_ack)
                assert ack == max(self.scratch_ack, seq + count)
            else:
                assert seq > self.scratch_ack
                assert ack == self.scratch_ack
            self.scratch_ack = ack
        else:
            assert_refused(response, 413 if len(body) > MAX_MESSAGE else 400, "POST")

    async def intrude(self, who: str, target: tuple[str, str], op: str, junk_text: str) -> None:
        whose, how = target
        real = (self.worker.client if whose == "worker" else self.scratch).session_id
        session_id = mangle(real, how, junk_text)
        client = self.intruders[who]
        # What each would do to the session if it got in: run a request, acknowledge
        # (drop) the worker's envelopes, end the session.
        if op == "send":
            body = encode_batch(0, [encode_envelope(request_envelope("poison-x", "GET", "/"))])
            response = await self.fetch(client, f"/{session_id}/send", "POST", body)
        elif op == "recv":
            response = await self.fetch(client, f"/{session_id}/recv?since=1", "GET", None)
        else:
            response = await self.fetch(client, f"/{session_id}", "DELETE", None)
        event(f"{who} {how} {op}: {response.code}")
        if who == "nobody":
            assert_refused(response, 403 if how == "exact" else (400, 403, 404))
        else:
            # Another identity is told exactly what a made-up id gets: no such session.
            assert_refused(response, 404 if how == "exact" else (400, 404))

    async def wrong_method(self, method: str, route: str) -> None:
        worker_id = self.worker.client.session_id
        path, allowed = {
            "open": ("", {"POST", "OPTIONS"}),
            "send": (f"/{worker_id}/send", {"POST", "OPTIONS"}),
            "recv": (f"/{worker_id}/recv?since=99999999999", {"GET", "OPTIONS"}),
            "session": (f"/{worker_id}", {"DELETE", "OPTIONS"}),
        }[route]
        if method in allowed:
            return  # not a wrong method (and a DELETE would end the worker's session)
        response = await self.fetch(self.alice, path, method, None)
        event(f"{method} {route}: {response.code}")
        assert_refused(response, 405, method)


def extension(jp_serverapp: Any) -> Any:
    return next(iter(jp_serverapp.extension_manager.extension_apps["jupyter_http_over_ws"]))


async def settle(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def fuzz_once(url: str, root: Any, serverapp: Any, batch: list[Any]) -> None:
    payload = (root / "big.bin").read_bytes()
    ext = extension(serverapp)
    worker = Worker(RawPolling(url, ALICE), payload, os.urandom(100_000))
    scratch = RawPolling(url, ALICE)
    fuzz: Fuzz | None = None
    polling: asyncio.Future[None] | None = None
    try:
        assert (await worker.client.open()).code == 200
        assert (await scratch.open()).code == 200
        fuzz = Fuzz(url, worker, scratch)
        polling = asyncio.ensure_future(worker.run())
        for action in batch:
            await fuzz.act(action)
            assert not polling.done() or polling.exception() is None
        await asyncio.wait_for(polling, 90)
        worker.check()
        # The scratch session's numbering is still exactly the model's.
        final = await scratch.fetch(
            f"/{scratch.session_id}/send", "POST", dumps({"seq": fuzz.scratch_ack, "messages": []})
        )
        assert final.code == 200, final.body
        assert json.loads(final.body) == {"ack": fuzz.scratch_ack}
        # Everything is released once the sessions are closed.
        for session_id in [worker.client.session_id, scratch.session_id, *fuzz.opened]:
            assert (await fuzz.alice.fetch(f"/{session_id}", "DELETE")).code == 204
        assert len(ext.registry.polling_sessions) == 0
        await settle(
            lambda: (
                not any(isinstance(s, PollingSession | PolledChannel) for s in ext.registry.sockets)
            ),
            f"sockets left: {ext.registry.sockets}",
        )
        status = await fuzz.alice.http.fetch(
            url + "api/status", headers={"Authorization": f"token {ALICE}"}, raise_error=False
        )
        assert status.code == 200  # the server is still up and serving
    finally:
        if polling is not None:
            polling.cancel()
        for (
            session
        ) in ext.registry.polling_sessions:  # after a failure: the next example starts clean
            session.close()
        worker.client.close()
        scratch.close()
        if fuzz is not None:
            fuzz.close()


def run(url: str, root: Any, loop: Any, serverapp: Any, batch: list[Any]) -> None:
    if not (root / "big.bin").exists():
        (root / "big.bin").write_bytes(os.urandom(1024 * 1024))
    loop.run_until_complete(fuzz_once(url, root, serverapp, batch))


fuzz_settings = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


@settings(max_examples=30, **fuzz_settings)
@given(batch=st.lists(actions, min_size=1, max_size=8))
def test_fuzzed_polling_requests(
    hows_server_url, jp_root_dir, jp_asyncio_loop, jp_serverapp, batch
):
    run(hows_server_url, jp_root_dir, jp_asyncio_loop, jp_serverapp, batch)


@pytest.mark.slow
@settings(max_examples=300, **fuzz_settings)
@given(batch=st.lists(actions, min_size=1, max_size=20))
def test_fuzzed_polling_requests_heavy(
    hows_server_url, jp_root_dir, jp_asyncio_loop, jp_serverapp, batch
):
    run(hows_server_url, jp_root_dir, jp_asyncio_loop, jp_serverapp, batch)


async def test_every_wrong_method_is_a_405_with_a_message(hows_server_url):
    """Each route, each method it does not take (one Tornado does not know included)."""
    alice = RawPolling(hows_server_url, ALICE)
    try:
        assert (await alice.open()).code == 200
        routes = {
            "": {"POST"},
            f"/{alice.session_id}/send": {"POST"},
            f"/{alice.session_id}/recv?since=0": {"GET"},
            f"/{alice.session_id}": {"DELETE"},
        }
        for path, allowed in routes.items():
            for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "FROB"]:
                if method in allowed:
                    continue
                body = b"" if method in ("POST", "PUT", "PATCH", "FROB") else None
                response = await alice.fetch(path, method, body, request_timeout=ANSWER_WITHIN)
                assert_refused(response, 405, method)
        assert (await alice.delete()).code == 204
    finally:
        alice.close()
