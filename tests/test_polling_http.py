"""The polling client's keep-alive HTTP/1.1 client against a real Tornado server."""

from __future__ import annotations

import asyncio

import pytest
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from jupyter_http_over_ws.client._http import KeepAliveClient

#: The connections requests came on (kept alive here, so that no id is reused).
STREAMS: dict[int, object] = {}


class Plain(web.RequestHandler):
    def get(self):
        STREAMS[id(self.request.connection.stream)] = self.request.connection.stream
        self.write(b"x" * 100_000)

    def post(self):
        STREAMS[id(self.request.connection.stream)] = self.request.connection.stream
        self.set_status(201)
        self.write(self.request.body[::-1])


class Chunked(web.RequestHandler):
    async def get(self):
        for i in range(5):
            self.write(f"part{i};".encode())
            await self.flush()


class Closing(web.RequestHandler):
    def get(self):
        self.set_header("Connection", "close")
        self.write(b"bye")


@pytest.fixture
def server(jp_asyncio_loop):
    app = web.Application([("/plain", Plain), ("/chunked", Chunked), ("/closing", Closing)])
    http = HTTPServer(app)
    sockets = bind_sockets(0, "127.0.0.1")
    http.add_sockets(sockets)
    yield http, f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    http.stop()
    jp_asyncio_loop.run_until_complete(http.close_all_connections())


async def test_connections_are_reused(server):
    _, url = server
    STREAMS.clear()
    client = KeepAliveClient()
    try:
        for _ in range(5):
            response = await client.fetch(url + "/plain")
            assert response.code == 200
            assert response.body == b"x" * 100_000
        posted = await client.fetch(url + "/plain", "POST", b"abc")
        assert posted.code == 201
        assert posted.body == b"cba"
        assert len(STREAMS) == 1  # one connection for all six requests
        chunked = await client.fetch(url + "/chunked")
        assert chunked.body == b"part0;part1;part2;part3;part4;"
        assert (await client.fetch(url + "/nope")).code == 404
    finally:
        client.close()


async def test_a_connection_the_server_closed_is_replaced(server):
    http, url = server
    STREAMS.clear()
    client = KeepAliveClient()
    try:
        assert (await client.fetch(url + "/plain")).code == 200
        await http.close_all_connections()  # the idle keep-alive connection goes away
        await asyncio.sleep(0.05)
        assert (await client.fetch(url + "/plain")).code == 200
        assert (await client.fetch(url + "/closing")).body == b"bye"
        assert (await client.fetch(url + "/plain")).code == 200
        assert len(STREAMS) == 3
    finally:
        client.close()


async def test_cancelling_a_request_closes_its_connection(server):
    _, url = server
    client = KeepAliveClient()
    try:
        task = asyncio.ensure_future(client.fetch(url + "/chunked"))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert client._idle == {} or all(not v for v in client._idle.values())
        assert (await client.fetch(url + "/plain")).code == 200
    finally:
        client.close()


async def test_unreachable_is_an_oserror():
    client = KeepAliveClient()
    with pytest.raises(OSError):
        await client.fetch("http://127.0.0.1:9/", connect_timeout=2)
    client.close()
