"""A raw polling-transport client for tests: each request made by hand, nothing hidden."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tornado import httpclient

from jupyter_http_over_ws.wire.polling import (
    TextEnvelope,
    encode_batch,
    encode_envelope,
    parse_batch,
)
from jupyter_http_over_ws.wire.protocol import parse_reply


@dataclass
class RawPolling:
    """Requests to ``…/http_over_websocket/polling`` of the server at ``url``."""

    url: str
    token: str | None
    headers: dict[str, str] = field(default_factory=dict)
    session_id: str = ""
    session: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.http = httpclient.AsyncHTTPClient(force_instance=True)

    def _headers(self, **extra: str) -> dict[str, str]:
        headers = dict(self.headers)
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        headers.update(extra)
        return headers

    async def fetch(self, path: str, method: str = "GET", body: bytes | None = None, **kw: Any):
        return await self.http.fetch(
            self.url + "http_over_websocket/polling" + path,
            method=method,
            body=body,
            headers=self._headers(**kw.pop("headers", {})),
            raise_error=False,
            allow_nonstandard_methods=True,
            request_timeout=kw.pop("request_timeout", 60),
            **kw,
        )

    async def open(self, query: str = "") -> httpclient.HTTPResponse:
        response = await self.fetch(query, "POST", b"{}")
        if response.code == 200:
            self.session = json.loads(response.body)
            self.session_id = self.session["session_id"]
        return response

    async def send(
        self, seq: int, envelopes: list[Any], since: int | None = None
    ) -> httpclient.HTTPResponse:
        """A ``send``; with ``since``, one whose answer carries the replies ready by then."""
        body = encode_batch(seq, [encode_envelope(e) for e in envelopes])
        query = "" if since is None else f"?since={since}"
        return await self.fetch(f"/{self.session_id}/send{query}", "POST", body)

    async def recv(self, since: int, **kw: Any) -> httpclient.HTTPResponse:
        return await self.fetch(f"/{self.session_id}/recv?since={since}", **kw)

    async def delete(self) -> httpclient.HTTPResponse:
        return await self.fetch(f"/{self.session_id}", "DELETE")

    async def collect(
        self, since: int, until_done: set[Any], timeout: float = 30
    ) -> tuple[int, list]:
        """Poll from ``since`` until a final frame came for each id; returns (since, frames)."""
        frames = []
        waiting = set(until_done)
        while waiting:
            response = await self.recv(since, request_timeout=timeout)
            assert response.code == 200, response
            batch = parse_batch(response.body)
            for number, envelope in enumerate(batch.messages, batch.seq):
                if number < since:
                    continue
                since = number + 1
                assert isinstance(envelope, TextEnvelope)
                assert envelope.channel == 0
                frame = parse_reply(envelope.text)
                frames.append(frame)
                if frame.done:
                    waiting.discard(frame.message_id)
        return since, frames

    def close(self) -> None:
        self.http.close()


def request_envelope(message_id: Any, method: str, path: str, **extra: Any) -> TextEnvelope:
    """A tunnel request on channel 0."""
    return TextEnvelope(
        0, json.dumps({"message_id": message_id, "method": method, "path": path, **extra})
    )
