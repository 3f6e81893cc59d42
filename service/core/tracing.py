"""Optional OpenTelemetry tracing: on only when an OTLP endpoint is configured."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from loguru import logger

from service.core.config import Settings


def setup_tracing(app: FastAPI, settings: Settings) -> Callable[[], None] | None:
    """Instrument the app; return the function that flushes and stops the exporter."""
    if not settings.otlp_endpoint:
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise SystemExit(
            "ITEMS_OTLP_ENDPOINT is set but tracing is not installed: "
            "install the 'tracing' extra (pip install 'items-platform[tracing]')"
        ) from None
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint.rstrip("/") + "/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, excluded_urls="healthz,readyz,metrics"
    )
    logger.info("tracing enabled", otlp_endpoint=settings.otlp_endpoint)
    return provider.shutdown
