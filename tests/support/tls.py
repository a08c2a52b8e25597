"""A local certificate authority, server certificates it signs, and a Jupyter server over TLS.

:class:`LocalCA` makes a CA (a self-signed certificate that may sign others) and
server certificates for the names a test asks (``localhost`` and ``127.0.0.1`` by
default) with the ``cryptography`` package, written as PEM files the way an operator
has them (``ca.pem``, ``server.pem``, ``server.key``). :class:`TlsServerProcess` is
:class:`~support.server_process.ServerProcess` started with ``ServerApp.certfile`` and
``ServerApp.keyfile``: a real ``python -m jupyter_server`` with the extension that
speaks only HTTPS. :func:`spki_hash` is what Chromium's
``--ignore-certificate-errors-spki-list`` takes to trust exactly one key.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from support.server_process import ServerProcess

#: Server config (Python, run inside the server) for ``private_entrance=False``: the
#: platform answer a system without Unix sockets gives, so relays dial the server's own
#: public TLS socket (``wss://``, upstream.py); a spy that still dials prints each URL.
WITHOUT_PRIVATE_ENTRANCE = """
import sys
from jupyter_http_over_ws import upstream as _upstream
from jupyter_http_over_ws.entrance import PrivateEntrance as _PrivateEntrance

_PrivateEntrance.available = staticmethod(lambda: False)
_dial = _upstream.connect_upstream

async def _spy(url, *args, **kwargs):
    print("relay dials " + url.split("?")[0], file=sys.stderr, flush=True)
    return await _dial(url, *args, **kwargs)

_upstream.connect_upstream = _spy
"""

#: The names the default server certificate is valid for.
LOOPBACK_NAMES = ("localhost", "127.0.0.1")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _alt_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(
        now + datetime.timedelta(days=2)
    )


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def spki_hash(certificate: x509.Certificate) -> str:
    """Base64 of the SHA-256 of the certificate's SubjectPublicKeyInfo (Chromium's pin form)."""
    der = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


@dataclass(frozen=True)
class ServerCertificate:
    """A server certificate and its key, as files (``certfile`` holds the chain, CA last)."""

    certfile: Path
    keyfile: Path
    names: tuple[str, ...]


class LocalCA:
    """A test certificate authority in ``directory``: ``ca.pem`` is what clients trust."""

    def __init__(self, directory: Path, common_name: str = "jupyter-http-over-ws test CA") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
        )
        self.certificate = _validity(builder).sign(self.key, hashes.SHA256())
        #: The CA bundle a client is given (``ca_file=``, ``--ca-file``, ``SSL_CERT_FILE``).
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    @property
    def spki_hash(self) -> str:
        """The CA key's pin for Chromium's ``--ignore-certificate-errors-spki-list``."""
        return spki_hash(self.certificate)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA only, with host names checked."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def issue(
        self, names: tuple[str, ...] = LOOPBACK_NAMES, stem: str = "server"
    ) -> ServerCertificate:
        """A server certificate for ``names`` (host names or IP addresses), signed by this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.SubjectAlternativeName([_alt_name(n) for n in names]), critical=False
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        certificate = _validity(builder).sign(self.key, hashes.SHA256())
        certfile = self.directory / f"{stem}.pem"
        keyfile = self.directory / f"{stem}.key"
        # The full chain, as operators install it (nginx's fullchain.pem): the server
        # presents the CA's certificate too, which is what a pinned CA key is looked for in.
        certfile.write_bytes(
            certificate.public_bytes(serialization.Encoding.PEM)
            + self.certificate.public_bytes(serialization.Encoding.PEM)
        )
        _write_key(key, keyfile)
        return ServerCertificate(certfile, keyfile, names)


class TlsServerProcess(ServerProcess):
    """:class:`ServerProcess` serving HTTPS only, with ``certificate``; clients trust ``ca``.

    ``host`` is the name its :attr:`url` uses (``127.0.0.1`` unless told): a name the
    certificate does not list makes a wrong-name server. ``server_app`` adds
    ``ServerApp`` settings (``allow_origin``...); ``options`` are the extension's.
    """

    def __init__(
        self,
        work: Path,
        ca: LocalCA,
        certificate: ServerCertificate,
        *,
        host: str = "127.0.0.1",
        server_app: dict[str, Any] | None = None,
        private_entrance: bool = True,
        options: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        # ServerProcess writes config/jupyter_server_config.json; the TLS settings go in
        # a second config directory on JUPYTER_CONFIG_PATH, which jupyter_server reads too.
        tls_config = work / "tls-config"
        tls_config.mkdir(parents=True, exist_ok=True)
        tls = {
            "ServerApp": {
                "certfile": str(certificate.certfile),
                "keyfile": str(certificate.keyfile),
                **(server_app or {}),
            }
        }
        (tls_config / "jupyter_server_config.json").write_text(json.dumps(tls))
        if not private_entrance:
            (tls_config / "jupyter_server_config.py").write_text(WITHOUT_PRIVATE_ENTRANCE)
        super().__init__(work, options, {"JUPYTER_CONFIG_PATH": str(tls_config), **(env or {})})
        self.ca = ca
        self.certificate = certificate
        self.host = host

    @property
    def url(self) -> str:
        """The server's ``https://`` URL (``base_url`` is ``/``)."""
        return f"https://{self.host}:{self.port}/"

    @property
    def plain_url(self) -> str:
        """The same address with ``http://``: what a user who forgot TLS types."""
        return f"http://{self.host}:{self.port}/"

    def _ready(self) -> bool:
        request = urllib.request.Request(
            f"https://127.0.0.1:{self.port}/api/status",
            headers={"Authorization": f"token {self.token}"},
        )
        context = ssl.create_default_context(cafile=str(self.ca.ca_file))
        context.check_hostname = False  # readiness only: the name is the tests' business
        try:
            with urllib.request.urlopen(request, timeout=2, context=context) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False


# ------------------------------------------------------------------------------ fixtures
# A test module re-exports these (``from support.tls import tls_server as tls_server``)
# so that pytest finds them there; they are per module.


@pytest.fixture(scope="module")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    """A fresh test CA for the module."""
    return LocalCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def tls_server(
    local_ca: LocalCA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsServerProcess]:
    """A real Jupyter server with the extension over HTTPS, its certificate from ``local_ca``."""
    server = TlsServerProcess(tmp_path_factory.mktemp("tls-server"), local_ca, local_ca.issue())
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def wrong_name_server(
    local_ca: LocalCA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsServerProcess]:
    """The same, with a certificate for ``jupyter.test`` only, reached as 127.0.0.1."""
    certificate = local_ca.issue(("jupyter.test",), stem="jupyter-test")
    server = TlsServerProcess(tmp_path_factory.mktemp("wrong-name"), local_ca, certificate)
    server.start()
    try:
        yield server
    finally:
        server.kill()
