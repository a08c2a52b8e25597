"""Helpers shared by the test modules: servers, kernels, browsers, proxies, wire frames.

Test modules import from here (``from support.kernels import ...``), never from each
other; ``tests/`` is on ``sys.path`` through pytest's ``pythonpath`` setting.
"""
