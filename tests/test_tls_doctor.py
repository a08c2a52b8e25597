"""``jupyter http-over-ws doctor`` against a real Jupyter server over TLS, and a plain one.

Each certificate problem a user meets is produced for real and the finding names it
with the fix: a CA the machine does not know (the fix: ``--ca-file``, the client's
``ca_file=``, ``SSL_CERT_FILE``), a CA bundle that did not sign the certificate, a
name the certificate does not list, ``http://`` to the TLS port and ``https://`` to a
plain one. Given the CA (``--ca-file`` or ``SSL_CERT_FILE``), every check passes,
the kernel's included.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.server_process import ServerProcess
from support.tls import LocalCA, TlsServerProcess
from support.tls import local_ca as local_ca
from support.tls import tls_server as tls_server
from support.tls import wrong_name_server as wrong_name_server

from jupyter_http_over_ws import cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real Jupyter server with the extension, plain HTTP."""
    server = ServerProcess(tmp_path_factory.mktemp("plain-server"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    """``jupyter http-over-ws doctor ARGS --json``: its exit status and report."""
    status = cli.main(["doctor", *args, "--json"])
    return status, json.loads(capsys.readouterr().out)


def only_finding(report: dict) -> dict:
    (finding,) = report["findings"]
    assert finding["check"] == "reachable"
    assert finding["status"] == "problem"
    return finding


def test_everything_works_with_the_ca_file(capsys, tls_server: TlsServerProcess) -> None:
    status, report = doctor(
        capsys,
        tls_server.url,
        "--token",
        tls_server.token,
        "--ca-file",
        str(tls_server.ca.ca_file),
    )
    assert status == 0, report
    checks = {f["check"] for f in report["findings"] if f["status"] == "ok"}
    assert {"reachable", "extension", "credentials", "request", "polling", "kernel"} <= checks


def test_everything_works_with_ssl_cert_file(tls_server: TlsServerProcess) -> None:
    # As a user runs it: the installed script, the CA through OpenSSL's SSL_CERT_FILE.
    script = shutil.which("jupyter-http-over-ws", path=str(Path(sys.executable).parent))
    assert script is not None
    env = dict(os.environ, SSL_CERT_FILE=str(tls_server.ca.ca_file))
    result = subprocess.run(
        [script, "doctor", tls_server.url, "--token", tls_server.token, "--no-kernel"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("Everything works.")


def test_unknown_ca(capsys, tls_server: TlsServerProcess) -> None:
    status, report = doctor(capsys, tls_server.url, "--token", tls_server.token)
    assert status == 1
    finding = only_finding(report)
    assert finding["message"] == (
        "The server's TLS certificate is not trusted (self-signed certificate in certificate "
        "chain): no CA this machine trusts signed it."
    )
    assert "`--ca-file ca.pem` here, `ca_file=` in the Python client" in finding["fix"]
    assert "SSL_CERT_FILE=ca.pem" in finding["fix"]


def test_ca_file_of_another_ca(capsys, tls_server: TlsServerProcess, tmp_path) -> None:
    other = LocalCA(tmp_path / "other")
    status, report = doctor(capsys, tls_server.url, "--ca-file", str(other.ca_file))
    assert status == 1
    finding = only_finding(report)
    assert "no CA this machine trusts signed it" in finding["message"]
    assert finding["fix"].startswith(f"the CAs in --ca-file {other.ca_file} did not sign it")


def test_wrong_host_name(capsys, wrong_name_server: TlsServerProcess) -> None:
    server = wrong_name_server
    status, report = doctor(capsys, server.url, "--ca-file", str(server.ca.ca_file))
    assert status == 1
    finding = only_finding(report)
    assert finding["message"] == (
        "The server's TLS certificate is not valid for the name '127.0.0.1' (IP address "
        "mismatch, certificate is not valid for '127.0.0.1'.)."
    )
    assert finding["fix"].startswith("use a URL with a name the certificate lists")
    assert "give the server a certificate for 127.0.0.1" in finding["fix"]


def test_plain_http_to_the_tls_port(capsys, tls_server: TlsServerProcess) -> None:
    netloc = f"127.0.0.1:{tls_server.port}"
    status, report = doctor(capsys, tls_server.plain_url, "--timeout", "10")
    assert status == 1
    finding = only_finding(report)
    assert finding["message"] == (
        f"The server at {netloc} speaks HTTPS, so {tls_server.plain_url} cannot reach it."
    )
    assert finding["fix"] == f"use {tls_server.url} (and wss:// in the page)"


def test_https_to_a_plain_port(capsys, plain_server: ServerProcess) -> None:
    https = plain_server.url.replace("http://", "https://", 1)
    status, report = doctor(capsys, https, "--timeout", "2")
    assert status == 1
    finding = only_finding(report)
    assert finding["message"] == (
        f"The server at 127.0.0.1:{plain_server.port} speaks plain HTTP, so {https} cannot "
        "reach it."
    )
    assert finding["fix"] == f"use {plain_server.url} (and ws:// in the page)"


def test_diagnose_command_with_and_without_the_ca(capsys, tls_server: TlsServerProcess) -> None:
    assert cli.main(["diagnose", tls_server.url, "--ca-file", str(tls_server.ca.ca_file)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["is_outdated_extension"] is False
    assert cli.main(["diagnose", tls_server.url]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"Cannot reach {tls_server.url}: the TLS certificate of ")
    assert "self-signed certificate in certificate chain" in error
