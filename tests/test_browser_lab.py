"""The real JupyterLab on another origin, through the tunnel, in Chromium; and the
federated extension it runs with, rebuilt from its source and compared with what ships.

JupyterLab (the installed package's own frontend) is served by ``jupyter
http-over-ws lab``'s page server on ``http://localhost:Q`` (origin A); the Jupyter server
with the extension runs on ``http://127.0.0.1:P`` (origin B, another site) and allows
origin A. Every request and socket the page makes to origin B must be the tunnel's: the
network events are recorded and checked.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from support.browser import REPO, jupyter_server
from support.browser import browser as browser
from support.browser import context as context
from support.browser import jp_asyncio_loop as jp_asyncio_loop
from support.browser import jp_server_cleanup as jp_server_cleanup
from support.lab import (
    TUNNEL_PATH,
    CuttableTunnel,
    Lab,
    file_item,
    lab_servers,
    open_lab,
    run_first_cell,
    run_next_cell,
    wait_for,
)
from support.lab_scenarios import (
    interrupt_restart_rename_and_delete,
    rich_output_save_reload_and_a_terminal,
)
from support.ports import free_port

from jupyter_http_over_ws.demo import PageServer
from jupyter_http_over_ws.lab.command import lab_url
from jupyter_http_over_ws.lab.export import export
from jupyter_http_over_ws.lab.frontend import EXTENSION_DIR, LabFrontend

pytestmark = pytest.mark.slow

SCREENSHOT = REPO / "docs" / "users" / "jupyterlab.png"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with lab_servers(tmp_path_factory.mktemp("lab")) as servers:
        yield servers


def test_jupyterlab_runs_a_notebook_cell_through_the_tunnel(
    context: Any, lab: Lab, tmp_path: Path
) -> None:
    page, network = open_lab(context, lab_url(lab.page_origin, lab.server, lab.token))
    # The kernel spec's logo, fetched through the tunnel (a blob: URL), not by URL.
    logo = page.wait_for_selector('.jp-LauncherCard[data-category="Notebook"] img', timeout=90_000)
    assert logo.get_attribute("src").startswith("blob:")
    # The token left the address bar (and this history entry) once it was read.
    assert urlsplit(page.url).fragment == ""
    assert run_first_cell(page, "print(6*7)") == "42"
    # The README's picture: HOWS_UPDATE_SCREENSHOT=1 writes docs/users/jupyterlab.png.
    update = os.environ.get("HOWS_UPDATE_SCREENSHOT") == "1"
    page.screenshot(path=SCREENSHOT if update else tmp_path / "jupyterlab.png")

    assert network.outside_the_tunnel(lab.server) == []
    tunnel = [u for u in network.sockets if urlsplit(u).path == TUNNEL_PATH]
    assert tunnel, network.sockets
    # The kernel's socket and the others are the tunnel's proxied sockets (polling would
    # show no socket at all, only requests under the tunnel's path).
    assert any("/proxied_ws/api/kernels/" in u for u in network.sockets), network.sockets
    # The theme's stylesheet and JupyterLab's bundles came from the page's own origin.
    page_host = urlsplit(lab.page_origin).netloc
    themes = [u for u in network.requests if "/lab/api/themes/" in u]
    assert themes
    assert all(urlsplit(u).netloc == page_host for u in themes), themes
    assert page.query_selector("#hows-lab-problem") is None
    # The notebook is on the server's disk.
    assert list(lab.root.glob("*.ipynb")), list(lab.root.iterdir())


def test_jupyterlab_goes_on_after_the_tunnel_is_cut(context: Any, lab: Lab) -> None:
    tunnel = CuttableTunnel()
    # ?reset: a fresh workspace (an earlier test's notebook is open in the saved one).
    url = lab_url(lab.page_origin, lab.server, lab.token, "/lab?reset")
    page, network = open_lab(context, url, tunnel)
    assert run_first_cell(page, "x = 6*7; print(x)") == "42"
    assert tunnel.cut() >= 1
    # The client reconnects; JupyterLab's kernel socket, closed with the tunnel, reopens
    # through the new one, and the kernel (and its state) is the same.
    assert run_next_cell(page, "print(x + 1)", 2) == "43"
    assert network.outside_the_tunnel(lab.server) == []
    tunnels = [u for u in network.sockets if urlsplit(u).path == TUNNEL_PATH]
    assert len(tunnels) >= 2, network.sockets


def test_a_page_without_a_server_asks_for_one_and_sends_nothing_before(
    context: Any, lab: Lab
) -> None:
    page, network = open_lab(context, f"{lab.page_origin}/lab")
    form = page.wait_for_selector("#hows-lab-login", timeout=60_000)
    assert "Which Jupyter server?" in form.inner_text()
    page_host = urlsplit(lab.page_origin).netloc
    assert [u for u in network.requests if urlsplit(u).netloc != page_host] == []
    assert network.sockets == []
    page.fill('#hows-lab-login input[name="server"]', lab.server)
    page.fill('#hows-lab-login input[name="token"]', lab.token)
    page.click('#hows-lab-login button[type="submit"]')
    # Ready: the launcher, or the notebook an earlier test left open in the workspace.
    page.wait_for_selector(".jp-Launcher, .jp-NotebookPanel", timeout=90_000)
    assert page.query_selector("#hows-lab-login") is None
    assert network.outside_the_tunnel(lab.server) == []
    assert any(urlsplit(u).path == TUNNEL_PATH for u in network.sockets), network.sockets
    # Nothing remembered: a reload asks again.
    assert page.evaluate("sessionStorage.length") == 0
    page.reload()
    page.wait_for_selector("#hows-lab-login", timeout=60_000)


def test_the_login_form_remembers_in_this_tab_only_when_asked(context: Any, lab: Lab) -> None:
    page, network = open_lab(context, f"{lab.page_origin}/lab?reset")
    page.wait_for_selector("#hows-lab-login", timeout=60_000)
    page.fill('#hows-lab-login input[name="server"]', lab.server)
    page.fill('#hows-lab-login input[name="token"]', lab.token)
    page.check('#hows-lab-login input[name="remember"]')
    page.click('#hows-lab-login button[type="submit"]')
    page.wait_for_selector(".jp-Launcher", timeout=90_000)
    assert lab.token not in page.url
    # A reload connects again, with no form.
    page.reload()
    page.wait_for_selector(".jp-Launcher", timeout=90_000)
    assert page.query_selector("#hows-lab-login") is None
    assert network.outside_the_tunnel(lab.server) == []
    # A new tab of the same site shares nothing: it asks. JupyterLab moves it to a
    # workspace of its own (the first tab has the default one) and it stays there.
    # JupyterLab's window resolver gives the other windows 200-500 ms to claim the
    # workspace (a localStorage beacon): the first tab, still starting up after the
    # reload, must have its main thread free to answer (seen missing it in CI).
    page.evaluate("() => new Promise((r) => requestIdleCallback(r, { timeout: 10000 }))")
    other, _ = open_lab(context, f"{lab.page_origin}/lab")
    moved = wait_for(
        lambda: re.search(r"/lab/workspaces/(auto-\w)$", urlsplit(other.url).path), page=other
    )
    other.wait_for_selector("#hows-lab-login", timeout=60_000)
    assert other.evaluate("sessionStorage.length") == 0
    other.wait_for_timeout(3000)  # time for more moves, had the workspace not stuck
    assert urlsplit(other.url).path == moved.group(0)
    assert other.query_selector("#hows-lab-login") is not None


def test_a_second_window_gets_a_workspace_of_its_own_with_its_server_and_file(
    context: Any, lab: Lab
) -> None:
    """The page at ``/lab/tree/<file>``, opened while another window has the default
    workspace: JupyterLab moves it to a new workspace (loading the page again at another
    address); the server, in the fragment, and the file, in the path, go with it."""
    notes = lab.root / "my notes" / "hello world.txt"
    notes.parent.mkdir()
    notes.write_text("written on the server's disk\n")
    first, _ = open_lab(context, lab_url(lab.page_origin, lab.server, lab.token))
    first.wait_for_selector(".jp-Launcher, .jp-NotebookPanel", timeout=90_000)
    second, network = open_lab(
        context,
        lab_url(lab.page_origin, lab.server, lab.token, "/lab/tree/my%20notes/hello%20world.txt"),
    )
    editor = second.wait_for_selector(".jp-FileEditor .cm-content", timeout=90_000)
    wait_for(lambda: "written on the server's disk" in editor.inner_text(), page=second)
    address = urlsplit(second.url)
    assert re.fullmatch(r"/lab/workspaces/auto-\w/tree/my%20notes/hello%20world\.txt", address.path)
    # The token left the address once the window had its workspace, in both windows; and
    # the history: the entry the second window was moved from holds it no more.
    assert address.fragment == ""
    assert urlsplit(first.url).path == "/lab"
    assert urlsplit(first.url).fragment == ""
    history = context.new_cdp_session(second).send("Page.getNavigationHistory")["entries"]
    assert len(history) >= 2, history
    assert [e["url"] for e in history if lab.token in e["url"]] == []
    # The server went with the move by a hand-over the new page took at once.
    assert second.evaluate("sessionStorage.length") == 0
    assert second.query_selector("#hows-lab-login, #hows-lab-problem") is None
    assert network.outside_the_tunnel(lab.server) == []
    assert any(urlsplit(u).path == TUNNEL_PATH for u in network.sockets), network.sockets


def test_a_refused_tunnel_is_shown_and_never_falls_back_to_direct_requests(
    context: Any, lab: Lab
) -> None:
    # A wrong token: the tunnel is refused. JupyterLab would replace a failed settings
    # provider with its default settings (requests straight to the server): ours must
    # not fail, only refuse.
    page, network = open_lab(context, lab_url(lab.page_origin, lab.server, "wrong-token"))
    problem = page.wait_for_selector("#hows-lab-problem", timeout=60_000)
    assert "Cannot reach the Jupyter server" in problem.inner_text()
    page.wait_for_timeout(2000)  # what JupyterLab does next, had it fallen back
    assert network.outside_the_tunnel(lab.server) == []


def _shipped_files(directory: Path) -> dict[str, bytes]:
    """The build's files by name, the entry point's content hash in its name left out."""
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = str(path.relative_to(directory))
        name = re.sub(r"remoteEntry\.[0-9a-f]+\.js$", "remoteEntry.js", relative)
        files[name] = path.read_bytes()
    return files


def _first_difference(name: str, built: bytes, shipped: bytes) -> str:
    """Where ``built`` and ``shipped`` part, with some context (to tell a stale build from
    a build that is not reproducible)."""
    at = next((i for i, (a, b) in enumerate(zip(built, shipped, strict=False)) if a != b), None)
    at = min(len(built), len(shipped)) if at is None else at
    near = slice(max(0, at - 80), at + 80)
    return (
        f"{name} differs at byte {at} (built {len(built)}, shipped {len(shipped)} bytes): "
        f"built {built[near]!r}, shipped {shipped[near]!r}; rebuild (js/lab-extension)"
    )


def test_the_shipped_extension_is_what_its_source_builds(tmp_path: Path) -> None:
    """jupyter_http_over_ws/lab/labextension is js/lab-extension built with its lock file.

    Rebuilt from npm packages (``npm ci``) with JupyterLab's builder, in a copy of the
    source (the build writes to ``../../jupyter_http_over_ws/lab/labextension``). The
    builder numbers one module of the entry point after the build's directory, so there
    (only) digits are compared as digits, not values; every other file byte for byte.
    """
    source = REPO / "js" / "lab-extension"
    work = tmp_path / "js" / "lab-extension"
    work.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(source / name, work / name)
    shutil.copytree(source / "lib", work / "lib")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=work, check=True)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(
        [str(bin_dir / "jupyter-labextension"), "build", "."], cwd=work, env=env, check=True
    )
    built = _shipped_files(tmp_path / "jupyter_http_over_ws" / "lab" / "labextension")
    shipped = _shipped_files(EXTENSION_DIR)
    assert sorted(built) == sorted(shipped), (sorted(built), sorted(shipped))
    for name in built:
        if name == "package.json":
            ours, theirs = json.loads(built[name]), json.loads(shipped[name])
            ours["jupyterlab"]["_build"].pop("load")
            theirs["jupyterlab"]["_build"].pop("load")
            assert ours == theirs
        elif name.endswith("remoteEntry.js"):
            assert re.sub(rb"\d+", b"0", built[name]) == re.sub(rb"\d+", b"0", shipped[name])
        else:
            assert built[name] == shipped[name], _first_difference(name, built[name], shipped[name])


def test_rich_output_a_traceback_save_reload_and_a_terminal(context: Any, lab: Lab) -> None:
    network = rich_output_save_reload_and_a_terminal(context, lab, lab.server)
    assert any("/proxied_ws/terminals/websocket/" in u for u in network.sockets)


def test_a_fragment_naming_another_server_cannot_run_its_code_on_the_page(
    context: Any, lab: Lab, tmp_path: Path
) -> None:
    # Another server that would hand out a "client" (a link someone sent): the page is
    # bound to its own server by its Content-Security-Policy, so the import is refused.
    client = tmp_path / "other" / "http_over_websocket" / "static" / "index.js"
    client.parent.mkdir(parents=True)
    client.write_text("window.otherCodeRan = true; export function connect() {}\n")
    with PageServer(tmp_path / "other") as other:
        other_url = f"http://127.0.0.1:{other.port}/"
        page, network = open_lab(context, lab_url(lab.page_origin, other_url, "t"))
        problem = page.wait_for_selector("#hows-lab-problem", timeout=60_000)
    assert "Cannot reach the Jupyter server" in problem.inner_text()
    assert page.evaluate("window.otherCodeRan") is None
    # The browser refused the import itself: nothing reached the other server.
    asked = {u for u in network.requests if u.startswith(other_url)}
    assert asked == {other_url + "http_over_websocket/static/index.js"}
    assert {network.failures.get(u) for u in asked} == {"csp"}


def test_interrupt_restart_rename_and_delete(context: Any, lab: Lab) -> None:
    interrupt_restart_rename_and_delete(context, lab, lab.server)


def test_the_exported_page_on_a_plain_static_server_runs_a_cell(
    context: Any, tmp_path: Path
) -> None:
    # Any static host: here Python's own file server (no header of ours, no fallback).
    port = free_port()
    origin = f"http://localhost:{port}"
    server_port = free_port()
    server = f"http://127.0.0.1:{server_port}/"
    site = tmp_path / "site"
    export(LabFrontend.find(), site, origin=origin, server_url=server)
    token = secrets.token_hex(16)
    root = tmp_path / "root"
    root.mkdir()
    with (
        PageServer(site, "127.0.0.1", port),
        jupyter_server(
            tmp_path / "jupyter", port=server_port, token=token, root_dir=root, allow_origin=origin
        ),
    ):
        url = lab_url(origin, server, token, "/lab/")
        page, network = open_lab(context, url)
        assert run_first_cell(page, "print(6*7)") == "42"
        # The policy in the page's <meta> binds it to its server: code from elsewhere
        # is refused by the browser.
        elsewhere = f"http://127.0.0.1:{free_port()}/index.js"
        page.evaluate("url => import(url).catch(() => null)", elsewhere)
        assert network.failures.get(elsewhere) == "csp"
    assert network.outside_the_tunnel(server) == []
    assert any(urlsplit(u).path == TUNNEL_PATH for u in network.sockets)
    # Over the network, the page spoke to its static host and, through the tunnel, the server.
    sent = [u for u in network.requests if u.startswith("http") and u != elsewhere]
    hosts = {urlsplit(u).netloc for u in sent}
    assert hosts == {f"localhost:{port}", urlsplit(server).netloc}


def test_what_jupyterlab_loads_by_url_comes_through_the_service_worker(
    context: Any, lab: Lab
) -> None:
    (lab.root / "data.txt").write_text("hello data\n")
    (lab.root / "pic.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="12" height="10"><rect width="12" '
        'height="10"/></svg>'
    )
    url = lab_url(lab.page_origin, lab.server, lab.token)
    page, network = open_lab(context, url.replace("/lab#", "/lab?reset#"))
    served: list[str] = []
    context.on("response", lambda r: served.append(r.url) if r.from_service_worker else None)
    files = f"{lab.page_origin}/hows-files/"

    # A Markdown image of a file: a URL on the page's origin, answered by the worker.
    assert run_first_cell(page, "print(6*7)") == "42"
    page.keyboard.press("Escape")
    page.keyboard.press("m")
    page.keyboard.press("Enter")
    page.keyboard.type("![a picture](pic.svg) and $\\int_0^1 x^2 dx$")
    page.keyboard.press("Shift+Enter")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-RenderedMarkdown img')]"
        ".some(i => i.complete && i.naturalWidth === 12)",
        timeout=60_000,
    )
    # The math beside it: JupyterLab's bundled MathJax, its fonts from the page's origin.
    page.wait_for_selector(".jp-RenderedMarkdown mjx-container", timeout=60_000)
    fonts = [u for u in network.requests if urlsplit(u).path.endswith((".woff", ".woff2"))]
    assert fonts, network.requests
    assert all(u.startswith(lab.page_origin + "/") for u in fonts), fonts
    # An output's image of a file (HTML, as a plotting library may write it), the same way.
    run_next_cell(page, "from IPython.display import HTML; HTML('<img src=pic.svg>')", 2)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-OutputArea-output img')]"
        ".some(i => i.complete && i.naturalWidth === 12)",
        timeout=60_000,
    )
    assert page.evaluate("navigator.serviceWorker.controller !== null")
    assert any(u.startswith(files + "pic.svg") for u in served), served

    # "Download": the file, under its own name.
    file_item(page, "data.txt").click(button="right")
    with page.expect_download() as download:
        page.click('.lm-Menu-item[data-command="filebrowser:download"]')
    assert download.value.suggested_filename == "data.txt"
    assert Path(download.value.path()).read_text() == "hello data\n"

    # "Open in New Browser Tab": a tab on the page's origin, which a reload shows again.
    file_item(page, "data.txt").click(button="right")
    with context.expect_page() as opened:
        page.click('.lm-Menu-item[data-command="filebrowser:open-browser-tab"]')
    tab = opened.value
    tab.wait_for_selector("text=hello data")
    assert tab.url == files + "data.txt"
    tab.reload()
    tab.wait_for_selector("text=hello data")
    assert network.outside_the_tunnel(lab.server) == []
    # Files under the server's root only: a dot segment, even encoded, is refused.
    outside = tab.goto(files + "%2e%2e%2fapi%2fstatus")
    assert outside is not None
    assert outside.status == 400
    assert "Only files under the Jupyter server's root" in tab.content()

    # With no JupyterLab page left open, nothing can reach the server: the worker says so.
    page.close()
    tab.reload()
    tab.wait_for_selector("text=No JupyterLab page of this site is open")


def test_an_installed_extensions_server_part_goes_through_the_tunnel(
    context: Any, tmp_path: Path
) -> None:
    # jupyter-lsp (a server extension JupyterLab needs) with python-lsp-server: once the
    # user turns JupyterLab's language servers on, a notebook opens a socket to
    # lsp/ws/pylsp, and the language server answers through the tunnel.
    with lab_servers(tmp_path) as lab:
        lab.set_user_settings("@jupyterlab/lsp-extension:plugin", {"activate": "on"})
        page, network = open_lab(context, lab_url(lab.page_origin, lab.server, lab.token))
        assert run_first_cell(page, "import os; print(6*7)") == "42"
        pylsp = wait_for(
            lambda: next((u for u in network.sockets if "/lsp/ws/pylsp" in u), None), 90, page
        )
        assert urlsplit(pylsp).path.startswith(TUNNEL_PATH + "/proxied_ws/")
        # The language server's answers (initialize, diagnostics...) came back on it.
        wait_for(lambda: network.frames[pylsp] >= 2, 90, page)
        # The server's root, from its own page config (jupyter-lsp's hook), as JupyterLab
        # directly tells the language server.
        initialize = next(m for m in network.sent[pylsp] if '"method":"initialize"' in m)
        assert f'"rootUri":"{lab.root.as_uri()}' in initialize
        assert network.outside_the_tunnel(lab.server) == []
