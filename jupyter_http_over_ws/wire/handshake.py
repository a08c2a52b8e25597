"""What is decided when a tunnel socket opens: versions, credentials, diagnosis.

Pure functions, like :mod:`.protocol`: no Tornado, asyncio or jupyter_server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from packaging.version import InvalidVersion, Version

# The credential arguments and their removal live with the path rules (protocol), which
# apply them to tunnelled paths too; they are part of this module's interface as well.
from .protocol import AUTH_URL_ARG, CREDENTIAL_ARGUMENTS, dumps, without_credentials

__all__ = [
    "AUTH_URL_ARG",
    "CREDENTIAL_ARGUMENTS",
    "Diagnosis",
    "auth_url_token",
    "check_min_version",
    "encode_diagnosis",
    "is_outdated",
    "truncate_close_reason",
    "without_credentials",
]


@dataclass(frozen=True)
class Diagnosis:
    """The answer of the ``diagnose`` endpoint."""

    message_id: str
    extension_version: str
    has_authentication_cookie: bool
    is_outdated_extension: bool


def check_min_version(min_version: str | None, current: str) -> str | None:
    """Return the close reason for a ``min_version`` the server cannot meet, else ``None``.

    The reasons are the original's texts, which frontends show to users.
    """
    if min_version is None:
        return None
    try:
        wanted = Version(min_version)
    except InvalidVersion:
        return truncate_close_reason(f'Invalid "min_version" provided: {min_version}')
    if wanted > Version(current):
        return truncate_close_reason(
            f"Requested version ({min_version}) > Current version ({current}). "
            "Please upgrade this package."
        )
    return None


def is_outdated(min_version: str | None, current: str) -> bool:
    """Whether the client asked for a newer version than ``current`` (for ``diagnose``)."""
    if not min_version:
        return False
    try:
        return Version(min_version) > Version(current)
    except InvalidVersion:
        return False


def truncate_close_reason(reason: str) -> str:
    """Cut ``reason`` to the 123 bytes of UTF-8 a WebSocket close frame can carry."""
    encoded = reason.encode("utf-8")
    if len(encoded) <= 123:
        return reason
    return encoded[:120].decode("utf-8", errors="ignore") + "..."


def auth_url_token(auth_url: str, base_url: str) -> str | None:
    """Read the ``token`` query argument of a ``jupyter_http_over_ws_auth_url``.

    The URL must be an ``http(s)`` URL whose path lies under ``base_url``: the
    credentials it carries are for this server. Its host is deliberately not
    compared with the server's, so that SSH and LAN port forwarding (where the
    browser's host differs from the server's) keep working; the URL is never
    fetched. Raises :class:`ValueError` for a URL that does not point at this server.
    """
    parts = urlsplit(auth_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("the auth URL must be an http(s) URL of this server")
    path = parts.path or "/"
    prefix = base_url if base_url.endswith("/") else base_url + "/"
    if not (path + "/").startswith(prefix) and not path.startswith(prefix):
        raise ValueError("the auth URL's path is outside this server's base_url")
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if name == "token":
            return value
    return None


# ----------------------------------------------------------------------- diagnose


def encode_diagnosis(diagnosis: Diagnosis) -> bytes:
    """Build the ``diagnose`` endpoint's answer frame."""
    frame: dict[str, Any] = {
        "message_id": diagnosis.message_id,
        "extension_version": diagnosis.extension_version,
        "has_authentication_cookie": diagnosis.has_authentication_cookie,
        "is_outdated_extension": diagnosis.is_outdated_extension,
    }
    return dumps(frame)
