"""Identity providers for tests that need more than one authenticated person."""

from __future__ import annotations

from typing import Any

from jupyter_server.auth import IdentityProvider, User

__all__ = ["TwoUsers"]


class TwoUsers(IdentityProvider):
    """Two people with their own tokens: ``alice-token`` and ``bob-token``."""

    def get_user(self, handler: Any) -> User | None:  # type: ignore[override]
        header = handler.request.headers.get("Authorization", "")
        name = {"token alice-token": "alice", "token bob-token": "bob"}.get(header)
        if name is None:
            return None
        handler._token_authenticated = True
        return User(name)
