"""``jupyter http-over-ws doctor`` against a real JupyterHub: each hub finding, and its fix.

One hub (``support/hub.py``; JupyterHub with configurable-http-proxy) runs for the
module, its single-user servers allowing the page origin with ``allow_origin_pat``
through ``c.Spawner.args`` (the fix the doctor gives); alice's server runs, bob's does
not. A second hub, whose servers allow no origin and take tokens in URLs
(``JUPYTERHUB_ALLOW_TOKEN_IN_URL=1``), shows the refused CORS preflight and a hub where
a browser's WebSocket works; an upgrade-dropping nginx in front of the first shows a
hub behind a proxy that strips upgrades. The doctor runs as from a shell
(``cli.main`` with its own event loop) and must never print or leak a token.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import jupyterhub
import pytest
from support.hub import Hub
from support.nginx import Nginx

from jupyter_http_over_ws import __version__, cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

#: The frontend's page origin; the first hub's servers allow it by pattern.
PAGE_ORIGIN = "https://frontend.example"
PAGE_ORIGIN_PAT = r"^https://frontend\.example$"
ELSEWHERE = "https://elsewhere.example"


class PatternHub(Hub):
    """A hub whose servers allow the page origin as the doctor's fix says: a pattern."""

    def spawner_args(self) -> list[str]:
        """``allow_origin_pat`` instead of ``allow_origin`` (plus ``allow_root`` as root)."""
        args = [f"--ServerApp.allow_origin_pat={PAGE_ORIGIN_PAT}"]
        return args + [a for a in super().spawner_args() if "allow_root" in a]


class NoOriginHub(Hub):
    """A hub whose servers allow no page origin at all (jupyter_server's default)."""

    def spawner_args(self) -> list[str]:
        """Only ``allow_root`` as root: no origin setting."""
        return [a for a in super().spawner_args() if "allow_root" in a]


