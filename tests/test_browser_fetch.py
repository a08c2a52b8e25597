"""Fetch through the tunnel in a real browser: against plain cross-origin fetch, byte-exact
binary up- and download and request bodies, and an abort that reaches the server.

The servers and pages are :mod:`support.cross_origin`'s.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from support.browser import browser as browser
from support.browser import context as context
from support.browser import jp_asyncio_loop as jp_asyncio_loop
from support.browser import jp_server_cleanup as jp_server_cleanup
from support.browser import open_page
from support.cross_origin import ALL_BYTES, BIG_SIZE, Setup, log_in, run, run_on_page
from support.cross_origin import setup as setup

pytestmark = pytest.mark.slow


PLAIN_VERSUS_TUNNEL = """
        const plain = async (init) => {
          try {
            const r = await fetch(a.server + "api/contents", init);
            return `status ${r.status}`;
          } catch (e) {
            return errorText(e);
          }
        };
        const out = {
          cookie: await plain({ credentials: "include" }),
          token: await plain({ headers: { Authorization: `token ${a.token}` } }),
        };
        const tunnel = await connect();
        const r = await tunnel.fetch("api/contents");
        out.status = r.status;
        out.type = r.headers.get("content-type");
        out.names = (await r.json()).content.map((f) => f.name).sort();
        tunnel.close();
        return out;
"""


def test_plain_cross_origin_fetch_is_refused_while_the_tunnel_works(
    context: Any, setup: Setup
) -> None:
    log_in(context, setup)
    allowed = run(open_page(context, setup.page), setup, PLAIN_VERSUS_TUNNEL)
    foreign = run(open_page(context, setup.foreign_page), setup, PLAIN_VERSUS_TUNNEL)
    print({"allowed": allowed, "foreign": foreign})
    for result in (allowed, foreign):
        assert result["status"] == 200
        assert result["type"].startswith("application/json")
        assert {"all-bytes.bin", "big.bin", "hello.txt"} <= set(result["names"])
        # The browser refuses a plain request relying on the login cookie (no credentialed
        # CORS grant, and no cookie on a cross-site request): a network error, no response.
        assert result["cookie"].startswith("TypeError"), result
    # With the token, a plain request from an origin the server does not list is refused
    # by the browser too (no CORS grant), while the tunnel, given the same token, works.
    assert foreign["token"].startswith("TypeError"), foreign
    # For a listed origin, jupyter_server grants CORS to a token-carrying request: there
    # a plain fetch with the token works as well (the tunnel is not the only way in).
    assert allowed["token"] == "status 200", allowed


def test_binary_upload_and_download_are_byte_exact(context: Any, setup: Setup) -> None:
    result = run_on_page(
        context,
        setup,
        """
        const tunnel = await connect();
        const expected = new Uint8Array(256 * 64).map((_, i) => i % 256);
        // Download: the file on disk holds every byte value.
        const down = await tunnel.fetch(a.server + "files/all-bytes.bin");
        const got = new Uint8Array(await down.arrayBuffer());
        const same = (x) => x.length === expected.length && x.every((b, i) => b === expected[i]);
        const downloadExact = same(got);
        // Upload through the Contents API (base64 in JSON), the request body sent as bytes.
        let binary = "";
        for (const b of expected) binary += String.fromCharCode(b);
        const model = { type: "file", format: "base64", content: btoa(binary) };
        const body = new TextEncoder().encode(JSON.stringify(model));
        const up = await tunnel.fetch(new Request(a.server + "api/contents/uploaded.bin", {
          method: "PUT", body, headers: { "Content-Type": "application/json" },
        }));
        const upModel = await up.json();
        // And back again, as the Contents API returns it.
        const back = await tunnel.fetch("api/contents/uploaded.bin?content=1&format=base64");
        const backText = atob((await back.json()).content);
        const backBytes = Uint8Array.from(backText, (c) => c.charCodeAt(0));
        tunnel.close();
        return {
          downStatus: down.status,
          downLength: got.length,
          downloadExact,
          upStatus: up.status,
          upSize: upModel.size,
          roundTripExact: same(backBytes),
        };
        """,
    )
    assert result["downStatus"] == 200
    assert result["downLength"] == len(ALL_BYTES)
    assert result["downloadExact"] is True
    assert result["upStatus"] == 201, result
    assert result["upSize"] == len(ALL_BYTES)
    assert (setup.root / "uploaded.bin").read_bytes() == ALL_BYTES
    assert result["roundTripExact"] is True


def test_binary_request_bodies_arrive_byte_exact(context: Any, setup: Setup) -> None:
    """Every body type fetch accepts for bytes, echoed by a real handler in the server."""
    result = run_on_page(
        context,
        setup,
        """
        const tunnel = await connect();
        const allBytes = new Uint8Array(256 * 64).map((_, i) => i % 256);
        // 3 MiB that is not a repeating pattern: many frames, and order matters.
        const big = new Uint8Array(3 * 1024 * 1024);
        let x = 12345;
        for (let i = 0; i < big.length; i++) {
          x = (x * 1103515245 + 12345) >>> 0;
          big[i] = x >>> 24;
        }
        const digest = async (bytes) => Array.from(
          new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)),
          (b) => b.toString(16).padStart(2, "0"),
        ).join("");
        const bodies = {
          uint8array: allBytes,
          arraybuffer: allBytes.buffer,
          dataview: new DataView(allBytes.buffer),
          blob: new Blob([allBytes], { type: "application/x-test" }),
          request: null,  // a Request carrying the bytes
          big,
        };
        const out = {};
        for (const [name, body] of Object.entries(bodies)) {
          const expected = name === "big" ? big : allBytes;
          const response = name === "request"
            ? await tunnel.fetch(new Request(a.server + "hows-echo", {
                method: "PUT", body: allBytes, headers: { "Content-Type": "application/x-req" },
              }))
            : await tunnel.fetch("hows-echo", { method: "POST", body });
          const echoed = new Uint8Array(await response.arrayBuffer());
          out[name] = {
            status: response.status,
            length: response.headers.get("x-echo-length"),
            sha: response.headers.get("x-echo-sha256") === await digest(expected),
            echoed: echoed.length === expected.length && echoed.every((b, i) => b === expected[i]),
            type: response.headers.get("x-echo-content-type"),
          };
        }
        out.expectedBigSha = await digest(big);
        tunnel.close();
        return out;
        """,
    )
    for name in ("uint8array", "arraybuffer", "dataview", "blob", "request"):
        assert result[name]["status"] == 200, (name, result)
        assert result[name]["length"] == str(256 * 64), (name, result)
        assert result[name]["sha"] is True, (name, result)
        assert result[name]["echoed"] is True, (name, result)
    assert result["blob"]["type"] == "application/x-test"
    assert result["request"]["type"] == "application/x-req"
    big = result["big"]
    assert (big["status"], big["length"], big["sha"], big["echoed"]) == (
        200,
        str(3 * 1024 * 1024),
        True,
        True,
    )


def _io_bytes(pid: int) -> int:
    """Bytes the process has read and written with system calls (files and sockets)."""
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["rchar"]) + int(fields["wchar"])


def _settled_io_bytes(pid: int) -> int:
    """The process's I/O count once it has stopped moving for half a second."""
    before = _io_bytes(pid)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _io_bytes(pid)
        if now - before < 1024 * 1024:
            return now
        before = now
    return _io_bytes(pid)


