"""The tunnel registry without a server: owners, admission, factories, shutdown order."""

from __future__ import annotations

import asyncio
import json
import logging
from types import SimpleNamespace

from jupyter_server.auth import IdentityProvider, User
from jupyter_server.auth.identity import PasswordIdentityProvider

from jupyter_http_over_ws.polling import PollingSession
from jupyter_http_over_ws.runtime import Refusal, TunnelRegistry, owner_key
from jupyter_http_over_ws.session import SessionLimits, TunnelSession
from jupyter_http_over_ws.upgrade import UpgradeContext
from jupyter_http_over_ws.wire.protocol import PathPolicy

LOG = logging.getLogger("test_registry")


class Settings:
    """The app's traitlets as the registry reads them (changed live, as tests do)."""

    def __init__(self, **options):
        self.max_sockets_per_user = 2
        self.idle_timeout = 0.0
        self.chunk_size = 65536
        self.polling_buffer_size = 1 << 20
        self.polling_idle_timeout = 0.0
        self.max_message_size = 1 << 20
        self.connect_timeout = 5.0
        self.path_policy = PathPolicy()
        self.log = LOG
        self.__dict__.update(options)

    def session_limits(self):
        return SessionLimits(max_in_flight=3, max_body_size=10, path_policy=self.path_policy)


class FakeEntrance:
    def __init__(self, events):
        self.events = events
        self.resolver = None

    def start(self):
        self.events.append("entrance started")
        self.resolver = object()

    async def stop(self):
        self.events.append("entrance stopped")


class Socket:
    """A tunnel socket's handler, as far as shutdown goes."""

    def __init__(self, name, events):
        self.name = name
        self.events = events

    async def shutdown(self):
        await asyncio.sleep(0.01)
        self.events.append(f"{self.name} shut down")


class Opened:
    """A socket handler with (or without) a tunnel session."""

    def __init__(self, session=None):
        self.session = session

    async def shutdown(self):
        pass


class Handler:
    """The handler a client opens a tunnel through (``TunnelSocketMixin``'s)."""

    def __init__(self, user=None, provider=IdentityProvider):
        self.identity_provider = provider()
        self.current_user = user
        self.application = object()
        self.request = SimpleNamespace(
            server_connection=object(), connection=SimpleNamespace(stream=None)
        )
        self.log = LOG

    def upgrade_context(self):
        return UpgradeContext(base_url="/", headers=(), remote_ip="127.0.0.1", protocol="http")


class NamedUsers(IdentityProvider):
    def get_user(self, handler):  # overriding get_user: the provider identifies people
        return handler.current_user


def registry(events=None, **options):
    events = [] if events is None else events
    return TunnelRegistry(Settings(**options), lambda: FakeEntrance(events))


# ------------------------------------------------------------------ owners


def test_jupyter_servers_own_providers_make_everyone_one_owner():
    assert owner_key(Handler(User("anonymous-1"))) == ""
    assert owner_key(Handler(User("anonymous-2"))) == ""


def test_a_provider_that_identifies_people_keys_by_username():
    assert owner_key(Handler(User("alice"), NamedUsers)) == "alice"
    assert owner_key(Handler("bob", NamedUsers)) == "bob"


class TokenUsers(IdentityProvider):
    async def get_user_token(self, handler):  # the way jupyter_server documents
        return handler.current_user


class CookieUsers(IdentityProvider):
    def get_user_cookie(self, handler):
        return handler.current_user


class Renamed(PasswordIdentityProvider):
    """A subclass that changes nothing about who a request is."""


class TokenHandler(Handler):
    """A request token-authenticated with ``token`` (in its Authorization header)."""

    def __init__(self, user, provider, token):
        super().__init__(user, provider)
        self.identity_provider.token = "server-token"
        self.request.headers = {"Authorization": f"token {token}"}
        self._token_authenticated = True

    def get_argument(self, name, default=None):
        return default


def test_every_provider_that_identifies_people_keys_by_username():
    """Issue 11, finding 2: not only those overriding get_user."""
    for provider in (TokenUsers, CookieUsers):
        assert owner_key(Handler(User("alice"), provider)) == "alice"
        assert owner_key(Handler(User("bob"), provider)) == "bob"
    assert owner_key(TokenHandler(User("alice"), TokenUsers, "alice-token")) == "alice"


def test_the_stock_ways_of_deciding_who_a_request_is_are_one_principal():
    assert owner_key(Handler(User("anonymous-1"), PasswordIdentityProvider)) == ""
    assert owner_key(Handler(User("anonymous-2"), Renamed)) == ""
    # The server's own token, under a provider that leaves it to the stock path.
    assert owner_key(TokenHandler(User("anonymous-3"), TokenUsers, "server-token")) == ""
    assert owner_key(TokenHandler(User("anonymous-4"), TokenUsers, "server-tokex")) != ""


# ------------------------------------------------------------------ admission


def test_admission_per_owner_under_the_cap():
    tunnels = registry(max_sockets_per_user=2)
    a1, a2, a3, b1 = object(), object(), object(), object()
    assert tunnels.admit("alice", a1) is None
    assert tunnels.admit("alice", a2) is None
    refusal = tunnels.admit("alice", a3)
    assert refusal == Refusal(
        4429,
        "Too many tunnel sockets for this user (limit 2; "
        "see HttpOverWebSocketApp.max_sockets_per_user)",
    )
    assert tunnels.admit("bob", b1) is None  # another owner has a cap of their own
    assert set(tunnels.sockets) == {a1, a2, b1}
    tunnels.release(a1)
    assert tunnels.admit("alice", a3) is None
    assert set(tunnels.sockets) == {a2, a3, b1}


