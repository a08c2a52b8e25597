"""Who gets in, from a real browser: an origin the server does not allow, a wrong token
(over the WebSocket and over polling), a login cookie against the token, and a client
that needs a newer extension. Every refusal says what is wrong.

The servers and pages are :mod:`support.cross_origin`'s.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.browser import browser as browser
from support.browser import context as context
from support.browser import jp_asyncio_loop as jp_asyncio_loop
from support.browser import jp_server_cleanup as jp_server_cleanup
from support.browser import open_page
from support.cross_origin import Setup, log_in, run, run_on_page
from support.cross_origin import setup as setup

from jupyter_http_over_ws import __version__

pytestmark = pytest.mark.slow


def test_foreign_origin_is_refused_with_a_clear_message(context: Any, setup: Setup) -> None:
    # A page on a port the server does not allow, but on the server's own site: the
    # browser sends the login cookie, so the origin alone is what gets it refused.
    log_in(context, setup)
    page = open_page(context, setup.foreign_page)
    result = run(
        page,
        setup,
        """
        const out = {};
        const attempt = async (options) => {
          try {
            const tunnel = await client.connect({ url: a.server, ...options });
            const r = await tunnel.fetch("api/contents/hello.txt?content=1");
            const transport = tunnel.transport;
            tunnel.close();
            return `connected (${transport}): ${r.status}`;
          } catch (e) {
            return errorText(e);
          }
        };
        out.cookie = await attempt({});
        out.token = await attempt({ token: a.token });
        try {
          out.diagnose = JSON.stringify(await client.diagnose({ url: a.server }));
        } catch (e) {
          out.diagnose = errorText(e);
        }
        return out;
        """,
    )
    print(result)
    assert not result["cookie"].startswith("connected"), result
    assert "Error" in result["cookie"].split(":")[0], result
    # connect() tells the origin apart from an unreachable server (the client's own code
    # answers every origin; diagnose refuses this one) and names the flag that fixes it.
    assert (
        f"this page's origin {setup.foreign_page.rstrip('/')} is not allowed" in result["cookie"]
    ), result
    assert f"--ServerApp.allow_origin='{setup.foreign_page.rstrip('/')}'" in result["cookie"]
    # diagnose() is refused too (its origin check applies), and says the origin may be why.
    assert "Error" in result["diagnose"].split(":")[0], result
    assert "origin is not allowed" in result["diagnose"], result
    assert "allow_origin" in result["diagnose"], result
    # jupyter_server's own rule, which the tunnel keeps: a token-authenticated request
    # skips the origin check (IdentityProvider.should_check_origin), as it does for the
    # REST API and kernel sockets. allow_origin guards cookie-authenticated pages.
    assert result["token"] == "connected (websocket): 200", result


def test_wrong_token_is_refused_and_diagnose_says_the_origin_is_fine(
    context: Any, setup: Setup
) -> None:
    result = run_on_page(
        context,
        setup,
        """
        const out = {};
        try { await connect(); out.right = "connected"; } catch (e) { out.right = errorText(e); }
        try {
          await client.connect({ url: a.server, token: "not-the-token" });
          out.wrong = "connected";
        } catch (e) {
          out.wrong = errorText(e);
        }
        out.diagnose = await client.diagnose({ url: a.server });
        return out;
        """,
    )
    print(result)
    assert result["right"] == "connected"
    assert result["wrong"] != "connected"
    assert "token" in result["wrong"].lower(), result
    # The origin is allowed, so the unauthenticated diagnose socket answers.
    assert result["diagnose"]["extension_version"]
    assert result["diagnose"]["has_authentication_cookie"] is False


def test_wrong_token_over_polling_is_a_readable_403(context: Any, setup: Setup) -> None:
    # The polling endpoint's refusal carries the CORS headers of the allowed origin, so
    # the page reads a 403 about its credentials (not "Failed to fetch": unreachable).
    result = run_on_page(
        context,
        setup,
        """
        try {
          await client.connect({ url: a.server, token: "not-the-token", transports: ["polling"] });
          return { connected: true };
        } catch (e) {
          const failed = e.failures[0].error;
          return { kind: failed.kind, status: failed.status, message: failed.message };
        }
        """,
    )
    assert result["kind"] == "refused", result
    assert result["status"] == 403, result
    assert "credentials (403: Polling request not authenticated" in result["message"], result


def test_login_cookie_does_not_authenticate_a_cross_site_page_but_the_token_does(
    context: Any, setup: Setup
) -> None:
    cookies = log_in(context, setup)
    names = {c["name"] for c in cookies}
    assert "_xsrf" in names, cookies
    assert any(n.startswith("username-") for n in names), cookies
    # Jupyter sets no SameSite attribute: Chromium treats the cookies as SameSite=Lax.
    assert {c["sameSite"] for c in cookies} <= {"Lax", "None"}
    check = """
        const out = { diagnose: await client.diagnose({ url: a.server }) };
        try {
          const tunnel = await client.connect({ url: a.server });
          const r = await tunnel.fetch("api/contents/hello.txt?content=1");
          out.cookieOnly = `${r.status}`;
          tunnel.close();
        } catch (e) {
          out.cookieOnly = errorText(e);
        }
        const tunnel = await connect();
        const r = await tunnel.fetch("api/contents/hello.txt?content=1");
        out.withToken = `${r.status}`;
        tunnel.close();
        return out;
    """
    cross_site = run(open_page(context, setup.page), setup, check)
    same_site = run(open_page(context, setup.same_site_page), setup, check)
    print({"cross_site": cross_site, "same_site": same_site})
    # Same site (127.0.0.1:Q -> 127.0.0.1:P): the browser sends the login cookie, and it
    # alone authenticates the tunnel. This is the original README's advice at work...
    assert same_site["diagnose"]["has_authentication_cookie"] is True
    assert same_site["cookieOnly"] == "200"
    # ...which fails for a page on another site (localhost:Q): the same browser, logged
    # in, withholds the cookie from the cross-site upgrade, and only the token works.
    assert cross_site["diagnose"]["has_authentication_cookie"] is False
    assert cross_site["cookieOnly"] != "200"
    assert "Error" in cross_site["cookieOnly"].split(":")[0], cross_site
    assert "token" in cross_site["cookieOnly"], cross_site
    assert cross_site["withToken"] == "200"
    assert same_site["withToken"] == "200"


def test_min_version_refusal_and_tunnel_diagnose(context: Any, setup: Setup) -> None:
    result = run_on_page(
        context,
        setup,
        """
        const out = {};
        const tunnel = await connect({ minVersion: "0.0.7" });
        out.version = tunnel.version;
        out.diagnose = await tunnel.diagnose();
        tunnel.close();
        try {
          await connect({ minVersion: "999.0.0" });
          out.newer = "connected";
        } catch (e) {
          out.newer = errorText(e);
        }
        return out;
        """,
    )
    assert result["version"] == __version__
    assert result["diagnose"]["extension_version"] == __version__
    assert result["diagnose"]["is_outdated_extension"] is False
    assert result["diagnose"]["message_id"]
    assert result["newer"] != "connected"
    assert "999.0.0" in result["newer"], result
    assert __version__ in result["newer"], result
