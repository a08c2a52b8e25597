"""``jupyter http-over-ws doctor``: each failure cause, produced by a real server.

The command runs for real: ``cli.main(["doctor", ...])`` in a worker thread (with its
own event loop, as from a shell) while pytest-jupyter's server keeps serving on the
test's loop, and once as a subprocess through the installed ``jupyter-http-over-ws``
script. Most tests read ``--json`` output; one reads the plain text a user sees.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import re
import shutil
import ssl
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.nginx import Nginx
from support.ports import free_port

from jupyter_http_over_ws import __version__, cli

pytestmark = pytest.mark.timeout(90)

ALLOWED = "https://allowed.example"
FOREIGN = "https://evil.example"
EXTENSION = {"jpserver_extensions": {"jupyter_http_over_ws": True}}


def server_config(**server_app: Any) -> dict[str, Any]:
    """A jp_server_config with the extension and these ``ServerApp`` settings."""
    return {"ServerApp": {**EXTENSION, **server_app}}


def run_doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``jupyter http-over-ws doctor ARGS`` in this thread: its exit status and stdout."""
    status = cli.main(["doctor", *args])
    return status, capsys.readouterr().out


async def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The same, off the test's event loop, so the server on that loop keeps answering."""
    return await asyncio.to_thread(run_doctor, capsys, *args)


async def doctor_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    """Run the doctor with ``--json`` and return its exit status and parsed report."""
    status, out = await doctor(capsys, *args, "--json", "--timeout", "15")
    return status, json.loads(out)


def findings(report: dict, check: str, status: str | None = None) -> list[dict]:
    """The findings of one check (and one status)."""
    return [
        f
        for f in report["findings"]
        if f["check"] == check and (status is None or f["status"] == status)
    ]


def statuses(report: dict) -> list[tuple[str, str]]:
    """(check, status) of every finding, in order."""
    return [(f["check"], f["status"]) for f in report["findings"]]


# ---------------------------------------------------------------- 1. reachable


def test_nothing_listening(capsys):
    port = free_port()
    status, out = run_doctor(capsys, f"http://127.0.0.1:{port}/", "--json")
    report = json.loads(out)
    assert status == 1
    assert report["ok"] is False
    assert statuses(report) == [("reachable", "problem")]
    (finding,) = report["findings"]
    assert f"Nothing listens on 127.0.0.1 port {port}" in finding["message"]
    assert f"jupyter server --port={port}" in finding["fix"]


def test_host_name_that_does_not_resolve(capsys):
    # .invalid never resolves (RFC 6761), with or without a network.
    status, out = run_doctor(capsys, "http://no-such-host.invalid:8888/", "--json")
    report = json.loads(out)
    assert status == 1
    (finding,) = report["findings"]
    assert finding["message"].startswith("The host name 'no-such-host.invalid' does not resolve")
    assert "localhost" in finding["fix"]