def test_the_cap_is_read_live_and_0_means_no_limit():
    settings = Settings(max_sockets_per_user=1)
    tunnels = TunnelRegistry(settings, lambda: FakeEntrance([]))
    assert tunnels.admit("alice", object()) is None
    assert tunnels.admit("alice", object()) is not None
    settings.max_sockets_per_user = 0
    assert tunnels.admit("alice", object()) is None
    assert len(tunnels.sockets) == 2


def test_releasing_twice_or_something_never_admitted_changes_nothing():
    tunnels = registry()
    kept, gone = object(), object()
    tunnels.admit("alice", kept)
    tunnels.admit("alice", gone)
    tunnels.release(gone)
    tunnels.release(gone)
    tunnels.release(object())
    assert tunnels.sockets == [kept]


def test_sessions_are_those_of_the_open_tunnel_sockets():
    tunnels = registry(max_sockets_per_user=0)
    handler = Handler()
    socket = Opened(tunnels.tunnel_session(handler, None))
    tunnels.admit("", socket)
    tunnels.admit("", Opened())  # not opened yet
    tunnels.admit("", object())  # a proxied socket: no session
    assert tunnels.sessions == [socket.session]


# ------------------------------------------------------------------ factories


async def test_one_factory_builds_tunnel_sessions_with_the_apps_limits():
    sent = []

    async def send(frame, binary):
        sent.append(json.loads(frame))

    tunnels = registry(path_policy=PathPolicy.compile(["/api/ok"]))
    session = tunnels.tunnel_session(Handler(), send)
    assert isinstance(session, TunnelSession)
    session.receive(
        json.dumps({"message_id": 1, "method": "PUT", "path": "/api/ok", "body": "x" * 11})
    )
    session.receive(json.dumps({"message_id": 2, "method": "GET", "path": "/api/other"}))
    deadline = asyncio.get_running_loop().time() + 2
    while len(sent) < 2:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    assert {f["message_id"]: f["status"] for f in sent} == {1: 413, 2: 403}


async def test_polling_sessions_are_admitted_listed_and_released():
    events = []
    tunnels = registry(events, max_sockets_per_user=1)
    handler = Handler(User("alice"), NamedUsers)
    opened = tunnels.open_polling_session(handler)
    assert isinstance(opened, PollingSession)
    assert opened.owner == "alice"
    assert opened.max_channels == 1
    assert isinstance(opened.tunnel, TunnelSession)
    assert events == ["entrance started"]  # its channels dial through the entrance
    assert tunnels.polling_session(opened.id, handler) is opened
    assert tunnels.polling_session(opened.id, Handler(User("bob"), NamedUsers)) is None
    refused = tunnels.open_polling_session(handler)
    assert isinstance(refused, Refusal)
    assert refused.code == 4429
    assert list(tunnels.polling_sessions) == [opened]
    opened.close()
    assert tunnels.sockets == []
    assert len(tunnels.polling_sessions) == 0
    assert tunnels.open_polling_session(handler) is not None


async def test_an_idle_tunnel_is_closed_with_4408():
    tunnels = registry(idle_timeout=0.05)
    closed = []
    idle = SimpleNamespace(idle_seconds=lambda: 1.0)
    callback = tunnels.watch_idle(idle, lambda code, reason: closed.append((code, reason)))
    try:
        deadline = asyncio.get_running_loop().time() + 2
        while not closed:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
    finally:
        callback.stop()
    assert closed[0] == (4408, "Idle for 0.05 s (HttpOverWebSocketApp.idle_timeout)")


def test_no_idle_watch_without_an_idle_timeout():
    assert registry(idle_timeout=0.0).watch_idle(None, print) is None


# ------------------------------------------------------------------ the end


class RecordingTunnel:
    """Channel 0 of a polling session, recording its shutdown."""

    def __init__(self, events):
        self.events = events

    def close(self):
        pass

    async def shutdown(self):
        self.events.append("polling session shut down")


async def test_shutdown_ends_sockets_then_polling_sessions_then_the_entrance():
    events = []
    tunnels = registry(events, max_sockets_per_user=0)
    assert tunnels.entrance() is not None
    for name in ("tunnel", "proxied"):
        tunnels.admit("", Socket(name, events))
    session = PollingSession(
        "", lambda send: RecordingTunnel(events), None, buffer_size=1024, log=LOG
    )
    tunnels.polling_sessions.add(session, 0)
    events.clear()
    await tunnels.shutdown()
    assert sorted(events[:2]) == ["proxied shut down", "tunnel shut down"]
    assert events[2:] == ["polling session shut down", "entrance stopped"]
    assert tunnels.sockets == []
    assert len(tunnels.polling_sessions) == 0
    assert session.closed == (1001, "Server shutting down.")
    await tunnels.shutdown()  # a second shutdown has nothing left to do
    assert events.count("entrance stopped") == 1


async def test_an_entrance_that_cannot_start_means_dialling_the_local_address(caplog):
    class Refusing(FakeEntrance):
        def start(self):
            raise OSError("no sockets here")

    tunnels = TunnelRegistry(Settings(), lambda: Refusing([]))
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert tunnels.entrance() is None
    assert [r.getMessage() for r in caplog.records] == [
        "http_over_websocket: no private relay entrance: no sockets here"
    ]
