"""How a tunnelled request's body is handed to its handler (``dispatch.body_pieces``)."""

from __future__ import annotations

import os

from jupyter_http_over_ws.dispatch import BODY_PIECE, body_pieces


def test_a_body_reaches_the_handler_in_pieces_of_at_most_body_piece():
    body = os.urandom(3 * BODY_PIECE + 17)
    pieces = list(body_pieces(memoryview(body)))
    assert [len(piece) for piece in pieces] == [BODY_PIECE] * 3 + [17]
    # bytes, as Tornado's HTTP server hands a handler that streams its body
    assert all(type(piece) is bytes for piece in pieces)
    assert b"".join(pieces) == body


def test_an_empty_body_is_no_piece():
    assert list(body_pieces(b"")) == []
