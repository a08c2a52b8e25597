"""The polling transport's server side: the tunnel over plain HTTP requests.

- :mod:`.session`: :class:`PollingSession`, one client's tunnel (channel 0 is a
  :class:`~..session.TunnelSession`), its long polls and its channels;
- :mod:`.channels`: :class:`PolledChannel`, one proxied socket of a session;
- :mod:`.buffer`: :class:`OutgoingBuffer`, what the server sends, numbered, kept until
  acknowledged and bounded in bytes;
- :mod:`.table`: :class:`PollingTable`, the open sessions of one server and their expiry.

The wire format is pure and lives in :mod:`..wire.polling`; the Tornado handlers in
:mod:`..handlers.polling` only authenticate and call into this package; the tunnel
registry (:mod:`..runtime`) builds the sessions. See docs/developers/polling.md.
"""

from __future__ import annotations

from .buffer import BufferClosedError, OutgoingBuffer
from .channels import ChannelHost, ChannelOpener, PolledChannel, Upstream
from .session import CLOSED_BY_CLIENT, Admission, PollingSession
from .table import PollingTable

__all__ = [
    "CLOSED_BY_CLIENT",
    "Admission",
    "BufferClosedError",
    "ChannelHost",
    "ChannelOpener",
    "OutgoingBuffer",
    "PolledChannel",
    "PollingSession",
    "PollingTable",
    "Upstream",
]
