"""The CLI (``doctor``, ``diagnose``) with a token: never on its output, never in the server's log.

A person pastes the token (``--token``) or a page URL that carries it (``?token=``), often
into a terminal whose output they then share in a bug report. Whatever the outcome
(all good, refused origin, wrong token), the token is on neither stdout nor stderr, and
the server's log at DEBUG does not hold it either.
"""

from __future__ import annotations

import asyncio

import pytest
from support.attack import debug_logs, secrets_in

from jupyter_http_over_ws import cli

pytestmark = pytest.mark.timeout(120)

ALLOWED = "https://allowed.example"


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_http_over_ws": True},
            "allow_origin": ALLOWED,
        }
    }


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = cli.main(list(args))
    captured = capsys.readouterr()
    return status, captured.out + captured.err


@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
async def test_the_token_is_never_printed_nor_logged(
    capsys, hows_server_url, hows_token, json_output
):
    as_json = ["--json"] if json_output else []
    runs = [
        ["doctor", hows_server_url, "--token", hows_token, "--origin", ALLOWED],
        ["doctor", f"{hows_server_url}lab?token={hows_token}", "--origin", ALLOWED],
        ["doctor", hows_server_url, "--token", hows_token, "--origin", "https://evil.example"],
        ["doctor", hows_server_url, "--token", hows_token + "0"],
        ["diagnose", hows_server_url, "--origin", ALLOWED],
        ["diagnose", hows_server_url, "--origin", "https://evil.example"],
    ]
    statuses = []
    with debug_logs() as lines:
        for args in runs:
            extra = [*as_json, "--no-kernel", "--timeout", "15"] if args[0] == "doctor" else []
            status, output = await asyncio.to_thread(run, capsys, *args, *extra)
            statuses.append(status)
            assert output, args
            if args[0] == "doctor":  # it ran, and reported on this server
                assert hows_server_url.split("/")[2] in output, (args, output)
            assert hows_token not in output, (args, output)
    # All good, all good (the token from the URL), refused origin, wrong token; diagnose
    # from the allowed origin, from a refused one.
    assert statuses == [0, 0, 1, 1, 0, 1]
    assert secrets_in(lines, [hows_token]) == []