class _NotJupyter(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>some other web server</html>"
        self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def other_web_server() -> Iterator[str]:
    """A plain HTTP server that is not Jupyter (the standard library's)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotJupyter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_not_a_jupyter_server(capsys, other_web_server):
    status, out = run_doctor(capsys, f"http://{other_web_server}/", "--json")
    report = json.loads(out)
    assert status == 1
    assert statuses(report) == [("reachable", "problem")]
    message = report["findings"][0]["message"]
    assert "gave 404" in message
    assert "not a Jupyter server" in message
    assert "base_url" in report["findings"][0]["fix"]


def test_https_url_for_a_plain_http_server(capsys, other_web_server):
    status, out = run_doctor(capsys, f"https://{other_web_server}/", "--json", "--timeout", "10")
    report = json.loads(out)
    assert status == 1
    assert statuses(report) == [("reachable", "problem")]
    (finding,) = report["findings"]
    assert finding["message"] == (
        f"The server at {other_web_server} speaks plain HTTP, so https://{other_web_server}/ "
        "cannot reach it."
    )
    assert finding["fix"] == f"use http://{other_web_server}/ (and ws:// in the page)"


async def test_https_url_for_a_plain_jupyter_server(capsys, hows_server_url):
    # Tornado waits for the end of headers that a TLS ClientHello never sends: a timeout.
    https = hows_server_url.replace("http://", "https://", 1)
    status, out = await doctor(capsys, https, "--json", "--timeout", "2")
    report = json.loads(out)
    assert status == 1
    assert statuses(report) == [("reachable", "problem")]
    assert "speaks plain HTTP" in report["findings"][0]["message"]
    assert report["findings"][0]["fix"].startswith(f"use {hows_server_url} ")


# A self-signed certificate for localhost (EC P-256, valid until 2126), for the TLS server.
CERTIFICATE = """-----BEGIN CERTIFICATE-----
MIIBmjCCAUGgAwIBAgIUThUEMqPbMeqKF2Rj+kNAwbRmYswwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyMjAzMDM0OVoYDzIxMjYxMDI5
MDMwMzQ5WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAARLZugeZw2uR9BRRUFA9sR4+qtid17/sNfVDsQd1AGXDgRv9vwgh+4E
g0n1lXkUvxQC5NkYTdGwBjsze4OwwerOo28wbTAdBgNVHQ4EFgQUIWQhIBuxF5tI
U71R31jPU2OQ7nQwHwYDVR0jBBgwFoAUIWQhIBuxF5tIU71R31jPU2OQ7nQwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDRwAwRAIgA68LGzD18A8/AAX24PTDL3ccV7sgtHng+EegdiWx86ECID2X
vdl9IQ5NLFuRmypQBiwot0KvfvLQZkC47AE3AJTZ
-----END CERTIFICATE-----
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgDZcq+E9wq0MsXZT5
SBdPo1sAq3KXpR6WX4d9bupwSGqhRANCAARLZugeZw2uR9BRRUFA9sR4+qtid17/
sNfVDsQd1AGXDgRv9vwgh+4Eg0n1lXkUvxQC5NkYTdGwBjsze4OwwerO
-----END PRIVATE KEY-----
"""


@pytest.fixture(scope="module")
def tls_web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An HTTPS server (the standard library's) with a certificate nobody trusts."""
    pem = tmp_path_factory.mktemp("tls") / "localhost.pem"
    pem.write_text(CERTIFICATE)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotJupyter)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"localhost:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_http_url_for_an_https_server(capsys, tls_web_server):
    status, out = run_doctor(capsys, f"http://{tls_web_server}/", "--json", "--timeout", "10")
    report = json.loads(out)
    assert status == 1
    (finding,) = report["findings"]
    assert finding["message"] == (
        f"The server at {tls_web_server} speaks HTTPS, so http://{tls_web_server}/ cannot reach it."
    )
    assert finding["fix"] == f"use https://{tls_web_server}/ (and wss:// in the page)"


def test_untrusted_certificate(capsys, tls_web_server):
    status, out = run_doctor(capsys, f"https://{tls_web_server}/", "--json", "--timeout", "10")
    report = json.loads(out)
    assert status == 1
    (finding,) = report["findings"]
    assert finding["message"].startswith("The server's TLS certificate is not trusted (")
    assert "self-signed" in finding["message"]
    assert "SSL_CERT_FILE" in finding["fix"]


@pytest.mark.parametrize("jp_base_url", ["/user/alice/"])
async def test_url_without_the_base_url(capsys, hows_server_url, hows_token):
    root = hows_server_url.removesuffix("user/alice/")
    status, report = await doctor_json(capsys, root, "--token", hows_token)
    assert status == 1
    assert statuses(report) == [("reachable", "problem")]
    assert "base_url" in report["findings"][0]["message"]


# ---------------------------------------------------------------- 2. extension


@pytest.mark.parametrize("jp_server_config", [{"ServerApp": {"jpserver_extensions": {}}}])
async def test_server_without_the_extension(capsys, hows_server_url, hows_token):
    status, report = await doctor_json(capsys, hows_server_url, "--token", hows_token)
    assert status == 1
    assert statuses(report) == [("reachable", "ok"), ("extension", "problem")]
    finding = report["findings"][1]
    assert "does not load the jupyter_http_over_ws extension" in finding["message"]
    assert "pip install -U jupyter-http-over-ws" in finding["fix"]
    assert "jupyter server extension enable jupyter_http_over_ws" in finding["fix"]


async def test_min_version_newer_than_the_server(capsys, hows_server_url, hows_token):
    status, report = await doctor_json(
        capsys, hows_server_url, "--token", hows_token, "--min-version", "99.0"
    )
    assert status == 1
    assert statuses(report) == [("reachable", "ok"), ("extension", "problem")]
    finding = report["findings"][1]
    assert f"jupyter_http_over_ws {__version__}, older than the 99.0" in finding["message"]
    assert "4400" in finding["message"]
    assert "pip install -U jupyter-http-over-ws" in finding["fix"]


