"""The JupyterLab installed here, and its page for an origin other than its server's.

JupyterLab's built frontend (``share/jupyter/lab/static``) is a set of static files and
one Jinja template, ``index.html``, which a Jupyter server renders with a *page config*:
where the bundles and federated extensions are, the API paths, which plugins are
disabled. :class:`LabFrontend` renders that same template for a page on another origin:

- the bundles, federated extensions, themes and favicons are on the page's origin (the
  page server serves them from this installation);
- JupyterLab's own server-settings provider is disabled and ours (the federated
  extension in ``labextension/``) provides settings whose ``fetch`` and ``WebSocket`` are
  the tunnel's: the API paths (``settingsUrl``, ``workspacesApiUrl`` ...) are joined to the
  Jupyter server's URL and go through the tunnel;
- the page holds no server address and no token: the extension reads both from the
  page's ``#fragment``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import Version

__all__ = [
    "DISABLED_PLUGINS",
    "EXTENSION_DIR",
    "FILES_URL",
    "MIN_JUPYTERLAB",
    "SERVICE_WORKER",
    "SERVICE_WORKER_URL",
    "LabFrontend",
    "LabNotFoundError",
]

#: Our federated extension, prebuilt (``js/lab-extension``, ``jupyter labextension build``).
EXTENSION_DIR = Path(__file__).resolve().parent / "labextension"
#: The first JupyterLab whose server connection settings a plugin can provide.
MIN_JUPYTERLAB = Version("4.4")
#: Plugins the page turns off: JupyterLab's own settings provider and default drive (ours
#: replace them: the drive's download URLs go through the tunnel), the extension manager
#: (installing into the server from a page elsewhere is not this), and the news
#: announcements (the page's ``news`` is off, as `jupyter lab` can set it).
DISABLED_PLUGINS = (
    "@jupyterlab/services-extension:server-settings",
    "@jupyterlab/services-extension:default-drive",
    "@jupyterlab/extensionmanager-extension:plugin",
    "@jupyterlab/apputils-extension:announcements",
)
#: The paths JupyterLab's own server gives them (jupyterlab_server's defaults): the page
#: server serves the static ones there, the API ones are the Jupyter server's.
APP_URL = "/lab"
THEMES_URL = "/lab/api/themes"
LABEXTENSIONS_URL = "/lab/extensions"
STATIC_URL = "/static/lab"
FAVICONS_URL = "/static/favicons"
#: The page's Service Worker (``serviceworker/hows-sw.js``), at the root of the page's
#: origin so that its scope holds every page there.
SERVICE_WORKER_URL = "/hows-sw.js"
SERVICE_WORKER = Path(__file__).resolve().parent / "serviceworker" / "hows-sw.js"
#: What JupyterLab loads by URL from the server's ``files/``, on the page's origin: the
#: Service Worker answers it through an open page's tunnel.
FILES_URL = "/hows-files"


class LabNotFoundError(RuntimeError):
    """No usable JupyterLab is installed here; the message says what to install."""


@dataclass(frozen=True)
class LabFrontend:
    """An installed JupyterLab's built application, and the extensions installed with it."""

    #: JupyterLab's application directory (``share/jupyter/lab``).
    app_dir: Path
    #: JupyterLab's version.
    version: str
    #: Where federated extensions are installed (``jupyter_path("labextensions")``).
    labextensions_path: tuple[Path, ...]

    @classmethod
    def find(cls) -> LabFrontend:
        """The JupyterLab of this Python environment, or :class:`LabNotFoundError`."""
        try:
            import jupyterlab
            from jupyter_core.paths import jupyter_path
            from jupyterlab.commands import get_app_dir
        except ImportError:
            raise LabNotFoundError(
                f"JupyterLab is not installed here: pip install 'jupyterlab>={MIN_JUPYTERLAB}'"
            ) from None
        version = str(jupyterlab.__version__)
        if Version(version) < MIN_JUPYTERLAB:
            raise LabNotFoundError(
                f"JupyterLab {version} cannot take its server settings from a plugin: "
                f"pip install 'jupyterlab>={MIN_JUPYTERLAB}'"
            )
        app_dir = Path(get_app_dir())
        if not (app_dir / "static" / "index.html").is_file():
            raise LabNotFoundError(f"JupyterLab's built application is not in {app_dir}/static")
        paths = tuple(Path(p) for p in jupyter_path("labextensions"))
        return cls(app_dir=app_dir, version=version, labextensions_path=paths)

    @property
    def static_dir(self) -> Path:
        """JupyterLab's bundles and its page template."""
        return self.app_dir / "static"

    @property
    def themes_dir(self) -> Path:
        """The themes' stylesheets and assets."""
        return self.app_dir / "themes"

    def _installed_page_config(self) -> dict[str, Any]:
        # jupyterlab_server's own reading of the installed federated extensions and of the
        # page_config files (disabled extensions), as `jupyter lab` does it.
        from jupyterlab_server.config import get_page_config

        return get_page_config(
            [str(p) for p in self.labextensions_path], str(self.app_dir / "settings")
        )

    def extension_dirs(self) -> dict[str, Path]:
        """Each federated extension the page loads, by name: ours and the installed ones."""
        from jupyterlab_server.config import get_federated_extensions

        found = get_federated_extensions([str(p) for p in self.labextensions_path])
        dirs = {name: Path(data["ext_path"]) for name, data in found.items()}
        dirs[_our_extension()["name"]] = EXTENSION_DIR
        return dirs

    def asset_dirs(self) -> dict[str, Path]:
        """Every directory the page's files come from, by the URL path it is served under.

        JupyterLab's bundles, the themes, jupyter_server's favicons and each federated
        extension (ours, and the installed ones): the page server serves them there, and
        an export copies them there.
        """
        dirs = {
            STATIC_URL: self.static_dir,
            THEMES_URL: self.themes_dir,
            FAVICONS_URL: _favicons_dir(),
        }
        for name, directory in self.extension_dirs().items():
            dirs[f"{LABEXTENSIONS_URL}/{name}"] = directory
        return dirs

    def asset_files(self) -> dict[str, Path]:
        """The page's single files outside :meth:`asset_dirs`, by their URL path.

        The Service Worker, at the root so that its scope holds every page of the origin.
        """
        return {SERVICE_WORKER_URL: SERVICE_WORKER}

    def page_config(self, origin: str) -> dict[str, Any]:
        """The page config for a page on ``origin`` (``scheme://host:port``)."""
        installed = self._installed_page_config()
        ours = _our_extension()
        extensions = [e for e in installed["federated_extensions"] if e["name"] != ours["name"]]
        build = ours["jupyterlab"]["_build"]
        extensions.append({"name": ours["name"], "entrypoints": None, **build})
        disabled = installed.get("disabledExtensions", [])
        if isinstance(disabled, dict):  # {name: bool} in some jupyterlab_server versions
            disabled = [name for name, off in disabled.items() if off]
        page = f"{origin}/"
        return {
            "appName": "JupyterLab",
            "appNamespace": "lab",
            "appVersion": self.version,
            "appUrl": APP_URL,
            "treeUrl": f"{APP_URL}/tree",
            "workspacesUrl": f"{APP_URL}/workspaces",
            "themesUrl": THEMES_URL,
            "settingsUrl": "/lab/api/settings",
            "translationsApiUrl": "/lab/api/translations",
            "workspacesApiUrl": "/lab/api/workspaces",
            "listingsUrl": "/lab/api/listings",
            "licensesUrl": "/lab/api/licenses",
            "labextensionsUrl": LABEXTENSIONS_URL,
            "fullStaticUrl": f"{origin}{STATIC_URL}",
            "fullLabextensionsUrl": f"{origin}{LABEXTENSIONS_URL}",
            "fullThemesUrl": f"{origin}{THEMES_URL}",
            "federated_extensions": extensions,
            "disabledExtensions": [*DISABLED_PLUGINS, *disabled],
            "mode": "multiple-document",
            "workspace": "default",
            "defaultWorkspace": "default",
            "treePath": "",
            "notebookStartsKernel": True,
            "terminalsAvailable": True,
            "buildAvailable": False,
            "buildCheck": False,
            "quitButton": False,
            "exposeAppInBrowser": False,
            "cacheFiles": False,
            "devMode": False,
            "news": {"disabled": True},
            "baseUrl": page,
            "wsUrl": "",
        }

    def render(self, origin: str) -> str:
        """The page's HTML: JupyterLab's own template with :meth:`page_config`."""
        import jinja2

        template = (self.static_dir / "index.html").read_text(encoding="utf-8")
        environment = jinja2.Environment(autoescape=True)
        return environment.from_string(template).render(
            page_config=self.page_config(origin),
            base_url=f"{origin}/",
            ws_url="",
            custom_css=False,
        )


def _favicons_dir() -> Path:
    import jupyter_server

    return Path(jupyter_server.__file__).resolve().parent / "static" / "favicons"


def _our_extension() -> dict[str, Any]:
    with open(EXTENSION_DIR / "package.json", encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data
