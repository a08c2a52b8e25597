"""Tunnelled HTTP requests against a real jupyter_server: the REST API through one socket."""

from __future__ import annotations

import asyncio
import base64
import json
import os

import pytest

from jupyter_http_over_ws.client._connect import Endpoint

pytestmark = pytest.mark.timeout(60)


def model(content, fmt="text", type_="file"):
    return json.dumps({"type": type_, "format": fmt, "content": content})


async def raw_frames(url, token, message, count_until_done=True):
    """Send one raw frame on a fresh tunnel and collect the reply frames (as dicts)."""
    connection = await Endpoint(url, token=token).open("http_over_websocket")
    try:
        connection.write_message(message)
        frames = []
        while True:
            text = await asyncio.wait_for(connection.read_message(), 10)
            assert text is not None, "socket closed"
            frames.append(json.loads(text))
            if frames[-1]["done"] or not count_until_done:
                return frames
    finally:
        connection.close()


async def test_contents_lifecycle(hows_tunnel, jp_root_dir):
    listing = await hows_tunnel.request("GET", "/api/contents")
    assert listing.status == 200
    assert listing.json()["type"] == "directory"

    created = await hows_tunnel.request("PUT", "/api/contents/hello.txt", body=model("hi ✓"))
    assert created.status == 201, created.text
    assert (jp_root_dir / "hello.txt").read_text() == "hi ✓"

    read = await hows_tunnel.request("GET", "/api/contents/hello.txt?content=1")
    assert read.status == 200
    assert read.json()["content"] == "hi ✓"

    renamed = await hows_tunnel.request(
        "PATCH", "/api/contents/hello.txt", body=json.dumps({"path": "renamed.txt"})
    )
    assert renamed.status == 200
    assert (jp_root_dir / "renamed.txt").exists()
    assert not (jp_root_dir / "hello.txt").exists()

    deleted = await hows_tunnel.request("DELETE", "/api/contents/renamed.txt")
    assert deleted.status == 204
    assert deleted.body == b""
    assert not (jp_root_dir / "renamed.txt").exists()

    missing = await hows_tunnel.request("GET", "/api/contents/renamed.txt")
    assert missing.status == 404
    assert b"does not exist" in missing.body


async def test_new_untitled_and_directory(hows_tunnel, jp_root_dir):
    made = await hows_tunnel.request(
        "POST", "/api/contents", body=json.dumps({"type": "directory"})
    )
    assert made.status == 201
    name = made.json()["name"]
    assert (jp_root_dir / name).is_dir()
    notebook = await hows_tunnel.request(
        "POST", f"/api/contents/{name}", body=json.dumps({"type": "notebook"})
    )
    assert notebook.status == 201
    assert notebook.json()["path"].endswith(".ipynb")


async def test_binary_upload_and_download_are_byte_exact(hows_tunnel, jp_root_dir):
    payload = os.urandom(3 * 1024 * 1024 + 17)
    up = await hows_tunnel.request(
        "PUT", "/api/contents/blob.bin", body=model(base64.b64encode(payload).decode(), "base64")
    )
    assert up.status == 201, up.text
    assert (jp_root_dir / "blob.bin").read_bytes() == payload

    down = await hows_tunnel.request("GET", "/files/blob.bin")
    assert down.status == 200
    assert down.body == payload
    assert down.headers["Content-Length"] == str(len(payload))


async def test_raw_binary_request_body_is_byte_exact(hows_tunnel, jp_root_dir):
    # The body of a request travels as body_base64: every byte value survives.
    payload = bytes(range(256)) * 3
    inner = json.dumps(
        {"type": "file", "format": "base64", "content": base64.b64encode(payload).decode()}
    ).encode()
    reply = await hows_tunnel.request("PUT", "/api/contents/raw.bin", body=inner)
    assert reply.status == 201
    assert (jp_root_dir / "raw.bin").read_bytes() == payload


async def test_download_is_streamed_in_several_frames(hows_tunnel, jp_root_dir):
    payload = os.urandom(2 * 1024 * 1024)
    (jp_root_dir / "big.bin").write_bytes(payload)
    chunks = []
    async with hows_tunnel.stream("GET", "/files/big.bin") as response:
        assert response.status == 200
        async for chunk in response:
            chunks.append(chunk)
    assert b"".join(chunks) == payload
    assert len(chunks) > 1
    assert max(len(c) for c in chunks) <= 256 * 1024


async def test_unicode_names_and_query_strings(hows_tunnel, jp_root_dir):
    (jp_root_dir / "dir é").mkdir()
    (jp_root_dir / "dir é" / "ñ 1.txt").write_text("x")
    listing = await hows_tunnel.request("GET", "/api/contents/dir é?content=1")
    assert listing.status == 200
    assert [c["name"] for c in listing.json()["content"]] == ["ñ 1.txt"]
    no_content = await hows_tunnel.request("GET", "/api/contents/dir%20%C3%A9?content=0")
    assert no_content.status == 200
    assert no_content.json()["content"] is None


