"""The doctor's pure hub logic: URLs of users' servers, scopes, and how findings read.

Everything here is also exercised against a real hub in ``tests/test_doctor_hub.py``;
these pin the edge cases a single hub does not show (a hub under a base_url, named
servers, group-filtered scopes, a hub that accepts tokens in URLs, polling off).
"""

from __future__ import annotations

import re

import pytest

from jupyter_http_over_ws.doctor.findings import NOTE, OK, PROBLEM, Report
from jupyter_http_over_ws.doctor.hub import (
    HubInfo,
    adapt_websocket_findings,
    origin_fix,
    report_browser_websocket,
    report_token_in_url,
    scopes_grant_access,
    user_server_path,
)
from jupyter_http_over_ws.doctor.target import normalize_url, url_credential

HUB = HubInfo(root="https://hub.example/", version="6.1.1", user="alice")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://hub.example/user/alice/", ("https://hub.example/", "alice")),
        ("https://hub.example/user/alice/lab/", ("https://hub.example/", "alice")),
        ("https://hub.example/user/alice/named/", ("https://hub.example/", "alice")),
        ("https://h.example/jhub/user/bob/", ("https://h.example/jhub/", "bob")),
        ("http://localhost:8888/", None),
        ("http://localhost:8888/user/", None),
        ("http://localhost:8888/users/alice/", None),
    ],
)
def test_user_server_path(url, expected):
    assert user_server_path(url) == expected


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        (["access:servers!user=alice"], True),
        (["access:servers!server=alice/"], True),
        (["access:servers"], True),
        (["read:users!user=alice", "read:users:name!user=alice"], False),
        (["access:servers!user=bob"], False),
        (["access:servers!server=alice/other"], False),
        (["access:servers!group=staff"], None),
        ([], False),
    ],
)
def test_scopes_grant_access(scopes, expected):
    assert scopes_grant_access(scopes, "alice") is expected


def test_a_token_in_an_auth_url_is_found_and_the_tunnel_path_dropped():
    page = "https://hub.example/user/alice/lab?token=abc"
    url = "https://hub.example/user/alice/http_over_websocket?jupyter_http_over_ws_auth_url=" + (
        page.replace(":", "%3A").replace("/", "%2F").replace("?", "%3F").replace("=", "%3D")
    )
    assert normalize_url(url) == ("https://hub.example/user/alice/http_over_websocket/", "abc")
    assert url_credential(url) == "jupyter_http_over_ws_auth_url"
    assert url_credential(page) == "?token="
    assert url_credential("https://hub.example/user/alice/") is None


def test_the_token_in_url_note_follows_what_the_hub_did():
    for refused, expected in [
        (True, "JupyterHub 6.1.1 refuses a token there (it answered 403"),
        (False, "this hub accepts it in a URL too (JUPYTERHUB_ALLOW_TOKEN_IN_URL is on"),
        (None, "JupyterHub 5 and later refuse a token there on HTTP requests"),
    ]:
        report = Report("u")
        report_token_in_url(report, HUB, "?token=", refused)
        (finding,) = report.findings
        assert finding.status == NOTE
        assert expected in finding.message
        assert finding.fix is not None
        assert "Authorization: token <token>" in finding.fix


def test_the_browser_finding_is_a_problem_only_without_polling():
    statuses = {}
    for refused, polling in [(True, True), (True, False), (False, True), (None, True)]:
        report = Report("u")
        report_browser_websocket(report, HUB, refused, polling)
        statuses[(refused, polling)] = [f.status for f in report.findings]
    assert statuses == {
        (True, True): [NOTE],
        (True, False): [PROBLEM],
        (False, True): [OK],
        (None, True): [],
    }


def test_the_origin_fix_is_a_pattern_that_matches_exactly_the_origin():
    fix = origin_fix(HUB, "https://app.example:8443")
    (pattern,) = re.findall(r'allow_origin_pat=(.*?)"', fix)
    assert re.match(pattern, "https://app.example:8443")
    assert not re.match(pattern, "https://appXexample:8443")
    assert not re.match(pattern, "https://app.example:8443.evil.example")
    assert "c.Spawner.args" in fix
    assert "stop and start alice's server" in fix


def test_only_dropped_upgrade_problems_name_the_proxy_in_front_of_the_hub():
    report = Report("u")
    report.add("websocket", PROBLEM, "dropped", "let the proxy pass WebSocket upgrades")
    report.add("polling", OK, "works")
    adapt_websocket_findings(report, HUB)
    websocket, polling = report.findings
    assert websocket.fix is not None
    assert websocket.fix.startswith(
        "JupyterHub's own proxy (configurable-http-proxy) passes upgrades, so a proxy in "
        "front of the hub (https://hub.example/) drops them: let the proxy pass"
    )
    assert polling.fix is None
