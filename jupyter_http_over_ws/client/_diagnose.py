"""Reading the ``diagnose`` endpoint."""

from __future__ import annotations

import os
from collections.abc import Mapping
from ssl import SSLContext

from ..wire.handshake import Diagnosis
from ..wire.names import DIAGNOSE_PATH
from ..wire.protocol import decode_json
from ._connect import Endpoint, client_ssl_context
from ._tls_errors import wrong_scheme_error


async def diagnose(
    url: str,
    *,
    origin: str | None = None,
    min_version: str | None = None,
    cookies: Mapping[str, str] | None = None,
    message: str = "diagnose",
    connect_timeout: float = 20.0,
    ssl: SSLContext | None = None,
    ca_file: str | os.PathLike[str] | None = None,
) -> Diagnosis:
    """Ask the server at ``url`` (including its ``base_url``) what it knows of this client.

    Needs no credentials. Raises ``tornado.httpclient.HTTPClientError`` (403) when the
    server refuses ``origin``, and ``OSError`` when it cannot be reached
    (:class:`WrongSchemeError` when the server speaks the other scheme). ``ssl`` and
    ``ca_file`` say which certificates to trust, as for ``TunnelClient.connect``.
    """
    endpoint = Endpoint(
        url,
        cookies=cookies or {},
        origin=origin,
        connect_timeout=connect_timeout,
        ssl_context=client_ssl_context(ssl, ca_file),
    )
    query = {"min_version": min_version} if min_version else None
    try:
        connection = await endpoint.open(DIAGNOSE_PATH, query)
    except Exception as error:
        mismatch = await wrong_scheme_error(url, error, connect_timeout, endpoint.ssl_context)
        if mismatch is not None:
            raise mismatch from error
        raise
    try:
        await connection.write_message(message)
        answer = await connection.read_message()
    finally:
        connection.close()
    if answer is None:
        raise ConnectionError("the diagnose socket closed without answering")
    obj = decode_json(answer)
    return Diagnosis(
        message_id=obj["message_id"],
        extension_version=obj["extension_version"],
        has_authentication_cookie=obj["has_authentication_cookie"],
        is_outdated_extension=obj["is_outdated_extension"],
    )
