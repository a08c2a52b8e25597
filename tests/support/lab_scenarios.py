"""Sessions of work in JupyterLab through the tunnel, run by more than one test module.

Each takes the page's :class:`~support.lab.Lab` and the server's URL as the page knows
it (the server's own, or a proxy's in front of it), checks what it did on the server's
disk and that nothing reached the server outside the tunnel, and returns the page's
:class:`~support.lab.Network` for the caller's own checks.
"""

from __future__ import annotations

import re
from typing import Any

from jupyter_http_over_ws.lab.command import lab_url
from support.lab import Lab, Network, file_item, open_lab, run_first_cell, run_next_cell, wait_for


def rich_output_save_reload_and_a_terminal(context: Any, lab: Lab, server: str) -> Network:
    """A rich output and a traceback, a save, a reload at the notebook's URL, a terminal."""
    # The terminal's screen reader mode puts its text in the page (a user setting): the
    # test sees the shell's prompt, whichever renderer draws the screen.
    lab.set_user_settings("@jupyterlab/terminal-extension:plugin", {"screenReaderMode": True})
    url = lab_url(lab.page_origin, server, lab.token)
    page, network = open_lab(context, url.replace("/lab#", "/lab?reset#"))
    html = "from IPython.display import HTML; HTML('<b>rich ' + str(6*7) + '</b>')"
    assert run_first_cell(page, html) == "rich 42"
    assert page.query_selector(".jp-OutputArea-output b") is not None  # rendered, not text
    assert "ZeroDivisionError" in run_next_cell(page, "1/0", 2)
    page.click('.jp-NotebookPanel-toolbar [data-command="docmanager:save"]')
    # JupyterLab asks for a name on an untitled notebook's first save.
    page.fill(".jp-Dialog input", "through-the-tunnel.ipynb")
    page.click(".jp-Dialog .jp-mod-accept")
    # Saved through the tunnel: the file on the server's disk holds both outputs.
    saved = lab.root / "through-the-tunnel.ipynb"
    wait_for(lambda: saved.is_file() and "ZeroDivisionError" in saved.read_text())
    assert "rich 42" in saved.read_text()

    # A new page (the fragment names the server again) at the notebook's tree URL: it
    # comes back with its outputs, read through the tunnel.
    page.goto(url.replace("/lab#", "/lab/tree/through-the-tunnel.ipynb#"))
    page.wait_for_selector(".jp-OutputArea-output b:has-text('rich 42')", timeout=90_000)

    # A terminal, through the tunnel's proxied socket.
    page.keyboard.press("Control+Shift+L")
    page.click('.jp-LauncherCard[title="Start a new terminal session"]')
    terminal = page.wait_for_selector(".jp-Terminal", timeout=60_000)
    # Type once the shell's first output (its prompt) is on the screen: its socket is
    # open, over either transport.
    page.wait_for_function(
        "() => (document.querySelector('.jp-Terminal .xterm-accessibility-tree')"
        "?.textContent || '').trim()",
        timeout=60_000,
    )
    terminal.click()
    # (The shell starts where the server was started, not in its root_dir: a full path.)
    echoed = lab.root / "echoed.txt"
    page.keyboard.type(f"echo $((6*7)) > {echoed}\n")
    assert wait_for(lambda: echoed.is_file() and echoed.read_text() == "42\n")
    assert network.outside_the_tunnel(server) == []
    return network


def interrupt_restart_rename_and_delete(context: Any, lab: Lab, server: str) -> Network:
    """Interrupt and restart the kernel; save, rename and delete in the file browser."""
    url = lab_url(lab.page_origin, server, lab.token)
    page, network = open_lab(context, url.replace("/lab#", "/lab?reset#"))
    first_pid = run_first_cell(page, "import os; print(os.getpid())")

    # Interrupt: a cell that would sleep for ten minutes ends in KeyboardInterrupt.
    page.keyboard.type("import time; time.sleep(600)")
    page.keyboard.press("Shift+Enter")
    page.get_by_text(re.compile(r"\| Busy$")).wait_for(timeout=60_000)
    page.click('.jp-NotebookPanel-toolbar [data-command="notebook:interrupt-kernel"]')
    page.wait_for_selector(".jp-OutputArea-output:has-text('KeyboardInterrupt')", timeout=60_000)

    # Restart: the same cell afterwards runs in a new kernel process.
    page.click('.jp-NotebookPanel-toolbar [data-command="notebook:restart-kernel"]')
    page.click(".jp-Dialog .jp-mod-accept")
    page.wait_for_selector(".jp-Dialog", state="detached")
    page.get_by_text(re.compile(r"\| Idle$")).wait_for(timeout=60_000)
    page.click(".jp-NotebookPanel .jp-Cell:last-child .cm-content")
    second_pid = run_next_cell(page, "import os; print(os.getpid())", 3)
    assert second_pid.isdigit()
    assert first_pid.isdigit()
    assert second_pid != first_pid

    page.click('.jp-NotebookPanel-toolbar [data-command="docmanager:save"]')
    page.fill(".jp-Dialog input", "to-rename.ipynb")
    page.click(".jp-Dialog .jp-mod-accept")
    saved = lab.root / "to-rename.ipynb"
    wait_for(lambda: saved.is_file() and "KeyboardInterrupt" in saved.read_text())
    page.click(".lm-DockPanel-tabBar .lm-mod-current .lm-TabBar-tabCloseIcon")
    page.wait_for_selector(".jp-NotebookPanel", state="detached")

    # Rename, then delete, in the file browser: both reach the server's disk.
    file_item(page, "to-rename.ipynb").click(button="right")
    page.click('.lm-Menu-item[data-command="filebrowser:rename"]')
    editor = page.wait_for_selector(".jp-DirListing-editor")
    editor.fill("renamed.ipynb")
    editor.press("Enter")
    renamed = lab.root / "renamed.ipynb"
    wait_for(lambda: renamed.is_file() and not saved.exists())
    file_item(page, "renamed.ipynb").click(button="right")
    page.click('.lm-Menu-item[data-command="filebrowser:delete"]')
    page.click(".jp-Dialog .jp-mod-accept")
    wait_for(lambda: not renamed.exists())
    file_item(page, "renamed.ipynb").wait_for(state="detached")
    assert network.outside_the_tunnel(server) == []
    return network
