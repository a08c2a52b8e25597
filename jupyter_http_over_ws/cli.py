"""Command-line entry points: ``jupyter http-over-ws ...`` (or ``jupyter-http-over-ws``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from ._version import __version__


def _diagnose(args: argparse.Namespace) -> int:
    from tornado.httpclient import HTTPClientError

    from .client import diagnose

    try:
        answer = asyncio.run(
            diagnose(
                args.url, origin=args.origin, min_version=args.min_version, ca_file=args.ca_file
            )
        )
    except HTTPClientError as e:
        print(f"The server refused the diagnose socket: HTTP {e.code}.", file=sys.stderr)
        if e.code == 403:
            print(
                "Its origin check failed: start the server with "
                f"--ServerApp.allow_origin='{args.origin or '<your page origin>'}'.",
                file=sys.stderr,
            )
        elif e.code == 404:
            print(
                "The extension is not loaded: check `jupyter server extension list`.",
                file=sys.stderr,
            )
        return 1
    except OSError as e:
        print(f"Cannot reach {args.url}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(answer.__dict__, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jupyter http-over-ws`` command line."""
    parser = argparse.ArgumentParser(
        prog="jupyter http-over-ws",
        description="Tools for the Jupyter HTTP-over-WebSocket tunnel.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    probe = commands.add_parser("diagnose", help="ask a server's diagnose endpoint")
    probe.add_argument("url", help="the Jupyter server URL, base_url included")
    probe.add_argument("--origin", help="the web origin to present, as a browser page would")
    probe.add_argument("--min-version", help="the min_version a frontend would ask for")
    probe.add_argument(
        "--ca-file", help="a PEM file of the CAs to trust for an https:// server (private CAs)"
    )
    probe.set_defaults(run=_diagnose)
    from . import doctor

    doctor.add_arguments(
        commands.add_parser("doctor", help="find out why a frontend cannot connect, and the fix")
    )
    from . import demo

    demo.add_parser(commands)
    from .lab import command as lab

    lab.add_parser(commands)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
