"""The lab page as files, for any static host: ``jupyter http-over-ws lab URL --export``.

What the page server answers, written to a directory laid out as the page's URLs are:

- ``lab/index.html``: the page, rendered for the origin it will be served from, with
  its Content-Security-Policy in a ``<meta>`` tag before its first script (a static host
  may not let you set headers): scripts from that origin, the one Jupyter server and
  the page's inline script only;
- ``404.html``: the same page, which static hosts (GitHub Pages, Netlify, Cloudflare
  Pages...) answer for a path they do not have, so that JupyterLab's own addresses
  (``/lab/tree/...``) load the page on reload;
- ``static/lab/``, ``lab/api/themes/``, ``lab/extensions/<name>/``, ``static/favicons/``:
  JupyterLab's bundles (without its page template), the themes, the federated extensions
  and the favicons, from this installation;
- ``hows-sw.js``: the page's Service Worker (files JupyterLab loads by URL).

No server address beyond the policy's origin and no token is written: the page still
takes both from its ``#fragment``.
"""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from .frontend import STATIC_URL, LabFrontend
from .pageserver import content_security_policy

__all__ = ["ExportError", "export", "page_origin"]


class ExportError(ValueError):
    """The export cannot be written as asked; the message says why."""


def page_origin(origin: str) -> str:
    """``origin`` as ``scheme://host[:port]``, or :class:`ExportError`."""
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ExportError(f"the page's origin must be http(s)://host[:port], not {origin!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ExportError(
            f"the page must be at the root of its origin ({parts.scheme}://{parts.netloc}), "
            f"not under {parts.path!r}: JupyterLab's files are served from /static/lab and /lab"
        )
    return f"{parts.scheme}://{parts.netloc}"


def with_policy(page: str, policy: str) -> str:
    """``page`` with ``policy`` as a ``<meta>`` tag before its first script.

    A policy in a ``<meta>`` tag governs what comes after it.
    """
    meta = f'<meta http-equiv="Content-Security-Policy" content="{html.escape(policy)}">'
    found = re.search(r"<script[\s>]", page, re.IGNORECASE)
    if found is None:
        raise ExportError("JupyterLab's page template has no <script>")
    return page[: found.start()] + meta + page[found.start() :]


def _leaving_out(file: Path) -> Callable[[str, list[str]], list[str]]:
    """A ``copytree`` ``ignore`` that leaves out ``file`` alone."""

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [name for name in names if Path(folder, name) == file]

    return ignore


def export(frontend: LabFrontend, directory: Path, *, origin: str, server_url: str) -> Path:
    """Write the page for ``origin`` and the Jupyter server at ``server_url`` to ``directory``.

    ``directory`` must not exist or be empty (nothing is overwritten). Returns the page.
    """
    origin = page_origin(origin)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ExportError(f"{directory} exists and is not an empty directory")
    page = frontend.render(origin)
    page = with_policy(page, content_security_policy(page, server_url))
    template = frontend.static_dir / "index.html"
    for prefix, source in frontend.asset_dirs().items():
        target = directory.joinpath(*prefix.strip("/").split("/"))
        # JupyterLab's page template is a Jinja file, not a page anyone should load.
        ignore = _leaving_out(template) if prefix == STATIC_URL else None
        shutil.copytree(source, target, ignore=ignore, dirs_exist_ok=True)
    for path, source in frontend.asset_files().items():
        shutil.copyfile(source, directory.joinpath(*path.strip("/").split("/")))
    index = directory / "lab" / "index.html"
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(page, encoding="utf-8")
    (directory / "404.html").write_text(page, encoding="utf-8")
    return index
