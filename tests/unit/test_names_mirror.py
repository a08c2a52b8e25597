"""The browser client's ``js/src/names.js`` mirrors ``wire/names.py`` member for member.

The JS file is read as text (no node needed): ``NAME: value,`` lines inside the
``CloseCode`` object, and ``export const NAME = ...`` lines for the paths, whose
values are string literals and earlier names joined by ``+``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from jupyter_http_over_ws.wire import names

NAMES_JS = Path(__file__).resolve().parents[2] / "js" / "src" / "names.js"

#: The endpoint paths both files define.
PATHS = ("TUNNEL_PATH", "DIAGNOSE_PATH", "PROXIED_WS_PREFIX", "POLLING_PATH", "STATIC_PREFIX")

_CLOSE_CODE_BLOCK = re.compile(r"export const CloseCode = Object\.freeze\(\{(.*?)\}\);", re.S)
_MEMBER = re.compile(r"^\s*([A-Z][A-Z0-9_]*)\s*:\s*(\d+)\s*,?\s*$", re.M)
_CONST = re.compile(r"^export const ([A-Z][A-Z0-9_]*) = (.+);$", re.M)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _js_source() -> str:
    return NAMES_JS.read_text(encoding="utf-8")


def _js_close_codes() -> dict[str, int]:
    block = _CLOSE_CODE_BLOCK.search(_js_source())
    assert block, "names.js has no `export const CloseCode = Object.freeze({...});`"
    lines = [
        line.strip()
        for line in block.group(1).splitlines()
        if line.strip() and not line.strip().startswith(("/**", "*", "//"))
    ]
    members = {m.group(1): int(m.group(2)) for m in _MEMBER.finditer(block.group(1))}
    # Every code line must be a plain `NAME: number,`: nothing the regex would skip.
    assert len(members) == len(lines), f"unreadable CloseCode lines in names.js: {lines}"
    return members


def _js_constants() -> dict[str, str]:
    """The ``export const`` string constants, each expression evaluated in order."""
    values: dict[str, str] = {}
    for name, expression in _CONST.findall(_js_source()):
        if expression.startswith("Object.freeze"):
            continue
        parts = [part.strip() for part in expression.split("+")]
        text = ""
        for part in parts:
            if _STRING.fullmatch(part):
                text += json.loads(part)
            else:
                assert part in values, f"{name} uses {part!r}, not defined above it in names.js"
                text += values[part]
        values[name] = text
    return values


def test_close_codes_agree_both_ways() -> None:
    python = {member.name: member.value for member in names.CloseCode}
    js = _js_close_codes()
    assert sorted(set(python) - set(js)) == [], "CloseCode members missing from names.js"
    assert sorted(set(js) - set(python)) == [], "names.js has CloseCode members wire/names.py lacks"
    assert js == python


def test_endpoint_paths_agree_both_ways() -> None:
    js = _js_constants()
    assert sorted(js) == sorted(PATHS), "names.js exports other path constants than expected"
    for name in PATHS:
        assert js[name] == getattr(names, name), name


def test_the_reader_sees_a_change() -> None:
    """A guard on the parser itself: an edited value or an extra member is noticed."""
    source = _js_source()
    assert "  ABNORMAL: 1006," in source
    assert 'export const TUNNEL_PATH = "http_over_websocket";' in source
    edited = source.replace("  ABNORMAL: 1006,", "  ABNORMAL: 1007,\n  EXTRA: 4999,")
    block = _CLOSE_CODE_BLOCK.search(edited)
    assert block
    members = {m.group(1): int(m.group(2)) for m in _MEMBER.finditer(block.group(1))}
    assert members["ABNORMAL"] == 1007
    assert "EXTRA" in members
