"""The JupyterHub guide's nginx block, run: TLS at an nginx in front of a real hub.

``docs/operators/jupyterhub.md`` marks the nginx configuration an operator puts in
front of the hub with ``<!-- tested: hub-nginx -->``. This module reads it, puts in the
test's port, certificate (a local CA's) and the hub's public port for the guide's
placeholders, runs it in a real nginx (inside the ``http`` block of a minimal
``nginx.conf``) and uses alice's server through it with a hub token: the tunnel's
WebSocket over ``wss://`` (the upgrade passes nginx, then configurable-http-proxy) and
the polling fallback over ``https://`` with an upload larger than nginx's default
1 MiB request body limit.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pytest
from support.hub import Hub
from support.nginx import Nginx
from support.tls import LocalCA

from jupyter_http_over_ws.client import TunnelClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "operators" / "jupyterhub.md"
MARK = "<!-- tested: hub-nginx -->"
TRANSPORTS = ["websocket", "polling"]


def guide_nginx_block() -> str:
    blocks = re.findall(re.escape(MARK) + r"\n```nginx\n(.*?)^```", GUIDE.read_text(), re.S | re.M)
    assert len(blocks) == 1
    return str(blocks[0])


class GuideNginx(Nginx):
    """nginx running the guide's block, with the test's port, certificate and hub."""

    def __init__(self, prefix: Path, hub: Hub, certfile: Path, keyfile: Path) -> None:
        super().__init__(prefix, hub.port, upgrades=True)
        block = guide_nginx_block()
        for placeholder, value in {
            "listen 443 ssl;": f"listen 127.0.0.1:{self.port} ssl;",
            "/etc/nginx/tls/fullchain.pem": str(certfile),
            "/etc/nginx/tls/hub.key": str(keyfile),
            "http://127.0.0.1:8000": f"http://127.0.0.1:{hub.port}",
        }.items():
            assert block.count(placeholder) == 1, placeholder
            block = block.replace(placeholder, value)
        user = "user root;" if os.geteuid() == 0 else ""
        temp = "\n".join(
            f"    {kind}_temp_path {prefix}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.text = f"""
{user}
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {prefix}/access.log;
{temp}
{block}
}}
"""

    def _write_config(self) -> None:
        self.conf.write_text(self.text)

    @property
    def public_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/"


@pytest.fixture(scope="module")
def local_ca(tmp_path_factory):
    return LocalCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    hub = Hub(tmp_path_factory.mktemp("hub"), page_origin="https://app.frontend.example")
    hub.start()
    try:
        hub.start_server("alice")
        yield hub
    finally:
        left = hub.stop()
    assert left == [], f"processes left after the hub stopped: {left}\n{hub.log()[-3000:]}"


@pytest.fixture(scope="module")
def nginx(tmp_path_factory, hub, local_ca):
    certificate = local_ca.issue()
    proxy = GuideNginx(
        tmp_path_factory.mktemp("nginx"), hub, certificate.certfile, certificate.keyfile
    )
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_tunnel_through_the_guides_nginx_in_front_of_the_hub(
    hub, nginx, local_ca, transport
):
    token = hub.new_token("alice", ["access:servers!user=alice"], note="frontend")
    server = f"{nginx.public_url}user/alice/"
    upload = os.urandom(2 * 1024 * 1024)  # over nginx's default client_max_body_size (1 MiB)
    name = f"through-nginx-{transport}.bin"
    async with await TunnelClient.connect(
        server, token=token, transports=(transport,), ca_file=local_ca.ca_file
    ) as tunnel:
        assert tunnel.transport == transport
        saved = await tunnel.request(
            "PUT",
            f"/api/contents/{name}",
            body=(
                '{"type": "file", "format": "base64", "content": "'
                + base64.b64encode(upload).decode()
                + '"}'
            ),
        )
        assert saved.status in (200, 201), saved.text()
        assert (hub.home("alice") / name).read_bytes() == upload
        download = await tunnel.request("GET", f"/files/{name}")
        assert download.status == 200
        assert download.body == upload
    if transport == "websocket":
        # The upgrade went through nginx and configurable-http-proxy to alice's server.
        log = nginx.access_log_with(r'"GET /user/alice/http_over_websocket HTTP/1.1" 101 ')
    else:
        log = nginx.access_log_with(
            r'"POST /user/alice/http_over_websocket/polling/\S+/send\S* HTTP'
        )
    assert token not in log
