"""Remote kernels through a Kernel Gateway behind TLS, used through the tunnel.

The gateway serves HTTPS only, with a certificate from :class:`support.tls.LocalCA`
(``--KernelGatewayApp.certfile``/``keyfile``); the Jupyter server's ``GatewayClient``
keeps ``validate_cert`` on and trusts that CA through ``SSL_CERT_FILE`` (a bundle of the
system's CAs and the gateway's). Through the tunnel, over the WebSocket transport and
over polling: the kernelspecs are the gateway's, a kernel starts there and runs code
with outputs over a proxied kernel socket (which the server relays to the gateway's
``wss://`` socket), and restarts.

``GatewayClient.ca_certs`` (``JUPYTER_GATEWAY_CA_CERTS``) alone is not enough: jupyter_server
2 passes it on only together with ``client_cert`` (``GatewayClient.init_connection_args``),
so a server given only that, like one given nothing, cannot use the gateway at all
(the certificate is really checked).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.gateway import GATEWAY_KERNEL, KernelGateway, gateway_server
from support.kernels import stdout_text
from support.server_process import ServerProcess
from support.tls import LocalCA
from test_gateway import start_kernel, tunnel_socket

from jupyter_http_over_ws.client import TunnelClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

TRANSPORTS = [("websocket",), ("polling",)]


@pytest.fixture(scope="module")
def tls_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelGateway]:
    """A Kernel Gateway on HTTPS, its certificate from a fresh test CA."""
    ca = LocalCA(tmp_path_factory.mktemp("gateway-ca"))
    gw = KernelGateway(tmp_path_factory.mktemp("tls-gateway"), ca)
    gw.start()
    try:
        yield gw
    finally:
        gw.kill()


@pytest.fixture(scope="module")
def server(
    tls_gateway: KernelGateway, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A jupyter_server with the extension that trusts the gateway's CA (SSL_CERT_FILE)."""
    srv = gateway_server(tmp_path_factory.mktemp("server"), tls_gateway)
    srv.start()
    try:
        yield srv
    finally:
        srv.kill()


@pytest.mark.parametrize("transports", TRANSPORTS, ids=lambda t: t[0])
async def test_kernels_on_a_tls_gateway_through_the_tunnel(
    server: ServerProcess, tls_gateway: KernelGateway, transports: tuple[str, ...]
) -> None:
    assert tls_gateway.url.startswith("https://")
    async with await TunnelClient.connect(
        server.url, token=server.token, transports=transports
    ) as tunnel:
        assert tunnel.transport == transports[0]
        specs = await tunnel.request("GET", "api/kernelspecs")
        assert specs.status == 200, specs.text()
        assert set(specs.json()["kernelspecs"]) == {GATEWAY_KERNEL}

        kernel_id = await start_kernel(tunnel)
        assert kernel_id in tls_gateway.kernel_ids()
        kernel, connection = await tunnel_socket(tunnel, kernel_id)
        await kernel.wait_ready()
        msg_id = await kernel.execute("print('on the tls gateway', 6 * 7)")
        assert stdout_text(await kernel.collect(msg_id)) == "on the tls gateway 42\n"

        restarted = await tunnel.request("POST", f"api/kernels/{kernel_id}/restart")
        assert restarted.status == 200, restarted.text()
        await kernel.wait_ready()
        msg_id = await kernel.execute("print('again')")
        assert stdout_text(await kernel.collect(msg_id)) == "again\n"

        connection.close()
        deleted = await tunnel.request("DELETE", f"api/kernels/{kernel_id}")
        assert deleted.status == 204, deleted.text()
    assert kernel_id not in tls_gateway.kernel_ids()
    assert not server.error_lines()


@pytest.mark.parametrize("ca_variable", [None, "JUPYTER_GATEWAY_CA_CERTS"])
async def test_without_the_ca_the_server_cannot_use_the_gateway(
    tls_gateway: KernelGateway, tmp_path: Path, ca_variable: str | None
) -> None:
    # Only the system's CAs (ca_certs without client_cert is not used): the gateway's
    # certificate does not verify, so no kernel or kernelspec comes through, and the
    # server's log says why.
    srv = gateway_server(
        tmp_path / "server", tls_gateway, ca_variable=ca_variable, reaches_gateway=False
    )
    try:
        srv.start()
        async with await TunnelClient.connect(srv.url, token=srv.token) as tunnel:
            specs = await tunnel.request("GET", "api/kernelspecs")
            started = await tunnel.request(
                "POST", "api/kernels", body=f'{{"name": "{GATEWAY_KERNEL}"}}'
            )
        assert specs.status >= 500, specs.text()
        assert started.status >= 500, started.text()
        assert "CERTIFICATE_VERIFY_FAILED" in srv.log()
        assert tls_gateway.kernel_ids() == set()
    finally:
        srv.kill()