def stopped(hub: Hub) -> None:
    left = hub.stop()
    assert left == [], f"processes left after the hub stopped: {left}\n{hub.log()[-3000:]}"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The first hub, with alice's server running and bob's not."""
    hub = PatternHub(tmp_path_factory.mktemp("hub"), page_origin=PAGE_ORIGIN)
    hub.start()
    try:
        hub.start_server("alice")
        yield hub
    finally:
        stopped(hub)


@pytest.fixture(scope="module")
def tokens(hub):
    """Tokens by what they may do: alice's server, nothing of it, bob's server."""
    return {
        "alice": hub.new_token("alice", ["access:servers!user=alice"], note="frontend"),
        "alice-without-access": hub.new_token("alice", ["read:users!user=alice"]),
        "bob": hub.new_token("bob", ["access:servers!user=bob"], note="bob's frontend"),
    }


def doctor(capsys, *args: str, secrets: tuple[str, ...] = ()) -> tuple[int, dict]:
    """Run the doctor with ``--json``; its status and report. No secret may be printed."""
    status = cli.main(["doctor", *args, "--json", "--timeout", "20"])
    out = capsys.readouterr().out
    for secret in secrets:
        assert secret not in out
    return status, json.loads(out)


def findings(report: dict, check: str, status: str | None = None) -> list[dict]:
    return [
        f
        for f in report["findings"]
        if f["check"] == check and (status is None or f["status"] == status)
    ]


def statuses(report: dict) -> list[tuple[str, str]]:
    return [(f["check"], f["status"]) for f in report["findings"]]


def assert_hub_named(report: dict, hub: Hub, user: str) -> None:
    """The first finding names the hub's version (the installed JupyterHub's) and the user."""
    first = report["findings"][0]
    assert (first["check"], first["status"]) == ("hub", "ok")
    assert first["message"] == (
        f"JupyterHub {jupyterhub.__version__} serves {hub.user_url(user)} ({user}'s server; "
        f"the hub answers at {hub.url})."
    )


# ------------------------------------------------------------------ everything works


def test_everything_works_behind_the_hub(capsys, hub, tokens):
    token = tokens["alice"]
    status, report = doctor(
        capsys, hub.user_url("alice"), "--origin", PAGE_ORIGIN, "--token", token, secrets=(token,)
    )
    assert status == 0, report
    assert statuses(report) == [
        ("hub", "ok"),
        ("reachable", "ok"),
        ("extension", "ok"),
        ("origin", "ok"),
        ("origin", "note"),
        ("credentials", "ok"),
        ("request", "ok"),
        ("polling", "ok"),
        ("browser", "note"),
        ("kernel", "ok"),
    ]
    assert_hub_named(report, hub, "alice")
    assert f"extension {__version__} is loaded" in findings(report, "extension")[0]["message"]
    (credentials,) = findings(report, "credentials")
    assert "accepted in the Authorization header" in credentials["message"]
    # The Chromium case: a browser's WebSocket can carry the token only as ?token=.
    (browser,) = findings(report, "browser")
    assert f"JupyterHub {jupyterhub.__version__} refused that (403)" in browser["message"]
    assert "Chromium does not send" in browser["message"]
    assert "browser clients will use the polling transport" in browser["message"]
    assert '{"JUPYTERHUB_ALLOW_TOKEN_IN_URL": "1"}' in browser["fix"]
    assert "the hub's login cookie" in browser["fix"]
    assert token not in hub.log()  # the one probe with ?token= is logged as [secret]


def test_the_text_a_user_reads_names_the_hub_and_its_version(capsys, hub, tokens):
    token = tokens["alice"]
    status = cli.main(["doctor", hub.user_url("alice"), "--token", token, "--no-kernel"])
    out = capsys.readouterr().out
    assert token not in out
    assert status == 0, out
    lines = out.splitlines()
    assert lines[0] == f"Checking {hub.user_url('alice')}"
    assert lines[1].startswith(f"ok       JupyterHub {jupyterhub.__version__} serves ")
    (browser,) = [i for i, line in enumerate(lines) if line.startswith("note     A browser's")]
    assert lines[browser + 1].strip().startswith("fix: to let browsers use the WebSocket")
    assert lines[-1] == "Everything works."


@pytest.mark.parametrize("page", ["", "hub/home"])
def test_the_hub_itself_is_not_a_users_server(capsys, hub, page):
    status, report = doctor(capsys, hub.url + page)
    assert status == 1
    assert statuses(report) == [("reachable", "problem")]
    (problem,) = report["findings"]
    assert problem["message"] == (
        f"{hub.url}{page}{'/' if page else ''} is JupyterHub {jupyterhub.__version__} itself, "
        "not a user's server: the tunnel runs in each user's single-user server, under "
        f"{hub.url}user/<name>/."
    )
    assert f"{hub.url}user/alice/" in problem["fix"]


# ------------------------------------------------------------- tokens in URLs


@pytest.mark.parametrize("form", ["?token=", "jupyter_http_over_ws_auth_url"])
def test_a_token_in_the_url_is_moved_to_the_header(capsys, hub, tokens, form):
    token = tokens["alice"]
    page = f"{hub.user_url('alice')}lab?token={token}"
    if form == "?token=":
        url = page
    else:
        url = f"{hub.user_url('alice')}http_over_websocket?" + urlencode(
            {"jupyter_http_over_ws_auth_url": page}
        )
    status, report = doctor(capsys, url, "--no-kernel", secrets=(token,))
    assert status == 0, report
    assert report["url"] == hub.user_url("alice")
    assert_hub_named(report, hub, "alice")
    (note,) = findings(report, "credentials", "note")
    assert note["message"].startswith(
        f"The token came in the URL ({form}); the doctor sent it in the Authorization header"
    )
    assert (
        f"JupyterHub {jupyterhub.__version__} refuses a token there (it answered 403 to a "
        "WebSocket upgrade carrying ?token=)"
    ) in note["message"]
    assert "`Authorization: token <token>`" in note["fix"]
    assert "only as ?token= is refused with 403" in note["fix"]
    assert token not in hub.log()


# -------------------------------------------------------------- refused tokens


def test_a_token_without_the_scope(capsys, hub, tokens):
    token = tokens["alice-without-access"]
    status, report = doctor(capsys, hub.user_url("alice"), "--token", token, secrets=(token,))
    assert status == 1
    assert statuses(report)[-1] == ("credentials", "problem")
    (problem,) = findings(report, "credentials", "problem")
    assert problem["message"].startswith(
        "The token is alice's, but it lacks the scope access:servers for alice's server: "
        "its scopes are "
    )
    assert "read:users!user=alice" in problem["message"]
    assert problem["message"].endswith("(the tunnel upgrade answered 403).")
    assert "access:servers!user=alice" in problem["fix"]
    assert f"{hub.url}hub/token" in problem["fix"]
    # The fix is right: a token with that scope gets through.
    assert doctor(capsys, hub.user_url("alice"), "--token", tokens["alice"], "--no-kernel")[0] == 0


def test_another_users_token(capsys, hub, tokens):
    token = tokens["bob"]
    status, report = doctor(capsys, hub.user_url("alice"), "--token", token, secrets=(token,))
    assert status == 1
    (problem,) = findings(report, "credentials", "problem")
    assert problem["message"] == (
        "The token is bob's, and its scopes (access:servers!user=bob, "
        "read:users:groups!user=bob, read:users:name!user=bob) give no access to alice's "
        "server (the tunnel upgrade answered 403)."
    )
    assert "access:servers!user=alice" in problem["fix"]
    assert "c.JupyterHub.load_roles" in problem["fix"]


def test_a_token_the_hub_does_not_know(capsys, hub):
    token = "0123456789abcdef0123456789abcdef"
    status, report = doctor(capsys, hub.user_url("alice"), "--token", token, secrets=(token,))
    assert status == 1
    (problem,) = findings(report, "credentials", "problem")
    assert problem["message"] == (
        "The hub does not accept this token (the tunnel upgrade answered 403, and "
        f"GET {hub.url}hub/api/user with it answered 403): it is wrong, expired or revoked."
    )
    assert f"{hub.url}hub/token" in problem["fix"]


def test_no_token(capsys, hub):
    status, report = doctor(capsys, hub.user_url("alice"), "--no-kernel")
    assert status == 1
    (problem,) = findings(report, "credentials", "problem")
    assert problem["message"] == (
        "The hub's single-user server (alice's server) requires a hub API token, and none "
        "was given (the tunnel upgrade answered 403)."
    )
    assert "--token" in problem["fix"]
    assert "access:servers!user=alice" in problem["fix"]


# ---------------------------------------------------------- a stopped server


@pytest.mark.parametrize("with_token", [True, False])
def test_a_server_that_is_not_running(capsys, hub, tokens, with_token):
    assert hub.user("bob")["servers"] == {}
    token = tokens["bob"]
    args = ["--token", token] if with_token else []
    status, report = doctor(capsys, hub.user_url("bob"), *args, secrets=(token,))
    assert status == 1
    assert statuses(report) == [("hub", "ok"), ("reachable", "problem")]
    assert_hub_named(report, hub, "bob")
    (problem,) = findings(report, "reachable", "problem")
    start = (
        f"The server is not running (bob's server): GET {hub.user_url('bob')}api reached the "
        "hub, not the server (the hub's proxy routes /user/bob/ to the server only while it "
        "runs), and the hub redirected it to /hub/user/bob/api"
    )
    assert problem["message"].startswith(start)
    if with_token:
        assert problem["message"] == start + (
            ", which answered 424 (JupyterHub server no longer running at /user/bob/api. "
            f"Restart the server at {hub.url}hub/spawn/bob)."
        )
    else:
        assert problem["message"] == start + (
            ", which sends a request without a token to the login page (with a token it "
            "answers 424)."
        )
    assert f"{hub.url}hub/spawn/bob" in problem["fix"]
    assert f"POST {hub.url}hub/api/users/bob/server" in problem["fix"]


# ---------------------------------------------------------------- page origins


def test_a_page_origin_the_servers_do_not_allow(capsys, hub, tokens):
    token = tokens["alice"]
    status, report = doctor(
        capsys,
        hub.user_url("alice"),
        "--origin",
        ELSEWHERE,
        "--token",
        token,
        "--no-kernel",
        secrets=(token,),
    )
    assert status == 1
    (problem,) = findings(report, "origin", "problem")
    assert problem["message"] == (
        f"The server refuses WebSockets from {ELSEWHERE}: neither allow_origin nor "
        "allow_origin_pat admits it."
    )
    assert (
        r'c.Spawner.args = [r"--ServerApp.allow_origin_pat=^https://elsewhere\.example$"]'
        in problem["fix"]
    )
    assert "stop and start alice's server" in problem["fix"]
    # The fix works: the same pattern for the page's own origin admits it.
    status, report = doctor(
        capsys, hub.user_url("alice"), "--origin", PAGE_ORIGIN, "--token", token, "--no-kernel"
    )
    assert status == 0, report
    assert findings(report, "origin", "ok")


@pytest.fixture(scope="module")
def open_hub(tmp_path_factory):
    """The second hub: no page origin allowed, tokens in URLs allowed; alice's server runs."""
    hub = NoOriginHub(
        tmp_path_factory.mktemp("open-hub"),
        page_origin=PAGE_ORIGIN,
        environment={"JUPYTERHUB_ALLOW_TOKEN_IN_URL": "1"},
    )
    hub.start()
    try:
        hub.start_server("alice")
        yield hub
    finally:
        stopped(hub)


