"""Identity providers for tests that need more than one authenticated person."""

from __future__ import annotations

from typing import Any

from jupyter_server.auth import IdentityProvider, User

__all__ = ["TokenUsers", "TwoUsers"]


class TwoUsers(IdentityProvider):
    """Two people with their own tokens: ``alice-token`` and ``bob-token``."""

    def get_user(self, handler: Any) -> User | None:  # type: ignore[override]
        header = handler.request.headers.get("Authorization", "")
        name = {"token alice-token": "alice", "token bob-token": "bob"}.get(header)
        if name is None:
            return None
        handler._token_authenticated = True
        return User(name)


class TokenUsers(IdentityProvider):
    """Two people identified by ``get_user_token`` alone, as jupyter_server documents.

    ``alice-token`` and ``bob-token`` name them; any other token goes the stock way
    (the server's own token: a new anonymous user per request).
    """

    async def get_user_token(self, handler: Any) -> User | None:
        name = {"alice-token": "alice", "bob-token": "bob"}.get(self.get_token(handler) or "")
        if name is not None:
            return User(name)
        return await super().get_user_token(handler)