# ---------------------------------------------------------------- 3. origin


@pytest.mark.parametrize("jp_server_config", [server_config(allow_origin=ALLOWED)])
async def test_origin_not_allowed(capsys, hows_server_url, hows_token):
    status, report = await doctor_json(
        capsys, hows_server_url, "--origin", FOREIGN, "--token", hows_token, "--no-kernel"
    )
    assert status == 1
    (problem,) = findings(report, "origin", "problem")
    # With a valid token, the server shows its allow_origin as configured.
    assert problem["message"] == (
        f"The server allows only the origin {ALLOWED!r}, not {FOREIGN!r}."
    )
    assert f"--ServerApp.allow_origin='{FOREIGN}'" in problem["fix"]
    # The token still opens the tunnel from there, as jupyter_server decides; the doctor
    # says so rather than leaving the user to wonder.
    assert findings(report, "credentials", "ok")
    (note,) = findings(report, "credentials", "note")
    assert "trusts a valid token from any origin" in note["message"]
    assert findings(report, "request", "ok")


@pytest.mark.parametrize("jp_server_config", [server_config(allow_origin=ALLOWED)])
async def test_origin_not_allowed_without_a_token(capsys, hows_server_url):
    status, report = await doctor_json(capsys, hows_server_url, "--origin", FOREIGN)
    assert status == 1
    (problem,) = findings(report, "origin", "problem")
    assert "neither allow_origin nor allow_origin_pat admits it" in problem["message"]
    assert f"--ServerApp.allow_origin='{FOREIGN}'" in problem["fix"]


@pytest.mark.parametrize("jp_server_config", [server_config(allow_origin=ALLOWED + "/")])
@pytest.mark.parametrize("with_token", [True, False])
async def test_allow_origin_with_a_trailing_slash(capsys, hows_server_url, hows_token, with_token):
    """Configured as it was given (with a slash), the server matches no browser."""
    args = ["--origin", ALLOWED + "/", "--no-kernel"]
    if with_token:
        args += ["--token", hows_token]
    status, report = await doctor_json(capsys, hows_server_url, *args)
    assert status == 1
    (note,) = findings(report, "origin", "note")
    assert f"so {ALLOWED!r} was checked" in note["message"]
    (problem,) = findings(report, "origin", "problem")
    assert problem["message"] == (
        f"The server's allow_origin is '{ALLOWED}/', which has a trailing slash and so "
        f"matches no browser's Origin ({ALLOWED!r})."
    )
    assert f"--ServerApp.allow_origin='{ALLOWED}'" in problem["fix"]


@pytest.mark.parametrize("jp_server_config", [server_config(allow_origin=ALLOWED)])
async def test_origin_argument_with_a_trailing_slash(capsys, hows_server_url, hows_token):
    """A slash only in the doctor's argument: noted, checked without it, and it works."""
    status, report = await doctor_json(
        capsys, hows_server_url, "--origin", ALLOWED + "/", "--token", hows_token, "--no-kernel"
    )
    assert status == 0, report
    notes = findings(report, "origin", "note")
    assert "is not what a browser sends" in notes[0]["message"]
    (ok,) = findings(report, "origin", "ok")
    assert ok["message"].startswith(f"The server accepts WebSockets from {ALLOWED}:")
    assert "allow_origin or allow_origin_pat admits it" in ok["message"]


@pytest.mark.parametrize(
    "jp_server_config", [server_config(allow_origin_pat=r"https://.*\.allowed\.example")]
)
async def test_allow_origin_pat(capsys, hows_server_url, hows_token):
    origin = "https://app.allowed.example"
    status, report = await doctor_json(
        capsys, hows_server_url, "--origin", origin, "--token", hows_token, "--no-kernel"
    )
    assert status == 0, report
    (ok,) = findings(report, "origin", "ok")
    assert origin in ok["message"]
    (kernel,) = findings(report, "kernel")
    assert kernel["status"] == "skipped"


# ---------------------------------------------------------------- 4. credentials


async def test_wrong_token(capsys, hows_server_url):
    status, report = await doctor_json(capsys, hows_server_url, "--token", "wrong")
    assert status == 1
    (problem,) = findings(report, "credentials", "problem")
    assert problem["message"] == "The server refused the token (the tunnel upgrade answered 403)."
    assert "jupyter server list" in problem["fix"]
    (note,) = findings(report, "credentials", "note")
    assert "SameSite=Lax" in note["message"]
    assert not findings(report, "request")


