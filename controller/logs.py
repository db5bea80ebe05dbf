"""Logging setup: structlog events, JSON lines for machines or a readable console
format for people; library logs (pyroute2, watchdog) come out the same way.
Called once by the cli before any command runs.

structlog is imported when the first event that passes the level is written,
not before: importing it costs some 15 ms (its console renderer, its stdlib
bridge and asyncio), more than the rest of `netlab validate` on a small
directory, and most commands write no event at all at their default level
(warnings)."""

from __future__ import annotations

import logging
import sys

TYPE_CHECKING = False  # typing itself is not imported on the way to a command
if TYPE_CHECKING:
    from typing import Any, Protocol, TextIO

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class _Settings:
    """One call of `configure`: what is made from it is made again after the next."""

    __slots__ = ("log_format", "stream", "level")

    def __init__(self, log_format: str, stream: TextIO, level: int) -> None:
        self.log_format, self.stream, self.level = log_format, stream, level


_settings = _Settings("console", sys.stderr, logging.INFO)
_structlog_configured_for: _Settings | None = None


def configure(log_format: str, stream: TextIO | None = None, level: int = logging.INFO) -> None:
    global _settings
    _settings = _Settings(log_format, stream or sys.stderr, level)
    root = logging.getLogger()
    root.handlers[:] = [_LibraryHandler(_settings)]
    root.setLevel(logging.WARNING)


def _structlog() -> Any:
    """structlog, configured for the present settings."""
    global _structlog_configured_for
    import structlog

    settings = _settings
    if _structlog_configured_for is not settings:
        structlog.configure(
            processors=[*_shared(structlog), *_exceptions(structlog, settings), _renderer(structlog, settings)],
            wrapper_class=structlog.make_filtering_bound_logger(settings.level),
            logger_factory=structlog.PrintLoggerFactory(settings.stream),
            cache_logger_on_first_use=False,
        )
        _structlog_configured_for = settings
    return structlog


def _shared(structlog: Any) -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _exceptions(structlog: Any, settings: _Settings) -> list[Any]:
    if settings.log_format != "json":
        return []
    return [structlog.processors.ExceptionRenderer(structlog.tracebacks.ExceptionDictTransformer(show_locals=False))]


def _renderer(structlog: Any, settings: _Settings) -> Any:
    if settings.log_format == "json":
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=settings.stream.isatty())


class _LibraryHandler(logging.Handler):
    """The libraries' stdlib records (warnings and worse), rendered by structlog
    like netlab's own events; its formatter is made at the first record."""

    def __init__(self, settings: _Settings) -> None:
        super().__init__()
        self._settings = settings
        self._handler: logging.Handler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self._handler is None:
            structlog = _structlog()
            handler = logging.StreamHandler(self._settings.stream)
            handler.setFormatter(
                structlog.stdlib.ProcessorFormatter(
                    processors=[
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        _renderer(structlog, self._settings),
                    ],
                    foreign_pre_chain=_shared(structlog),
                )
            )
            self._handler = handler
        self._handler.emit(record)


if TYPE_CHECKING:

    class Log(Protocol):
        """What netlab logs through (a structlog bound logger): an event name and
        its fields."""

        def bind(self, **fields: Any) -> Log: ...

        def debug(self, event: str, **fields: Any) -> Any: ...

        def info(self, event: str, **fields: Any) -> Any: ...

        def warning(self, event: str, **fields: Any) -> Any: ...

        def error(self, event: str, **fields: Any) -> Any: ...


class _Logger:
    """A structlog bound logger made when its first event passes the level:
    below it, an event costs a comparison and imports nothing."""

    def __init__(self, context: dict[str, Any]) -> None:
        self._context = context
        self._bound: Any = None
        self._bound_for: _Settings | None = None

    def bind(self, **fields: Any) -> Log:
        return _Logger({**self._context, **fields})

    def _write(self, level: str, event: str, fields: dict[str, Any]) -> Any:
        if LEVELS[level] < _settings.level:
            return None
        if self._bound_for is not _settings:
            self._bound = _structlog().get_logger("netlab").bind(**self._context)
            self._bound_for = _settings
        return getattr(self._bound, level)(event, **fields)

    def debug(self, event: str, **fields: Any) -> Any:
        return self._write("debug", event, fields)

    def info(self, event: str, **fields: Any) -> Any:
        return self._write("info", event, fields)

    def warning(self, event: str, **fields: Any) -> Any:
        return self._write("warning", event, fields)

    def error(self, event: str, **fields: Any) -> Any:
        return self._write("error", event, fields)


def get_logger(**context: Any) -> Log:
    return _Logger(context)
