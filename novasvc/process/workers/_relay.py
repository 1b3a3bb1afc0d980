# -*- test-case-name: tests.test_process_workers_relay -*-
"""
L{OutputRelay}: a worker's standard output and error, turned into log
events of the supervising parent that name the worker, so that every
worker's log goes where the parent's goes (its C{--logfile}, syslog, the
journal) in the parent's C{log_format}.

A worker logs one JSON object per line (L{novasvc.process.log.file_observer}'s
C{json} format) on its standard output: each becomes an event with the
worker's level, namespace, time and text. Any other line (a traceback on
standard error, a twistd usage message, a C{print}) becomes an event of its
own: C{info} from standard output, C{warn} from standard error.
"""

import json
import time
from typing import Any, Dict, Optional

from twisted.logger import ILogObserver, LogLevel, globalLogPublisher


__all__ = ["OutputRelay"]

#: The longest line kept whole, in bytes; a longer one is cut into pieces.
LINE_LIMIT = 1 << 20
#: The most characters of L{OutputRelay.last_error}.
ERROR_LIMIT = 200
_NAMESPACE = "novasvc.process.workers"


class OutputRelay:
    """
    Reads one worker's output (L{feed}) and logs it line by line.

    @ivar last_error: the first line of the last event at C{error} or
        above, or the last line on standard error, clipped; C{None} until
        there is one. It tells why a worker that ended failed.
    """

    def __init__(self, index: int, observer: Optional[ILogObserver] = None,
                 limit: int = LINE_LIMIT) -> None:
        """
        @param index: the worker's index (1-based), shown as C{worker-K}.
        @param observer: where the events go (default: the global log
            publisher).
        @param limit: see L{LINE_LIMIT}.
        """
        self.index = index
        self.pid: Optional[int] = None
        self.last_error: Optional[str] = None
        self._observer = observer if observer is not None else globalLogPublisher
        self._limit = limit
        self._buffers: Dict[int, bytes] = {}

    def feed(self, fd: int, data: bytes) -> None:
        """
        @param fd: C{1} (standard output) or C{2} (standard error).
        @param data: what the worker wrote, in any pieces.
        """
        buffer = self._buffers.get(fd, b"") + data
        while True:
            line, newline, rest = buffer.partition(b"\n")
            if not newline:
                break
            self._line(fd, line)
            buffer = rest
        while len(buffer) > self._limit:
            self._line(fd, buffer[:self._limit])
            buffer = buffer[self._limit:]
        self._buffers[fd] = buffer

    def flush(self) -> None:
        """
        Log what is left without an ending newline (the worker ended).
        """
        buffers, self._buffers = self._buffers, {}
        for fd, rest in sorted(buffers.items()):
            if rest:
                self._line(fd, rest)

    def _line(self, fd: int, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        if not text.strip():
            return
        fields = _json_event(text) if fd == 1 else None
        if fields is None:
            level = LogLevel.warn if fd == 2 else LogLevel.info
            self._emit(level, _NAMESPACE, text, time.time(), "stderr" if fd == 2 else "stdout")
            if fd == 2:
                self.last_error = clip(text.strip())
            return
        level = _level(fields.get("log_level"))
        namespace = fields.get("log_namespace")
        if not isinstance(namespace, str):
            namespace = _NAMESPACE
        logged = fields.get("log_text")
        if not isinstance(logged, str):
            logged = _format(fields)
        when = fields.get("log_time")
        if isinstance(when, bool) or not isinstance(when, (int, float)):
            when = time.time()
        self._emit(level, namespace, logged, float(when), None)
        if level >= LogLevel.error and logged.strip():
            self.last_error = clip(logged.strip().splitlines()[0])

    def _emit(self, level: LogLevel, namespace: str, text: str, when: float,
              stream: Optional[str]) -> None:
        system = f"worker-{self.index} " + (stream or f"{namespace}#{level.name}")
        event: Dict[str, Any] = {
            "log_level": level,
            "log_namespace": namespace,
            "log_format": "{worker_text}",
            "log_time": when,
            "log_system": system,
            "worker_text": text,
            "worker": self.index,
        }
        if self.pid is not None:
            event["worker_pid"] = self.pid
        self._observer(event)


def clip(text: str) -> str:
    """
    @return: C{text} cut to L{ERROR_LIMIT} characters, saying so when cut.
    """
    if len(text) <= ERROR_LIMIT:
        return text
    return f"{text[:ERROR_LIMIT]}... ({len(text)} characters)"


def _json_event(text: str) -> Optional[Dict[str, Any]]:
    """
    @return: the fields of a Twisted JSON log event, or C{None} if C{text}
        is not one.
    """
    if not text.startswith("{"):
        return None
    try:
        fields = json.loads(text)
    except ValueError:
        return None
    if not isinstance(fields, dict) or "log_level" not in fields:
        return None
    return fields


def _level(value: Any) -> LogLevel:
    """
    @return: the L{LogLevel} that Twisted's JSON names (C{{"name": "info",
        ...}}), C{info} if it names none.
    """
    name = value.get("name") if isinstance(value, dict) else value
    try:
        return LogLevel.levelWithName(name)
    except Exception:
        return LogLevel.info


def _format(fields: Dict[str, Any]) -> str:
    """
    @return: the text of an event written without C{log_text} (Twisted's
        own JSON observer), formatted from its fields.
    """
    from twisted.logger import eventFromJSON, formatEvent

    try:
        return formatEvent(eventFromJSON(json.dumps(fields)))
    except Exception:
        return str(fields.get("log_format", ""))
