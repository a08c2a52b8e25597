"""RFC 6455 data frame headers, as frame_writer.FrameWriter writes them."""

from __future__ import annotations

import pytest

from jupyter_http_over_ws.frame_writer import BINARY, TEXT, frame_header


def test_the_rfc_examples():
    # RFC 6455 section 5.7: an unmasked "Hello" text frame, a 256-byte and a 65536-byte
    # unmasked binary frame.
    assert frame_header(TEXT, 5) + b"Hello" == bytes.fromhex("810548656c6c6f")
    assert frame_header(BINARY, 256) == bytes.fromhex("827e0100")
    assert frame_header(BINARY, 65536) == bytes.fromhex("827f0000000000010000")


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (0, "8200"),
        (125, "827d"),
        (126, "827e007e"),
        (0xFFFF, "827effff"),
        (0x10000, "827f0000000000010000"),
        (2**40 + 1, "827f0000010000000001"),
    ],
)
def test_each_length_encoding_at_its_bounds(length, expected):
    assert frame_header(BINARY, length) == bytes.fromhex(expected)


def test_a_negative_length_is_refused():
    with pytest.raises(ValueError, match="negative"):
        frame_header(TEXT, -1)
