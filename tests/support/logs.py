"""Every log line the process writes meanwhile, at DEBUG: for tests that look for secrets."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["debug_logs"]


@contextmanager
def debug_logs() -> Iterator[list[str]]:
    """Every record any logger writes meanwhile, every logger lowered to DEBUG."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    keep = Keep(logging.DEBUG)
    keep.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    loggers = [root] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    levels = [(logger, logger.level) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        if logger is root or not logger.propagate:
            logger.addHandler(keep)
    try:
        yield lines
    finally:
        for logger, level in levels:
            logger.setLevel(level)
            logger.removeHandler(keep)