def test_a_preflight_without_access_control_allow_origin(capsys, open_hub):
    token = open_hub.new_token("alice", ["access:servers!user=alice"])
    status, report = doctor(
        capsys,
        open_hub.user_url("alice"),
        "--origin",
        PAGE_ORIGIN,
        "--token",
        token,
        "--no-kernel",
        secrets=(token,),
    )
    assert status == 1
    (problem,) = findings(report, "origin", "problem")
    assert problem["message"] == (
        f"The server refuses WebSockets from {PAGE_ORIGIN}: neither allow_origin nor "
        "allow_origin_pat admits it. The CORS preflight of the browser's polling requests "
        f"(OPTIONS {open_hub.user_url('alice')}http_over_websocket/polling from {PAGE_ORIGIN}) "
        "got no Access-Control-Allow-Origin either, so a browser refuses polling from that "
        "page too."
    )
    assert (
        f'c.Spawner.args = [r"--ServerApp.allow_origin_pat={PAGE_ORIGIN_PAT}"]' in (problem["fix"])
    )
    # With JUPYTERHUB_ALLOW_TOKEN_IN_URL=1 a browser's WebSocket is accepted.
    (browser,) = findings(report, "browser")
    assert browser["status"] == "ok"
    assert "browser clients can use the WebSocket" in browser["message"]
    assert token not in open_hub.log()


