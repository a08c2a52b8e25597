"""The tunnel over TLS: a real Jupyter server with a certificate from a local CA.

The Python client reaches it over ``wss://`` (the tunnel) and ``https://`` (the
polling transport) when told to trust the CA (``ca_file=`` or ``ssl=``): a REST
request is byte-exact and a kernel answers through a proxied socket, which the
server relays to its own TLS socket (upstream.py). Without the CA, or under a name
the certificate does not list, the client fails with the certificate problem named,
and does not fall back to polling. ``http://`` to the TLS port, and ``https://`` to a
plain server, raise :class:`WrongSchemeError` with the URL to use.
"""

from __future__ import annotations

import base64
import json
import ssl
import uuid
from collections.abc import Iterator

import pytest
from support.kernels import V1, KernelSocket, stdout_text
from support.ports import free_port
from support.server_process import ServerProcess
from support.tls import LocalCA, TlsServerProcess
from support.tls import local_ca as local_ca
from support.tls import tls_server as tls_server
from support.tls import wrong_name_server as wrong_name_server

from jupyter_http_over_ws.client import TunnelClient, WrongSchemeError, diagnose

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ALL_BYTES = bytes(range(256)) * 64
TRANSPORTS = [("websocket",), ("polling",)]


async def put_file(tunnel: TunnelClient, name: str, data: bytes) -> None:
    body = json.dumps(
        {"type": "file", "format": "base64", "content": base64.b64encode(data).decode()}
    )
    reply = await tunnel.request("PUT", f"api/contents/{name}", body=body)
    assert reply.status in (200, 201), reply.text()


async def kernel_round_trip(tunnel: TunnelClient) -> None:
    """Start a kernel, run code through a proxied socket, read its output, stop it."""
    started = await tunnel.request("POST", "api/kernels", body="{}")
    assert started.status == 201, started.text()
    kernel_id = started.json()["id"]
    try:
        session = uuid.uuid4().hex
        connection = await tunnel.websocket(
            f"api/kernels/{kernel_id}/channels?session_id={session}", subprotocols=[V1]
        )
        kernel = KernelSocket(connection, session, V1)
        await kernel.wait_ready()
        msg_id = await kernel.execute("print('over', 'tls')")
        messages = await kernel.collect(msg_id)
        assert stdout_text(messages) == "over tls\n"
        connection.close()
    finally:
        await tunnel.request("DELETE", f"api/kernels/{kernel_id}")


@pytest.fixture(scope="module")
def tls_server_without_entrance(
    local_ca: LocalCA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsServerProcess]:
    """A TLS server whose relays dial its public TLS socket (no private entrance)."""
    server = TlsServerProcess(
        tmp_path_factory.mktemp("no-entrance"), local_ca, local_ca.issue(), private_entrance=False
    )
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.mark.parametrize("transports", TRANSPORTS, ids=lambda t: t[0])
async def test_relay_dials_the_servers_own_tls_socket(
    tls_server_without_entrance: TlsServerProcess, transports: tuple[str, ...]
) -> None:
    # Without the private entrance (a platform without Unix sockets), a proxied socket
    # is relayed to wss:// on the server's own address; its certificate is its own.
    server = tls_server_without_entrance
    async with await TunnelClient.connect(
        server.url, token=server.token, ca_file=server.ca.ca_file, transports=transports
    ) as tunnel:
        await kernel_round_trip(tunnel)
    assert f"relay dials wss://127.0.0.1:{server.port}/api/kernels/" in server.log()
    assert not server.error_lines()


@pytest.mark.parametrize("transports", TRANSPORTS, ids=lambda t: t[0])
async def test_rest_and_kernel_over_tls_with_ca_file(
    tls_server: TlsServerProcess, transports: tuple[str, ...]
) -> None:
    assert tls_server.url.startswith("https://")
    async with await TunnelClient.connect(
        tls_server.url,
        token=tls_server.token,
        ca_file=tls_server.ca.ca_file,
        transports=transports,
    ) as tunnel:
        assert tunnel.transport == transports[0]
        name = f"tls-{transports[0]}.bin"
        await put_file(tunnel, name, ALL_BYTES)
        download = await tunnel.request("GET", f"files/{name}")
        assert download.status == 200
        assert download.body == ALL_BYTES

        await kernel_round_trip(tunnel)


async def test_ssl_context_and_diagnose(tls_server: TlsServerProcess) -> None:
    context = tls_server.ca.ssl_context()
    async with await TunnelClient.connect(
        tls_server.url, token=tls_server.token, ssl=context, transports=("websocket",)
    ) as tunnel:
        reply = await tunnel.request("GET", "api/status")
        assert reply.status == 200
    answer = await diagnose(tls_server.url, ca_file=tls_server.ca.ca_file)
    assert answer.extension_version


