"""The pure modules (everything under jupyter_http_over_ws/wire/) do no I/O.

Each module is imported alone in a fresh interpreter, and nothing that does I/O or
runs an event loop may come with it. Modules are discovered, so a new wire module
is checked without touching this file.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

from jupyter_http_over_ws import wire

#: Top-level packages a pure module must not import (directly or through another): event
#: loops, networking and the server. Not ``subprocess``/``select``/``selectors``: on Python
#: 3.10 orjson imports ``uuid``, which imports ``platform`` and through it ``subprocess``.
FORBIDDEN = (
    "asyncio",
    "jupyter_client",
    "jupyter_server",
    "socket",
    "ssl",
    "tornado",
    "zmq",
)

PURE_MODULES = sorted(
    info.name for info in pkgutil.walk_packages(wire.__path__, prefix=f"{wire.__name__}.")
)


def test_every_known_wire_module_is_discovered():
    known = {"protocol", "framing", "handshake", "polling", "names"}
    assert {f"{wire.__name__}.{name}" for name in known} <= set(PURE_MODULES)


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_does_no_io(module):
    code = (
        f"import sys, {module}\n"
        f"bad = {{m.split('.')[0] for m in sys.modules}} & set({FORBIDDEN!r})\n"
        "print(','.join(sorted(bad)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()}"