def test_abort_of_a_large_download_cancels_it_on_the_server(context: Any, setup: Setup) -> None:
    page = open_page(context, setup.page)
    run(page, setup, "window.tunnel = await connect();")
    start = _settled_io_bytes(setup.pid)
    result = run(
        page,
        setup,
        """
        const controller = new AbortController();
        const response = await window.tunnel.fetch("files/big.bin", { signal: controller.signal });
        const reader = response.body.getReader();
        let received = 0;
        while (received < 1024 * 1024) {
          const { value, done } = await reader.read();
          if (done) break;
          received += value.length;
        }
        controller.abort();
        let after;
        try {
          while (true) {
            const { value, done } = await reader.read();
            if (done) { after = "done"; break; }
            received += value.length;
          }
        } catch (e) {
          after = e.name;
        }
        // The tunnel is still good for the next request.
        const next = await window.tunnel.fetch("api/contents/hello.txt?content=1");
        return { status: response.status, length: response.headers.get("content-length"),
                 received, after, next: (await next.json()).content };
        """,
    )
    moved = _settled_io_bytes(setup.pid) - start
    run(page, setup, "window.tunnel.close();")
    assert result["status"] == 200
    assert result["length"] == str(BIG_SIZE)
    assert result["after"] == "AbortError", result
    assert 1024 * 1024 <= result["received"] < BIG_SIZE
    assert result["next"] == "hello from the server's disk\n"
    # The server stopped reading and sending the file: it moved a few frames' worth after
    # the abort, not the rest of the 512 MiB (which it would if the cancel never arrived).
    assert moved < 64 * 1024 * 1024, f"the server moved {moved} bytes after the abort"
