"""Waiting, in a test's event loop, for something the server does in its own time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["eventually"]


async def eventually(
    predicate: Callable[[], object], timeout: float = 10.0, message: str = ""
) -> None:
    """Wait until ``predicate()`` is true; an ``AssertionError`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting: {message}")
        await asyncio.sleep(0.02)