# ---------------------------------------------------------- a hub behind nginx


@pytest.mark.nginx
def test_a_hub_behind_a_proxy_that_strips_upgrades(capsys, hub, tokens, tmp_path):
    token = tokens["alice"]
    proxy = Nginx(tmp_path / "nginx", hub.port, upgrades=False)
    proxy.start()
    try:
        url = proxy.url("/user/alice/")
        status, report = doctor(capsys, url, "--token", token, "--no-kernel", secrets=(token,))
        # The token in the URL: over polling too, it is moved to the header, and said so.
        _, in_url = doctor(capsys, f"{url}?token={token}", "--no-kernel", secrets=(token,))
    finally:
        proxy.stop()
    assert statuses(in_url)[4:7] == [
        ("credentials", "ok"),
        ("credentials", "note"),
        ("websocket", "problem"),
    ]
    assert findings(in_url, "credentials", "note")[0]["message"].startswith(
        "The token came in the URL (?token=); the doctor sent it in the Authorization header"
    )
    assert status == 1
    assert statuses(report) == [
        ("hub", "ok"),
        ("reachable", "ok"),
        ("extension", "ok"),
        ("origin", "skipped"),
        ("credentials", "ok"),
        ("websocket", "problem"),
        ("polling", "ok"),
        ("kernel", "skipped"),
    ]
    (first,) = findings(report, "hub")
    assert f"JupyterHub {jupyterhub.__version__} serves {url}" in first["message"]
    (websocket,) = findings(report, "websocket")
    assert "so a proxy in between drops WebSocket upgrades" in websocket["message"]
    assert "Clients with the polling transport still connect" in websocket["message"]
    assert websocket["fix"].startswith(
        "JupyterHub's own proxy (configurable-http-proxy) passes upgrades, so a proxy in "
        f"front of the hub (http://127.0.0.1:{proxy.port}/) drops them: let the proxy pass "
        "WebSocket upgrades"
    )
    assert 'proxy_set_header Connection "upgrade";' in websocket["fix"]
    assert "/user/alice/http_over_websocket/polling" in proxy.access_log()
    assert token not in proxy.access_log()
