# -*- test-case-name: tests.test_tracing -*-
"""
The OpenTelemetry SDK tracer provider that C{tracing.exporter} asks for:
C{console} prints each span to standard output as it ends, as one line
of JSON (under twistd, one log event), C{otlp} sends
them in batches with the OTLP exporter (HTTP, else gRPC, whichever is
installed; the standard C{OTEL_EXPORTER_OTLP_*} environment variables say
where). C{none} sets up nothing.
"""

import sys
from typing import Any, Callable, Optional

from novasvc.exceptions import ConfigError

__all__ = ["exporter_factory", "make_provider"]

_SDK = "opentelemetry-sdk"
_OTLP = "opentelemetry-exporter-otlp-proto-http (or opentelemetry-exporter-otlp-proto-grpc)"


def _one_line(span: Any) -> str:
    """
    @return: C{span} as compact JSON on one line (the SDK's default is
        indented over some 40 lines).
    """
    return span.to_json(indent=None) + "\n"


def exporter_factory(exporter: str) -> Optional[Callable[[], Any]]:
    """
    Check that what C{exporter} needs is installed (at start-up, before a
    daemon forks).

    @param exporter: C{"none"}, C{"console"} or C{"otlp"}.
    @return: C{None} for C{"none"}, else a callable making the span exporter.
    @raise ConfigError: for another value, or when a package is missing
        (the message names it).
    """
    if exporter == "none":
        return None
    if exporter not in ("console", "otlp"):
        raise ConfigError(f"tracing.exporter: expected one of 'none', 'console', 'otlp', got {exporter!r}")
    try:
        from opentelemetry.sdk.trace import export
    except ImportError as e:
        raise ConfigError(f"tracing.exporter: {exporter} needs the OpenTelemetry SDK: "
                          f"pip install {_SDK} ({e})") from None
    if exporter == "console":
        # Standard output as it is when the service starts (twistd's log,
        # where each line is one log event): one line of JSON per span.
        return lambda: export.ConsoleSpanExporter(out=sys.stdout, formatter=_one_line)
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError as e:
            raise ConfigError(f"tracing.exporter: otlp needs an OTLP exporter: pip install {_OTLP} "
                              f"({e})") from None
    return OTLPSpanExporter


def make_provider(make_exporter: Callable[[], Any], exporter: str, service_name: str, host: str) -> Any:
    """
    @param make_exporter: from L{exporter_factory}.
    @param exporter: C{"console"} (each span exported as it ends, in the
        reactor thread) or C{"otlp"} (in batches, from the SDK's thread).
    @param service_name: the resource's C{service.name}.
    @param host: the resource's C{host.name}.
    @return: an SDK C{TracerProvider} exporting with C{make_exporter()};
        its resource also holds what C{OTEL_RESOURCE_ATTRIBUTES} gives.
    """
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name, "host.name": host}))
    processor = SimpleSpanProcessor if exporter == "console" else BatchSpanProcessor
    provider.add_span_processor(processor(make_exporter()))
    return provider