async def test_no_token(capsys, hows_server_url):
    """The text a user reads: one sentence per finding, the fix under each problem."""
    status, out = await doctor(capsys, hows_server_url, "--timeout", "15")
    assert status == 1
    lines = out.splitlines()
    assert lines[0] == f"Checking {hows_server_url}"
    assert lines[1].startswith("ok       Jupyter Server ")
    assert lines[2] == f"ok       The jupyter_http_over_ws extension {__version__} is loaded."
    assert lines[3].startswith("skipped  No --origin given")
    problem = lines.index(
        "PROBLEM  The server requires credentials and none were given "
        "(the tunnel upgrade answered 403)."
    )
    fix = lines[problem + 1]
    assert fix.strip().startswith("fix: pass the server's token")
    assert "--token <token>" in fix
    assert "jupyter_http_over_ws_auth_url" in fix
    assert "token option" in fix
    assert any(
        line.startswith("note") and "SameSite=Lax" in line and "original README" in line
        for line in lines
    )
    assert lines[-1] == "1 problem found."


@pytest.mark.parametrize("jp_server_config", [server_config(allow_origin="http://localhost:3000")])
async def test_no_token_from_the_same_site(capsys, hows_server_url):
    """A page on the server's own site does get the login cookie: no SameSite note then."""
    same_site = "http://localhost:3000"  # another origin (port), but the same site
    status, report = await doctor_json(capsys, hows_server_url, "--origin", same_site)
    assert status == 1
    assert findings(report, "origin", "ok")
    assert findings(report, "credentials", "problem")
    assert not findings(report, "credentials", "note")


@pytest.mark.parametrize("jp_base_url", ["/user/alice/"])
async def test_token_and_base_url_from_a_copied_page_url(capsys, hows_server_url, hows_token):
    """The URL as a browser shows it: a page under base_url, the token in the query."""
    assert hows_server_url.endswith("/user/alice/")
    url = f"{hows_server_url}lab?token={hows_token}"
    status, report = await doctor_json(capsys, url, "--no-kernel")
    assert status == 0, report
    assert report["url"] == hows_server_url
    (note,) = findings(report, "reachable", "note")
    assert "is a page of the server" in note["message"]
    (ok,) = findings(report, "credentials", "ok")
    assert "as jupyter_http_over_ws_auth_url" in ok["message"]


# ---------------------------------------------------------------- 5. everything


@pytest.mark.parametrize("jp_server_config", [server_config(allow_origin=ALLOWED)])
async def test_all_good(capsys, hows_server_url, hows_token, jp_serverapp):
    status, report = await doctor_json(
        capsys, hows_server_url, "--origin", ALLOWED, "--token", hows_token
    )
    assert status == 0, report
    assert report["ok"] is True
    assert [check for check, state in statuses(report) if state == "ok"] == [
        "reachable",
        "extension",
        "origin",
        "credentials",
        "request",
        "polling",
        "kernel",
    ]
    assert {state for _, state in statuses(report)} == {"ok", "note"}
    (polling,) = findings(report, "polling")
    assert polling["message"].startswith("The polling fallback works too: GET /api/status")
    (kernel,) = findings(report, "kernel")
    assert kernel["message"].startswith("A python kernel answered kernel_info through a proxied")
    assert "v1.kernel.websocket.jupyter.org" in kernel["message"]
    # The doctor shut its kernel down.
    assert jp_serverapp.kernel_manager.list_kernel_ids() == []