@pytest.mark.parametrize("transports", [*TRANSPORTS, ("websocket", "polling")], ids="+".join)
async def test_unknown_ca_is_named(
    tls_server: TlsServerProcess, transports: tuple[str, ...]
) -> None:
    # No ca_file: the system's CAs, which do not include the test CA.
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        await TunnelClient.connect(tls_server.url, token=tls_server.token, transports=transports)
    message = str(caught.value)
    assert f"the TLS certificate of {tls_server.url} is not accepted" in message
    # The server presents its chain, so OpenSSL meets the CA itself, untrusted.
    assert "self-signed certificate in certificate chain" in message
    assert "ca_file=" in message
    assert "SSL_CERT_FILE" in message


async def test_another_ca_is_not_trusted(tls_server: TlsServerProcess, tmp_path) -> None:
    other = LocalCA(tmp_path / "other")
    with pytest.raises(
        ssl.SSLCertVerificationError, match="self-signed certificate in certificate chain"
    ):
        await TunnelClient.connect(tls_server.url, token=tls_server.token, ca_file=other.ca_file)


@pytest.mark.parametrize("transports", TRANSPORTS, ids=lambda t: t[0])
async def test_wrong_host_name_is_named(
    wrong_name_server: TlsServerProcess, transports: tuple[str, ...]
) -> None:
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        await TunnelClient.connect(
            wrong_name_server.url,
            token=wrong_name_server.token,
            ca_file=wrong_name_server.ca.ca_file,
            transports=transports,
        )
    message = str(caught.value)
    assert "IP address mismatch, certificate is not valid for '127.0.0.1'" in message
    assert "a name the certificate lists" in message


async def test_ssl_and_ca_file_together_are_refused(tls_server: TlsServerProcess) -> None:
    context = tls_server.ca.ssl_context()
    with pytest.raises(ValueError, match="not both"):
        await TunnelClient.connect(tls_server.url, ssl=context, ca_file=tls_server.ca.ca_file)


# ------------------------------------------------------------------ the wrong scheme
# http:// to the TLS port is reset at once; https:// to a plain port waits for the
# handshake until the connect timeout. Both are named, as the doctor names them, with
# the URL to use, and neither tries polling after the WebSocket (it would fail the same).

ALL_TRANSPORTS = [*TRANSPORTS, ("websocket", "polling")]


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real Jupyter server with the extension, plain HTTP."""
    server = ServerProcess(tmp_path_factory.mktemp("plain-server"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.mark.parametrize("transports", ALL_TRANSPORTS, ids="+".join)
async def test_plain_http_to_the_tls_port_is_named(
    tls_server: TlsServerProcess, transports: tuple[str, ...]
) -> None:
    with pytest.raises(WrongSchemeError) as caught:
        await TunnelClient.connect(
            tls_server.plain_url, token=tls_server.token, transports=transports
        )
    assert str(caught.value) == (
        f"The server at 127.0.0.1:{tls_server.port} speaks HTTPS, so {tls_server.plain_url} "
        f"cannot reach it: use {tls_server.url}"
    )
    assert caught.value.suggested_url == tls_server.url
    assert caught.value.server_speaks_tls is True
    assert isinstance(caught.value, ConnectionError)  # what the reset was, an OSError


@pytest.mark.parametrize("transports", ALL_TRANSPORTS, ids="+".join)
async def test_https_to_a_plain_port_is_named(
    plain_server: ServerProcess, local_ca: LocalCA, transports: tuple[str, ...]
) -> None:
    https = plain_server.url.replace("http://", "https://", 1)
    with pytest.raises(WrongSchemeError) as caught:
        await TunnelClient.connect(
            https,
            token=plain_server.token,
            ca_file=local_ca.ca_file,
            transports=transports,
            connect_timeout=2,
        )
    assert str(caught.value) == (
        f"The server at 127.0.0.1:{plain_server.port} speaks plain HTTP, so {https} cannot "
        f"reach it: use {plain_server.url}"
    )
    assert caught.value.suggested_url == plain_server.url
    assert caught.value.server_speaks_tls is False


async def test_diagnose_names_the_wrong_scheme(
    tls_server: TlsServerProcess, plain_server: ServerProcess
) -> None:
    with pytest.raises(WrongSchemeError, match=f"speaks HTTPS.*use {tls_server.url}$"):
        await diagnose(tls_server.plain_url)
    https = plain_server.url.replace("http://", "https://", 1)
    with pytest.raises(WrongSchemeError, match=f"speaks plain HTTP.*use {plain_server.url}$"):
        await diagnose(https, connect_timeout=2)


async def test_nothing_listening_is_not_called_a_wrong_scheme(tls_server: TlsServerProcess) -> None:
    # Refused connections keep their own error: the scheme is only named when the
    # same address answers the other one.
    for scheme in ("http", "https"):
        with pytest.raises(OSError) as caught:
            await TunnelClient.connect(f"{scheme}://127.0.0.1:{free_port()}/", connect_timeout=2)
        assert not isinstance(caught.value, WrongSchemeError)
