"""The wrong scheme for a server: ``http://`` to a TLS port, ``https://`` to a plain one.

Neither failure says what it is. A TLS server resets a plain-HTTP connection at once
(``ConnectionResetError``, or Tornado's "Stream closed"); a plain-HTTP server waits for
the end of a request that a TLS handshake never sends, so the client times out. When a
failure looks like one of these, :func:`other_scheme` asks the same address with the
other scheme, and only when the server answers there is the scheme named as the cause.
:func:`wrong_scheme_words` says it, in the words the doctor uses; the client raises
:class:`WrongSchemeError` with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "WrongSchemeError",
    "looks_like_wrong_scheme",
    "other_scheme",
    "wrong_scheme_error",
    "wrong_scheme_words",
]

#: The longest a check of the other scheme waits for an answer, in seconds.
PROBE_TIMEOUT = 5.0


def _causes(error: BaseException) -> list[BaseException]:
    """``error`` and what it was raised from or during (the polling client wraps errors)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def looks_like_wrong_scheme(url: str, error: BaseException) -> bool:
    """Whether ``error`` from ``url`` is what the wrong scheme gives (not a proof of it).

    ``http``/``ws``: the connection was reset or closed without an answer (a TLS
    server's reply to plain HTTP). ``https``/``wss``: the TLS handshake timed out, or
    failed other than on the certificate (a plain server's reply to a handshake).
    """
    from tornado.simple_httpclient import HTTPStreamClosedError, HTTPTimeoutError

    scheme = urlsplit(url).scheme.lower()
    for cause in _causes(error):
        if scheme in ("http", "ws") and isinstance(
            cause, HTTPStreamClosedError | ConnectionResetError | asyncio.IncompleteReadError
        ):
            return True
        if scheme in ("https", "wss") and (
            isinstance(cause, HTTPTimeoutError | asyncio.TimeoutError | TimeoutError)
            or (isinstance(cause, ssl.SSLError) and not isinstance(cause, ssl.CertificateError))
        ):
            return True
    return False


def _switched(url: str) -> str:
    parts = urlsplit(url)
    scheme = {"http": "https", "https": "http", "ws": "wss", "wss": "ws"}[parts.scheme.lower()]
    return urlunsplit((scheme, *parts[1:]))


async def _speaks_tls(url: str, timeout: float, ssl_context: ssl.SSLContext | None) -> bool:
    """Whether ``url``'s host and port complete a TLS handshake (an untrusted certificate counts).

    Only the handshake: nothing is sent over it.
    """
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    context = ssl_context or ssl.create_default_context()
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, parts.port or 443, ssl=context, server_hostname=host),
            timeout,
        )
    except ssl.SSLCertVerificationError:
        return True  # it speaks TLS, with a certificate this client does not accept
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _speaks_http(url: str, timeout: float) -> bool:
    """Whether a plain-HTTP server answers ``GET {url}api`` (any status)."""
    from tornado import httpclient

    parts = urlsplit(url)
    base = parts.path if parts.path.endswith("/") else parts.path + "/"
    request = httpclient.HTTPRequest(
        urlunsplit(("http", parts.netloc, base + "api", "", "")),
        connect_timeout=timeout,
        request_timeout=timeout,
        follow_redirects=False,
    )
    client = httpclient.AsyncHTTPClient(force_instance=True)
    try:
        await client.fetch(request, raise_error=False)
    except Exception:
        return False
    finally:
        client.close()
    return True


async def other_scheme(
    url: str,
    error: BaseException,
    timeout: float = PROBE_TIMEOUT,
    ssl_context: ssl.SSLContext | None = None,
) -> str | None:
    """``url`` with the other scheme, if ``error`` came from using the wrong one.

    ``url`` is a server's URL with its ``base_url`` (``http(s)://`` or ``ws(s)://``);
    the check makes a TLS handshake (nothing is sent over it), or asks
    ``{base_url}api`` over plain HTTP, waiting at most
    ``timeout`` seconds (capped at :data:`PROBE_TIMEOUT`). ``None``: the error has
    another cause, or the server does not answer the other scheme either.
    """
    if not looks_like_wrong_scheme(url, error):
        return None
    other = _switched(url)
    timeout = min(timeout, PROBE_TIMEOUT)
    if urlsplit(other).scheme in ("https", "wss"):
        answers = await _speaks_tls(other, timeout, ssl_context)
    else:
        answers = await _speaks_http(other, timeout)
    return other if answers else None


def wrong_scheme_words(url: str, other: str) -> tuple[str, str]:
    """What is wrong with ``url`` whose server speaks ``other``'s scheme, and the fix.

    ``("The server at HOST:PORT speaks HTTPS, so http://HOST:PORT/ cannot reach it.",
    "use https://HOST:PORT/")``, and "plain HTTP" the other way round.
    """
    speaks = "HTTPS" if urlsplit(other).scheme.lower() in ("https", "wss") else "plain HTTP"
    return (
        f"The server at {urlsplit(url).netloc} speaks {speaks}, so {url} cannot reach it.",
        f"use {other}",
    )


class WrongSchemeError(ConnectionError):
    """The server speaks TLS and the URL said ``http://``, or the other way round.

    ``url`` is the URL given, ``suggested_url`` the same with the scheme the server
    speaks, ``server_speaks_tls`` which of the two it is.
    """

    def __init__(self, url: str, suggested_url: str) -> None:
        message, fix = wrong_scheme_words(url, suggested_url)
        super().__init__(f"{message[:-1]}: {fix}")
        self.url = url
        self.suggested_url = suggested_url
        self.server_speaks_tls = urlsplit(suggested_url).scheme.lower() in ("https", "wss")


async def wrong_scheme_error(
    url: str, error: BaseException, timeout: float, ssl_context: ssl.SSLContext | None
) -> WrongSchemeError | None:
    """A :class:`WrongSchemeError` for ``error`` from ``url``, if that is its cause."""
    other = await other_scheme(url, error, timeout, ssl_context)
    return WrongSchemeError(url, other) if other is not None else None