@pytest.mark.slow
@pytest.mark.parametrize("jp_server_config", [server_config(allow_origin=ALLOWED)])
async def test_installed_command(hows_server_url, hows_token):
    """``jupyter http-over-ws doctor`` as a user runs it: the installed script, a process."""
    script = shutil.which("jupyter-http-over-ws", path=str(Path(sys.executable).parent))
    assert script is not None
    jupyter = [sys.executable, "-m", "jupyter", "http-over-ws"]
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(script).parent), os.environ["PATH"]])}
    for command, token in ((jupyter, hows_token), ([script], "wrong")):
        process = await asyncio.create_subprocess_exec(
            *command,
            "doctor",
            hows_server_url,
            "--origin",
            ALLOWED,
            "--token",
            token,
            "--no-kernel",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        text = out.decode()
        if token == hows_token:
            assert process.returncode == 0, (text, err.decode())
            assert text.splitlines()[-1] == "Everything works."
        else:
            assert process.returncode == 1, (text, err.decode())
            assert "PROBLEM  The server refused the token" in text


# ---------------------------------------------------------------- 5. what breaks after the upgrade


@pytest.mark.parametrize("jp_server_config", [server_config(allow_origin="*")])
async def test_allow_origin_star_is_named(capsys, hows_server_url, hows_token):
    status, report = await doctor_json(
        capsys, hows_server_url, "--origin", FOREIGN, "--token", hows_token, "--no-kernel"
    )
    assert status == 0, report
    (ok,) = findings(report, "origin", "ok")
    assert "allow_origin='*' admits every site" in ok["message"]


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "ServerApp": EXTENSION,
            "HttpOverWebSocketApp": {"allowed_paths": ["/api/kernels"]},
        }
    ],
)
async def test_allowed_paths_refusing_the_request(capsys, hows_server_url, hows_token):
    status, report = await doctor_json(capsys, hows_server_url, "--token", hows_token)
    assert status == 1
    (problem,) = findings(report, "request", "problem")
    assert problem["message"].startswith("GET /api/status through the tunnel answered 403")
    assert "allowed_paths" in problem["fix"]
    assert not findings(report, "kernel")


@pytest.mark.parametrize(
    "jp_server_config",
    [{"ServerApp": EXTENSION, "MappingKernelManager": {"default_kernel_name": "no-such-kernel"}}],
)
async def test_kernel_that_cannot_start(capsys, hows_server_url, hows_token, jp_serverapp):
    status, report = await doctor_json(capsys, hows_server_url, "--token", hows_token)
    assert status == 1
    assert findings(report, "request", "ok")
    (problem,) = findings(report, "kernel", "problem")
    assert problem["message"].startswith("Starting a kernel through the tunnel answered ")
    assert "pip install ipykernel" in problem["fix"]
    assert jp_serverapp.kernel_manager.list_kernel_ids() == []


# ---------------------------------------------------------------- the polling fallback


@pytest.mark.parametrize(
    "jp_server_config",
    [{"ServerApp": EXTENSION, "HttpOverWebSocketApp": {"allow_polling": False}}],
)
async def test_polling_turned_off(capsys, hows_server_url, hows_token):
    """A setting, not a fault: noted with what it costs, and the run still passes."""
    status, report = await doctor_json(capsys, hows_server_url, "--token", hows_token)
    assert status == 0, report
    assert [check for check, state in statuses(report) if state != "skipped"][-3:] == [
        "request",
        "polling",
        "kernel",
    ]
    (note,) = findings(report, "polling", "note")
    assert note["message"].startswith("WebSockets work, but the polling fallback is off (")
    assert "http_over_websocket/polling answers 404" in note["message"]
    assert "--HttpOverWebSocketApp.allow_polling=True" in note["fix"]


def _nginx(tmp_path: Path, upstream_port: int, *, upgrades: bool) -> Iterator[Nginx]:
    proxy = Nginx(tmp_path / "nginx", upstream_port, upgrades=upgrades)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def old_proxy(jp_serverapp, http_server, jp_http_port, tmp_path) -> Iterator[Nginx]:
    """A real nginx in front of the test server that drops WebSocket upgrades."""
    yield from _nginx(tmp_path, jp_http_port, upgrades=False)


@pytest.fixture
def good_proxy(jp_serverapp, http_server, jp_http_port, tmp_path) -> Iterator[Nginx]:
    """The same nginx configured to pass upgrades, as nginx's documentation says."""
    yield from _nginx(tmp_path, jp_http_port, upgrades=True)


@pytest.mark.slow
@pytest.mark.parametrize("jp_server_config", [server_config(allow_origin=ALLOWED)])
async def test_behind_a_proxy_that_passes_upgrades(capsys, good_proxy, jp_base_url, hows_token):
    """With the fix applied, the same checks through nginx all pass, polling included."""
    url = good_proxy.url(jp_base_url)
    status, report = await doctor_json(capsys, url, "--origin", ALLOWED, "--token", hows_token)
    assert status == 0, report
    assert not findings(report, "websocket")
    assert findings(report, "request", "ok")
    (polling,) = findings(report, "polling", "ok")
    assert polling["message"].startswith("The polling fallback works too: ")
    (kernel,) = findings(report, "kernel", "ok")
    assert "over the polling transport" not in kernel["message"]
    log = good_proxy.access_log_with(r'"GET [^"]*/http_over_websocket HTTP/1.1" 101 ')
    assert "/http_over_websocket/polling/" in log


