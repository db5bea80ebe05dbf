"""Logging setup: structlog events, JSON lines for machines or a readable console
format for people; library logs (pyroute2, watchdog) come out the same way.
Called once by the cli before any command runs."""

from __future__ import annotations

import logging
import sys
from typing import Any, Protocol, TextIO

import structlog


def configure(log_format: str, stream: TextIO | None = None, level: int = logging.INFO) -> None:
    stream = stream or sys.stderr
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if log_format == "json":
        renderer: Any = structlog.processors.JSONRenderer()
        exceptions: list[Any] = [
            structlog.processors.ExceptionRenderer(structlog.tracebacks.ExceptionDictTransformer(show_locals=False))
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
        exceptions = []
    structlog.configure(
        processors=[*shared, *exceptions, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer], foreign_pre_chain=shared
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)


class Log(Protocol):
    """What netlab logs through (a structlog bound logger): an event name and
    its fields."""

    def bind(self, **fields: Any) -> Log: ...

    def debug(self, event: str, **fields: Any) -> Any: ...

    def info(self, event: str, **fields: Any) -> Any: ...

    def warning(self, event: str, **fields: Any) -> Any: ...

    def error(self, event: str, **fields: Any) -> Any: ...


def get_logger(**context: Any) -> Log:
    logger: Log = structlog.get_logger("netlab").bind(**context)
    return logger