async def test_sessions_kernels_and_kernelspecs(hows_tunnel, jp_serverapp):
    specs = await hows_tunnel.request("GET", "/api/kernelspecs")
    assert specs.status == 200
    assert "python3" in specs.json()["kernelspecs"]

    session = await hows_tunnel.request(
        "POST",
        "/api/sessions",
        body=json.dumps({"path": "a.ipynb", "type": "notebook", "kernel": {"name": "python3"}}),
    )
    assert session.status == 201, session.text
    kernel_id = session.json()["kernel"]["id"]
    assert kernel_id in jp_serverapp.kernel_manager

    kernels = await hows_tunnel.request("GET", "/api/kernels")
    assert [k["id"] for k in kernels.json()] == [kernel_id]

    interrupt = await hows_tunnel.request("POST", f"/api/kernels/{kernel_id}/interrupt")
    assert interrupt.status == 204
    restart = await hows_tunnel.request("POST", f"/api/kernels/{kernel_id}/restart")
    assert restart.status == 200
    assert restart.json()["id"] == kernel_id

    gone = await hows_tunnel.request("DELETE", f"/api/sessions/{session.json()['id']}")
    assert gone.status == 204
    assert kernel_id not in jp_serverapp.kernel_manager

    kernel = await hows_tunnel.request("POST", "/api/kernels", body=json.dumps({"name": "python3"}))
    assert kernel.status == 201
    deleted = await hows_tunnel.request("DELETE", f"/api/kernels/{kernel.json()['id']}")
    assert deleted.status == 204


async def test_many_requests_in_flight_on_one_socket(hows_tunnel, jp_root_dir):
    for i in range(20):
        (jp_root_dir / f"f{i}.txt").write_text(f"content {i}")
    big = os.urandom(4 * 1024 * 1024)
    (jp_root_dir / "big.bin").write_bytes(big)
    requests = [hows_tunnel.request("GET", "/files/big.bin")]
    requests += [hows_tunnel.request("GET", f"/files/f{i}.txt") for i in range(20)]
    requests += [hows_tunnel.request("GET", "/api/status") for _ in range(20)]
    replies = await asyncio.gather(*requests)
    assert replies[0].body == big
    for i in range(20):
        assert replies[1 + i].body == f"content {i}".encode()
    assert all(r.status == 200 for r in replies)


async def test_small_request_is_not_stuck_behind_a_download(hows_tunnel, jp_root_dir):
    (jp_root_dir / "big.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    order = []

    async def download():
        await hows_tunnel.request("GET", "/files/big.bin")
        order.append("big")

    async def small():
        await asyncio.sleep(0.01)
        await hows_tunnel.request("GET", "/api/status")
        order.append("small")

    await asyncio.gather(download(), small())
    assert order == ["small", "big"]


async def test_head_gives_one_frame_without_data(hows_server_url, hows_token, jp_root_dir):
    (jp_root_dir / "x.txt").write_text("hello")
    frames = await raw_frames(
        hows_server_url, hows_token, '{"message_id": "h", "method": "head", "path": "/files/x.txt"}'
    )
    assert len(frames) == 1
    (frame,) = frames
    assert frame["message_id"] == "h"
    assert frame["status"] == 200
    assert frame["done"] is True
    assert "data" not in frame
    assert frame["headers"]["Content-Length"] == "5"


async def test_small_reply_is_one_frame(hows_server_url, hows_token):
    frames = await raw_frames(
        hows_server_url, hows_token, '{"message_id": 9, "method": "GET", "path": "/api/status"}'
    )
    assert len(frames) == 1
    frame = frames[0]
    assert set(frame) == {"message_id", "status", "statusText", "headers", "data", "done"}
    assert frame["message_id"] == 9
    assert frame["statusText"] == "OK"
    assert json.loads(base64.b64decode(frame["data"]))["kernels"] == 0


async def test_redirects_are_passed_through(hows_tunnel, jp_base_url):
    reply = await hows_tunnel.request("GET", "/api/kernelspecs/")
    assert reply.status in (301, 302)
    assert reply.headers["Location"].endswith("/api/kernelspecs")


async def test_nonstandard_method_is_answered_by_the_server(hows_tunnel):
    reply = await hows_tunnel.request("FROB", "/api/status")
    assert reply.status == 405


async def test_requests_stay_inside_base_url(hows_tunnel, jp_base_url):
    # "/api/status" is joined to base_url; the server's root-level URL is not reachable.
    inside = await hows_tunnel.request("GET", "/api/status")
    assert inside.status == 200
    doubled = await hows_tunnel.request("GET", jp_base_url + "api/status")
    assert doubled.status == 404


@pytest.mark.parametrize("jp_base_url", ["/", "/user/alice/"])
async def test_other_base_urls(hows_tunnel, jp_base_url, jp_root_dir):
    (jp_root_dir / "x.txt").write_text("hello")
    reply = await hows_tunnel.request("GET", "/files/x.txt")
    assert reply.status == 200
    assert reply.body == b"hello"