PROXY_SENTENCE = "so a proxy in between drops WebSocket upgrades"
NGINX_FIX = (
    "proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; "
    'proxy_set_header Connection "upgrade";'
)


@pytest.mark.slow
@pytest.mark.parametrize("jp_server_config", [server_config(allow_origin=ALLOWED)])
async def test_behind_a_proxy_that_drops_upgrades(
    capsys, old_proxy, jp_base_url, hows_token, jp_serverapp
):
    """WebSocket fails through nginx, polling works: the doctor names the proxy and its fix."""
    url = old_proxy.url(jp_base_url)
    status, report = await doctor_json(capsys, url, "--origin", ALLOWED, "--token", hows_token)
    assert status == 1
    assert statuses(report) == [
        ("reachable", "ok"),
        ("extension", "ok"),
        ("origin", "skipped"),
        ("credentials", "ok"),
        ("websocket", "problem"),
        ("polling", "ok"),
        ("kernel", "ok"),
    ]
    (extension,) = findings(report, "extension")
    assert f"extension {__version__} is loaded" in extension["message"]
    assert "from the polling transport" in extension["message"]
    (websocket,) = findings(report, "websocket")
    assert f"{url}http_over_websocket/diagnose answered HTTP 400" in websocket["message"]
    assert PROXY_SENTENCE in websocket["message"]
    assert "Clients with the polling transport still connect" in websocket["message"]
    assert "forward the Upgrade and Connection headers" in websocket["fix"]
    assert NGINX_FIX in websocket["fix"]
    (polling,) = findings(report, "polling")
    assert "answered 200" in polling["message"]
    (kernel,) = findings(report, "kernel")
    assert "over the polling transport and was shut down" in kernel["message"]
    assert jp_serverapp.kernel_manager.list_kernel_ids() == []
    # It all went through nginx: the upgrades it refused, the polling requests it passed.
    log = old_proxy.access_log()
    assert re.search(r'"GET [^"]*/http_over_websocket/diagnose[^"]*" 400 ', log), log
    assert "/http_over_websocket/polling/" in log
    # What a user reads: the problem, its fix, and that polling works.
    status, out = await doctor(capsys, url, "--token", hows_token, "--no-kernel")
    lines = out.splitlines()
    (problem,) = [i for i, line in enumerate(lines) if line.startswith("PROBLEM  WebSocket")]
    assert PROXY_SENTENCE in lines[problem]
    assert lines[problem + 1].strip().startswith("fix: let the proxy pass WebSocket upgrades")
    assert lines[problem + 2].startswith("ok       The polling fallback works: ")
    assert lines[-1] == "1 problem found."


@pytest.mark.slow
@pytest.mark.parametrize(
    "jp_server_config",
    [{"ServerApp": EXTENSION, "HttpOverWebSocketApp": {"allow_polling": False}}],
)
async def test_behind_a_proxy_that_drops_upgrades_without_polling(
    capsys, old_proxy, jp_base_url, hows_token
):
    status, report = await doctor_json(
        capsys, old_proxy.url(jp_base_url), "--token", hows_token, "--no-kernel"
    )
    assert status == 1
    assert statuses(report)[-1] == ("websocket", "problem")
    (websocket,) = findings(report, "websocket")
    assert PROXY_SENTENCE in websocket["message"]
    assert websocket["message"].endswith("answers 404), so no client can connect.")
    assert NGINX_FIX in websocket["fix"]
    assert "--HttpOverWebSocketApp.allow_polling=True" in websocket["fix"]


@pytest.mark.slow
async def test_behind_a_proxy_that_drops_upgrades_without_a_token(capsys, old_proxy, jp_base_url):
    """The credentials fail over polling; the dropped upgrade is still named."""
    status, report = await doctor_json(capsys, old_proxy.url(jp_base_url), "--no-kernel")
    assert status == 1
    (problem,) = findings(report, "credentials", "problem")
    assert problem["message"] == (
        "The server requires credentials and none were given "
        "(the polling session request answered 403)."
    )
    assert "--token <token>" in problem["fix"]
    assert findings(report, "credentials", "note")  # the SameSite note: a token is needed
    (websocket,) = findings(report, "websocket", "problem")
    assert PROXY_SENTENCE in websocket["message"]
    assert "connect once their token is accepted" in websocket["message"]
    assert NGINX_FIX in websocket["fix"]
    assert not findings(report, "polling")
