"""Helpers shared by the test modules: servers, kernels, browsers, proxies, wire frames.

Test modules import from here (``from support.kernels import ...``), never from each
other; ``tests/`` is on ``sys.path`` through pytest's ``pythonpath`` setting.

- ``browser``: Chromium under Playwright, the page prelude, Jupyter as a subprocess, and
  the pytest fixtures every browser test module re-exports;
- ``cross_origin``: the browser tests' servers and pages (allowed, same-site, foreign);
- ``echo_socket``: an echoing WebSocket registered on the server under test;
- ``hypothesis_strategies``: JSON values and junk for the fuzzing tests;
- ``kernels``: Jupyter kernel messages and a kernel socket client (legacy and v1);
- ``nginx``: a real nginx in front of the server, old or upgrading;
- ``polling``: a raw polling-transport client;
- ``ports``: ``free_port``, the one way tests pick a port;
- ``server_process``: jupyter_server in its own process, for load and fault tests;
- ``users``: an identity provider with two people;
- ``waiting``: ``eventually``, waiting for the server in the test's event loop;
- ``wire``: a raw WebSocket client for bytes no client library would send.
"""
