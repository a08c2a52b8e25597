"""Whether a Jupyter server suits the lab page, checked by ``jupyter http-over-ws lab``.

:func:`check` runs, in order, until one finds a problem:

- :func:`check_server`: the tunnel's own check (``diagnose``) from the page's origin:
  the extension is there and the page's origin is allowed;
- :func:`check_lab_version`: the server's JupyterLab (read from its own page) has the
  page's minor version (:func:`version_skew`).

Each returns what to tell the user, or None.
"""

from __future__ import annotations

import asyncio
import json
import re

from packaging.version import InvalidVersion, Version

__all__ = ["check", "check_lab_version", "check_server", "version_skew"]


def check(server_url: str, origin: str, token: str, page_version: str) -> str | None:
    """The first problem of the server at ``server_url`` for the page, or None.

    The page is JupyterLab ``page_version`` on ``origin``, with ``token``.
    """

    async def both() -> str | None:
        problem = await check_server(server_url, origin)
        return problem or await check_lab_version(server_url, token, page_version)

    return asyncio.run(both())


async def check_server(server_url: str, origin: str) -> str | None:
    """Why the page will not reach ``server_url`` through the tunnel, or None."""
    from tornado.httpclient import HTTPClientError

    from ..client import diagnose

    try:
        await diagnose(server_url, origin=origin, connect_timeout=10)
    except HTTPClientError as e:
        if e.code == 403:
            return (
                f"The server refuses this page's origin: start it with "
                f"--ServerApp.allow_origin='{origin}'."
            )
        if e.code == 404:
            return (
                "The server does not have jupyter-http-over-ws: pip install "
                "jupyter-http-over-ws there, and check `jupyter server extension list`."
            )
        return f"The server answered the check with HTTP {e.code}."
    except OSError as e:
        return f"Cannot reach {server_url}: {e}"
    return None


def version_skew(page_version: str, server_version: str) -> str | None:
    """Why a page of JupyterLab ``page_version`` may misbehave on that server, or None.

    The page's plugins come from this machine, their settings schemas and translations
    from the server's JupyterLab: the same minor version on both sides keeps them in step.
    """
    try:
        page, server = Version(page_version), Version(server_version)
    except InvalidVersion:
        return None
    if page.release[:2] == server.release[:2]:
        return None
    return (
        f"The server's JupyterLab is {server_version}, this page's is {page_version}: "
        "settings schemas and translations come from the server, so some settings may "
        f"fail to load. Use the same minor version on both sides (pip install "
        f"'jupyterlab=={page.major}.{page.minor}.*' on the server, or "
        f"'jupyterlab=={server.major}.{server.minor}.*' here)."
    )


def _config_version(page: str) -> str | None:
    """``appVersion`` from a JupyterLab page's config, or None."""
    found = re.search(
        r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S
    )
    if found is None:
        return None
    try:
        version = json.loads(found.group(1)).get("appVersion")
    except ValueError:
        return None
    return version if isinstance(version, str) else None


async def check_lab_version(server_url: str, token: str, page_version: str) -> str | None:
    """:func:`version_skew` of the server's JupyterLab (its page's config) and this page's."""
    from tornado.httpclient import AsyncHTTPClient, HTTPClientError

    headers = {"Authorization": f"token {token}"} if token else {}

    try:
        response = await AsyncHTTPClient().fetch(
            server_url + "lab", headers=headers, follow_redirects=False, request_timeout=10
        )
    except (HTTPClientError, OSError):
        # A login page (no token, a wrong one), no JupyterLab page, or no answer: the
        # tunnel's check says what matters of these.
        return None
    server_version = _config_version(bytes(response.body).decode("utf-8", "replace"))
    return version_skew(page_version, server_version) if server_version else None
